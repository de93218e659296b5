"""BatchNorm, GlobalPool and Residual as layers of a Network.

Each layer is driven through ``Network(layers, loss).build(shape, dtype)`` and checked
against a slow NumPy reference (forward, both modes), central finite differences
(parameters and input), hand-built PyTorch modules with the same weights (outputs,
gradients, running statistics), float32, thread counts and frozen layers.
"""

import numba
import numpy as np
import pytest

from sknet._layers import Activation, BatchNorm, Conv, Dense, Dropout, Flatten, GlobalPool, Residual
from sknet._network import Network
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_conv as rconv
from tests.kernels import reference_norm as rnorm

# ======================================================================================
# cases: (layers factory, per-sample input shape); each factory gives fresh layers
# ======================================================================================
CASES = {
    "bn-dense": (lambda: [BatchNorm(momentum=0.2, eps=1e-3)], (5,)),
    "bn-dense-3-blocks": (lambda: [BatchNorm()], (37,)),
    "bn-1d": (lambda: [BatchNorm()], (3, 7)),
    "bn-2d": (lambda: [BatchNorm(momentum=0.3)], (2, 3, 4)),
    "gap-avg-1d": (lambda: [GlobalPool("avg")], (3, 7)),
    "gap-max-1d": (lambda: [GlobalPool("max")], (3, 7)),
    "gap-avg-2d": (lambda: [GlobalPool("avg")], (2, 3, 4)),
    "gap-max-2d": (lambda: [GlobalPool("max")], (2, 3, 4)),
    "res-identity": (
        lambda: [
            Residual(
                [
                    Conv(2, 3, 1, 1, "identity", ndim=1),
                    BatchNorm(),
                    Activation("relu"),
                    Conv(2, 3, 1, 1, "identity", ndim=1),
                    BatchNorm(),
                ],
                shortcut="identity",
            )
        ],
        (2, 6),
    ),
    "res-projection-stride": (
        lambda: [
            Residual(
                [
                    Conv(3, 3, 2, 1, "identity", ndim=1),
                    BatchNorm(),
                    Activation("tanh"),
                    Conv(3, 3, 1, 1, "identity", ndim=1),
                ],
                activation="tanh",
            )
        ],
        (2, 9),
    ),
    "res-projection-2d-bn": (
        lambda: [
            Residual(
                [Conv(3, 3, 2, 1, "tanh", ndim=2), BatchNorm()],
                shortcut="projection",
                shortcut_batchnorm=True,
            )
        ],
        (2, 5, 4),
    ),
    "res-dense-projection": (
        lambda: [Residual([Dense(4, "tanh"), BatchNorm(), Dense(3)], activation="tanh")],
        (5,),
    ),
    "res-nested-dropout-off": (
        lambda: [
            Residual(
                [
                    Conv(3, 3, 1, 1, "tanh", ndim=1),
                    Dropout(0.0),
                    Residual([BatchNorm(), Conv(3, 3, 1, 1, "identity", ndim=1)]),
                ],
                shortcut_batchnorm=True,
                activation="tanh",
            ),
            GlobalPool("avg"),
        ],
        (2, 6),
    ),
}

TORCH_CASES = [
    "bn-dense",
    "bn-1d",
    "bn-2d",
    "gap-avg-1d",
    "gap-max-2d",
    "res-identity",
    "res-projection-stride",
    "res-projection-2d-bn",
    "res-dense-projection",
    "res-nested-dropout-off",
]


def _fill_state(net, rng):
    """Non-trivial running statistics (means around 0, variances in [0.5, 2])."""
    for views in net.states:
        for name, v in views.items():
            if name.endswith("running_mean"):
                v[...] = rng.standard_normal(v.shape)
            else:
                v[...] = rng.uniform(0.5, 2.0, v.shape)


def make_net(case, dtype=np.float64, seed=0):
    factory, shape = CASES[case]
    net = Network(factory(), "squared_error").build(shape, dtype)
    net.init_params(np.random.RandomState(seed))
    rng = np.random.default_rng(seed + 100)
    # every parameter away from its initial value (gamma 1, beta 0, biases 0)
    net.theta += (0.3 * rng.standard_normal(net.n_params)).astype(dtype)
    _fill_state(net, rng)
    return net


def make_X(net, n=4, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n,) + net.input_shape) * 1.5 + 0.5
    return X.astype(net.dtype)


