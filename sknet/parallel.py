"""Thread control, kernel warm-up and worker settings for running sknet in parallel.

sknet's kernels run on numba's thread pool and its matrix products on BLAS (OpenBLAS,
one copy inside numpy and one inside scipy). By default both use every core of the
machine. That is right for one process training one model, and wrong as soon as
several models train at once (joblib's ``n_jobs``, Dask workers): ``k`` processes with
``c`` threads each on ``c`` cores oversubscribe the machine ``k``-fold.

This module gives one knob for both pools:

* :func:`set_num_threads` / :func:`get_num_threads` and the context manager
  :func:`threadpool_limits`, for code running in the current process;
* :func:`worker_env`, the environment variables that cap the pools of a *new* worker
  process (a Dask worker, a batch job) before it starts;
* :func:`warm_up`, which compiles sknet's kernels once (or loads them from numba's
  on-disk cache) so the first real fit of a fresh process does not pay for it;
* :func:`cache_info`, where the compiled kernels are cached, and :func:`kernel_stats`,
  how many kernels this process compiled or loaded from that cache.

numba's thread count is per Python thread: :func:`set_num_threads` changes it for the
calling thread only (threads started later begin with the pool size,
``NUMBA_NUM_THREADS``). The BLAS limit is process-wide. To cap every thread of a process,
start the process with :func:`worker_env`.

Within these limits each fit chooses its own count (one thread for small problems, the
faster of one and all for larger ones, measured as it trains) and restores the settings
when it ends; see "Scaling out" in the documentation. The first fit of a kind of model in
a process compiles its kernels under a lock shared with the other processes using the
same numba cache, so that concurrent workers compile once between them.
"""

import os
import time
import warnings

import numba
import numpy as np

# the thread-pool primitives live in a leaf module that the estimators import too
from ._compat import dispatcher_cache_counts
from ._threads import _blas_controller, _check_n_threads, _cpu_count, _pool_size

__all__ = [
    "cache_info",
    "get_num_threads",
    "kernel_stats",
    "set_num_threads",
    "threadpool_limits",
    "warm_up",
    "worker_env",
]

#: environment variables that size the thread pools of a process at start-up
THREAD_ENV_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def get_num_threads():
    """Number of threads sknet's kernels use when called from this thread.

    Returns
    -------
    n_threads : int
        numba's thread count for the calling thread (at most ``NUMBA_NUM_THREADS``).

    See Also
    --------
    set_num_threads : Change it.

    Examples
    --------
    >>> import numba, sknet
    >>> 1 <= sknet.get_num_threads() <= numba.config.NUMBA_NUM_THREADS
    True
    """
    return int(numba.get_num_threads())


def set_num_threads(n_threads):
    """Set how many threads sknet's kernels and matrix products use.

    Sets numba's thread count for the calling thread and the BLAS thread count of the
    whole process (numpy's and scipy's OpenBLAS, and OpenMP libraries threadpoolctl
    finds).

    Parameters
    ----------
    n_threads : int or None
        Number of threads, at least 1 and at most ``NUMBA_NUM_THREADS`` (the pool size
        numba starts with, all cores by default). None restores all of them.

    See Also
    --------
    threadpool_limits : The same as a context manager that restores the previous values.
    worker_env : Cap the pools of a new process, every thread included.

    Notes
    -----
    numba keeps one thread count per Python thread: threads started after this call
    (for example by joblib's threading backend or a Dask worker) begin with all
    ``NUMBA_NUM_THREADS``. Start worker processes with :func:`worker_env` to cap them.

    Examples
    --------
    >>> import sknet
    >>> with sknet.threadpool_limits(None):  # restores the current settings on exit
    ...     sknet.set_num_threads(1)
    ...     sknet.get_num_threads()
    1
    """
    n = _check_n_threads(n_threads, upper=_pool_size())
    numba.set_num_threads(_pool_size() if n is None else n)
    _blas_controller().limit(limits=_cpu_count() if n is None else n)


