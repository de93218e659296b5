"""Thread-pool controls: the leaf the estimators and :mod:`sknet.parallel` share.

numba's pool size, the cores this process may use, the BLAS controller (both OpenBLAS
copies, numpy's and scipy's) and the thread plan of a fit (:func:`fit_threads`). Imports
nothing from sknet, so that ``_base`` can use it without importing :mod:`sknet.parallel`
(which imports the estimators for its warm-up).

How a fit chooses its thread count (:func:`fit_threads`), without changing any
process-wide setting other code relies on:

* The budget is the calling thread's numba thread count (what
  :func:`sknet.set_num_threads` set), capped by the cores of the CPU affinity mask, by
  ``OMP_NUM_THREADS`` when set (Dask's nannies and joblib's loky workers set it; loky
  sets ``NUMBA_NUM_THREADS`` too, which numba applies itself) and by the OpenMP limit
  threadpoolctl reports (``threadpoolctl.threadpool_limits(1)`` around a fit).
* A fit whose work per mini-batch is small runs on one thread: waking threads costs
  more than they save, and on a machine where another process keeps a core busy, every
  multi-threaded step waits for the thread sharing that core to be scheduled (measured:
  ``cross_val_score`` of an MLP on digits 14x slower with two threads than with one).
* Prediction follows the same rule (one thread when the whole input is small work),
  without timing. Between fits that matters too: after a two-thread product, OpenBLAS's
  worker keeps spinning for a while, on a core a single-threaded fit may need.
* A larger fit times its training steps: a few on one thread, a few on the whole
  budget, and keeps the faster; it compares again when the steps get much slower
  (another process took a core) or, after a growing interval, while it runs on one
  thread (the core may be free again). Before it times the whole budget after one
  thread, it reads how busy the cores were meanwhile (Linux's ``/proc/stat``): when
  other work leaves less than one and a half of them free, it does not try (each try
  cost a quarter of a short fit there). A fit whose mini-batches are large work
  (``LARGE_WORK``: a 1-D convolution network on long series) starts on the whole
  budget and times it first, so that its few long choosing steps run mostly there.
  Results do not depend on the thread count, so switching changes only speed.

The numba count is set for the calling thread only (numba keeps one per Python thread)
and restored after the fit. No kernel calls BLAS (their matrix products are
``kernels.product``); BLAS runs only in NumPy / SciPy code around them (sparse input,
L-BFGS). Its limit is process-wide in OpenBLAS; sknet lowers it to one thread only while
a fit runs on one thread (so that "one thread" holds for the whole fit), reference-counted
across concurrent fits, and restores the previous limits when the last one ends (as
scikit-learn's KMeans does around its iterations).
"""

import os
import threading
import time
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
_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0
_BLAS_LIMITER = None


def _one_blas_enter():
    """Limit BLAS to one thread until the matching :func:`_one_blas_exit` (reference
    counted: the limits from before the first enter come back after the last exit)."""
    global _BLAS_CONTROLLER, _BLAS_USERS, _BLAS_LIMITER
    with _BLAS_LOCK:
        if _BLAS_CONTROLLER is None:
            _BLAS_CONTROLLER = _blas_controller()
        if _BLAS_USERS == 0:
            _BLAS_LIMITER = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
        _BLAS_USERS += 1


def _one_blas_exit():
    global _BLAS_USERS, _BLAS_LIMITER
    with _BLAS_LOCK:
        _BLAS_USERS -= 1
        if _BLAS_USERS == 0:
            _BLAS_LIMITER.restore_original_limits()
            _BLAS_LIMITER = None


@contextmanager
def one_blas_thread():
    """BLAS on one thread inside (reference counted, as a fit on one thread): for small
    NumPy / SciPy linear algebra around the kernels. After a call on two threads,
    OpenBLAS's worker spins for about 0.1 s (measured after a 128 x 128 QR): on a
    two-core machine, the core a fit that follows wants for its own threads."""
    _one_blas_enter()
    try:
        yield
    finally:
        _one_blas_exit()


def _env_thread_limit(name="OMP_NUM_THREADS"):
    """The first count of ``OMP_NUM_THREADS`` (``"4"`` or ``"4,2"``), None if unset or
    not a positive integer."""
    value = os.environ.get(name, "").split(",")[0].strip()
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def _openmp_limit():
    """The smallest thread count of the OpenMP runtimes threadpoolctl finds, None if
    none is loaded."""
    global _BLAS_CONTROLLER
    with _BLAS_LOCK:
        if _BLAS_CONTROLLER is None:
            _BLAS_CONTROLLER = _blas_controller()
        libs = [lib for lib in _BLAS_CONTROLLER.lib_controllers if lib.user_api == "openmp"]
    counts = [lib.num_threads for lib in libs]
    counts = [n for n in counts if n is not None and n >= 1]
    return min(counts) if counts else None


