"""README.md is a front door that reads in a terminal: at most about 120 lines, and no line
wider than the project's output (bench.text.COLUMNS) unless it holds a URL; LESSON.md fits
the same width. Every link in README.md and the pages under docs/ lands on a file that
exists, and a #section on a heading of that file.
"""

import re

import pytest
from support import ROOT

from bench.text import COLUMNS

MOST_README_LINES = 120
URL = re.compile(r"[a-z]+://")
LINK = re.compile(r"\]\(([^)\s]+)\)")
LINKING = ["README.md"] + sorted(f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md"))


def wide_lines(name):
    """Each line of the file wider than COLUMNS and holding no URL, as file:line: width."""
    lines = (ROOT / name).read_text().splitlines()
    return [f"{name}:{number}: {len(line)} columns" for number, line in enumerate(lines, 1)
            if len(line) > COLUMNS and not URL.search(line)]


def test_readme_fits_a_terminal_and_is_a_front_door():
    assert wide_lines("README.md") == []
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= MOST_README_LINES, f"README.md has {lines} lines: move some under docs/"


def test_lesson_fits_a_terminal():
    assert wide_lines("LESSON.md") == []


def anchors(page):
    """The #sections a Markdown file offers: each heading as GitHub turns it into an id."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in headings}


@pytest.mark.parametrize("doc", LINKING)
def test_every_link_lands_on_a_file_and_section_that_exist(doc):
    source = ROOT / doc
    for link in LINK.findall(source.read_text()):
        if URL.match(link):
            continue  # a web address: not checked offline
        path, _, section = link.partition("#")
        target = (source.parent / path).resolve() if path else source
        assert target.exists(), f"{doc}: {link} leads nowhere"
        assert ROOT in target.parents or target == ROOT, f"{doc}: {link} leaves the project"
        if section:
            assert section in anchors(target), f"{doc}: {link}: no such section"
