import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sknet.kernels import conv
from sknet.kernels.conv import (
    _mm_nt,
    auto_group,
    conv1d_backward,
    conv1d_forward,
    conv1d_workspace,
    conv2d_backward,
    conv2d_forward,
    conv2d_workspace,
)
from sknet.kernels.runner import call_entry, entry
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_conv as ref

# (H, W, kernel, stride, top/left padding, output size, dilation); a dilated kernel
# spans d*(k - 1) + 1 inputs, and 'same' pads that minus 1 (more, at stride > 1) in
# total, the extra pixel on the bottom/right
CASES_2D = [
    pytest.param(6, 5, (3, 3), (1, 1), (0, 0), (4, 3), (1, 1), id="k3-s1-valid"),
    pytest.param(6, 6, (3, 3), (1, 1), (1, 1), (6, 6), (1, 1), id="k3-s1-same"),
    pytest.param(7, 6, (3, 3), (2, 2), (1, 1), (4, 3), (1, 1), id="k3-s2-pad1"),
    pytest.param(6, 6, (2, 2), (1, 1), (0, 0), (6, 6), (1, 1), id="k2-same-extra-bottom-right"),
    pytest.param(5, 6, (2, 2), (1, 1), (1, 1), (5, 6), (1, 1), id="k2-same-extra-top-left"),
    pytest.param(6, 6, (2, 2), (2, 2), (0, 0), (3, 3), (1, 1), id="k2-s2-same"),
    pytest.param(6, 7, (3, 2), (1, 2), (1, 0), (6, 3), (1, 1), id="k3x2-s1x2"),
    pytest.param(5, 7, (1, 3), (2, 1), (0, 1), (3, 7), (1, 1), id="k1x3-s2x1-same"),
    pytest.param(7, 5, (2, 3), (2, 1), (1, 1), (4, 5), (1, 1), id="k2x3-pad1"),
    # dilated
    pytest.param(7, 6, (3, 3), (1, 1), (2, 2), (7, 6), (2, 2), id="d2-k3-same"),
    pytest.param(6, 7, (2, 2), (1, 1), (1, 1), (6, 7), (3, 3), id="d3-k2-same-extra-bottom-right"),
    pytest.param(10, 9, (3, 3), (2, 2), (1, 2), (5, 5), (2, 2), id="d2-k3-s2-same-asymmetric"),
    pytest.param(8, 6, (3, 2), (1, 1), (0, 0), (4, 5), (2, 1), id="d2x1-k3x2-valid"),
    pytest.param(7, 9, (2, 3), (2, 1), (1, 1), (4, 5), (1, 3), id="d1x3-k2x3-s2x1-pad1"),
    pytest.param(5, 5, (3, 3), (1, 1), (3, 3), (5, 5), (3, 3), id="d3-k3-same-wider-than-input"),
    pytest.param(11, 10, (2, 3), (3, 2), (0, 0), (3, 3), (2, 2), id="d2-k2x3-s3x2-valid"),
]


def make_conv2d(rng, H, W, kernel, n=7, C=2, F=3, dtype=np.float64):
    X = rng.standard_normal((n, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C) + kernel).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return X, Wt, b


def forward2d(X, Wt, b, stride, padding, out_size, chunk=3, n_slots=2, dilation=(1, 1), minor=None):
    F, C, kh, kw = Wt.shape
    Y = np.empty((X.shape[0], F) + out_size, dtype=X.dtype)
    ws = conv2d_workspace(
        C, F, (kh, kw), out_size, X.shape[0], X.dtype, n_slots, chunk, minor=minor
    )
    conv2d_forward(X, Wt, b, *stride, *padding, *dilation, Y, ws)
    return Y


def backward2d(
    X, Wt, dY, stride, padding, chunk=3, need_dx=True, n_slots=2, dilation=(1, 1), minor=None
):
    F, C, kh, kw = Wt.shape
    ws = conv2d_workspace(
        C, F, (kh, kw), dY.shape[2:], X.shape[0], X.dtype, n_slots, chunk, minor=minor
    )
    dW = np.full_like(Wt, np.nan)
    db = np.full(F, np.nan, dtype=X.dtype)
    dX = np.full_like(X, np.nan) if need_dx else np.empty((0, 0, 0, 0), X.dtype)
    conv2d_backward(X, Wt, dY, *stride, *padding, *dilation, dW, db, dX, need_dx, ws)
    return dW, db, dX


