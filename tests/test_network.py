"""The Network: whole-network gradient against finite differences for every hidden
activation and every loss, with L2 penalty, sample weights and dropout; the flat
parameter layout, frozen layers, prediction and pickling."""

import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from sknet import _network
from sknet._layers import Dense, Dropout
from sknet._network import Network
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_dense as ref

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]
# (loss, number of outputs)
LOSSES = [
    ("log_loss", 3),
    ("binary_log_loss", 1),
    ("binary_log_loss", 3),  # multilabel
    ("squared_error", 1),
    ("squared_error", 2),
    ("poisson", 1),
]
KINK_MARGIN = 1e-4


def make_targets(loss, k, n, rng):
    if loss == "log_loss":
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == "binary_log_loss":
        return (rng.random((n, k)) < 0.5).astype(float)
    if loss == "poisson":
        return rng.poisson(1.5, size=(n, k)).astype(float)
    return rng.normal(size=(n, k))


def build(activation, loss, k, d=3, hidden=(4, 3), dropout=0.0, dtype=np.float64, seed=0):
    layers = []
    for units in hidden:
        layers.append(Dense(units, activation))
        if dropout:
            layers.append(Dropout(dropout))
    layers.append(Dense(k, "identity", init_activation=activation))
    net = Network(layers, loss).build((d,), dtype)
    net.init_params(np.random.RandomState(seed))
    return net


def pre_activations(net, X, rng_seed=None):
    """Every Dense layer's pre-activation X W + b, and the raw output (no output
    activation), by a plain NumPy forward pass."""
    gen = None if rng_seed is None else np.random.default_rng(rng_seed)
    out, pre = np.asarray(X, dtype=np.float64), []
    for layer, params in zip(net.layers, net.params):
        if isinstance(layer, Dense):
            z = out @ params["W"] + params["b"]
            pre.append(z)
            out = ref.activation(layer.activation, z)
        else:  # Dropout, drawing the same uniforms as the layer does
            u = gen.random(out.size, dtype=out.dtype).reshape(out.shape)
            out = ref.dropout(out, u, layer.rate)[0]
    return pre, out


def problem(activation, loss, k, n=7, dropout=0.0, seed=0):
    """A network and data where no relu pre-activation is within KINK_MARGIN of 0."""
    for attempt in range(100):
        rng = np.random.default_rng(seed + 1000 * attempt)
        net = build(activation, loss, k, dropout=dropout, seed=seed + attempt)
        X = rng.normal(size=(n, 3))
        Y = make_targets(loss, k, n, rng)
        sw = rng.uniform(0.3, 2.0, size=n)
        pre, _ = pre_activations(net, X, rng_seed=5 if dropout else None)
        if activation != "relu" or min(np.abs(z).min() for z in pre[:-1]) > KINK_MARGIN:
            return net, X, Y, sw
    raise RuntimeError("no kink-free draw found")  # pragma: no cover


def check_network_gradient(net, X, Y, sw, alpha, dropout_seed=None, first_trainable=0):
    def rng():
        return None if dropout_seed is None else np.random.default_rng(dropout_seed)

    net.loss_and_grad(X, Y, sw, alpha, rng=rng(), first_trainable=first_trainable)
    start = net.layer_offset(first_trainable)
    analytic = net.grad[start:].copy()
    theta_tail = net.theta[start:]  # a view: numerical_grad perturbs theta in place

    def f():
        return net.loss_and_grad(X, Y, sw, alpha, rng=rng(), first_trainable=first_trainable)

    assert_grad_close(f, theta_tail, analytic)


