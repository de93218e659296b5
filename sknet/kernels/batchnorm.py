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
when the kernel is compiled (for L = 1 it is the value itself). For L > 1 the kernels run
one channel after the other; for dense features (L = 1) they loop over samples with the
channels innermost (contiguous, vectorised), which adds in the same per-channel order.

The kernels are serial (``jit``): batch normalization is memory-bound and cheap next to
the convolution or product before it (128 channels x 64 samples x 150 steps: ~1 ms
forward, ~2 ms backward on one core), while a ``prange`` kernel costs ~1.5 s more to
compile. One kernel per layout, for L = 1 and for L > 1, chosen in Python, so that a
network compiles only the one its layout needs; it runs every pass (training and inference
forward, backward: a flag), so a fit and its predictions compile one function. Serial
kernels are trivially bit-identical for any thread count.

Preconditions (checked by the layer, not here): X, Y, dY, dX are C-contiguous (n, C, L)
arrays of one dtype, float32 or float64; gamma, beta, dgamma, dbeta and the running
statistics are (C,) arrays of the same dtype; the cache is :func:`batchnorm_cache`'s;
m = n*L >= 2 in training (PyTorch refuses m = 1 too); eps > 0.
"""

import math
from typing import NamedTuple

import numpy as np

from .blocks import row_sum
from .runner import internal, jit_views

#: ``jit_reduce``'s flags, for the row sums called only from the kernels (compiled
#: without entry wrappers)
_REDUCE = {"reassoc", "nsz"}


# pass of the one kernel per layout (``_channels`` for L > 1, ``_dense`` for L = 1)
_INFERENCE = 0
_TRAINING = 1
_BACKWARD = 2  # without dX
_BACKWARD_DX = 3

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


@internal(fastmath=_REDUCE)
def _row_sums(dy, x, mean, grad):
    """Row sums in float64 of dy, x (L,) and the float64 ``mean``: with ``grad``,
    (sum_t dy[t], sum_t dy[t] * (x[t] - mean)); else (sum_t (x[t] - mean)^2, 0), dy
    unused. One compiled function for the forward's and the backward's sums (each call
    site passes a constant ``grad``: its loop alone remains once inlined)."""
    a = 0.0
    b = 0.0
    if grad:
        for t in range(x.shape[0]):
            g = np.float64(dy[t])
            a += g
            b += g * (x[t] - mean)
    else:
        for t in range(x.shape[0]):
            d = x[t] - mean
            a += d * d
    return a, b


# --------------------------------------------------------------------------------------
# kernels: serial, two per pass, the Python wrappers choosing by L (so a fit compiles only
# the one its layout uses); training and inference share the forward kernel
# --------------------------------------------------------------------------------------


@jit_views
def _channels(mode, X, Y, dX, gamma, beta, stats, momentum, eps, cache):
    """Every pass for L > 1 (one channel after the other); ``mode``:

    * ``_TRAINING`` / ``_INFERENCE``: :func:`batchnorm_forward` /
      :func:`batchnorm_forward_inference` of ``X`` into ``Y``, ``stats`` the running
      statistics (``dX`` unused);
    * ``_BACKWARD`` / ``_BACKWARD_DX``: :func:`batchnorm_backward`, ``Y`` holding dY,
      ``stats`` the gradients as ``RunningStats(dgamma, dbeta)``, ``dX`` written with
      ``_BACKWARD_DX`` only (``beta``, ``momentum`` and ``eps`` unused).

    One kernel for both directions (both passes written in it, not numba-inlined helpers:
    inlining cost ~0.06 s of compile): a fit compiles one function and one entry wrapper
    per layout instead of two.
    """
    # (a run-time bool, not the constants True / False: a literal argument would compile
    # _row_sums once for each)
    backward = mode >= _BACKWARD
    if backward:  # batchnorm_backward, one channel after the other
        dY, dgamma, dbeta, need_dx = Y, stats.mean, stats.var, mode == _BACKWARD_DX
        n, C, L = X.shape
        m = n * L
        for c in range(C):
            mean = cache.mean[c]
            inv_std = cache.inv_std[c]
            sum_dy = 0.0
            sum_dy_dev = 0.0  # sum dY * (X - mean)
            for s in range(n):
                a, b = _row_sums(dY[s, c], X[s, c], mean, backward)
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
        return
    # batchnorm_forward (training) or batchnorm_forward_inference, one channel after the
    # other
    running, training = stats, mode == _TRAINING
    n, C, L = X.shape
    m = n * L
    for c in range(C):
        if training:
            acc = 0.0
            for s in range(n):
                acc += row_sum(X[s, c])
            mean = acc / m
            sq = 0.0
            for s in range(n):
                sq += _row_sums(X[s, c], X[s, c], mean, backward)[0]
            var = sq / m
            inv_std = 1.0 / math.sqrt(var + eps)
            running.mean[c] = (1.0 - momentum) * running.mean[c] + momentum * mean
            running.var[c] = (1.0 - momentum) * running.var[c] + momentum * (sq / (m - 1))
        else:
            mean = np.float64(running.mean[c])
            inv_std = 1.0 / math.sqrt(np.float64(running.var[c]) + eps)
        cache.mean[c] = mean
        cache.inv_std[c] = inv_std
        g = np.float64(gamma[c])
        b = np.float64(beta[c])
        for s in range(n):
            xr = X[s, c]
            yr = Y[s, c]
            for t in range(L):
                yr[t] = g * ((xr[t] - mean) * inv_std) + b


@jit_views
def _dense(mode, X, Y, dX, gamma, beta, stats, momentum, eps, cache):
    """``_channels`` for L = 1 (channels innermost: contiguous, vectorised)."""
    if mode >= _BACKWARD:  # batchnorm_backward, accumulating in cache.work
        dY, dgamma, dbeta, need_dx = Y, stats.mean, stats.var, mode == _BACKWARD_DX
        n, C, _ = X.shape
        X2 = X.reshape(n, C)
        dY2 = dY.reshape(n, C)
        mean = cache.mean
        inv_std = cache.inv_std
        sum_dy = cache.work[0]
        sum_dy_dev = cache.work[1]  # sum dY * (X - mean), then sum dY * x_hat
        sum_dy[:] = 0.0
        sum_dy_dev[:] = 0.0
        for s in range(n):
            xs = X2[s]
            gs = dY2[s]
            for j in range(C):
                gj = np.float64(gs[j])
                sum_dy[j] += gj
                sum_dy_dev[j] += gj * (xs[j] - mean[j])
        for j in range(C):
            sum_dy_dev[j] = sum_dy_dev[j] * inv_std[j]
            dgamma[j] = sum_dy_dev[j]
            dbeta[j] = sum_dy[j]
        if need_dx:
            dX2 = dX.reshape(n, C)
            for s in range(n):
                xs = X2[s]
                gs = dY2[s]
                ds = dX2[s]
                for j in range(C):
                    x_hat = (xs[j] - mean[j]) * inv_std[j]
                    k = np.float64(gamma[j]) * inv_std[j]
                    ds[j] = k * (gs[j] - sum_dy[j] / n - x_hat * (sum_dy_dev[j] / n))
        return
    # the forward passes (the sums run over the samples in order, as ``_channels``), with
    # cache.mean and cache.inv_std as the per-channel accumulators (the sum, then the sum
    # of squared deviations)
    running, training = stats, mode == _TRAINING
    n, C, _ = X.shape
    X2 = X.reshape(n, C)
    Y2 = Y.reshape(n, C)
    mean = cache.mean
    inv_std = cache.inv_std
    run_mean = running.mean
    run_var = running.var
    if training:
        mean[:] = 0.0
        inv_std[:] = 0.0
        for s in range(n):
            xs = X2[s]
            for j in range(C):
                mean[j] += xs[j]
        for j in range(C):
            mean[j] = mean[j] / n
        for s in range(n):
            xs = X2[s]
            for j in range(C):
                d = xs[j] - mean[j]
                inv_std[j] += d * d
        for j in range(C):
            sq = inv_std[j]
            inv_std[j] = 1.0 / math.sqrt(sq / n + eps)
            run_mean[j] = (1.0 - momentum) * run_mean[j] + momentum * mean[j]
            run_var[j] = (1.0 - momentum) * run_var[j] + momentum * (sq / (n - 1))
    else:
        for j in range(C):
            mean[j] = np.float64(run_mean[j])
            inv_std[j] = 1.0 / math.sqrt(np.float64(run_var[j]) + eps)
    for s in range(n):
        xs = X2[s]
        ys = Y2[s]
        for j in range(C):
            ys[j] = np.float64(gamma[j]) * ((xs[j] - mean[j]) * inv_std[j]) + np.float64(beta[j])


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
    kernel = _dense if X.shape[2] == 1 else _channels
    kernel(_TRAINING, X, Y, Y, gamma, beta, running, float(momentum), float(eps), cache)


def batchnorm_forward_inference(X, gamma, beta, running, eps, Y, cache=None):
    """Inference forward with the running statistics; overwrite ``Y``.

    X : (n, C, L) float32 or float64, C-contiguous.
    gamma, beta : (C,) same dtype.
    running : :class:`RunningStats` of (C,) arrays, same dtype; read only.
    eps : float > 0.
    Y : (n, C, L) same dtype (may be X), overwritten:
        Y = gamma * (X - running.mean) / sqrt(running.var + eps) + beta.
    cache : :class:`BatchNormCache` for C channels used as scratch (overwritten with the
        running mean and 1 / sqrt(running.var + eps)), or None to allocate one.
    """
    if cache is None:
        cache = batchnorm_cache(X.shape[1])
    kernel = _dense if X.shape[2] == 1 else _channels
    kernel(_INFERENCE, X, Y, Y, gamma, beta, running, 0.0, float(eps), cache)


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
    kernel = _dense if X.shape[2] == 1 else _channels
    mode = _BACKWARD_DX if need_dx else _BACKWARD
    # the gradients travel in the running statistics' place (a RunningStats of them)
    kernel(mode, X, dY, dX, gamma, gamma, RunningStats(dgamma, dbeta), 0.0, 0.0, cache)
