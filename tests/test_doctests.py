"""The examples in sknet's docstrings and in the user guide run and print what they show."""

import doctest
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import sknet

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
DOCS = Path(__file__).resolve().parents[1] / "docs"
# modules whose examples need an optional dependency: skipped (not failed) without it
OPTIONAL = {
    "sknet.torch_interop": "torch",
    "sknet.dask": "distributed",
    "sknet.onnx": "skl2onnx",  # and onnx, onnxruntime: the extra 'onnx' installs all three
}


def _modules():
    names = ["sknet"]
    for info in pkgutil.walk_packages(sknet.__path__, prefix="sknet."):
        names.append(info.name)
    return sorted(names)


def _public_objects():
    """The names users import from ``sknet`` and its public modules (their ``__all__``,
    the names the API reference documents): each needs a runnable example.

    (Every docstring example anywhere in the package is run by ``test_module_doctests``.)
    """
    objects = {}
    modules = [sknet] + [
        importlib.import_module(f"sknet.{info.name}")
        for info in pkgutil.iter_modules(sknet.__path__)
        if not info.name.startswith("_") and info.name != "kernels"
    ]
    for module in modules:
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if callable(obj) and id(obj) not in objects:
                objects[id(obj)] = (f"{module.__name__}.{name}", obj)
    return list(objects.values())


def _run(tests, name):
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} doctest(s) failed\n" + "".join(report)
    return result.attempted


@pytest.fixture(autouse=True)
def _agg_backend():
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("module_name", _modules())
def test_module_doctests(module_name):
    if module_name in OPTIONAL:
        pytest.importorskip(OPTIONAL[module_name])
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    if not tests:
        pytest.skip(f"{module_name} has no doctests")
    _run(tests, module_name)


@pytest.mark.parametrize("qualname, obj", _public_objects(), ids=lambda v: str(v)[:40])
def test_public_names_have_a_doctest_example(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    assert "Examples\n--------" in doc, f"{qualname} has no Examples section"
    assert ">>>" in doc, f"{qualname}'s Examples section has no doctest"


def _guide_pages():
    if not DOCS.is_dir():
        return []
    return sorted(
        p
        for p in DOCS.rglob("*.rst")
        if "_build" not in p.parts
        and "auto_examples" not in p.parts
        and "gen_modules" not in p.parts
        and ">>>" in p.read_text(encoding="utf-8")
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("page", _guide_pages(), ids=lambda p: p.name)
def test_user_guide_doctests(page):
    text = page.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(text, {}, page.name, str(page), 0)
    assert _run([test], page.name) > 0
