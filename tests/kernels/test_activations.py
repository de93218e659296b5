"""Activation kernels: forward against NumPy, backward against finite differences."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sknet.kernels.activations import (
    ACTIVATIONS,
    activation_backward,
    activation_forward,
    exp_forward,
    softmax_forward,
)
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_dense as ref

NAMES = ["identity", "logistic", "tanh", "relu"]
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 2e-6}


def _away_from_kink(z, name, margin=1e-3):
    """Move relu inputs away from 0, where the derivative is undefined."""
    if name == "relu":
        z = np.where(np.abs(z) < margin, z + 4 * margin, z)
    return z


def test_registry_codes_are_distinct():
    assert sorted(ACTIVATIONS) == sorted(NAMES)
    assert len(set(ACTIVATIONS.values())) == len(NAMES)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_reference(name, dtype, rng):
    # a 3-D array through its flat view: the kernel is rank-agnostic
    z = rng.normal(scale=3.0, size=(4, 5, 6)).astype(dtype)
    expected = ref.activation(name, z)
    out = z.copy()
    activation_forward(out.reshape(-1), ACTIVATIONS[name])
    assert out.dtype == dtype
    assert_allclose(out, expected, rtol=RTOL[dtype], atol=1e-7 if dtype == np.float32 else 0)


@pytest.mark.parametrize("name", ["logistic", "tanh"])
def test_forward_saturates_without_nan(name):
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    activation_forward(z, ACTIVATIONS[name])
    assert np.isfinite(z).all()
    lo = 0.0 if name == "logistic" else -1.0
    assert_allclose(z[[0, 2, 4]], [lo, (lo + 1) / 2, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_reference(name, dtype, rng):
    z = _away_from_kink(rng.normal(scale=2.0, size=40), name).astype(dtype)
    a = z.copy()
    activation_forward(a, ACTIVATIONS[name])
    g = rng.normal(size=40).astype(dtype)
    delta = g.copy()
    activation_backward(a, delta, ACTIVATIONS[name])
    assert delta.dtype == dtype
    expected = g * ref.activation_derivative(name, z.astype(np.float64))
    assert_allclose(delta, expected, rtol=1e-10 if dtype == np.float64 else 1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_backward_gradcheck(name, rng):
    """d/dz sum(g * f(z)) = g * f'(f(z)) (the derivative is taken from the output)."""
    z = _away_from_kink(rng.normal(scale=1.5, size=30), name)
    g = rng.normal(size=30)

    def f():
        a = z.copy()
        activation_forward(a, ACTIVATIONS[name])
        return float(g @ a)

    a = z.copy()
    activation_forward(a, ACTIVATIONS[name])
    delta = g.copy()
    activation_backward(a, delta, ACTIVATIONS[name])
    assert_grad_close(f, z, delta)


def test_relu_backward_zeroes_inactive_units():
    a = np.array([0.0, 0.0, 2.0, 0.5])
    delta = np.array([1.0, -3.0, 4.0, 5.0])
    activation_backward(a, delta, ACTIVATIONS["relu"])
    assert_array_equal(delta, [0.0, 0.0, 4.0, 5.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_matches_reference(dtype, rng):
    z = rng.normal(scale=4.0, size=(7, 5)).astype(dtype)
    out = z.copy()
    softmax_forward(out)
    assert out.dtype == dtype
    assert_allclose(out, ref.softmax(z), rtol=RTOL[dtype] * 10, atol=1e-7)
    assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_softmax_is_shift_invariant_and_stable():
    z = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1001.0, -999.0], [0.0, 1.0, -1.0]])
    out = z.copy()
    softmax_forward(out)
    assert np.isfinite(out).all()
    assert_allclose(out[0], out[2], rtol=1e-14)
    # row 1 is row 2 shifted by -1000 with its last two entries swapped
    assert_allclose(out[1], out[2][[0, 2, 1]], rtol=1e-14)


def test_softmax_single_column_is_one():
    z = np.array([[3.0], [-2.0]])
    softmax_forward(z)
    assert_array_equal(z, [[1.0], [1.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_matches_numpy(dtype, rng):
    z = rng.normal(size=25).astype(dtype)
    out = z.copy()
    exp_forward(out)
    assert out.dtype == dtype
    assert_allclose(out, np.exp(z.astype(np.float64)), rtol=RTOL[dtype] * 10)
