"""2-D and 1-D convolution (cross-correlation, as in PyTorch), forward and backward.

Layouts are PyTorch's, so weights can be imported as they are::

    X  (n, C, H, W)       input
    Wt (F, C, kh, kw)     weights ("W" below in the formulas)
    b  (F,)               bias
    Y  (n, F, Ho, Wo)     output; its shape (Ho, Wo) is decided by the caller

with stride (sh, sw), dilation (dh, dw) and the *top/left* zero padding (ph, pw). The
bottom/right padding is implied by (Ho, Wo): any input row or column read outside ``X``
is zero, so asymmetric 'same' padding for even kernels needs nothing more. With
``Xpad[n, c, y, x] = X[n, c, y - ph, x - pw]`` inside ``X`` and 0 outside::

    Y[n, f, i, j] = b[f] + sum_{c, p, q} W[f, c, p, q] * Xpad[n, c, i*sh + p*dh, j*sw + q*dw]

(dilation as in PyTorch: kernel taps dh rows / dw columns apart, so the kernel spans
dh*(kh - 1) + 1 rows; dh = dw = 1 is the plain convolution). Backward, for a loss L and
dY = dL/dY::

    db[f]          = sum_{n, i, j} dY[n, f, i, j]
    dW[f, c, p, q] = sum_{n, i, j} dY[n, f, i, j] * Xpad[n, c, i*sh + p*dh, j*sw + q*dw]
    dX[n, c, y, x] = sum over (f, p, q, i, j) with i*sh + p*dh = y + ph
                     and j*sw + q*dw = x + pw of W[f, c, p, q] * dY[n, f, i, j]

How it is computed: im2col + BLAS, parallel over samples. With K = C*kh*kw, P = Ho*Wo
and the row index k = (c*kh + p)*kw + q, the im2col matrix of sample s, with one more
row of ones for the bias, is::

    cols[k, i*Wo + j] = Xpad[s, c, i*sh + p*dh, j*sw + q*dw],  cols[K, :] = 1   (K + 1, P)

so that, with W2b = [W.reshape(F, K) | b] (F, K + 1) and dYs = dY[s].reshape(F, P)::

    Y[s] = W2b @ cols       [dW2.T; db] += cols @ dYs.T       dcols = W2.T @ dYs -> col2im

(the bias is added inside the forward GEMM and db is the last row of the weight-gradient
GEMM: no separate bias or row-sum passes). Each product is a whole GEMM per sample
(:func:`sknet.kernels.blas.gemm`, OpenBLAS's ?gemm: transposed operands without copies,
the chunk's weight gradient accumulated by BLAS with beta = 1), called from one serial
block function per pass (``_forward_block``, ``_backward_block``) run in parallel over
workspace slots (one per thread) by :func:`sknet.kernels.runner.run_blocks`, the parallel
loop every kernel family shares (no parallel kernel of the convolutions' own to compile:
``bench_compile.py --jobs convnet`` 10.8-11.4 -> 7.2-8.0 CPU s). Callers run BLAS single-threaded
around these kernels (the estimators do, with ``one_blas_thread``), so that OpenBLAS never
starts its own threads inside numba's (nested pools made the backward pass slower at 2
threads than at 1); results do not depend on it. Slot t takes samples (forward) or chunks
of samples (backward) t, t + n_slots, ... and works in its own im2col buffer.
Samples are grouped in fixed-size chunks of ``ws.chunk`` samples; a chunk's dW and db are
summed serially over its samples into that chunk's own buffer, and the chunk buffers are
added after the parallel loop in chunk order. Neither the chunk size nor any summation
order depends on the thread count, so results are bit-identical whatever it is.

im2col and col2im index with unsigned integers: numba then emits no negative-index
wraparound test, which LLVM could not remove from loops that start at a computed bound
and which kept those copy loops scalar; with it they took as long as the GEMMs (LeNet's
second layer: im2col 3.7 ms per batch of 128 with signed indices, 0.7 ms unsigned).

Measured alternatives (LeNet-like layers, on a shared and noisy machine): a GEMM per
chunk of 8 samples ((K, 8P) im2col blocks) instead of one per sample took the same time
for LeNet's second layer and ~15% less for the 8x8 digits network's second (P = 16); not
adopted, as Y and dY are stored per sample and would need copies around it. Stride-1
copy loops and hand-unrolled copies gained nothing over the unsigned indices. One large
GEMM per chunk of samples, which BLAS threads itself, with ``prange`` only around im2col
and col2im, was slower (big im2col blocks leave the cache, and at 2 threads alternating
numba's and OpenBLAS's thread pools collapsed); hand-written GEMM loops were about 3x
slower than BLAS (without fast-math flags LLVM emits no FMA). Cutting each product into
row blocks small enough for OpenBLAS to keep it on the calling thread at any thread
count (m*n*k <= 65536*4), the earlier safeguard, meant GEMMs of one or two rows for the
FCN's layers (128-256 channels, 150-500 steps): 5-25x slower than the whole product.
"""

