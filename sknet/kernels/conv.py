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

How it is computed: im2col and matrix products of our own, parallel over groups of
samples. With K = C*kh*kw, P = Ho*Wo and the row index k = (c*kh + p)*kw + q, the im2col
matrix of sample s, with one more row of ones for the bias, is::

    cols[k, i*Wo + j] = Xpad[s, c, i*sh + p*dh, j*sw + q*dw],  cols[K, :] = 1   (K + 1, P)

Samples go in groups of G (``ws.group``, :func:`auto_group`: G*P about 256 columns,
e.g. G = 1 for LeNet's first layer, 4 for its second, 16 for the 8x8 digits network's
second; a function of the layer's shapes only), whose im2col matrices sit side by side
in one (K + 1, G*P) matrix cols_g: sample-major (sample s in columns s*P ... s*P + P - 1)
or, for small maps (``ws.minor``, :func:`auto_minor`: the 8x8 digits network's second
layer), sample-minor (position u of sample s in column u*G + s). The sample-minor
layout first transposes the group's input to (C, H, W, G) (``ws.xt``), so that im2col
and col2im copy each input row of the group as one contiguous run of (j1 - j0)*G values
instead of G runs of at most Wo values (4 on 4 x 4 maps: no vector loop covers them),
at the price of transposed copies into Y and out of dY (its conv forward + backward on
4 x 4 maps 20-30% faster). The layout changes the rounding of dW and db only (their sums
run over the columns); Y and dX are the same bits either way. With
W2b = [W.reshape(F, K) | b] (F, K + 1) and dY_g the group's dY gathered as (F, G*P)::

    Y_g = W2b @ cols_g     [dW2.T; db] += cols_g @ dY_g.T     dcols_g = W2.T @ dY_g -> col2im

(the bias is added inside the forward product and db is the last row of the
weight-gradient product: no separate bias or row-sum passes). The forward product goes
straight into Y[s] for a group of one, else into a slot buffer and then into Y. The
workspace pads K + 1 and F to multiples of 4 with zero rows and columns, so that the
products' inner loops need no remainder. (Fusing the layer's activation into the copies
into Y and out of dY, tried with BLAS products: no gain beyond the noise, and ~1.5 CPU s
more cold compile for the activation variants; the layer applies it with the activation
kernels the dense layers compile anyway.)

