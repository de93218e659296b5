import numba
import numpy as np
import pytest

from sknet.kernels.batchnorm import (
    BatchNormCache,
    RunningStats,
    batchnorm_backward,
    batchnorm_cache,
    batchnorm_forward,
    batchnorm_forward_inference,
)
from tests.gradcheck import assert_grad_close, numerical_grad, relative_error
from tests.kernels import reference_norm as ref

MOMENTUM, EPS = 0.1, 1e-5

# the user-facing shapes: dense (n, C), 1-D (n, C, L), 2-D (n, C, H, W); L = 3 and 7
# exercise the row sums' tail, 20 = 4*5 none.
SHAPES = [
    pytest.param((6, 3), id="dense"),
    pytest.param((7, 37), id="dense-3-blocks"),
    pytest.param((5, 3, 7), id="1d"),
    pytest.param((3, 2, 4, 5), id="2d"),
    pytest.param((4, 2, 3), id="1d-short"),
]


def view3(A):
    """The kernels' (n, C, L) view of a dense, 1-D or 2-D array."""
    return A.reshape(A.shape[0], A.shape[1], -1)


def make(rng, shape, dtype=np.float64, offset=0.0):
    X = (rng.standard_normal(shape) * 2.0 + offset).astype(dtype)
    C = shape[1]
    gamma = rng.uniform(0.5, 1.5, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    running = RunningStats(
        rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    )
    return X, gamma, beta, running


def copy_running(running):
    return RunningStats(running.mean.copy(), running.var.copy())


def forward(X, gamma, beta, running, momentum=MOMENTUM, eps=EPS):
    """Training forward on the (n, C, L) view; returns Y in X's shape and the cache."""
    X3 = view3(X)
    Y = np.empty_like(X)
    cache = batchnorm_cache(X.shape[1])
    batchnorm_forward(X3, gamma, beta, running, momentum, eps, view3(Y), cache)
    return Y, cache


def backward(X, dY, gamma, cache, need_dx=True):
    dX = np.full_like(X, np.nan)
    dgamma, dbeta = np.full_like(gamma, np.nan), np.full_like(gamma, np.nan)
    batchnorm_backward(view3(X), view3(dY), gamma, cache, dgamma, dbeta, view3(dX), need_dx)
    return dX, dgamma, dbeta


# ---- forward against the NumPy reference -------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_train_matches_reference(shape, dtype):
    rng = np.random.default_rng(0)
    X, gamma, beta, running = make(rng, shape, dtype)
    before = copy_running(running)
    Y, cache = forward(X, gamma, beta, running)
    Yr, mean, inv_std, new_mean, new_var = ref.batchnorm_train(
        view3(X), gamma, beta, before.mean, before.var, MOMENTUM, EPS
    )
    assert Y.dtype == dtype and running.mean.dtype == dtype
    assert cache.mean.dtype == cache.inv_std.dtype == np.float64
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(view3(Y), Yr, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(cache.mean, mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache.inv_std, inv_std, rtol=1e-12)
    np.testing.assert_allclose(running.mean, new_mean, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(running.var, new_var, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_inference_matches_reference(shape, dtype):
    rng = np.random.default_rng(1)
    X, gamma, beta, running = make(rng, shape, dtype)
    before = copy_running(running)
    Y = np.empty_like(X)
    batchnorm_forward_inference(view3(X), gamma, beta, running, EPS, view3(Y))
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    expected = ref.batchnorm_inference(view3(X), gamma, beta, running.mean, running.var, EPS)
    np.testing.assert_allclose(view3(Y), expected, rtol=rtol, atol=rtol)
    # inference reads the running statistics and never changes them
    np.testing.assert_array_equal(running.mean, before.mean)
    np.testing.assert_array_equal(running.var, before.var)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_inference_with_a_cache(shape):
    """Inference shares the training kernel: given a cache, it writes the running mean and
    1 / sqrt(running var + eps) there, and Y is the same as without one, bit for bit."""
    rng = np.random.default_rng(5)
    X, gamma, beta, running = make(rng, shape)
    Y, Yc = np.empty_like(X), np.empty_like(X)
    batchnorm_forward_inference(view3(X), gamma, beta, running, EPS, view3(Y))
    cache = batchnorm_cache(shape[1])
    batchnorm_forward_inference(view3(X), gamma, beta, running, EPS, view3(Yc), cache)
    np.testing.assert_array_equal(Yc, Y)
    np.testing.assert_array_equal(cache.mean, running.mean)
    np.testing.assert_allclose(cache.inv_std, 1 / np.sqrt(running.var + EPS), rtol=1e-15)


def test_float32_statistics_accumulate_in_float64():
    """A float32 batch far from zero (mean 1000, std 2) normalizes to float32 precision: the
    sums are float64 and the variance is taken about the mean (two passes)."""
    rng = np.random.default_rng(2)
    X, gamma, beta, running = make(rng, (64, 3, 50), np.float32, offset=1000.0)
    before = copy_running(running)
    Y, cache = forward(X, gamma, beta, running)
    Yr, mean, inv_std, new_mean, new_var = ref.batchnorm_train(
        X, gamma, beta, before.mean, before.var, MOMENTUM, EPS
    )
    np.testing.assert_allclose(Y, Yr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cache.mean, mean, rtol=1e-13)
    np.testing.assert_allclose(cache.inv_std, inv_std, rtol=1e-10)
    np.testing.assert_allclose(running.var, new_var, rtol=1e-6)
    # float32 data, float64 reference: dX, dgamma, dbeta to ~1e-5 relative
    dY = rng.standard_normal(X.shape).astype(np.float32)
    for got, want in zip(backward(X, dY, gamma, cache), ref.batchnorm_backward(X, dY, gamma, EPS)):
        assert relative_error(got, want) < 1e-5


def test_momentum_zero_keeps_running_statistics():
    rng = np.random.default_rng(3)
    X, gamma, beta, running = make(rng, (5, 3, 7))
    before = copy_running(running)
    forward(X, gamma, beta, running, momentum=0.0)
    np.testing.assert_array_equal(running.mean, before.mean)
    np.testing.assert_array_equal(running.var, before.var)


# ---- backward -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_finite_differences(shape):
    rng = np.random.default_rng(4)
    X, gamma, beta, running = make(rng, shape)
    view3(X)[:, 1, :] = 0.75  # a constant channel: var = 0, x_hat = 0
    R = rng.standard_normal(X.shape)

    def loss():
        return np.sum(forward(X, gamma, beta, copy_running(running))[0] * R)

    _, cache = forward(X, gamma, beta, copy_running(running))
    dX, dgamma, dbeta = backward(X, R, gamma, cache)
    assert_grad_close(loss, X, dX, rtol=1e-6)
    assert_grad_close(loss, gamma, dgamma)
    assert_grad_close(loss, beta, dbeta)
    # and the textbook formulas, channel by channel
    for got, want in zip(
        (dX, dgamma, dbeta), ref.batchnorm_backward(view3(X), R.reshape(view3(X).shape), gamma, EPS)
    ):
        np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-10, atol=1e-12)


def test_backward_constant_channel_gradient():
    """For a constant channel x_hat = 0: dgamma = 0 and dX = gamma (dY - mean dY) / sqrt(eps)."""
    rng = np.random.default_rng(5)
    X, gamma, beta, running = make(rng, (6, 2, 5))
    X[:, 0, :] = -3.0
    dY = rng.standard_normal(X.shape)
    _, cache = forward(X, gamma, beta, running)
    dX, dgamma, _ = backward(X, dY, gamma, cache)
    assert dgamma[0] == 0.0
    expected = gamma[0] * (dY[:, 0] - dY[:, 0].mean()) / np.sqrt(EPS)
    np.testing.assert_allclose(dX[:, 0], expected, rtol=1e-12)
    # the finite differences of a channel whose variance is ~0 next to eps
    numeric = numerical_grad(
        lambda: np.sum(forward(X, gamma, beta, copy_running(running))[0] * dY), X, eps=1e-7
    )
    assert relative_error(dX[:, 0], numeric[:, 0]) < 1e-6


def test_backward_in_place_and_without_dX():
    rng = np.random.default_rng(6)
    X, gamma, beta, running = make(rng, (5, 3, 6))
    dY = rng.standard_normal(X.shape)
    _, cache = forward(X, gamma, beta, running)
    dX, dgamma, dbeta = backward(X, dY, gamma, cache)
    # dX may be dY itself
    dY2, dg2, db2 = dY.copy(), np.empty(3), np.empty(3)
    batchnorm_backward(X, dY2, gamma, cache, dg2, db2, dY2, True)
    np.testing.assert_array_equal(dY2, dX)
    # need_dx=False leaves dX alone and still writes dgamma, dbeta
    dX3, dg3, db3 = backward(X, dY, gamma, cache, need_dx=False)
    assert np.isnan(dX3).all()
    np.testing.assert_array_equal(dg3, dgamma)
    np.testing.assert_array_equal(db3, dbeta)
    # Y may be X itself in the forward pass
    Y, _ = forward(X, gamma, beta, copy_running(running))
    X2 = X.copy()
    batchnorm_forward(X2, gamma, beta, copy_running(running), MOMENTUM, EPS, X2, batchnorm_cache(3))
    np.testing.assert_array_equal(X2, Y)


# ---- PyTorch autograd, float64 --------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 5), (6, 4, 9), (4, 3, 5, 6)], ids=["dense", "1d", "2d"])
def test_matches_pytorch(shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    C = shape[1]
    gamma = rng.uniform(0.5, 1.5, C)
    beta = rng.standard_normal(C)
    running = RunningStats(np.zeros(C), np.ones(C))  # PyTorch's initial values
    t_mean, t_var = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    for step in range(3):
        X = rng.standard_normal(shape) * (step + 1) + step
        dY = rng.standard_normal(shape)
        Xt = torch.from_numpy(X.copy()).requires_grad_(True)
        gt = torch.from_numpy(gamma.copy()).requires_grad_(True)
        bt = torch.from_numpy(beta.copy()).requires_grad_(True)
        Yt = F.batch_norm(Xt, t_mean, t_var, gt, bt, training=True, momentum=MOMENTUM, eps=EPS)
        Yt.backward(torch.from_numpy(dY))

        Y, cache = forward(X, gamma, beta, running)
        dX, dgamma, dbeta = backward(X, dY, gamma, cache)
        np.testing.assert_allclose(Y, Yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(running.mean, t_mean.numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(running.var, t_var.numpy(), rtol=1e-13)
    # inference with the running statistics of those three steps
    X = rng.standard_normal(shape)
    Y = np.empty_like(X)
    batchnorm_forward_inference(view3(X), gamma, beta, running, EPS, view3(Y))
    Yt = F.batch_norm(
        torch.from_numpy(X),
        t_mean,
        t_var,
        torch.from_numpy(gamma),
        torch.from_numpy(beta),
        training=False,
        eps=EPS,
    )
    np.testing.assert_allclose(Y, Yt.numpy(), rtol=1e-12, atol=1e-12)


# ---- determinism --------------------------------------------------------------------


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("shape", [(257, 40), (33, 7, 50)], ids=["dense", "1d"])
def test_bit_identical_across_thread_counts(shape):
    rng = np.random.default_rng(8)
    X, gamma, beta, running0 = make(rng, shape, np.float32)
    dY = rng.standard_normal(shape).astype(np.float32)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            running = copy_running(running0)
            Y, cache = forward(X, gamma, beta, running)
            Yi = np.empty_like(X)
            batchnorm_forward_inference(view3(X), gamma, beta, running, EPS, view3(Yi))
            stats = (cache.mean, cache.inv_std, *running)  # cache.work is scratch
            results.append((Y, *stats, Yi, *backward(X, dY, gamma, cache)))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


def test_cache_type():
    cache = batchnorm_cache(4)
    assert isinstance(cache, BatchNormCache)
    assert cache.mean.shape == cache.inv_std.shape == (4,)
    assert cache.work.shape == (2, 4)
    assert {a.dtype for a in cache} == {np.dtype(np.float64)}
