"""Recurrent kernels: forward against NumPy references, backward against finite differences.

Batches have 11 samples so that the kernels' fixed sample blocks (8) include a partial one.
"""

import numba
import numpy as np
import pytest

from sknet.kernels import recurrent as R
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_recurrent as ref

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]  # registry name, Elman activation


class Cell:
    """One recurrent layer: parameters, buffers, and the kernel calls for one cell kind,
    all read from the registry ``R.CELLS``."""

    def __init__(self, kind, d, H, dtype, rng, scale=0.6):
        self.name, _, act = kind.partition("_")
        self.activation = act or "tanh"
        self.spec = R.CELLS[self.name]
        self.d, self.H, self.dtype = d, H, dtype
        GH = self.spec.gates * H
        shapes = {"W_x": (d, GH), "W_h": (H, GH)}
        self.params = {
            name: rng.uniform(-scale, scale, size=shapes.get(name, (GH,))).astype(dtype)
            for name in self.spec.param_names
        }

    def forward(self, X, lengths=None):
        """Run the forward kernel with fresh buffers; keep what backward needs."""
        n, T, _ = X.shape
        self.X = X
        self.batch = R.Batch(X, np.full(n, T, np.int64) if lengths is None else lengths)
        self.Hs = np.empty((n, T, self.H), self.dtype)
        args = (n, T, self.d, self.H, self.dtype)
        self.cache, self.work = self.spec.cache.empty(*args), self.spec.work.empty(*args)
        p = self.spec.make_params(self.params, self.activation)
        R.recurrent_forward(self.batch, p, self.Hs, self.cache)
        return self.Hs

    def backward(self, dHs, need_dx=True, grads=None):
        """Run the backward kernel after ``forward``; return gradients by name (and "X")."""
        if grads is None:
            grads = {name: np.empty_like(v) for name, v in self.params.items()}
            grads["X"] = np.empty_like(self.X)
        p = self.spec.make_params(self.params, self.activation)
        R.recurrent_backward(
            self.batch,
            p,
            self.Hs,
            self.cache,
            dHs,
            self.spec.make_params(grads),
            grads["X"],
            need_dx,
            self.work,
        )
        return grads

    def reference(self, X):
        return ref.states(self.name, X, self.params, self.activation)


def _data(rng, n=11, T=4, d=2, dtype=np.float64):
    return rng.normal(size=(n, T, d)).astype(dtype)


# --------------------------------------------------------------------------------------
# float32 activations
# --------------------------------------------------------------------------------------
def test_float32_tanh_and_sigmoid_within_1e6_of_numpy():
    x = np.concatenate(
        [
            np.linspace(-60, 60, 1_200_001),
            np.linspace(-1e-3, 1e-3, 20_001),
            [0.0, 1e-30, -1e-30, 1e30, -1e30, np.inf, -np.inf],
        ]
    ).astype(np.float32)
    exact = np.tanh(x.astype(np.float64))
    out = np.empty_like(x)
    R.apply_tanh(x, out)
    assert np.max(np.abs(out - exact)) <= 1e-6
    assert np.max(np.abs(out - np.tanh(x))) <= 1e-6
    assert np.all(np.abs(out) <= 1.0)
    with np.errstate(over="ignore"):
        exact = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    R.apply_sigmoid(x, out)
    assert np.max(np.abs(out - exact)) <= 1e-6
    assert np.all((out >= 0.0) & (out <= 1.0))
    nan = np.array([np.nan], np.float32)
    R.apply_tanh(nan, out[:1])
    assert np.isnan(out[0])


def test_float64_activations_are_exact():
    x = np.linspace(-40, 40, 100_001)
    out = np.empty_like(x)
    R.apply_tanh(x, out)
    np.testing.assert_allclose(out, np.tanh(x), rtol=1e-15, atol=1e-15)
    R.apply_sigmoid(x, out)
    np.testing.assert_allclose(out, 1.0 / (1.0 + np.exp(-x)), rtol=1e-15, atol=0)


