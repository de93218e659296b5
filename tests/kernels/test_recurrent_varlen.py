"""Recurrent kernels on variable-length batches: each sequence stops at its own length.

References: the NumPy reference run on each sequence alone (no padding at all), central
finite differences, and PyTorch's packed sequences (``pack_padded_sequence``).
"""

import numba
import numpy as np
import pytest

from sknet.kernels import recurrent as R
from tests.gradcheck import assert_grad_close
from tests.kernels.test_recurrent import CELLS, Cell

# 11 samples: a full block of 8 and a partial one; lengths mixed within each block
LENGTHS = np.array([5, 1, 3, 5, 2, 4, 1, 3, 2, 5, 4], dtype=np.int64)


def _padded(rng, lengths, d, pad=0.0, T=None):
    T = int(lengths.max()) if T is None else T
    X = rng.normal(size=(lengths.size, T, d))
    for s, L in enumerate(lengths):
        X[s, L:] = pad
    return X


@pytest.mark.parametrize("kind", CELLS)
def test_forward_each_sequence_as_if_alone(kind):
    """States up to each length equal the reference on that sequence alone (no padding
    anywhere); states past it are zero, whatever the padding holds (NaN here)."""
    rng = np.random.default_rng(10)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng, scale=1.0)
    X = _padded(rng, LENGTHS, 2, pad=np.nan, T=7)
    Hs = cell.forward(X, LENGTHS)
    for s, L in enumerate(LENGTHS):
        alone = cell.reference(X[s : s + 1, :L])[0]
        np.testing.assert_allclose(Hs[s, :L], alone, rtol=0, atol=1e-13)
        assert np.all(Hs[s, L:] == 0.0)
    last = np.empty((LENGTHS.size, 3))
    R.last_states(Hs, LENGTHS, last)
    np.testing.assert_array_equal(last, Hs[np.arange(LENGTHS.size), LENGTHS - 1])


def _loss_and_grads(cell, X, lengths, R_out):
    """loss = sum(Hs * R_out) and the kernel's gradients; R_out is random on padded steps
    too, where Hs is zero and dHs must not be read."""

    def loss():
        return float(np.sum(cell.forward(X, lengths) * R_out))

    value = loss()
    return loss, value, cell.backward(R_out)


@pytest.mark.parametrize("kind", CELLS)
def test_backward_matches_finite_differences(kind):
    rng = np.random.default_rng(11)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    X = _padded(rng, LENGTHS, 2, T=6)
    R_out = rng.normal(size=(LENGTHS.size, 6, 3))
    loss, _, grads = _loss_and_grads(cell, X, LENGTHS, R_out)
    grads = {k: v.copy() for k, v in grads.items()}
    for name, value in cell.params.items():
        assert_grad_close(loss, value, grads[name], rtol=1e-6)
    assert_grad_close(loss, X, grads["X"], rtol=1e-6)
    for s, L in enumerate(LENGTHS):  # padding gets no gradient
        assert np.all(grads["X"][s, L:] == 0.0)


@pytest.mark.parametrize("kind", CELLS)
def test_sequence_to_one_backward_starts_at_each_length(kind):
    rng = np.random.default_rng(12)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    X = _padded(rng, LENGTHS, 2)
    R_last = rng.normal(size=(LENGTHS.size, 3))
    dHs = np.empty((LENGTHS.size, X.shape[1], 3))
    R.last_states_backward(R_last, LENGTHS, dHs)

    def loss():
        last = np.empty((LENGTHS.size, 3))
        R.last_states(cell.forward(X, LENGTHS), LENGTHS, last)
        return float(np.sum(last * R_last))

    loss()
    grads = {k: v.copy() for k, v in cell.backward(dHs).items()}
    for name, value in cell.params.items():
        assert_grad_close(loss, value, grads[name], rtol=1e-6)
    assert_grad_close(loss, X, grads["X"], rtol=1e-6)


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("pad", [np.nan, 1e300, -np.inf])
def test_padding_values_change_nothing(kind, pad):
    """Forward states and every gradient are bit-identical whatever the padding holds."""
    rng = np.random.default_rng(13)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    X0 = _padded(rng, LENGTHS, 2, T=6)
    Xp = X0.copy()
    for s, L in enumerate(LENGTHS):
        Xp[s, L:] = pad
    dHs = rng.normal(size=(LENGTHS.size, 6, 3))
    H0 = cell.forward(X0, LENGTHS).copy()
    g0 = {k: v.copy() for k, v in cell.backward(dHs).items()}
    Hp = cell.forward(Xp, LENGTHS).copy()
    gp = {k: v.copy() for k, v in cell.backward(dHs).items()}
    np.testing.assert_array_equal(Hp, H0)
    for name in g0:
        np.testing.assert_array_equal(gp[name], g0[name])