class threadpool_limits:
    """Context manager limiting sknet's threads, restoring the previous values on exit.

    Parameters
    ----------
    n_threads : int or None
        As in :func:`set_num_threads`: numba threads of the calling thread and BLAS
        threads of the process. None means all cores.

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import MLPClassifier, threadpool_limits, get_num_threads
    >>> X = np.random.default_rng(0).normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
    >>> with threadpool_limits(1):
    ...     clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    ...     get_num_threads()
    1
    """

    def __init__(self, n_threads):
        self.n_threads = n_threads

    def __enter__(self):
        n = _check_n_threads(self.n_threads, upper=_pool_size())
        self._numba_before = get_num_threads()
        self._blas = _blas_controller()
        self._limiter = self._blas.limit(limits=_cpu_count() if n is None else n)
        numba.set_num_threads(_pool_size() if n is None else n)
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self._numba_before)
        self._limiter.restore_original_limits()
        return False


def worker_env(n_threads=1, cache_dir=None):
    """Environment variables that cap the thread pools of a new worker process.

    The variables must be in the process's environment before it imports numba or
    numpy: pass them to ``subprocess`` (``env={**os.environ, **worker_env(1)}``), export
    them in the job script that starts ``dask worker``, or, for a ``LocalCluster``, use
    :func:`sknet.dask.worker_config`, which puts them in Dask's pre-spawn environment.
    (``LocalCluster(env=...)`` is applied after a worker has re-imported the main
    script, too late if that script imports sknet.) Every thread of that process, a Dask
    worker's task threads included, then uses at most ``n_threads`` numba and BLAS
    threads.

    Parameters
    ----------
    n_threads : int, default=1
        Threads per worker process. On one machine, ``cores // (n_workers *
        threads_per_worker)`` avoids oversubscription; 1 is right when the workers'
        task threads already use every core (Dask's own default for BLAS).
    cache_dir : str or path-like, default=None
        Sets ``NUMBA_CACHE_DIR`` so every worker reads and writes compiled kernels
        there: needed only when sknet is installed read-only *and* the workers do not
        share a home directory (numba otherwise falls back to ``~/.cache``).

    Returns
    -------
    env : dict of str to str

    Examples
    --------
    >>> from sknet.parallel import worker_env
    >>> worker_env(2)["NUMBA_NUM_THREADS"]
    '2'
    >>> sorted(worker_env(1, cache_dir="/tmp/numba-cache"))
    ['MKL_NUM_THREADS', 'NUMBA_CACHE_DIR', 'NUMBA_NUM_THREADS', 'OMP_NUM_THREADS',
     'OPENBLAS_NUM_THREADS']
    """
    n = _check_n_threads(n_threads)
    if n is None:
        raise ValueError("worker_env needs an explicit n_threads >= 1.")
    env = dict.fromkeys(THREAD_ENV_VARS, str(n))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = os.fspath(cache_dir)
    return env


def cache_info():
    """Where numba caches sknet's compiled kernels in this process.

    Returns
    -------
    info : dict
        ``enabled`` (False when ``SKNET_NUMBA_CACHE=0``), ``path`` (the cache
        directory numba chose: next to the sources when writable, else
        ``NUMBA_CACHE_DIR`` or the per-user cache), ``writable`` and ``n_files``
        (cache files of sknet's kernels found there).

    Examples
    --------
    >>> from sknet.parallel import cache_info
    >>> sorted(cache_info())
    ['enabled', 'n_files', 'path', 'writable']
    """
    from . import _config
    from .kernels import dense

    path = getattr(dense.take_rows._cache, "cache_path", None)
    info = {
        "enabled": bool(_config.CACHE) and path is not None,
        "path": path,
        "writable": False,
        "n_files": 0,
    }
    if info["enabled"] and os.path.isdir(path):
        info["writable"] = os.access(path, os.W_OK)
        info["n_files"] = sum(name.endswith((".nbi", ".nbc")) for name in os.listdir(path))
    return info


