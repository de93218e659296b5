"""A fit's thread plan (sknet._threads): budget, small problems, timed choice, no
process-wide side effects."""

import json
import math
import os
import subprocess
import sys
import time

import numba
import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits

import sknet
from sknet import ConvNetClassifier, MLPClassifier, _threads

TWO = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2 or _threads._cpu_count() < 2,
    reason="needs two cores and a numba pool of two",
)


def _blas_threads():
    return sorted({d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"})


@pytest.fixture
def restore_threads():
    before = numba.get_num_threads()
    blas = ThreadpoolController().limit(limits=None)  # records, changes nothing
    yield
    numba.set_num_threads(before)
    blas.restore_original_limits()


@pytest.fixture(autouse=True)
def _no_core_counts(monkeypatch):
    """The timed-choice tests run on a fake clock: the load probe sees no real counts
    unless a test gives it its own."""
    monkeypatch.setattr(_threads, "_idle_seconds", lambda: None)


_ENV_CHILD = """
import json, os
import numpy as np
import sklearn  # sets KMP_DUPLICATE_LIB_OK and KMP_INIT_AT_FORK itself, on import
os.environ.pop("OMP_WAIT_POLICY", None)
before = dict(os.environ)
import sknet
after_import = dict(os.environ)
X = np.random.default_rng(0).normal(size=(40, 8)); y = (X[:, 0] > 0).astype(int)
sknet.MLPClassifier((4,), max_iter=2).fit(X, y)
sknet.ConvNetClassifier((2,), hidden_layer_sizes=(4,), max_iter=1).fit(X.reshape(-1, 1, 8), y)
after_fit = dict(os.environ)
def diff(a, b):
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print(json.dumps({"import": diff(before, after_import), "fit": diff(before, after_fit)}))
"""


def test_import_and_fit_set_no_environment_variable():
    """Issue 13: ``import sknet`` used to set OMP_WAIT_POLICY for the whole process
    and its children (slowing PyTorch down 2x)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "KMP_"))}
    out = subprocess.run(
        [sys.executable, "-c", _ENV_CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    changed = json.loads(out.stdout.strip().splitlines()[-1])
    assert changed == {"import": [], "fit": []}


def test_budget_respects_affinity_env_and_openmp_limits(monkeypatch, restore_threads):
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "_cpu_count", lambda: 1)  # a one-core affinity mask
    assert _threads.available_threads() == 1
    monkeypatch.setattr(_threads, "_cpu_count", lambda: 64)
    assert _threads.available_threads() <= numba.config.NUMBA_NUM_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as Dask's nanny sets it
    assert _threads.available_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1,4")  # nested form: the first level counts
    assert _threads.available_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # ignored, as OpenMP ignores it
    assert _threads._env_thread_limit() is None
    monkeypatch.delenv("OMP_NUM_THREADS")
    numba.set_num_threads(1)  # the caller's own setting (sknet.set_num_threads)
    assert _threads.available_threads() == 1


@TWO
def test_budget_respects_the_real_affinity_mask():
    code = (
        "import os, numba\n"
        "from sknet import _threads\n"
        "print(_threads.available_threads())\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "print(_threads.available_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    before, after = map(int, out.stdout.split())
    assert before >= 2
    assert after == 1


@TWO
def test_budget_respects_a_threadpoolctl_openmp_limit(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    numba.set_num_threads(2)
    if not [d for d in ThreadpoolController().info() if d["user_api"] == "openmp"]:
        pytest.skip("no OpenMP runtime loaded")
    with threadpool_limits(1, user_api="openmp"):
        assert _threads.available_threads() == 1
    assert _threads.available_threads() == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_small_fit_runs_on_one_thread_and_restores(restore_threads):
    X = np.random.default_rng(0).normal(size=(100, 5))
    net = MLPClassifier((8,), max_iter=1).fit(X, X[:, 0] > 0)._network
    assert _threads.work_per_sample(net.layers) * 100 < _threads.SMALL_WORK
    numba_before, blas_before = numba.get_num_threads(), _blas_threads()
    with _threads.fit_threads(net, 100, "auto") as plan:
        assert plan.n == 1 and not plan.adaptive
        assert numba.get_num_threads() == 1
        assert _blas_threads() == [1]
    assert numba.get_num_threads() == numba_before
    assert _blas_threads() == blas_before


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_work_estimate_counts_positions():
    X = np.random.default_rng(0).normal(size=(20, 1, 8, 8))
    conv = ConvNetClassifier((4,), hidden_layer_sizes=(), max_iter=1).fit(X, X[:, 0, 0, 0] > 0)
    first = conv._network.layers[0]
    assert first.kind == "conv"
    # 4 filters of 1 x 3 x 3 (+ bias) applied at 64 positions, at least
    assert _threads.work_per_sample(conv._network.layers[:1]) >= (4 * 9 + 4) * 64


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _counts(plan, clock, seconds, steps):
    """Run ``steps`` steps of ``seconds(n_threads)`` each; the thread count of each."""
    counts = []
    for _ in range(steps):
        counts.append(plan.n)
        clock.t += seconds(plan.n)
        plan.step_done(64)
    return counts


def _replay(plan, clock, one, many, rows, steps=40):
    """Run ``steps`` steps of ``one`` seconds on one thread and, on every thread, of
    ``many(i)`` seconds for the i-th step there; the steps run on every thread."""
    on_many = 0
    for _ in range(steps):
        if plan.n == 1:
            clock.t += one
        else:
            clock.t += many(on_many)
            on_many += 1
        plan.step_done(rows)
    return on_many


def _drive(plan, clock, cost, steps, rows=10):
    """Run ``steps`` steps whose seconds per sample is ``cost(n_threads)``."""
    for _ in range(steps):
        clock.t += cost(plan.n) * rows
        plan.step_done(rows)


@TWO
def test_timed_choice(monkeypatch, restore_threads):
    clock = _Clock()
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    numba.set_num_threads(2)
    # every thread twice as fast: kept
    with _threads._ThreadPlan(2, adaptive=True) as plan:
        assert plan.n == 1  # starts on one thread
        _drive(plan, clock, lambda n: 1e-3 / n, 40)
        assert plan.n == 2 and plan.history == [1, 2]
        # another process takes a core: every thread 5x slower -> back to one, after
        # timing one thread, then every thread again
        _drive(plan, clock, lambda n: 1e-3 if n == 1 else 5e-3, 40)
        assert plan.n == 1 and plan.history == [1, 2, 1, 2, 1]
    assert numba.get_num_threads() == 2  # the caller's count comes back
    # every thread slower from the start: one thread, and retries come ever later
    with _threads._ThreadPlan(2, adaptive=True) as plan:
        _drive(plan, clock, lambda n: 1e-3 if n == 1 else 5e-3, 2000)
        assert plan.n == 1
        tries = plan.history.count(2)
        assert 2 <= tries <= 8, plan.history  # each loss doubles the wait
        # the machine frees up: every thread is tried again and kept
        _drive(plan, clock, lambda n: 1e-3 / n, 8000)
        assert plan.n == 2


@TWO
def test_busy_cores_skip_timing_every_thread(monkeypatch, restore_threads):
    """While another process keeps the second core busy, the plan stays on one thread
    without timing two; once the core is free it times two and keeps them."""
    clock, own = _Clock(), _Clock()
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    monkeypatch.setattr(_threads.time, "process_time", own)
    idle = [0.0]
    monkeypatch.setattr(_threads, "_idle_seconds", lambda: (idle[0], 2))
    numba.set_num_threads(2)

    def run(steps, other_cores):
        for _ in range(steps):
            seconds = 1.2e-3 if plan.n == 1 else 0.8e-3
            clock.t += seconds
            own.t += seconds if plan.n == 1 else 0.0
            idle[0] += max(0.0, 2 - plan.n - other_cores) * seconds
            plan.step_done(200)

    with _threads._ThreadPlan(2, adaptive=True) as plan:
        run(2000, other_cores=1.0)
        assert plan.history == [1] and plan.busy_skips >= 3
        skips = plan.busy_skips
        run(2000, other_cores=0.0)  # the other process ended
        # (one more skip when the probe's span straddles the end)
        assert plan.history == [1, 2] and plan.busy_skips <= skips + 1
    with _threads._ThreadPlan(2, adaptive=True) as plan:  # a quarter of a core: timed
        run(200, other_cores=0.25)
        assert plan.history == [1, 2] and plan.busy_skips == 0


def test_core_counts_of_an_unexpected_format_give_no_figure(monkeypatch, tmp_path):
    """``/proc/stat`` is read, not trusted: a format this does not know gives None (the
    plan then times every thread as it would without the counts)."""
    monkeypatch.undo()
    real_open = open
    stat = tmp_path / "stat"

    def fake_open(path, *args, **kwargs):
        return real_open(stat if path == "/proc/stat" else path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    cpu = sorted(os.sched_getaffinity(0))[0]
    for text in (f"cpu{cpu} 1 2 3 x 5 6\n", "intr 1 2\n", f"cpu{cpu} 1 2\n", ""):
        stat.write_text(text)
        assert _threads._idle_seconds() is None, text
    stat.write_text(f"cpu 9 9 9 9 9\ncpu{cpu} 1 2 3 400 5 6\n")
    assert _threads._idle_seconds() == (405 / os.sysconf("SC_CLK_TCK"), 1)


@TWO
def test_plans_that_do_not_time_read_no_core_counts(monkeypatch, restore_threads):
    """A prediction or a small fit (no timing) does not read /proc/stat."""
    reads = []
    monkeypatch.setattr(_threads, "_idle_seconds", lambda: reads.append(1))
    with _threads._ThreadPlan(2, adaptive=False):
        pass
    with _threads._ThreadPlan(1, adaptive=True):
        pass
    assert reads == []
    with _threads._ThreadPlan(2, adaptive=True):
        pass
    assert reads == [1]


def test_load_probe_counts_other_processes(monkeypatch):
    """The real counts (Linux): with this thread and a child process each spinning,
    fewer than 1.5 of two cores are free of other work."""
    monkeypatch.undo()  # the real _idle_seconds
    if _threads._idle_seconds() is None:
        pytest.skip("no /proc/stat")
    cores = sorted(os.sched_getaffinity(0))[:2]
    if len(cores) < 2:
        pytest.skip("needs two cores")
    spin = "import os, time\nos.sched_setaffinity(0, {%d})\nt = time.time()\n" % cores[1]
    spin += "while time.time() - t < 5: pass"
    child = subprocess.Popen([sys.executable, "-c", spin])
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cores[0]})
        time.sleep(0.3)  # the child starts spinning
        probe = _threads._LoadProbe()
        probe.mark()
        assert probe.free_cores(min_seconds=1.0) is None  # too young
        start = time.perf_counter()
        while time.perf_counter() - start < 0.1:
            pass
        free = probe.free_cores(min_seconds=0.05)
    finally:
        os.sched_setaffinity(0, before)
        child.kill()
        child.wait()
    assert free is not None and free < 1.5, free


@TWO
def test_timed_choice_ignores_the_switch_and_one_slow_step(monkeypatch, restore_threads):
    """Measured on the project machine: the first step on two threads took 18 ms (the
    threads start), the next ones 1.3-1.7 ms against 2.3 on one thread; a window that
    counted that step chose one thread for the whole fit. One slow step later costs a
    new comparison (one window on each count), not the rest of the fit."""
    clock = _Clock()
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    numba.set_num_threads(2)
    with _threads._ThreadPlan(2, adaptive=True) as plan:
        steps_on = {1: 0, 2: 0}
        for step in range(60):
            n = plan.n
            steps_on[n] += 1
            first_on_two = n == 2 and steps_on[2] == 1
            slow = step == 40  # one stray slow step on two threads, later
            seconds = 18e-3 if first_on_two else (2.3e-3 if n == 1 else 1.4e-3)
            clock.t += seconds * (10 if slow else 1)
            plan.step_done(200)
            if step == 39:
                assert plan.history == [1, 2]
        assert plan.history == [1, 2, 1, 2] and plan.n == 2
        window = max(plan.MIN_STEPS, math.ceil(plan.MIN_SECONDS / 2.3e-3))
        assert steps_on[1] <= plan.WARM_STEPS + 2 * (1 + window)


@TWO
def test_long_steps_choose_within_a_few_steps(monkeypatch, restore_threads):
    """Steps of 0.3 s (a 1-D convolution network on 500-step series, batch 64): steps
    adding up to ``LONG_WINDOW`` are a window, so a fit of 8 steps runs most of them on
    the faster count instead of spending 2 + 3 + 1 + 3 steps choosing."""
    clock = _Clock()
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    numba.set_num_threads(2)
    with _threads._ThreadPlan(2, adaptive=True) as plan:
        counts = _counts(plan, clock, lambda n: 0.3 / n, 8)
        # 2 steps before timing, 1 timed on one thread, then two threads
        assert counts == [1, 1, 1, 2, 2, 2, 2, 2]
        assert plan.n == 2 and plan.history == [1, 2]
    with _threads._ThreadPlan(2, adaptive=True) as plan:  # two threads slower: back to one
        _drive(plan, clock, lambda n: 0.03 if n == 1 else 0.05, 8)
        assert plan.n == 1 and plan.history == [1, 2, 1]


@TWO
def test_large_work_starts_on_every_thread(monkeypatch, restore_threads):
    """Batches of large work (the FCN on 500-step series: 0.42 s on one thread, 0.23 on
    two) start on every thread and time it first; the step after the change to one
    thread counts (long steps, no threads to launch), so choosing costs one slow step
    of eight instead of three."""
    clock = _Clock()
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    numba.set_num_threads(2)
    with _threads._ThreadPlan(2, adaptive=True, start_max=True) as plan:
        counts = _counts(plan, clock, lambda n: 0.42 if n == 1 else 0.23, 8)
        assert counts == [2, 2, 2, 1, 2, 2, 2, 2]
        assert plan.history == [2, 1, 2]
    with _threads._ThreadPlan(2, adaptive=True, start_max=True) as plan:  # one is faster
        _drive(plan, clock, lambda n: 0.03 if n == 1 else 0.05, 8)
        assert plan.n == 1 and plan.history == [2, 1]
    # short steps: the first step after a change is not counted (it pays the change)
    with _threads._ThreadPlan(2, adaptive=True, start_max=True) as plan:
        counts = _counts(plan, clock, lambda n: 0.03 if n == 1 else 0.021, 18)
        # (2 warm-up steps, 5 timed: 0.105 s; 1 + 4 on one thread)
        assert counts == [2] * 7 + [1] * 5 + [2] * 6


@TWO
def test_slow_first_steps_of_woken_threads_do_not_decide(monkeypatch, restore_threads):
    """Measured on the project machine (LSTM, 128 units, batches of 64): after five steps
    of 10 ms on one thread, the steps on two took 15.5, 18.7, 20.0, 10.2 ms, then 5.5;
    a window of three steps judged as a whole chose one thread for the rest of the fit."""
    clock = _Clock()
    monkeypatch.setattr(_threads.time, "perf_counter", clock)
    numba.set_num_threads(2)
    woken = [15.5e-3, 18.7e-3, 20.0e-3, 10.2e-3]
    with _threads._ThreadPlan(2, adaptive=True) as plan:
        _replay(plan, clock, 10e-3, lambda i: woken[i] if i < len(woken) else 5.5e-3, 64)
        assert plan.history == [1, 2] and plan.n == 2
    # another process spinning on the other core (measured: 1.2 ms on one thread, then
    # 42.5, 9.1, 0.9, 0.8, 0.8, 5.0, 0.8 ms on two): the 9.1 ms step ends the window
    busy = [42.5e-3, 9.1e-3, 0.9e-3, 0.8e-3, 0.8e-3, 5.0e-3, 0.8e-3]
    with _threads._ThreadPlan(2, adaptive=True) as plan:
        on_two = _replay(plan, clock, 1.2e-3, lambda i: busy[i % len(busy)], 200)
        assert plan.history == [1, 2, 1] and on_two == 2
    # threads that stay slow are still judged slow
    with _threads._ThreadPlan(2, adaptive=True) as plan:
        _drive(plan, clock, lambda n: 10e-3 if n == 1 else 12e-3, 40, rows=1)
        assert plan.history == [1, 2, 1] and plan.n == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_starts_on_every_thread_only_for_large_work(restore_threads):
    X = np.random.default_rng(0).normal(size=(20, 1, 8, 8))
    net = ConvNetClassifier((4,), hidden_layer_sizes=(), max_iter=1).fit(X, X[:, 0, 0, 0] > 0)
    net = net._network
    per_sample = _threads.work_per_sample(net.layers)
    numba.set_num_threads(_threads._pool_size())
    n_max = _threads.available_threads()
    large = -(-_threads.LARGE_WORK // per_sample)  # a batch of that many samples is large
    with _threads.fit_threads(net, 10 * large, large) as plan:
        assert plan.n == n_max
    medium = (_threads.LARGE_WORK - 1) // per_sample
    assert medium * per_sample >= _threads.SMALL_WORK
    with _threads.fit_threads(net, 10 * medium, medium) as plan:
        assert plan.n == 1


@TWO
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_switching_threads_during_a_fit_does_not_change_results(monkeypatch, restore_threads):
    """The plan may change the thread count between any two steps."""
    X = np.random.default_rng(0).normal(size=(96, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].mean(axis=(1, 2)) > 0).astype(int)
    params = dict(conv_filters=(4,), hidden_layer_sizes=(8,), batch_size=16, max_iter=3)
    with sknet.threadpool_limits(1):
        one = ConvNetClassifier(random_state=0, **params).fit(X, y)

    def flip(self, n_samples):  # alternate 1 and 2 threads every step
        self._apply(2 if self.n == 1 else 1)

    monkeypatch.setattr(_threads._ThreadPlan, "step_done", flip)
    numba.set_num_threads(2)
    switched = ConvNetClassifier(random_state=0, **params).fit(X, y)
    np.testing.assert_array_equal(one._network.theta, switched._network.theta)
    np.testing.assert_array_equal(one.predict_proba(X), switched.predict_proba(X))


def test_orthogonal_init_runs_blas_on_one_thread(monkeypatch):
    """After a NumPy product on two threads an OpenBLAS worker spins for about 0.1 s; the
    recurrent layers' QR ran on two and slowed the first steps of every LSTM fit."""
    from sknet._layers import recurrent

    seen = []
    qr = np.linalg.qr

    def recording_qr(a):
        seen.append(_blas_threads())
        return qr(a)

    monkeypatch.setattr(recurrent.np.linalg, "qr", recording_qr)
    with threadpool_limits(2, user_api="blas"):
        if _blas_threads() != [2]:
            pytest.skip("BLAS runs one thread here")
        q = recurrent._orthogonal(np.random.default_rng(0), 16)
        assert seen == [[1]] and _blas_threads() == [2]
    np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-12)


def test_one_blas_limit_is_reference_counted(restore_threads):
    """Overlapping fits (threads of one process): the limits from before the first come
    back after the last, whatever the order they end in."""
    ThreadpoolController().limit(limits=2, user_api="blas")
    _threads._one_blas_enter()  # a fit on one thread
    _threads._one_blas_enter()  # another one, in another thread of the process
    assert _blas_threads() == [1]
    _threads._one_blas_exit()  # the first fit ends while the second runs
    assert _blas_threads() == [1]
    _threads._one_blas_exit()
    assert _blas_threads() == [2]
