"""2-D and 1-D convolution (cross-correlation, as in PyTorch), forward and backward.

Layouts are PyTorch's, so weights can be imported as they are::

    X  (n, C, H, W)       input
    Wt (F, C, kh, kw)     weights ("W" below in the formulas)
    b  (F,)               bias
    Y  (n, F, Ho, Wo)     output; its shape (Ho, Wo) is decided by the caller

with stride (sh, sw) and the *top/left* zero padding (ph, pw). The bottom/right padding
is implied by (Ho, Wo): any input row or column read outside ``X`` is zero, so asymmetric
'same' padding for even kernels needs nothing more. With ``Xpad[n, c, y, x] = X[n, c,
y - ph, x - pw]`` inside ``X`` and 0 outside::

    Y[n, f, i, j] = b[f] + sum_{c, p, q} W[f, c, p, q] * Xpad[n, c, i*sh + p, j*sw + q]

Backward, for a loss L and dY = dL/dY::

    db[f]          = sum_{n, i, j} dY[n, f, i, j]
    dW[f, c, p, q] = sum_{n, i, j} dY[n, f, i, j] * Xpad[n, c, i*sh + p, j*sw + q]
    dX[n, c, y, x] = sum over (f, p, q, i, j) with i*sh + p = y + ph and j*sw + q = x + pw
                     of W[f, c, p, q] * dY[n, f, i, j]

How it is computed (im2col + BLAS). With K = C*kh*kw, P = Ho*Wo and the row index
k = (c*kh + p)*kw + q, the samples are taken in fixed-size chunks of ``chunk`` samples, and
for a chunk holding samples s0 .. s0+m-1 the im2col matrix is::

    cols[k, (s - s0)*P + i*Wo + j] = Xpad[s, c, i*sh + p, j*sw + q]      (K, m*P)

so that, with W2 = W.reshape(F, K) and dYc[f, (s - s0)*P + i*Wo + j] = dY[s, f, i, j]::

    Y (chunk)   = W2 @ cols + b          one GEMM per chunk
    dW         += dYc @ cols.T           chunks added in chunk order
    dcols       = W2.T @ dYc             then scattered back: dX = col2im(dcols)

The GEMMs go to BLAS (``np.dot``), which threads them itself; the data movement around them
(im2col, col2im, copies) runs in ``prange`` over the samples of a chunk, each sample
writing only its own rows. BLAS is never called from inside ``prange``: OpenBLAS serialises
concurrent threaded calls, which made a prange-over-samples design collapse at 2 threads.
The chunk size is fixed by the workspace (never by the thread count), every per-sample sum
is taken in a fixed order, and chunk partials are added serially, so results are
bit-identical whatever numba's thread count is.
"""

from typing import NamedTuple

import numpy as np
from numba import prange

from sknet._config import jit, jit_parallel

__all__ = [
    "CHUNK_COLUMNS",
    "Conv2dWorkspace",
    "conv2d_workspace",
    "conv1d_workspace",
    "conv2d_forward",
    "conv2d_backward",
    "conv1d_forward",
    "conv1d_backward",
]

#: Target number of im2col columns (samples * Ho * Wo) per chunk: one chunk's im2col matrix
#: stays in the L2 cache while its GEMM still has a long dimension for BLAS to split.
CHUNK_COLUMNS = 4096


class Conv2dWorkspace(NamedTuple):
    """Scratch buffers of one convolution, allocated once by the caller.

    With K = C*kh*kw, P = Ho*Wo and ``chunk`` samples per chunk:

    cols : (K * chunk * P,) flat; one chunk's im2col matrix, seen as (K, m*P) for a chunk
        of m samples (the last chunk of a batch may be shorter). Backward reuses it for
        dcols.
    gemm_out : (F * chunk * P,) flat; the forward GEMM's output of one chunk, or one
        chunk's gathered dY in backward, seen as (F, m*P).
    dW_chunk : (F, K); one chunk's weight gradient before it is added to dW.
    db_sample : (chunk, F); per-sample sums of dY over the pixels, added to db in order.
        Its first dimension *is* the chunk size, which fixes the order of summation.
    """

    cols: np.ndarray
    gemm_out: np.ndarray
    dW_chunk: np.ndarray
    db_sample: np.ndarray