def run(net, X, R, training=True, ctxs=None, first_trainable=0):
    """Forward, then backward of sum(Z * R) down to the input: (Z, dX, grad) copies."""
    ctxs = net._new_ctxs() if ctxs is None else ctxs
    rng = np.random.default_rng(0)
    Z = net.forward(X, training=training, rng=rng, ctxs=ctxs, first_trainable=first_trainable)
    Z = Z.copy()
    if not training:
        return Z, None, None
    d = np.array(R, dtype=net.dtype)
    for i in range(len(net.layers) - 1, first_trainable - 1, -1):
        d = net.layers[i].backward(d, net.params[i], net.grads[i], ctxs[i], need_dx=True)
    return Z, np.array(d), net.grad.copy()


# ======================================================================================
# slow NumPy reference, layer by layer
# ======================================================================================
def _ref_act(name, Z):
    return {
        "identity": lambda z: z,
        "relu": lambda z: np.maximum(z, 0.0),
        "tanh": np.tanh,
        "logistic": lambda z: 1.0 / (1.0 + np.exp(-z)),
    }[name](Z)


def ref_layer(layer, params, state, X, training):
    """Output of one layer for X (float64), updating the ``state`` dict (copies) in
    training."""
    kind = type(layer).__name__
    n = X.shape[0]
    if kind == "BatchNorm":
        X3 = X.reshape(n, X.shape[1], -1)
        g, b = params["gamma"], params["beta"]
        if training:
            Y, _, _, mean, var = rnorm.batchnorm_train(
                X3, g, b, state["running_mean"], state["running_var"], layer.momentum, layer.eps
            )
            state["running_mean"], state["running_var"] = mean, var
        else:
            Y = rnorm.batchnorm_inference(
                X3, g, b, state["running_mean"], state["running_var"], layer.eps
            )
        return Y.reshape(X.shape)
    if kind == "GlobalPool":
        X3 = X.reshape(n, X.shape[1], -1)
        return rnorm.global_avgpool(X3) if layer.mode == "avg" else rnorm.global_maxpool(X3)[0]
    if kind == "Conv":
        pads = layer._pads
        out = layer.output_shape[1:]
        if layer.ndim == 1:
            Y = rconv.conv1d(X, params["W"], params["b"], layer.stride, pads[0], out[0])
        else:
            s = (layer.stride, layer.stride)
            Y = rconv.conv2d(X, params["W"], params["b"], s, pads, out)
        return _ref_act(layer.activation, Y)
    if kind == "Dense":
        return _ref_act(layer.activation, X @ params["W"] + params["b"])
    if kind == "Activation":
        return _ref_act(layer.activation, X)
    if kind == "Dropout":
        assert layer.rate == 0.0 or not training
        return X
    if kind == "Flatten":
        return X.reshape(n, -1)
    if kind == "Residual":

        def run_list(children, A):
            for prefix, child in children:
                sub_p = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
                sub_s = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                A = ref_layer(child, sub_p, sub_s, A, training)
                for k, v in sub_s.items():
                    state[prefix + k] = v
            return A

        children = layer._children()
        nb = len(layer.layers)
        return _ref_act(layer.activation, run_list(children[:nb], X) + run_list(children[nb:], X))
    raise AssertionError(kind)


def ref_forward(net, X, training):
    """(output, new state per layer) of the NumPy reference; the net is not touched."""
    A = np.asarray(X, dtype=np.float64)
    states = []
    for layer, params, views in zip(net.layers, net.params, net.states):
        state = {k: v.astype(np.float64) for k, v in views.items()}
        p = {k: v.astype(np.float64) for k, v in params.items()}
        A = ref_layer(layer, p, state, A, training)
        states.append(state)
    return A, states


# ======================================================================================
# forward against the reference
# ======================================================================================
@pytest.mark.parametrize("case", list(CASES))
def test_forward_matches_numpy_reference(case):
    net = make_net(case)
    X = make_X(net)
    for training in (False, True):
        expected, states = ref_forward(net, X, training)
        state_before = net.state.copy()
        Z = net.forward(X, training=training, rng=np.random.default_rng(0), ctxs=net._new_ctxs())
        np.testing.assert_allclose(Z, expected, rtol=1e-12, atol=1e-12)
        for views, state in zip(net.states, states):
            for name, v in views.items():
                np.testing.assert_allclose(v, state[name], rtol=1e-12, atol=1e-14)
        if not training:  # prediction leaves the running statistics alone
            np.testing.assert_array_equal(net.state, state_before)
        elif net.state.size:  # training moved them (the check above is not vacuous)
            assert not np.array_equal(net.state, state_before)


