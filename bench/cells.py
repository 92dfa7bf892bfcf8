"""How one figure of a run is written in a summary table: "-" for what could not be
measured (never 0), "> 2 s" for a percentile past wrk's --timeout, PARTIAL and INVALID for
runs that measured fewer clients than asked.
"""

NOISY_SHARE = 0.1  # other processes using more than 10% of a core during a run: NOISY
TIMED_OUT_SHARE = 0.01  # above this share of timeouts, p99 is past wrk's --timeout: unknown


def figure(value, form="{}"):
    """A measured figure as text; one that could not be measured is "-", never 0."""
    return "-" if value is None else form.format(value)


def cell_ms(value):
    return figure(value, "{:,.1f} ms")


def socket_errors(errors):
    total = sum(errors.values())
    return "0" if not total else ", ".join(f"{k} {v}" for k, v in errors.items() if v)


def audit_cell(run):
    audit = run["audit"]
    text = audit["result"]
    if audit["result"] != "ok":
        text += f" ({audit['what']} {audit['counted']}, wrk {audit['wrk_ok']})"
    if unaccepted(run):
        text += ", PARTIAL"
    return text if run["valid"] else text + ", INVALID"


def unaccepted(run):
    """wrk's connections the server never accepted while wrk measured (they waited in the
    listen queue, their requests neither served nor counted), if more than 1% of them."""
    accepted = run.get("peak_connections")
    if (run.get("knobs") or {}).get("workers"):  # it closes each connection: wrk's come and go
        return 0
    if accepted is None or accepted >= 0.99 * run["connections"]:
        return 0
    return run["connections"] - accepted


def percentile_cell(run, key, share):
    """p50 or p99, or "> timeout" when more than `share` of responses came after wrk's
    --timeout: wrk leaves those out, so the figure it prints would flatter the server."""
    if run["requests"] and run["timeouts"] > share * run["requests"]:
        return f"> {run['timeout_s']} s"
    return cell_ms(run[key])


def server_cpu(run):
    total = figure(run["server_cpu_s"], "{:.1f} s")
    if run.get("server_cpu_user_s") is None:  # not measured, or a run from before the split
        return total
    return f"{total} ({run['server_cpu_user_s']:.1f} + {run['server_cpu_system_s']:.1f})"


def switches(run):
    voluntary = run.get("server_ctx_switches_voluntary")
    if voluntary is None:
        return "-"
    return f"{voluntary:,}, {figure(run['server_ctx_switches_involuntary'], '{:,}')}"


def placed(settings):
    """Where the server and the load ran, as the run recorded it."""
    cpus, where = settings.get("cpus"), settings.get("placement")
    if where is None:
        return "No CPU placement (a run from before --placement existed)."
    if not cpus:
        return f"Placement {where}: no CPU affinity set; the OS placed every process."
    return (f"Placement {where}: the server on CPU {cpus['server']}, wrk, Postgres and Redis "
            f"on {cpus['load']} (per run in results.json).")
