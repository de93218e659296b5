"""Conv and Pool layers inside a Network: forward against a slow NumPy reference written
here from the definitions, whole-network gradient against central finite differences
(float64), for 1-D and 2-D inputs, strides 1 and 2, padding 'same' / 'valid' / int
(odd and even kernels), max and average pooling."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sknet._layers import Dense, Flatten
from sknet._layers.conv import Conv, Pool
from sknet._network import Network
from tests.gradcheck import assert_grad_close

# margins keeping finite differences (eps = 1e-6 on the weights) away from kinks
KINK_MARGIN = 1e-4  # relu pre-activations at least this far from 0
TIE_MARGIN = 1e-4  # gap between the two largest values of every max-pooling window


# ------------------------------------------------------------------ slow reference
def expected_size_and_pad(n, k, s, padding):
    """Output size and leading padding of one axis, from the definitions:
    'valid' no padding; int p, p zeros each side; 'same' ceil(n / s) outputs with the
    total padding split as evenly as possible, the extra zero after the input."""
    if padding == "valid":
        return (n - k) // s + 1, 0
    if padding == "same":
        out = math.ceil(n / s)
        total = max((out - 1) * s + k - n, 0)
        return out, total // 2
    return (n + 2 * padding - k) // s + 1, padding


def ref_activation(name, z):
    return {
        "identity": lambda v: v,
        "relu": lambda v: np.maximum(v, 0),
        "tanh": np.tanh,
        "logistic": lambda v: 1 / (1 + np.exp(-v)),
    }[name](z)


def ref_conv(X, W, b, stride, padding):
    """Y[n, f, o] = b[f] + sum_{c, r} W[f, c, r] X[n, c, o*s + r - pad] over the spatial
    offsets r, with X = 0 outside its bounds: explicit loops, any number of spatial axes."""
    n, C = X.shape[:2]
    F, _, *ks = W.shape
    spatial = X.shape[2:]
    sizes = [expected_size_and_pad(m, k, stride, padding) for m, k in zip(spatial, ks)]
    out_shape = tuple(o for o, _ in sizes)
    Y = np.empty((n, F) + out_shape)
    for o in np.ndindex(*out_shape):
        acc = np.broadcast_to(b, (n, F)).astype(np.float64)
        for r in np.ndindex(*ks):
            pos = [oi * stride + ri - pi for oi, ri, (_, pi) in zip(o, r, sizes)]
            if all(0 <= p < m for p, m in zip(pos, spatial)):
                x = X[(slice(None), slice(None)) + tuple(pos)]  # (n, C)
                acc = acc + x @ W[(slice(None), slice(None)) + r].T
        Y[(slice(None), slice(None)) + o] = acc
    return Y


def ref_pool_windows(X, size):
    """All pooling windows: shape (n, C, *out, size**ndim), floor output size."""
    spatial = X.shape[2:]
    out = tuple(m // size for m in spatial)
    win = np.empty(X.shape[:2] + out + (size ** len(spatial),))
    for o in np.ndindex(*out):
        block = X[(slice(None), slice(None)) + tuple(slice(i * size, (i + 1) * size) for i in o)]
        win[(slice(None), slice(None)) + o] = block.reshape(X.shape[:2] + (-1,))
    return win


def reference_forward(net, X):
    """The network's raw output by the slow reference, and every layer's output.

    Also returns the smallest |pre-activation| of relu convolutions and the smallest
    gap between the two largest values of a max-pooling window (windows whose maximum
    is an exact relu zero are smooth and skipped), to keep finite differences honest.
    """
    out = np.asarray(X, dtype=np.float64)
    outputs, kink, tie = [], np.inf, np.inf
    for layer, params in zip(net.layers, net.params):
        if isinstance(layer, Conv):
            pre = ref_conv(out, params["W"], params["b"], layer.stride, layer.padding)
            if layer.activation == "relu":
                kink = min(kink, np.abs(pre).min())
            out = ref_activation(layer.activation, pre)
        elif isinstance(layer, Pool):
            win = ref_pool_windows(out, layer.size)
            if layer.mode == "max":
                top2 = np.sort(win, axis=-1)[..., -2:]
                smooth = top2[..., 1] != 0.0
                if smooth.any():
                    tie = min(tie, (top2[..., 1] - top2[..., 0])[smooth].min())
                out = win.max(axis=-1)
            else:
                out = win.mean(axis=-1)
        elif isinstance(layer, Flatten):
            out = out.reshape(out.shape[0], -1)
        else:
            pre = out @ params["W"] + params["b"]
            if layer.activation == "relu":
                kink = min(kink, np.abs(pre).min())
            out = ref_activation(layer.activation, pre)
        outputs.append(out)
    return out, outputs, kink, tie


# ------------------------------------------------------------------ cases
# (ndim, channels, spatial, filters, kernel, stride, padding, pool, activation)
CASES = [
    (2, 2, (7, 6), 3, 3, 1, "same", "max", "tanh"),
    (2, 1, (8, 8), 2, 2, 1, "same", "avg", "relu"),  # even kernel, extra zero after
    (2, 2, (7, 7), 3, 4, 2, "same", "max", "tanh"),  # even kernel, stride 2
    (2, 2, (6, 7), 2, 3, 2, "same", "avg", "logistic"),
    (2, 2, (9, 8), 3, 3, 2, "valid", "avg", "tanh"),
    (2, 1, (7, 6), 3, 2, 1, "valid", "max", "relu"),
    (2, 1, (6, 7), 2, 2, 1, 1, "max", "tanh"),  # int padding, even kernel
    (2, 2, (6, 6), 2, 3, 2, 2, None, "relu"),  # int padding 2, stride 2, no pooling
    (1, 2, (11,), 3, 3, 1, "same", "max", "tanh"),
    (1, 1, (10,), 2, 4, 1, "same", "avg", "relu"),
    (1, 2, (9,), 3, 4, 2, "same", "max", "tanh"),
    (1, 2, (12,), 3, 3, 2, "valid", "max", "tanh"),
    (1, 2, (9,), 2, 2, 2, 1, "avg", "tanh"),
    (1, 1, (8,), 2, 5, 1, 2, None, "logistic"),
]


def case_id(case):
    ndim, C, spatial, F, k, s, pad, pool, act = case
    return f"{ndim}d-{'x'.join(map(str, spatial))}-k{k}-s{s}-{pad}-{pool}-{act}"


def build_net(case, dtype=np.float64, seed=0, loss="log_loss", n_out=3):
    """conv(case) -> [pool 2] -> conv 2@3 'same' -> flatten -> dense 4 -> dense n_out.

    The second convolution takes the pooled maps, so the first layer's gradient runs
    through both the pooling and the convolution input gradients."""
    ndim, C, spatial, F, k, s, pad, pool, act = case
    layers = [Conv(F, k, s, pad, act, ndim=ndim)]
    if pool:
        layers.append(Pool(pool, 2, ndim=ndim))
    layers += [
        Conv(2, 3, 1, "same", act, ndim=ndim),
        Flatten(),
        Dense(4, "tanh"),
        Dense(n_out, "identity"),
    ]
    net = Network(layers, loss).build((C,) + spatial, dtype)
    net.init_params(np.random.RandomState(seed))
    return net


def problem(case, n=3, loss="log_loss", n_out=3):
    """Network, data, one-hot targets and sample weights with no relu kink or max-pool
    tie within the finite-difference reach."""
    ndim, C, spatial = case[:3]
    for attempt in range(50):
        rng = np.random.default_rng(attempt)
        net = build_net(case, seed=attempt, loss=loss, n_out=n_out)
        # non-zero biases (they start at 0), so that their gradients are tested too
        for params in net.params:
            if "b" in params:
                params["b"][:] = rng.uniform(-0.3, 0.3, params["b"].shape)
        X = rng.normal(size=(n, C) + spatial)
        _, _, kink, tie = reference_forward(net, X)
        if kink > KINK_MARGIN and tie > TIE_MARGIN:
            if loss == "log_loss":
                Y = np.eye(n_out)[rng.integers(0, n_out, n)]
            else:
                Y = rng.normal(size=(n, n_out))
            sw = rng.uniform(0.5, 2.0, n)
            return net, X, Y, sw
    raise RuntimeError("no kink- and tie-free draw")  # pragma: no cover


def check_gradient(net, X, Y, sw, alpha, first_trainable=0):
    net.loss_and_grad(X, Y, sw, alpha, first_trainable=first_trainable)
    start = net.layer_offset(first_trainable)
    analytic = net.grad[start:].copy()
    theta = net.theta[start:]  # a view, perturbed in place by the finite differences

    def f():
        return net.loss_and_grad(X, Y, sw, alpha, first_trainable=first_trainable)

    assert_grad_close(f, theta, analytic)
    return analytic


# ------------------------------------------------------------------ forward
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_reference(case):
    net, X, _, _ = problem(case, n=4)
    expected, outputs, _, _ = reference_forward(net, X)
    assert_allclose(net.predict(X, output_activation=False), expected, rtol=1e-10, atol=1e-12)
    # every intermediate output, including the one-convolution network's
    for stop in range(1, len(net.layers)):
        got = net.predict(X, stop=stop, output_activation=False)
        assert got.shape == outputs[stop - 1].shape
        assert_allclose(got, outputs[stop - 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_output_shapes_follow_the_definitions(case):
    ndim, C, spatial, F, k, s, pad, pool, act = case
    conv = Conv(F, k, s, pad, act, ndim=ndim)
    shape = conv.build((C,) + spatial, np.float64)
    assert shape == (F,) + tuple(expected_size_and_pad(m, k, s, pad)[0] for m in spatial)
    if pad == "same":
        assert shape[1:] == tuple(-(-m // s) for m in spatial)
    if pool:
        assert Pool(pool, 2, ndim=ndim).build(shape, np.float64) == (F,) + tuple(
            m // 2 for m in shape[1:]
        )


def test_forward_float32_close_to_float64():
    case = CASES[2]
    net64, X, _, _ = problem(case, n=5)
    net32 = build_net(case, dtype=np.float32)
    net32.theta[:] = net64.theta
    out32 = net32.predict(X.astype(np.float32), output_activation=False)
    assert out32.dtype == np.float32
    assert_allclose(out32, net64.predict(X, output_activation=False), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ndim", [1, 2])
def test_one_conv_network_against_hand_computed_values(ndim):
    """A 3-tap (or 3x3) all-ones kernel with 'same' padding sums each neighbourhood;
    the border outputs see the zero padding."""
    x = np.arange(1.0, 6.0)
    if ndim == 1:
        X, shape, expected = x[None, None], (1, 5), np.array([3.0, 6, 9, 12, 9])
    else:
        X = np.outer(x, np.ones(3))[None, None]  # rows 1..5, 3 columns
        shape = (1, 5, 3)
        rows = np.array([3.0, 6, 9, 12, 9])
        expected = np.outer(rows, [2, 3, 2])
    net = Network(
        [Conv(1, 3, 1, "same", "identity", ndim=ndim), Flatten(), Dense(1, "identity")],
        "squared_error",
    ).build(shape, np.float64)
    net.params[0]["W"][:] = 1.0
    net.params[0]["b"][:] = 0.5
    got = net.predict(X, stop=1, output_activation=False)
    assert_array_equal(got[0, 0], expected + 0.5)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_network_gradient(case):
    net, X, Y, sw = problem(case)
    grad = check_gradient(net, X, Y, sw, alpha=0.3)
    assert np.abs(grad[: net.layer_offset(1)]).max() > 0  # the first conv is reached


@pytest.mark.parametrize("case", [CASES[0], CASES[9]], ids=case_id)
def test_network_gradient_squared_error_without_weights(case):
    net, X, Y, _ = problem(case, loss="squared_error", n_out=2)
    check_gradient(net, X, Y, None, alpha=0.0)


@pytest.mark.parametrize("case", [CASES[2], CASES[10]], ids=case_id)
def test_network_gradient_with_frozen_first_layers(case):
    """Layers before ``first_trainable`` get no gradient; the rest is still exact."""
    net, X, Y, sw = problem(case)
    first = 2  # the second convolution (after the pooling layer) is the first trained
    net.grad[:] = 7.0
    check_gradient(net, X, Y, sw, alpha=0.1, first_trainable=first)
    assert (net.grad[: net.layer_offset(first)] == 7.0).all()


def test_gradient_independent_of_reused_buffers():
    """A larger batch first (buffers grow), then a smaller one: same gradient as a
    fresh network on the small batch."""
    case = CASES[0]
    net, X, Y, sw = problem(case, n=3)
    fresh = build_net(case)
    fresh.theta[:] = net.theta
    big = np.random.default_rng(9).normal(size=(7,) + X.shape[1:])
    net.loss_and_grad(big, np.eye(3)[np.arange(7) % 3], None, 0.1)
    loss = net.loss_and_grad(X, Y, sw, 0.1)
    assert loss == fresh.loss_and_grad(X, Y, sw, 0.1)
    assert_array_equal(net.grad, fresh.grad)


# ------------------------------------------------------------------ errors
def test_kernel_larger_than_input_is_a_clear_error():
    with pytest.raises(ValueError, match="kernel_size=5 does not fit the 4x4 input"):
        Conv(2, 5, 1, "valid").build((1, 4, 4), np.float64)
    with pytest.raises(ValueError, match="kernel_size=7 does not fit"):
        Conv(2, 7, 1, 1, ndim=1).build((1, 4), np.float64)
    # padding makes room: 4 + 2 >= 5
    assert Conv(2, 5, 1, 1).build((1, 4, 4), np.float64) == (2, 2, 2)


def test_wrong_sample_rank_and_pool_errors():
    with pytest.raises(ValueError, match="Conv2D expects 3-D samples"):
        Conv(2, 3).build((8, 8), np.float64)
    with pytest.raises(ValueError, match="Conv1D expects 2-D samples"):
        Conv(2, 3, ndim=1).build((1, 8, 8), np.float64)
    with pytest.raises(ValueError, match="pool size 3 is larger"):
        Pool("max", 3).build((2, 2, 5), np.float64)
    with pytest.raises(ValueError, match="pool must be 'max' or 'avg'"):
        Pool("min", 2)


# ------------------------------------------------------------------ PyTorch's conventions
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("ndim", [1, 2])
@pytest.mark.parametrize(
    "k,stride,padding", [(2, 1, "same"), (3, 1, "same"), (4, 1, "same"), (3, 2, 1), (2, 2, "valid")]
)
def test_conv_and_pool_match_pytorch(ndim, k, stride, padding):
    """Same weight layout (F, C, k[, k]) and padding convention as PyTorch: 'same' puts
    the extra zero of an even kernel after the input."""
    torch = pytest.importorskip("torch")
    F_t = torch.nn.functional
    rng = np.random.default_rng(1)
    spatial = (9,) if ndim == 1 else (7, 8)
    X = rng.normal(size=(3, 2) + spatial)
    net = Network(
        [
            Conv(3, k, stride, padding, "identity", ndim=ndim),
            Pool("max", 2, ndim),
            Flatten(),
            Dense(2),
        ],
        "squared_error",
    ).build((2,) + spatial, np.float64)
    net.init_params(np.random.RandomState(0))
    net.params[0]["b"][:] = rng.normal(size=3)
    conv = F_t.conv1d if ndim == 1 else F_t.conv2d
    pool = F_t.max_pool1d if ndim == 1 else F_t.max_pool2d
    expected = conv(
        torch.from_numpy(X),
        torch.from_numpy(net.params[0]["W"].copy()),
        torch.from_numpy(net.params[0]["b"].copy()),
        stride=stride,
        padding=padding,
    ).numpy()
    assert_allclose(
        net.predict(X, stop=1, output_activation=False), expected, rtol=1e-12, atol=1e-12
    )
    pooled = pool(torch.from_numpy(expected), 2).numpy()
    assert_allclose(net.predict(X, stop=2, output_activation=False), pooled, rtol=1e-12, atol=1e-12)
    avg = (F_t.avg_pool1d if ndim == 1 else F_t.avg_pool2d)(torch.from_numpy(expected), 2)
    layer = Pool("avg", 2, ndim)
    layer.build(expected.shape[1:], np.float64)
    assert_allclose(layer.forward(expected, {}, {}, False, None), avg.numpy(), rtol=1e-12)


def test_workspace_grows_with_the_batch_and_is_then_reused():
    """A larger batch after a smaller one (warm_start, partial_fit) grows the workspace
    once; later small batches reuse it. The layer keeps no im2col store (the backward
    pass recomputes im2col), so the workspace holds no per-sample matrices."""

    C, L = 4, 1000
    net = Network([Conv(2, 3, ndim=1), Flatten(), Dense(1)], "squared_error")
    net.build((C, L), np.float64).init_params(np.random.RandomState(0))
    rng = np.random.RandomState(1)
    for n in (100, 700, 100, 100):
        X = rng.randn(n, C, L)
        net.loss_and_grad(X, rng.randn(n, 1), None, 0.0)
        ws = net._ctx[0]["ws"]
        assert ws.kept.shape[0] == 0
        assert ws.dW_chunks.shape[0] * ws.chunk >= n
    assert net._ctx[0]["ws"] is ws  # no reallocation per batch once grown


@pytest.mark.parametrize("ndim, shape", [(2, (2, 8, 8)), (1, (2, 16))])
def test_kept_im2col_store_changes_nothing(monkeypatch, ndim, shape):
    """Small convolutions keep the forward pass's im2col matrices for the backward pass
    (``KEEP_COLS_BYTES``); the loss and gradient are the same bits as recomputing them."""
    from sknet._layers import Dense, Flatten
    from sknet._layers import conv as conv_layers
    from sknet._network import Network

    rng = np.random.default_rng(0)
    X = rng.random((10,) + shape)
    Y = np.eye(3)[rng.integers(0, 3, 10)]
    results = []
    for limit in (conv_layers.KEEP_COLS_BYTES, 0):
        monkeypatch.setattr(conv_layers, "KEEP_COLS_BYTES", limit)
        layers = [Conv(3, 3, 1, "same", "tanh", ndim), Conv(2, 3, 1, "valid", "relu", ndim)]
        net = Network(layers + [Flatten(), Dense(3)], "log_loss").build(shape, np.float64)
        net.init_params(np.random.RandomState(0))
        loss = net.loss_and_grad(X, Y, None, 0.0)
        kept = [ctx["ws"].kept.shape[0] for ctx in net._ctx[:2]]
        assert all(kept) if limit else not any(kept)
        results.append((loss, net.grad.copy()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
