"""Thread-pool controls: the leaf the estimators and :mod:`sknet.parallel` share.

numba's pool size, the cores this process may use, the BLAS controller (both OpenBLAS
copies, numpy's and scipy's) and the one-BLAS-thread guard of the families whose
kernels call BLAS from inside numba's ``prange``. Imports nothing from sknet, so that
``_base`` can use it without importing :mod:`sknet.parallel` (which imports the
estimators for its warm-up).
"""

import os
from contextlib import contextmanager

import numba
import numpy as np


def _cpu_count():
    """Cores this process may run on (the affinity mask, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _pool_size():
    """Threads numba launched (or will launch) in this process: ``NUMBA_NUM_THREADS``."""
    return int(numba.config.NUMBA_NUM_THREADS)


def _check_n_threads(n_threads, upper=None, name="n_threads"):
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int or None, got {n_threads!r}.")
    n_threads = int(n_threads)
    if n_threads < 1:
        raise ValueError(f"{name} must be >= 1 (or None for all cores), got {n_threads}.")
    if upper is not None and n_threads > upper:
        raise ValueError(
            f"{name}={n_threads} exceeds the {upper} threads numba started in this process "
            f"(NUMBA_NUM_THREADS={upper}). Start the process with a larger NUMBA_NUM_THREADS "
            "to use more."
        )
    return n_threads


def _blas_controller():
    """A threadpoolctl controller that sees both OpenBLAS copies (numpy's and scipy's).

    scipy's OpenBLAS is loaded only when ``scipy.linalg`` is first imported (sknet's
    L-BFGS path imports it lazily); a limit set before that load would miss it.
    """
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS so the limit reaches it)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_BLAS_CONTROLLER = None


@contextmanager
def one_blas_thread():
    """Run BLAS single-threaded inside the block (the previous limits come back after).

    The recurrent and convolution kernels call small BLAS products from inside numba's
    ``prange``, one sample block per numba thread; a multi-threaded BLAS under them
    oversubscribes the cores (measured: 1.7-1.9x slower RNN epochs with 2 numba x 2 BLAS
    threads on 2 cores, 3-7x for ConvNets on a loaded machine). Results do not depend on
    it.
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = _blas_controller()
    with _BLAS_CONTROLLER.limit(limits=1, user_api="blas"):
        yield
