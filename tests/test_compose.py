"""docker-compose.yml agrees with the servers, read with the standard library: no Docker
engine (Debian's docker-compose package Recommends one) and no YAML package needed.

The reader understands the YAML that compose files need and this one uses: block mappings,
comments, JSON-style flow lists, one-level flow mappings, anchors (&name) and aliases (*name).
Anything else fails loudly, so a new construct in the file shows up here, not as a pass."""

import json
import re
import subprocess
import sys

from support import ROOT

from config import DEFAULT_URLS

KEY = re.compile(r"^(?P<indent> *)(?P<key>[\w.-]+):(?: +(?P<value>.*))?$")


def scalar(text, anchors, where):
    """One value after `key:`: an alias, a flow list, a flow mapping or a plain string."""
    if text.startswith("*"):
        assert text[1:] in anchors, f"{where}: alias {text} before its anchor"
        return anchors[text[1:]]
    if text.startswith("["):
        return json.loads(text)
    if text.startswith("{") and text.endswith("}"):
        pairs = [part.split(":", 1) for part in text[1:-1].split(",")]
        return {key.strip(): scalar(value.strip(), anchors, where) for key, value in pairs}
    assert not text.startswith(("&", "'", '"', "|", ">", "-")), f"{where}: cannot read {text!r}"
    return text


def read_compose(text):
    """The file as nested dicts and lists, as a YAML parser would return it."""
    root, anchors = {}, {}
    stack = [(-1, root)]  # (indent, mapping) of the mappings still open
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"\s+#.*$|^\s*#.*$", "", line)
        if not line.strip():
            continue
        match = KEY.match(line)
        assert match, f"docker-compose.yml line {number}: cannot read {line!r}"
        indent, key, value = len(match["indent"]), match["key"], match["value"] or ""
        while indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        anchor = re.match(r"&(\w+)(?: +(.*))?$", value)
        if anchor:
            value = anchor[2] or ""
        if value:
            parent[key] = scalar(value, anchors, f"line {number}")
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
        if anchor:
            anchors[anchor[1]] = parent[key]
    return root


def default_port(kind):
    shown = subprocess.run([sys.executable, f"{kind}_server.py", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    return int(re.search(r"--port PORT\s+port to listen on \(default: (\d+)\)", shown).group(1))


def in_compose(url, service):
    """A URL the servers use on the host, as a container on the compose network sees it."""
    return url.replace("127.0.0.1", service)


def test_the_reader_reads_anchors_aliases_and_flow_collections():
    compose = read_compose("a: &shared\n  b: [\"x\", \"y\"]  # note\nc: *shared\n"
                           "d: {e: f}\n")
    assert compose == {"a": {"b": ["x", "y"]}, "c": {"b": ["x", "y"]}, "d": {"e": "f"}}


def test_compose_file_agrees_with_the_servers():
    services = read_compose((ROOT / "docker-compose.yml").read_text())["services"]
    assert set(services) == {"postgres", "redis", "sync", "async"}
    for name, service in services.items():
        assert ("image" in service) != ("build" in service), f"{name}: image or build"
        assert set(service.get("depends_on", {})) <= set(services)
    for kind in ("sync", "async"):
        port = default_port(kind)
        service = services[kind]
        assert f"{kind}_server.py" in service["command"]
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert service["environment"] == {
            "DATABASE_URL": in_compose(DEFAULT_URLS["DATABASE_URL"], "postgres"),
            "REDIS_URL": in_compose(DEFAULT_URLS["REDIS_URL"], "redis")}
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                         "redis": {"condition": "service_healthy"}}
    assert services["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    assert "max_connections=500" in services["postgres"]["command"]
    assert services["redis"]["ports"] == ["127.0.0.1:6379:6379"]
