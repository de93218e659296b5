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
    # 2 x 2 stride 2 is a vectorised fast path: rows long enough for its vector loop,
    # and floor sizes (odd H and W) whose last row / column no window reads
    pytest.param(6, 40, (2, 2), (2, 2), id="2x2-s2-wide"),
    pytest.param(5, 71, (2, 2), (2, 2), id="2x2-s2-wide-floor"),
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

CASES_1D = [(8, 2, 2), (9, 2, 2), (9, 3, 2), (10, 3, 1), (10, 2, 3), (70, 2, 2), (71, 2, 2)]


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


# ---- exact semantics of the fast paths (2 x 2 stride 2; 1-D: size 2 stride 2) --------

FAST_SHAPES = [
    pytest.param((2, 3, 8, 6), id="even"),
    pytest.param((2, 3, 7, 9), id="odd-floor"),
    pytest.param((2, 3, 4, 70), id="wide"),
    pytest.param((2, 3, 9, 67), id="wide-odd-floor"),
    pytest.param((3, 2, 1, 70), id="1d-wide"),  # the 1-D wrappers' (n, C, 1, L) view
    pytest.param((3, 2, 1, 9), id="1d-odd"),
]


def sequential_maxpool2d(X, pool, stride, size):
    """The generic loop in Python: start at the window's first element, then replace the
    running maximum when v > best, in (p, q) order (ties keep the first maximum; a NaN is
    kept only where it starts the window, as ``v > NaN`` is false)."""
    (kh, kw), (sh, sw), (Ho, Wo) = pool, stride, size
    n, C, H, W = X.shape
    Y = np.empty((n, C, Ho, Wo), X.dtype)
    A = np.empty((n, C, Ho, Wo), np.int32)
    for s, c, i, j in np.ndindex(n, C, Ho, Wo):
        best, arg = X[s, c, i * sh, j * sw], i * sh * W + j * sw
        for p in range(kh):
            for q in range(kw):
                v = X[s, c, i * sh + p, j * sw + q]
                if v > best:
                    best, arg = v, (i * sh + p) * W + j * sw + q
        Y[s, c, i, j], A[s, c, i, j] = best, arg
    return Y, A


