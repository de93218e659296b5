"""Private names of scikit-learn, joblib and numba are used in ``sknet/_compat.py`` only."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sknet"
THIRD_PARTY = ("sklearn", "joblib", "numba", "scipy", "numpy", "threadpoolctl")


def _private_uses(path):
    """(line, text) of every private third-party import or ``_skip_test`` use in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] in THIRD_PARTY:
                names = [a.name for a in node.names]
                if any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names):
                    found.append((node.lineno, f"from {node.module} import {', '.join(names)}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in THIRD_PARTY and any(p.startswith("_") for p in parts):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.Attribute) and node.attr == "_skip_test":
            found.append((node.lineno, "._skip_test"))
    return found


def test_private_imports_live_in_compat_only():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_compat.py" and path.parent == PACKAGE:
            continue
        uses = _private_uses(path)
        if uses:
            offenders[str(path.relative_to(PACKAGE))] = uses
    assert not offenders, f"private third-party names outside sknet/_compat.py: {offenders}"


def test_the_check_finds_a_private_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from sklearn.utils._param_validation import Interval\n"
        "from sklearn.base import _fit_context, clone\n"
        "import numba.core.registry\n"
        "from sklearn.base import clone\n"
    )
    assert [line for line, _ in _private_uses(probe)] == [1, 2]


@pytest.mark.parametrize(
    "name",
    [
        "fit_context",
        "check_sample_weight",
        "check_partial_fit_first_call",
        "Interval",
        "StrOptions",
        "Options",
        "HasMethods",
        "validate_params",
        "check_matplotlib_support",
    ],
)
def test_compat_names_resolve(name):
    from sknet import _compat

    assert callable(getattr(_compat, name))
