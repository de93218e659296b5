"""Results of all six estimators, float32 and float64, pinned from before a refactor.

``tests/data/pinned_predictions.npz`` holds the predictions, probabilities and
``transform`` outputs of fixed training runs (``tests/pinned_cases.py``). On the BLAS
build and CPU kind the file was made with, they must match bit for bit: a refactor of
the network core, the kernels or the estimators may not change a single result. Where
the BLAS kernel differs (another CPU), only a tolerance can hold.
"""

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg  # noqa: F401

from .pinned_cases import CASES, DTYPES, environment, run_case

# the pinned runs stop after a few iterations on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

PINNED = np.load(Path(__file__).parent / "data" / "pinned_predictions.npz")
SAME_ENVIRONMENT = str(PINNED["__environment__"]) == environment()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_unchanged(name, dtype):
    out = run_case(name, dtype)
    stored = sorted(k.rsplit("/", 1)[1] for k in PINNED.files if k.startswith(f"{name}/{dtype}/"))
    assert sorted(out) == stored
    for key, value in out.items():
        expected = PINNED[f"{name}/{dtype}/{key}"]
        assert value.dtype == expected.dtype and value.shape == expected.shape
        if SAME_ENVIRONMENT:
            np.testing.assert_array_equal(value, expected, err_msg=f"{name} {dtype} {key}")
        elif value.dtype.kind in "fc":  # pragma: no cover - another BLAS: rounding differs
            tol = 1e-6 if dtype == "float64" else 2e-3
            np.testing.assert_allclose(
                value, expected, rtol=tol, atol=tol, err_msg=f"{name} {dtype} {key}"
            )
