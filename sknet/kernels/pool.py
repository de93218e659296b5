"""Max and average pooling, 2-D (n, C, H, W) and 1-D (n, C, L), forward and backward.

No padding; the caller decides the output size, normally the floor one
``Ho = (H - kh) // sh + 1`` (the layer's stride defaults to the pool size, the kernels
take it explicitly). With pool size (kh, kw) and stride (sh, sw)::

    max:  Y[s, c, i, j] = max_{p < kh, q < kw} X[s, c, i*sh + p, j*sw + q]
          A[s, c, i, j] = y*W + x of that maximum (the first one in (p, q) order on ties)
          dX[s, c, y, x] = sum over (i, j) with A[s, c, i, j] = y*W + x of dY[s, c, i, j]
    avg:  Y[s, c, i, j] = sum_{p, q} X[s, c, i*sh + p, j*sw + q] / (kh*kw)
          dX[s, c, y, x] = sum over windows (i, j) containing (y, x) of dY[s, c, i, j] / (kh*kw)

Overlapping windows (stride < size) accumulate into dX in a fixed (i, j) order.
The 1-D functions are the 2-D kernels on (n, C, 1, L) views.

Fast paths: the ConvNets' windows, 2 x 2 stride 2 (and 1 x 2 stride 2 of the 1-D
wrappers), run max and average forward and average backward as one counted loop over j
per output row, with unsigned indices and the per-window arithmetic written out in the
(p, q) order of the generic loop, so LLVM vectorises it (stride-2 loads/stores) and the
results are bit-identical to the generic loop's (same comparisons, ties, NaN handling and
float64 sums). On a LeNet-like batch (128, 16, 24, 24) float32 this took max pooling
forward from ~1.37 to ~0.15 ms. Max backward keeps its zero-fill and scatter (a one-pass
select-and-store version measured 2-4x slower), on flat views: one zero-fill for the
batch, then the scatter plane by plane. Max forward on flat views too; for output rows
shorter than ``SHORT_ROWS`` (the 8x8 digits network's 4 x 4 and 2 x 2 maps) one scalar
loop over all outputs replaces the loop per row (whose vector-loop entry cost more than
its 2-4 outputs: ~54 -> ~22 us on (128, 32, 4, 4), ~51 -> ~40 us on (128, 16, 8, 8)).
The fast paths are kernels of their own (max: 2 x 2 long rows, 2 x 2 short rows, 1 x 2;
average: one per direction), chosen in Python: a network compiles only the loops its
windows use (the
fast path inside the generic kernel took maxpool2d_forward's cold compile from ~0.3 to
~1 CPU s).

Every kernel here is serial (``jit``, no ``prange``): pooling is memory-bound and cheap
next to the convolutions around it (a LeNet max pooling of 128 x 6 x 28 x 28 float64
values takes ~0.7 ms forward, ~0.1 ms backward on one core), so a second thread saves
little, while a parallel kernel costs ~1.5 s more to compile than a serial one, and on a
shared machine a parallel step waits for the busiest core. Serial kernels are trivially
bit-identical across thread counts.

Global pooling reduces each channel to one value, over X viewed as (n, C, L) (a 2-D input
(n, C, H, W) is passed as its view X.reshape(n, C, H*W), and argmax is then y*W + x)::

    avg:  Y[s, c] = sum_l X[s, c, l] / L        dX[s, c, l] = dY[s, c] / L
    max:  Y[s, c] = max_l X[s, c, l]            A[s, c] = first l of that maximum
          dX[s, c, l] = dY[s, c] if l = A[s, c] else 0

The average is summed in float64 (for float32 too) by a ``jit_reduce`` helper: the
compiler may reassociate the sum to vectorise it, in one order fixed when the kernel is
compiled.
"""

import numpy as np
from numba import uint64

from sknet._config import jit

from .blocks import row_sum

__all__ = [
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "maxpool1d_forward",
    "maxpool1d_backward",
    "avgpool1d_forward",
    "avgpool1d_backward",
    "global_avgpool_forward",
    "global_avgpool_backward",
    "global_maxpool_forward",
    "global_maxpool_backward",
]