# the im2col columns' layouts: sample-major, sample-minor (groups of 3 samples, chunk=3)
LAYOUTS = [pytest.param(False, id="major"), pytest.param(True, id="minor")]


@pytest.mark.parametrize("minor", LAYOUTS)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("H, W, kernel, stride, padding, out_size, dilation", CASES_2D)
def test_conv2d_forward_matches_reference(
    H, W, kernel, stride, padding, out_size, dilation, dtype, rtol, minor
):
    rng = np.random.default_rng(0)
    X, Wt, b = make_conv2d(rng, H, W, kernel, dtype=dtype)
    Y = forward2d(X, Wt, b, stride, padding, out_size, dilation=dilation, minor=minor)
    expected = ref.conv2d(
        X.astype(np.float64), Wt.astype(np.float64), b, stride, padding, out_size, dilation
    )
    assert Y.dtype == dtype
    np.testing.assert_allclose(Y, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("minor", LAYOUTS)
@pytest.mark.parametrize("H, W, kernel, stride, padding, out_size, dilation", CASES_2D)
def test_conv2d_backward_finite_differences(
    H, W, kernel, stride, padding, out_size, dilation, minor
):
    rng = np.random.default_rng(1)
    X, Wt, b = make_conv2d(rng, H, W, kernel, n=4)
    R = rng.standard_normal((X.shape[0], Wt.shape[0]) + out_size)

    def loss():
        return np.sum(forward2d(X, Wt, b, stride, padding, out_size, dilation=dilation) * R)

    dW, db, dX = backward2d(X, Wt, R, stride, padding, dilation=dilation, minor=minor)
    assert_grad_close(loss, Wt, dW)
    assert_grad_close(loss, b, db)
    assert_grad_close(loss, X, dX)


def _torch_conv(torch, X, Wt, b, R, stride, padding, out_size, dilation):
    """PyTorch's output and autograd gradients (dW, db, dX) of sum(conv(X) * R), float64.

    The zero padding is explicit (``F.pad``: top/left ``padding``, bottom/right as much
    as the output size needs), since PyTorch's own ``padding`` is symmetric; the output
    is cut to ``out_size`` where the padded input would give more."""
    F = torch.nn.functional
    nd = X.ndim - 2
    Xt, Wtt, bt = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (X, Wt, b))
    flat = []
    for ax in reversed(range(nd)):  # torch pads the last axis first
        extent = dilation[ax] * (Wt.shape[2 + ax] - 1) + 1
        after = max((out_size[ax] - 1) * stride[ax] + extent - X.shape[2 + ax] - padding[ax], 0)
        flat += [padding[ax], after]
    conv = F.conv2d if nd == 2 else F.conv1d
    Yt = conv(F.pad(Xt, flat), Wtt, bt, stride=stride, dilation=dilation)
    Yt = Yt[(slice(None), slice(None)) + tuple(slice(0, n) for n in out_size)]
    (Yt * torch.from_numpy(R)).sum().backward()
    return Yt.detach().numpy(), Wtt.grad.numpy(), bt.grad.numpy(), Xt.grad.numpy()


def _assert_close(actual, expected, rtol=1e-12):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("minor", LAYOUTS)
@pytest.mark.parametrize("H, W, kernel, stride, padding, out_size, dilation", CASES_2D)
def test_conv2d_matches_pytorch_autograd(H, W, kernel, stride, padding, out_size, dilation, minor):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    X, Wt, b = make_conv2d(rng, H, W, kernel, n=4)
    R = rng.standard_normal((X.shape[0], Wt.shape[0]) + out_size)
    Y_t, dW_t, db_t, dX_t = _torch_conv(torch, X, Wt, b, R, stride, padding, out_size, dilation)
    assert Y_t.shape == (X.shape[0], Wt.shape[0]) + out_size
    Y = forward2d(X, Wt, b, stride, padding, out_size, dilation=dilation, minor=minor)
    _assert_close(Y, Y_t)
    dW, db, dX = backward2d(X, Wt, R, stride, padding, dilation=dilation, minor=minor)
    _assert_close(dW, dW_t)
    _assert_close(db, db_t)
    _assert_close(dX, dX_t)


