"""The package's imports form a DAG that flows one way: kernels <- layers <- core <- base
<- estimators <- features <- ``sknet/__init__``.

Every ``import`` and ``from ... import`` statement of every module is read with ``ast``,
at module level and inside functions alike (a function-level import is still a
dependency, only a hidden one).
"""

import ast
from pathlib import Path

import pytest

import sknet

PACKAGE = Path(sknet.__file__).parent

#: lowest first: a module may import from its own layer and the layers before it.
#: ``name.*`` covers a subpackage's modules.
LAYERS = [
    # thread-pool controls, numba flags, borrowed private names; import nothing from sknet
    ("leaves", {"sknet._config", "sknet._threads", "sknet._compat", "sknet._sequences"}),
    ("kernels", {"sknet.kernels", "sknet.kernels.*"}),
    ("layers", {"sknet._layers", "sknet._layers.*"}),
    # what the estimator base is built from. ``_summary`` sits here, not with the
    # features: ``BaseNetworkEstimator.summary`` calls it, and it reads estimators only
    # through their documented interface, importing nothing from sknet.
    # ``layers`` (the public layer specifications) builds ``_layers`` objects
    (
        "core",
        {
            "sknet._network",
            "sknet._solvers",
            "sknet._compile_lock",
            "sknet._progress",
            "sknet._summary",
            "sknet.layers",
        },
    ),
    ("base", {"sknet._base"}),
    ("estimators", {"sknet._mlp", "sknet._rnn", "sknet._convnet", "sknet._composable"}),
    # built on the estimators (``parallel`` fits MLPs for its warm-up)
    (
        "features",
        {
            "sknet.transfer",
            "sknet.persistence",
            "sknet.callbacks",
            "sknet.pretrained",
            "sknet.torch_interop",
            "sknet.onnx",
            "sknet.dask",
            "sknet.timeseries",
            "sknet.parallel",
            "sknet._display",
            "sknet.datasets",
            "sknet.datasets.*",
        },
    ),
    ("package", {"sknet"}),
]


def _module_name(path, package_dir):
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name, package_dir):
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    base = package_dir / rel
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def import_graph(package_dir=PACKAGE):
    """``{module: {(imported sknet module, line), ...}}`` for every module of the package."""
    graph = {}
    for path in sorted(package_dir.rglob("*.py")):
        name = _module_name(path, package_dir)
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                # ``from .kernels import conv`` imports the module sknet.kernels.conv
                targets = [
                    f"{source}.{alias.name}"
                    if _is_module(f"{source}.{alias.name}", package_dir)
                    else source
                    for alias in node.names
                ]
            else:
                continue
            edges |= {(t, node.lineno) for t in targets if t == "sknet" or t.startswith("sknet.")}
        edges.discard((name, 0))
        graph[name] = {(t, line) for t, line in edges if t != name}
    return graph


def layer_of(module):
    for rank, (_, members) in enumerate(LAYERS):
        for pattern in members:
            if module == pattern or (pattern.endswith(".*") and module.startswith(pattern[:-1])):
                return rank
    return None


def upward_imports(graph):
    """``[(module, imported module, line)]`` where a module imports from a higher layer."""
    return sorted(
        (src, dst, line)
        for src, edges in graph.items()
        for dst, line in edges
        if layer_of(dst) > layer_of(src)
    )


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    edges = {src: sorted({dst for dst, _ in out}) for src, out in graph.items()}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


GRAPH = import_graph()


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in GRAPH if layer_of(m) is None)
    assert not unplaced, f"add these modules to LAYERS in {__file__}: {unplaced}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_upward_imports(module):
    bad = [(dst, line) for src, dst, line in upward_imports({module: GRAPH[module]})]
    assert not bad, (
        f"{module} (layer {LAYERS[layer_of(module)][0]!r}) imports from higher layers: "
        + ", ".join(f"{dst} ({LAYERS[layer_of(dst)][0]!r}, line {line})" for dst, line in bad)
    )


def test_no_import_cycles():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_the_checks_catch_what_they_should(tmp_path):
    """An upward function-level import and a cycle are found (the checks can fail)."""
    pkg = tmp_path / "sknet"
    (pkg / "kernels").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from ._base import Base\n")
    (pkg / "kernels" / "__init__.py").write_text("")
    (pkg / "_base.py").write_text("def f():\n    from . import parallel\n")
    (pkg / "parallel.py").write_text("from ._mlp import MLP\nfrom .kernels import dense\n")
    (pkg / "kernels" / "dense.py").write_text("import numpy\n")
    (pkg / "_mlp.py").write_text("from ._base import Base\n")
    graph = import_graph(pkg)
    assert ("sknet.kernels.dense", 2) in graph["sknet.parallel"]
    assert upward_imports(graph) == [("sknet._base", "sknet.parallel", 2)]
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"sknet._base", "sknet.parallel", "sknet._mlp"}
