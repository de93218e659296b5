"""Dropout kernels and layer: forward against NumPy, backward with a fixed mask against
finite differences, inference identity, reproducibility from a seeded Generator."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sknet._layers import Dropout
from sknet.kernels.dropout import dropout_backward, dropout_forward
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_dense as ref

DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.75])
def test_forward_matches_reference(rate, dtype, rng):
    x = rng.normal(size=50).astype(dtype)
    u = rng.random(50).astype(dtype)
    y = np.empty_like(x)
    mask = np.empty_like(x)
    dropout_forward(x, u, dtype(rate), y, mask)
    y_ref, mask_ref = ref.dropout(x, u, rate)
    assert y.dtype == mask.dtype == dtype
    assert_allclose(mask, mask_ref, rtol=1e-7)
    assert_allclose(y, y_ref, rtol=1e-6 if dtype == np.float32 else 1e-15)
    # kept entries scaled by 1 / (1 - rate), dropped ones exactly zero
    assert set(np.unique(mask)) <= {0.0, dtype(1.0 / (1.0 - rate))}


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_matches_reference(dtype, rng):
    mask = np.where(rng.random(30) < 0.4, 0.0, 1 / 0.6).astype(dtype)
    dy = rng.normal(size=30).astype(dtype)
    dx = np.empty_like(dy)
    dropout_backward(dy, mask, dx)
    assert_array_equal(dx, dy * mask)


def test_backward_gradcheck_fixed_mask(rng):
    x = rng.normal(size=25)
    u = rng.random(25)
    g = rng.normal(size=25)
    rate = 0.4

    def f():
        y, mask = np.empty_like(x), np.empty_like(x)
        dropout_forward(x, u, rate, y, mask)
        return float(g @ y)

    y, mask = np.empty_like(x), np.empty_like(x)
    dropout_forward(x, u, rate, y, mask)
    assert 0 < np.count_nonzero(mask) < 25  # some units dropped, some kept
    dx = np.empty_like(x)
    dropout_backward(g, mask, dx)
    assert_grad_close(f, x, dx)


def _built(rate, shape, dtype=np.float64):
    layer = Dropout(rate)
    assert layer.build(shape, dtype) == shape
    return layer


def test_layer_is_identity_at_inference(rng):
    X = rng.normal(size=(8, 5))
    layer = _built(0.5, (5,))
    out = layer.forward(X, {}, {}, False, None)
    assert out is X
    # rate 0 is the identity even in training, and draws nothing
    gen = np.random.default_rng(0)
    state = gen.bit_generator.state
    assert _built(0.0, (5,)).forward(X, {}, {}, True, gen) is X
    assert gen.bit_generator.state == state


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_reproducible_from_seeded_generator(dtype, rng):
    X = rng.normal(size=(6, 2, 3)).astype(dtype)  # any rank
    layer = _built(0.5, (2, 3), dtype)
    outs = [layer.forward(X, {}, {}, True, np.random.default_rng(7)).copy() for _ in range(2)]
    assert outs[0].dtype == dtype and outs[0].shape == X.shape
    assert_array_equal(outs[0], outs[1])
    other = layer.forward(X, {}, {}, True, np.random.default_rng(8))
    assert not np.array_equal(outs[0], other)
    # the mask comes from Generator.random(X.size) in C order
    u = np.random.default_rng(7).random(X.size, dtype=dtype)
    assert_allclose(outs[0], ref.dropout(X.reshape(-1), u, 0.5)[0].reshape(X.shape), rtol=1e-6)


def test_layer_backward_uses_forward_mask_gradcheck(rng):
    X = rng.normal(size=(7, 4))
    G = rng.normal(size=(7, 4))
    layer = _built(0.3, (4,))

    def f():
        return float(np.sum(G * layer.forward(X, {}, {}, True, np.random.default_rng(3))))

    ctx = {}
    layer.forward(X, {}, ctx, True, np.random.default_rng(3))
    dX = layer.backward(G.copy(), {}, {}, ctx, True)
    assert_grad_close(f, X, dX)
    assert layer.backward(G.copy(), {}, {}, ctx, False) is None


def test_layer_backward_identity_when_inactive(rng):
    G = rng.normal(size=(3, 4))
    layer = _built(0.3, (4,))
    ctx = {}
    layer.forward(rng.normal(size=(3, 4)), {}, ctx, False, None)
    assert_array_equal(layer.backward(G.copy(), {}, {}, ctx, True), G)


def test_layer_drop_fraction_and_expectation():
    X = np.ones((400, 50))
    out = _built(0.25, (50,)).forward(X, {}, {}, True, np.random.default_rng(0))
    dropped = np.mean(out == 0)
    assert abs(dropped - 0.25) < 0.01
    assert abs(out.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