def test_conv2d_backward_without_dX_leaves_it_alone():
    rng = np.random.default_rng(2)
    X, Wt, b = make_conv2d(rng, 6, 6, (3, 3))
    dY = rng.standard_normal((7, 3, 4, 4))
    dW, db, _ = backward2d(X, Wt, dY, (1, 1), (0, 0), need_dx=False)
    dW_full, db_full, dX = backward2d(X, Wt, dY, (1, 1), (0, 0), need_dx=True)
    np.testing.assert_array_equal(dW, dW_full)
    np.testing.assert_array_equal(db, db_full)
    assert np.isfinite(dX).all()


@pytest.mark.parametrize("chunk, n_slots", [(1, 1), (2, 3), (7, 2), (64, 1)])
def test_conv2d_chunk_size_changes_only_rounding(chunk, n_slots):
    rng = np.random.default_rng(3)
    X, Wt, b = make_conv2d(rng, 6, 6, (3, 3))
    dY = rng.standard_normal((7, 3, 6, 6))
    Y = forward2d(X, Wt, b, (1, 1), (1, 1), (6, 6), chunk=chunk, n_slots=n_slots)
    np.testing.assert_allclose(Y, ref.conv2d(X, Wt, b, (1, 1), (1, 1), (6, 6)), rtol=1e-12)
    dW, db, dX = backward2d(X, Wt, dY, (1, 1), (1, 1), chunk=chunk, n_slots=n_slots)
    dW3, db3, dX3 = backward2d(X, Wt, dY, (1, 1), (1, 1), chunk=3)
    np.testing.assert_allclose(dW, dW3, rtol=1e-12)
    np.testing.assert_allclose(db, db3, rtol=1e-12)
    np.testing.assert_array_equal(dX, dX3)  # dX is per sample: no cross-chunk sum


# ---- groups of samples, the products' edge blocks -----------------------------------


@pytest.mark.parametrize("group", [1, 2, 3, 4, 7, 16])
def test_conv2d_group_sizes_change_only_rounding(group):
    """Any group size (samples per product, the last group possibly partial) gives the
    reference's results; the default workspace picks one from the output size."""
    rng = np.random.default_rng(12)
    X, Wt, b = make_conv2d(rng, 6, 6, (3, 3), n=11, C=3, F=6)
    dY = rng.standard_normal((11, 6, 6, 6))
    F, C, kh, kw = Wt.shape
    ws = conv2d_workspace(C, F, (kh, kw), (6, 6), 11, X.dtype, 3, group=group)
    assert ws.group == group and ws.chunk % group == 0
    Y = np.empty((11, F, 6, 6))
    conv2d_forward(X, Wt, b, 1, 1, 1, 1, 1, 1, Y, ws)
    _assert_close(Y, ref.conv2d(X, Wt, b, (1, 1), (1, 1), (6, 6)))
    dW, db, dX = np.empty_like(Wt), np.empty(F), np.empty_like(X)
    conv2d_backward(X, Wt, dY, 1, 1, 1, 1, 1, 1, dW, db, dX, True, ws)
    dW3, db3, dX3 = backward2d(X, Wt, dY, (1, 1), (1, 1), chunk=1)  # one sample per product
    _assert_close(dW, dW3)
    _assert_close(db, db3)
    _assert_close(dX, dX3)
    auto = conv2d_workspace(C, F, (kh, kw), (6, 6), 11, X.dtype)
    assert auto.group == auto_group(36) == 4 and auto.chunk == 8
    assert conv2d_workspace(C, F, (kh, kw), (24, 24), 11, X.dtype).group == 1


