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
dbeta and the running statistics are rounded to X's dtype). A channel's sums run over the
samples s in turn, adding the float64 sum of the row X[s, c, :]; that row sum is a
``jit_reduce`` loop, which the compiler may reassociate to vectorise, in one order fixed
when the kernel is compiled (for L = 1 it is the value itself). For L > 1 each channel is
one ``prange`` iteration; for dense features (L = 1) a ``prange`` iteration is a block of
:data:`DENSE_BLOCK` channels, looping over samples with the channels innermost (contiguous,
vectorised), which adds in the same per-channel order. Every iteration writes only its own
channels, so results are bit-identical for any thread count.

Preconditions (checked by the layer, not here): X, Y, dY, dX are C-contiguous (n, C, L)
arrays of one dtype, float32 or float64; gamma, beta, dgamma, dbeta and the running
statistics are (C,) arrays of the same dtype; the cache is :func:`batchnorm_cache`'s;
m = n*L >= 2 in training (PyTorch refuses m = 1 too); eps > 0.
"""

import math
from typing import NamedTuple

import numpy as np
from numba import prange

from sknet._config import jit, jit_parallel, jit_reduce

from .blocks import row_sum

__all__ = [
    "DENSE_BLOCK",
    "BatchNormCache",
    "RunningStats",
    "batchnorm_cache",
    "batchnorm_forward",
    "batchnorm_forward_inference",
    "batchnorm_backward",
]


#: Channels per ``prange`` iteration for dense features (L = 1): 16 float32 values fill a
#: 64-byte cache line. Results do not depend on it.
DENSE_BLOCK = 16


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
    work : (2, C) float64; scratch of the backward pass (per-channel sums, dense path).
    """

    mean: np.ndarray
    inv_std: np.ndarray
    work: np.ndarray


def batchnorm_cache(n_channels):
    """Allocate a :class:`BatchNormCache` for ``n_channels`` channels (float64)."""
    return BatchNormCache(
        mean=np.empty(n_channels, dtype=np.float64),
        inv_std=np.empty(n_channels, dtype=np.float64),
        work=np.empty((2, n_channels), dtype=np.float64),
    )


# --------------------------------------------------------------------------------------
# row sums in float64 (jit_reduce: the compiler may reassociate them to vectorise, in one
# fixed order per compiled kernel)
# --------------------------------------------------------------------------------------


@jit_reduce
def _row_sq_dev(x, mean):
    """sum_t (x[t] - mean)^2 in float64. x (L,), mean float64."""
    acc = 0.0
    for t in range(x.shape[0]):
        d = x[t] - mean
        acc += d * d
    return acc


@jit_reduce
def _row_grad_sums(dy, x, mean):
    """(sum_t dy[t], sum_t dy[t] * (x[t] - mean)) in float64. dy, x (L,), mean float64."""
    a = 0.0
    b = 0.0
    for t in range(x.shape[0]):
        g = np.float64(dy[t])
        a += g
        b += g * (x[t] - mean)
    return a, b


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
# kernels: one prange over tasks, a task being a channel (L > 1) or a block of DENSE_BLOCK
# channels (L = 1); one parallel loop per kernel keeps the compile time down
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
    C, L = X.shape[1], X.shape[2]
    n_tasks = (C + DENSE_BLOCK - 1) // DENSE_BLOCK if L == 1 else C
    for k in prange(n_tasks):
        if L == 1:
            c0 = k * DENSE_BLOCK
            c1 = min(C, c0 + DENSE_BLOCK)
            _forward_dense(X, c0, c1, gamma, beta, running, momentum, eps, Y, cache)
        else:
            _forward_channel(X, k, gamma, beta, running, momentum, eps, Y, cache)


@jit
def _forward_channel(X, c, gamma, beta, running, momentum, eps, Y, cache):
    """Channel c of :func:`batchnorm_forward`.

    Every prange body here is one call to such a helper, which takes the NamedTuples whole:
    numba drops writes made through a NamedTuple attribute inside a parallel loop (here even
    with the field read into a local before the loop; numba issues #5872, #7135, #10338),
    but not inside a function called from one.
    """
    n, _, L = X.shape
    m = n * L
    acc = 0.0
    for s in range(n):
        acc += row_sum(X[s, c])
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


@jit
def _forward_dense(X, c0, c1, gamma, beta, running, momentum, eps, Y, cache):
    """Channels c0 <= c < c1 of :func:`batchnorm_forward` for L = 1, channels innermost.

    The same arithmetic as :func:`_forward_channel`, with cache.mean and cache.inv_std as
    the per-channel accumulators (the sum, then the sum of squared deviations). The loops
    index views of the block from 0: an index that numba cannot prove non-negative
    (``range(c0, c1)``) gets a wraparound check that stops vectorisation (13x slower).
    """
    n, C, _ = X.shape
    X2 = X.reshape(n, C)
    Y2 = Y.reshape(n, C)
    mean = cache.mean[c0:c1]
    inv_std = cache.inv_std[c0:c1]
    g = gamma[c0:c1]
    b = beta[c0:c1]
    run_mean = running.mean[c0:c1]
    run_var = running.var[c0:c1]
    B = c1 - c0
    mean[:] = 0.0
    inv_std[:] = 0.0
    for s in range(n):
        xs = X2[s, c0:c1]
        for j in range(B):
            mean[j] += xs[j]
    for j in range(B):
        mean[j] = mean[j] / n
    for s in range(n):
        xs = X2[s, c0:c1]
        for j in range(B):
            d = xs[j] - mean[j]
            inv_std[j] += d * d
    for j in range(B):
        sq = inv_std[j]
        inv_std[j] = 1.0 / math.sqrt(sq / n + eps)
        run_mean[j] = (1.0 - momentum) * run_mean[j] + momentum * mean[j]
        run_var[j] = (1.0 - momentum) * run_var[j] + momentum * (sq / (n - 1))
    for s in range(n):
        xs = X2[s, c0:c1]
        ys = Y2[s, c0:c1]
        for j in range(B):
            ys[j] = np.float64(g[j]) * ((xs[j] - mean[j]) * inv_std[j]) + np.float64(b[j])


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
    C, L = X.shape[1], X.shape[2]
    n_tasks = (C + DENSE_BLOCK - 1) // DENSE_BLOCK if L == 1 else C
    for k in prange(n_tasks):
        if L == 1:
            c0 = k * DENSE_BLOCK
            c1 = min(C, c0 + DENSE_BLOCK)
            _inference_dense(X, c0, c1, gamma, beta, running, eps, Y)
        else:
            _inference_channel(X, k, gamma, beta, running, eps, Y)


