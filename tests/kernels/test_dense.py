"""Dense kernels and the Dense / Activation / Flatten layers: forward against NumPy,
backward (dW, db, dX) against finite differences."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from sknet._layers import Activation, Dense, Flatten
from sknet.kernels.activations import ACTIVATIONS
from sknet.kernels.dense import (
    BACKWARD,
    BIAS_GRAD,
    BLOCK_MIN,
    FORWARD,
    GATHER_MIN,
    INPUT_GRAD,
    TASKS_MIN,
    WEIGHT_GRAD,
    activation_backward_bias_grad,
    bias_activation_forward,
    dense_blocks,
    gather_rows,
    take_rows,
)
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_dense as ref

NAMES = ["identity", "logistic", "tanh", "relu"]
DTYPES = [np.float64, np.float32]


def tol(dtype):
    return {"rtol": 1e-12, "atol": 1e-14} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_bias_activation_forward(name, dtype, rng):
    z = rng.normal(scale=2.0, size=(6, 5)).astype(dtype)
    b = rng.normal(size=5).astype(dtype)
    out = z.copy()
    bias_activation_forward(out, b, ACTIVATIONS[name])
    assert out.dtype == dtype
    assert_allclose(out, ref.activation(name, z.astype(np.float64) + b), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_activation_backward_bias_grad(name, dtype, rng):
    z = rng.normal(scale=2.0, size=(7, 4))
    z[np.abs(z) < 1e-3] = 0.5  # no relu kinks
    a = ref.activation(name, z).astype(dtype)
    g = rng.normal(size=(7, 4)).astype(dtype)
    delta = g.copy()
    db = np.full(4, np.nan, dtype=dtype)
    activation_backward_bias_grad(a, delta, ACTIVATIONS[name], db)
    expected = g * ref.activation_derivative(name, z)
    assert_allclose(delta, expected, **tol(dtype))
    assert_allclose(db, expected.sum(axis=0), **tol(dtype))


# ------------------------------------------------------------------ Dense layer
class DenseCase:
    """A built Dense layer with its own parameter and gradient arrays."""

    def __init__(self, name, d=4, k=3, n=6, dtype=np.float64, seed=0):
        rng = np.random.default_rng(seed)
        self.layer = Dense(k, name)
        assert self.layer.build((d,), dtype) == (k,)
        self.params = {
            "W": rng.normal(size=(d, k)).astype(dtype),
            "b": rng.normal(size=k).astype(dtype),
        }
        self.grads = {"W": np.full((d, k), np.nan, dtype), "b": np.full(k, np.nan, dtype)}
        X = rng.normal(size=(n, d))
        if name == "relu":  # keep every pre-activation away from the kink at 0
            while np.abs(X @ self.params["W"] + self.params["b"]).min() < 1e-3:
                X = rng.normal(size=(n, d))
        self.X = X.astype(dtype)
        self.G = rng.normal(size=(n, k)).astype(dtype)  # upstream gradient dL/dA
        self.ctx = {}

    def forward(self, X=None, training=True):
        X = self.X if X is None else X
        return self.layer.forward(X, self.params, self.ctx, training, None)

    def objective(self):
        """sum(G * A): its gradient wrt A is G."""
        return float(np.sum(self.G * self.forward(training=False)))

    def backward(self, need_dx=True):
        self.forward()
        return self.layer.backward(self.G.copy(), self.params, self.grads, self.ctx, need_dx)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_dense_forward_matches_reference(name, dtype):
    case = DenseCase(name, dtype=dtype)
    A = case.forward()
    assert A.dtype == dtype and A.shape == (6, 3)
    expected = ref.dense_forward(case.X, case.params["W"], case.params["b"], name)
    assert_allclose(A, expected, **tol(dtype))


@pytest.mark.parametrize("name", NAMES)
def test_dense_backward_matches_reference(name):
    case = DenseCase(name)
    dX = case.backward()
    dW, db, dX_ref = ref.dense_backward(case.X, case.params["W"], case.params["b"], case.G, name)
    assert_allclose(case.grads["W"], dW, rtol=1e-12, atol=1e-14)
    assert_allclose(case.grads["b"], db, rtol=1e-12, atol=1e-14)
    assert_allclose(dX, dX_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_dense_backward_gradcheck(name):
    case = DenseCase(name, seed=3)
    dX = case.backward().copy()
    gW, gb = case.grads["W"].copy(), case.grads["b"].copy()
    assert_grad_close(case.objective, case.params["W"], gW)
    assert_grad_close(case.objective, case.params["b"], gb)
    assert_grad_close(case.objective, case.X, dX)


def test_dense_backward_without_dx_still_fills_grads():
    case = DenseCase("tanh")
    assert case.backward(need_dx=False) is None
    dW, db, _ = ref.dense_backward(case.X, case.params["W"], case.params["b"], case.G, "tanh")
    assert_allclose(case.grads["W"], dW, rtol=1e-12)
    assert_allclose(case.grads["b"], db, rtol=1e-12)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_sparse_input_matches_dense(fmt, dtype):
    case = DenseCase("relu", dtype=dtype)
    case.X[np.abs(case.X) < 0.7] = 0.0
    A_dense = case.forward().copy()
    dX = case.backward().copy()
    gW = case.grads["W"].copy()
    Xs = sp.csr_matrix(case.X).asformat(fmt)
    A_sparse = case.forward(Xs).copy()
    assert A_sparse.dtype == dtype
    assert_allclose(A_sparse, A_dense, **tol(dtype))
    dX_s = case.layer.backward(case.G.copy(), case.params, case.grads, case.ctx, True)
    assert_allclose(case.grads["W"], gW, **tol(dtype))
    assert_allclose(dX_s, dX, **tol(dtype))


def test_dense_rejects_non_flat_input():
    with pytest.raises(ValueError, match="1-D features"):
        Dense(3).build((4, 2), np.float64)


def test_dense_param_specs_and_init(rng):
    layer = Dense(5, "logistic")
    layer.build((7,), np.float64)
    assert layer.param_specs() == [("W", (7, 5), True), ("b", (5,), False)]
    params = {"W": np.zeros((7, 5)), "b": np.zeros(5)}
    layer.init_params(params, np.random.RandomState(0))
    bound = np.sqrt(2.0 / 12)  # Glorot, factor 2 for logistic
    assert np.abs(params["W"]).max() <= bound and np.abs(params["W"]).max() > 0.5 * bound
    # scikit-learn's order: W then b from the same RandomState
    rs = np.random.RandomState(0)
    assert_array_equal(params["W"], rs.uniform(-bound, bound, (7, 5)))
    assert_array_equal(params["b"], rs.uniform(-bound, bound, 5))


def test_dense_unknown_activation():
    with pytest.raises(ValueError, match="Dense: activation must be one of .*'softsign'"):
        Dense(3, "softsign")


# ------------------------------------------------------------------ Activation, Flatten
@pytest.mark.parametrize("name", NAMES)
def test_activation_layer_gradcheck(name, rng):
    X = rng.normal(size=(5, 2, 3))
    if name == "relu":
        X[np.abs(X) < 1e-3] = 0.5
    G = rng.normal(size=X.shape)
    layer = Activation(name)
    layer.build(X.shape[1:], np.float64)
    ctx = {}

    def f():
        return float(np.sum(G * layer.forward(X, {}, {}, False, None)))

    Y = layer.forward(X, {}, ctx, True, None)
    assert_allclose(Y, ref.activation(name, X), rtol=1e-12)
    dX = layer.backward(G.copy(), {}, {}, ctx, True)
    assert dX.shape == X.shape
    assert_grad_close(f, X, dX)


def test_flatten_round_trip(rng):
    X = rng.normal(size=(4, 2, 3, 5))
    layer = Flatten()
    assert layer.build(X.shape[1:], np.float64) == (30,)
    Y = layer.forward(X, {}, {}, True, None)
    assert_array_equal(Y, X.reshape(4, 30))
    dX = layer.backward(Y, {}, {}, {}, True)
    assert_array_equal(dX, X)
    assert layer.backward(Y, {}, {}, {}, False) is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_take_rows_matches_fancy_indexing(dtype, rng):
    x = rng.standard_normal((50, 7)).astype(dtype)
    idx = rng.permutation(50)[:13].astype(np.int64)
    idx[0] = idx[1]  # repeats are allowed
    out = np.full((13, 7), np.nan, dtype=dtype)
    take_rows(x, idx, out)
    assert_array_equal(out, x[idx])


def test_take_rows_rejects_out_of_range_index():
    x = np.zeros((5, 3))
    out = np.empty((2, 3))
    for bad in (5, -1):
        with pytest.raises(IndexError, match="out of range"):
            take_rows(x, np.array([0, bad], dtype=np.int64), out)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("rows", [3, 301])  # below GATHER_MIN: one part; above: parts
def test_gather_rows_matches_fancy_indexing(rows, n_threads, rng):
    x = rng.standard_normal((700, 300)).astype(np.float32)
    idx = rng.integers(0, 700, rows).astype(np.int64)
    out = np.full((rows, 300), np.nan, dtype=np.float32)
    assert (out.nbytes >= GATHER_MIN) == (rows == 301)
    old = numba.get_num_threads()
    numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        gather_rows(x, idx, out)
        assert_array_equal(out, x[idx])
        idx[-1] = 700  # in the last part
        with pytest.raises(IndexError, match="out of range"):
            gather_rows(x, idx, out)
    finally:
        numba.set_num_threads(old)


# ------------------------------------------------- the blocked training kernels
def _blocked_case(n, d, k, name, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    W = rng.normal(size=(d, k)).astype(dtype)
    b = rng.normal(size=k).astype(dtype)
    G = rng.normal(size=(n, k)).astype(dtype)
    return X, W, b, G


def _blocked_pass(X, W, b, G, name, need_dx=True):
    """Forward, then backward as ``Dense`` runs it: dZ and db, then the blocked dW, dX."""
    n, d = X.shape
    k = W.shape[1]
    code = ACTIVATIONS[name]
    A = np.full((n, k), np.nan, X.dtype)
    dense_blocks(FORWARD, X, W, b, code, A, A, W, A)
    delta = G.copy()
    dW = np.full((d, k), np.nan, X.dtype)
    db = np.full(k, np.nan, X.dtype)
    dX = np.full((n, d), np.nan, X.dtype)
    activation_backward_bias_grad(A, delta, code, db)
    if need_dx == "both":  # dW and dX in one call, as ``Dense`` runs them
        dense_blocks(BACKWARD, X, W, b, code, delta, delta, dW, dX)
        return A, dW, db, dX
    dense_blocks(WEIGHT_GRAD, X, W, b, code, delta, delta, dW, delta)
    if need_dx:
        dense_blocks(INPUT_GRAD, X, W, b, code, delta, delta, dW, dX)
    return A, dW, db, dX


# block edges: one row / one column (a block is empty), odd sizes, even sizes
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "n, d, k", [(1, 3, 1), (5, 4, 3), (6, 7, 2), (9, 1, 5), (201, 256, 165), (2, 4100, 1025)]
)
def test_dense_blocks_match_reference(n, d, k, name, dtype):
    # the last two are products of at least BLOCK_MIN: split in PARTS blocks (one empty)
    X, W, b, G = _blocked_case(n, d, k, name, dtype)
    A, dW, db, dX = _blocked_pass(X, W, b, G, name)
    eps = np.finfo(dtype).eps

    def close(actual, expected, of=None):
        # rounding of sums of up to max(n, d, k) products (dZ carries the forward's)
        # grows like sqrt(terms) ulps of their scale (``of``: the sums an activation
        # was applied to, |f'| <= 1)
        scale = max(1.0, float(np.abs(expected if of is None else of).max()))
        assert_allclose(actual, expected, rtol=0, atol=16 * eps * np.sqrt(max(n, d, k)) * scale)

    close(A, ref.dense_forward(X, W, b, name), of=ref.dense_forward(X, W, b, "identity"))
    dW_ref, db_ref, dX_ref = ref.dense_backward(X, W, b, G, name)
    close(dW, dW_ref)
    close(db, db_ref)
    close(dX, dX_ref)
    # without dx: the same weight gradients
    _, dW2, db2, _ = _blocked_pass(X, W, b, G, name, need_dx=False)
    assert_array_equal(dW2, dW)
    assert_array_equal(db2, db)
    # BACKWARD (dW and dX side by side, each whole)
    _, dW3, db3, dX3 = _blocked_pass(X, W, b, G, name, need_dx="both")
    close(dW3, dW_ref)
    close(dX3, dX_ref)
    assert_array_equal(db3, db)
    # each whole, or in blocks of rows / columns: the same bits (``kernels.product``)
    assert_array_equal(dW3, dW)
    assert_array_equal(dX3, dX)


@pytest.mark.parametrize("need_dx", [True, "both"])
@pytest.mark.parametrize("name", NAMES)
def test_dense_blocks_gradcheck(name, need_dx):
    seed = 4
    X, W, b, G = _blocked_case(5, 4, 3, name, np.float64, seed=seed)
    while name == "relu" and np.abs(X @ W + b).min() < 1e-3:  # away from the kink
        seed += 1
        X, W, b, G = _blocked_case(5, 4, 3, name, np.float64, seed=seed)
    _, dW, db, dX = _blocked_pass(X, W, b, G, name, need_dx=need_dx)

    def objective():
        A = np.empty((X.shape[0], W.shape[1]))
        dense_blocks(FORWARD, X, W, b, ACTIVATIONS[name], A, A, W, A)
        return float(np.sum(G * A))

    assert_grad_close(objective, W, dW)
    assert_grad_close(objective, b, db)
    assert_grad_close(objective, X, dX)


@pytest.mark.parametrize("need_dx", [True, "both"])
@pytest.mark.parametrize("n, d, k", [(7, 5, 4), (201, 256, 165)])  # one block, PARTS blocks
@pytest.mark.parametrize("name", NAMES)
def test_dense_blocks_match_torch(name, n, d, k, need_dx):
    torch = pytest.importorskip("torch")
    X, W, b, G = _blocked_case(n, d, k, name, np.float64, seed=5)
    A, dW, db, dX = _blocked_pass(X, W, b, G, name, need_dx=need_dx)
    Xt, Wt, bt = (torch.tensor(v, requires_grad=True) for v in (X, W, b))
    act = {
        "identity": lambda z: z,
        "logistic": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
    }[name]
    At = act(Xt @ Wt + bt)
    (At * torch.tensor(G)).sum().backward()
    assert_allclose(A, At.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert_allclose(dW, Wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_allclose(dX, Xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("need_dx", [True, "both"])
def test_dense_blocks_bit_identical_across_thread_counts(need_dx):
    X, W, b, G = _blocked_case(200, 256, 170, "relu", np.float32, seed=6)
    assert X.shape[0] * W.size >= BLOCK_MIN  # split in blocks
    assert X.shape[0] * W.size >= TASKS_MIN  # BACKWARD: dW and dX in parallel
    old = numba.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            with threadpool_limits(1, user_api="blas"):
                results.append(_blocked_pass(X, W, b, G, "relu", need_dx=need_dx))
    finally:
        numba.set_num_threads(old)
    for one, two in zip(*results):
        assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task", [BIAS_GRAD, WEIGHT_GRAD, BACKWARD])
@pytest.mark.parametrize("n, d, k", [(5, 4, 3), (201, 256, 165)])
def test_bias_grad_tasks_equal_separate_passes(n, d, k, task, name, dtype):
    """``BIAS_GRAD`` (dZ and db inside the block function, alone or before a backward
    task, in one block or before the parallel blocks of a large product) gives the bits
    of ``activation_backward_bias_grad`` followed by the plain task."""
    X, W, b, G = _blocked_case(n, d, k, name, dtype, seed=3)
    code = ACTIVATIONS[name]
    A = np.empty((n, k), dtype)
    dense_blocks(FORWARD, X, W, b, code, A, A, W, A)
    outs = []
    for fused in (False, True):
        delta = G.copy()
        db = np.full(k, np.nan, dtype)
        dW = np.full((d, k), np.nan, dtype)
        dX = np.full((n, d), np.nan, dtype)
        if fused:
            dense_blocks(BIAS_GRAD + task % BIAS_GRAD, X, W, db, code, A, delta, dW, dX)
        else:
            activation_backward_bias_grad(A, delta, code, db)
            if task != BIAS_GRAD:
                dense_blocks(task, X, W, b, code, delta, delta, dW, dX)
        outs.append((delta, db, dW, dX))
    for one, two in zip(*outs):
        assert_array_equal(one, two)
    assert not np.isnan(outs[1][1]).any()
    if task != BIAS_GRAD:
        assert not np.isnan(outs[1][2]).any()


def test_dense_blocks_bad_input_raises_clear_errors():
    """``dense_blocks`` is a Python function around a compiled block function: arguments
    it cannot take raise ValueError / TypeError naming the problem, not a numba error."""
    X, W, b, G = _blocked_case(5, 4, 3, "relu", np.float64)
    code = ACTIVATIONS["relu"]
    A = np.empty((5, 3))
    dense_blocks(FORWARD, X, W, b, code, A, A, W, A)
    with pytest.raises(TypeError, match="dense_blocks: w must be float32 or float64, as x"):
        dense_blocks(FORWARD, X, W.astype(np.float32), b, code, A, A, W, A)
    with pytest.raises(TypeError, match="dense_blocks: x must be a 2-D ndarray"):
        dense_blocks(FORWARD, X.ravel(), W, b, code, A, A, W, A)
    with pytest.raises(ValueError, match="dense_blocks: x must be C-contiguous"):
        dense_blocks(FORWARD, np.asfortranarray(X), W, b, code, A, A, W, A)
    with pytest.raises(ValueError, match=r"dense_blocks: a has shape \(5, 4\), expected"):
        dense_blocks(FORWARD, X, W, b, code, np.empty((5, 4)), A, W, A)
    with pytest.raises(ValueError, match="dense_blocks: unknown task 9"):
        dense_blocks(9, X, W, b, code, A, A, W, A)
    with pytest.raises(ValueError, match=r"dense_blocks: a has shape \(5, 4\), expected"):
        dense_blocks(BIAS_GRAD + WEIGHT_GRAD, X, W, b, code, np.empty((5, 4)), A, W, A)
    with pytest.raises(TypeError, match="dense_blocks: code must be an integer"):
        dense_blocks(FORWARD, X, W, b, 1.5, A, A, W, A)
    with pytest.raises(ValueError, match=r"dense_blocks: dx has shape"):
        dense_blocks(INPUT_GRAD, X, W, b, code, A, A, W, np.empty((5, 5)))
    with pytest.raises(ValueError, match=r"dense_blocks: dw has shape"):
        dense_blocks(BACKWARD, X, W, b, code, A, A, np.empty((3, 3)), np.empty((5, 4)))
    with pytest.raises(TypeError, match="dense_blocks: b must be a 1-D ndarray"):
        dense_blocks(FORWARD, X, W, [0.0, 0.0, 0.0], code, A, A, W, A)
    with pytest.raises(ValueError, match=r"dense_blocks: wt must be a C-contiguous \(3, 4\)"):
        dense_blocks(BACKWARD, X, W, b, code, A, A, W, np.empty((5, 4)), np.empty((4, 3)))


@pytest.mark.parametrize("task", [BACKWARD, INPUT_GRAD])
def test_dense_blocks_wt_buffer(task):
    """dX through the caller's W^T buffer (kept between steps, its old contents
    overwritten) gives the bits of a fresh one."""
    X, W, b, G = _blocked_case(201, 256, 165, "tanh", np.float32)
    dX = [np.full(X.shape, np.nan, np.float32) for _ in range(2)]
    dW = [np.full(W.shape, np.nan, np.float32) for _ in range(2)]
    wt = np.full(W.shape[::-1], np.nan, np.float32)
    dense_blocks(task, X, W, b, 0, G, G, dW[0], dX[0])
    dense_blocks(task, X, W, b, 0, G, G, dW[1], dX[1], wt)
    assert_array_equal(dX[1], dX[0])
    assert_array_equal(wt, W.T)


def test_element_wise_passes_bad_input_and_large_arrays():
    """``bias_activation_forward`` and ``activation_backward_bias_grad`` run the dense
    block function's loops (its internal task 8 and ``BIAS_GRAD``): clear errors for bad
    arguments, every row processed even for arrays a product would split in blocks, and
    ``dense_blocks`` itself rejects the internal task."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match=r"bias_activation_forward: b must have shape \(3,\)"):
        bias_activation_forward(z, np.zeros(4), ACTIVATIONS["relu"])
    with pytest.raises(TypeError, match="dense_blocks: b must be float32 or float64, as x"):
        bias_activation_forward(z, np.zeros(3, np.float32), ACTIVATIONS["relu"])
    with pytest.raises(ValueError, match="dense_blocks: x must be C-contiguous"):
        bias_activation_forward(np.asfortranarray(z), np.zeros(3), ACTIVATIONS["relu"])
    with pytest.raises(ValueError, match="activation_backward_bias_grad: delta must have"):
        activation_backward_bias_grad(z, z[:4], ACTIVATIONS["tanh"], np.zeros(3))
    with pytest.raises(TypeError, match="dense_blocks: b must be a 1-D ndarray"):
        activation_backward_bias_grad(z, z.copy(), ACTIVATIONS["tanh"], [0.0, 0.0, 0.0])
    with pytest.raises(TypeError, match="dense_blocks: x must be a 2-D ndarray"):
        activation_backward_bias_grad(z.ravel(), z.ravel(), ACTIVATIONS["tanh"], np.zeros(3))
    X, W, b, _ = _blocked_case(5, 4, 3, "relu", np.float64)
    with pytest.raises(ValueError, match="dense_blocks: unknown task 8"):
        dense_blocks(8, X, W, b, 0, z, z, W, X)
    n, k = 1024, 128  # n k k >= BLOCK_MIN: a product of these shapes runs in 2 blocks
    assert n * k * k >= BLOCK_MIN
    for name in NAMES:
        z = rng.normal(size=(n, k)).astype(np.float32)
        b = rng.normal(size=k).astype(np.float32)
        out = z.copy()
        bias_activation_forward(out, b, ACTIVATIONS[name])
        assert_allclose(out, ref.activation(name, z + b), rtol=1e-5, atol=1e-6)
        a, g = out, rng.normal(size=(n, k)).astype(np.float32)
        delta, db = g.copy(), np.full(k, np.nan, np.float32)
        activation_backward_bias_grad(a, delta, ACTIVATIONS[name], db)
        deriv = {"identity": 1.0, "logistic": a * (1 - a), "tanh": 1 - a * a, "relu": a > 0}
        assert_allclose(delta, g * deriv[name], rtol=1e-5, atol=1e-6)
        assert_allclose(db, delta.sum(axis=0, dtype=np.float64), rtol=1e-4, atol=1e-4)
