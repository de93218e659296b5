import numba
import numpy as np
import pytest

from sknet.kernels.pool import (
    avgpool1d_backward,
    avgpool1d_forward,
    avgpool2d_backward,
    avgpool2d_forward,
    global_avgpool_backward,
    global_avgpool_forward,
    global_maxpool_backward,
    global_maxpool_forward,
    maxpool1d_backward,
    maxpool1d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_conv as ref
from tests.kernels import reference_norm as ref_norm

# (H, W, pool, stride); output size is the floor one
CASES_2D = [
    pytest.param(8, 6, (2, 2), (2, 2), id="2x2-s2"),
    pytest.param(7, 9, (2, 2), (2, 2), id="2x2-s2-floor"),
    pytest.param(7, 7, (3, 3), (2, 2), id="3x3-s2-overlap"),
    pytest.param(6, 7, (2, 3), (1, 2), id="2x3-s1x2-overlap"),
    pytest.param(9, 5, (3, 2), (3, 1), id="3x2-s3x1"),
]


def out_size(H, W, pool, stride):
    return ((H - pool[0]) // stride[0] + 1, (W - pool[1]) // stride[1] + 1)


def distinct_input(rng, shape, dtype=np.float64):
    """A scaled random permutation: no ties, so max pooling is differentiable here."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) * 0.01 - 0.5 * size * 0.01).astype(dtype)


def maxpool2d(X, pool, stride, size):
    Y = np.empty(X.shape[:2] + size, dtype=X.dtype)
    A = np.empty(X.shape[:2] + size, dtype=np.int32)
    maxpool2d_forward(X, *pool, *stride, Y, A)
    return Y, A


def avgpool2d(X, pool, stride, size):
    Y = np.empty(X.shape[:2] + size, dtype=X.dtype)
    avgpool2d_forward(X, *pool, *stride, Y)
    return Y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H, W, pool, stride", CASES_2D)
def test_pool2d_forward_matches_reference(H, W, pool, stride, dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 2, H, W)).astype(dtype)
    size = out_size(H, W, pool, stride)
    Y, A = maxpool2d(X, pool, stride, size)
    np.testing.assert_array_equal(Y, ref.maxpool2d(X, pool, stride, size).astype(dtype))
    # argmax points at the maximum inside the sample's own plane
    planes = X.reshape(3, 2, H * W)
    picked = np.take_along_axis(planes, A.reshape(3, 2, -1), 2)
    np.testing.assert_array_equal(picked, Y.reshape(3, 2, -1))
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(
        avgpool2d(X, pool, stride, size), ref.avgpool2d(X, pool, stride, size), rtol=rtol, atol=rtol
    )


@pytest.mark.parametrize("H, W, pool, stride", CASES_2D)
def test_maxpool2d_backward_finite_differences(H, W, pool, stride):
    rng = np.random.default_rng(1)
    X = distinct_input(rng, (3, 2, H, W))
    size = out_size(H, W, pool, stride)
    R = rng.standard_normal((3, 2) + size)
    _, A = maxpool2d(X, pool, stride, size)
    dX = np.full_like(X, np.nan)
    maxpool2d_backward(R, A, dX)
    assert_grad_close(lambda: np.sum(maxpool2d(X, pool, stride, size)[0] * R), X, dX)


@pytest.mark.parametrize("H, W, pool, stride", CASES_2D)
def test_avgpool2d_backward_finite_differences(H, W, pool, stride):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, 2, H, W))
    size = out_size(H, W, pool, stride)
    R = rng.standard_normal((3, 2) + size)
    dX = np.full_like(X, np.nan)
    avgpool2d_backward(R, *pool, *stride, dX)
    assert_grad_close(lambda: np.sum(avgpool2d(X, pool, stride, size) * R), X, dX)


# ---- 1-D ---------------------------------------------------------------------------

CASES_1D = [(8, 2, 2), (9, 2, 2), (9, 3, 2), (10, 3, 1), (10, 2, 3)]


@pytest.mark.parametrize("L, pool, stride", CASES_1D)
def test_pool1d_forward_and_backward(L, pool, stride):
    rng = np.random.default_rng(3)
    X = distinct_input(rng, (3, 2, L))
    Lo = (L - pool) // stride + 1
    R = rng.standard_normal((3, 2, Lo))

    def maxpool(X):
        Y, A = np.empty((3, 2, Lo)), np.empty((3, 2, Lo), dtype=np.int32)
        maxpool1d_forward(X, pool, stride, Y, A)
        return Y, A

    def avgpool(X):
        Y = np.empty((3, 2, Lo))
        avgpool1d_forward(X, pool, stride, Y)
        return Y

    X4 = X[:, :, None, :]
    expected = ref.maxpool2d(X4, (1, pool), (1, stride), (1, Lo))[:, :, 0]
    np.testing.assert_array_equal(maxpool(X)[0], expected)
    np.testing.assert_allclose(
        avgpool(X), ref.avgpool2d(X4, (1, pool), (1, stride), (1, Lo))[:, :, 0], rtol=1e-12
    )
    dX = np.full_like(X, np.nan)
    maxpool1d_backward(R, maxpool(X)[1], dX)
    assert_grad_close(lambda: np.sum(maxpool(X)[0] * R), X, dX)
    avgpool1d_backward(R, pool, stride, dX)
    assert_grad_close(lambda: np.sum(avgpool(X) * R), X, dX)


# ---- determinism -------------------------------------------------------------------


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_pool_bit_identical_across_thread_counts():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((33, 4, 9, 9)).astype(np.float32)
    dY = rng.standard_normal((33, 4, 4, 4)).astype(np.float32)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            Y, A = maxpool2d(X, (3, 3), (2, 2), (4, 4))
            dXm = np.empty_like(X)
            maxpool2d_backward(dY, A, dXm)
            dXa = np.empty_like(X)
            avgpool2d_backward(dY, 3, 3, 2, 2, dXa)
            results.append((Y, A, dXm, avgpool2d(X, (3, 3), (2, 2), (4, 4)), dXa))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


# ---- global pooling over (n, C, L); 2-D inputs through their (n, C, H*W) view ---------

GLOBAL_SHAPES = [
    pytest.param((4, 3, 1), id="L1"),
    pytest.param((4, 3, 7), id="1d"),
    pytest.param((3, 2, 4, 5), id="2d"),
    pytest.param((2, 5, 3, 3), id="2d-odd"),
]


def view3(A):
    return A.reshape(A.shape[0], A.shape[1], -1)


def global_avg(X):
    Y = np.empty(X.shape[:2], dtype=X.dtype)
    global_avgpool_forward(view3(X), Y)
    return Y


def global_max(X):
    Y = np.empty(X.shape[:2], dtype=X.dtype)
    A = np.empty(X.shape[:2], dtype=np.int32)
    global_maxpool_forward(view3(X), Y, A)
    return Y, A


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_pool_forward_matches_reference(shape, dtype):
    rng = np.random.default_rng(5)
    X = (rng.standard_normal(shape) + 3.0).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(global_avg(X), ref_norm.global_avgpool(view3(X)), rtol=rtol)
    Y, A = global_max(X)
    Yr, Ar = ref_norm.global_maxpool(view3(X))
    np.testing.assert_array_equal(Y, Yr.astype(dtype))
    np.testing.assert_array_equal(A, Ar)


@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_pool_backward_finite_differences(shape):
    rng = np.random.default_rng(6)
    X = distinct_input(rng, shape)
    R = rng.standard_normal(shape[:2])
    dX = np.full_like(X, np.nan)
    global_avgpool_backward(R, view3(dX))
    assert_grad_close(lambda: np.sum(global_avg(X) * R), X, dX)
    dX = np.full_like(X, np.nan)
    global_maxpool_backward(R, global_max(X)[1], view3(dX))
    assert_grad_close(lambda: np.sum(global_max(X)[0] * R), X, dX)


def test_global_maxpool_ties_go_to_the_first_maximum():
    X = np.array([[[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]]])
    Y, A = global_max(X)
    np.testing.assert_array_equal(Y, [[3.0, 2.0]])
    np.testing.assert_array_equal(A, [[1, 0]])
    dX = np.full_like(X, np.nan)
    global_maxpool_backward(np.array([[5.0, 7.0]]), A, dX)
    np.testing.assert_array_equal(dX, [[[0, 5, 0, 0], [7, 0, 0, 0]]])
    # 2-D: the index is y*W + x of the first maximum in row-major order
    X2 = np.zeros((1, 1, 3, 4))
    X2[0, 0, 1, 2] = X2[0, 0, 2, 0] = 1.0
    assert global_max(X2)[1][0, 0] == 1 * 4 + 2


@pytest.mark.parametrize("shape", [(4, 3, 11), (3, 2, 5, 6)], ids=["1d", "2d"])
def test_global_pool_matches_pytorch(shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    X = distinct_input(rng, shape)  # tie-free: PyTorch's max gradient picks one index on ties
    dY = rng.standard_normal(shape[:2])
    two_d = len(shape) == 4
    for kind in ("avg", "max"):
        if kind == "avg":
            pool = F.adaptive_avg_pool2d if two_d else F.adaptive_avg_pool1d
            Y = global_avg(X)
            dX = np.empty_like(X)
            global_avgpool_backward(dY, view3(dX))
        else:
            pool = F.adaptive_max_pool2d if two_d else F.adaptive_max_pool1d
            Y, A = global_max(X)
            dX = np.empty_like(X)
            global_maxpool_backward(dY, A, view3(dX))
        Xt = torch.from_numpy(X.copy()).requires_grad_(True)
        Yt = pool(Xt, 1).reshape(shape[:2])
        Yt.backward(torch.from_numpy(dY))
        np.testing.assert_allclose(Y, Yt.detach().numpy(), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-14, atol=1e-15)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_global_pool_bit_identical_across_thread_counts():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((33, 6, 5, 7)).astype(np.float32)
    dY = rng.standard_normal((33, 6)).astype(np.float32)
    results = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            Y, A = global_max(X)
            dXm, dXa = np.empty_like(X), np.empty_like(X)
            global_maxpool_backward(dY, A, view3(dXm))
            global_avgpool_backward(dY, view3(dXa))
            results.append((Y, A, dXm, global_avg(X), dXa))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()
