"""Optimizer kernels and state holders against scikit-learn's SGD / Adam formulas."""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer as SkAdam
from sklearn.neural_network._stochastic_optimizers import SGDOptimizer as SkSGD

from sknet import _config
from sknet._solvers import AdamOptimizer, SGDOptimizer
from sknet.kernels import optim
from tests.kernels import reference_dense as ref

DTYPES = [np.float64, np.float32]


def _steps(rng, n_steps, size, dtype):
    return [rng.normal(size=size).astype(dtype) for _ in range(n_steps)]


def tol(dtype):
    return {"rtol": 1e-13, "atol": 1e-15} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_update_matches_reference(nesterov, dtype, rng):
    theta = rng.normal(size=40).astype(dtype)
    velocity = np.zeros_like(theta)
    reference = ref.SGD([theta], learning_rate=0.05, momentum=0.9, nesterov=nesterov)
    for g in _steps(rng, 5, 40, dtype):
        optim.sgd_update(theta, g, velocity, dtype(0.05), dtype(0.9), nesterov)
        reference.step([g.astype(np.float64)])
    assert theta.dtype == velocity.dtype == dtype
    assert_allclose(theta, reference.params[0], **tol(dtype))
    assert_allclose(velocity, reference.velocities[0], **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_matches_reference(dtype, rng):
    theta = rng.normal(size=40).astype(dtype)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.01
    reference = ref.Adam([theta], lr, b1, b2, eps)
    for t, g in enumerate(_steps(rng, 6, 40, dtype), start=1):
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        optim.adam_update(
            theta,
            g,
            m,
            v,
            dtype(lr_t),
            dtype(b1),
            dtype(1 - b1),
            dtype(b2),
            dtype(1 - b2),
            dtype(eps),
        )
        reference.step([g.astype(np.float64)])
    assert theta.dtype == m.dtype == v.dtype == dtype
    assert_allclose(theta, reference.params[0], **tol(dtype))
    assert_allclose(m, reference.ms[0], **tol(dtype))
    assert_allclose(v, reference.vs[0], rtol=1e-12 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_parallel_twins_are_bit_identical_to_serial(n_threads, rng):
    n = int(2.5 * optim.PARALLEL_BLOCK)  # two full blocks and a partial one
    theta0 = rng.normal(size=n)
    g = rng.normal(size=n)
    old = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        a, va = theta0.copy(), np.full(n, 0.1)
        b, vb = theta0.copy(), np.full(n, 0.1)
        optim.sgd_update(a, g, va, 0.1, 0.9, True)
        optim.sgd_update_parallel(b, g, vb, 0.1, 0.9, True)
        assert_array_equal(a, b)
        assert_array_equal(va, vb)
        args = (0.01, 0.9, 0.1, 0.999, 0.001, 1e-8)
        a, ma, wa = theta0.copy(), np.full(n, 0.2), np.full(n, 0.3)
        b, mb, wb = theta0.copy(), np.full(n, 0.2), np.full(n, 0.3)
        optim.adam_update(a, g, ma, wa, *args)
        optim.adam_update_parallel(b, g, mb, wb, *args)
        assert_array_equal(a, b)
        assert_array_equal(ma, mb)
        assert_array_equal(wa, wb)
    finally:
        numba.set_num_threads(old)


# ------------------------------------------------------------------ state holders
def _compare_with_sklearn(ours, theirs, rng, n_epochs=4, steps_per_epoch=3, size=30):
    """Drive sknet's and scikit-learn's optimizer with the same gradients."""
    theta = rng.normal(size=size)
    params = [theta.copy()]
    for epoch in range(n_epochs):
        for g in _steps(rng, steps_per_epoch, size, np.float64):
            ours.update_params(theta, g)
            theirs.update_params(params, [g])
        ours.iteration_ends((epoch + 1) * 50)
        theirs.iteration_ends((epoch + 1) * 50)
        assert ours.learning_rate == pytest.approx(theirs.learning_rate, rel=1e-15)
        assert_allclose(theta, params[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_optimizer_matches_sklearn(schedule, nesterov, rng):
    kw = dict(
        learning_rate_init=0.1, lr_schedule=schedule, momentum=0.8, nesterov=nesterov, power_t=0.3
    )
    _compare_with_sklearn(SGDOptimizer(30, np.float64, **kw), SkSGD([np.zeros(30)], **kw), rng)


def test_adam_optimizer_matches_sklearn(rng):
    kw = dict(learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7)
    ours = AdamOptimizer(30, np.float64, **kw)
    theirs = SkAdam([np.zeros(30)], **kw)
    _compare_with_sklearn(ours, theirs, rng)
    assert ours.t == theirs.t == 12


def test_adaptive_schedule_divides_then_stops():
    ours = SGDOptimizer(3, np.float64, learning_rate_init=1e-5, lr_schedule="adaptive")
    theirs = SkSGD([np.zeros(3)], learning_rate_init=1e-5, lr_schedule="adaptive")
    decisions = []
    for _ in range(4):
        decisions.append(ours.trigger_stopping("msg", False))
        assert decisions[-1] == theirs.trigger_stopping("msg", False)
        assert ours.learning_rate == pytest.approx(theirs.learning_rate)
    assert decisions == [False, False, True, True]  # 1e-5 -> 2e-6 -> 4e-7 -> stop
    assert SGDOptimizer(3, np.float64, lr_schedule="constant").trigger_stopping("m", False)


@pytest.mark.parametrize("cls", [SGDOptimizer, AdamOptimizer])
def test_optimizer_keeps_float32(cls, rng):
    opt = cls(20, np.float32)
    theta = rng.normal(size=20).astype(np.float32)
    for _ in range(3):
        opt.update_params(theta, rng.normal(size=20).astype(np.float32))
    assert theta.dtype == np.float32
    state = [opt.velocity] if cls is SGDOptimizer else [opt.m, opt.v]
    assert all(s.dtype == np.float32 for s in state)


# ------------------------------------------------------------------ penalty helpers
@pytest.mark.parametrize("dtype", DTYPES)
def test_penalty_kernels(dtype, rng):
    theta = rng.normal(size=37).astype(dtype)
    grad = rng.normal(size=37).astype(dtype)
    expected_grad = grad.astype(np.float64) + 0.3 * theta
    expected_ss = float(np.sum(theta.astype(np.float64) ** 2))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(optim.sum_squares(theta), expected_ss, rtol=rtol)

    g2 = grad.copy()
    ss = optim.l2_penalty_grad(theta, g2, dtype(0.3))
    assert g2.dtype == dtype
    assert_allclose(g2, expected_grad, rtol=rtol, atol=1e-6)
    assert_allclose(ss, expected_ss, rtol=rtol)


def test_clip_by_norm():
    g = np.array([3.0, 4.0])
    assert optim.clip_by_norm(g, 10.0) == pytest.approx(5.0)
    assert_array_equal(g, [3.0, 4.0])  # under the limit: untouched
    assert optim.clip_by_norm(g, 1.0) == pytest.approx(5.0)
    assert_allclose(g, [0.6, 0.8])
    assert_allclose(np.linalg.norm(g), 1.0)
    g = np.array([np.inf, 1.0])
    assert not np.isfinite(optim.clip_by_norm(g, 1.0))
    assert_array_equal(g, [np.inf, 1.0])


def test_l2_blocks_cover_the_vector_and_mark_penalised_spans():
    ranges = [(0, 10_000), (10_005, 10_020)]  # W1 (10,000 weights), b1, W2, b2
    blocks = optim.l2_blocks(ranges, 0, 10_030, block=4096)
    # contiguous cover of [0, n), no block straddles a span's edge, none too long
    assert blocks[0, 0] == 0 and blocks[-1, 1] == 10_030
    assert_array_equal(blocks[1:, 0], blocks[:-1, 1])
    assert (blocks[:, 1] - blocks[:, 0]).max() <= 4096
    for lo, hi, pen in blocks:
        inside = any(a <= lo and hi <= b for a, b in ranges)
        outside = all(hi <= a or lo >= b for a, b in ranges)
        assert inside or outside
        assert pen == inside
    # relative to a frozen prefix: offsets start at 0, the prefix is left out
    tail = optim.l2_blocks(ranges, 10_000, 10_030)
    assert_array_equal(tail, [[0, 5, 0], [5, 20, 1], [20, 30, 0]])


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_l2_updates_equal_penalty_then_update(solver, dtype, n_threads, rng):
    """``*_l2`` kernels: bit-identical to ``l2_penalty_grad`` on the penalised spans then
    the plain update; the returned sums of squares are the pre-step weights'."""
    n = 3 * optim.L2_BLOCK + 123
    ranges = [(0, 2 * optim.L2_BLOCK + 7), (2 * optim.L2_BLOCK + 50, n - 3)]
    blocks = optim.l2_blocks(ranges, 0, n)
    c = dtype(0.01)
    theta0 = rng.normal(size=n).astype(dtype)
    grad0 = rng.normal(size=n).astype(dtype)
    state0 = [np.abs(rng.normal(size=n)).astype(dtype) for _ in range(2)]

    theta, grad, state = theta0.copy(), grad0.copy(), [s.copy() for s in state0]
    expected_sumsq = sum(optim.l2_penalty_grad(theta[a:b], grad[a:b], c) for a, b in ranges)
    if solver == "sgd":
        scalars = (dtype(0.05), dtype(0.9), True)
        optim.sgd_update(theta, grad, state[0], *scalars)
        fused = (optim.sgd_update_l2, optim.sgd_update_l2_parallel)
    else:
        scalars = tuple(dtype(x) for x in (1e-3, 0.9, 0.1, 0.999, 0.001, 1e-8))
        optim.adam_update(theta, grad, state[0], state[1], *scalars)
        fused = (optim.adam_update_l2, optim.adam_update_l2_parallel)

    for kernel in fused:
        t, g, st = theta0.copy(), grad0.copy(), [s.copy() for s in state0]
        sumsq = np.empty(blocks.shape[0])
        before = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            kernel(t, g, *(st[:1] if solver == "sgd" else st), *scalars, c, blocks, sumsq)
        finally:
            numba.set_num_threads(before)
        assert_array_equal(t, theta)
        assert_array_equal(g, grad)  # the gradient includes the penalty, as before
        for a, b in zip(st, state):
            assert_array_equal(a, b)
        assert sumsq.sum() == pytest.approx(
            expected_sumsq, rel=1e-12 if dtype == np.float64 else 1e-5
        )
        assert sumsq.sum() == pytest.approx(
            sum(float((theta0[a:b].astype(np.float64) ** 2).sum()) for a, b in ranges),
            rel=1e-12 if dtype == np.float64 else 1e-5,
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_penalty_sums_are_l2_penalty_grad_bits(dtype):
    """The fused updates (serial and parallel twins, Adam and SGD) call the one compiled
    ``l2_penalty_grad`` (``optim._l2_entry``): each penalised block's sum of squares and
    gradient are bit for bit those of ``l2_penalty_grad`` on that block, the unfused
    path's (a copy linked into the update kernel could round the sum differently)."""
    rng = np.random.default_rng(0)
    n = 20000
    blocks = optim.l2_blocks([(100, 9000), (12000, 15000)], 0, n)
    theta = rng.normal(size=n).astype(dtype)
    grad0 = rng.normal(size=n).astype(dtype)
    c = dtype(1e-4)
    expected, grads = [], grad0.copy()
    for lo, hi, pen in blocks:
        expected.append(optim.l2_penalty_grad(theta[lo:hi], grads[lo:hi], c) if pen else 0.0)
    f = dtype
    adam = (f(1e-3), f(0.9), f(0.1), f(0.999), f(0.001), f(1e-8))
    for update, state in (
        (optim.adam_update_l2, adam),
        (optim.adam_update_l2_parallel, adam),
        (optim.sgd_update_l2, (f(1e-2), f(0.9), True)),
        (optim.sgd_update_l2_parallel, (f(1e-2), f(0.9), True)),
    ):
        th, g, sumsq = theta.copy(), grad0.copy(), np.empty(len(blocks))
        moments = [np.zeros(n, dtype) for _ in range(2 if len(state) == 6 else 1)]
        update(th, g, *moments, *state, c, blocks, sumsq)
        assert_array_equal(sumsq, np.array(expected), err_msg=update.__name__)
        assert_array_equal(g, grads, err_msg=update.__name__)


_FUSED = """
import numpy as np
from sknet.kernels import optim
n = 20000
blocks = optim.l2_blocks([(100, 9000), (12000, 15000)], 0, n)
rng = np.random.default_rng(0)
for dt in (np.float32, np.float64):
    theta, grad = rng.normal(size=n).astype(dt), rng.normal(size=n).astype(dt)
    sumsq = np.empty(len(blocks))
    state = [dt(v) for v in (1e-3, 0.9, 0.1, 0.999, 0.001, 1e-8, 1e-4)]
    optim.adam_update_l2(theta, grad, np.zeros(n, dt), np.ones(n, dt), *state, blocks, sumsq)
    print(*[float(s).hex() for s in sumsq])
"""


@pytest.mark.skipif(not _config.CACHE, reason="numba's on-disk cache is off")
def test_fused_penalty_same_bits_compiled_and_loaded(tmp_path):
    """A process that compiles the fused Adam update and one that loads it from the
    cache get the same sums of squares (before ``optim._l2_entry``, the float64 one of
    block [100, 4196) differed in its last bit: two copies of the penalty's sum)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    cmd = [sys.executable, "-c", _FUSED]
    runs = [subprocess.run(cmd, env=env, capture_output=True, text=True, check=True) for _ in "ab"]
    assert runs[0].stdout == runs[1].stdout
    assert len(runs[0].stdout.split()) == 2 * 8