import operator
from typing import NamedTuple

import numba
import numpy as np

from sknet._config import jit
from sknet.kernels.blas import gemm
from sknet.kernels.blocks import CHUNK
from sknet.kernels.runner import internal, run_blocks, unpack

__all__ = [
    "CHUNK",
    "Conv2dWorkspace",
    "conv2d_workspace",
    "conv1d_workspace",
    "conv2d_forward",
    "conv2d_backward",
    "conv1d_forward",
    "conv1d_backward",
]


class Conv2dWorkspace(NamedTuple):
    """Scratch buffers of one convolution, allocated once by the caller.

    With K = C*kh*kw, P = Ho*Wo, n_slots parallel slots (normally numba's thread count;
    any value >= 1 gives the same results) and n_chunks >= ceil(batch / chunk):

    cols : (n_slots, K + 1, P); a slot's im2col matrix of one sample, its last row ones
        (its dcols in backward).
    W2b : (F, K + 1); [W.reshape(F, K) | b] (forward), [W.reshape(F, K) | 0] (backward).
    dW_chunks : (n_chunks, K + 1, F); per-chunk [dW2.T; db] partial sums (backward only).
    chunk : int; samples per chunk.
    kept : (n_kept, K + 1, P); with n_kept > 0 (``keep_cols=True``), the forward pass writes
        the im2col matrix of each sample s < n_kept here and the backward pass reads it
        back instead of recomputing it. It ties a backward call to the last forward call
        on this workspace (same X); a batch larger than n_kept recomputes as usual.
    """

    cols: np.ndarray
    kept: np.ndarray
    W2b: np.ndarray
    dW_chunks: np.ndarray
    chunk: int