@pytest.mark.parametrize("kind", CELLS)
def test_batch_company_does_not_matter(kind):
    """A sequence's states and its share of the gradient are the same alone, among short
    sequences, or beside a much longer one (to 1e-12)."""
    rng = np.random.default_rng(14)
    cell = Cell(kind, d=2, H=3, dtype=np.float64, rng=rng)
    x = rng.normal(size=(1, 4, 2))
    alone = cell.forward(x).copy()
    short = np.concatenate([x, rng.normal(size=(9, 4, 2))])
    lengths = np.array([4, 2, 3, 1, 4, 2, 3, 1, 4, 2], dtype=np.int64)
    np.testing.assert_allclose(cell.forward(short, lengths)[:1], alone, rtol=0, atol=1e-12)
    long = np.zeros((10, 60, 2))
    long[:, :4] = short
    long[5] = rng.normal(size=(60, 2))
    lengths[5] = 60
    np.testing.assert_allclose(cell.forward(long, lengths)[:1, :4], alone, rtol=0, atol=1e-12)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_results_do_not_depend_on_thread_count(kind):
    rng = np.random.default_rng(15)
    lengths = rng.integers(1, 9, size=37).astype(np.int64)
    cell = Cell(kind, d=3, H=5, dtype=np.float64, rng=rng)
    X = _padded(rng, lengths, 3, T=8)
    dHs = rng.normal(size=(37, 8, 5))
    results = []
    previous = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            Hs = cell.forward(X, lengths).copy()
            results.append((Hs, {k: v.copy() for k, v in cell.backward(dHs).items()}))
    finally:
        numba.set_num_threads(previous)
    (H1, g1), (H2, g2) = results
    np.testing.assert_array_equal(H1, H2)
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name])


def test_reverse_sequences_within_lengths():
    X = np.arange(2 * 4 * 1, dtype=np.float64).reshape(2, 4, 1)
    out = np.full_like(X, np.nan)
    R.reverse_sequences(X, np.array([3, 4], np.int64), out)
    np.testing.assert_array_equal(out[0, :, 0], [2, 1, 0, 0])
    np.testing.assert_array_equal(out[1, :, 0], [7, 6, 5, 4])


@pytest.mark.parametrize("kind", CELLS)
def test_matches_pytorch_packed_sequences(kind):
    """Against ``torch.nn.utils.rnn.pack_padded_sequence`` in float64: every state, the
    last states (``h_n``) and the gradients of the parameters and of X."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from sknet import torch_interop

    torch.manual_seed(0)
    n, T, d, H = LENGTHS.size, 6, 2, 3
    cell = Cell(kind, d=d, H=H, dtype=np.float64, rng=np.random.default_rng(0))
    wrapper = torch_interop._torch_classes()["RecurrentModule"]
    module = wrapper(cell.name, d, H, True, cell.activation).double().rnn
    rng = np.random.default_rng(16)
    X = _padded(rng, LENGTHS, d, T=T)
    R_out = rng.normal(size=(n, T, H))
    R_last = rng.normal(size=(n, H))
    Xt = torch.from_numpy(X).requires_grad_(True)
    packed = pack_padded_sequence(
        Xt, torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False
    )
    out, h_n = module(packed)
    if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
        h_n = h_n[0]
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    ((out * torch.from_numpy(R_out)).sum() + (h_n[0] * torch.from_numpy(R_last)).sum()).backward()

    def t2n(v):
        return v.detach().numpy().copy()

    group = {name[: -len("_l0")]: t2n(v) for name, v in module.named_parameters()}
    values = torch_interop._recurrent_to_sknet(cell.name, cell.params, group, "test")
    cell.params = {name: np.ascontiguousarray(v) for name, v in values.items()}
    Hs = cell.forward(X, LENGTHS)
    np.testing.assert_allclose(Hs, t2n(out), rtol=0, atol=1e-13)
    last = np.empty((n, H))
    R.last_states(Hs, LENGTHS, last)
    np.testing.assert_allclose(last, t2n(h_n[0]), rtol=0, atol=1e-13)
    dHs = np.empty((n, T, H))
    R.last_states_backward(R_last, LENGTHS, dHs)
    grads = cell.backward(R_out + dHs)
    np.testing.assert_allclose(grads["X"], t2n(Xt.grad), rtol=0, atol=1e-12)
    one_bias = len(cell.spec.param_names) == 3
    for name, g in torch_interop._recurrent_to_torch(cell.name, grads).items():
        if not (one_bias and name == "bias_hh_l0"):
            np.testing.assert_allclose(g, t2n(getattr(module, name).grad), rtol=0, atol=1e-12)