def _pair_window(pool_h, pool_w, stride_h, stride_w):
    """True for the fast paths' windows: 2 x 2 stride 2, or 1 x 2 stride (1, 2)."""
    return pool_w == 2 and stride_w == 2 and pool_h == stride_h and (pool_h == 1 or pool_h == 2)


def _c_contiguous(*arrays):
    return all(a.flags.c_contiguous for a in arrays)


def maxpool2d_forward(X, pool_h, pool_w, stride_h, stride_w, Y, argmax):
    """Max pooling; overwrite ``Y`` and ``argmax``.

    X : (n, C, H, W) float32 / float64.
    Y : (n, C, Ho, Wo), same dtype, overwritten with the window maxima.
    argmax : (n, C, Ho, Wo) int32, overwritten with y*W + x of each maximum in its
        (H, W) plane, for :func:`maxpool2d_backward`.

    The fast paths (2 x 2 stride 2, 1 x 2 stride (1, 2)) are kernels of their own,
    chosen here: a network compiles only the one it uses (the generic loop and the fast
    path in one kernel cost ~0.7 s more cold compile). They take flat views of
    C-contiguous arrays (other layouts go to the generic loop, the same bits).
    """
    if (
        _pair_window(pool_h, pool_w, stride_h, stride_w)
        and _c_contiguous(X, Y, argmax)
        and X.ndim == 4
        and Y.shape == argmax.shape == X.shape[:2] + Y.shape[2:]
        and Y.shape[2] * pool_h <= X.shape[2]
        and Y.shape[3] * 2 <= X.shape[3]
    ):
        n, C, H, W = X.shape
        Ho, Wo = Y.shape[2], Y.shape[3]
        if pool_h == 1:
            fast = _maxpool_1x2_forward
        elif Wo < SHORT_ROWS:
            fast = _maxpool_2x2_short_forward
        else:
            fast = _maxpool_2x2_forward
        fast(X.reshape(-1), Y.reshape(-1), argmax.reshape(-1), n * C, H, W, Ho, Wo)
    else:
        _maxpool2d_forward(X, pool_h, pool_w, stride_h, stride_w, Y, argmax)


# The fast paths index flat views with offsets cast to unsigned (``_u``) where they
# index: no array views per row (each view of a row took a reference count in and out,
# ~80 us a call on the digits network's 8192 rows of 4 or 2 outputs; ~10 us without), and
# no negative-index wraparound tests.
_u = uint64


@jit
def _maxpool_2x2_forward(x, y, a, planes, H, W, Ho, Wo):
    """:func:`maxpool2d_forward` with 2 x 2 windows, stride 2, on flat views of X, Y and
    argmax (``planes`` = n*C planes of H x W and Ho x Wo): the compare/select chain
    written out in (p, q) order."""
    one = np.int32(1)
    zero = np.int32(0)
    w0 = np.int32(W)
    w1 = np.int32(W + 1)
    for pl in range(planes):
        for i in range(Ho):
            r0 = (pl * H + 2 * i) * W
            r1 = r0 + W
            o = (pl * Ho + i) * Wo
            base = np.int32(2 * i * W)
            for j in range(Wo):
                a_ = x[_u(r0 + 2 * j)]
                b = x[_u(r0 + 2 * j + 1)]
                d = x[_u(r1 + 2 * j)]
                e = x[_u(r1 + 2 * j + 1)]
                g1 = b > a_
                m1 = b if g1 else a_
                k1 = one if g1 else zero
                g2 = d > m1
                m2 = d if g2 else m1
                k2 = w0 if g2 else k1
                g3 = e > m2
                y[_u(o + j)] = e if g3 else m2
                a[_u(o + j)] = base + np.int32(2 * j) + (w1 if g3 else k2)


#: Output rows shorter than this take the 2 x 2 path's one loop over all outputs.
SHORT_ROWS = 8


