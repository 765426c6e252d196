"""The import graph: floors that import only downward, no circles, and a light ``predict``."""

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> nx.DiGraph:
    """Every medsent-to-medsent import, module level and inside functions alike."""
    graph = nx.DiGraph()
    for path in (SRC / "medsent").rglob("*.py"):
        mod = module_name(path)
        graph.add_node(mod)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                file = SRC / target.replace(".", "/")
                is_module = file.with_suffix(".py").exists() or (file / "__init__.py").exists()
                if target.startswith("medsent") and is_module:
                    graph.add_edge(mod, target)
    return graph


# The package's floors, bottom first. A module imports from its own floor and those below it, never
# from above: what the floors share goes down, what uses them goes up.
FLOORS = ("core", "data", "models", "neural", "inference", "evaluation", "training", "interfaces")


def floor_of(module: str) -> int:
    parts = module.split(".")
    assert (len(parts) > 1 and parts[1] in FLOORS) or module in ("medsent", "medsent._version"), module
    return FLOORS.index(parts[1]) if len(parts) > 1 and parts[1] in FLOORS else -1


def test_the_graph_sees_lazy_imports() -> None:
    graph = import_graph()
    assert graph.has_edge("medsent.inference.loaders", "medsent.inference.neural")  # inside a function
    assert graph.has_edge("medsent.interfaces.cli.train", "medsent.interfaces.api")
    assert graph.number_of_edges() > 200


def test_every_module_sits_on_a_floor_and_imports_only_from_its_floor_or_below() -> None:
    """``medsent`` itself is the public face and re-exports the Python API from the top floor."""
    graph = import_graph()
    upward = [
        f"{a} -> {b}"
        for a, b in graph.edges
        if a != "medsent" and b != "medsent._version" and floor_of(b) > floor_of(a)
    ]
    assert not upward, f"imports from a higher floor: {upward}"


def test_predict_loads_no_model_family_until_a_run_is_loaded() -> None:
    """Loaders import their family's code when a run of it is loaded: ``predict --text`` on an SVM
    never starts PyTorch."""
    heavy = (
        "torch",
        "lightning",
        "sklearn",
        "medsent.models.svm",
        "medsent.inference.neural",
        "medsent.inference.ensemble",
        "medsent.training.fit",
    )
    code = (
        "import sys, medsent.inference.predict, medsent.inference.loaders; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_medsent_is_light() -> None:
    code = "import sys, medsent; print(sorted(m for m in ('torch', 'lightning', 'sklearn', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_package_has_no_import_circles() -> None:
    """No module reaches itself through its imports, lazy ones included: each folder depends only on
    those below it, so a module can be read, tested and moved without dragging in its callers."""
    graph = import_graph()
    circles = sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)
    assert not circles, f"import circles: {circles}"
