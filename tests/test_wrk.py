"""bench/wrk.py's parser, on outputs captured from real runs on this project's servers."""

from pathlib import Path

import pytest

from bench.wrk import WrkOutputError, parse_wrk

DATA = Path(__file__).parent / "data"


def test_clean_run():
    numbers = parse_wrk((DATA / "wrk-clean.txt").read_text())
    assert numbers["requests"] == 1753
    assert numbers["ok"] == 1753
    assert numbers["seconds"] == 2.034
    assert numbers["timeouts"] == 0
    assert numbers["socket_errors"] == {"connect": 0, "read": 0, "write": 0}


def test_run_with_connect_errors_timeouts_and_error_statuses():
    # 300 connections under a 200-file limit, Redis killed mid-run, a 1.2 s wait per view
    numbers = parse_wrk((DATA / "wrk-errors.txt").read_text())
    assert numbers["requests"] == 276
    assert numbers["non_2xx"] == 241
    assert numbers["ok"] == 276 - 241
    assert numbers["timeouts"] == 251
    assert numbers["socket_errors"] == {"connect": 106, "read": 0, "write": 0}


def test_output_without_our_lua_summary_is_refused():
    text = (DATA / "wrk-clean.txt").read_text()
    plain = "\n".join(line for line in text.splitlines() if not line.startswith("WRK_JSON"))
    with pytest.raises(WrkOutputError, match="WRK_JSON"):
        parse_wrk(plain)


def test_report_and_summary_that_disagree_are_refused():
    text = (DATA / "wrk-errors.txt").read_text().replace("connect 106", "connect 105")
    with pytest.raises(WrkOutputError, match="WRK_JSON differ"):
        parse_wrk(text)
