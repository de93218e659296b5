"""Slow, obviously-correct NumPy references for the convolution and pooling kernels.

Explicit zero padding and explicit loops over output positions, in float64.
"""

import numpy as np


def pad_input(X, pad_h, pad_w, Ho, Wo, kh, kw, sh, sw):
    """Xpad with ``pad_h`` rows on top, ``pad_w`` columns on the left and as many zeros
    on the bottom / right as the output size needs (extra input rows are never read)."""
    n, C, H, W = X.shape
    Hp = max((Ho - 1) * sh + kh, H + pad_h)
    Wp = max((Wo - 1) * sw + kw, W + pad_w)
    Xpad = np.zeros((n, C, Hp, Wp), dtype=np.float64)
    Xpad[:, :, pad_h : pad_h + H, pad_w : pad_w + W] = X
    return Xpad


def conv2d(X, Wt, b, stride, padding, out_size):
    """Y[n, f, i, j] = b[f] + sum_{c,p,q} Wt[f,c,p,q] * Xpad[n, c, i*sh + p, j*sw + q]."""
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_size
    F, C, kh, kw = Wt.shape
    Xpad = pad_input(X, ph, pw, Ho, Wo, kh, kw, sh, sw)
    Y = np.zeros((X.shape[0], F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            window = Xpad[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]  # (n, C, kh, kw)
            Y[:, :, i, j] = np.einsum("ncpq,fcpq->nf", window, Wt) + b
    return Y


def conv1d(X, Wt, b, stride, padding, out_size):
    """conv2d on (n, C, 1, L)."""
    Y = conv2d(X[:, :, None, :], Wt[:, :, None, :], b, (1, stride), (0, padding), (1, out_size))
    return Y[:, :, 0, :]


def maxpool2d(X, pool, stride, out_size):
    """Y[n, c, i, j] = max of the window X[n, c, i*sh : i*sh + kh, j*sw : j*sw + kw]."""
    (kh, kw), (sh, sw), (Ho, Wo) = pool, stride, out_size
    Y = np.zeros(X.shape[:2] + (Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            Y[:, :, i, j] = X[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].max(axis=(2, 3))
    return Y


def avgpool2d(X, pool, stride, out_size):
    """Y[n, c, i, j] = mean of the window X[n, c, i*sh : i*sh + kh, j*sw : j*sw + kw]."""
    (kh, kw), (sh, sw), (Ho, Wo) = pool, stride, out_size
    Y = np.zeros(X.shape[:2] + (Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            Y[:, :, i, j] = X[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].mean(axis=(2, 3))
    return Y