def test_inference_uses_running_statistics_not_the_batch():
    net = make_net("bn-1d")
    X = make_X(net, n=6)
    full = net.predict(X, output_activation=False)
    # one sample at a time gives the same: nothing depends on the batch
    single = np.concatenate([net.predict(X[i : i + 1], output_activation=False) for i in range(6)])
    np.testing.assert_allclose(single, full, rtol=1e-14)
    train = net.forward(X, training=True, ctxs=net._new_ctxs())
    assert not np.allclose(train, full)


# ======================================================================================
# backward against central finite differences (float64)
# ======================================================================================
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_finite_differences(case):
    net = make_net(case)
    X = make_X(net, n=3)
    R = np.random.default_rng(5).standard_normal((3,) + net.output_shape)
    state0 = net.state.copy()
    ctxs = net._new_ctxs()
    Z, dX, grad = run(net, X, R, ctxs=ctxs)

    def loss():
        net.state[...] = state0  # each training forward moves the running statistics
        out = net.forward(X, training=True, rng=np.random.default_rng(0), ctxs=ctxs)
        return float(np.sum(out * R))

    if net.n_params:
        assert_grad_close(loss, net.theta, grad, rtol=1e-6)
    assert_grad_close(loss, X, dX, rtol=1e-6)


def test_nested_residual_with_active_dropout_gradients():
    """Dropout on (rate 0.4) inside a nested block: with the same mask every time, the
    gradient is still exact."""
    layers = [
        Residual(
            [
                Dense(6, "tanh"),
                Dropout(0.4),
                Residual([BatchNorm(), Dense(6, "tanh"), Dropout(0.4)], activation="tanh"),
            ],
            shortcut_batchnorm=True,
            activation="tanh",
        )
    ]
    net = Network(layers, "squared_error").build((4,), np.float64)
    net.init_params(np.random.RandomState(0))
    X = np.random.default_rng(1).standard_normal((5, 4))
    R = np.random.default_rng(2).standard_normal((5, 6))
    ctxs = net._new_ctxs()
    _, dX, grad = run(net, X, R, ctxs=ctxs)

    def loss():
        out = net.forward(X, training=True, rng=np.random.default_rng(0), ctxs=ctxs)
        return float(np.sum(out * R))

    assert_grad_close(loss, net.theta, grad, rtol=1e-6)
    assert_grad_close(loss, X, dX, rtol=1e-6)
    # dropout really was on: the training output differs from the inference one
    assert not np.allclose(loss(), np.sum(net.predict(X, output_activation=False) * R))


# ======================================================================================
# PyTorch, float64: outputs, gradients, running statistics
# ======================================================================================
def _torch_layer(torch, layer, params, state, prefix=""):
    """(module, [(sknet param name, torch parameter, transpose)], [(sknet state name,
    torch buffer)]) for one sknet layer, with its weights copied."""
    nn = torch.nn
    kind = type(layer).__name__
    P = {k: torch.from_numpy(np.array(v)) for k, v in params.items()}
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}
    if kind == "Conv":
        C, F = layer.input_shape[0], layer.filters
        assert isinstance(layer.padding, int) or layer.padding == "valid"
        pad = 0 if layer.padding == "valid" else layer.padding
        conv = (nn.Conv1d if layer.ndim == 1 else nn.Conv2d)(
            C, F, layer.kernel_size, stride=layer.stride, padding=pad
        ).double()
        with torch.no_grad():
            conv.weight.copy_(P["W"])
            conv.bias.copy_(P["b"])
        mod = nn.Sequential(conv, act[layer.activation]())
        return mod, [(prefix + "W", conv.weight, False), (prefix + "b", conv.bias, False)], []
    if kind == "Dense":
        lin = nn.Linear(*params["W"].shape).double()
        with torch.no_grad():
            lin.weight.copy_(P["W"].T)
            lin.bias.copy_(P["b"])
        mod = nn.Sequential(lin, act[layer.activation]())
        return mod, [(prefix + "W", lin.weight, True), (prefix + "b", lin.bias, False)], []
    if kind == "BatchNorm":
        cls = nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d
        bn = cls(layer.input_shape[0], eps=layer.eps, momentum=layer.momentum).double()
        with torch.no_grad():
            bn.weight.copy_(P["gamma"])
            bn.bias.copy_(P["beta"])
            bn.running_mean.copy_(torch.from_numpy(np.array(state["running_mean"])))
            bn.running_var.copy_(torch.from_numpy(np.array(state["running_var"])))
        params_map = [(prefix + "gamma", bn.weight, False), (prefix + "beta", bn.bias, False)]
        states_map = [
            (prefix + "running_mean", bn.running_mean),
            (prefix + "running_var", bn.running_var),
        ]
        return bn, params_map, states_map
    if kind == "GlobalPool":
        nd = len(layer.input_shape) - 1
        pool = {
            ("avg", 1): nn.AdaptiveAvgPool1d,
            ("max", 1): nn.AdaptiveMaxPool1d,
            ("avg", 2): nn.AdaptiveAvgPool2d,
            ("max", 2): nn.AdaptiveMaxPool2d,
        }[layer.mode, nd](1)
        return nn.Sequential(pool, nn.Flatten()), [], []
    if kind == "Activation":
        return act[layer.activation](), [], []
    if kind == "Dropout":
        assert layer.rate == 0.0
        return nn.Dropout(0.0), [], []
    if kind == "Residual":
        pmap, smap, mods = [], [], []
        for child_prefix, child in layer._children():
            p = {k[len(child_prefix) :]: v for k, v in params.items() if k.startswith(child_prefix)}
            s = {k[len(child_prefix) :]: v for k, v in state.items() if k.startswith(child_prefix)}
            mod, cp, cs = _torch_layer(torch, child, p, s, prefix + child_prefix)
            mods.append(mod)
            pmap += cp
            smap += cs
        nb = len(layer.layers)

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.branch = nn.Sequential(*mods[:nb])
                self.shortcut = nn.Sequential(*mods[nb:])
                self.act = act[layer.activation]()

            def forward(self, x):
                return self.act(self.branch(x) + self.shortcut(x))

        return Block(), pmap, smap
    raise AssertionError(kind)


