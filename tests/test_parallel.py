"""Thread control, worker environment and kernel warm-up (sknet.parallel)."""

import json
import os
import subprocess
import sys
import threading

import joblib
import numba
import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_info

import sknet
from sknet import MLPClassifier, MLPRegressor, parallel


def _blas_threads():
    return sorted({d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"})


@pytest.fixture
def restore_threads():
    """Put numba's and the BLAS libraries' thread counts back as they were."""
    before = numba.get_num_threads()
    blas = ThreadpoolController().limit(limits=None)  # records, changes nothing
    yield
    numba.set_num_threads(before)
    blas.restore_original_limits()


def test_public_names():
    assert sknet.set_num_threads is parallel.set_num_threads
    assert sknet.get_num_threads is parallel.get_num_threads
    assert sknet.threadpool_limits is parallel.threadpool_limits


def test_set_num_threads_limits_numba_and_both_blas(restore_threads):
    sknet.set_num_threads(1)
    assert sknet.get_num_threads() == 1
    assert numba.get_num_threads() == 1
    # numpy's and scipy's OpenBLAS are both found and limited
    assert len([d for d in threadpool_info() if d["user_api"] == "blas"]) >= 1
    assert _blas_threads() == [1]
    sknet.set_num_threads(None)
    assert sknet.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert _blas_threads() == [parallel._cpu_count()]


def test_threadpool_limits_restores_even_on_error(restore_threads):
    numba_before, blas_before = numba.get_num_threads(), _blas_threads()
    with pytest.raises(RuntimeError, match="boom"):
        with sknet.threadpool_limits(1):
            assert numba.get_num_threads() == 1
            assert _blas_threads() == [1]
            raise RuntimeError("boom")
    assert numba.get_num_threads() == numba_before
    assert _blas_threads() == blas_before


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (0, ValueError, ">= 1"),
        (-2, ValueError, ">= 1"),
        (1.5, TypeError, "positive int"),
        ("2", TypeError, "positive int"),
        (True, TypeError, "positive int"),
        (10**6, ValueError, "NUMBA_NUM_THREADS"),
    ],
)
def test_bad_thread_counts_are_rejected(bad, exc, match, restore_threads):
    with pytest.raises(exc, match=match):
        sknet.set_num_threads(bad)
    with pytest.raises(exc, match=match):
        with sknet.threadpool_limits(bad):
            pass  # pragma: no cover


def test_thread_count_is_per_thread(restore_threads):
    """Documented limitation: numba's count does not follow into new threads."""
    sknet.set_num_threads(1)
    seen = {}
    t = threading.Thread(target=lambda: seen.update(n=sknet.get_num_threads()))
    t.start()
    t.join()
    assert seen["n"] == numba.config.NUMBA_NUM_THREADS


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_results_do_not_depend_on_thread_count(restore_threads):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    params = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    with sknet.threadpool_limits(1):
        one = MLPClassifier(**params).fit(X, y)
    with sknet.threadpool_limits(None):
        all_ = MLPClassifier(**params).fit(X, y)
    for a, b in zip(one.coefs_ + one.intercepts_, all_.coefs_ + all_.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_worker_env():
    env = parallel.worker_env(3, cache_dir="/some/dir")
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env[var] == "3"
    assert env["NUMBA_CACHE_DIR"] == "/some/dir"
    assert "NUMBA_CACHE_DIR" not in parallel.worker_env(1)
    with pytest.raises(ValueError, match="explicit"):
        parallel.worker_env(None)
    with pytest.raises(ValueError, match=">= 1"):
        parallel.worker_env(0)


_CHILD = """
import json, numba, numpy as np, scipy.linalg
from threadpoolctl import ThreadpoolController, threadpool_info
import sknet.parallel as p
from sknet import MLPRegressor
X = np.arange(20.0).reshape(10, 2)
p.warm_up([(MLPRegressor(hidden_layer_sizes=(2,)), X, X[:, 0])])
print(json.dumps({"pool": numba.config.NUMBA_NUM_THREADS,
                  "blas": sorted({d["num_threads"] for d in threadpool_info()
                                  if d["user_api"] == "blas"}),
                  "cache": p.cache_info(), "kernels": p.kernel_stats()}))
"""


def test_worker_env_caps_a_new_process_and_cache_dir_is_used(tmp_path):
    env = {**os.environ, **parallel.worker_env(1, cache_dir=tmp_path)}
    env.pop("SKNET_NUMBA_CACHE", None)

    def run():
        out = subprocess.run(
            [sys.executable, "-c", _CHILD],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold = run()
    assert cold["pool"] == 1
    assert cold["blas"] == [1]
    assert cold["cache"]["enabled"]
    assert cold["cache"]["path"].startswith(str(tmp_path))
    assert cold["cache"]["n_files"] > 0
    assert cold["kernels"]["cache_misses"] > 0  # empty cache dir: compiled
    warm = run()
    assert warm["kernels"]["cache_misses"] == 0  # second process: all loaded from disk
    assert warm["kernels"]["cache_hits"] == warm["kernels"]["signatures"] > 0


def test_loky_workers_get_their_share_of_threads():
    """joblib's process backend caps each worker's numba pool at cores // n_jobs."""
    n_jobs = 2
    pools = joblib.Parallel(n_jobs=n_jobs, backend="loky")(
        joblib.delayed(lambda: numba.config.NUMBA_NUM_THREADS)() for _ in range(2)
    )
    assert all(1 <= p <= max(1, joblib.cpu_count() // n_jobs) for p in pools), pools


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_up_compiles_the_kernels_a_fit_uses():
    parallel.warm_up()
    before = parallel.kernel_stats()
    assert before["signatures"] > 0
    rng = np.random.RandomState(1)
    X = rng.normal(size=(50, 4))
    MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(
        X.astype(np.float32), X[:, 0]
    )
    MLPClassifier((5,), max_iter=3, random_state=0).fit(X, X[:, 0] > 0)
    assert parallel.kernel_stats()["signatures"] == before["signatures"]


def test_warm_up_with_own_estimators():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20, 3))
    est = MLPClassifier((3,), max_iter=500, random_state=0)
    seconds = parallel.warm_up([(est, X, X[:, 0] > 0)])
    assert seconds >= 0
    assert est.get_params()["max_iter"] == 500  # a clone is fitted, est is untouched
    assert not hasattr(est, "coefs_")
    with pytest.raises(TypeError, match="tuples"):
        parallel.warm_up([est])


def test_cache_info():
    info = parallel.cache_info()
    assert set(info) == {"enabled", "path", "writable", "n_files"}
    if info["enabled"]:
        assert os.path.isdir(info["path"])