@jit
def _maxpool_2x2_short_forward(x, y, a, planes, H, W, Ho, Wo):
    """:func:`_maxpool_2x2_forward` for short output rows (Wo < ``SHORT_ROWS``): one
    scalar loop over all planes*Ho*Wo outputs, (plane, row, column) kept as counters.
    A loop per row of 2 or 4 outputs paid its vector loop's entry tests per row (the
    8x8 digits network's pools: ~3 ns an output on 2 x 2 maps, ~1.4 on 4 x 4; this
    loop ~1.2 on both; rows of 12 and more run ~2x faster vectorised, hence the row
    loop for them). The same comparisons in the same order: the same bits."""
    w0 = np.int32(W)
    w1 = np.int32(W + 1)
    j = 0
    i = 0
    r0 = 0  # the top row of the window (flat offset)
    plane = 0  # the plane's first value
    base = np.int32(0)  # the top row's y*W in the plane
    for o in range(planes * Ho * Wo):
        a_ = x[_u(r0 + 2 * j)]
        b = x[_u(r0 + 2 * j + 1)]
        d = x[_u(r0 + W + 2 * j)]
        e = x[_u(r0 + W + 2 * j + 1)]
        g1 = b > a_
        m1 = b if g1 else a_
        g2 = d > m1
        m2 = d if g2 else m1
        g3 = e > m2
        y[_u(o)] = e if g3 else m2
        k = np.int32(g1)
        k = w0 if g2 else k
        k = w1 if g3 else k
        a[_u(o)] = base + np.int32(2 * j) + k
        j += 1
        if j == Wo:
            j = 0
            i += 1
            r0 += 2 * W
            base += np.int32(2 * W)
            if i == Ho:
                i = 0
                plane += H * W
                r0 = plane
                base = np.int32(0)


@jit
def _maxpool_1x2_forward(x, y, a, planes, H, W, Ho, Wo):
    """:func:`maxpool2d_forward` with 1 x 2 windows, stride (1, 2) (the 1-D wrappers'
    pairs), written as the 2 x 2 path."""
    one = np.int32(1)
    zero = np.int32(0)
    for pl in range(planes):
        for i in range(Ho):
            r0 = (pl * H + i) * W
            o = (pl * Ho + i) * Wo
            base = np.int32(i * W)
            for j in range(Wo):
                a_ = x[_u(r0 + 2 * j)]
                b = x[_u(r0 + 2 * j + 1)]
                g1 = b > a_
                y[_u(o + j)] = b if g1 else a_
                a[_u(o + j)] = base + np.int32(2 * j) + (one if g1 else zero)


@jit
def _maxpool2d_forward(X, pool_h, pool_w, stride_h, stride_w, Y, argmax):
    """:func:`maxpool2d_forward`, any window: the generic loop."""
    n, C, H, W = X.shape
    Ho, Wo = Y.shape[2], Y.shape[3]
    for s in range(n):
        for c in range(C):
            xs = X[s, c]
            for i in range(Ho):
                y0 = i * stride_h
                for j in range(Wo):
                    x0 = j * stride_w
                    best = xs[y0, x0]
                    arg = y0 * W + x0
                    for p in range(pool_h):
                        xr = xs[y0 + p]
                        for q in range(pool_w):
                            v = xr[x0 + q]
                            # branch-free update (random data mispredicts a branch)
                            gt = v > best
                            best = v if gt else best
                            arg = (y0 + p) * W + x0 + q if gt else arg
                    Y[s, c, i, j] = best
                    argmax[s, c, i, j] = arg


def maxpool2d_backward(dY, argmax, dX):
    """Overwrite dX (n, C, H, W) with dX[s, c].flat[argmax[s, c, i, j]] += dY[s, c, i, j].

    dY, argmax : (n, C, Ho, Wo); argmax as written by :func:`maxpool2d_forward`.
    One kernel on flat views (other layouts go through C-contiguous copies).
    """
    n, C, H, W = dX.shape
    if dY.shape != argmax.shape or dY.shape[:2] != (n, C):
        raise ValueError("maxpool2d_backward: dY, argmax and dX do not fit together")
    if _c_contiguous(dX):
        _maxpool_backward(
            np.ascontiguousarray(dY).reshape(-1),
            np.ascontiguousarray(argmax).reshape(-1),
            dX.reshape(-1),
            n * C,
            H * W,
        )
    else:
        out = np.empty(dX.shape, dX.dtype)
        maxpool2d_backward(dY, argmax, out)
        dX[...] = out