def available_threads():
    """Threads a fit started from this Python thread may use.

    The calling thread's numba count, capped by the CPU affinity mask, ``OMP_NUM_THREADS``
    and the OpenMP limit threadpoolctl reports (see the module docstring).
    """
    limits = [numba.get_num_threads(), _cpu_count(), _env_thread_limit()]
    n = min(n for n in limits if n is not None)
    if n > 1:
        n = min(n, _openmp_limit() or n)
    return max(1, n)


def _idle_seconds():
    """Idle seconds since boot of the cores in this process's affinity mask, summed, and
    how many cores were counted: from Linux's ``/proc/stat`` (idle and iowait; time a
    hypervisor took from them counts as busy); None where it cannot be read."""
    try:
        cpus = os.sched_getaffinity(0)
        with open("/proc/stat", "rb") as f:
            text = f.read()
        ticks = os.sysconf("SC_CLK_TCK")
    except (AttributeError, OSError, ValueError):
        return None
    idle = n = 0
    try:
        for line in text.split(b"\n"):
            if line[:3] == b"cpu" and line[3:4].isdigit():
                fields = line.split()
                if len(fields) > 5 and int(fields[0][3:]) in cpus:
                    idle += int(fields[4]) + int(fields[5])
                    n += 1
    except ValueError:  # not the format this reads: no figure
        return None
    return (idle / ticks, n) if n and ticks > 0 else None


class _LoadProbe:
    """Cores in the affinity mask that other processes (and a hypervisor) left free since
    :meth:`mark`: the cores minus their busy time per second. This process's own threads
    do not count: after a NumPy product on two threads, OpenBLAS's worker spins for tens
    of milliseconds, and counted, it made an idle machine look busy."""

    def mark(self):
        self._start = (time.perf_counter(), time.process_time(), _idle_seconds())

    def free_cores(self, min_seconds):
        """None when the mark is younger than ``min_seconds`` or the counts are missing."""
        wall0, own0, idle0 = self._start
        elapsed = time.perf_counter() - wall0
        now = _idle_seconds()
        if elapsed < min_seconds or idle0 is None or now is None or now[1] != idle0[1]:
            return None
        n_cpus = now[1]
        busy = n_cpus * elapsed - (now[0] - idle0[0])
        others = busy - (time.process_time() - own0)
        return n_cpus - others / elapsed


def work_per_sample(layers):
    """Rough multiply-adds per sample of one forward pass through ``layers``.

    A layer's parameters times the number of places they are applied: the output
    positions of a convolution, the time steps of a recurrent layer, once otherwise;
    plus one operation per output value (activations, pooling, normalization).
    """
    work = 0
    stack = list(layers)
    while stack:
        layer = stack.pop()
        stack.extend(layer.sublayers())
        n_params = sum(int(np.prod(shape)) for _, shape, _ in layer.param_specs())
        kind = getattr(layer, "kind", "")
        if kind == "conv":
            reuse = int(np.prod(layer.output_shape[1:]))
        elif kind == "recurrent":
            reuse = int(layer.input_shape[0])
        else:
            reuse = 1
        work += n_params * reuse + int(np.prod(getattr(layer, "output_shape", (1,))))
    return work


#: below this many multiply-adds per mini-batch a fit runs on one thread, untimed. On the
#: project machine (2 cores, shared) an MLP on digits (64 -> 128 -> 10, batches of 200:
#: 2e6) ran 5x faster on one thread than on two even with no other process of ours
#: running; the 8x8 digits ConvNet of ``benchmarks/bench_convnet.py`` (1.3e7 per batch of
#: 128) ran 1.4x faster on two (0.066-0.074 vs 0.10 s per epoch). Above it the timed
#: comparison decides.
SMALL_WORK = 1 << 22
#: from this many multiply-adds per mini-batch on, a fit starts on every thread (its
#: warm-up steps too) and times them first: the FCN of ``benchmarks/bench_fcn.py`` on
#: GunPoint (batches of 16 series of 150 steps: 6e8) ran 1.6x faster on two threads
#: (27 vs 43 ms per batch), on 500-step series (batch 64: 5e9) 1.8x (0.23 vs 0.42 s).
LARGE_WORK = 1 << 28

_ACTIVE = threading.local()


