"""Loss kernels: values against NumPy references and scikit-learn's loss functions,
deltas (dL/dz at the raw output) against finite differences."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.neural_network._base import LOSS_FUNCTIONS as SK_LOSSES

from sknet.kernels import losses as L
from tests.gradcheck import assert_grad_close
from tests.kernels import reference_dense as ref

DTYPES = [np.float64, np.float32]

# (loss, number of outputs): every loss, single and several outputs
CASES = [
    ("log_loss", 3),
    ("log_loss", 2),
    ("binary_log_loss", 1),
    ("binary_log_loss", 3),  # multilabel
    ("squared_error", 1),
    ("squared_error", 3),
    ("poisson", 1),
    ("poisson", 2),
]
KERNELS = {
    "log_loss": L.log_loss_softmax,
    "binary_log_loss": L.log_loss_logistic,
    "squared_error": L.squared_error_loss,
    "poisson": L.poisson_loss,
}


def make_problem(loss, k, n=9, dtype=np.float64, seed=0):
    """Raw outputs z, targets y, and positive sample weights for ``loss``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, k))
    if loss == "log_loss":
        y = np.eye(k)[rng.integers(0, k, n)]
    elif loss == "binary_log_loss":
        y = (rng.random((n, k)) < 0.5).astype(float)
    elif loss == "poisson":
        z *= 0.5
        y = rng.poisson(2.0, size=(n, k)).astype(float)
        y[0, 0] = 0.0  # y log y = 0 at y = 0
    else:
        y = rng.normal(size=(n, k))
    sw = rng.uniform(0.2, 3.0, size=n)
    return z.astype(dtype), y.astype(dtype), sw.astype(dtype)


def run(loss, z, y, sw, c=None):
    """Call the dispatcher; returns (weighted loss sum, delta)."""
    c = 1.0 / sw.sum() if c is None else c
    delta = np.full_like(z, np.nan)
    total = L.loss_and_delta(L.LOSSES[loss], z, y, sw, z.dtype.type(c), delta)
    return total, delta


def test_registries_agree():
    assert set(L.LOSSES) == set(L.OUTPUT_ACTIVATIONS) == set(KERNELS)
    assert len(set(L.LOSSES.values())) == len(L.LOSSES)
    assert L.OUTPUT_ACTIVATIONS == {
        "log_loss": "softmax",
        "binary_log_loss": "logistic",
        "squared_error": "identity",
        "poisson": "exp",
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss,k", CASES)
def test_value_matches_reference(loss, k, dtype):
    z, y, sw = make_problem(loss, k, dtype=dtype)
    total, delta = run(loss, z, y, sw)
    expected = float(sw.astype(np.float64) @ ref.LOSSES[loss](z, y))
    assert_allclose(total, expected, rtol=1e-12 if dtype == np.float64 else 1e-5)
    assert delta.dtype == dtype
    assert np.isfinite(delta).all()


@pytest.mark.parametrize("loss,k", CASES)
def test_value_matches_scikit_learn(loss, k):
    """sum_i sw_i l_i / sum_i sw_i is scikit-learn's weighted loss, for every loss."""
    z, y, sw = make_problem(loss, k)
    total, _ = run(loss, z, y, sw)
    probs = ref.OUTPUT_ACTIVATIONS[loss](z)
    expected = SK_LOSSES[loss](y, probs, sample_weight=sw)
    assert_allclose(total / sw.sum(), expected, rtol=1e-12)
    if loss == "binary_log_loss" and k == 1:
        # scikit-learn's 'log_loss' on one logistic column is the binary loss
        assert_allclose(total / sw.sum(), SK_LOSSES["log_loss"](y, probs, sw), rtol=1e-12)


@pytest.mark.parametrize("loss,k", CASES)
def test_dispatch_matches_direct_kernel(loss, k):
    z, y, sw = make_problem(loss, k)
    total, delta = run(loss, z, y, sw, c=0.25)
    delta2 = np.empty_like(z)
    total2 = KERNELS[loss](z, y, sw, 0.25, delta2)
    assert total == total2
    np.testing.assert_array_equal(delta, delta2)


@pytest.mark.parametrize("loss,k", CASES)
def test_delta_gradcheck(loss, k):
    """delta = d/dz [c * sum_i sw_i l_i(z_i)], with c = 1 / sum(sw) as the network uses."""
    z, y, sw = make_problem(loss, k, n=6, seed=1)
    c = 1.0 / sw.sum()
    _, delta = run(loss, z, y, sw, c)

    def f():
        return c * run(loss, z, y, sw, c)[0]

    assert_grad_close(f, z, delta)


@pytest.mark.parametrize("loss,k", CASES)
def test_delta_is_canonical_link_residual(loss, k):
    """delta = c * sw_i * (act(z) - y), divided by k for the averaged squared error."""
    z, y, sw = make_problem(loss, k)
    _, delta = run(loss, z, y, sw, c=0.5)
    scale = 1.0 / k if loss == "squared_error" else 1.0
    expected = 0.5 * sw[:, None] * (ref.OUTPUT_ACTIVATIONS[loss](z) - y) * scale
    assert_allclose(delta, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss,k", CASES)
def test_zero_weight_samples_do_not_count(loss, k):
    z, y, sw = make_problem(loss, k)
    sw[:3] = 0.0
    total, delta = run(loss, z, y, sw, c=1.0)
    total_rest, _ = run(loss, z[3:], y[3:], sw[3:], c=1.0)
    assert_allclose(total, total_rest, rtol=1e-14)
    assert not delta[:3].any()


def test_log_losses_are_exact_where_probabilities_underflow():
    """log p = z - logsumexp(z): finite and exact far beyond exp's range."""
    z = np.array([[800.0, -800.0]])
    y = np.array([[0.0, 1.0]])
    total, delta = run("log_loss", z, y, np.ones(1))
    assert_allclose(total, 1600.0, rtol=1e-14)
    assert_allclose(delta, [[1.0, -1.0]])

    z = np.array([[-800.0, 800.0]])
    y = np.array([[1.0, 1.0]])
    total, delta = run("binary_log_loss", z, y, np.ones(1))
    assert_allclose(total, 800.0, rtol=1e-14)
    assert_allclose(delta, [[-1.0, 0.0]])


@pytest.mark.parametrize("loss,k", CASES)
def test_float32_close_to_float64(loss, k):
    z, y, sw = make_problem(loss, k)
    t64, d64 = run(loss, z, y, sw)
    t32, d32 = run(loss, z.astype(np.float32), y.astype(np.float32), sw.astype(np.float32))
    assert d32.dtype == np.float32
    assert_allclose(t32, t64, rtol=1e-5)
    assert_allclose(d32, d64, rtol=1e-4, atol=1e-6)