def _torch_net(torch, net):
    mods, pmaps, smaps = [], [], []
    for layer, params, state in zip(net.layers, net.params, net.states):
        mod, pmap, smap = _torch_layer(torch, layer, params, state)
        mods.append(mod)
        pmaps.append(pmap)
        smaps.append(smap)
    return torch.nn.Sequential(*mods), pmaps, smaps


@pytest.mark.parametrize("case", TORCH_CASES)
def test_matches_torch_autograd(case):
    torch = pytest.importorskip("torch")
    net = make_net(case)
    module, pmaps, smaps = _torch_net(torch, net)
    module.train()
    for step in range(3):
        X = make_X(net, n=5, seed=10 + step)
        R = np.random.default_rng(20 + step).standard_normal((5,) + net.output_shape)
        Z, dX, _ = run(net, X, R)
        Xt = torch.from_numpy(X.copy()).requires_grad_(True)
        module.zero_grad()
        Zt = module(Xt)
        (Zt * torch.from_numpy(R)).sum().backward()
        np.testing.assert_allclose(Z, Zt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dX, Xt.grad.numpy(), rtol=1e-9, atol=1e-11)
        for grads, pmap in zip(net.grads, pmaps):
            for name, tparam, transpose in pmap:
                expected = tparam.grad.numpy()
                np.testing.assert_allclose(
                    grads[name], expected.T if transpose else expected, rtol=1e-9, atol=1e-11
                )
        for views, smap in zip(net.states, smaps):
            for name, buf in smap:
                np.testing.assert_allclose(views[name], buf.numpy(), rtol=1e-12, atol=1e-14)
    assert any(pmaps) or case.startswith("gap")
    # and prediction (eval mode) with the running statistics of three steps
    module.eval()
    X = make_X(net, n=4, seed=30)
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.predict(X, output_activation=False), expected, rtol=1e-10)