def conv2d_workspace(in_channels, out_channels, kernel_size, out_size, dtype, chunk=None):
    """Allocate the :class:`Conv2dWorkspace` of a 2-D convolution.

    ``kernel_size`` is (kh, kw), ``out_size`` is (Ho, Wo). ``chunk`` (samples per GEMM)
    defaults to ``max(1, CHUNK_COLUMNS // (Ho * Wo))``; it depends on the layer's shape
    only, never on the batch size or the thread count, so results are reproducible.
    """
    kh, kw = kernel_size
    Ho, Wo = out_size
    K = in_channels * kh * kw
    P = Ho * Wo
    if chunk is None:
        chunk = max(1, CHUNK_COLUMNS // P)
    return Conv2dWorkspace(
        cols=np.empty(K * chunk * P, dtype=dtype),
        gemm_out=np.empty(out_channels * chunk * P, dtype=dtype),
        dW_chunk=np.empty((out_channels, K), dtype=dtype),
        db_sample=np.empty((chunk, out_channels), dtype=dtype),
    )


def conv1d_workspace(in_channels, out_channels, kernel_size, out_size, dtype, chunk=None):
    """Allocate the workspace of a 1-D convolution (``kernel_size`` k, ``out_size`` Lo)."""
    return conv2d_workspace(
        in_channels, out_channels, (1, kernel_size), (1, out_size), dtype, chunk
    )


# --------------------------------------------------------------------------------------
# helpers: valid column range, im2col / col2im of one sample, an ordered row sum
# --------------------------------------------------------------------------------------


@jit
def _valid_range(q, pw, sw, W, Wo):
    """Output columns j in [j0, j1) whose input column x = j*sw + q - pw is in [0, W)."""
    if q >= pw:
        j0 = 0
    else:
        j0 = (pw - q + sw - 1) // sw  # ceil((pw - q) / sw)
    t = W - 1 + pw - q
    j1 = t // sw + 1 if t >= 0 else 0
    if j1 > Wo:
        j1 = Wo
    if j0 > j1:
        j0 = j1
    return j0, j1


@jit
def _im2col_sample(X, s, kh, kw, sh, sw, ph, pw, Ho, Wo, cols, col0):
    """Write sample ``s`` of X into columns col0 .. col0 + Ho*Wo - 1 of ``cols`` (K, m).

    cols[(c*kh + p)*kw + q, col0 + i*Wo + j] = X[s, c, i*sh + p - ph, j*sw + q - pw],
    or 0 where that index is outside X.
    """
    C, H, W = X.shape[1], X.shape[2], X.shape[3]
    zero = X.dtype.type(0)
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                row = cols[(c * kh + p) * kw + q]
                j0, j1 = _valid_range(q, pw, sw, W, Wo)
                off = q - pw
                for i in range(Ho):
                    y = i * sh + p - ph
                    d = col0 + i * Wo
                    if y < 0 or y >= H:
                        row[d : d + Wo] = zero
                        continue
                    xr = X[s, c, y]
                    if j0 > 0:
                        row[d : d + j0] = zero
                    if sw == 1:
                        # row[d + j] = xr[j + off], in blocks of 8 so short rows vectorise
                        dst = row[d + j0 : d + j1]
                        src = xr[j0 + off : j1 + off]
                        m = j1 - j0
                        m8 = m - m % 8
                        for t in range(0, m8, 8):
                            for u in range(8):
                                dst[t + u] = src[t + u]
                        for t in range(m8, m):
                            dst[t] = src[t]
                    else:
                        for j in range(j0, j1):
                            row[d + j] = xr[j * sw + off]
                    if j1 < Wo:
                        row[d + j1 : d + Wo] = zero


@jit
def _col2im_sample(dcols, col0, s, kh, kw, sh, sw, ph, pw, Ho, Wo, dX):
    """Overwrite dX[s] with the adjoint of :func:`_im2col_sample` applied to ``dcols``.

    dX[s, c, y, x] = sum of dcols[(c*kh + p)*kw + q, col0 + i*Wo + j]
                     over i*sh + p - ph = y, j*sw + q - pw = x.
    """
    C, H, W = dX.shape[1], dX.shape[2], dX.shape[3]
    dX[s] = 0
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                row = dcols[(c * kh + p) * kw + q]
                j0, j1 = _valid_range(q, pw, sw, W, Wo)
                off = q - pw
                for i in range(Ho):
                    y = i * sh + p - ph
                    if y < 0 or y >= H:
                        continue
                    d = col0 + i * Wo
                    xr = dX[s, c, y]
                    if sw == 1:
                        dst = xr[j0 + off : j1 + off]
                        src = row[d + j0 : d + j1]
                        m = j1 - j0
                        m8 = m - m % 8
                        for t in range(0, m8, 8):
                            for u in range(8):
                                dst[t + u] += src[t + u]
                        for t in range(m8, m):
                            dst[t] += src[t]
                    else:
                        for j in range(j0, j1):
                            xr[j * sw + off] += row[d + j]


@jit
def _ordered_sum(a):
    """Sum of the 1-D array ``a`` in a fixed order: 8 interleaved partial sums."""
    n = a.shape[0]
    n8 = n - n % 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for t in range(0, n8, 8):
        s0 += a[t]
        s1 += a[t + 1]
        s2 += a[t + 2]
        s3 += a[t + 3]
        s4 += a[t + 4]
        s5 += a[t + 5]
        s6 += a[t + 6]
        s7 += a[t + 7]
    tail = 0.0
    for t in range(n8, n):
        tail += a[t]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)) + tail


