"""The benchmark's two sides, held by their imports (read with ast, those inside functions too).

bench/report/ reads results.json and writes summary.md, report.html, chart.svg, the flame
graphs and the terminal table: it imports nothing of the measuring side (every other module
of bench/). The measuring side imports nothing of bench/report/, but for one call: bench/run.py,
the driver, hands its results to the report once, at the end (write_results). What both read
lives in SHARED, which imports neither side.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the contract of results.json; the 95% intervals; COLUMNS, figure, markdown_table, label_of;
# py-spy's stacks and their groups
SHARED = {"bench.results", "bench.intervals", "bench.text", "bench.profiles"}
DRIVER = ("bench.run", "write_results")  # the one place the measuring side calls the report


def module_of(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(path): path for path in sorted((ROOT / "bench").rglob("*.py"))}


def side_of(module):
    """report, shared or measuring; None for what is not bench's (the standard library, .venv,
    scripts/, the servers' modules)."""
    if module == "bench.report" or module.startswith("bench.report."):
        return "report"
    if module in SHARED:
        return "shared"
    return "measuring" if module.startswith("bench.") and module != "bench" else None


def imports(module):
    """[(line, the function it is in or None, the module imported)] of every import in it."""
    path, found = MODULES[module], []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((child.lineno, function, alias.name) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # from . import x, from .cells import y
                    anchor = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:  # from bench import cells: the module bench.cells
                    named = f"{base}.{alias.name}"
                    found.append((child.lineno, function, named if named in MODULES else base))
            inner = (child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                     else function)
            visit(child, inner)

    visit(ast.parse(path.read_text()), None)
    return found


def crossings():
    """Every import that crosses from one side to the other, as a line naming it."""
    wrong = []
    for module, path in MODULES.items():
        side = side_of(module)
        for line, function, imported in imports(module):
            other = side_of(imported)
            allowed = (other in (None, side, "shared") if side != "shared"
                       else other in (None, "shared"))
            if (module, function) == DRIVER and other == "report":
                allowed = True
            if not allowed:
                where = f" (in {function})" if function else ""
                wrong.append(f"{path.relative_to(ROOT)}:{line}{where}: the {side} side "
                             f"imports {imported}, of the {other} side")
    return wrong


def test_the_report_and_the_measuring_side_import_nothing_of_each_other():
    wrong = crossings()
    assert not wrong, "imports across the layers:\n" + "\n".join(wrong)


def test_the_layers_hold_what_they_name():
    """Every module named here exists, and the driver does call the report."""
    assert SHARED <= set(MODULES)
    assert any(side_of(imported) == "report" and function == DRIVER[1]
               for _, function, imported in imports(DRIVER[0]))
    assert {side_of(module) for module in MODULES} >= {"report", "shared", "measuring"}
