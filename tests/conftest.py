"""Shared test configuration.

BLAS runs single-threaded during the tests: the suite uses tiny matrices, where
OpenBLAS's thread start-up and spinning dominate (scipy's L-BFGS-B on a 40 x 3 problem
is ~50x slower with two BLAS threads on a busy two-core machine). Numba's own thread
count is left alone (tests that depend on it set it explicitly), but its OpenMP
workers wait passively (see below).
"""

import os

# before numba (or anything else) starts an OpenMP runtime: idle OpenMP workers sleep
# instead of spinning. With the default (active) policy, a numba parallel kernel launched
# per mini-batch cost ~15 ms on the busy shared machine (a 60-epoch toy fit: 0.9 s with
# 2 threads vs 0.03 s with 1); with PASSIVE, 0.03 s at both counts. Results do not change.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402, F401  (loads scipy's OpenBLAS so the limit below reaches it)
from threadpoolctl import threadpool_limits  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def rng():
    """A fresh, seeded ``np.random.Generator`` for test data."""
    return np.random.default_rng(0)