# --------------------------------------------------------------------------------------
# forward against the NumPy references
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("kind", CELLS)
def test_forward_matches_reference(kind, dtype, atol):
    rng = np.random.default_rng(0)
    cell = Cell(kind, d=2, H=3, dtype=dtype, rng=rng, scale=1.0)
    X = _data(rng, dtype=dtype)
    Hs = cell.forward(X)
    assert Hs.dtype == dtype
    np.testing.assert_allclose(Hs, cell.reference(X), rtol=0, atol=atol)


def test_lstm_cache_holds_cells_and_gates():
    rng = np.random.default_rng(1)
    cell = Cell("lstm", d=2, H=3, dtype=np.float64, rng=rng)
    X = _data(rng)
    cell.forward(X)
    _, Cs = ref.lstm_forward(X, cell.params["W_x"], cell.params["W_h"], cell.params["b"])
    gates, cells, tanh_cells = cell.cache[:3]
    np.testing.assert_allclose(cells, Cs, atol=1e-14)
    np.testing.assert_allclose(tanh_cells, np.tanh(Cs), atol=1e-14)
    o = gates[..., 9:12]
    np.testing.assert_allclose(cell.Hs, o * np.tanh(Cs), atol=1e-14)


# --------------------------------------------------------------------------------------
# backward against central finite differences (float64)
# --------------------------------------------------------------------------------------
def _check_all_grads(cells, X, R_out):
    """Gradcheck loss = sum(Hs_last * R_out) for a stack of ``cells`` fed one into the next.

    Every parameter of every layer and the input are checked.
    """

    def loss():
        h = X
        for c in cells:
            h = c.forward(h)
        return float(np.sum(h * R_out))

    loss()
    dHs = R_out
    all_grads = []
    for i in range(len(cells) - 1, -1, -1):
        grads = cells[i].backward(dHs, need_dx=True)
        all_grads.append(grads)
        dHs = grads["X"]
    all_grads.reverse()
    for c, grads in zip(cells, all_grads):
        for name, value in c.params.items():
            assert_grad_close(loss, value, grads[name], rtol=1e-6)
    assert_grad_close(loss, X, all_grads[0]["X"], rtol=1e-6)


@pytest.mark.parametrize("kind", CELLS)
def test_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(2)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    X = _data(rng)
    _check_all_grads([cell], X, rng.normal(size=(11, 4, 3)))


@pytest.mark.parametrize("kind", CELLS)
def test_sequence_to_one_backward(kind):
    rng = np.random.default_rng(3)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    X = _data(rng, T=5)
    R_out = np.zeros((11, 5, 3))
    R_out[:, -1] = rng.normal(size=(11, 3))
    _check_all_grads([cell], X, R_out)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_stacked_backward(kind):
    rng = np.random.default_rng(4)
    layers = [
        Cell(kind, d=2, H=3, dtype=np.float64, rng=rng),
        Cell(kind, d=3, H=4, dtype=np.float64, rng=rng),
    ]
    X = _data(rng)
    _check_all_grads(layers, X, rng.normal(size=(11, 4, 4)))


# --------------------------------------------------------------------------------------
# contracts: overwrite, need_dx, float32 backward, thread-count determinism
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CELLS)
def test_backward_overwrites_and_respects_need_dx(kind):
    rng = np.random.default_rng(5)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    X = _data(rng)
    dHs = rng.normal(size=(11, 4, 3))
    cell.forward(X)
    first = {k: v.copy() for k, v in cell.backward(dHs).items()}
    garbage = {k: np.full_like(v, np.nan) for k, v in first.items()}
    second = cell.backward(dHs, need_dx=False, grads=garbage)
    for name in cell.params:
        np.testing.assert_array_equal(second[name], first[name])
    assert np.all(np.isnan(second["X"])), "dX must not be touched when need_dx is False"


