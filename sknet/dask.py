"""Scaling out: Dask workers ready for sknet, and out-of-core training.

Cluster tools (they need ``dask`` and ``distributed``: ``pip install "sknet[dask]"``):

* :func:`worker_config` starts worker processes with numba's and BLAS's thread pools
  capped at their share of the cores;
* :func:`setup_workers` (with :class:`SknetWorkerPlugin` and, for workers started
  uncapped, :class:`SknetNannyPlugin`) prepares a running cluster: thread limits, and
  sknet's compiled kernels loaded once per worker process, so model selection through
  joblib's Dask backend neither oversubscribes the machine nor compiles in its tasks;
  :func:`worker_report` shows the result;
* :func:`resilient_backend` is joblib's Dask backend made to survive losing a worker.

Out-of-core training: :func:`partial_fit_chunks` trains any estimator with
``partial_fit`` on data larger than memory by streaming row chunks of an ``np.memmap``,
a ``dask.array`` or any sliceable array; memory stays bounded by one chunk. It needs
numpy only (and dask for dask arrays).
"""

import asyncio
import mmap
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import check_random_state

from . import parallel
from ._compat import joblib_dask_backend
from ._threads import _blas_controller, _check_n_threads, _pool_size

try:
    from distributed.diagnostics.plugin import NannyPlugin, WorkerPlugin
except ImportError:  # pragma: no cover - exercised only without distributed
    NannyPlugin = WorkerPlugin = object
_JoblibDaskBackend = joblib_dask_backend() or object

__all__ = [
    "SknetNannyPlugin",
    "SknetWorkerPlugin",
    "partial_fit_chunks",
    "resilient_backend",
    "setup_workers",
    "worker_config",
    "worker_report",
]

#: default chunk budget when neither ``chunk_size`` nor dask chunks say otherwise
DEFAULT_CHUNK_BYTES = 64 * 2**20


def _require_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "sknet.dask's worker setup needs dask and distributed: pip install 'sknet[dask]'."
        ) from exc


def _worker_setup(n_threads, estimators):
    """Cap BLAS (process-wide) and numba (this thread), then warm sknet's kernels."""
    import numba

    _blas_controller().limit(limits=n_threads)
    numba.set_num_threads(min(n_threads, _pool_size()))
    return parallel.warm_up(estimators)