def conv2d_workspace(
    in_channels,
    out_channels,
    kernel_size,
    out_size,
    max_batch,
    dtype,
    n_slots=None,
    chunk=CHUNK,
    keep_cols=False,
):
    """Allocate the :class:`Conv2dWorkspace` of a 2-D convolution.

    ``kernel_size`` is (kh, kw), ``out_size`` is (Ho, Wo), ``max_batch`` the largest
    number of samples one call will get. ``n_slots`` defaults to numba's current thread
    count; results do not depend on it, nor on ``max_batch``. ``keep_cols=True`` adds
    room for ``max_batch`` im2col matrices (``kept``): backward then skips im2col,
    bit-identically, at the cost of max_batch * (K + 1) * P values of memory.
    """
    kh, kw = kernel_size
    Ho, Wo = out_size
    K = in_channels * kh * kw
    if n_slots is None:
        n_slots = numba.get_num_threads()
    n_chunks = max(1, -(-max_batch // chunk))
    return Conv2dWorkspace(
        cols=np.empty((n_slots, K + 1, Ho * Wo), dtype=dtype),
        kept=np.empty((max_batch if keep_cols else 0, K + 1, Ho * Wo), dtype=dtype),
        W2b=np.empty((out_channels, K + 1), dtype=dtype),
        dW_chunks=np.empty((n_chunks, K + 1, out_channels), dtype=dtype),
        chunk=int(chunk),
    )


def conv1d_workspace(
    in_channels,
    out_channels,
    kernel_size,
    out_size,
    max_batch,
    dtype,
    n_slots=None,
    chunk=CHUNK,
    keep_cols=False,
):
    """Allocate the workspace of a 1-D convolution (``kernel_size`` k, ``out_size`` Lo)."""
    return conv2d_workspace(
        in_channels,
        out_channels,
        (1, kernel_size),
        (1, out_size),
        max_batch,
        dtype,
        n_slots,
        chunk,
        keep_cols,
    )


# --------------------------------------------------------------------------------------
# helpers: valid index range, im2col / col2im of one sample, an ordered row sum
# --------------------------------------------------------------------------------------
# Indices below are cast to unsigned (``_u``) right where they index: numba then drops
# its negative-index wraparound test, which LLVM cannot remove when a loop starts at a
# computed bound and which kept these copy loops scalar (im2col of LeNet's second layer
# took ~8x longer with signed indices). Every value cast is a valid, non-negative index.
_u = numba.uint64


@jit
def _valid_range(off, pw, sw, W, Wo):
    """Output columns j in [j0, j1) whose input column x = j*sw + off - pw is in [0, W).

    ``off`` is a kernel tap's offset q*dw. Also used for rows: _valid_range(p*dh, ph, sh,
    H, Ho).
    """
    if off >= pw:
        j0 = 0
    else:
        j0 = (pw - off + sw - 1) // sw  # ceil((pw - off) / sw)
    t = W - 1 + pw - off
    j1 = t // sw + 1 if t >= 0 else 0
    if j1 > Wo:
        j1 = Wo
    if j0 > j1:
        j0 = j1
    return j0, j1


@jit
def _im2col_sample(X, s, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, cols):
    """Overwrite ``cols`` (K, Ho*Wo) with the im2col matrix of sample ``s``.

    cols[(c*kh + p)*kw + q, i*Wo + j] = X[s, c, i*sh + p*dh - ph, j*sw + q*dw - pw],
    or 0 where that index is outside X.
    """
    C, H, W = X.shape[1], X.shape[2], X.shape[3]
    P = Ho * Wo
    zero = X.dtype.type(0)
    us = _u(s)
    kb = _u(C * kh * kw)  # the row of ones, the bias's
    for t in range(P):
        cols[kb, _u(t)] = 1
    for c in range(C):
        uc = _u(c)
        for p in range(kh):
            i0, i1 = _valid_range(p * dh, ph, sh, H, Ho)
            for q in range(kw):
                j0, j1 = _valid_range(q * dw, pw, sw, W, Wo)
                k = _u((c * kh + p) * kw + q)
                if i0 > 0 or i1 < Ho or j0 > 0 or j1 < Wo:  # padding: zero first
                    for t in range(P):
                        cols[k, _u(t)] = zero
                x0 = q * dw - pw
                for i in range(i0, i1):
                    y = _u(i * sh + p * dh - ph)
                    d = i * Wo
                    for j in range(j0, j1):
                        cols[k, _u(d + j)] = X[us, uc, y, _u(j * sw + x0)]


@jit
def _col2im_sample(dcols, s, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, dX):
    """Overwrite dX[s] with the adjoint of :func:`_im2col_sample` applied to ``dcols``.

    dX[s, c, y, x] = sum of dcols[(c*kh + p)*kw + q, i*Wo + j]
                     over i*sh + p*dh - ph = y, j*sw + q*dw - pw = x,
    added in the order of (c, p, q, i, j).
    """
    C, H, W = dX.shape[1], dX.shape[2], dX.shape[3]
    us = _u(s)
    for c in range(C):
        for y in range(H):
            for x in range(W):
                dX[us, _u(c), _u(y), _u(x)] = 0
    for c in range(C):
        uc = _u(c)
        for p in range(kh):
            i0, i1 = _valid_range(p * dh, ph, sh, H, Ho)
            for q in range(kw):
                j0, j1 = _valid_range(q * dw, pw, sw, W, Wo)
                k = _u((c * kh + p) * kw + q)
                x0 = q * dw - pw
                for i in range(i0, i1):
                    y = _u(i * sh + p * dh - ph)
                    d = i * Wo
                    for j in range(j0, j1):
                        dX[us, uc, y, _u(j * sw + x0)] += dcols[k, _u(d + j)]


# --------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------


_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_types(args, name="conv2d kernels"):
    """TypeError / ValueError unless the packed arguments ``args`` of a convolution's
    block function (see ``_forward_block``) are of types the kernels take."""
    X, W2b, Y, geom, dX, need_dx, cols, kept, keep, dW_chunks, chunk = args
    dtype = getattr(X, "dtype", None)
    if dtype not in _DTYPES:
        raise TypeError(f"{name}: X must be a float32 or float64 ndarray")
    arrays = (("X", X, 4), ("Y / dY", Y, 4), ("dX", dX, 4), ("ws.W2b", W2b, 2))
    arrays += (("ws.cols", cols, 3), ("ws.kept", kept, 3), ("ws.dW_chunks", dW_chunks, 3))
    for label, v, ndim in arrays:
        if not isinstance(v, np.ndarray) or v.ndim != ndim or v.dtype != dtype:
            raise TypeError(f"{name}: {label} must be a {ndim}-D {dtype} ndarray, as X")
        if not v.flags.c_contiguous:
            raise ValueError(f"{name}: {label} must be C-contiguous")
    for v in geom + (chunk,):
        try:
            operator.index(v)
        except TypeError:
            raise TypeError(f"{name}: strides, paddings and dilations must be integers") from None


def _forward_types(args):
    _check_types(args, "conv2d_forward")


def _backward_types(args):
    _check_types(args, "conv2d_backward")


def _check(name, args, b, dW, Wt, raw):
    """The clear error for arguments ``conv2d_forward`` / ``conv2d_backward`` reject
    (``args``: X, W2b, Y or dY, geometry, dX, need_dx, cols, ws)."""
    X, _, Y, _, dX, need_dx, _, ws = args
    if not isinstance(ws, Conv2dWorkspace):
        raise TypeError(f"{name}: ws must be a Conv2dWorkspace (conv2d_workspace)")
    arrays = (("b / db", b, 1), ("Wt", Wt, 4)) + ((("dW", dW, 4),) if dW is not None else ())
    for label, v, ndim in arrays:
        if not isinstance(v, np.ndarray) or v.ndim != ndim:
            raise TypeError(f"{name}: {label} must be a {ndim}-D ndarray")
        if ndim == 4 and not v.flags.c_contiguous:
            raise ValueError(f"{name}: {label} must be C-contiguous")
    _check_types((X, ws.W2b, Y, raw, dX, need_dx, ws.cols, ws.kept, True, ws.dW_chunks, 0), name)
    if min(raw[0], raw[1], raw[4], raw[5]) < 1 or min(raw[2], raw[3]) < 0:
        raise ValueError(f"{name}: strides and dilations must be >= 1, paddings >= 0")
    raise ValueError(  # the shapes
        f"{name}: the shapes of X, Wt, b / db, Y / dY, dW, dX and ws do not fit together"
        " (or ws has too few chunks for the batch)"
    )


def conv2d_forward(X, Wt, b, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, Y, ws):
    """Y = conv2d(X, Wt) + b, written into ``Y``.

    Parameters
    ----------
    X : (n, C, H, W) float32 or float64, C-contiguous.
    Wt : (F, C, kh, kw), same dtype, C-contiguous.
    b : (F,)
    stride_h, stride_w : int >= 1
    pad_h, pad_w : int >= 0; zero padding on the top / left. The bottom / right padding
        is whatever (Ho, Wo) implies.
    dil_h, dil_w : int >= 1; dilation (dh, dw), 1 for a plain convolution.
    Y : (n, F, Ho, Wo), overwritten:
        Y[s, f, i, j] = b[f] + sum_{c,p,q} Wt[f,c,p,q] * Xpad[s, c, i*sh + p*dh, j*sw + q*dw].
    ws : :class:`Conv2dWorkspace` for these shapes (``ws.cols``, ``ws.W2b`` and
        ``ws.kept`` are used here).

    The slots run in parallel through ``runner.run_blocks`` (the parallel loop every
    kernel family shares), each in ``_forward_block``.
    """
    try:  # shapes and values per call; types once per combination (``_check_types``)
        n, C = X.shape[:2]
        F, C2, kh, kw = Wt.shape
        K = C * kh * kw
        ok = (
            C2 == C
            and Wt.flags.c_contiguous
            and b.shape == (F,)
            and Y.shape[:2] == (n, F)
            and ws.cols.shape[1:] == (K + 1, Y.shape[2] * Y.shape[3])
            and ws.W2b.shape == (F, K + 1)
            and min(stride_h, stride_w, dil_h, dil_w) >= 1
            and min(pad_h, pad_w) >= 0
        )
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    geom = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w) if ok else ()
    args = (X, ws.W2b if ok else None, Y, geom, Y, False, ws.cols if ok else None)
    if not ok:
        raw = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
        _check("conv2d_forward", args + (ws,), b, None, Wt, raw)
    _fill_w2b(Wt, b, ws.W2b)
    keep = ws.kept.shape[0] >= n
    args = (X, ws.W2b, Y, geom, Y, False, ws.cols, ws.kept, keep, ws.dW_chunks, 0)
    run_blocks(_forward_block, args, ws.cols.shape[0], _forward_types)


# the convolution's block functions (slots) take the same packed arguments, forward and
# backward (one ``_pack`` signature per dtype): (X, W2b, Y or dY, (kh, kw, sh, sw, ph,
# pw, dh, dw), dX, need_dx, cols, kept, keep, dW_chunks, chunk)


@internal
def _forward_block(t, packed, args_type):
    """Slot t of :func:`conv2d_forward`."""
    X, W2b, Y, geom, dX, need_dx, cols, kept, keep, dW_chunks, chunk = unpack(packed, args_type)
    kh, kw, sh, sw, ph, pw, dh, dw = geom
    _forward_slot(X, W2b, kh, kw, sh, sw, ph, pw, dh, dw, Y, cols[t], kept, keep, t, cols.shape[0])


@jit
def _fill_w2b(Wt, b, W2b):
    """W2b[f, :K] = Wt[f].ravel(); W2b[f, K] = b[f]."""
    F, K1 = W2b.shape
    W2 = Wt.reshape(F, K1 - 1)
    for f in range(F):
        uf = _u(f)
        for k in range(K1 - 1):
            W2b[uf, _u(k)] = W2[uf, _u(k)]
        W2b[uf, _u(K1 - 1)] = b[uf]


@jit
def _forward_slot(X, W2b, kh, kw, sh, sw, ph, pw, dh, dw, Y, cols, kept, keep, t, n_slots):
    """Slot t of :func:`conv2d_forward`: samples t, t + n_slots, ... with im2col in cols
    (in kept[s] when ``keep``); the bias comes in with the row of ones."""
    n = X.shape[0]
    F = W2b.shape[0]
    Ho, Wo = Y.shape[2], Y.shape[3]
    P = Ho * Wo
    for s in range(t, n, n_slots):
        cs = kept[s] if keep else cols
        _im2col_sample(X, s, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, cs)
        # Y[s, f, i*Wo + j] = sum_k W2[f, k] cs[k, i*Wo + j] + b[f] * 1
        gemm(W2b, cs, Y[s].reshape(F, P))


def conv2d_backward(
    X, Wt, dY, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, dW, db, dX, need_dx, ws
):
    """Gradients of conv2d: overwrite ``dW``, ``db`` and, if ``need_dx``, ``dX``.

    Parameters
    ----------
    X, Wt, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w : as given to
        :func:`conv2d_forward`.
    dY : (n, F, Ho, Wo), gradient of the loss with respect to Y.
    dW : (F, C, kh, kw), overwritten with
        sum_{s,i,j} dY[s,f,i,j] Xpad[s, c, i*sh + p*dh, j*sw + q*dw].
    db : (F,), overwritten with sum_{s,i,j} dY[s,f,i,j].
    dX : (n, C, H, W), overwritten with dL/dX when ``need_dx`` is True; not touched
        otherwise (then any array of that dtype and ndim will do, e.g. shape (0, 0, 0, 0)).
    need_dx : bool; False for a network's first layer.
    ws : :class:`Conv2dWorkspace` with room for ceil(n / ws.chunk) chunks (scratch;
        im2col is recomputed here, unless ``ws.kept`` holds at least n samples: then it
        is read from there, as the last :func:`conv2d_forward` with this ``ws`` and this
        X left it).

    [dW2.T; db] = sum over chunks, in chunk order, of (sum over the chunk's samples, in
    order, of cols @ dYs.T, accumulated by BLAS); db is the row of ones' product. (The
    partial sums are kept transposed, (K + 1, F), so that row blocks stay contiguous.)
    The slots run in parallel through ``runner.run_blocks``, each in
    ``_backward_block``; the chunk sums are added after them (``_sum_chunks``).
    """
    need_dx = bool(need_dx)
    if not need_dx:  # dX is not touched: dY stands in for it (one set of argument types)
        dX = dY
    try:  # shapes and values per call; types once per combination (``_check_types``)
        n, C = X.shape[:2]
        F, C2, kh, kw = Wt.shape
        K = C * kh * kw
        chunk = ws.chunk
        n_chunks = (n + chunk - 1) // chunk
        ok = (
            C2 == C
            and dY.shape[:2] == (n, F)
            and dW.shape == Wt.shape
            and dW.flags.c_contiguous
            and Wt.flags.c_contiguous
            and db.shape == (F,)
            and (not need_dx or dX.shape == X.shape)
            and ws.cols.shape[1:] == (K + 1, dY.shape[2] * dY.shape[3])
            and ws.W2b.shape == (F, K + 1)
            and ws.dW_chunks.shape[1:] == (K + 1, F)
            and n_chunks <= ws.dW_chunks.shape[0]
            and min(stride_h, stride_w, dil_h, dil_w) >= 1
            and min(pad_h, pad_w) >= 0
        )
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    geom = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w) if ok else ()
    if not ok:
        raw = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
        _check("conv2d_backward", (X, None, dY, geom, dX, need_dx, None, ws), db, dW, Wt, raw)
    _fill_w2b(Wt, db, ws.W2b)
    ws.W2b[:, K] = 0  # bias column 0: dcols' last row is 0
    keep = ws.kept.shape[0] >= n
    args = (X, ws.W2b, dY, geom, dX, need_dx, ws.cols, ws.kept, keep, ws.dW_chunks, chunk)
    run_blocks(_backward_block, args, ws.cols.shape[0], _backward_types)
    _sum_chunks(ws.dW_chunks, n_chunks, dW.reshape(F, K), db)


