"""Scaling out: model selection on a Dask cluster, out-of-core training (sknet.dask).

The cluster tests start real ``distributed.LocalCluster`` worker processes on
127.0.0.1 (dashboard off); they are skipped when dask/distributed are not installed.
The streaming tests on ``np.memmap`` need numpy only.
"""

import os
import signal
import threading
import time
from contextlib import contextmanager

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_validate, train_test_split

from sknet import MLPClassifier, MLPRegressor
from sknet.dask import _PageReleaser, partial_fit_chunks
from sknet.parallel import THREAD_ENV_VARS

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# what each test cluster's workers warm up: the kernels of the models fitted below
_WARM_X = np.random.RandomState(0).normal(size=(20, 4))
_WARM = [(MLPClassifier((4,)), _WARM_X, (_WARM_X[:, 0] > 0).astype(int))]

_GRID = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-1]}


def _data(n=300, seed=0):
    return make_classification(n_samples=n, n_features=8, n_informative=5, random_state=seed)


def _search_estimator(max_iter=30):
    return MLPClassifier(max_iter=max_iter, learning_rate_init=0.01, random_state=0)


def _bounded(fn, timeout=120):
    """Run ``fn()`` in a thread; fail (instead of hanging) if it takes over ``timeout`` s."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except Exception as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout)
    assert not runner.is_alive(), f"still running after {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def _local_cluster(cap_threads=True):
    """A 2-process x 1-thread LocalCluster on loopback, always closed on exit."""
    pytest.importorskip("distributed")
    import dask
    from distributed import Client, LocalCluster

    from sknet.dask import worker_config

    # Dask's nannies write their pre-spawn variables into this process's environment
    saved = {k: os.environ.get(k) for k in (*THREAD_ENV_VARS, "MALLOC_TRIM_THRESHOLD_")}
    config = worker_config(1) if cap_threads else {}
    cluster = None
    try:
        with dask.config.set(config):
            # dashboard off; the scheduler's small HTTP server on a free loopback port
            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
        with Client(cluster, timeout=60) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def client():
    from sknet.dask import setup_workers

    with _local_cluster() as client:
        setup_workers(client, 1, estimators=_WARM)
        yield client


# ---------------------------------------------------------------- distributed search
def test_workers_are_capped_and_warm(client):
    from sknet.dask import worker_report

    report = worker_report(client)
    assert len(report) == 2
    for rep in report.values():
        # seen from a task thread: one numba thread, one BLAS thread per worker
        assert rep["numba_pool"] == 1
        assert rep["numba_threads"] == 1
        assert rep["blas_threads"] == 1
        assert rep["warm_up_seconds"] is not None
        # the kernels were loaded from the on-disk cache the client filled, not compiled
        assert rep["kernels"]["signatures"] > 0
        if rep["cache"]["enabled"]:
            assert rep["kernels"]["cache_misses"] == 0


def test_cluster_listens_on_loopback_only(client):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    listening = [
        conn.laddr.ip
        for proc in [me, *me.children(recursive=True)]
        for conn in proc.net_connections(kind="inet")
        if conn.status == "LISTEN"
    ]
    assert listening
    assert set(listening) == {"127.0.0.1"}


def test_grid_search_on_dask_matches_local(client):
    from sknet.dask import worker_report

    X, y = _data()
    before = {a: r["kernels"] for a, r in worker_report(client).items()}
    local = GridSearchCV(_search_estimator(), _GRID, cv=3).fit(X, y)

    def search():
        with joblib.parallel_backend("dask"):
            return GridSearchCV(_search_estimator(), _GRID, cv=3).fit(X, y)

    dist = _bounded(search)
    assert dist.best_params_ == local.best_params_
    for key in [
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        *(f"split{i}_test_score" for i in range(3)),
    ]:
        np.testing.assert_array_equal(dist.cv_results_[key], local.cv_results_[key])
    # no task compiled anything: every kernel the fits used was already loaded
    after = {a: r["kernels"] for a, r in worker_report(client).items()}
    for addr, stats in after.items():
        assert stats["cache_misses"] == before[addr]["cache_misses"]
        assert stats["signatures"] == before[addr]["signatures"]


def test_cross_validate_on_dask_matches_local(client):
    X, y = _data(seed=1)
    est = _search_estimator(max_iter=20)
    local = cross_validate(est, X, y, cv=2, return_estimator=True)

    def cv():
        with joblib.parallel_backend("dask"):
            return cross_validate(est, X, y, cv=2, return_estimator=True)

    dist = _bounded(cv)
    np.testing.assert_array_equal(dist["test_score"], local["test_score"])
    for a, b in zip(dist["estimator"], local["estimator"]):
        for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
            np.testing.assert_array_equal(wa, wb)


def _search_killing_a_worker(client, backend, X, y, wait_for_replacement=True):
    """Run a grid search in a thread under ``backend``; SIGKILL a busy worker mid-way.

    Returns ``{"search": fitted}`` or ``{"error": exception}``; fails if it hangs.
    """
    pids = client.run(os.getpid)
    outcome = {}

    def search():
        try:
            with backend():
                outcome["search"] = GridSearchCV(_search_estimator(60), _GRID, cv=3).fit(X, y)
        except Exception as exc:  # inspected by the caller
            outcome["error"] = exc

    runner = threading.Thread(target=search, daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    busy = []
    while not busy and runner.is_alive() and time.monotonic() < deadline:
        busy = [addr for addr, keys in client.processing().items() if keys]
        time.sleep(0.02)
    assert busy, "the search never started on the cluster"
    os.kill(pids[busy[0]], signal.SIGKILL)
    runner.join(timeout=120)
    assert not runner.is_alive(), "the search hung after a worker was killed"
    if wait_for_replacement:
        client.wait_for_workers(2, timeout=60)  # the nanny brings a replacement up
    return outcome


def test_killed_worker_mid_search():
    """SIGKILL a worker while a search runs: it completes, or fails fast; never hangs."""
    from concurrent.futures import CancelledError

    distributed = pytest.importorskip("distributed")

    from sknet.dask import resilient_backend, setup_workers

    X, y = _data(n=600, seed=2)
    local = GridSearchCV(_search_estimator(60), _GRID, cv=3).fit(X, y)
    with _local_cluster(cap_threads=False) as client:
        # started without worker_config: setup_workers restarts the workers capped
        report = setup_workers(client, 1, estimators=_WARM)
        assert all(r["numba_pool"] == 1 for r in report.values())
        client.wait_for_workers(2, timeout=60)  # both restarted workers are back

        # sknet's backend: the lost tasks are rerun elsewhere, the results are unchanged
        outcome = _search_killing_a_worker(client, lambda: resilient_backend(scatter=[X, y]), X, y)
        assert "error" not in outcome, repr(outcome.get("error"))
        assert outcome["search"].best_params_ == local.best_params_
        np.testing.assert_array_equal(
            outcome["search"].cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
        )

        # joblib's own backend loses the inputs it scattered to the dead worker: the
        # search completes or raises a cancellation / KilledWorker, quickly
        outcome = _search_killing_a_worker(
            client, lambda: joblib.parallel_backend("dask"), X, y, wait_for_replacement=False
        )
        if "error" in outcome:
            assert isinstance(outcome["error"], (CancelledError, distributed.KilledWorker)), repr(
                outcome["error"]
            )
        else:
            assert outcome["search"].best_params_ == local.best_params_


def test_resilient_data_outlives_its_last_copy():
    """Dask's active memory manager drops extra replicas (``ReduceReplicas``); when the
    worker with the last copy of the data dies, tasks still get it (recomputed from
    the task that holds it; a scattered copy would be lost: FutureCancelledError)."""
    pytest.importorskip("distributed")
    from sknet.dask import _ResilientDaskBackend

    X = np.arange(2000.0).reshape(200, 10)
    with _local_cluster() as client:
        client.wait_for_workers(2, timeout=60)
        backend = _ResilientDaskBackend(scatter=[X], client=client)
        future = backend.data_futures[id(X)]
        assert len(client.who_has([future])[future.key]) == 2  # a copy on each worker
        client.amm.run_once()  # what the scheduler does every 2 s by default
        deadline = time.monotonic() + 30
        while len(client.who_has([future])[future.key]) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        (holder,) = client.who_has([future])[future.key]
        os.kill(client.run(os.getpid)[holder], signal.SIGKILL)
        total = client.submit(np.sum, future, pure=False).result(timeout=60)
        assert total == X.sum()


# ---------------------------------------------------------------- out of core
def _split_memmap(tmp_path, n=4000, seed=0):
    X, y = make_classification(n_samples=n, n_features=20, n_informative=10, random_state=seed)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X_tr.shape)
    mm[:] = X_tr
    mm.flush()
    del mm
    X_mm = np.memmap(path, dtype=np.float64, mode="r", shape=X_tr.shape)
    return X_mm, X_tr, y_tr, X_te, y_te


def test_memmap_streaming_reaches_in_memory_accuracy(tmp_path):
    X_mm, X_tr, y_tr, X_te, y_te = _split_memmap(tmp_path)
    params = dict(hidden_layer_sizes=(32,), learning_rate_init=0.005, random_state=0)
    in_memory = MLPClassifier(max_iter=10, **params).fit(X_tr, y_tr).score(X_te, y_te)
    streamed = partial_fit_chunks(
        MLPClassifier(**params), X_mm, y_tr, chunk_size=500, n_epochs=10, random_state=0
    )
    assert in_memory > 0.85
    assert streamed.score(X_te, y_te) >= in_memory - 0.03
    np.testing.assert_array_equal(X_mm, X_tr)  # input untouched


def test_one_chunk_equals_one_partial_fit():
    X, y = _data()
    a = MLPClassifier((8,), random_state=0).partial_fit(X, y, classes=[0, 1])
    b = partial_fit_chunks(MLPClassifier((8,), random_state=0), X, y, chunk_size=len(X))
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(wa, wb)


def test_regressor_and_sample_weight_streaming():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1200, 5))
    y = X @ rng.normal(size=5)
    sw = np.ones(len(X))
    reg = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    a = partial_fit_chunks(clone(reg), X, y, chunk_size=300, n_epochs=20, random_state=0)
    b = partial_fit_chunks(
        clone(reg), X, y, sample_weight=sw, chunk_size=300, n_epochs=20, random_state=0
    )
    assert a.score(X, y) > 0.9
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-10, atol=1e-10)


def test_dask_array_streaming_matches_numpy_streaming(tmp_path):
    da = pytest.importorskip("dask.array")
    import dask

    X_mm, X_tr, y_tr, X_te, y_te = _split_memmap(tmp_path)
    params = dict(hidden_layer_sizes=(32,), learning_rate_init=0.005, random_state=0)
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X_tr, chunks=(500, -1))
        yd = da.from_array(y_tr, chunks=500)
        from_dask = partial_fit_chunks(MLPClassifier(**params), Xd, yd, n_epochs=10, random_state=0)
    from_numpy = partial_fit_chunks(
        MLPClassifier(**params), X_tr, y_tr, chunk_size=500, n_epochs=10, random_state=0
    )
    np.testing.assert_array_equal(from_dask.predict_proba(X_te), from_numpy.predict_proba(X_te))
    in_memory = MLPClassifier(max_iter=10, **params).fit(X_tr, y_tr).score(X_te, y_te)
    assert from_dask.score(X_te, y_te) >= in_memory - 0.03


def test_dask_ml_incremental_trains_sknet(tmp_path):
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    import dask

    X_mm, X_tr, y_tr, X_te, y_te = _split_memmap(tmp_path)
    params = dict(hidden_layer_sizes=(32,), learning_rate_init=0.005, random_state=0)
    with dask.config.set(scheduler="synchronous"):
        Xd = da.from_array(X_tr, chunks=(500, -1))
        yd = da.from_array(y_tr, chunks=500)
        inc = wrappers.Incremental(MLPClassifier(**params), shuffle_blocks=True, random_state=0)
        for _ in range(10):
            inc.partial_fit(Xd, yd, classes=[0, 1])
    in_memory = MLPClassifier(max_iter=10, **params).fit(X_tr, y_tr).score(X_te, y_te)
    assert isinstance(inc.estimator_, MLPClassifier)
    assert inc.estimator_.score(X_te, y_te) >= in_memory - 0.03


def _rss_file_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    return None  # pragma: no cover


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_consumed_memmap_pages_leave_the_resident_set(tmp_path):
    n_rows, n_cols = 8192, 512  # 32 MiB of float64
    path = tmp_path / "big.dat"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=(n_rows, n_cols))
    mm[:] = 1.0
    mm.flush()
    del mm
    X = np.memmap(path, dtype=np.float64, mode="r", shape=(n_rows, n_cols))
    releaser = _PageReleaser(X)
    base = _rss_file_kb()
    assert float(X.sum()) == n_rows * n_cols  # touch every page
    touched = _rss_file_kb() - base
    assert touched > 0.9 * X.nbytes / 1024
    for start in range(0, n_rows, 1000):
        releaser.release(start, min(start + 1000, n_rows))
    assert _rss_file_kb() - base < 0.1 * X.nbytes / 1024
    assert float(X[-1].sum()) == n_cols  # data still readable after release


def test_copy_on_write_memmaps_are_never_released(tmp_path):
    path = tmp_path / "c.dat"
    np.memmap(path, dtype=np.float64, mode="w+", shape=(10, 2)).flush()
    X = np.memmap(path, dtype=np.float64, mode="c", shape=(10, 2))
    X[0, 0] = 5.0  # private page: releasing it would lose this write
    _PageReleaser(X).release(0, 10)
    assert X[0, 0] == 5.0


def test_streaming_input_errors():
    X, y = _data(n=50)
    with pytest.raises(TypeError, match="solver='lbfgs'"):
        partial_fit_chunks(MLPClassifier(solver="lbfgs"), X, y)
    with pytest.raises(ValueError, match="50 rows but y has 49"):
        partial_fit_chunks(MLPClassifier(), X, y[:-1])
    with pytest.raises(ValueError, match="sample_weight has 3"):
        partial_fit_chunks(MLPClassifier(), X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        partial_fit_chunks(MLPClassifier(), X[:, 0], y)
    with pytest.raises(TypeError, match="array with a shape"):
        partial_fit_chunks(MLPClassifier(), X.tolist(), y)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        partial_fit_chunks(MLPClassifier(), X, y, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        partial_fit_chunks(MLPClassifier(), X, y, chunk_size=2.5)
    with pytest.raises(ValueError, match="n_epochs"):
        partial_fit_chunks(MLPClassifier(), X, y, n_epochs=0)


def test_dask_array_with_unknown_chunks_is_rejected():
    da = pytest.importorskip("dask.array")
    X, y = _data(n=50)
    Xd = da.from_array(X, chunks=(10, -1))
    Xd = Xd[Xd[:, 0] > -100]  # boolean mask: row count unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        partial_fit_chunks(MLPClassifier(), Xd, y)
