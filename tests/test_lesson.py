"""LESSON.md, README.md and the pages under docs/ quote only what runs produced and code
that still exists.

They are read as released (the `released` fixture): the exercises edit the servers, and a
participant's edits, committed or not, must not turn these red.

Figures from a benchmark are written as links to the run they came from, e.g.
[1,146 req/s](docs/runs/fair/summary.md), or [1,146 req/s](runs/fair/summary.md) from a page
under docs/; the number must appear in that file. Every `./run_bench.sh` command shown must be
one the benchmark accepts.
"""

import os
import re
import shlex
import subprocess
from pathlib import Path

import aiohttp.web_protocol
import pytest
from support import ROOT

from bench.run import parse_args

DOCS = ["LESSON.md", "README.md"] + sorted(f"docs/{page.name}"
                                           for page in (ROOT / "docs").glob("*.md"))
CITING = ["LESSON.md", "README.md"]  # each cites runs and shows ./run_bench.sh; a page may not
SOURCES = ["sync_server.py", "async_server.py", "common.py", "config.py", "sync_http.py",
           "async_http.py", "sync_pools.py", "async_pools.py", "templates/index.html"]
AIOHTTP_SOURCE = Path(aiohttp.web_protocol.__file__)  # LESSON.md quotes its task per connection
RUN_LINK = re.compile(r"\[([^\]]+)\]\(((?:\.\./)*(?:docs/)?runs/[\w-]+)/summary\.md\)")


@pytest.fixture
def text(released):
    """text(name): a file of the project as released."""
    return lambda name: (released / name).read_text()


@pytest.mark.parametrize("doc", DOCS)
def test_every_quoted_figure_is_in_the_run_it_links_to(doc, text, released):
    links = RUN_LINK.findall(text(doc))
    assert links or doc not in CITING, f"{doc} cites no run"
    for label, link in links:
        run = os.path.normpath(os.path.join(os.path.dirname(doc), link))  # as the link resolves
        assert run.startswith("docs/runs/"), f"{doc}: {link} is not a run under docs/runs/"
        summary = (released / run / "summary.md").read_text()
        # a benchmark's results.json, or the counts bench/syscalls.py wrote
        assert any((released / run / data).exists() for data in ("results.json", "counts.json"))
        for number in re.findall(r"\d[\d,]*(?:\.\d+)?", label):
            assert stated(number, summary), f"{doc}: {label!r} is not in {run}/summary.md"


def stated(number, text):
    """`number` stands in `text` as a whole figure: 3 is not found in 0.35 or 1,300."""
    return re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", text) is not None


def test_a_figure_is_found_whole_not_inside_another():
    assert stated("1,164", "| sync | 1,164 | 1.00x |") and stated("1.76", "1.76x")
    assert not stated("3", "0.35 ms, 1,300 req/s, 13 s") and not stated("1,16", "1,164")


@pytest.mark.parametrize("doc", DOCS)
def test_no_throughput_figure_without_its_run(doc, text):
    unlinked = RUN_LINK.sub("", text(doc))
    assert not re.findall(r"\d[\d,]* req/s", unlinked), \
        f"{doc} states a req/s figure that links to no run"


@pytest.mark.parametrize("doc", DOCS)
def test_tables_copied_from_runs_match_them(doc, text, released):
    """A table row that names a server (| sync | / | async |) is copied from a run summary."""
    summaries = "".join(path.read_text()
                        for path in (released / "docs" / "runs").glob("*/summary.md"))
    for line in text(doc).splitlines():
        if re.match(r"\| [^|]+ \| (sync|async)[^|]* \| [\d,]+ \|", line):
            assert line in summaries, f"{doc}: table row not found in any run: {line}"


def test_code_excerpts_still_appear_in_the_source(text):
    source_lines = {line.strip() for name in SOURCES for line in text(name).splitlines()}
    source_lines |= {line.strip() for line in AIOHTTP_SOURCE.read_text().splitlines()}
    blocks = re.findall(r"```python\n(.*?)```", text("LESSON.md"), re.S)
    assert blocks
    for block in blocks:
        for line in block.splitlines():
            if line.strip() and line.strip() != "...":
                assert line.strip() in source_lines, f"LESSON.md excerpt not in the source: {line}"


def test_diff_excerpts_are_cut_from_the_real_diff(text, released):
    """A ```diff block in LESSON.md is a run of lines `diff -u sync_server.py async_server.py`
    prints: the same lines, in the same order, nothing left out in between."""
    whole = subprocess.run(["diff", "-U", "100000", "sync_server.py", "async_server.py"],
                           cwd=released, capture_output=True, text=True).stdout.splitlines()[3:]
    blocks = re.findall(r"```diff\n(.*?)```", text("LESSON.md"), re.S)
    assert blocks
    for block in blocks:
        lines = block.splitlines()
        assert any(whole[i:i + len(lines)] == lines for i in range(len(whole))), (
            f"LESSON.md shows a diff that diff does not print:\n{block}")


@pytest.mark.parametrize("doc", DOCS)
def test_bench_commands_shown_are_accepted(doc, text):
    commands = re.findall(r"^\s*(?:\$ )?\./run_bench\.sh(.*)$", text(doc), re.M)
    assert commands or doc not in CITING
    for arguments in commands:
        parse_args(shlex.split(arguments.split("#")[0]))  # exits on a bad flag
