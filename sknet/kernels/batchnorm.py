"""Batch normalization over channels, forward (training and inference) and backward.

One layout covers every case: X is viewed as (n, C, L) and each channel c is normalized
over its m = n*L entries X[:, c, :]::

    dense features   (n, C)          ->  X.reshape(n, C, 1)
    1-D, over time   (n, C, L)       ->  X
    2-D, over space  (n, C, H, W)    ->  X.reshape(n, C, H*W)   (a view when C-contiguous)

Training (:func:`batchnorm_forward`), with batch statistics; the variance is the biased one::

    mean[c]    = sum_{s,l} X[s, c, l] / m
    var[c]     = sum_{s,l} (X[s, c, l] - mean[c])^2 / m
    inv_std[c] = 1 / sqrt(var[c] + eps)
    x_hat      = (X[s, c, l] - mean[c]) * inv_std[c]
    Y[s, c, l] = gamma[c] * x_hat + beta[c]

Running statistics follow PyTorch's ``BatchNorm1d`` / ``BatchNorm2d`` convention (momentum
is the weight of the *new* value, default 0.1; eps default 1e-5), the running variance
being updated with the *unbiased* batch variance::

    running.mean[c] = (1 - momentum) * running.mean[c] + momentum * mean[c]
    running.var[c]  = (1 - momentum) * running.var[c]
                      + momentum * sum_{s,l} (X[s, c, l] - mean[c])^2 / (m - 1)

``momentum=0`` leaves the running statistics unchanged. PyTorch's ``momentum=None``
(a cumulative average) is not supported.

Inference (:func:`batchnorm_forward_inference`) uses the running statistics::

    Y[s, c, l] = gamma[c] * (X[s, c, l] - running.mean[c]) / sqrt(running.var[c] + eps)
                 + beta[c]

Backward of the training forward (:func:`batchnorm_backward`), for dY = dL/dY::

    dgamma[c]  = sum_{s,l} dY[s, c, l] * x_hat[s, c, l]
    dbeta[c]   = sum_{s,l} dY[s, c, l]
    dX[s,c,l]  = (gamma[c] * inv_std[c] / m)
                 * (m * dY[s,c,l] - dbeta[c] - x_hat[s,c,l] * dgamma[c])

x_hat is recomputed from X and the cached mean and inv_std (:class:`BatchNormCache`).

Precision and determinism: every statistic and intermediate is float64, whatever the
dtype of X (float32 inputs are converted element by element, and only Y, dX, dgamma,
dbeta and the running statistics are rounded to X's dtype). A channel's sums run in a
fixed order: over samples s in turn, adding the sum of the row X[s, c, :] taken as four
interleaved partial sums (l mod 4) plus the tail. Each channel is one ``prange``
iteration that writes only its own outputs, so results are bit-identical for any thread
count.

Preconditions (checked by the layer, not here): X, Y, dY, dX are C-contiguous (n, C, L)
arrays of one dtype, float32 or float64; gamma, beta, dgamma, dbeta and the running
statistics are (C,) arrays of the same dtype; the cache arrays are (C,) float64;
m = n*L >= 2 in training (PyTorch refuses m = 1 too); eps > 0.
"""

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from sknet._config import jit, jit_parallel

__all__ = [
    "BatchNormCache",
    "RunningStats",
    "batchnorm_cache",
    "batchnorm_forward",
    "batchnorm_forward_inference",
    "batchnorm_backward",
]


class RunningStats(NamedTuple):
    """Running statistics of a batch normalization: non-trainable, fitted state.

    mean : (C,) same dtype as X; PyTorch's ``running_mean`` (initially 0).
    var : (C,) same dtype as X; PyTorch's ``running_var`` (initially 1).
    """

    mean: np.ndarray
    var: np.ndarray


class BatchNormCache(NamedTuple):
    """What :func:`batchnorm_forward` stores for :func:`batchnorm_backward`.

    mean : (C,) float64; the batch mean of each channel.
    inv_std : (C,) float64; 1 / sqrt(biased batch variance + eps).
    """

    mean: np.ndarray
    inv_std: np.ndarray


