"""Slow, obviously-correct NumPy references for the convolution and pooling kernels.

Explicit zero padding and explicit loops over output positions, in float64.
"""

import numpy as np


def pad_input(X, pad_h, pad_w, Ho, Wo, kh, kw, sh, sw):
    """Xpad with ``pad_h`` rows on top, ``pad_w`` columns on the left and as many zeros
    on the bottom / right as the output size needs (extra input rows are never read).
    ``kh``, ``kw`` are the kernel's extent (with dilation d: d*(k - 1) + 1)."""
    n, C, H, W = X.shape
    Hp = max((Ho - 1) * sh + kh, H + pad_h)
    Wp = max((Wo - 1) * sw + kw, W + pad_w)
    Xpad = np.zeros((n, C, Hp, Wp), dtype=np.float64)
    Xpad[:, :, pad_h : pad_h + H, pad_w : pad_w + W] = X
    return Xpad


def conv2d(X, Wt, b, stride, padding, out_size, dilation=(1, 1)):
    """Y[n, f, i, j] = b[f] + sum_{c,p,q} Wt[f,c,p,q] * Xpad[n, c, i*sh + p*dh, j*sw + q*dw]."""
    (sh, sw), (ph, pw), (Ho, Wo), (dh, dw) = stride, padding, out_size, dilation
    F, C, kh, kw = Wt.shape
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # the dilated kernel's extent
    Xpad = pad_input(X, ph, pw, Ho, Wo, eh, ew, sh, sw)
    Y = np.zeros((X.shape[0], F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            # every dh-th row, every dw-th column: (n, C, kh, kw)
            window = Xpad[:, :, i * sh : i * sh + eh : dh, j * sw : j * sw + ew : dw]
            Y[:, :, i, j] = np.einsum("ncpq,fcpq->nf", window, Wt) + b
    return Y


def conv1d(X, Wt, b, stride, padding, out_size, dilation=1):
    """conv2d on (n, C, 1, L)."""
    Y = conv2d(
        X[:, :, None, :],
        Wt[:, :, None, :],
        b,
        (1, stride),
        (0, padding),
        (1, out_size),
        (1, dilation),
    )
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
