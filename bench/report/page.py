"""report.html, the page a learner opens after a run: one self-contained file beside
summary.md (inline CSS and SVG, nothing fetched): summary.md in its own order, "What it says"
first, the charts just before its first table, then links to each run's files. Standard
library only: summary.md's few Markdown forms (headings, paragraphs, lists, tables, `code`,
**bold**, [links](href)) are turned into HTML here.
"""

import re
from html import escape
from pathlib import Path

from bench.report.charts import charts_html
from bench.report.capacity_report import GLANCE as CAPACITY_GLANCE

GLANCE = ("A bar is a server's median run at a point; its whisker spans the lowest to the "
          "highest of the repeats, where there were several. An outlined bar is a percentile "
          "from too few requests to be exact (marked † in the tables).")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #eee; padding: 0.4em; }
figcaption { font-size: 0.85em; } .key { margin-right: 1em; white-space: nowrap; }
.key i { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f4f4f4; } td:nth-child(-n+2) { text-align: left; white-space: nowrap; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def inline(text):
    """`code`, **bold** and [text](href) of one line, everything else escaped."""
    text = escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                  lambda m: f'<a href="{escape(m[2])}">{m[1]}</a>', text)


def table_html(lines):
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines
            if not re.fullmatch(r"\|(-+\|)+", line.strip())]
    return '<div class="table"><table>' + "".join(
        "<tr>" + "".join(f"<{tag}>{inline(cell)}</{tag}>" for cell in row) + "</tr>"
        for tag, row in zip(["th"] + ["td"] * len(rows), rows)) + "</table></div>"


def markdown_html(text):
    """summary.md's Markdown as HTML: a block is a heading, a table, a list or a paragraph."""
    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            blocks.append(f"<h{level}>{inline(lines[0].lstrip('#').strip())}</h{level}>")
            lines = lines[1:]
        if not lines:
            continue
        if lines[0].startswith("|"):
            blocks.append(table_html(lines))
        elif lines[0].startswith("- "):
            items = re.split(r"\n- ", "\n".join(lines)[2:])
            blocks.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items)
                          + "</ul>")
        else:
            blocks.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(blocks)


def files_section(results, out_dir):
    """Links to each run's flame graph and client output, where the file is."""
    items = []
    for run in results["runs"]:
        files = [("flame graph", (run.get("profile") or {}).get("flamegraph")),
                 ("client output" if run.get("rate") else "wrk output", run.get("raw"))]
        links = [f'<a href="{escape(name)}">{label}</a>' for label, name in files
                 if name and (out_dir / name).exists()]
        if links:
            items.append(f"<li>{escape(run['series'])} at {escape(run['point'])}: "
                         f"{', '.join(links)}</li>")
    if not items:
        return ""
    return "<h2>Each run's files</h2><p>Files beside this page.</p><ul>" + "".join(items) + "</ul>"


def write_page(results, summary, out_dir, charts):
    """Write report.html into out_dir from summary.md's text and charts.drawn's; its path."""
    head, _, tables = summary.partition("\n|")  # the charts go just before the first table
    title = f"Benchmark: scenario {results['scenario']}"
    path = Path(out_dir) / "report.html"
    path.write_text(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{STYLE}</style></head>
<body>
{markdown_html(head)}
<h2>At a glance</h2>
<p>{CAPACITY_GLANCE if results.get('capacity') else GLANCE} Hover it for its figure.</p>
<div class="charts">
{charts_html(charts)}
</div>
{markdown_html("|" + tables)}
{files_section(results, Path(out_dir))}
</body></html>
""")
    return path