def batchnorm_cache(n_channels):
    """Allocate a :class:`BatchNormCache` for ``n_channels`` channels (float64)."""
    return BatchNormCache(
        mean=np.empty(n_channels, dtype=np.float64),
        inv_std=np.empty(n_channels, dtype=np.float64),
    )


# --------------------------------------------------------------------------------------
# row sums in float64, in a fixed order: 4 interleaved partial sums, the tail into the first
# --------------------------------------------------------------------------------------


@jit
def _row_sum(x):
    """sum_l x[t] in float64. x (L,)."""
    L = x.shape[0]
    L4 = L - L % 4
    s0 = s1 = s2 = s3 = 0.0
    for t in range(0, L4, 4):
        s0 += x[t]
        s1 += x[t + 1]
        s2 += x[t + 2]
        s3 += x[t + 3]
    for t in range(L4, L):
        s0 += x[t]
    return (s0 + s1) + (s2 + s3)


@jit
def _row_sq_dev(x, mean):
    """sum_l (x[t] - mean)^2 in float64. x (L,), mean float64."""
    L = x.shape[0]
    L4 = L - L % 4
    s0 = s1 = s2 = s3 = 0.0
    for t in range(0, L4, 4):
        d0 = x[t] - mean
        d1 = x[t + 1] - mean
        d2 = x[t + 2] - mean
        d3 = x[t + 3] - mean
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
    for t in range(L4, L):
        d0 = x[t] - mean
        s0 += d0 * d0
    return (s0 + s1) + (s2 + s3)


@jit
def _row_grad_sums(dy, x, mean):
    """(sum_l dy[t], sum_l dy[t] * (x[t] - mean)) in float64. dy, x (L,), mean float64."""
    L = x.shape[0]
    L4 = L - L % 4
    a0 = a1 = a2 = a3 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    for t in range(0, L4, 4):
        g0 = np.float64(dy[t])
        g1 = np.float64(dy[t + 1])
        g2 = np.float64(dy[t + 2])
        g3 = np.float64(dy[t + 3])
        a0 += g0
        a1 += g1
        a2 += g2
        a3 += g3
        b0 += g0 * (x[t] - mean)
        b1 += g1 * (x[t + 1] - mean)
        b2 += g2 * (x[t + 2] - mean)
        b3 += g3 * (x[t + 3] - mean)
    for t in range(L4, L):
        g0 = np.float64(dy[t])
        a0 += g0
        b0 += g0 * (x[t] - mean)
    return (a0 + a1) + (a2 + a3), (b0 + b1) + (b2 + b3)


@jit
def _affine(X, c, mean, inv_std, g, b, Y):
    """Y[s, c, l] = g * ((X[s, c, l] - mean) * inv_std) + b for every s, l (float64 math)."""
    n, _, L = X.shape
    for s in range(n):
        xr = X[s, c]
        yr = Y[s, c]
        for t in range(L):
            yr[t] = g * ((xr[t] - mean) * inv_std) + b


# --------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------


@jit_parallel
def batchnorm_forward(X, gamma, beta, running, momentum, eps, Y, cache):
    """Training forward with batch statistics; update ``running``, write ``Y`` and ``cache``.

    Parameters
    ----------
    X : (n, C, L) float32 or float64, C-contiguous; n*L >= 2.
    gamma, beta : (C,) same dtype; scale and shift.
    running : :class:`RunningStats` of (C,) arrays, same dtype; updated in place with
        ``running = (1 - momentum) * running + momentum * batch statistic`` (the unbiased
        variance for ``running.var``).
    momentum : float in [0, 1]; PyTorch's (0.1 by default).
    eps : float > 0; added to the variance (1e-5 by default).
    Y : (n, C, L) same dtype, overwritten: Y = gamma * (X - mean) / sqrt(var + eps) + beta.
        Y may be X itself (each channel is read in full before it is written), but the
        backward pass needs the original X.
    cache : :class:`BatchNormCache`, overwritten with the batch mean and inv_std (float64).
    """
    for c in prange(X.shape[1]):
        _forward_channel(X, c, gamma, beta, running, momentum, eps, Y, cache)