def _worker_report():
    """Thread and cache state of the process it runs in (run on a worker's task thread)."""
    from threadpoolctl import threadpool_info

    return {
        "numba_pool": _pool_size(),
        "numba_threads": parallel.get_num_threads(),
        "blas_threads": max(
            (d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"), default=None
        ),
        "cache": parallel.cache_info(),
        "kernels": parallel.kernel_stats(),
    }


class SknetWorkerPlugin(WorkerPlugin):
    """Dask worker plugin: sknet's thread limits and warm kernels on every worker.

    Registered on a client, it runs on every current worker and on every worker that
    joins or restarts later. It limits the worker process's BLAS threads to
    ``n_threads``, warns if numba's pool is larger (numba's pool size is fixed when the
    process starts: see :func:`worker_config`), and loads sknet's
    compiled kernels with :func:`sknet.parallel.warm_up`, so no task pays numba's
    compilation or cache loading.

    Parameters
    ----------
    n_threads : int, default=1
        numba and BLAS threads per worker process.
    warm_up : bool, default=True
        Load (or compile, then cache) sknet's kernels when the worker starts.
    estimators : list of (estimator, X, y) or None, default=None
        What to fit for the warm-up, see :func:`sknet.parallel.warm_up`.

    Attributes
    ----------
    warm_up_seconds_ : float or None
        On the worker, time the warm-up took (None before setup or without warm-up).

    Examples
    --------
    >>> from sknet.dask import SknetWorkerPlugin
    >>> plugin = SknetWorkerPlugin(n_threads=1)
    >>> plugin.warm_up_seconds_ is None  # set on each worker by its setup
    True
    >>> client.register_plugin(plugin)  # doctest: +SKIP
    """

    name = "sknet-setup"

    def __init__(self, n_threads=1, *, warm_up=True, estimators=None):
        _require_distributed()
        self.n_threads = _check_n_threads(n_threads)
        if self.n_threads is None:
            raise ValueError("SknetWorkerPlugin needs an explicit n_threads >= 1.")
        self.warm_up = bool(warm_up)
        self.estimators = estimators
        self.warm_up_seconds_ = None

    async def setup(self, worker):
        pool = _pool_size()
        if pool > self.n_threads:
            warnings.warn(
                f"Dask worker {worker.address}: numba started {pool} threads but "
                f"n_threads={self.n_threads}; its task threads will oversubscribe the "
                "cores. Start the cluster inside "
                "dask.config.set(sknet.dask.worker_config(n_threads)), or call "
                "sknet.dask.setup_workers(client, n_threads), which restarts it capped.",
                RuntimeWarning,
                stacklevel=2,
            )
        estimators = self.estimators if self.warm_up else []
        # off the event loop: the worker keeps answering the scheduler meanwhile
        loop = asyncio.get_running_loop()
        seconds = await loop.run_in_executor(None, _worker_setup, self.n_threads, estimators)
        self.warm_up_seconds_ = seconds if self.warm_up else None


class SknetNannyPlugin(NannyPlugin):
    """Dask nanny plugin: start worker processes with numba's and BLAS's pools capped.

    numba sizes its thread pool once, from ``NUMBA_NUM_THREADS``, when it is first
    imported; in a Dask worker that can happen before the nanny's ``env`` is applied
    (a spawned worker re-imports the client's main script). This plugin therefore puts
    :func:`sknet.parallel.worker_env` into the nanny's *pre-spawn* environment, which
    the new process inherits from its first instruction, and restarts the worker.

    Parameters
    ----------
    n_threads : int, default=1
        numba and BLAS threads per worker process.
    cache_dir : str or path-like, default=None
        Shared ``NUMBA_CACHE_DIR`` for the workers, see :func:`sknet.parallel.worker_env`.
    restart : bool, default=True
        Restart running workers so the environment takes effect.

    Notes
    -----
    Like Dask's own pre-spawn settings (``OMP_NUM_THREADS=1``), the variables are set in
    the nanny's process before each spawn; with a ``LocalCluster`` that is the client's
    process, whose already-running numba is not affected.

    Examples
    --------
    >>> from sknet.dask import SknetNannyPlugin
    >>> plugin = SknetNannyPlugin(n_threads=1)
    >>> plugin.environ["NUMBA_NUM_THREADS"]
    '1'
    >>> client.register_plugin(plugin)  # restarts the workers  # doctest: +SKIP
    """

    name = "sknet-environ"

    def __init__(self, n_threads=1, *, cache_dir=None, restart=True):
        _require_distributed()
        self.environ = parallel.worker_env(n_threads, cache_dir=cache_dir)
        self.restart = bool(restart)

    def setup(self, nanny):
        nanny.pre_spawn_env.update(self.environ)
        nanny.env.update(self.environ)


def setup_workers(client, n_threads=1, *, warm_up=True, estimators=None, warm_locally=True):
    """Prepare a cluster's workers for sknet: thread limits and warm kernels.

    1. Optionally warms sknet's kernels in this process first, so that the on-disk numba
       cache is full before workers start loading from it (on one machine, or with a
       shared ``NUMBA_CACHE_DIR``, no worker then compiles anything).
    2. If a worker's numba pool is larger than ``n_threads``, registers
       :class:`SknetNannyPlugin`, which restarts the workers with
       :func:`sknet.parallel.worker_env` (numba's pool size can only be set before it
       starts; workers without a nanny raise instead). Starting the cluster inside
       ``dask.config.set(sknet.dask.worker_config(n_threads))`` avoids the restart.
    3. Registers :class:`SknetWorkerPlugin` on all workers, current and future.

    Parameters
    ----------
    client : distributed.Client
    n_threads : int, default=1
        numba and BLAS threads per worker process. With ``w`` workers of ``t`` task
        threads on ``c`` cores, ``max(1, c // (w * t))`` avoids oversubscription.
    warm_up : bool, default=True
        Load the kernels on each worker at setup.
    estimators : list of (estimator, X, y) or None, default=None
        What to fit for the warm-up, see :func:`sknet.parallel.warm_up`.
    warm_locally : bool, default=True
        Warm the kernels in this process too (fills the shared on-disk cache).

    Returns
    -------
    report : dict
        Per worker address, what :func:`worker_report` returns: threads as a task sees
        them, the kernel cache, kernels compiled or loaded, warm-up time.

    Examples
    --------
    Starting worker processes needs a script guarded by ``if __name__ == "__main__":``,
    so this example is not run by the doctests:

    >>> import dask, sknet.dask  # doctest: +SKIP
    >>> from distributed import Client, LocalCluster  # doctest: +SKIP
    >>> with dask.config.set(sknet.dask.worker_config(1)):  # doctest: +SKIP
    ...     cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1")
    >>> client = Client(cluster)  # doctest: +SKIP
    >>> report = sknet.dask.setup_workers(client, n_threads=1)  # doctest: +SKIP
    """
    _require_distributed()
    plugin = SknetWorkerPlugin(n_threads, warm_up=warm_up, estimators=estimators)
    if warm_locally and warm_up:
        parallel.warm_up(estimators)
    pools = client.run(_pool_size)
    if any(pool > plugin.n_threads for pool in pools.values()):
        has_nannies = all(
            info.get("nanny") for info in client.scheduler_info(n_workers=-1)["workers"].values()
        )
        if not has_nannies:
            raise RuntimeError(
                f"Workers started numba with {max(pools.values())} threads and cannot be "
                f"restarted (no nanny) to use n_threads={plugin.n_threads}. Start them "
                "with the variables of sknet.parallel.worker_env(n_threads) in their "
                "environment (or inside dask.config.set(sknet.dask.worker_config(n)))."
            )
        # the nannies restart their workers with the capped environment
        client.register_plugin(SknetNannyPlugin(plugin.n_threads))
    client.register_plugin(plugin)
    return worker_report(client)


def worker_config(n_threads=1, cache_dir=None):
    """Dask configuration that starts worker processes with capped thread pools.

    Use it around the creation of a ``LocalCluster`` (or in the Dask configuration of
    the machines that run ``dask worker``)::

        with dask.config.set(sknet.dask.worker_config(1)):
            cluster = LocalCluster(n_workers=2, threads_per_worker=1)

    Parameters
    ----------
    n_threads : int, default=1
        numba and BLAS threads per worker process.
    cache_dir : str or path-like, default=None
        Shared ``NUMBA_CACHE_DIR``, see :func:`sknet.parallel.worker_env`.

    Returns
    -------
    config : dict
        Keys ``distributed.nanny.pre-spawn-environ.<VARIABLE>``, for ``dask.config.set``.

    Examples
    --------
    >>> from sknet.dask import worker_config
    >>> config = worker_config(1)
    >>> config["distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS"]
    '1'
    """
    env = parallel.worker_env(n_threads, cache_dir=cache_dir)
    return {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in env.items()}


class _ResilientDaskBackend(_JoblibDaskBackend):
    """joblib's Dask backend without per-call scattering of arguments.

    joblib's backend scatters every argument over 1 kB (the data, and the train / test
    indices of each CV split) to *one* worker. Scattered data cannot be recomputed, so
    when that worker dies every task needing it is cancelled and the search fails
    (dask/distributed#3149). Here arguments travel inside the task instead, so the
    scheduler can rerun a lost task elsewhere. Data named in ``scatter`` becomes the
    result of a task that holds it (``client.submit``), copied to every worker: a
    scattered copy cannot be recomputed, and replicas alone do not last (Dask's active
    memory manager drops extra replicas every few seconds: ``ReduceReplicas``, on by
    default, does not know about ``replicate``; dask/distributed#6578). A search here
    once failed with ``FutureCancelledError`` that way. A task's result is recomputed
    from the task (which the scheduler keeps) when its last copy is lost.
    """

    def __init__(self, *args, scatter=None, **kwargs):
        super().__init__(*args, scatter=None, **kwargs)
        if scatter is not None and not isinstance(scatter, (list, tuple)):
            raise TypeError(f"scatter must be a list or tuple, got {type(scatter).__name__}")
        if scatter:
            self._scatter = list(scatter)  # keeps the objects, so their ids stay unique
            self.data_futures = {
                id(x): self.client.submit(_same, x, pure=False) for x in self._scatter
            }
            from distributed import wait

            futures = list(self.data_futures.values())
            wait(futures)
            self.client.replicate(futures)  # one copy per worker to start with

    def start_call(self):
        super().start_call()
        self.call_data_futures = None  # joblib then passes arguments by value

    def stop_call(self):
        self.call_data_futures = {}
        super().stop_call()

    def __reduce__(self):
        return (_ResilientDaskBackend, ())


def _same(x):
    """The task whose result is ``x`` (see ``_ResilientDaskBackend``)."""
    return x


def resilient_backend(scatter=None, client=None, **kwargs):
    """joblib's Dask backend, made to survive the loss of a worker.

    A drop-in for ``joblib.parallel_backend("dask")`` around a ``GridSearchCV`` or
    ``cross_validate`` call. With joblib's own backend, killing a worker in the middle
    of a search cancels it (``FutureCancelledError: ... cancelled for reason: already
    forgotten``): joblib scatters each large argument to a single worker, and scattered
    data cannot be recomputed. This backend sends arguments inside the tasks and makes
    the arrays named in ``scatter`` the results of tasks that hold them (recomputed
    when lost), copied to every worker, so Dask reschedules the lost tasks and the
    search completes.

    Parameters
    ----------
    scatter : list of objects, default=None
        Large inputs used by every task (``[X, y]``), copied once to every worker
        (and kept by the scheduler inside the task that makes them: Dask may warn of
        a large graph). Others travel with each task, so pass the data here when it
        is more than a few megabytes.
    client : distributed.Client, default=None
        The client to submit to; None uses the current default client.
    **kwargs
        Passed to :func:`joblib.parallel_backend` (e.g. ``n_jobs``).

    Returns
    -------
    context manager
        As :func:`joblib.parallel_backend`.

    Examples
    --------
    >>> with sknet.dask.resilient_backend(scatter=[X, y]):  # doctest: +SKIP
    ...     search.fit(X, y)
    """
    _require_distributed()
    import joblib

    if _JoblibDaskBackend is object:  # pragma: no cover - joblib without its dask module
        raise ImportError("resilient_backend needs joblib's Dask backend (joblib >= 1.3).")
    backend = _ResilientDaskBackend(scatter=scatter, client=client)
    return joblib.parallel_backend(backend, **kwargs)


def _plugin_seconds(dask_worker):
    registered = dask_worker.plugins.get(SknetWorkerPlugin.name)
    return getattr(registered, "warm_up_seconds_", None)


def worker_report(client):
    """Thread and cache state of every worker, as seen from one of its task threads.

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    report : dict
        Per worker address: ``numba_pool`` (``NUMBA_NUM_THREADS`` of the process),
        ``numba_threads`` and ``blas_threads`` (what a task's kernels and matrix
        products use), ``cache`` (:func:`sknet.parallel.cache_info`), ``kernels``
        (:func:`sknet.parallel.kernel_stats`: compiled vs loaded from the cache) and
        ``warm_up_seconds`` (from :class:`SknetWorkerPlugin`, None without it).

    Examples
    --------
    A one-worker cluster inside this process (no worker processes to start):

    >>> from distributed import Client
    >>> from sknet.dask import worker_report
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1,
    ...             dashboard_address=None) as client:
    ...     report = worker_report(client)
    >>> [(sorted(r), r["warm_up_seconds"]) for r in report.values()]
    [(['blas_threads', 'cache', 'kernels', 'numba_pool', 'numba_threads',
       'warm_up_seconds'], None)]
    """
    _require_distributed()
    seconds = client.run(_plugin_seconds)
    futures = {
        addr: client.submit(_worker_report, workers=[addr], allow_other_workers=False, pure=False)
        for addr in seconds
    }
    report = {addr: fut.result() for addr, fut in futures.items()}
    for addr, rep in report.items():
        rep["warm_up_seconds"] = seconds[addr]
    return report


# ---------------------------------------------------------------------- out of core
def _is_dask_collection(a):
    try:
        from dask.base import is_dask_collection
    except ImportError:
        return False
    return is_dask_collection(a)


def _n_rows(a, name):
    shape = getattr(a, "shape", None)
    if shape is None:
        raise TypeError(
            f"{name} must be an array with a shape (numpy array, np.memmap, dask array), "
            f"got {type(a).__name__}."
        )
    if len(shape) == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar.")
    n = shape[0]
    if n is None or (isinstance(n, float) and np.isnan(n)):
        raise ValueError(
            f"{name} is a dask array with unknown chunk sizes; call "
            f"{name}.compute_chunk_sizes() first."
        )
    return int(n)


def _chunk_bounds(X, n_rows, chunk_size):
    """Row boundaries ``[(start, stop), ...]`` covering ``range(n_rows)``."""
    if chunk_size is None:
        if _is_dask_collection(X):
            sizes = X.chunks[0]
            if any(np.isnan(s) for s in sizes):
                raise ValueError(
                    "X is a dask array with unknown chunk sizes; call "
                    "X.compute_chunk_sizes() first."
                )
            edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
            return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        row_bytes = int(np.prod(X.shape[1:], dtype=np.int64)) * np.dtype(X.dtype).itemsize
        chunk_size = max(1, DEFAULT_CHUNK_BYTES // max(row_bytes, 1))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, Integral):
        raise TypeError(f"chunk_size must be a positive int or None, got {chunk_size!r}.")
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    return [(a, min(a + int(chunk_size), n_rows)) for a in range(0, n_rows, int(chunk_size))]


def _materialize(*parts):
    """Load row slices into memory (one ``dask.compute`` for all dask parts)."""
    lazy = [i for i, p in enumerate(parts) if p is not None and _is_dask_collection(p)]
    out = list(parts)
    if lazy:
        import dask

        for i, value in zip(lazy, dask.compute(*[parts[i] for i in lazy])):
            out[i] = value
    return [None if p is None else np.asarray(p) for p in out]


def _find_mmap(a):
    """The ``mmap.mmap`` a (possibly sliced) ``np.memmap`` reads from, if it is shared."""
    if not isinstance(a, np.memmap) or getattr(a, "mode", None) == "c":
        # copy-on-write mappings hold private pages: dropping them would lose data
        return None
    base = a
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


class _PageReleaser:
    """Drops the pages of consumed rows of a memmap from this process's resident set.

    Pages of a read-only or shared file mapping stay in the kernel's page cache (they
    are reclaimable, and re-read on demand), but while mapped they count in the
    process's RSS; without this, RSS grows to the file size over an epoch.
    """

    def __init__(self, X):
        self.mm = _find_mmap(X) if hasattr(mmap, "MADV_DONTNEED") else None
        if self.mm is None:
            return
        self.X = X
        buf = np.frombuffer(self.mm, dtype=np.uint8)
        self.mm_addr = buf.ctypes.data
        self.mm_len = buf.size
        del buf

    def release(self, start, stop):
        if self.mm is None:
            return
        rows = self.X[start:stop]
        if rows.flags.c_contiguous and rows.size:
            first = rows.__array_interface__["data"][0] - self.mm_addr
            last = first + rows.nbytes
        else:  # strided view: release the whole mapping
            first, last = 0, self.mm_len
        first -= first % mmap.PAGESIZE
        last = min(last, self.mm_len)
        if last > first:
            self.mm.madvise(mmap.MADV_DONTNEED, first, last - first)


def partial_fit_chunks(
    estimator,
    X,
    y,
    *,
    classes=None,
    sample_weight=None,
    chunk_size=None,
    n_epochs=1,
    shuffle=True,
    random_state=None,
):
    """Train ``estimator`` out of core: stream row chunks of (X, y) through ``partial_fit``.

    Only one chunk is in memory at a time, so X can be much larger than RAM: an
    ``np.memmap`` (its pages are released after each chunk, so the process's resident
    memory stays flat), a ``dask.array`` (each chunk is computed when needed, with the
    active Dask scheduler) or any array supporting row slices.

    Each chunk gets one ``partial_fit`` call, i.e. one pass in mini-batches of the
    estimator's ``batch_size`` (shuffled within the chunk when the estimator's
    ``shuffle=True``). An epoch visits every chunk once, in a new random order per epoch
    when ``shuffle=True``.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
        Updated in place (e.g. an sknet MLP with ``solver='adam'`` or ``'sgd'``).
    X : array-like of shape (n_samples, ...)
        Training data: np.ndarray, np.memmap, dask array, or anything with ``shape``
        and row slicing.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets, sliced like X (numpy, memmap or dask).
    classes : array-like, default=None
        All class labels, for classifiers. None computes them in one pass over ``y``.
    sample_weight : array-like of shape (n_samples,), default=None
        Per-sample weights, sliced like X.
    chunk_size : int, default=None
        Rows per chunk. None uses the dask array's row chunks, or about 64 MiB of X per
        chunk otherwise.
    n_epochs : int, default=1
        Passes over the data.
    shuffle : bool, default=True
        Visit the chunks in a random order in each epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the chunk order.

    Returns
    -------
    estimator : object
        The estimator, trained.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sknet import MLPClassifier
    >>> from sknet.dask import partial_fit_chunks
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "X.dat")
    >>> X = np.memmap(path, dtype=np.float32, mode="w+", shape=(2000, 5))
    >>> X[:] = np.random.default_rng(0).normal(size=X.shape)
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> X.flush()
    >>> X = np.memmap(path, dtype=np.float32, mode="r", shape=(2000, 5))
    >>> clf = MLPClassifier((16,), learning_rate_init=0.01, random_state=0)
    >>> clf = partial_fit_chunks(clf, X, y, chunk_size=500, n_epochs=5, random_state=0)
    >>> clf.score(X, y) > 0.95
    True
    >>> del X
    >>> tmp.cleanup()
    """
    if not hasattr(estimator, "partial_fit"):
        solver = getattr(estimator, "solver", None)
        hint = f" (solver={solver!r} has none; use 'adam' or 'sgd')" if solver else ""
        raise TypeError(
            f"partial_fit_chunks needs an estimator with partial_fit; "
            f"{type(estimator).__name__} has none{hint}."
        )
    n_rows = _n_rows(X, "X")
    if len(X.shape) < 2:
        raise ValueError(
            f"X must be 2-D or more (n_samples, n_features, ...), got shape {X.shape}."
        )
    for name, other in (("y", y), ("sample_weight", sample_weight)):
        if other is not None and _n_rows(other, name) != n_rows:
            raise ValueError(f"X has {n_rows} rows but {name} has {_n_rows(other, name)}.")
    if isinstance(n_epochs, bool) or not isinstance(n_epochs, Integral) or n_epochs < 1:
        raise ValueError(f"n_epochs must be an int >= 1, got {n_epochs!r}.")
    bounds = _chunk_bounds(X, n_rows, chunk_size)
    kwargs = {}
    if is_classifier(estimator):
        if classes is None:
            classes = np.unique(_materialize(y[:0])[0])
            for a, b in bounds:
                classes = np.union1d(classes, _materialize(y[a:b])[0])
        kwargs["classes"] = np.asarray(classes)
    rng = check_random_state(random_state)
    releasers = [_PageReleaser(a) for a in (X, y, sample_weight) if a is not None]
    for _ in range(n_epochs):
        order = rng.permutation(len(bounds)) if shuffle else range(len(bounds))
        for k in order:
            a, b = bounds[k]
            sw = None if sample_weight is None else sample_weight[a:b]
            Xc, yc, swc = _materialize(X[a:b], y[a:b], sw)
            if swc is not None:
                kwargs["sample_weight"] = swc
            estimator.partial_fit(Xc, yc, **kwargs)
            del Xc, yc, swc
            for releaser in releasers:
                releaser.release(a, b)
    return estimator
