"""Features built on the estimators use their documented interface only.

:mod:`sknet.transfer`, :mod:`sknet.torch_interop`, :func:`sknet.summary`, the training
history display, :mod:`sknet.timeseries` and the examples may not read or set an
estimator's (or a network's) private attributes: every ``obj._name`` they write is
either on ``self`` / ``cls`` (their own classes' internals) or one of the few
scikit-learn conventions listed below. (:mod:`sknet.persistence` reads the fitted state
each class *declares* in ``_saved_state``; that declaration is its interface.)
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FEATURES = [
    "sknet/transfer.py",
    "sknet/torch_interop.py",
    "sknet/_summary.py",
    "sknet/_display.py",
    "sknet/timeseries.py",
]
EXAMPLES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.py"))
#: scikit-learn's own estimator protocol, used on any estimator
ALLOWED = {"_validate_params", "_get_param_names", "_more_tags"}


def private_accesses(path):
    """``(line, 'owner._name')`` of each private attribute access not on self/cls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__") or name in ALLOWED:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        found.append((node.lineno, f"{ast.unparse(owner)}.{name}"))
    return found


@pytest.mark.parametrize("relpath", FEATURES + EXAMPLES)
def test_no_private_attribute_access(relpath):
    assert private_accesses(ROOT / relpath) == []


def test_the_check_sees_private_access(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f(est, self):\n"
        "    self._ok = est._validate_params()\n"
        "    return est._network.theta, est.network_._layout\n"
    )
    assert sorted(text for _, text in private_accesses(probe)) == [
        "est._network",
        "est.network_._layout",
    ]
