"""One shared helper: analytic gradients against central finite differences."""

import numpy as np


def numerical_grad(f, x, eps=1e-6):
    """Central finite differences of the scalar ``f()`` with respect to ``x``.

    ``x`` is perturbed in place (and restored), so ``f`` must read it.
    """
    g = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def relative_error(analytic, numeric):
    """Norm-wise relative error ``|a - n| / max(|a|, |n|)`` (0 when both vanish)."""
    a = np.asarray(analytic, dtype=np.float64).ravel()
    n = np.asarray(numeric, dtype=np.float64).ravel()
    denom = max(np.linalg.norm(a), np.linalg.norm(n))
    if denom == 0.0:
        return 0.0
    return np.linalg.norm(a - n) / denom


def assert_grad_close(f, x, analytic, rtol=1e-6, eps=1e-6):
    """Assert that ``analytic`` is the gradient of ``f()`` at ``x`` (float64 only)."""
    assert x.dtype == np.float64, "finite differences need float64"
    numeric = numerical_grad(f, x, eps=eps)
    err = relative_error(analytic, numeric)
    assert err < rtol, f"relative gradient error {err:.3e} >= {rtol:.0e}"
    # an all-zero gradient would pass trivially against an all-zero numeric one;
    # callers build losses where that cannot happen, and we check it here.
    assert np.linalg.norm(numeric) > 0, "degenerate check: numeric gradient is zero"