@internal
def _backward_block(t, packed, args_type):
    """Slot t of :func:`conv2d_backward`."""
    X, W2b, dY, geom, dX, need_dx, cols, kept, keep, dW_chunks, chunk = unpack(packed, args_type)
    kh, kw, sh, sw, ph, pw, dh, dw = geom
    n_slots = cols.shape[0]
    _backward_slot(
        X,
        W2b,
        dY,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        dh,
        dw,
        dX,
        need_dx,
        cols[t],
        kept,
        keep,
        dW_chunks,
        chunk,
        t,
        n_slots,
    )


@jit
def _sum_chunks(parts, n_chunks, W2, db):
    """The chunk sums (K + 1, F), [dW2.T; db], added in chunk order into W2 (F, K) and
    db (F,)."""
    K1, F = parts.shape[1], parts.shape[2]
    K = K1 - 1
    for k in range(K + 1):
        uk = _u(k)
        for f in range(F):
            uf = _u(f)
            acc = parts[0, uk, uf] if n_chunks > 0 else 0
            for c in range(1, n_chunks):
                acc += parts[_u(c), uk, uf]
            if k < K:
                W2[uf, uk] = acc
            else:
                db[uf] = acc


@jit
def _backward_slot(
    X,
    W2b,
    dY,
    kh,
    kw,
    sh,
    sw,
    ph,
    pw,
    dh,
    dw,
    dX,
    need_dx,
    cols,
    kept,
    keep,
    dW_chunks,
    chunk,
    t,
    n_slots,
):
    """Slot t of :func:`conv2d_backward`: chunks t, t + n_slots, ..., samples in order.

    dW_chunks[ch] (K + 1, F) = sum_s cols_s @ dY_s.T (its last row, cols' row of ones
    against dY_s, is db's partial sum).
    """
    n = X.shape[0]
    F = W2b.shape[0]
    Ho, Wo = dY.shape[2], dY.shape[3]
    P = Ho * Wo
    n_chunks = (n + chunk - 1) // chunk
    for ch in range(t, n_chunks, n_slots):
        dWc = dW_chunks[ch]
        s0 = ch * chunk
        for s in range(s0, min(n, s0 + chunk)):
            if keep:
                cs = kept[s]
            else:
                cs = cols
                _im2col_sample(X, s, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, cs)
            dYs = dY[s].reshape(F, P)
            # dWc[k, f] (+)= sum_u cs[k, u] dYs[f, u]: BLAS accumulates (beta = 1)
            gemm(cs, dYs.T, dWc, 1.0, 0.0 if s == s0 else 1.0)
            if need_dx:
                # dcols = W2.T @ dYs over this sample's cols (its last row, 0, unused)
                gemm(W2b.T, dYs, cols)
                _col2im_sample(cols, s, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, dX)