@jit
def _inference_dense(X, c0, c1, gamma, beta, running, eps, Y):
    """Channels c0 <= c < c1 of :func:`batchnorm_forward_inference` for L = 1, channels
    innermost (block views indexed from 0, as in :func:`_forward_dense`)."""
    n, C, _ = X.shape
    X2 = X.reshape(n, C)
    Y2 = Y.reshape(n, C)
    g = gamma[c0:c1]
    b = beta[c0:c1]
    run_mean = running.mean[c0:c1]
    run_var = running.var[c0:c1]
    for s in range(n):
        xs = X2[s, c0:c1]
        ys = Y2[s, c0:c1]
        for j in range(c1 - c0):
            inv_std = 1.0 / math.sqrt(np.float64(run_var[j]) + eps)
            mean = np.float64(run_mean[j])
            ys[j] = np.float64(g[j]) * ((xs[j] - mean) * inv_std) + np.float64(b[j])


@jit
def _inference_channel(X, c, gamma, beta, running, eps, Y):
    """Channel c of :func:`batchnorm_forward_inference`."""
    mean = np.float64(running.mean[c])
    inv_std = 1.0 / math.sqrt(np.float64(running.var[c]) + eps)
    _affine(X, c, mean, inv_std, np.float64(gamma[c]), np.float64(beta[c]), Y)


@jit_parallel
def batchnorm_backward(X, dY, gamma, cache, dgamma, dbeta, dX, need_dx):
    """Gradients of :func:`batchnorm_forward`: overwrite dgamma, dbeta and, if asked, dX.

    X : (n, C, L) the forward input; dY : (n, C, L) dL/dY, same dtype.
    gamma : (C,).
    cache : :class:`BatchNormCache` written by the forward call on this X.
    dgamma, dbeta : (C,) same dtype as X, overwritten:
        dgamma = sum_{s,l} dY * x_hat, dbeta = sum_{s,l} dY.
    dX : (n, C, L), overwritten when ``need_dx`` (may be dY itself):
        dX = gamma * inv_std * (dY - dbeta / m - x_hat * dgamma / m), m = n*L,
        which is (gamma * inv_std / m) * (m*dY - sum(dY) - x_hat * sum(dY * x_hat)).
    need_dx : bool; False skips dX (a first layer).
    """
    C, L = X.shape[1], X.shape[2]
    n_tasks = (C + DENSE_BLOCK - 1) // DENSE_BLOCK if L == 1 else C
    for k in prange(n_tasks):
        if L == 1:
            c0 = k * DENSE_BLOCK
            c1 = min(C, c0 + DENSE_BLOCK)
            _backward_dense(X, dY, c0, c1, gamma, cache, dgamma, dbeta, dX, need_dx)
        else:
            _backward_channel(X, dY, k, gamma, cache, dgamma, dbeta, dX, need_dx)


@jit
def _backward_channel(X, dY, c, gamma, cache, dgamma, dbeta, dX, need_dx):
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
    if need_dx:
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


@jit
def _backward_dense(X, dY, c0, c1, gamma, cache, dgamma, dbeta, dX, need_dx):
    """Channels c0 <= c < c1 of :func:`batchnorm_backward` for L = 1, channels innermost;
    the same arithmetic as :func:`_backward_channel`, accumulating in cache.work (block
    views indexed from 0, as in :func:`_forward_dense`)."""
    n, C, _ = X.shape
    X2 = X.reshape(n, C)
    dY2 = dY.reshape(n, C)
    mean = cache.mean[c0:c1]
    inv_std = cache.inv_std[c0:c1]
    sum_dy = cache.work[0, c0:c1]
    sum_dy_dev = cache.work[1, c0:c1]  # sum dY * (X - mean), then sum dY * x_hat
    g = gamma[c0:c1]
    dg = dgamma[c0:c1]
    db = dbeta[c0:c1]
    B = c1 - c0
    sum_dy[:] = 0.0
    sum_dy_dev[:] = 0.0
    for s in range(n):
        xs = X2[s, c0:c1]
        gs = dY2[s, c0:c1]
        for j in range(B):
            gj = np.float64(gs[j])
            sum_dy[j] += gj
            sum_dy_dev[j] += gj * (xs[j] - mean[j])
    for j in range(B):
        sum_dy_dev[j] = sum_dy_dev[j] * inv_std[j]
        dg[j] = sum_dy_dev[j]
        db[j] = sum_dy[j]
    if need_dx:
        dX2 = dX.reshape(n, C)
        for s in range(n):
            xs = X2[s, c0:c1]
            gs = dY2[s, c0:c1]
            ds = dX2[s, c0:c1]
            for j in range(B):
                x_hat = (xs[j] - mean[j]) * inv_std[j]
                k = np.float64(g[j]) * inv_std[j]
                ds[j] = k * (gs[j] - sum_dy[j] / n - x_hat * (sum_dy_dev[j] / n))
