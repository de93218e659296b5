"""One process compiles, the others wait and load: shared first fits.

When several fresh processes fit the same kind of model at once (joblib's loky workers
under ``GridSearchCV(n_jobs=...)``, Dask workers), each would compile the same numba
kernels, seconds of CPU apiece, on cores the others need. Instead, before the first
fit of a kind of model in a process, :func:`share_compilation` takes an exclusive
``fcntl.flock`` on a lock file in numba's cache directory of this sknet install, fits
a clone of the estimator on a few rows (which compiles every kernel the fit uses, or
loads it from numba's on-disk cache) and releases the lock. A second process arriving
meanwhile blocks on the lock, then finds the kernels in the cache and only loads them.

"A kind of model" is the estimator class, the input dtype (float32 or not) and the
hyperparameters that choose kernels: string options (activation, solver, cell), flags,
None-or-not values (``dropout``) and the layer types of a ``layers`` list. Each kind is
warmed once per process.

Skipped, so that fitting works exactly as before: numba's on-disk cache off
(``SKNET_NUMBA_CACHE=0``), no ``fcntl`` (not POSIX), a cache directory that is not
writable. A process that waits longer than :data:`LOCK_TIMEOUT` seconds (a holder
stuck elsewhere) goes on without the lock and compiles what it needs itself. A lock
held by a process that dies is released by the system. Nothing here changes results:
the warm-up fits a clone, and the fit that follows is the same as without it.

While a warm-up compiles, the objects that existed before it are left out of Python's
garbage collection (:func:`older_objects_frozen`): numba's compiler makes many objects,
which set off full collections, and each full collection walked every object of the
process (numba's, scikit-learn's, the user's): about 0.6-1 CPU s of a 5 s cold compile.
"""

import contextlib
import gc
import hashlib
import os
import threading
import time
import warnings

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

#: seconds a process waits for another one's compilation before compiling itself
LOCK_TIMEOUT = 300.0
_POLL = 0.05
#: rows of the warm-up fit (plus one per class for classifiers)
_WARM_ROWS = 16

#: hyperparameters that never choose kernels, left out of a model's kind
_NOT_KERNELS = {"random_state", "verbose", "early_stopping", "warm_start"}

_WARMED = set()
_WARMED_LOCK = threading.Lock()
_LOCAL = threading.local()  # ``busy`` while this thread runs a warm-up fit

#: what the last call did, for tests and benchmarks: ``status`` ("warmed",
#: "timed out", "skipped: <reason>" or "already warm"), ``waited`` (seconds spent
#: waiting for the lock) and ``seconds`` (total)
last = {}


def _param_key(value):
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (list, tuple)):
        # the set of element kinds: the layer types of a ``layers`` list, not its length
        return tuple(sorted({v if isinstance(v, str) else type(v).__name__ for v in value}))
    return type(value).__name__


def model_key(estimator, X):
    """The kind of model a fit of ``estimator`` on ``X`` compiles kernels for."""
    dtype = getattr(X, "dtype", None)
    params = estimator.get_params(deep=False)
    return (
        f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "float32" if dtype == np.float32 else "float64",
        tuple(
            sorted((name, _param_key(v)) for name, v in params.items() if name not in _NOT_KERNELS)
        ),
    )


def lock_path(estimator, X):
    """The lock file of this kind of model, None when sharing is skipped (no writable
    on-disk cache)."""
    path = _cache_dir()
    if path is None:
        return None
    name = hashlib.sha1(repr(model_key(estimator, X)).encode()).hexdigest()[:16]
    return os.path.join(path, f"sknet-compile-{name}.lock")


def _cache_dir():
    from . import _config
    from .kernels import dense

    if not _config.CACHE:
        return None
    path = getattr(dense.take_rows._cache, "cache_path", None)
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def _rows(estimator, y, n):
    """A few rows: the first ones, plus the first of each class for a classifier (so
    the warm-up uses the loss the real fit uses, binary or multiclass)."""
    from sklearn.base import is_classifier

    rows = np.arange(min(n, _WARM_ROWS))
    y = np.asarray(y)
    if is_classifier(estimator) and y.ndim == 1:
        rows = np.union1d(rows, np.unique(y, return_index=True)[1])
    return rows