@pytest.mark.parametrize("loss,k", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_network_gradient(activation, loss, k):
    net, X, Y, sw = problem(activation, loss, k)
    check_network_gradient(net, X, Y, sw, alpha=0.3)


@pytest.mark.parametrize("loss,k", [("log_loss", 3), ("squared_error", 1)])
def test_network_gradient_without_sample_weight_or_penalty(loss, k):
    net, X, Y, _ = problem("tanh", loss, k)
    check_network_gradient(net, X, Y, None, alpha=0.0)


@pytest.mark.parametrize("loss,k", LOSSES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_network_gradient_with_dropout(activation, loss, k):
    """The same mask at every evaluation: the Generator is reseeded before each call."""
    net, X, Y, sw = problem(activation, loss, k, dropout=0.4)
    # the fixed mask really drops units
    net.forward(X, training=True, rng=np.random.default_rng(5))
    assert not net._ctx[1]["mask"].all()
    check_network_gradient(net, X, Y, sw, alpha=0.2, dropout_seed=5)


@pytest.mark.parametrize("first", [1, 2])
def test_frozen_layers_get_no_gradient(first):
    net, X, Y, sw = problem("tanh", "log_loss", 3)
    full_loss = net.loss_and_grad(X, Y, sw, 0.5)
    full = net.grad.copy()
    net.grad[...] = np.nan
    loss = net.loss_and_grad(X, Y, sw, 0.5, first_trainable=first)
    start = net.layer_offset(first)
    assert loss == pytest.approx(full_loss, rel=1e-14)  # frozen weights still penalised
    assert_allclose(net.grad[start:], full[start:], rtol=1e-13)
    assert np.isnan(net.grad[:start]).all()
    check_network_gradient(net, X, Y, sw, alpha=0.5, first_trainable=first)


def test_objective_is_scikit_learns():
    """loss = sum_i sw_i l_i / S + alpha / (2 S) ||W||^2 (biases not penalised)."""
    net, X, Y, sw = problem("logistic", "log_loss", 3)
    _, Z = pre_activations(net, X)
    data = float(sw @ ref.log_loss(Z, Y)) / sw.sum()
    W2 = sum(np.sum(p["W"] ** 2) for p in net.params)
    assert net.loss_and_grad(X, Y, sw, 0.0) == pytest.approx(data, rel=1e-12)
    assert net.loss_and_grad(X, Y, sw, 0.7) == pytest.approx(data + 0.35 * W2 / sw.sum(), rel=1e-12)
    assert net.data_loss(X, Y, sw) == pytest.approx(data, rel=1e-12)
    # no weights: the unweighted mean
    unweighted = float(ref.log_loss(Z, Y).mean())
    assert net.loss_and_grad(X, Y, None, 0.0) == pytest.approx(unweighted, rel=1e-12)


def test_layout_and_views():
    net = build("relu", "squared_error", 2)
    sizes = [3 * 4, 4, 4 * 3, 3, 3 * 2, 2]
    assert net.n_params == sum(sizes) == net.theta.size == net.grad.size
    assert [net.layer_offset(i) for i in range(4)] == [0, 16, 31, 39]
    for params in net.params:
        for view in params.values():
            assert np.shares_memory(view, net.theta)
    net.params[1]["b"][...] = 7.0
    assert_array_equal(net.theta[28:31], 7.0)
    assert net.output_shape == (2,)


def test_predict_applies_output_activation_and_chunks(monkeypatch):
    net, X, _, _ = problem("tanh", "log_loss", 3, n=10)
    _, Z = pre_activations(net, X)
    out = net.predict(X)
    assert_allclose(out, ref.softmax(Z), rtol=1e-12)
    raw = net.predict(X, output_activation=False)
    assert_allclose(out, ref.softmax(raw), rtol=1e-12)
    monkeypatch.setattr(_network, "PREDICT_CHUNK", 3)
    assert_array_equal(net.predict(X), out)
    hidden = net.predict(X, stop=1)
    assert_allclose(hidden, np.tanh(X @ net.params[0]["W"] + net.params[0]["b"]), rtol=1e-12)


def test_predict_does_not_disturb_training_buffers():
    net, X, Y, sw = problem("relu", "squared_error", 1)
    net.forward(X, training=True)
    before = [dict(ctx) for ctx in net._ctx]
    net.predict(X[:2])
    for ctx, old in zip(net._ctx, before):
        for key, value in old.items():
            assert ctx[key] is value


def test_predict_reuses_a_threads_buffers_and_returns_fresh_arrays(monkeypatch):
    """A thread's next prediction reuses its buffers (fresh ones cost page faults on
    every call), another thread gets its own, the results are fresh arrays, and buffers
    past ``PREDICT_KEEP_BYTES`` are not kept."""
    net, X, _, _ = problem("tanh", "log_loss", 3, n=10)
    first = net.predict(X)
    kept = net._predict_ctxs.ctxs
    assert kept is not None and kept is not net._ctx
    buffers = {id(v) for ctx in kept for v in ctx.values() if isinstance(v, np.ndarray)}
    assert buffers
    second = net.predict(X)
    assert net._predict_ctxs.ctxs is kept
    again = {id(v) for ctx in kept for v in ctx.values() if isinstance(v, np.ndarray)}
    assert again == buffers
    assert_array_equal(second, first)
    assert not np.shares_memory(second, first)
    assert_array_equal(net.predict(X[:3]), first[:3])  # fewer rows: views of them
    assert_array_equal(net.predict(X), first)
    results = {}

    def other():
        results["out"] = net.predict(X)
        results["ctxs"] = net._predict_ctxs.ctxs

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert_array_equal(results["out"], first)
    assert results["ctxs"] is not None and results["ctxs"] is not kept
    assert net._predict_ctxs.ctxs is kept
    monkeypatch.setattr(_network, "PREDICT_KEEP_BYTES", 0)
    assert_array_equal(net.predict(X), first)
    assert net._predict_ctxs.ctxs is None
    # new parameter views (unpickling, loading) start without any
    clone = pickle.loads(pickle.dumps(net))
    assert getattr(clone._predict_ctxs, "ctxs", None) is None
    assert_array_equal(clone.predict(X), first)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_same_loss_and_gradient(fmt):
    net, X, Y, sw = problem("relu", "log_loss", 3, n=9)
    X[np.abs(X) < 0.8] = 0.0
    loss = net.loss_and_grad(X, Y, sw, 0.1)
    grad = net.grad.copy()
    loss_sp = net.loss_and_grad(sp.csr_matrix(X).asformat(fmt), Y, sw, 0.1)
    assert loss_sp == pytest.approx(loss, rel=1e-13)
    assert_allclose(net.grad, grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss,k", LOSSES)
def test_float32_network_close_to_float64(loss, k):
    net, X, Y, sw = problem("tanh", loss, k)
    net32 = build("tanh", loss, k, dtype=np.float32)
    net32.theta[...] = net.theta
    loss64 = net.loss_and_grad(X, Y, sw, 0.1)
    loss32 = net32.loss_and_grad(*(a.astype(np.float32) for a in (X, Y, sw)), 0.1)
    assert net32.grad.dtype == np.float32
    assert net32.predict(X.astype(np.float32)).dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    assert_allclose(net32.grad, net.grad, rtol=1e-4, atol=1e-5)


def test_pickle_round_trip_rebuilds_views():
    net, X, Y, sw = problem("logistic", "binary_log_loss", 3)
    net.loss_and_grad(X, Y, sw, 0.1)
    clone = pickle.loads(pickle.dumps(net))
    assert_array_equal(clone.theta, net.theta)
    assert_array_equal(clone.predict(X), net.predict(X))
    assert np.shares_memory(clone.params[0]["W"], clone.theta)
    assert not np.shares_memory(clone.theta, net.theta)
    assert clone.loss_and_grad(X, Y, sw, 0.1) == net.loss_and_grad(X, Y, sw, 0.1)
    assert_array_equal(clone.grad, net.grad)


def test_take_batch_gathers_rows_into_a_reused_buffer():
    net = Network([Dense(3, "relu"), Dense(2)], "log_loss").build((4,), np.float32)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4)).astype(np.float32)
    X4 = rng.standard_normal((20, 2, 3, 2))  # any C-contiguous rank, float64 too
    for i in range(3):
        idx = rng.permutation(20)[: 7 - i].astype(np.int64)
        Xb = net.take_batch(X, idx, "X")
        assert_array_equal(Xb, X[idx])
        assert Xb.flags.c_contiguous and not np.shares_memory(Xb, X)
        assert_array_equal(net.take_batch(X4, idx, "X4"), X4[idx])
    again = net.take_batch(X, idx, "X")
    assert np.shares_memory(again, Xb)  # the buffer is kept between steps
    # other inputs go through numpy's indexing: the same values
    Xs = sp.csr_matrix(X)
    assert_array_equal(net.take_batch(Xs, idx, "S").toarray(), X[idx])
    XF = np.asfortranarray(X)
    assert_array_equal(net.take_batch(XF, idx, "F"), X[idx])
    assert "_batches" not in pickle.loads(pickle.dumps(net)).__dict__
