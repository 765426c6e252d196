"""The import graph: predict stays free of the model families and of Lightning, with no circles."""

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


def test_predict_is_in_no_import_cycle_and_does_not_reach_model_families() -> None:
    graph = import_graph()
    assert graph.has_edge("medsent.ensemble", "medsent.predict")  # the graph sees lazy imports
    assert graph.has_edge("medsent.cli.train", "medsent.api") and graph.number_of_edges() > 50
    cycles = [c for c in nx.strongly_connected_components(graph) if "medsent.predict" in c and len(c) > 1]
    assert not cycles, f"medsent.predict sits in an import cycle: {cycles}"
    reach = nx.descendants(graph, "medsent.predict")
    for family in ("medsent.ensemble", "medsent.neural.infer", "medsent.neural.onnx", "medsent.models.svm"):
        assert family not in reach, f"predict imports {family}; it should go through the registry"


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