def _take(data, rows):
    """Rows of an array, sparse matrix, DataFrame / Series or list."""
    if hasattr(data, "iloc"):
        return data.iloc[rows]
    if hasattr(data, "tocsr"):
        return data.tocsr()[rows]
    if isinstance(data, (list, tuple)):
        return [data[i] for i in rows]
    return np.asarray(data)[rows]


_FREEZE_LOCK = threading.Lock()
_freeze = {"depth": 0, "frozen": False}


@contextlib.contextmanager
def older_objects_frozen():
    """Python's garbage collector leaves the objects that exist on entry alone until
    exit (``gc.freeze()`` and ``gc.unfreeze()``); the objects made meanwhile are
    collected as usual. Nothing is kept from being freed: a cycle among the older
    objects that becomes garbage meanwhile is collected after exit. Does nothing when
    the collector is off or objects are frozen already (the process's own
    ``gc.freeze()``, which this must not undo); nested and concurrent uses unfreeze
    once, when the last one exits."""
    with _FREEZE_LOCK:
        if _freeze["depth"] == 0:
            _freeze["frozen"] = gc.isenabled() and gc.get_freeze_count() == 0
            if _freeze["frozen"]:
                gc.freeze()
        _freeze["depth"] += 1
    try:
        yield
    finally:
        with _FREEZE_LOCK:
            _freeze["depth"] -= 1
            if _freeze["depth"] == 0 and _freeze["frozen"]:
                gc.unfreeze()
                _freeze["frozen"] = False


def _warm(estimator, X, y, sample_weight):
    from sklearn.base import clone

    rows = _rows(estimator, y, len(y))
    est = clone(estimator)
    # the user's callbacks (which clone keeps) watch the real fit, not this one
    est.__dict__.pop("_skl_callbacks", None)
    params = est.get_params(deep=False)
    est.set_params(
        **{
            k: v
            for k, v in {"max_iter": 1, "early_stopping": False, "verbose": 0}.items()
            if k in params
        }
    )
    sw = None if sample_weight is None else _take(sample_weight, rows)
    Xs = _take(X, rows)
    with warnings.catch_warnings(), older_objects_frozen():
        warnings.simplefilter("ignore")
        est.fit(Xs, _take(y, rows), sample_weight=sw)
        est.predict(Xs)


def _acquire(fd, timeout):
    """Exclusive flock on ``fd`` within ``timeout`` seconds; seconds waited, or None on
    timeout."""
    start = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return time.monotonic() - start
        except BlockingIOError:
            if time.monotonic() - start >= timeout:
                return None
            time.sleep(_POLL)


def share_compilation(estimator, X, y, sample_weight=None):
    """Compile (or load) the kernels of this kind of model under an inter-process lock,
    once per process; see the module docstring. Never raises for the warm-up's sake:
    an error in it (bad input) is left to the real fit to report."""
    start = time.perf_counter()
    if getattr(_LOCAL, "busy", False):  # the warm-up's own fit
        return
    key = model_key(estimator, X)
    with _WARMED_LOCK:
        if key in _WARMED:
            last.update(status="already warm", waited=0.0, seconds=0.0)
            return
        _WARMED.add(key)  # also stops the warm-up's own fit from coming back here
    if fcntl is None:
        last.update(status="skipped: no fcntl", waited=0.0, seconds=0.0)
        return
    path = lock_path(estimator, X)
    if path is None:
        last.update(status="skipped: no writable cache", waited=0.0, seconds=0.0)
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
    except OSError:
        last.update(status="skipped: lock file", waited=0.0, seconds=0.0)
        return
    try:
        waited = _acquire(fd, LOCK_TIMEOUT)
        status = "timed out" if waited is None else "warmed"
        _LOCAL.busy = True
        try:
            _warm(estimator, X, y, sample_weight)
        except Exception:  # noqa: BLE001 - the real fit reports bad input
            status = "warm-up failed"
    finally:
        _LOCAL.busy = False
        os.close(fd)  # releases the lock
    last.update(status=status, waited=waited or 0.0, seconds=time.perf_counter() - start)
