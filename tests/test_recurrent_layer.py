"""The Recurrent layer inside a Network: forward vs a NumPy reference, whole-network gradients.

The kernels themselves are tested in tests/kernels/test_recurrent.py; here the layer's
parameter layout, initialisation, sequence-to-one / sequence-to-sequence wiring, stacking,
dropout between layers and the L2 penalty are checked through ``Network.loss_and_grad``.
Gradient-norm clipping is an estimator step after ``loss_and_grad``, so these gradients
are unclipped.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sknet._layers import Dense, Dropout, Recurrent
from sknet._network import Network
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_recurrent as ref

# (cell, Elman activation)
CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
IDS = ["elman_tanh", "elman_relu", "lstm", "gru"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def reference_states(layer, params, X):
    """All hidden states (n, T, H) of ``layer`` from the slow NumPy reference."""
    return ref.states(layer.cell, X, params, layer.activation)


def build(layers, input_shape, dtype=np.float64, loss="squared_error", seed=0, jitter=0.3):
    """A built network with initialised parameters; biases get random values too, so
    that every parameter matters (the default init zeroes most biases)."""
    net = Network(layers, loss).build(input_shape, dtype)
    net.init_params(np.random.RandomState(seed))
    rng = np.random.default_rng(seed + 1)
    net.theta += rng.uniform(-jitter, jitter, net.theta.shape).astype(dtype)
    return net


# --------------------------------------------------------------------------------------
# forward: a 1-layer network against the reference
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, act", CELLS, ids=IDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_one_layer_network_forward_matches_reference(cell, act, return_sequences, rng):
    n, T, d, H = 11, 6, 3, 5  # 11 samples: the kernels' blocks of 8 include a partial one
    X = rng.normal(size=(n, T, d))
    layer = Recurrent(cell, H, return_sequences=return_sequences, activation=act)
    net = build([layer], (T, d))
    assert net.output_shape == ((T, H) if return_sequences else (H,))
    out = net.predict(X)
    Hs = reference_states(layer, net.params[0], X)
    expected = Hs if return_sequences else Hs[:, -1]
    assert out.shape == expected.shape
    assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    # a training forward gives the same output
    assert_allclose(net.forward(X, training=True), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell, act", CELLS, ids=IDS)
def test_float32_forward_close_to_float64_reference(cell, act, rng):
    n, T, d, H = 9, 7, 2, 6
    X = rng.normal(size=(n, T, d))
    net64 = build([Recurrent(cell, H, activation=act)], (T, d))
    net32 = Network([Recurrent(cell, H, activation=act)], "squared_error").build((T, d), np.float32)
    net32.theta[...] = net64.theta
    out = net32.predict(X.astype(np.float32))
    assert out.dtype == np.float32
    expected = reference_states(net64.layers[0], net32.params[0], X)[:, -1]
    assert_allclose(out, expected, rtol=0, atol=2e-5)


def test_predict_in_chunks_matches_one_batch(rng, monkeypatch):
    """Network.predict cuts large inputs into chunks: the recurrent buffers follow."""
    import sknet._network as network_module

    X = rng.normal(size=(23, 5, 2))
    net = build(
        [Recurrent("gru", 4, return_sequences=True), Recurrent("lstm", 3), Dense(2)], (5, 2)
    )
    whole = net.predict(X)
    monkeypatch.setattr(network_module, "PREDICT_CHUNK", 7)
    assert_allclose(net.predict(X), whole, rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------------------
# parameters and initialisation
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_param_shapes_and_init(cell):
    d, H, G = 3, 6, GATES[cell]
    layer = Recurrent(cell, H)
    net = Network([layer], "squared_error").build((10, d), np.float64)
    net.init_params(np.random.RandomState(0))
    p = net.params[0]
    biases = ("b_x", "b_h") if cell == "gru" else ("b",)
    assert [name for name, _, _ in layer.param_specs()] == ["W_x", "W_h", *biases]
    # only the weight matrices are L2-penalised
    assert [pen for _, _, pen in layer.param_specs()] == [True, True] + [False] * len(biases)
    assert p["W_x"].shape == (d, G * H) and p["W_h"].shape == (H, G * H)
    assert net.n_params == d * G * H + H * G * H + len(biases) * G * H
    # Glorot-uniform input weights, orthogonal recurrent blocks
    assert np.abs(p["W_x"]).max() <= np.sqrt(6.0 / (d + H))
    for g in range(G):
        block = p["W_h"][:, g * H : (g + 1) * H]
        assert_allclose(block.T @ block, np.eye(H), atol=1e-12)
    for name in biases:
        if cell == "lstm":
            # forget gate (second block) starts at 1, the others at 0
            expected = np.r_[np.zeros(H), np.ones(H), np.zeros(2 * H)]
            assert_array_equal(p[name], expected)
        else:
            assert_array_equal(p[name], 0.0)
    # same seed, same weights; another seed, other weights
    again = Network([Recurrent(cell, H)], "squared_error").build((10, d), np.float64)
    again.init_params(np.random.RandomState(0))
    assert_array_equal(again.theta, net.theta)
    again.init_params(np.random.RandomState(1))
    assert not np.array_equal(again.theta, net.theta)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="cell must be one of"):
        Recurrent("transformer", 4)
    with pytest.raises(ValueError, match="activation must be"):
        Recurrent("rnn", 4, activation="logistic")
    with pytest.raises(ValueError, match="n_timesteps, n_features"):
        Network([Recurrent("rnn", 4)], "squared_error").build((10,), np.float64)


def test_get_config_round_trip():
    layer = Recurrent("gru", 7, return_sequences=True, activation="tanh")
    clone = Recurrent(**layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert "Recurrent(cell='gru', units=7" in repr(layer)


# --------------------------------------------------------------------------------------
# whole-network gradients against central finite differences (float64, rtol 1e-6)
# --------------------------------------------------------------------------------------
def check_network_gradient(net, X, Y, sw=None, alpha=0.0, seed=None):
    """``loss_and_grad``'s gradient against finite differences over all of theta.

    With ``seed``, every evaluation draws the same dropout masks from a fresh generator,
    so the objective is a deterministic function of theta.
    """

    def loss():
        rng = None if seed is None else np.random.default_rng(seed)
        return net.loss_and_grad(X, Y, sw, alpha, rng=rng)

    loss()
    analytic = net.grad.copy()
    assert_grad_close(loss, net.theta, analytic, rtol=1e-6)


@pytest.mark.parametrize("cell, act", CELLS, ids=IDS)
def test_stacked_network_gradient(cell, act, rng):
    """Two recurrent layers (the first returns its sequence) and a dense head."""
    n, T, d = 10, 5, 2
    X = rng.normal(size=(n, T, d))
    Y = rng.normal(size=(n, 2))
    layers = [
        Recurrent(cell, 3, return_sequences=True, activation=act),
        Recurrent(cell, 4, activation=act),
        Dense(3, "tanh"),
        Dense(2),
    ]
    net = build(layers, (T, d))
    check_network_gradient(net, X, Y)


@pytest.mark.parametrize("cell, act", CELLS, ids=IDS)
def test_gradient_with_penalty_weights_and_classifier_loss(cell, act, rng):
    """L2 penalty on W_x / W_h, sample weights, a softmax output."""
    n, T, d, k = 9, 4, 3, 3
    X = rng.normal(size=(n, T, d))
    Y = np.eye(k)[rng.integers(0, k, n)]
    sw = rng.uniform(0.5, 2.0, n)
    net = build([Recurrent(cell, 4, activation=act), Dense(k)], (T, d), loss="log_loss")
    check_network_gradient(net, X, Y, sw=sw, alpha=0.7)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradient_through_dropout_between_recurrent_layers(cell, rng):
    n, T, d = 12, 4, 2
    X = rng.normal(size=(n, T, d))
    Y = rng.normal(size=(n, 1))
    layers = [
        Recurrent(cell, 4, return_sequences=True),
        Dropout(0.3),
        Recurrent(cell, 3),
        Dropout(0.3),
        Dense(1),
    ]
    net = build(layers, (T, d))
    check_network_gradient(net, X, Y, seed=5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_frozen_first_layer_gets_no_gradient(cell, rng):
    """first_trainable=1: the first recurrent layer is skipped, the rest still exact."""
    n, T, d = 8, 4, 2
    X = rng.normal(size=(n, T, d))
    Y = rng.normal(size=(n, 1))
    net = build([Recurrent(cell, 3, return_sequences=True), Recurrent(cell, 3), Dense(1)], (T, d))
    net.grad[...] = np.nan
    net.loss_and_grad(X, Y, None, 0.0, first_trainable=1)
    start = net.layer_offset(1)
    assert np.isnan(net.grad[:start]).all()  # untouched
    tail = net.grad[start:].copy()
    full = net.loss_and_grad(X, Y, None, 0.0)
    assert np.isfinite(full)
    assert_allclose(tail, net.grad[start:], rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------------------
# bidirectional layers, variable lengths (PaddedSequences through the network)
# --------------------------------------------------------------------------------------
def _varlen(rng, lengths, d, pad=0.0):
    from sknet._sequences import PaddedSequences

    X = rng.normal(size=(len(lengths), max(lengths), d))
    for s, L in enumerate(lengths):
        X[s, L:] = pad
    return PaddedSequences(X, np.asarray(lengths, dtype=np.int64))


VARLEN = [5, 1, 3, 5, 2, 4, 1, 3, 2, 5, 4]


@pytest.mark.parametrize("cell, act", CELLS, ids=IDS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_forward_matches_reference_per_sequence(cell, act, return_sequences, rng):
    """Each sequence alone through the reference, forward and reversed within its length;
    NaN padding changes nothing."""
    d, H = 2, 3
    seqs = _varlen(rng, VARLEN, d, pad=np.nan)
    layer = Recurrent(
        cell, H, return_sequences=return_sequences, activation=act, bidirectional=True
    )
    net = build([layer], (5, d))
    assert net.output_shape == ((5, 2 * H) if return_sequences else (2 * H,))
    out = net.predict(seqs)
    fwd = {k: v for k, v in net.params[0].items() if not k.endswith("_reverse")}
    bwd = {k[: -len("_reverse")]: v for k, v in net.params[0].items() if k.endswith("_reverse")}
    for s, L in enumerate(VARLEN):
        x = seqs.data[s : s + 1, :L]
        hf = ref.states(cell, x, fwd, act)[0]
        hb = ref.states(cell, x[:, ::-1], bwd, act)[0][::-1]  # back in input time
        if return_sequences:
            assert_allclose(out[s, :L], np.hstack([hf, hb]), rtol=0, atol=1e-12)
            assert np.all(out[s, L:] == 0.0)
        else:
            assert_allclose(out[s], np.r_[hf[-1], hb[0]], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell, act", [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh")])
def test_stacked_bidirectional_gradients_variable_lengths(cell, act, rng):
    """Whole-network gradients of two stacked bidirectional layers and a dense head on
    variable-length input, against finite differences."""
    seqs = _varlen(rng, VARLEN, 2)
    layers = [
        Recurrent(cell, 3, return_sequences=True, activation=act, bidirectional=True),
        Recurrent(cell, 2, activation=act, bidirectional=True),
        Dense(2),
    ]
    net = build(layers, (5, 2))
    Y = rng.normal(size=(len(VARLEN), 2))

    def loss():
        return net.loss_and_grad(seqs, Y, None, 0.0)

    loss()
    grad = net.grad.copy()
    assert_grad_close(loss, net.theta, grad, rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_matches_pytorch_packed(cell):
    """Bidirectional layers against ``nn.RNN/LSTM/GRU(bidirectional=True)`` on packed
    variable-length sequences, float64: outputs, h_n, and every gradient."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from sknet import torch_interop

    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    d, H, T = 2, 3, 5
    seqs = _varlen(rng, VARLEN, d)
    module = getattr(torch.nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell])(
        d, H, batch_first=True, bidirectional=True
    ).double()
    layer_seq = Recurrent(cell, H, return_sequences=True, bidirectional=True)
    layer_last = Recurrent(cell, H, bidirectional=True)
    net_seq = Network([layer_seq], "squared_error").build((T, d), np.float64)
    net_last = Network([layer_last], "squared_error").build((T, d), np.float64)
    ((_, _, group),) = torch_interop._groups(module.state_dict())
    values = torch_interop._torch_to_sknet(net_seq.params[0], group, "test", layer_seq)
    for name, v in values.items():
        net_seq.params[0][name][...] = v
    net_last.theta[...] = net_seq.theta
    X = torch.from_numpy(seqs.data).requires_grad_(True)
    packed = pack_padded_sequence(
        X, torch.from_numpy(seqs.lengths), batch_first=True, enforce_sorted=False
    )
    out, h_n = module(packed)
    h_n = h_n[0] if isinstance(h_n, tuple) else h_n
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    last = torch.cat([h_n[0], h_n[1]], dim=1)
    np.testing.assert_allclose(net_seq.predict(seqs), out.detach().numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(net_last.predict(seqs), last.detach().numpy(), rtol=0, atol=1e-13)
    # gradients: loss = sum(out * R) + sum(last * Q), through both layers' backward
    R_out = rng.normal(size=out.shape)
    Q = rng.normal(size=last.shape)
    ((out * torch.from_numpy(R_out)).sum() + (last * torch.from_numpy(Q)).sum()).backward()
    grads = {}
    dX = 0.0
    for net, dY in ((net_seq, R_out), (net_last, Q)):
        ctx = net._ctx[0]
        net.forward(seqs, training=True)
        dX = dX + net.layers[0].backward(dY.copy(), net.params[0], net.grads[0], ctx, True)
        for k, v in net.grads[0].items():
            grads[k] = grads.get(k, 0.0) + v
    np.testing.assert_allclose(dX, X.grad.numpy(), rtol=0, atol=1e-12)
    one_bias = cell != "gru"  # sknet's one bias gets bias_ih's gradient, bias_hh is zero
    for name, g in torch_interop._recurrent_to_torch(cell, grads).items():
        if not (one_bias and name.startswith("bias_hh")):
            np.testing.assert_allclose(
                g, getattr(module, name).grad.numpy(), rtol=0, atol=1e-12, err_msg=name
            )
