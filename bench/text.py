"""How the benchmark writes for people, shared by the measuring side and bench/report/: the
width every printed line fits, "-" for a figure not measured (never 0), a Markdown table."""

COLUMNS = 100  # an ordinary terminal's width: every line the project prints fits it


def figure(value, form="{}"):
    """A measured figure as text; one that could not be measured is "-", never 0."""
    return "-" if value is None else form.format(value)


def markdown_table(headings, rows):
    """A Markdown table: its headings, the rule under them, then a line per row of cells."""
    return "\n".join(["| " + " | ".join(headings) + " |", "|---" * len(headings) + "|"]
                     + ["| " + " | ".join(row) + " |" for row in rows])


def label_of(method):  # how a point, a sentence or a chart names the request
    return "GET /" if method == "GET" else "POST /items"
