-- The one wrk script every benchmark run uses.
--   wrk ... -s bench/wrk.lua http://127.0.0.1:8080/ -- get    GET the URL's path
--   wrk ... -s bench/wrk.lua http://127.0.0.1:8080/ -- post   POST /items, a numbered text each
-- done() prints one machine-readable line, WRK_JSON {...}, after wrk's own report.

local mode, get_request, sent = "get", nil, 0

function init(args)
  for _, arg in pairs(args) do
    if arg == "post" then mode = "post" end
  end
  get_request = wrk.format("GET")
end

function request()
  if mode ~= "post" then return get_request end
  sent = sent + 1
  local body = string.format('{"text": "bench item %d"}', sent)
  return wrk.format("POST", "/items", {["Content-Type"] = "application/json"}, body)
end

-- Counts only: wrk's latency histogram covers the opening and adds synthetic samples.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
