"""Shared first fits (sknet._compile_lock): one process compiles, the others wait for
it and load numba's on-disk cache."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from sknet import MLPClassifier, _compile_lock, _config

fcntl = pytest.importorskip("fcntl")

_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""

_FIT = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from sknet import MLPClassifier, _compile_lock
from sknet.parallel import kernel_stats
_compile_lock.LOCK_TIMEOUT = float(sys.argv[1])
X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
y = (X[:, 0] > 0).astype(int)
est = MLPClassifier((6,), max_iter=3, random_state=0)
if len(sys.argv) > 2:
    print(_compile_lock.lock_path(est, X))
    sys.exit()
print("ready", flush=True)
start = time.perf_counter()
est.fit(X, y)
print(json.dumps({"last": _compile_lock.last, "kernels": kernel_stats(),
                  "seconds": time.perf_counter() - start}))
"""


def _fit_child(timeout, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", _FIT, str(timeout)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _hold(path, seconds):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _lock_path():
    out = subprocess.run(
        [sys.executable, "-c", _FIT, "1", "path"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(not _config.CACHE, reason="numba's on-disk cache is off")
def test_a_fit_waits_for_the_process_compiling_then_goes_on():
    path = _lock_path()
    assert path.endswith(".lock")
    holder = _hold(path, 600.0)  # another process compiling this kind of model
    try:
        child = _fit_child(timeout=60)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        holder.kill()  # the compiling process is done (or died: the lock goes with it)
        res = _result(child)
        assert res["last"]["status"] == "warmed"
        assert res["last"]["waited"] >= 0.8  # blocked until the holder released
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(not _config.CACHE, reason="numba's on-disk cache is off")
def test_a_stuck_holder_only_delays_a_fit_by_the_timeout():
    holder = _hold(_lock_path(), 120.0)
    try:
        res = _result(_fit_child(timeout=0.5))
        assert res["last"]["status"] == "timed out"
        assert res["seconds"] < 60  # went on without the lock
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_skipped_without_a_writable_cache_and_once_per_kind(monkeypatch):
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    monkeypatch.setattr(_config, "CACHE", False)
    monkeypatch.setattr(_compile_lock, "_WARMED", set())
    MLPClassifier((3,), activation="tanh", max_iter=2).fit(X, y)
    assert _compile_lock.last["status"] == "skipped: no writable cache"
    MLPClassifier((5,), activation="tanh", max_iter=3).fit(X, y)  # same kind
    assert _compile_lock.last["status"] == "already warm"
    MLPClassifier((3,), activation="relu", max_iter=2).fit(X.astype(np.float32), y)
    assert _compile_lock.last["status"].startswith("skipped")  # another kind


def test_kind_of_model():
    X64, X32 = np.zeros((2, 2)), np.zeros((2, 2), np.float32)
    key = _compile_lock.model_key
    base = MLPClassifier((4,))
    assert key(base, X64) == key(MLPClassifier((8, 8), max_iter=9, random_state=3), X64)
    assert key(base, X64) != key(base, X32)
    assert key(base, X64) != key(MLPClassifier((4,), activation="tanh"), X64)
    assert key(base, X64) != key(MLPClassifier((4,), dropout=0.1), X64)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_up_freezes_older_objects_only_while_it_runs(monkeypatch):
    """The objects older than a warm-up stay out of garbage collection during it, and
    the collector's state afterwards is as before: nothing frozen, or the process's own
    frozen objects left frozen."""
    import gc

    seen = []
    monkeypatch.setattr(_compile_lock, "_WARMED", set())
    real_fit = MLPClassifier.fit

    def fit(self, X, y, **kw):
        if getattr(_compile_lock._LOCAL, "busy", False):  # the warm-up's fit
            seen.append(gc.get_freeze_count())
        return real_fit(self, X, y, **kw)

    monkeypatch.setattr(MLPClassifier, "fit", fit)
    X = np.random.default_rng(0).normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    assert gc.get_freeze_count() == 0
    before = len(gc.get_objects())
    MLPClassifier((3,), max_iter=2).fit(X, y)
    if _compile_lock.last["status"] == "warmed":  # (skipped without a writable cache)
        assert len(seen) == 1 and seen[0] >= before // 2, (seen, before)
    assert gc.get_freeze_count() == 0
    # nested scopes unfreeze once, when the outer one exits
    with _compile_lock.older_objects_frozen():
        frozen = gc.get_freeze_count()
        assert frozen >= before // 2
        with _compile_lock.older_objects_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
    gc.freeze()  # the process's own frozen objects: left as they are
    try:
        mine = gc.get_freeze_count()
        with _compile_lock.older_objects_frozen():
            assert gc.get_freeze_count() == mine
        assert gc.get_freeze_count() == mine
    finally:
        gc.unfreeze()
    gc.disable()  # the collector off: nothing to do
    try:
        with _compile_lock.older_objects_frozen():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
    assert not gc.isenabled() or gc.get_freeze_count() == 0


def test_bad_input_is_reported_by_the_fit_not_the_warm_up(monkeypatch):
    monkeypatch.setattr(_compile_lock, "_WARMED", set())
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier((3,)).fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1])


@pytest.mark.skipif(not _config.CACHE, reason="numba's on-disk cache is off")
def test_two_cold_processes_compile_once(tmp_path):
    """Two fresh processes, empty cache, first fits at the same time: one compiles, the
    other waits and loads every kernel from the cache; neither deadlocks."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("SKNET_NUMBA_CACHE", None)
    procs = [_fit_child(timeout=600, env=env) for _ in range(2)]
    results = [_result(p) for p in procs]
    misses = sorted(r["kernels"]["cache_misses"] for r in results)
    assert misses[0] == 0 < misses[1], results  # one compiled, the other only loaded
    assert all(r["last"]["status"] == "warmed" for r in results)
    assert any(
        f.endswith(".lock")
        for f in os.listdir(tmp_path)
        + [name for _, _, names in os.walk(tmp_path) for name in names]
    )