def fast_window(shape):
    """(pool, stride, size) of the fast path for an (n, C, H, W) shape."""
    H, W = shape[2:]
    kh = 1 if H == 1 else 2
    return (kh, 2), (kh, 2), (H // kh, W // 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", FAST_SHAPES)
def test_fast_maxpool_ties_and_nan_match_the_generic_loop(shape, dtype):
    rng = np.random.default_rng(9)
    # few distinct values: many ties inside windows; NaNs at every window position
    X = rng.integers(-2, 3, shape).astype(dtype)
    X[rng.random(shape) < 0.05] = np.nan
    pool, stride, size = fast_window(shape)
    Y, A = maxpool2d(X, pool, stride, size)
    Yr, Ar = sequential_maxpool2d(X, pool, stride, size)
    np.testing.assert_array_equal(A, Ar)
    assert Y.tobytes() == Yr.tobytes()
    assert np.isnan(Y).any() and (A != A.flat[0]).any()  # the data did exercise NaNs
    # an all-ties window picks its first element; so does one whose maximum repeats
    X = np.zeros(shape, dtype)
    Y, A = maxpool2d(X, pool, stride, size)
    np.testing.assert_array_equal(A, sequential_maxpool2d(X, pool, stride, size)[1])
    # the 1-D wrapper agrees with the 2-D kernel on its view
    if shape[2] == 1:
        Y1 = np.empty(shape[:2] + size[1:], dtype)
        A1 = np.empty(shape[:2] + size[1:], np.int32)
        maxpool1d_forward(X[:, :, 0], 2, 2, Y1, A1)
        np.testing.assert_array_equal(A1, A[:, :, 0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", FAST_SHAPES)
def test_fast_avgpool_bits_match_the_generic_sum(shape, dtype):
    rng = np.random.default_rng(10)
    X = rng.standard_normal(shape).astype(dtype)
    pool, stride, (Ho, Wo) = fast_window(shape)
    kh = pool[0]
    X[0, 0, :kh, :2] = -0.0  # a window of negative zeros: 0.0 + (-0.0) is +0.0
    Y = avgpool2d(X, pool, stride, (Ho, Wo))
    # the generic loop: acc = 0.0 (float64), += each element in (p, q) order, * 1/(kh*kw)
    acc = np.zeros(shape[:2] + (Ho, Wo))
    for p in range(kh):
        for q in range(2):
            acc = acc + X[:, :, p : kh * Ho : kh, q : 2 * Wo : 2].astype(np.float64)
    assert Y.tobytes() == (acc * (1.0 / (kh * 2))).astype(dtype).tobytes()
    # backward: 0 + dY / (kh*kw) on each window (float64, then the dtype), 0 elsewhere
    dY = rng.standard_normal(shape[:2] + (Ho, Wo)).astype(dtype)
    dY.flat[0] = -0.0
    dX = np.full_like(X, np.nan)
    avgpool2d_backward(dY, *pool, *stride, dX)
    expected = np.zeros_like(X)
    share = (0.0 + dY.astype(np.float64) * (1.0 / (kh * 2))).astype(dtype)
    for p in range(kh):
        for q in range(2):
            expected[:, :, p : kh * Ho : kh, q : 2 * Wo : 2] = share
    assert dX.tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "shape, pool, stride",
    [
        ((3, 2, 8, 6), 2, 2),
        ((3, 2, 7, 41), 2, 2),
        ((3, 2, 7, 7), 3, 2),
        ((3, 2, 9, 8), 3, 3),
        ((3, 2, 70), 2, 2),
        ((3, 2, 71), 3, 2),
    ],
)
def test_pool_matches_pytorch(shape, pool, stride):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    X = distinct_input(rng, shape)  # tie-free: PyTorch may pick another maximum on ties
    two_d = len(shape) == 4
    out = tuple((d - pool) // stride + 1 for d in shape[2:])
    dY = rng.standard_normal(shape[:2] + out)
    Y, A, dX = np.empty(dY.shape), np.empty(dY.shape, np.int32), np.empty_like(X)
    Ya, dXa = np.empty(dY.shape), np.empty_like(X)
    if two_d:
        maxpool2d_forward(X, pool, pool, stride, stride, Y, A)
        maxpool2d_backward(dY, A, dX)
        avgpool2d_forward(X, pool, pool, stride, stride, Ya)
        avgpool2d_backward(dY, pool, pool, stride, stride, dXa)
        tmax, tavg = F.max_pool2d, F.avg_pool2d
    else:
        maxpool1d_forward(X, pool, stride, Y, A)
        maxpool1d_backward(dY, A, dX)
        avgpool1d_forward(X, pool, stride, Ya)
        avgpool1d_backward(dY, pool, stride, dXa)
        tmax, tavg = F.max_pool1d, F.avg_pool1d
    for ours, dours, op in ((Y, dX, tmax), (Ya, dXa, tavg)):
        Xt = torch.from_numpy(X.copy()).requires_grad_(True)
        Yt = op(Xt, pool, stride)
        Yt.backward(torch.from_numpy(dY))
        np.testing.assert_allclose(ours, Yt.detach().numpy(), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(dours, Xt.grad.numpy(), rtol=1e-14, atol=1e-15)


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


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (3, 4, 9, 7), (2, 3, 24, 26)])
def test_maxpool2d_non_contiguous_arrays_match_contiguous(shape):
    """The fast paths run on flat views of C-contiguous arrays; other layouts (strided X,
    Y, argmax, dY, dX) take the generic loop (forward) or contiguous copies (backward):
    the same values and indices."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal(shape).astype(np.float32)
    pool, stride, size = fast_window(shape)
    Y, A = maxpool2d(X, pool, stride, size)  # contiguous: a fast path
    if size[1] < 8:  # the short-rows kernel ran; the generic loop agrees
        Yr, Ar = sequential_maxpool2d(X, pool, stride, size)
        np.testing.assert_array_equal(A, Ar)
        assert Y.tobytes() == Yr.tobytes()
    Xs = np.empty(shape[:3] + (2 * shape[3],), np.float32)[..., ::2]
    Xs[...] = X
    Ys = np.empty(shape[:2] + (size[0], 2 * size[1]), np.float32)[..., ::2]
    As = np.empty(shape[:2] + (size[0], 2 * size[1]), np.int32)[..., ::2]
    maxpool2d_forward(Xs, *pool, *stride, Ys, As)
    np.testing.assert_array_equal(As, A)
    assert np.ascontiguousarray(Ys).tobytes() == Y.tobytes()
    dY = rng.standard_normal(Y.shape).astype(np.float32)
    dX = np.full_like(X, np.nan)
    maxpool2d_backward(dY, A, dX)
    dXs = np.full(shape[:3] + (2 * shape[3],), np.nan, np.float32)[..., ::2]
    dYs = np.empty(Ys.shape[:3] + (2 * size[1],), np.float32)[..., ::2]
    dYs[...] = dY
    maxpool2d_backward(dYs, As, dXs)
    assert np.ascontiguousarray(dXs).tobytes() == dX.tobytes()
    assert np.count_nonzero(dX) == dY.size  # one maximum per disjoint window
