"""The layout docs/architecture.md describes, checked on the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minildm"
#: inference: what a pipeline needs to turn a prompt into an image
INFERENCE = ["pipelines", "schedulers", "sampling.py", "checkpoints.py"]
TRAINING_ONLY = ("minildm.training", "minildm.tasks", "minildm.data")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The minildm modules ``path`` imports (``from a.b import c`` counts a.b, and a.b.c if that is
    a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    modules = _modules()
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("minildm")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("minildm"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
    return found


def test_no_import_circle():
    modules = _modules()
    graph = {name: {m for m in _imports(path, top_level_only=False) if m in modules and m != name}
             for name, path in modules.items()}
    # a package's own __init__ re-exports its modules: the edge module -> package is the circle to find
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if nxt.startswith(node + "."):  # a package importing its own submodules
                continue
            assert state.get(nxt) != 1, "import circle: " + " -> ".join([*stack, node, nxt])
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_inference_imports_nothing_from_training():
    for entry in INFERENCE:
        root = PACKAGE / entry
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            bad = sorted(m for m in _imports(path, top_level_only=False) if m.startswith(TRAINING_ONLY))
            assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {bad}"
    # and at run time: loading and running a pipeline never loads the training code
    code = (
        "import sys, minildm.pipelines, minildm.sampling, minildm.schedulers, minildm.checkpoints\n"
        "bad = [m for m in sys.modules if m.startswith(('minildm.training', 'minildm.tasks'))]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_files_and_functions_stay_small():
    """No file over 400 lines; no function over 60 lines without a reason written beside its
    ``def`` (a comment ``# long: why`` on the line above)."""
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        lines = source.splitlines()
        assert len(lines) <= MAX_FILE_LINES, f"{path.name} has {len(lines)} lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                reason = lines[first - 2].strip().startswith("# long:")
                where = f"{path.name}:{node.lineno} {node.name}"
                assert length <= MAX_FUNCTION_LINES or reason, f"{where} has {length} lines"