# --------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------


@jit_parallel
def conv2d_forward(X, Wt, b, stride_h, stride_w, pad_h, pad_w, Y, ws):
    """Y = conv2d(X, Wt) + b, written into ``Y``.

    Parameters
    ----------
    X : (n, C, H, W) float32 or float64, C-contiguous.
    Wt : (F, C, kh, kw), same dtype, C-contiguous.
    b : (F,)
    stride_h, stride_w : int >= 1
    pad_h, pad_w : int >= 0; zero padding on the top / left. The bottom / right padding
        is whatever (Ho, Wo) implies.
    Y : (n, F, Ho, Wo), overwritten:
        Y[s, f, i, j] = b[f] + sum_{c,p,q} Wt[f,c,p,q] * Xpad[s, c, i*sh + p, j*sw + q].
    ws : :class:`Conv2dWorkspace` for these shapes (contents are scratch).
    """
    n = X.shape[0]
    F, C, kh, kw = Wt.shape
    Ho, Wo = Y.shape[2], Y.shape[3]
    K = C * kh * kw
    P = Ho * Wo
    chunk = ws.db_sample.shape[0]
    W2 = Wt.reshape(F, K)
    for s0 in range(0, n, chunk):
        s1 = min(n, s0 + chunk)
        m = (s1 - s0) * P
        cols = ws.cols[: K * m].reshape(K, m)
        out = ws.gemm_out[: F * m].reshape(F, m)
        for s in prange(s0, s1):
            _im2col_sample(X, s, kh, kw, stride_h, stride_w, pad_h, pad_w, Ho, Wo, cols, (s - s0) * P)
        np.dot(W2, cols, out)  # out[f, (s-s0)*P + pix] = sum_k W2[f, k] cols[k, ...]
        for s in prange(s0, s1):
            Ys = Y[s].reshape(F, P)
            o = (s - s0) * P
            for f in range(F):
                bf = b[f]
                for t in range(P):
                    Ys[f, t] = out[f, o + t] + bf