class _ThreadPlan:
    """The thread count of one fit (see the module docstring): sets the calling thread's
    numba count, and a one-thread BLAS limit while it runs on one thread.

    With ``adaptive``, the training steps are timed in windows (at least ``MIN_STEPS``
    steps and ``MIN_SECONDS``, or any steps adding up to ``LONG_WINDOW``: a fit of a few
    long steps, e.g. a 1-D convolution network on long series, would otherwise spend
    most of them choosing). The first step after a change of thread count is not
    counted: it pays the change, e.g. waking or launching the threads; it is counted
    when the steps are long (``LONG_STEP``) and the change launches no threads (to one
    thread, or to a count that ran before in this fit): then the change costs little of
    the step. A window's cost per sample is the total over the later half of its steps
    (what the fit pays, but not the slow first steps of threads just woken), and the
    windows compared are one on one thread and one on ``n_max`` threads (in the other
    order with ``start_max``); then the faster runs. A step on ``n_max`` threads
    ``HOPELESS`` times slower than one thread ends their window at once, and the window
    on ``n_max`` threads after one is skipped as lost when other work keeps the cores
    busy (``FREE_CORES``). On ``n_max`` threads, a window ``SLOWDOWN`` times slower than
    when chosen starts a new comparison; on one thread, every thread is tried again
    after ``backoff`` times the duration of its last window (doubling each time it
    loses), so trying costs a bounded share of the fit.
    """

    #: measured on the project machine (LSTM, 128 units, batches of 64 and 128): the
    #: first 2-4 steps on two threads ran at the speed of one thread or slower (13-35 ms
    #: against 5-10 ms later) while an OpenBLAS worker still spun after a NumPy product
    #: on two threads (its initial weights' QR, since run on one BLAS thread; a user's
    #: own NumPy work before a fit, e.g. a pipeline's PCA, leaves the same); windows of
    #: 3 steps chose one thread in most fits, windows of 6 judged by their later half
    #: chose two in every fit
    MIN_STEPS = 6
    MIN_SECONDS = 0.01
    #: a step on ``n_max`` threads this many times slower per sample than one thread
    #: ends their comparison window at once: measured with another process spinning on
    #: one of the project machine's two cores, the first steps on two threads after one
    #: ran 6-30x slower (a 1-thread step of 1.2 ms against 9-42 ms; LSTM 2.5 against 16),
    #: and a window of six such steps cost more than the rest of a short fit; the slow
    #: first steps of threads just woken on an idle machine ran 1.4-1.8x slower (up to
    #: 3.8x in one fit of 30)
    HOPELESS = 5.0
    #: before every thread is timed after one, the cores free of other work since the
    #: change to one thread (:class:`_LoadProbe`, measured over at least
    #: ``PROBE_SECONDS``); below ``FREE_CORES`` the timing is skipped as lost: with
    #: another process spinning on one of two cores, the first two steps on two threads
    #: took 36-42 ms each against 1.2 on one (an 8x8 digits ConvNet), a quarter of the
    #: whole fit
    PROBE_SECONDS = 0.01
    FREE_CORES = 1.5
    #: a window of fewer steps closes once they add up to this many seconds
    LONG_WINDOW = 0.1
    #: steps run before timing starts (compiling or loading kernels, first allocations)
    WARM_STEPS = 2
    #: steps this long count from the first after a change of thread count, unless the
    #: change launches threads
    LONG_STEP = 0.05
    SLOWDOWN = 1.5
    #: every thread is kept only when at least this much faster than one (one thread is
    #: kinder to the rest of the machine)
    MARGIN = 0.9
    BACKOFF = 20.0

    def __init__(self, n_max, adaptive, start_max=False):
        self.n_max = n_max
        self.adaptive = adaptive and n_max > 1
        self.n = 1 if self.adaptive and not start_max else n_max
        self._blas_limited = False
        self._warm = self.WARM_STEPS
        self._window = [0.0, []]  # seconds, each step's (seconds, samples)
        self._cost = {}  # thread count -> seconds per sample in its last window
        # the count to time next in a comparison (None: decide)
        self._next = 1 if self.n > 1 else n_max
        self._ran = {self.n}  # the counts run in this fit
        self._last = 0.0  # seconds of the last step
        self._comparing = self.adaptive
        self._ref = None  # cost of the count chosen, when chosen
        self._wait = 0.0  # seconds on one thread before trying every thread again
        self._backoff = self.BACKOFF
        self._n_max_seconds = 0.0
        self._probe = _LoadProbe()
        #: the counts run, in order, and the timings of every thread skipped because
        #: the cores were busy (for tests and benchmarks)
        self.history = [self.n]
        self.busy_skips = 0

    def _apply(self, n):
        if n != self.n:
            self.history.append(n)
            if self._last < self.LONG_STEP or (n > 1 and n not in self._ran):
                self._warm = max(self._warm, 1)  # the first step pays the switch
            self._ran.add(n)
            if n == 1:
                self._probe.mark()
        self.n = n
        numba.set_num_threads(n)
        if n == 1 and not self._blas_limited:
            _one_blas_enter()
            self._blas_limited = True
        elif n > 1 and self._blas_limited:
            _one_blas_exit()
            self._blas_limited = False

    def __enter__(self):
        self._numba_before = numba.get_num_threads()
        self._apply(self.n)
        if self.adaptive:  # (a prediction or a small fit reads no core counts)
            self._probe.mark()
        self._tick = time.perf_counter()
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self._numba_before)
        if self._blas_limited:
            _one_blas_exit()
            self._blas_limited = False
        return False

    def step_done(self, n_samples):
        now = time.perf_counter()
        seconds, self._tick = now - self._tick, now
        self._last = seconds
        if not self.adaptive:
            return
        if self._warm:
            self._warm -= 1
            return
        window = self._window
        window[0] += seconds
        window[1].append((seconds, max(n_samples, 1)))
        hopeless = (
            self._comparing
            and self.n > 1
            and 1 in self._cost
            and seconds > self.HOPELESS * self._cost[1] * max(n_samples, 1)
        )
        if (
            not hopeless
            and window[0] < self.LONG_WINDOW
            and (len(window[1]) < self.MIN_STEPS or window[0] < self.MIN_SECONDS)
        ):
            return
        later = window[1][len(window[1]) // 2 :]
        cost = sum(t for t, _ in later) / sum(m for _, m in later)
        spent = window[0]
        self._window = [0.0, []]
        n = self.n
        self._cost[n] = cost
        if n > 1:
            self._n_max_seconds = spent
        if self._comparing:
            if self._next is not None:
                following, self._next = self._next, None
                if following == self.n_max and n == 1:
                    self._time_every_thread(spent)
                else:
                    self._apply(following)
                return
            self._comparing = False
            if self._cost[self.n_max] < self.MARGIN * self._cost[1]:
                best, self._backoff = self.n_max, self.BACKOFF
            else:
                best = 1
                self._wait = self._backoff * self._n_max_seconds
                self._backoff *= 2
            self._ref = self._cost[best]
            self._apply(best)
        elif n > 1 and cost > self.SLOWDOWN * self._ref:
            # a new comparison, every thread timed again after one (one slow step, e.g.
            # a page-fault storm, then costs a comparison, not the rest of the fit)
            self._comparing = True
            self._next = self.n_max
            self._apply(1)
        elif n == 1:
            self._wait -= spent
            if self._wait <= 0:
                self._comparing = True
                self._time_every_thread(spent)

    def _time_every_thread(self, spent):
        """Go on to a window on every thread, unless other work keeps the cores busy:
        then stay on one and look again after ``BACKOFF`` times the last window."""
        free = self._probe.free_cores(self.PROBE_SECONDS)
        if free is None or free >= self.FREE_CORES:
            self._apply(self.n_max)
            return
        self.busy_skips += 1
        self._comparing = False
        self._ref = self._cost[1]
        self._wait = self.BACKOFF * spent
        self._probe.mark()


@contextmanager
def fit_threads(network, n_samples, batch_size, adaptive=True):
    """Choose the thread count of a fit of ``network`` (see the module docstring).

    Parameters
    ----------
    network : the built network (its ``layers``)
    n_samples : int
    batch_size : int or "auto" (mini-batches of min(200, n_samples)) or None (full batch)
    adaptive : bool
        Time the training steps to choose between every thread and one
        (:func:`step_done` calls); False keeps the budget (L-BFGS).
    """
    if batch_size == "auto":
        batch = min(200, n_samples)
    elif batch_size is None:
        batch = n_samples
    else:
        batch = max(1, min(int(batch_size), n_samples))
    n_max = available_threads()
    work = work_per_sample(network.layers) * batch
    if n_max > 1 and work < SMALL_WORK:
        n_max = 1
    plan = _ThreadPlan(n_max, adaptive, start_max=work >= LARGE_WORK)
    stack = getattr(_ACTIVE, "plans", None)
    if stack is None:
        stack = _ACTIVE.plans = []
    with plan:
        stack.append(plan)
        try:
            yield plan
        finally:
            stack.pop()


def step_done(n_samples):
    """Tell the innermost fit of this thread that a training step on ``n_samples`` ended
    (see :func:`fit_threads`)."""
    stack = getattr(_ACTIVE, "plans", None)
    if stack:
        stack[-1].step_done(n_samples)