@jit
def _forward_channel(X, c, gamma, beta, running, momentum, eps, Y, cache):
    """Channel c of :func:`batchnorm_forward`.

    Every prange body here is one call to such a helper, which takes the NamedTuples whole:
    numba drops writes made through a NamedTuple attribute inside a parallel loop, even
    with the field read into a local before the loop (numba issues #5872, #7135, #10338),
    but not inside a function called from one.
    """
    n, _, L = X.shape
    m = n * L
    acc = 0.0
    for s in range(n):
        acc += _row_sum(X[s, c])
    mean = acc / m
    sq = 0.0
    for s in range(n):
        sq += _row_sq_dev(X[s, c], mean)
    var = sq / m
    inv_std = 1.0 / math.sqrt(var + eps)
    cache.mean[c] = mean
    cache.inv_std[c] = inv_std
    _affine(X, c, mean, inv_std, np.float64(gamma[c]), np.float64(beta[c]), Y)
    running.mean[c] = (1.0 - momentum) * running.mean[c] + momentum * mean
    running.var[c] = (1.0 - momentum) * running.var[c] + momentum * (sq / (m - 1))


@jit_parallel
def batchnorm_forward_inference(X, gamma, beta, running, eps, Y):
    """Inference forward with the running statistics; overwrite ``Y``.

    X : (n, C, L) float32 or float64, C-contiguous.
    gamma, beta : (C,) same dtype.
    running : :class:`RunningStats` of (C,) arrays, same dtype; read only.
    eps : float > 0.
    Y : (n, C, L) same dtype (may be X), overwritten:
        Y = gamma * (X - running.mean) / sqrt(running.var + eps) + beta.
    """
    for c in prange(X.shape[1]):
        _inference_channel(X, c, gamma, beta, running, eps, Y)


@jit
def _inference_channel(X, c, gamma, beta, running, eps, Y):
    """Channel c of :func:`batchnorm_forward_inference`."""
    mean = np.float64(running.mean[c])
    inv_std = 1.0 / math.sqrt(np.float64(running.var[c]) + eps)
    _affine(X, c, mean, inv_std, np.float64(gamma[c]), np.float64(beta[c]), Y)


@jit_parallel
def batchnorm_backward(X, dY, gamma, cache, dgamma, dbeta, dX, compute_dX):
    """Gradients of :func:`batchnorm_forward`: overwrite dgamma, dbeta and, if asked, dX.

    X : (n, C, L) the forward input; dY : (n, C, L) dL/dY, same dtype.
    gamma : (C,).
    cache : :class:`BatchNormCache` written by the forward call on this X.
    dgamma, dbeta : (C,) same dtype as X, overwritten:
        dgamma = sum_{s,l} dY * x_hat, dbeta = sum_{s,l} dY.
    dX : (n, C, L), overwritten when ``compute_dX`` (may be dY itself):
        dX = gamma * inv_std * (dY - dbeta / m - x_hat * dgamma / m), m = n*L,
        which is (gamma * inv_std / m) * (m*dY - sum(dY) - x_hat * sum(dY * x_hat)).
    compute_dX : bool; False skips dX (a first layer).
    """
    for c in prange(X.shape[1]):
        _backward_channel(X, dY, c, gamma, cache, dgamma, dbeta, dX, compute_dX)


@jit
def _backward_channel(X, dY, c, gamma, cache, dgamma, dbeta, dX, compute_dX):
    """Channel c of :func:`batchnorm_backward`."""
    n, _, L = X.shape
    m = n * L
    mean = cache.mean[c]
    inv_std = cache.inv_std[c]
    sum_dy = 0.0
    sum_dy_dev = 0.0  # sum dY * (X - mean)
    for s in range(n):
        a, b = _row_grad_sums(dY[s, c], X[s, c], mean)
        sum_dy += a
        sum_dy_dev += b
    sum_dy_xhat = sum_dy_dev * inv_std
    dgamma[c] = sum_dy_xhat
    dbeta[c] = sum_dy
    if compute_dX:
        k = np.float64(gamma[c]) * inv_std
        mean_dy = sum_dy / m
        mean_dy_xhat = sum_dy_xhat / m
        for s in range(n):
            xr = X[s, c]
            gr = dY[s, c]
            dr = dX[s, c]
            for t in range(L):
                x_hat = (xr[t] - mean) * inv_std
                dr[t] = k * (gr[t] - mean_dy - x_hat * mean_dy_xhat)