@pytest.mark.parametrize("H, W, kernel, stride, padding, out_size, dilation", CASES_2D)
def test_conv2d_layouts_give_the_same_y_and_dx(H, W, kernel, stride, padding, out_size, dilation):
    """Sample-minor and sample-major im2col columns: the same Y and dX bits (the same
    sums in the same order per value), dW and db up to rounding (their sums run over
    the columns); buffers sized from in_size or not (a strided or dilated call then
    allocates its own) change nothing; a group of one is the same either way."""
    rng = np.random.default_rng(13)
    X, Wt, b = make_conv2d(rng, H, W, kernel, n=11, C=3, F=5, dtype=np.float32)
    F, C, kh, kw = Wt.shape
    dY = rng.standard_normal((11, F) + out_size).astype(np.float32)
    results = {}
    for minor, in_size in [(False, None), (True, None), (True, (H, W))]:
        ws = conv2d_workspace(
            C, F, (kh, kw), out_size, 11, X.dtype, 2, group=4, in_size=in_size, minor=minor
        )
        assert ws.minor == minor and ws.group == 4
        assert ws.xt.shape[0] == 2 and (in_size is None or ws.xt.shape[1] == C * H * W * 4)
        Y = np.empty((11, F) + out_size, np.float32)
        conv2d_forward(X, Wt, b, *stride, *padding, *dilation, Y, ws)
        dW, db, dX = np.empty_like(Wt), np.empty_like(b), np.empty_like(X)
        conv2d_backward(X, Wt, dY, *stride, *padding, *dilation, dW, db, dX, True, ws)
        results[minor, in_size] = Y, dW, db, dX
    Y0, dW0, db0, dX0 = results[False, None]
    Y1, dW1, db1, dX1 = results[True, None]
    for got, want in zip(results[True, (H, W)], results[True, None]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(Y1, Y0)
    np.testing.assert_array_equal(dX1, dX0)
    _assert_close(dW1, dW0, rtol=1e-5)
    _assert_close(db1, db0, rtol=1e-5)
    one = conv2d_workspace(C, F, (kh, kw), out_size, 11, X.dtype, 2, group=1, minor=True)
    assert not one.minor and one.xt.shape == (2, 0)


def test_auto_minor_picks_small_maps():
    """The default layout, from the layer's shapes: sample-minor for the 8x8 digits
    network's second layer only, of the ConvNet benchmarks' layers."""
    assert conv2d_workspace(16, 32, (3, 3), (4, 4), 8, np.float32, 1, in_size=(4, 4)).minor
    assert not conv2d_workspace(1, 16, (3, 3), (8, 8), 8, np.float32, 1, in_size=(8, 8)).minor
    assert not conv2d_workspace(16, 32, (5, 5), (8, 8), 8, np.float32, 1).minor
    assert not conv2d_workspace(1, 16, (5, 5), (24, 24), 8, np.float32, 1).minor


@numba.njit
def _call(fn, args):
    call_entry(fn, args)


def _run(func, *args):
    """``func(*args)`` through its entry (compiled code called by address), as the
    convolution's block functions call the products."""
    _call(entry(func, [numba.typeof(a) for a in args]), args)


@pytest.mark.parametrize(
    "M, K, N", [(1, 4, 1), (3, 8, 7), (4, 4, 16), (9, 12, 33), (8, 20, 2), (12, 16, 5)]
)
def test_weight_gradient_product_against_numpy(M, K, N):
    """The weight gradient's product (``_mm_nt``), every edge of its 4 x 4 blocks
    included. (The other products are ``kernels.product``'s: tests/kernels/test_product.)"""
    rng = np.random.default_rng(13)
    A = rng.standard_normal((M, K))
    Bt = rng.standard_normal((N, K + 2))
    C = rng.standard_normal((M, N))
    old = C.copy()
    _run(_mm_nt, A, Bt, C, K - 1, True)  # any length of the sums
    np.testing.assert_allclose(C, old + A[:, : K - 1] @ Bt[:, : K - 1].T, rtol=1e-12)
    _run(_mm_nt, A, Bt, C, K, False)
    np.testing.assert_allclose(C, A @ Bt[:, :K].T, rtol=1e-12)


def test_entry_of_other_argument_types_is_refused():
    """An entry called with arguments of other types than it was compiled for raises
    (instead of passing them wrongly)."""
    A, B, C = np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4))
    fn = entry(_mm_nt, [numba.typeof(a) for a in (A, B, C, 4, True)])
    with pytest.raises(RuntimeError, match="other argument types"):
        _call(fn, (A.astype(np.float32), B.astype(np.float32), C.astype(np.float32), 4, True))
    _call(fn, (A, B, C, 4, True))  # the right ones


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chunk_sums_are_added_in_chunk_order(dtype):
    """_sum_chunks (a NumPy reduction) adds the chunks one after the other, in float64:
    the order the compiled loop it replaced had (values of very different magnitudes,
    so that another order would round differently)."""
    rng = np.random.default_rng(5)
    K, F = 9, 6
    for n_chunks in (0, 1, 2, 9, 40):
        parts = rng.standard_normal((max(n_chunks, 1), 12, F)) * 10.0 ** rng.integers(-8, 9)
        parts = parts.astype(dtype)
        parts[:, 0, 0] = -0.0  # a sum of negative zeros stays -0.0
        W2, db = np.full((F, K), np.nan, dtype), np.full(F, np.nan, dtype)
        conv._sum_chunks(parts, n_chunks, W2, db)
        acc = parts[0].astype(np.float64) if n_chunks else np.zeros((12, F))
        for c in range(1, n_chunks):
            acc = acc + parts[c].astype(np.float64)
        assert W2.tobytes() == acc[:K].T.astype(dtype).tobytes()
        assert db.tobytes() == acc[K].astype(dtype).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_chunk_sums_match_the_numpy_ones(dtype):
    """conv2d_backward adds the weight-gradient chunk sums in its block function (one
    slot: after its chunks; several: one more block), in chunk order in float64, as
    _sum_chunks does (the path taken for a db that is not C-contiguous): the same bits,
    whatever the slot count, on chunks of very different magnitudes."""
    rng = np.random.default_rng(7)
    X, Wt, _ = make_conv2d(rng, 6, 6, (3, 3), n=23, C=2, F=5, dtype=dtype)
    X *= (10.0 ** rng.integers(-6, 7, 23)).astype(dtype)[:, None, None, None]
    dY = rng.standard_normal((23, 5, 6, 6)).astype(dtype)
    results = []
    for n_slots, strided_db in ((1, False), (2, False), (3, False), (1, True)):
        ws = conv2d_workspace(2, 5, (3, 3), (6, 6), 23, dtype, n_slots, chunk=3)
        dW = np.full_like(Wt, np.nan)
        db = np.full(10, np.nan, dtype)[::2] if strided_db else np.full(5, np.nan, dtype)
        dX = np.empty_like(X)
        conv2d_backward(X, Wt, dY, 1, 1, 1, 1, 1, 1, dW, db, dX, True, ws)
        n_chunks = -(-23 // 3)
        acc = ws.dW_chunks[0].astype(np.float64)
        for c in range(1, n_chunks):
            acc = acc + ws.dW_chunks[c].astype(np.float64)
        assert dW.reshape(5, 18).tobytes() == acc[:18].T.astype(dtype).tobytes()
        assert db.tobytes() == acc[18].astype(dtype).tobytes()
        results.append((dW.tobytes(), db.tobytes(), dX.tobytes()))
    assert all(r == results[0] for r in results)


# ---- conv1d ------------------------------------------------------------------------

# (L, kernel, stride, left padding, output size, dilation)
CASES_1D = [
    pytest.param(9, 3, 1, 0, 7, 1, id="k3-valid"),
    pytest.param(9, 3, 1, 1, 9, 1, id="k3-same"),
    pytest.param(8, 2, 1, 0, 8, 1, id="k2-same"),
    pytest.param(9, 3, 2, 1, 5, 1, id="k3-s2-pad1"),
    pytest.param(10, 4, 3, 2, 4, 1, id="k4-s3-pad2"),
    # dilated
    pytest.param(9, 3, 1, 2, 9, 2, id="d2-k3-same"),
    pytest.param(8, 2, 1, 1, 8, 3, id="d3-k2-same-extra-right"),
    pytest.param(10, 3, 2, 1, 5, 2, id="d2-k3-s2-same-asymmetric"),
    pytest.param(12, 3, 1, 0, 4, 4, id="d4-k3-valid"),
    pytest.param(13, 4, 3, 2, 4, 2, id="d2-k4-s3-pad2"),
]


def forward1d(X, Wt, b, stride, pad, Lo, chunk=3, dilation=1):
    F, C, k = Wt.shape
    Y = np.empty((X.shape[0], F, Lo), dtype=X.dtype)
    ws = conv1d_workspace(C, F, k, Lo, X.shape[0], X.dtype, chunk=chunk)
    conv1d_forward(X, Wt, b, stride, pad, Y, ws, dilation)
    return Y


def backward1d(X, Wt, dY, stride, pad, dilation=1):
    F, C, k = Wt.shape
    dW, db, dX = np.empty_like(Wt), np.empty(F, X.dtype), np.empty_like(X)
    ws = conv1d_workspace(C, F, k, dY.shape[2], X.shape[0], X.dtype, chunk=3)
    conv1d_backward(X, Wt, dY, stride, pad, dW, db, dX, True, ws, dilation)
    return dW, db, dX


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("L, k, stride, pad, Lo, dilation", CASES_1D)
def test_conv1d_forward_matches_reference(L, k, stride, pad, Lo, dilation, dtype, rtol):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5, 2, L)).astype(dtype)
    Wt = rng.standard_normal((3, 2, k)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    Y = forward1d(X, Wt, b, stride, pad, Lo, dilation=dilation)
    expected = ref.conv1d(X.astype(np.float64), Wt.astype(np.float64), b, stride, pad, Lo, dilation)
    np.testing.assert_allclose(Y, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("L, k, stride, pad, Lo, dilation", CASES_1D)
def test_conv1d_backward_finite_differences(L, k, stride, pad, Lo, dilation):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((5, 2, L))
    Wt = rng.standard_normal((3, 2, k))
    b = rng.standard_normal(3)
    R = rng.standard_normal((5, 3, Lo))

    def loss():
        return np.sum(forward1d(X, Wt, b, stride, pad, Lo, dilation=dilation) * R)

    dW, db, dX = backward1d(X, Wt, R, stride, pad, dilation)
    assert_grad_close(loss, Wt, dW)
    assert_grad_close(loss, b, db)
    assert_grad_close(loss, X, dX)


@pytest.mark.parametrize("L, k, stride, pad, Lo, dilation", CASES_1D)
def test_conv1d_matches_pytorch_autograd(L, k, stride, pad, Lo, dilation):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    X = rng.standard_normal((4, 2, L))
    Wt = rng.standard_normal((3, 2, k))
    b = rng.standard_normal(3)
    R = rng.standard_normal((4, 3, Lo))
    Y_t, dW_t, db_t, dX_t = _torch_conv(torch, X, Wt, b, R, (stride,), (pad,), (Lo,), (dilation,))
    assert Y_t.shape == (4, 3, Lo)
    _assert_close(forward1d(X, Wt, b, stride, pad, Lo, dilation=dilation), Y_t)
    dW, db, dX = backward1d(X, Wt, R, stride, pad, dilation)
    _assert_close(dW, dW_t)
    _assert_close(db, db_t)
    _assert_close(dX, dX_t)


# ---- determinism -------------------------------------------------------------------


def _lenet_conv2(threads, minor=None):
    """Forward + backward of a LeNet-like second conv, float32, at a given thread count."""
    rng = np.random.default_rng(6)
    X, Wt, b = make_conv2d(rng, 12, 12, (5, 5), n=50, C=4, F=8, dtype=np.float32)
    dY = rng.standard_normal((50, 8, 8, 8)).astype(np.float32)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            # n_slots=None: as many workspace slots as threads
            Y = forward2d(X, Wt, b, (1, 1), (0, 0), (8, 8), chunk=8, n_slots=None, minor=minor)
            grads = backward2d(X, Wt, dY, (1, 1), (0, 0), chunk=8, n_slots=None, minor=minor)
    finally:
        numba.set_num_threads(old)
    return (Y,) + grads


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("minor", LAYOUTS)
def test_conv2d_bit_identical_across_thread_counts(minor):
    one, two = _lenet_conv2(1, minor), _lenet_conv2(2, minor)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H, W, kernel, stride, padding, out_size, dilation", CASES_2D)
def test_conv2d_kept_im2col_is_bit_identical(
    H, W, kernel, stride, padding, out_size, dilation, dtype
):
    """A workspace with ``keep_cols=True`` (the forward pass stores im2col, the backward
    pass reads it back) gives exactly the results of recomputing it; a batch larger than
    the store falls back to recomputing."""
    rng = np.random.default_rng(3)
    X, Wt, b = make_conv2d(rng, H, W, kernel, dtype=dtype)
    dY = rng.standard_normal((X.shape[0], Wt.shape[0]) + out_size).astype(dtype)
    F, C, kh, kw = Wt.shape
    Y_ref = forward2d(X, Wt, b, stride, padding, out_size, dilation=dilation)
    dW_ref, db_ref, dX_ref = backward2d(X, Wt, dY, stride, padding, dilation=dilation)
    for max_batch in (X.shape[0], X.shape[0] + 5):
        ws = conv2d_workspace(C, F, (kh, kw), out_size, max_batch, dtype, 2, 3, keep_cols=True)
        assert ws.kept.shape[0] == -(-max_batch // ws.group)  # groups of samples
        Y = np.empty_like(Y_ref)
        conv2d_forward(X, Wt, b, *stride, *padding, *dilation, Y, ws)
        dW, db, dX = np.empty_like(Wt), np.empty(F, dtype), np.empty_like(X)
        conv2d_backward(X, Wt, dY, *stride, *padding, *dilation, dW, db, dX, True, ws)
        np.testing.assert_array_equal(Y, Y_ref)
        np.testing.assert_array_equal(dW, dW_ref)
        np.testing.assert_array_equal(db, db_ref)
        np.testing.assert_array_equal(dX, dX_ref)


def test_conv2d_bad_input_raises_clear_errors():
    """The kernels are Python functions around compiled block functions: arguments they
    cannot take raise ValueError / TypeError naming the problem, not a numba error."""
    rng = np.random.default_rng(0)
    X, Wt, b = make_conv2d(rng, 6, 6, (3, 3))
    F, C, kh, kw = Wt.shape
    ws = conv2d_workspace(C, F, (kh, kw), (4, 4), X.shape[0], X.dtype, 2, 3)
    Y = np.empty((X.shape[0], F, 4, 4))
    dY = rng.standard_normal(Y.shape)
    dW, db, dX = np.empty_like(Wt), np.empty(F), np.empty_like(X)
    geom = (1, 1, 0, 0, 1, 1)

    def forward(X=X, Wt=Wt, b=b, geom=geom, Y=Y, ws=ws):
        conv2d_forward(X, Wt, b, *geom, Y, ws)

    def backward(X=X, dY=dY, geom=geom, dW=dW, dX=dX, ws=ws):
        conv2d_backward(X, Wt, dY, *geom, dW, db, dX, True, ws)

    forward()
    backward()
    with pytest.raises(TypeError, match="conv2d_forward: X must be a float32 or float64"):
        forward(X=X.astype(np.int64))
    with pytest.raises(TypeError, match="conv2d_forward: Y / dY must be a 4-D float64"):
        forward(Y=Y.astype(np.float32))
    with pytest.raises(ValueError, match="conv2d_forward: X must be C-contiguous"):
        forward(X=np.asfortranarray(X))
    with pytest.raises(TypeError, match="integers"):
        forward(geom=(1.0, 1, 0, 0, 1, 1))
    with pytest.raises(ValueError, match="strides and dilations must be >= 1"):
        forward(geom=(0, 1, 0, 0, 1, 1))
    with pytest.raises(ValueError, match="do not fit together"):
        forward(Y=np.empty((X.shape[0], F, 5, 4)))
    with pytest.raises(TypeError, match="ws must be a Conv2dWorkspace"):
        forward(ws=tuple(ws))
    with pytest.raises(ValueError, match="too few chunks"):
        backward(ws=conv2d_workspace(C, F, (kh, kw), (4, 4), 2, X.dtype, 2, 1))
    with pytest.raises(ValueError, match="dW must be C-contiguous"):
        backward(dW=np.empty(Wt.shape[::-1]).T)
    with pytest.raises(TypeError, match="dX must be a 4-D float64"):
        backward(dX=dX.astype(np.float32))
    with pytest.raises(ValueError, match="paddings >= 0"):
        backward(geom=(1, 1, -1, 0, 1, 1))
    with pytest.raises(ValueError, match="do not fit together"):  # another group size
        backward(
            ws=conv2d_workspace(C, F, (kh, kw), (4, 4), 7, X.dtype, 2, group=2)._replace(group=3)
        )
    # the valid calls still give the same results after the rejected ones
    Y2 = np.empty_like(Y)
    forward(Y=Y2)
    np.testing.assert_array_equal(Y2, Y)