# --------------------------------------------------------------------------------------
# conv1d: the 2-D kernels with H = 1
# --------------------------------------------------------------------------------------


def conv1d_forward(X, Wt, b, stride, pad, Y, ws, dilation=1):
    """Y = conv1d(X, Wt) + b, written into ``Y``.

    X (n, C, L), Wt (F, C, k), b (F,), Y (n, F, Lo) overwritten with
    Y[s, f, i] = b[f] + sum_{c, q} Wt[f, c, q] * Xpad[s, c, i*stride + q*dilation],
    Xpad[s, c, x] = X[s, c, x - pad] inside X, 0 outside (left padding ``pad``; the right
    padding is implied by Lo). ``ws`` from :func:`conv1d_workspace`.

    A plain-Python view change around :func:`conv2d_forward` on (n, C, 1, L): no second
    compiled kernel (a jitted wrapper would compile the parallel kernel again).
    """
    n, C, L = X.shape
    F, _, k = Wt.shape
    conv2d_forward(
        X.reshape(n, C, 1, L),
        Wt.reshape(F, C, 1, k),
        b,
        1,
        stride,
        0,
        pad,
        1,
        dilation,
        Y.reshape(n, F, 1, Y.shape[2]),
        ws,
    )


def conv1d_backward(X, Wt, dY, stride, pad, dW, db, dX, need_dx, ws, dilation=1):
    """Gradients of conv1d: overwrite dW (F, C, k), db (F,) and, if ``need_dx``,
    dX (n, C, L). :func:`conv2d_backward` on (n, C, 1, L), as for :func:`conv1d_forward`."""
    n, C, L = X.shape
    F, _, k = Wt.shape
    conv2d_backward(
        X.reshape(n, C, 1, L),
        Wt.reshape(F, C, 1, k),
        dY.reshape(n, F, 1, dY.shape[2]),
        1,
        stride,
        0,
        pad,
        1,
        dilation,
        dW.reshape(F, C, 1, k),
        db,
        dX[:, :, None, :],
        need_dx,
        ws,
    )