@pytest.mark.parametrize("kind", CELLS)
def test_float32_backward_close_to_float64(kind):
    rng = np.random.default_rng(6)
    c64 = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    c32 = Cell(kind, d=2, H=3, dtype=np.float32, rng=rng)
    c32.params = {k: v.astype(np.float32) for k, v in c64.params.items()}
    X = _data(rng)
    dHs = rng.normal(size=(11, 4, 3))
    c64.forward(X)
    c32.forward(X.astype(np.float32))
    g64 = c64.backward(dHs)
    g32 = c32.backward(dHs.astype(np.float32))
    for name, v in g64.items():
        assert g32[name].dtype == np.float32
        np.testing.assert_allclose(g32[name], v, rtol=0, atol=2e-5 * max(1.0, np.abs(v).max()))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", CELLS)
def test_results_do_not_depend_on_thread_count(kind, dtype):
    rng = np.random.default_rng(7)
    cell = Cell(kind, d=3, H=5, dtype=dtype, rng=rng)
    X = _data(rng, n=37, T=6, d=3, dtype=dtype)
    dHs = rng.normal(size=(37, 6, 5)).astype(dtype)
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            Hs = cell.forward(X).copy()
            grads = {k: v.copy() for k, v in cell.backward(dHs).items()}
            results.append((Hs, grads))
    finally:
        numba.set_num_threads(previous)
    (H1, g1), (H2, g2) = results
    np.testing.assert_array_equal(H1, H2)
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


# --------------------------------------------------------------------------------------
# PyTorch as an oracle for gate order and formulation (skipped without torch)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CELLS)
def test_matches_pytorch(kind):
    """Each cell against its PyTorch module, weights and gradients exchanged through the
    registry's PyTorch row (``torch_interop._TORCH_CELLS``)."""
    torch = pytest.importorskip("torch")
    from sknet import torch_interop

    torch.manual_seed(0)
    n, T, d, H = 5, 4, 2, 3
    cell = Cell(kind, d=d, H=H, dtype=np.float64, rng=np.random.default_rng(0))
    wrapper = torch_interop._torch_classes()["RecurrentModule"]
    module = wrapper(cell.name, d, H, True, cell.activation).double().rnn
    X = np.random.default_rng(8).normal(size=(n, T, d))
    R_out = np.random.default_rng(9).normal(size=(n, T, H))
    Xt = torch.from_numpy(X).requires_grad_(True)
    out, _ = module(Xt)
    (out * torch.from_numpy(R_out)).sum().backward()

    def t2n(v):
        return v.detach().numpy().copy()

    group = {name[: -len("_l0")]: t2n(v) for name, v in module.named_parameters()}
    values = torch_interop._recurrent_to_sknet(cell.name, cell.params, group, "test")
    cell.params = {name: np.ascontiguousarray(v) for name, v in values.items()}
    np.testing.assert_allclose(cell.forward(X), t2n(out), atol=1e-13)
    grads = cell.backward(R_out)
    np.testing.assert_allclose(grads["X"], t2n(Xt.grad), atol=1e-12)
    # PyTorch's bias_ih and bias_hh get the same gradient where sknet has one bias, which
    # the export writes to bias_ih (bias_hh is zero)
    one_bias = len(cell.spec.param_names) == 3
    for name, g in torch_interop._recurrent_to_torch(cell.name, grads).items():
        if not (one_bias and name == "bias_hh_l0"):
            np.testing.assert_allclose(g, t2n(getattr(module, name).grad), atol=1e-12)


def test_gate_order_round_trip():
    """A gate permutation maps PyTorch's blocks to sknet's and back."""
    from sknet import torch_interop

    a = np.arange(12.0).reshape(6, 2)  # three gate blocks of two rows
    order = (2, 0, 1)
    to_sknet = torch_interop._gates_to_sknet(a, order)
    np.testing.assert_array_equal(to_sknet[:2], a[4:])  # sknet block 0 = torch block 2
    np.testing.assert_array_equal(torch_interop._gates_to_torch(to_sknet, order), a)