@jit
def _maxpool_backward(dy, a, dx, planes, HW):
    """:func:`maxpool2d_backward` on flat views: dx = 0, then plane by plane
    dx[plane*HW + a[o]] += dy[o] in the order of o (one zero-fill for the whole batch:
    small planes paid a call each)."""
    zero = dx.dtype.type(0)
    for t in range(dx.size):
        dx[_u(t)] = zero
    P = dy.size // planes if planes > 0 else 0
    for pl in range(planes):
        xo = pl * HW
        for o in range(pl * P, pl * P + P):
            dx[_u(xo + a[_u(o)])] += dy[_u(o)]


def avgpool2d_forward(X, pool_h, pool_w, stride_h, stride_w, Y):
    """Average pooling; overwrite Y (n, C, Ho, Wo) with the window means of X (n, C, H, W).

    Each window is summed in float64 from 0.0 in (p, q) order, then scaled. The fast
    path (2 x 2 stride 2, 1 x 2 stride (1, 2)) is a kernel of its own, chosen here.
    """
    if _pair_window(pool_h, pool_w, stride_h, stride_w):
        _avgpool_pairs_forward(X, pool_h, Y)
    else:
        _avgpool2d_forward(X, pool_h, pool_w, stride_h, stride_w, Y)


@jit
def _avgpool_pairs_forward(X, pool_h, Y):
    """:func:`avgpool2d_forward` with pool_h x 2 windows, stride (pool_h, 2), pool_h 1
    or 2: one counted loop over j per output row (LLVM vectorises it), the same sums."""
    n, C, H, W = X.shape
    Ho, Wo = Y.shape[2], Y.shape[3]
    scale = 1.0 / (pool_h * 2)
    nj = uint64(Wo)
    for s in range(n):
        for c in range(C):
            for i in range(Ho):
                yr = Y[s, c, i]
                if pool_h == 1:
                    xr0 = X[s, c, i]
                    for j in range(nj):
                        yr[j] = (0.0 + xr0[2 * j] + xr0[2 * j + 1]) * scale
                else:
                    xr0 = X[s, c, 2 * i]
                    xr1 = X[s, c, 2 * i + 1]
                    for j in range(nj):
                        acc = 0.0 + xr0[2 * j] + xr0[2 * j + 1] + xr1[2 * j] + xr1[2 * j + 1]
                        yr[j] = acc * scale


@jit
def _avgpool2d_forward(X, pool_h, pool_w, stride_h, stride_w, Y):
    """:func:`avgpool2d_forward`, any window: the generic loop."""
    n, C, H, W = X.shape
    Ho, Wo = Y.shape[2], Y.shape[3]
    scale = 1.0 / (pool_h * pool_w)
    for s in range(n):
        for c in range(C):
            xs = X[s, c]
            for i in range(Ho):
                y0 = i * stride_h
                for j in range(Wo):
                    x0 = j * stride_w
                    acc = 0.0
                    for p in range(pool_h):
                        xr = xs[y0 + p]
                        for q in range(pool_w):
                            acc += xr[x0 + q]
                    Y[s, c, i, j] = acc * scale


def avgpool2d_backward(dY, pool_h, pool_w, stride_h, stride_w, dX):
    """Overwrite dX (n, C, H, W): each dY[s, c, i, j] / (kh*kw) is added to its window.
    The fast path (2 x 2 stride 2, 1 x 2 stride (1, 2)) is a kernel of its own."""
    if _pair_window(pool_h, pool_w, stride_h, stride_w):
        _avgpool_pairs_backward(dY, pool_h, dX)
    else:
        _avgpool2d_backward(dY, pool_h, pool_w, stride_h, stride_w, dX)


@jit
def _avgpool_pairs_backward(dY, pool_h, dX):
    """:func:`avgpool2d_backward` with pool_h x 2 windows, stride (pool_h, 2): disjoint
    windows, so each covered element is 0 + its one share, the rest 0."""
    n, C, Ho, Wo = dY.shape
    H, W = dX.shape[2], dX.shape[3]
    scale = 1.0 / (pool_h * 2)
    nj = uint64(Wo)
    for s in range(n):
        for c in range(C):
            for i in range(Ho):
                gr = dY[s, c, i]
                for p in range(pool_h):
                    dr = dX[s, c, pool_h * i + p]
                    for j in range(nj):
                        g = 0.0 + gr[j] * scale
                        dr[2 * j] = g
                        dr[2 * j + 1] = g
                    for x in range(2 * Wo, W):
                        dr[x] = 0.0
            for y in range(pool_h * Ho, H):
                dr = dX[s, c, y]
                for x in range(W):
                    dr[x] = 0.0


