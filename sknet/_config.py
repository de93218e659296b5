"""Numba flags in one place.

Every kernel in :mod:`sknet.kernels` is compiled with the same, constant flags:

* ``cache=True`` so a warm process loads machine code from disk instead of compiling;
  set the environment variable ``SKNET_NUMBA_CACHE=0`` to turn the on-disk cache off.
* ``error_model='numpy'``: no Python-style division checks, so element-wise loops
  vectorise (worth about 20% on an MLP epoch on the project machine).
* ``nogil=True`` so kernels can run in threads (joblib's threading backend).

The flags are constants in the source on purpose: numba's on-disk cache does not key on
flags chosen at import time, so a flag read from the environment could silently reuse
machine code compiled with other flags. Only the cache switch is read from the
environment, and it changes where code comes from, not what it is.

Importing sknet sets no environment variable and no numba or OpenMP setting (it once set
``OMP_WAIT_POLICY=PASSIVE``, which slowed other libraries' OpenMP threads in the same
process and its children). Thread counts are chosen per fit, in :mod:`sknet._threads`.
"""

import os

import numba

__all__ = ["CACHE", "jit", "jit_parallel", "jit_reduce"]

CACHE = os.environ.get("SKNET_NUMBA_CACHE", "1") != "0"

_FLAGS = {"cache": CACHE, "nogil": True, "error_model": "numpy"}


def jit(func):
    """Compile ``func`` as a serial sknet kernel."""
    return numba.njit(**_FLAGS)(func)


def jit_parallel(func):
    """Compile ``func`` as a kernel that may use ``numba.prange``."""
    return numba.njit(parallel=True, **_FLAGS)(func)


def jit_reduce(func):
    """Compile a serial reduction kernel allowed to reassociate its sums.

    Only the order of additions changes (still one fixed order per compiled kernel, so
    results stay deterministic); this lets LLVM vectorise float sums.
    """
    return numba.njit(fastmath={"reassoc", "nsz"}, **_FLAGS)(func)
