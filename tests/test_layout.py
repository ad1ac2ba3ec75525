"""The shape of the code: imports run one way (no cycle, none against the pipeline's direction), functions
stay short, and nothing is written twice. Read from the source with `ast`; nothing is imported."""
from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"modelc": "modelc", "modelc.grammar": "grammar", "modelc.compiler": "compiler",
            "modelc.runtime": "runtime", "modelc.importer": "importer",
            "modelc.editor": "editor"}   # as pyproject.toml's package-dir maps them

# Lowest first: a module may import from its own layer or a lower one, never from a higher one.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundations", {"compiler.source", "compiler.files", "compiler.imports", "compiler.array_files", "compiler.nodes", "compiler.types", "compiler.ir",
                     "compiler.values", "compiler.arguments", "compiler.numpy_ops", "compiler.keras_names", "grammar",
                     "compiler.numpy_classify",
                     "modelc.version", "grammar.model_parser", "grammar.generate_parser", "compiler.limits"}),
    ("tables", {"compiler.builder", "compiler.operators", "compiler.functions", "compiler.initializers",
                "compiler.layers_base", "compiler.layers_spatial",
                "compiler.layers", "compiler.layers_norm", "compiler.layers_conv", "compiler.layers_pool",
                "compiler.layers_attention", "compiler.layers_recurrent", "compiler.states",
                "compiler.functions_classify"}),
    ("lowering", {"compiler.parse", "compiler.check", "compiler.lower", "compiler.lower_metric", "compiler.emit",
                  "compiler.weights", "compiler.serialize", "compiler.summary", "compiler.onnx_file",
                  "compiler.dump"}),
    ("driver", {"compiler.driver", "compiler"}),
    ("session, data, metrics", {"runtime.defaults", "runtime.session", "runtime.data", "runtime.columns",
                                "runtime.missing",
                                "runtime.partitions", "runtime.platform_js", "runtime.platform_openvino",
                                "runtime.finalize", "runtime.prelude", "runtime.metrics", "runtime.writers",
                                "runtime"}),
    ("model", {"runtime.model", "runtime.quantize"}),
    ("tasks", {"runtime.tasks", "runtime.report", "runtime.checkpoints", "runtime.plots", "runtime.report_page"}),
    ("engines", {"runtime.engine_dask", "runtime.dask_worker", "runtime.engine", "runtime.compare"}),
    ("importer", {"importer.archive", "importer.graph", "importer.layers", "importer.fold", "importer.source",
                  "importer.convert", "importer"}),
    ("editor", {"editor.fmt", "editor.lexer", "editor.plot", "editor", "editor.analysis", "editor.vocabulary",
                "editor.queries", "editor.lsp"}),
    ("command line", {"modelc.api", "modelc.cli", "modelc.runtime_cli", "modelc.__main__", "modelc",
                      "modelc.editor_cli"}),
]
MAX_FUNCTION_LINES = 60
# Written by a tool (Lark's standalone generator: its own code and the grammar's tables), not by hand.
GENERATED = {"grammar/model_parser.py"}


def source_files() -> dict[str, Path]:
    """modelc.<module> -> its file, for every module of the installed package."""
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `name` imports: at the top, inside functions, or for type checking alone
    (a cycle of annotations is still two modules that each need the other)."""
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
    while stack:
        node = stack.pop()
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:  # `from . import api` names a module; `from .x import f` a member of x
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = source_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def layer_of(module: str) -> int:
    short = module.removeprefix("modelc.")
    for index, (_, members) in enumerate(LAYERS):
        if short in members or module in members:
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py LAYERS: place it there")


def test_every_module_has_a_layer():
    for module in source_files():
        layer_of(module)


def test_imports_never_run_against_the_pipeline():
    wrong = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
             for a, targets in import_graph().items() for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not wrong, "imports against the direction:\n" + "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_imports_resolve_as_the_package_maps_them(tmp_path):
    """`from ..compiler import driver` in runtime/ is modelc.compiler.driver, a module, not a member."""
    path = tmp_path / "engine.py"
    path.write_text("from ..compiler import driver\nfrom .model import Runner\n"
                    "def f():\n    from .tasks import Tally\n")
    modules = {"modelc.compiler.driver", "modelc.runtime.model", "modelc.runtime.tasks", "modelc.compiler"}
    assert imports_of("modelc.runtime.engine", path, modules) == {"modelc.compiler.driver", "modelc.runtime.model",
                                                                  "modelc.runtime.tasks"}


def test_functions_are_short():
    long = []
    for path in source_files().values():
        if str(path.relative_to(ROOT)) in GENERATED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


@pytest.mark.skipif(shutil.which("duplicates") is None, reason="the `duplicates` tool is not on this machine")
def test_nothing_is_written_twice_outside_tests():
    out = subprocess.run(["duplicates", "--most", "200", "--seconds", "120"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300).stdout
    rows = [line for line in out.splitlines() if line.startswith("D")]
    pairs = [r for r in rows if not all(side.strip().startswith("tests/")
                                        for side in r.split(" ", 1)[1].split(" ~ "))
             and not any(side.strip().split(":")[0] in GENERATED for side in r.split(" ", 1)[1].split(" ~ "))]
    assert not pairs, "\n".join(pairs)