@jit
def _avgpool2d_backward(dY, pool_h, pool_w, stride_h, stride_w, dX):
    """:func:`avgpool2d_backward`, any window: the generic loop."""
    n, C, Ho, Wo = dY.shape
    scale = 1.0 / (pool_h * pool_w)
    for s in range(n):
        for c in range(C):
            d = dX[s, c]
            d[:] = 0
            for i in range(Ho):
                y0 = i * stride_h
                for j in range(Wo):
                    x0 = j * stride_w
                    g = dY[s, c, i, j] * scale
                    for p in range(pool_h):
                        dr = d[y0 + p]
                        for q in range(pool_w):
                            dr[x0 + q] += g


# 1-D: plain-Python view changes around the 2-D kernels on (n, C, 1, L) (a jitted wrapper
# would compile the kernel a second time) -------------------------------------------------


def maxpool1d_forward(X, pool, stride, Y, argmax):
    """Max pooling over the last axis: X (n, C, L) -> Y, argmax (n, C, Lo) (argmax: x)."""
    maxpool2d_forward(X[:, :, None, :], 1, pool, 1, stride, Y[:, :, None, :], argmax[:, :, None, :])


def maxpool1d_backward(dY, argmax, dX):
    """Overwrite dX (n, C, L) from dY, argmax (n, C, Lo)."""
    maxpool2d_backward(dY[:, :, None, :], argmax[:, :, None, :], dX[:, :, None, :])


def avgpool1d_forward(X, pool, stride, Y):
    """Average pooling over the last axis: X (n, C, L) -> Y (n, C, Lo)."""
    avgpool2d_forward(X[:, :, None, :], 1, pool, 1, stride, Y[:, :, None, :])


def avgpool1d_backward(dY, pool, stride, dX):
    """Overwrite dX (n, C, L) from dY (n, C, Lo)."""
    avgpool2d_backward(dY[:, :, None, :], 1, pool, 1, stride, dX[:, :, None, :])


# global pooling over (n, C, L) --------------------------------------------------------


@jit
def global_avgpool_forward(X, Y):
    """Y[s, c] = mean_l X[s, c, l]; overwrite Y.

    X : (n, C, L) float32 / float64, C-contiguous (2-D: X.reshape(n, C, H*W)).
    Y : (n, C), same dtype.
    """
    n, C, L = X.shape
    for s in range(n):
        for c in range(C):
            Y[s, c] = row_sum(X[s, c]) / L


@jit
def global_avgpool_backward(dY, dX):
    """Overwrite dX (n, C, L) with dX[s, c, l] = dY[s, c] / L. dY : (n, C)."""
    n, C, L = dX.shape
    for s in range(n):
        for c in range(C):
            g = dY[s, c] / L
            d = dX[s, c]
            for t in range(L):
                d[t] = g


@jit
def global_maxpool_forward(X, Y, argmax):
    """Y[s, c] = max_l X[s, c, l]; overwrite ``Y`` and ``argmax``.

    X : (n, C, L) float32 / float64, C-contiguous, L >= 1 (2-D: X.reshape(n, C, H*W)).
    Y : (n, C), same dtype.
    argmax : (n, C) int32, overwritten with the first l of each maximum (y*W + x in 2-D),
        for :func:`global_maxpool_backward`.
    """
    n, C, L = X.shape
    for s in range(n):
        for c in range(C):
            x = X[s, c]
            best = x[0]
            arg = 0
            for t in range(1, L):
                v = x[t]
                gt = v > best  # strict: the first maximum wins ties
                best = v if gt else best
                arg = t if gt else arg
            Y[s, c] = best
            argmax[s, c] = arg


@jit
def global_maxpool_backward(dY, argmax, dX):
    """Overwrite dX (n, C, L): dY[s, c] at l = argmax[s, c], zero elsewhere.

    dY, argmax : (n, C); argmax as written by :func:`global_maxpool_forward`.
    """
    n, C, L = dX.shape
    for s in range(n):
        for c in range(C):
            d = dX[s, c]
            d[:] = 0
            d[argmax[s, c]] = dY[s, c]