# ======================================================================================
# float32, thread counts
# ======================================================================================
@pytest.mark.parametrize("case", ["bn-dense-3-blocks", "bn-2d", "res-projection-2d-bn"])
def test_float32_agrees_with_float64(case):
    net64 = make_net(case, np.float64)
    net32 = make_net(case, np.float32)
    net32.theta[...] = net64.theta
    net32.state[...] = net64.state
    X = make_X(net64, n=6)
    R = np.random.default_rng(3).standard_normal((6,) + net64.output_shape)
    out64 = run(net64, X, R)
    out32 = run(net32, X.astype(np.float32), R.astype(np.float32))
    for a32, a64 in zip(out32, out64):
        assert a32.dtype == np.float32
        scale = max(np.max(np.abs(a64)), 1.0)
        np.testing.assert_allclose(a32, a64, rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(net32.state, net64.state, rtol=1e-5, atol=1e-6)
    assert net32.predict(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(
        net32.predict(X.astype(np.float32), output_activation=False),
        net64.predict(X, output_activation=False),
        rtol=0,
        atol=2e-5 * max(1.0, np.max(np.abs(out64[0]))),
    )


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["bn-dense-3-blocks", "bn-2d", "res-nested-dropout-off"])
def test_bit_identical_for_any_thread_count(case, dtype):
    old = numba.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            net = make_net(case, dtype)
            X = make_X(net, n=7)
            R = np.random.default_rng(3).standard_normal((7,) + net.output_shape)
            Z, dX, grad = run(net, X, R)
            results.append((Z, dX, grad, net.state.copy(), net.predict(X)))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ======================================================================================
# frozen batch normalization, bad batches
# ======================================================================================
@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "in-residual"])
def test_frozen_batchnorm_uses_and_keeps_running_statistics(wrap):
    bn_layers = [Conv(3, 3, 1, 1, "identity", ndim=1), BatchNorm(), Activation("relu")]
    first = [Residual(bn_layers, shortcut="projection")] if wrap else bn_layers
    layers = first + [GlobalPool("avg"), Dense(2)]
    k = len(first)  # first trainable layer: every BatchNorm is before it
    net = Network(layers, "squared_error").build((2, 8), np.float64)
    net.init_params(np.random.RandomState(0))
    _fill_state(net, np.random.default_rng(0))
    X = np.random.default_rng(1).standard_normal((6, 2, 8)) + 1.0
    R = np.random.default_rng(2).standard_normal((6, 2))
    state0 = net.state.copy()
    inference = net.predict(X, output_activation=False)
    net.grad[...] = np.nan
    Z, _, grad = run(net, X, R, first_trainable=k)
    np.testing.assert_allclose(Z, inference, rtol=1e-13)
    np.testing.assert_array_equal(net.state, state0)
    # the trainable tail got gradients, the frozen head none
    start = net.layer_offset(k)
    assert np.isfinite(grad[start:]).all() and np.isnan(grad[:start]).all()
    # without freezing, the same batch trains the BatchNorm: other output, moved stats
    Z_train, _, _ = run(net, X, R)
    assert not np.allclose(Z_train, inference)
    assert not np.array_equal(net.state, state0)


@pytest.mark.parametrize("shape", [(4,), (3, 1), (2, 1, 1)], ids=["dense", "1d", "2d"])
def test_single_value_per_channel_training_batch_is_a_clear_error(shape):
    net = Network([BatchNorm(), Flatten()], "squared_error").build(shape, np.float64)
    net.init_params(np.random.RandomState(0))
    X = np.ones((1,) + shape)
    with pytest.raises(ValueError, match="BatchNorm needs more than one value per channel"):
        net.forward(X, training=True)
    # inference on one sample is fine, and two samples train
    assert net.predict(X, output_activation=False).shape == (1, int(np.prod(shape)))
    assert np.isfinite(
        net.forward(np.arange(2.0 * np.prod(shape)).reshape((2,) + shape), True)
    ).all()


def test_batch_of_one_in_a_residual_dense_batchnorm_is_a_clear_error():
    net = Network([Residual([Dense(3), BatchNorm()])], "squared_error").build((3,), np.float64)
    net.init_params(np.random.RandomState(0))
    with pytest.raises(ValueError, match="batch of 1 sample"):
        net.forward(np.ones((1, 3)), training=True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_with_dropout_inside_a_residual_block():
    """The training loop sees a Dropout nested in a block: it gets random masks (no
    crash for want of a generator), and L-BFGS refuses it as for any dropout."""
    from sknet import NetworkRegressor
    from sknet.layers import BatchNorm as BatchNormSpec
    from sknet.layers import Dense as DenseSpec
    from sknet.layers import Dropout as DropoutSpec
    from sknet.layers import Residual as ResidualSpec

    X = np.random.default_rng(0).standard_normal((20, 4))
    y = X.sum(1)
    block = ResidualSpec(
        [("dense", DenseSpec(4, "tanh")), ("drop", DropoutSpec(0.3)), ("bn", BatchNormSpec())]
    )
    reg = NetworkRegressor([("block", block)], max_iter=3, batch_size=10, random_state=0)
    a = reg.fit(X, y).predict(X)
    np.testing.assert_array_equal(reg.fit(X, y).predict(X), a)  # seeded masks
    assert np.isfinite(a).all()
    with pytest.raises(ValueError, match="needs a deterministic objective"):
        reg.set_params(solver="lbfgs").fit(X, y)
