"""What ./run_bench.sh prints at the end: a table that fits an ordinary terminal (at most 100
columns), the plain reading wrapped to fit, and where the whole report is. summary.md and
report.html keep every column; this keeps the ones a first look needs: the figures each
server is compared by, what its CPU paid per request, and whether its counts were audited.
"""

import os
import re
import textwrap

from bench.cells import figure, opening, percentile_cell, summarize, unaccepted
from bench.reading import reading

COLUMNS = 100  # an ordinary terminal's width, and the lines of this code's


def audit_word(run):
    """The audit, and PARTIAL or INVALID where the run measured fewer clients than asked."""
    return " ".join([run["audit"]["result"]] + ["PARTIAL"] * bool(unaccepted(run))
                    + ["INVALID"] * (not run["valid"]))


def compact_table(results):
    """A block per point: each server's req/s (and the repeats' range), ratio to the baseline,
    p99, CPU per request and audit, in aligned columns."""
    rows, lines = summarize(results), []
    ranged = any(row["spread"] for row in rows)
    head = (["Server", "Req/s"] + ["(min–max)"] * ranged
            + ["Ratio", "p99", "All answered", "CPU/req", "Audit"])
    cells = {}
    for row in rows:
        run = row["run"]
        spread = [f"({row['spread'][0]:,.0f}–{row['spread'][1]:,.0f})" if row["spread"]
                  else ""] * ranged
        cells.setdefault(row["point"], []).append(
            [row["series"], f"{run['rps']:,.0f}"] + spread
            + [figure(row["ratio"], "{:.2f}x"), percentile_cell(run, "p99_ms"), opening(run),
               figure(run.get("server_cpu_ms_per_request"), "{:.2f} ms"), audit_word(run)])
    widths = [max(len(line[i]) for line in [head] + sum(cells.values(), []))
              for i in range(len(head))]
    widths[0] = min(widths[0], COLUMNS - 2 - sum(w + 2 for w in widths[1:]))

    def aligned(line):
        first = line[0] if len(line[0]) <= widths[0] else line[0][:widths[0] - 1] + "…"
        rest = [cell.rjust(width) for cell, width in zip(line[1:-1], widths[1:-1])]
        return ("  " + "  ".join([first.ljust(widths[0])] + rest + [line[-1]])).rstrip()

    for point, lines_of_point in cells.items():
        lines += [point, aligned(head)] + [aligned(line) for line in lines_of_point] + [""]
    return "\n".join(lines)


def wrapped(text):
    """Each "- " sentence of the reading wrapped to the terminal, continued under its words."""
    text = re.sub(r"(\d) (ms|s|MB|KiB)\b", "\\1\N{NO-BREAK SPACE}\\2", text)  # 20 s: one word
    return "\n".join(textwrap.fill(line, COLUMNS, subsequent_indent="  ",
                                   break_on_hyphens=False) for line in text.splitlines()
                      ).replace("\N{NO-BREAK SPACE}", " ")


def terminal_summary(results, report_path):
    """The end of a run's output, no line over COLUMNS wide."""
    return "\n".join([
        wrapped(f"Scenario {results['scenario']}: each server's median run at each point "
                f"(Ratio: to {results.get('baseline') or 'the baseline'})."), "",
        *([wrapped("PROFILED: py-spy sampled each server and shared its CPU: compare these "
                   "req/s only with other profiled runs."), ""]
          if results["settings"].get("profiled") else []),
        compact_table(results), "What it says:", wrapped(reading(results)), "",
        "Every column, the charts and the flame graphs (summary.md beside it: the tables):",
        shortest(report_path)])


def shortest(path):
    """The path as typed from here where that is shorter: results/.../report.html."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(str(path)) else str(path)
