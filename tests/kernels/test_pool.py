import numba
import numpy as np
import pytest

from sknet.kernels.pool import (
    avgpool1d_backward,
    avgpool1d_forward,
    avgpool2d_backward,
    avgpool2d_forward,
    maxpool1d_backward,
    maxpool1d_forward,
    maxpool2d_backward,
    maxpool2d_forward,
)
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_conv as ref

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