The products are ours (``kernels.product``, shared with the dense layers and the
recurrent cells: C = A @ B, blocks of 6 or 4 rows of C in register tiles over contiguous rows
of B and C, see its docstring; ``_mm_nt``: C (+)= A @ B.T, 4 x 4 blocks of register sums
over rows of A and B), compiled with floating-point contraction (FMAs) and, for
``_mm_nt``'s sums, reassociation, so that LLVM vectorises them at the machine's full
width. On the project machine (AMD Zen 5, AVX-512, OpenBLAS pinned to its Haswell
kernels by ``OPENBLAS_CORETYPE``) they ran these shapes 1.5-3x faster than ?gemm (e.g.
16 x 26 x 576, LeNet's first layer: ~170 vs ~60 GF/s; 32 x 401 x 256: ~150-190 vs ~80),
and were about as fast or faster on the FCN's larger 1-D layers (128-256 channels,
150-500 steps: 0.85-5x BLAS's speed in one loaded-machine run). Their order of
operations is fixed per compiled kernel: results do not depend on the thread count, but
differ from BLAS's in rounding.

One serial block function for both passes (``_conv_block``) runs in
parallel over workspace slots (one per thread) through
:func:`sknet.kernels.runner.run_blocks`, the parallel loop every kernel family shares
(no parallel kernel of the convolutions' own to compile). Slot t takes groups (forward)
or chunks of samples (backward) t, t + n_slots, ... and works in its own buffers.
Chunks are ``ws.chunk`` samples (a multiple of G); a chunk's dW and db are summed
serially over its groups into that chunk's own buffer, and the chunk buffers are added
after the parallel loop in chunk order. Neither the chunk size, nor G, nor any
summation order depends on the thread count, so results are bit-identical whatever it is.

im2col and col2im index with unsigned integers: numba then emits no negative-index
wraparound test, which LLVM could not remove from loops that start at a computed bound
and which kept those copy loops scalar (LeNet's second layer: im2col 3.7 ms per batch
of 128 with signed indices, 0.7 ms unsigned).

Measured alternatives (LeNet-like layers, on a shared and noisy machine): OpenBLAS ?gemm
per sample (the earlier algorithm) or per group: 60-90 GF/s at these shapes, where its
packing of the large operand and the narrow F = 16-32 side cost most; grouping samples
gained BLAS only 5-15%. Our product with its inner loop split by sample (writing each
sample's columns into Y directly, no copy) did not vectorise and was 5-10x slower: one
2-D product and a copy instead. Without contraction (the earlier hand-written loops)
LLVM emits separate multiplies and adds, about 3x slower than BLAS. Stride-1 copy loops
and hand-unrolled im2col copies gained nothing over the unsigned indices. One large
GEMM per chunk of samples, which BLAS threads itself, with ``prange`` only around im2col
and col2im, was slower (big im2col blocks leave the cache, and at 2 threads alternating
numba's and OpenBLAS's thread pools collapsed).
"""

import operator
from typing import NamedTuple

import numba
import numpy as np

from sknet.kernels.blocks import CHUNK
from sknet.kernels.product import mul, product_entry
from sknet.kernels.runner import call_entry, entry, internal, run_blocks, unpack

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

    With K = C*kh*kw, P = Ho*Wo, G = ``group`` samples per product, n_slots parallel
    slots (normally numba's thread count; any value >= 1 gives the same results),
    n_chunks >= ceil(batch / chunk), and K1 = K + 1 and F rounded up to multiples of 4
    (K4, F4: the products' inner dimensions, so that they need no remainder loop; the
    padding rows and columns are zeros):

    cols : (n_slots, K4, G*P); a slot's im2col matrix of a group of m <= G samples, its
        row K ones, rows after it zeros (its dcols in backward). Its columns are
        sample-major (sample s of the group in columns s*P ... s*P + P - 1) or, with
        ``minor``, sample-minor (position u of sample s in column u*m + s).
    out : (n_slots, F4, G*P); a slot's product for a group (forward, G > 1) and its
        gathered dY (backward); rows F ... F4 - 1 stay zero.
    W2b : (F, K4); [W.reshape(F, K) | b | 0] (forward).
    W2T : (K4, F4); [W.reshape(F, K).T; 0] with zero columns after F (backward).
    dW_chunks : (n_chunks, K4, F); per-chunk [dW2.T; db; 0] partial sums (backward only).
    chunk : int; samples per chunk, a multiple of ``group``.
    group : int; samples per GEMM (G).
    kept : (n_kept, K4, G*P); with n_kept > 0 (``keep_cols=True``), the forward pass
        writes the im2col matrix of each group g < n_kept (samples g*G ...) here and the
        backward pass reads it back instead of recomputing it. It ties a backward call
        to the last forward call on this workspace (same X); a batch larger than
        n_kept*G recomputes as usual.
    minor : bool; sample-minor columns (for G > 1; a group of one is the same either
        way). They change the rounding of dW and db only.
    xt : (n_slots, C*H*W*G) with ``minor``, else (n_slots, 0); a slot's group of input
        samples in the sample-minor layout, (C, H, W, G) (its dX in backward).
    """

    cols: np.ndarray
    out: np.ndarray
    kept: np.ndarray
    xt: np.ndarray
    W2b: np.ndarray
    W2T: np.ndarray
    dW_chunks: np.ndarray
    chunk: int
    group: int
    minor: bool


#: im2col columns (G*P) a GEMM's group of samples aims at, and the largest group.
GROUP_COLUMNS = 256
MAX_GROUP = 16


def auto_group(P):
    """Samples per GEMM for P output positions per sample: the largest power of two
    G <= MAX_GROUP with G*P <= GROUP_COLUMNS (at least 1). A function of the layer's
    shape only, never of the thread count."""
    g = 1
    while g < MAX_GROUP and 2 * g * P <= GROUP_COLUMNS:
        g *= 2
    return g


def auto_minor(in_channels, out_channels, kernel_size, in_size, out_size, group):
    """Sample-minor im2col columns for this layer? A function of its shapes only.

    The sample-minor layout copies each input row of a group as one contiguous run of
    (j1 - j0)*G values (im2col, col2im) instead of G runs of at most Wo, at the price of
    transposing the group's input, output and gradients (C*H*W + 2*F*P values per
    sample, C*H*W more backward) with scalar loops. Chosen for groups of several
    samples with output rows shorter than 8 values (runs no vector loop covers) and an
    im2col matrix (K*P values per sample) at least twice those transpositions: the 8x8
    digits network's second layer (4 x 4 maps, K*P = 2304 against 1536: its conv
    forward + backward 20-30% faster); not its first layer (8 x 8 maps, 576 against
    2176) nor LeNet's layers (8 x 8 and 24 x 24 maps; the second layer measured about
    the same either way).
    """
    kh, kw = kernel_size
    K = in_channels * kh * kw
    P = out_size[0] * out_size[1]
    moved = in_channels * in_size[0] * in_size[1] + out_channels * P
    return group > 1 and out_size[1] < 8 and K * P >= 2 * moved


def _round4(k):
    """k rounded up to a multiple of 4."""
    return (k + 3) // 4 * 4


def conv2d_workspace(
    in_channels,
    out_channels,
    kernel_size,
    out_size,
    max_batch,
    dtype,
    n_slots=None,
    chunk=None,
    keep_cols=False,
    group=None,
    in_size=None,
    minor=None,
):
    """Allocate the :class:`Conv2dWorkspace` of a 2-D convolution.

    ``kernel_size`` is (kh, kw), ``out_size`` is (Ho, Wo), ``max_batch`` the largest
    number of samples one call will get. ``n_slots`` defaults to numba's current thread
    count; results do not depend on it, nor on ``max_batch``. ``group`` (samples per
    GEMM) defaults to :func:`auto_group` of Ho*Wo; ``chunk`` (samples per weight-gradient
    partial sum) to the smallest multiple of the group >= ``CHUNK``. Given a ``chunk``,
    the group is the largest divisor of it not above that default. Both change the
    rounding only. ``keep_cols=True`` adds room for the im2col matrices of ``max_batch``
    samples (``kept``): backward then skips im2col, bit-identically, at the cost of
    about max_batch * (K + 1) * P values of memory. ``in_size`` (H, W), the input's
    size, sizes the sample-minor input buffers (``xt``) for any stride and dilation;
    without it they have room for stride 1 and dilation 1, and a call with a larger
    stride or dilation allocates its own. ``minor`` (the im2col columns' layout)
    defaults to :func:`auto_minor`; it changes the rounding of dW and db only.
    """
    kh, kw = kernel_size
    Ho, Wo = out_size
    K = in_channels * kh * kw
    P = Ho * Wo
    if n_slots is None:
        n_slots = numba.get_num_threads()
    cap = auto_group(P) if group is None else max(1, int(group))
    if chunk is None:
        chunk = -(-max(CHUNK, cap) // cap) * cap
        group = cap
    else:
        chunk = int(chunk)
        group = max(d for d in range(1, min(cap, chunk) + 1) if chunk % d == 0)
    n_chunks = max(1, -(-max_batch // chunk))
    n_kept = -(-max_batch // group) if keep_cols else 0
    K4, F4 = _round4(K + 1), _round4(out_channels)
    H, W = (Ho + kh - 1, Wo + kw - 1) if in_size is None else in_size  # >= at stride 1
    if minor is None:
        minor = auto_minor(in_channels, out_channels, kernel_size, (H, W), out_size, group)
    minor = bool(minor) and group > 1
    n_xt = in_channels * H * W * group if minor else 0
    return Conv2dWorkspace(
        cols=np.zeros((n_slots, K4, group * P), dtype=dtype),
        out=np.zeros((n_slots, F4, group * P), dtype=dtype),
        kept=np.zeros((n_kept, K4, group * P), dtype=dtype),
        xt=np.zeros((n_slots, n_xt), dtype=dtype),
        W2b=np.zeros((out_channels, K4), dtype=dtype),
        W2T=np.zeros((K4, F4), dtype=dtype),
        dW_chunks=np.zeros((n_chunks, K4, out_channels), dtype=dtype),
        chunk=chunk,
        group=group,
        minor=minor,
    )


def conv1d_workspace(
    in_channels,
    out_channels,
    kernel_size,
    out_size,
    max_batch,
    dtype,
    n_slots=None,
    chunk=None,
    keep_cols=False,
    group=None,
    in_size=None,
    minor=None,
):
    """Allocate the workspace of a 1-D convolution (``kernel_size`` k, ``out_size`` Lo,
    ``in_size`` L or None)."""
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
        group,
        None if in_size is None else (1, in_size),
        minor,
    )


# --------------------------------------------------------------------------------------
# helpers: valid index range, im2col / col2im of one sample, the fused activation
# --------------------------------------------------------------------------------------
# Indices below are cast to unsigned (``_u``) right where they index: numba then drops
# its negative-index wraparound test, which LLVM cannot remove when a loop starts at a
# computed bound and which kept these copy loops scalar (im2col of LeNet's second layer
# took ~8x longer with signed indices). Every value cast is a valid, non-negative index.
_u = numba.uint64

# The convolutions' own matrix products (``kernels.product``, ``_mm_nt``) are compiled
# with the kernels' flags and floating-point contraction: a*b + c becomes one FMA (one
# rounding instead of two). Deterministic (one fixed order of operations per compiled
# kernel, whatever the thread count); without it LLVM emits separate multiplies and
# adds, at half the speed. The weight gradient's sums (``_mm_nt``) also allow
# reassociation, so that they vectorise. Both are internal functions (no Python entry)
# called through their compiled entries.
# The other helpers here are internal too: only ``_conv_block`` calls them.


@internal(refcounts=False)
def _cols(flat, base, m, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, cols, col0, to_cols):
    """im2col (``to_cols``) or its adjoint col2im, for m samples of a group (one function
    for both: one compile, the same index arithmetic).

    im2col overwrites columns col0 ... col0 + m*P - 1 of ``cols`` (K4, >= col0 + m*P)
    with the im2col matrix of m samples, its columns position-major and sample-minor
    (P = Ho*Wo), its row of ones and zero rows up to K4. The group's input is ``flat``
    in the same sample-minor layout: value (c, y, x) of sample s at flat[base + ((c*H +
    y)*W + x)*m + s] (X's own memory for m = 1)::

        cols[(c*kh + p)*kw + q, col0 + (i*Wo + j)*m + s] = flat[.. c, i*sh + p*dh - ph,
                                                          j*sw + q*dw - pw, s ..],
        or 0 where that row or column is outside [0, H) x [0, W);
        cols[K, col0 ...] = 1; cols[K + 1 :, col0 ...] = 0.

    col2im overwrites the group's m samples in ``flat`` (that layout) with the adjoint
    applied to ``cols`` (dcols, from column col0)::

        flat[.. c, y, x, s ..] = sum of dcols[(c*kh + p)*kw + q, col0 + (i*Wo + j)*m + s]
                                 over i*sh + p*dh - ph = y, j*sw + q*dw - pw = x,

    added in the order of (p, q), whatever the layout (the same bits as sample by
    sample).

    Row by row (the tap (p, q) outer, its valid output rows [i0, i1) and columns
    [j0, j1), those whose input row / column is inside X, computed once); at stride 1 the
    columns of one output row are one contiguous run of (j1 - j0)*m values in both
    (8x8 digits network's second layer, 4 x 4 maps, groups of 16: ~8x faster than the
    sample-major layout's runs of at most Wo values, transposition included).
    """
    P = Ho * Wo
    N = m * P
    zero = cols.dtype.type(0)
    K = C * kh * kw
    if to_cols:
        for t in range(col0, col0 + N):  # the row of ones, the bias's
            cols[_u(K), _u(t)] = 1
        for k in range(K + 1, cols.shape[0]):  # padding rows (dcols may have left values)
            for t in range(col0, col0 + N):
                cols[_u(k), _u(t)] = zero
    else:
        for t in range(C * H * W * m):
            flat[_u(base + t)] = zero
    for p in range(kh):
        # output rows i whose input row i*sh + p*dh - ph is in [0, H)
        y0 = p * dh - ph
        i0 = 0 if y0 >= 0 else (sh - 1 - y0) // sh  # ceil(-y0 / sh)
        i1 = (H - 1 - y0) // sh + 1 if H - 1 - y0 >= 0 else 0
        i1 = Ho if i1 > Ho else i1
        i0 = i1 if i0 > i1 else i0
        for q in range(kw):
            x0 = q * dw - pw
            j0 = 0 if x0 >= 0 else (sw - 1 - x0) // sw
            j1 = (W - 1 - x0) // sw + 1 if W - 1 - x0 >= 0 else 0
            j1 = Wo if j1 > Wo else j1
            j0 = j1 if j0 > j1 else j0
            padded = i0 > 0 or i1 < Ho or j0 > 0 or j1 < Wo
            run = (j1 - j0) * m
            for c in range(C):
                k = _u((c * kh + p) * kw + q)
                if to_cols and padded:  # zero first
                    for t in range(col0, col0 + N):
                        cols[k, _u(t)] = zero
                for i in range(i0, i1):
                    d = col0 + (i * Wo + j0) * m
                    r = base + ((c * H + i * sh + y0) * W + j0 * sw + x0) * m
                    if sw == 1:
                        if to_cols:
                            for t in range(run):
                                cols[k, _u(d + t)] = flat[_u(r + t)]
                        else:
                            for t in range(run):
                                flat[_u(r + t)] += cols[k, _u(d + t)]
                    else:
                        for j in range(j1 - j0):
                            dj = d + j * m
                            rj = r + j * sw * m
                            if to_cols:
                                for s in range(m):
                                    cols[k, _u(dj + s)] = flat[_u(rj + s)]
                            else:
                                for s in range(m):
                                    flat[_u(rj + s)] += cols[k, _u(dj + s)]


@internal(refcounts=False, fastmath={"contract", "reassoc"})
def _mm_nt(A, B, C, L, acc):
    """C (M, N) = A[:, :L] @ B[:, :L].T, plus C's old value when ``acc``: A (M, >= L),
    B (N, >= L), both read along their rows (e.g. a group's im2col matrix and its dZ:
    the weight gradient [dW2.T; db] with no transposed copy).

    Blocks of 4 x 4 outputs, each 16 sums over l kept in registers; compiled with
    contraction (FMAs) and reassociation, so that LLVM vectorises the sums over l (one
    fixed order of additions per compiled kernel, whatever the thread count).
    """
    M, N = C.shape
    M4 = M - M % 4
    N4 = N - N % 4
    zero = C.dtype.type(0)
    for i in range(0, M4, 4):
        i0, i1, i2, i3 = _u(i), _u(i + 1), _u(i + 2), _u(i + 3)
        for j in range(0, N4, 4):
            j0, j1, j2, j3 = _u(j), _u(j + 1), _u(j + 2), _u(j + 3)
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = zero
            c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = zero
            for t in range(L):
                ut = _u(t)
                a0, a1, a2, a3 = A[i0, ut], A[i1, ut], A[i2, ut], A[i3, ut]
                b0, b1, b2, b3 = B[j0, ut], B[j1, ut], B[j2, ut], B[j3, ut]
                c00 += a0 * b0
                c01 += a0 * b1
                c02 += a0 * b2
                c03 += a0 * b3
                c10 += a1 * b0
                c11 += a1 * b1
                c12 += a1 * b2
                c13 += a1 * b3
                c20 += a2 * b0
                c21 += a2 * b1
                c22 += a2 * b2
                c23 += a2 * b3
                c30 += a3 * b0
                c31 += a3 * b1
                c32 += a3 * b2
                c33 += a3 * b3
            if acc:
                c00 += C[i0, j0]
                c01 += C[i0, j1]
                c02 += C[i0, j2]
                c03 += C[i0, j3]
                c10 += C[i1, j0]
                c11 += C[i1, j1]
                c12 += C[i1, j2]
                c13 += C[i1, j3]
                c20 += C[i2, j0]
                c21 += C[i2, j1]
                c22 += C[i2, j2]
                c23 += C[i2, j3]
                c30 += C[i3, j0]
                c31 += C[i3, j1]
                c32 += C[i3, j2]
                c33 += C[i3, j3]
            C[i0, j0] = c00
            C[i0, j1] = c01
            C[i0, j2] = c02
            C[i0, j3] = c03
            C[i1, j0] = c10
            C[i1, j1] = c11
            C[i1, j2] = c12
            C[i1, j3] = c13
            C[i2, j0] = c20
            C[i2, j1] = c21
            C[i2, j2] = c22
            C[i2, j3] = c23
            C[i3, j0] = c30
            C[i3, j1] = c31
            C[i3, j2] = c32
            C[i3, j3] = c33
    # the rest: rows M4 ... M - 1 against every column, columns N4 ... N - 1 above M4
    for i in range(M):
        ui = _u(i)
        for j in range(0 if i >= M4 else N4, N):
            uj = _u(j)
            c = zero
            for t in range(L):
                c += A[ui, _u(t)] * B[uj, _u(t)]
            C[ui, uj] = c + C[ui, uj] if acc else c


# --------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------


_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


_NO_PRODUCTS = ((0, 0),) * 3  # for arguments the type checks reject
_PRODUCTS = {}  # dtype -> entries of _mm and _mm_nt


def _products(dtype):
    """The entries (``runner.entry``) of ``_mm``, ``_mm_nt`` and ``_cols`` (im2col and
    col2im) for arrays of ``dtype``, as the block functions call them (C-contiguous views
    of the workspace, X, Y and dY). (Called through their entries, they are not optimised
    again inside the block: ~0.4 CPU s less cold compile for im2col and col2im.)"""
    found = _PRODUCTS.get(dtype)
    if found is None:
        if dtype not in _DTYPES:
            return _NO_PRODUCTS
        nb = numba.from_dtype(dtype)
        a2 = numba.types.Array(nb, 2, "C")
        i64, b1 = numba.types.int64, numba.types.boolean
        mm = product_entry(dtype)
        mm_nt = entry(_mm_nt, (a2, a2, a2, i64, b1))
        a1 = numba.types.Array(nb, 1, "C")
        cols = entry(_cols, (a1,) + (i64,) * 15 + (a2, i64, b1))
        found = _PRODUCTS[dtype] = (mm, mm_nt, cols)
    return found


def _check_types(args, name="conv2d kernels"):
    """TypeError / ValueError unless the packed arguments ``args`` of a convolution's
    block function (see ``_conv_block``) are of types the kernels take."""
    X, Wm, Y, geom, dX, need_dx, cols, out, kept, keep, dW_chunks, chunk, group = args[:13]
    minor, xt = args[13:15]
    dtype = getattr(X, "dtype", None)
    if dtype not in _DTYPES:
        raise TypeError(f"{name}: X must be a float32 or float64 ndarray")
    arrays = (("X", X, 4), ("Y / dY", Y, 4), ("dX", dX, 4), ("ws.W2b / ws.W2T", Wm, 2))
    arrays += (("ws.cols", cols, 3), ("ws.out", out, 3), ("ws.kept", kept, 3))
    arrays += (("ws.dW_chunks", dW_chunks, 3), ("ws.xt", xt, 2))
    for label, v, ndim in arrays:
        if not isinstance(v, np.ndarray) or v.ndim != ndim or v.dtype != dtype:
            raise TypeError(f"{name}: {label} must be a {ndim}-D {dtype} ndarray, as X")
        if not v.flags.c_contiguous:
            raise ValueError(f"{name}: {label} must be C-contiguous")
    if not isinstance(minor, bool):
        raise TypeError(f"{name}: ws.minor must be a bool")
    for v in geom + (chunk, group):
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
    (``args``: X, Y or dY, geometry, dX, need_dx, ws)."""
    X, Y, _, dX, need_dx, ws = args
    if not isinstance(ws, Conv2dWorkspace):
        raise TypeError(f"{name}: ws must be a Conv2dWorkspace (conv2d_workspace)")
    arrays = (("b / db", b, 1), ("Wt", Wt, 4)) + ((("dW", dW, 4),) if dW is not None else ())
    for label, v, ndim in arrays:
        if not isinstance(v, np.ndarray) or v.ndim != ndim:
            raise TypeError(f"{name}: {label} must be a {ndim}-D ndarray")
        if ndim == 4 and not v.flags.c_contiguous:
            raise ValueError(f"{name}: {label} must be C-contiguous")
    args = (X, ws.W2b, Y, raw, dX, need_dx, ws.cols, ws.out, ws.kept, True, ws.dW_chunks)
    _check_types(args + (0, 0, ws.minor, ws.xt), name)
    if min(raw[0], raw[1], raw[4], raw[5]) < 1 or min(raw[2], raw[3]) < 0:
        raise ValueError(f"{name}: strides and dilations must be >= 1, paddings >= 0")
    raise ValueError(  # the shapes
        f"{name}: the shapes of X, Wt, b / db, Y / dY, dW, dX and ws do not fit together"
        " (or ws has too few chunks for the batch)"
    )


def _xt(ws, X):
    """The slots' sample-minor input buffers (n_slots, >= C*H*W*G): ``ws.xt``, or, for
    an input larger than it has room for (a strided convolution whose workspace was
    made without ``in_size``), new ones."""
    xt = ws.xt
    if ws.minor:
        need = X.shape[1] * X.shape[2] * X.shape[3] * ws.group
        if xt.shape[1] < need:
            xt = np.zeros((xt.shape[0], need), dtype=xt.dtype)
    return xt


def _ws_fits(ws, K, F, P):
    """True when the workspace's buffers fit a convolution of these sizes."""
    GP = ws.group * P
    return (
        ws.group >= 1
        and ws.chunk % ws.group == 0
        and ws.cols.shape[1:] == (_round4(K + 1), GP)
        and ws.out.shape[1:] == (_round4(F), GP)
        and ws.kept.shape[1:] == (_round4(K + 1), GP)
        and ws.W2b.shape == (F, _round4(K + 1))
        and ws.W2T.shape == (_round4(K + 1), _round4(F))
        and ws.out.shape[0] == ws.cols.shape[0]
        and ws.xt.shape[0] == ws.cols.shape[0]
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
    ws : :class:`Conv2dWorkspace` for these shapes (``ws.cols``, ``ws.out``, ``ws.W2b``
        and ``ws.kept`` are used here).

    The slots run in parallel through ``runner.run_blocks`` (the parallel loop every
    kernel family shares), each in ``_conv_block``.
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
            and _ws_fits(ws, K, F, Y.shape[2] * Y.shape[3])
            and min(stride_h, stride_w, dil_h, dil_w) >= 1
            and min(pad_h, pad_w) >= 0
        )
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    geom = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w) if ok else ()
    if not ok:
        raw = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
        _check("conv2d_forward", (X, Y, geom, Y, False, ws), b, None, Wt, raw)
    _forward(X, Wt, b, geom, Y, ws)


def _forward(X, Wt, b, geom, Y, ws):
    """:func:`conv2d_forward` after its checks, ``geom`` = (kh, kw, sh, sw, ph, pw, dh,
    dw): for callers whose arguments fit by construction (the Conv layer: ~5 us less per
    call; the block function's argument types are still checked once per combination)."""
    _fill_w2b(Wt, b, ws.W2b)
    keep = ws.kept.shape[0] * ws.group >= X.shape[0]
    args = (X, ws.W2b, Y, geom, Y, False, ws.cols, ws.out, ws.kept, keep, ws.dW_chunks)
    args += (ws.chunk, ws.group, ws.minor, _xt(ws, X))
    args += (_products(getattr(X, "dtype", None)), True, 0, ws.W2T, ws.W2b.reshape(-1))
    run_blocks(_conv_block, args, ws.cols.shape[0], _forward_types)


# the convolution's block function (slots) takes the same packed arguments, forward and
# backward (one ``_pack`` signature and one block signature per dtype): (X, W2b (forward)
# or W2T (backward), Y or dY, (kh, kw, sh, sw, ph, pw, dh, dw), dX, need_dx, cols, out,
# kept, keep, dW_chunks, chunk, group, the entries of _mm and _mm_nt, forward). It does
# its slot's work itself (no serial slot function in between: numba optimises a callee's
# code again inside every caller); the products, the largest code, are called through
# their compiled entries (``runner.entry``): compiled once, not again in the block.


def _fill_w2b(Wt, b, W2b):
    """W2b[f, :K] = Wt[f].ravel(); W2b[f, K] = b[f] (its columns after K stay 0)."""
    F, K = W2b.shape[0], Wt[0].size
    W2b[:, :K] = Wt.reshape(F, K)
    W2b[:, K] = b


def _fill_w2t(Wt, W2T):
    """W2T[:K, :F] = Wt.reshape(F, K).T (its other rows and columns stay 0: dcols' row
    of the ones and padding rows come out 0)."""
    F = Wt.shape[0]
    K = Wt[0].size
    W2T[:K, :F] = Wt.reshape(F, K).T


#: ``sums`` of :func:`_conv_block`: add the weight-gradient chunk sums into dW and db
#: after the slot's own work (a single slot), or do only that.
SUM_AFTER, SUM_ONLY = 1, 2


@internal(refcounts=False)
def _conv_block(t, packed, args_type):
    """Slot t of :func:`conv2d_forward` (``forward`` True) or :func:`conv2d_backward`:
    one block function for both passes, so that the code they share (im2col, the
    unpacking) is compiled once.

    Forward: groups t, t + n_slots, ... of ``group`` samples, their im2col in cols[t]
    (in kept[g] when ``keep``), one product per group (``kernels.product``), straight into Y[s] for
    a group of one, else into out[t] and then into Y.

    Backward: chunks t, t + n_slots, ..., their groups of ``group`` samples in order.
    dY_g gathered into out[t] (F, G*P); dW_chunks[ch] (K + 1, F) = sum_g cols_g @ dY_g.T
    (its last row, cols' row of ones against dY_g, is db's partial sum); dcols_g = W2.T @
    dY_g into cols[t], then col2im sample by sample.

    ``sums`` (backward): ``SUM_AFTER``, the slot then adds the chunk sums into W2 (F, K)
    and db (F,), as :func:`_sum_chunks` (a single slot, which did all the chunks);
    ``SUM_ONLY``, it does only that (one block after the slots' run); 0, neither.
    """
    args = unpack(packed, args_type)
    X, Wm, Y, geom, dX, need_dx, cols_all, out_all, kept, keep = args[:10]
    dW_chunks, chunk, group, minor, xt_all, (mm, mm_nt, im2col) = args[10:16]
    forward, sums, W2, db = args[16:]
    kh, kw, sh, sw, ph, pw, dh, dw = geom
    n_slots = cols_all.shape[0]
    MW, KW = Wm.shape  # the products' (M, K): W2b forward, W2T backward
    cols = cols_all[t]
    xt = xt_all[t]
    out = out_all[t]
    n = X.shape[0]
    F = Y.shape[1]
    Ho, Wo = Y.shape[2], Y.shape[3]
    P = Ho * Wo
    Y3 = Y.reshape(n, F, P)  # Y (forward) or dY (backward)
    C, H, W = X.shape[1], X.shape[2], X.shape[3]
    CHW = C * H * W
    Xf = X.reshape(n * CHW)  # a sample's own memory is its sample-minor layout for m = 1
    dXf = dX.reshape(dX.size)
    unit = group if forward else chunk  # samples per slot task: a group, or a chunk
    n_units = (n + unit - 1) // unit
    for ch in range(t, n_units if sums != SUM_ONLY else 0, n_slots):
        s0 = ch * unit
        s1 = n if s0 + unit > n else s0 + unit  # (no min: one overload less to compile)
        for g0 in range(s0, s1, group):
            m = group if s1 - g0 > group else s1 - g0
            cs = kept[g0 // group] if keep else cols
            # sample-minor columns (u*m + s) from xt, or sample-major ones (s*P + u),
            # sample by sample from X's own memory (the same for a group of one)
            mi = minor and m > 1
            if mi:
                n_s, m_s, src, step, ccs, ccu = 1, m, xt, 0, 1, m
            else:
                n_s, m_s, src, step, ccs, ccu = m, 1, Xf, CHW, P, 1
            if forward or not keep:  # (one call site: numba would inline a second copy)
                if mi:  # xt[((c*H + y)*W + x)*m + s] = X[g0 + s, c, y, x]
                    for s in range(m):
                        xo = (g0 + s) * CHW
                        for r in range(CHW):
                            xt[_u(r * m + s)] = Xf[_u(xo + r)]
                base = 0 if mi else g0 * CHW
                for s in range(n_s):
                    args_i = (src, base + s * step, m_s, C, H, W) + geom
                    call_entry(im2col, args_i + (Ho, Wo, cs, s * P, True))
            if forward:
                # Y[g0 + i, f, u] = sum_k W2[f, k] cs[k, i*P + u] + b[f] * 1, straight
                # into Y for a group of one
                if m == 1:
                    dst, s_dst = Y3, g0
                else:
                    dst, s_dst = out_all, t  # out[t] (C layout, as Y3)
                ldc = dst.shape[2]
                ic = s_dst * dst.shape[1] * ldc
                mul(mm, Wm, 0, KW, False, cs, 0, cs.shape[1], dst, ic, ldc, MW, m * P, KW)
                if m > 1:  # Y3[g0 + s, f, u] = out[f, s*ccs + u*ccu]
                    for s in range(m):
                        us = _u(g0 + s)
                        for f in range(F):
                            uf = _u(f)
                            for u in range(P):
                                Y3[us, uf, _u(u)] = out[uf, _u(s * ccs + u * ccu)]
            else:
                dWc = dW_chunks[ch]
                for s in range(m):  # dY_g gathered: out[f, s*ccs + u*ccu] = dY3[g0 + s, f, u]
                    us = _u(g0 + s)
                    for f in range(F):
                        uf = _u(f)
                        for u in range(P):
                            out[uf, _u(s * ccs + u * ccu)] = Y3[us, uf, _u(u)]
                # dWc[k, f] (+)= sum_u cs[k, u] dY_g[f, u], dY_g = out[:, :m*P]
                call_entry(mm_nt, (cs, out, dWc, m * P, g0 != s0))
                if need_dx:
                    # dcols = W2.T @ dY_g into this slot's cols (its last row, 0, unused)
                    ldc = cols_all.shape[2]
                    ic = t * cols_all.shape[1] * ldc
                    ldb = out.shape[1]
                    mul(mm, Wm, 0, KW, False, out, 0, ldb, cols_all, ic, ldc, MW, m * P, KW)
                    dst = xt if mi else dXf
                    base = 0 if mi else g0 * CHW
                    for s in range(n_s):
                        args_c = (dst, base + s * step, m_s, C, H, W) + geom
                        call_entry(im2col, args_c + (Ho, Wo, cols, s * P, False))
                    if mi:  # dX[g0 + s, c, y, x] = xt[((c*H + y)*W + x)*m + s]
                        for s in range(m):
                            xo = (g0 + s) * CHW
                            for r in range(CHW):
                                dXf[_u(xo + r)] = xt[_u(r * m + s)]
    if sums != 0:
        # [dW2.T; db] = sum over chunks in chunk order, in float64 from -0.0 (the
        # exact identity), as _sum_chunks; +0.0 for no chunk
        K = W2.shape[1]
        for k in range(K + 1):
            for f in range(F):
                acc = -0.0 if n_units > 0 else 0.0
                for c in range(n_units):
                    acc += dW_chunks[c, k, f]
                if k < K:
                    W2[f, k] = acc
                else:
                    db[f] = acc


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

    [dW2.T; db] = sum over chunks, in chunk order, of (sum over the chunk's groups, in
    order, of cols_g @ dY_g.T); db is the row of ones' product. (The partial sums are
    kept transposed, (K + 1, F), so that row blocks stay contiguous.) The slots run in
    parallel through ``runner.run_blocks``, each in ``_conv_block``, which then adds the
    chunk sums into dW and db (the last slot's work for one slot, else one more block).
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
            and _ws_fits(ws, K, F, dY.shape[2] * dY.shape[3])
            and ws.dW_chunks.shape[1:] == (_round4(K + 1), F)
            and n_chunks <= ws.dW_chunks.shape[0]
            and min(stride_h, stride_w, dil_h, dil_w) >= 1
            and min(pad_h, pad_w) >= 0
        )
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    geom = (kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w) if ok else ()
    if not ok:
        raw = (stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
        _check("conv2d_backward", (X, dY, geom, dX, need_dx, ws), db, dW, Wt, raw)
    _backward(X, Wt, dY, geom, dW, db, dX, need_dx, ws)


def _backward(X, Wt, dY, geom, dW, db, dX, need_dx, ws):
    """:func:`conv2d_backward` after its checks (``need_dx`` a bool, ``dX`` = dY when it
    is False), as :func:`_forward`."""
    _fill_w2t(Wt, ws.W2T)
    n = X.shape[0]
    F = Wt.shape[0]
    K = Wt[0].size
    keep = ws.kept.shape[0] * ws.group >= n
    args = (X, ws.W2T, dY, geom, dX, need_dx, ws.cols, ws.out, ws.kept, keep, ws.dW_chunks)
    args += (ws.chunk, ws.group, ws.minor, _xt(ws, X), _products(getattr(X, "dtype", None)))
    n_slots = ws.cols.shape[0]
    W2 = dW.reshape(F, K)
    # the chunk sums in the block function (one slot: at the end of its work; several:
    # one more block after them), into dW and db of X's dtype (db C-contiguous); else
    # in NumPy
    compiled = (
        dW.dtype == X.dtype == db.dtype
        and db.flags.c_contiguous
        and dW.flags.writeable
        and db.flags.writeable
    )
    if compiled:
        tail = (False, SUM_AFTER if n_slots == 1 else 0, W2, db)
    else:
        tail = (False, 0, ws.W2T, ws.W2b.reshape(-1))
    run_blocks(_conv_block, args + tail, n_slots, _backward_types)
    if not compiled:
        _sum_chunks(ws.dW_chunks, (n + ws.chunk - 1) // ws.chunk, W2, db)
    elif n_slots > 1:
        run_blocks(_conv_block, args + (False, SUM_ONLY, W2, db), 1, _backward_types)


def _sum_chunks(parts, n_chunks, W2, db):
    """The chunk sums (K4, F), [dW2.T; db; 0], added in chunk order into W2 (F, K) and
    db (F,), in float64 (for float32 too), then rounded to their dtype.

    NumPy's reduction over the outer axis of a C-contiguous array adds element-wise, one
    chunk after the other (no pairwise summation: that is for the inner axis), so this
    is the loop ``acc = parts[0]; acc += parts[c] ...`` (a test checks it). The block
    function runs the same loop itself (``sums``; a compiled kernel of its own cost ~0.2
    CPU s of cold compile): ~25 us less per backward pass than this reduction on the 8x8
    digits network's second layer (its float32 -> float64 casts). This function remains
    for a db that is not C-contiguous or dW, db of another dtype than X."""
    K = W2.shape[1]
    if n_chunks == 0:
        acc = np.zeros(parts.shape[1:])
    else:  # from -0.0, the exact identity (from 0.0, a sum of -0.0s would come out +0.0)
        acc = np.add.reduce(parts[:n_chunks], axis=0, dtype=np.float64, initial=-0.0)
    W2[...] = acc[:K].T
    db[...] = acc[K]


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