@jit_parallel
def conv2d_backward(X, Wt, dY, stride_h, stride_w, pad_h, pad_w, dW, db, dX, compute_dX, ws):
    """Gradients of conv2d: overwrite ``dW``, ``db`` and, if ``compute_dX``, ``dX``.

    Parameters
    ----------
    X, Wt, stride_h, stride_w, pad_h, pad_w : as given to :func:`conv2d_forward`.
    dY : (n, F, Ho, Wo), gradient of the loss with respect to Y.
    dW : (F, C, kh, kw), overwritten with sum_{s,i,j} dY[s,f,i,j] Xpad[s,c,i*sh+p,j*sw+q].
    db : (F,), overwritten with sum_{s,i,j} dY[s,f,i,j].
    dX : (n, C, H, W), overwritten with dL/dX when ``compute_dX`` is True; not touched
        otherwise (then any array of that dtype and ndim will do, e.g. shape (0, 0, 0, 0)).
    compute_dX : bool; False for a network's first layer.
    ws : :class:`Conv2dWorkspace` (scratch). im2col is recomputed here, so the workspace
        need not survive from the forward pass.

    dW and db are sums over chunks of ``ws.db_sample.shape[0]`` samples, taken in chunk
    order; each chunk's dW is one GEMM, its db a sum of ordered per-sample sums.
    """
    n = X.shape[0]
    F, C, kh, kw = Wt.shape
    Ho, Wo = dY.shape[2], dY.shape[3]
    K = C * kh * kw
    P = Ho * Wo
    chunk = ws.db_sample.shape[0]
    W2 = Wt.reshape(F, K)
    dW2 = dW.reshape(F, K)
    dbs = ws.db_sample
    for s0 in range(0, n, chunk):
        s1 = min(n, s0 + chunk)
        m = (s1 - s0) * P
        cols = ws.cols[: K * m].reshape(K, m)
        dYc = ws.gemm_out[: F * m].reshape(F, m)
        for s in prange(s0, s1):
            _im2col_sample(X, s, kh, kw, stride_h, stride_w, pad_h, pad_w, Ho, Wo, cols, (s - s0) * P)
            dYs = dY[s].reshape(F, P)
            o = (s - s0) * P
            for f in range(F):
                for t in range(P):
                    dYc[f, o + t] = dYs[f, t]
                dbs[s - s0, f] = _ordered_sum(dYs[f])
        # db += per-sample sums, in sample order
        if s0 == 0:
            db[:] = 0
        for s in range(s0, s1):
            for f in range(F):
                db[f] += dbs[s - s0, f]
        # dW (+)= dYc @ cols.T: one GEMM per chunk, chunks added in order
        if s0 == 0:
            np.dot(dYc, cols.T, dW2)
        else:
            np.dot(dYc, cols.T, ws.dW_chunk)
            for f in range(F):
                for k in range(K):
                    dW2[f, k] += ws.dW_chunk[f, k]
        if compute_dX:
            np.dot(W2.T, dYc, cols)  # dcols, written over this chunk's cols
            for s in prange(s0, s1):
                _col2im_sample(cols, (s - s0) * P, s, kh, kw, stride_h, stride_w, pad_h, pad_w, Ho, Wo, dX)


# --------------------------------------------------------------------------------------
# conv1d: the 2-D kernels with H = 1
# --------------------------------------------------------------------------------------


@jit
def conv1d_forward(X, Wt, b, stride, pad, Y, ws):
    """Y = conv1d(X, Wt) + b, written into ``Y``.

    X (n, C, L), Wt (F, C, k), b (F,), Y (n, F, Lo) overwritten with
    Y[s, f, i] = b[f] + sum_{c, q} Wt[f, c, q] * Xpad[s, c, i*stride + q],
    Xpad[s, c, x] = X[s, c, x - pad] inside X, 0 outside (left padding ``pad``; the right
    padding is implied by Lo). ``ws`` from :func:`conv1d_workspace`. This is
    :func:`conv2d_forward` on (n, C, 1, L).
    """
    n, C, L = X.shape
    F, _, k = Wt.shape
    Lo = Y.shape[2]
    conv2d_forward(
        X.reshape(n, C, 1, L), Wt.reshape(F, C, 1, k), b, 1, stride, 0, pad,
        Y.reshape(n, F, 1, Lo), ws,
    )


@jit
def conv1d_backward(X, Wt, dY, stride, pad, dW, db, dX, compute_dX, ws):
    """Gradients of conv1d: overwrite dW (F, C, k), db (F,) and, if ``compute_dX``,
    dX (n, C, L). Same conventions as :func:`conv2d_backward` with H = 1."""
    n, C, L = X.shape
    F, _, k = Wt.shape
    Lo = dY.shape[2]
    dX4 = dX.reshape(dX.shape[0], dX.shape[1], 1, dX.shape[2])
    conv2d_backward(
        X.reshape(n, C, 1, L), Wt.reshape(F, C, 1, k), dY.reshape(n, F, 1, Lo), 1, stride,
        0, pad, dW.reshape(F, C, 1, k), db, dX4, compute_dX, ws,
    )