def kernel_stats():
    """How this process obtained sknet's compiled kernels so far.

    Counts over the numba kernels of every loaded ``sknet.kernels`` module.

    Returns
    -------
    stats : dict
        ``signatures`` (compiled specialisations in memory), ``cache_hits`` (loaded
        from the on-disk cache) and ``cache_misses`` (compiled here: the on-disk cache
        was cold, stale or off).

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import MLPRegressor
    >>> from sknet.parallel import kernel_stats
    >>> X = np.linspace(0, 1, 20).reshape(-1, 1)
    >>> _ = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, X.ravel())
    >>> stats = kernel_stats()
    >>> stats["signatures"] > 0  # the fit's kernels are in memory, compiled or loaded
    True
    """
    import sys

    from numba.extending import is_jitted

    stats = {"signatures": 0, "cache_hits": 0, "cache_misses": 0}
    for name, module in list(sys.modules.items()):
        if not name.startswith("sknet.kernels.") or module is None:
            continue
        for obj in vars(module).values():
            if is_jitted(obj) and obj.__module__ == name:
                hits, misses = dispatcher_cache_counts(obj)
                stats["signatures"] += len(obj.signatures)
                stats["cache_hits"] += hits
                stats["cache_misses"] += misses
    return stats


def _default_warm_up_fits(dtypes):
    """Tiny fits exercising every kernel signature of the MLP family for ``dtypes``."""
    from ._mlp import MLPClassifier, MLPRegressor

    rng = np.random.RandomState(0)
    X = rng.normal(size=(24, 3))
    y_bin = (X[:, 0] > 0).astype(int)
    y_multi = np.digitize(X[:, 0], [-0.5, 0.5])
    y_reg = X @ np.array([1.0, -1.0, 0.5])
    for dtype in dtypes:
        Xd = X.astype(dtype)
        yield MLPClassifier((4,), max_iter=2, random_state=0), Xd, y_bin
        yield (
            MLPClassifier((4,), solver="sgd", dropout=0.1, max_iter=2, random_state=0),
            Xd,
            y_multi,
        )
        yield (
            MLPClassifier((4,), solver="lbfgs", activation="tanh", max_iter=2, random_state=0),
            Xd,
            y_multi,
        )
        yield (
            MLPRegressor(
                hidden_layer_sizes=(4,), activation="logistic", max_iter=2, random_state=0
            ),
            Xd,
            y_reg,
        )
        yield (
            MLPRegressor(
                loss="poisson", hidden_layer_sizes=(4,), solver="lbfgs", max_iter=2, random_state=0
            ),
            Xd,
            np.abs(y_reg),
        )


def warm_up(estimators=None, *, dtypes=(np.float64, np.float32)):
    """Compile sknet's kernels, or load them from numba's on-disk cache, now.

    A fresh process pays numba's compilation on its first fit (seconds) unless the
    kernels are already in the on-disk cache, in which case loading them still takes a
    fraction of a second. Calling this once per process (a Dask worker plugin does it
    at worker start-up, see :class:`sknet.dask.SknetWorkerPlugin`) moves that cost out
    of the first task; calling it once on a machine fills the cache for every later
    process.

    Parameters
    ----------
    estimators : list of (estimator, X, y) or None, default=None
        Fit a clone of each estimator on a few rows ``X, y`` (with ``max_iter=2``).
        Pass your own estimators and data to warm exactly the kernel signatures your
        job uses (input dtype, layer types). None fits small MLP classifiers and
        regressors covering sknet's MLP kernels for each of ``dtypes``.
    dtypes : sequence of dtype, default=(float64, float32)
        Input dtypes to warm with the default estimators.

    Returns
    -------
    seconds : float
        Wall time spent.

    Notes
    -----
    Before a grid search (``GridSearchCV(..., n_jobs=k)``), call it in the parent
    process with the search's estimator and a few rows of its data: the cache is then
    warm when the workers start, they load the kernels instead of compiling them, and
    the search's fit times do not include compilation.

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import MLPClassifier
    >>> from sknet.parallel import warm_up
    >>> X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> seconds = warm_up([(MLPClassifier((8,)), X, y)])  # the signatures of this job
    >>> seconds >= 0
    True
    """
    from sklearn.base import clone

    start = time.perf_counter()
    fits = _default_warm_up_fits(dtypes) if estimators is None else estimators
    for entry in fits:
        try:
            est, X, y = entry
        except (TypeError, ValueError):
            raise TypeError(
                f"warm_up expects a list of (estimator, X, y) tuples, got {type(entry).__name__}."
            ) from None
        est = clone(est)
        if "max_iter" in est.get_params():
            est.set_params(max_iter=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
            est.predict(X)
    return time.perf_counter() - start
