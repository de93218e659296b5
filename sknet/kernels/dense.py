"""Fully connected layer: forward and backward.

Shapes: X (n, d) inputs, W (d, k) weights, b (k,) bias, A (n, k) activations.

Forward::

    Z = X W + b          (GEMM through BLAS: np.dot into a preallocated buffer)
    A = f(Z)             (activation code, see kernels.activations)

Backward, given dA = dL/dA (n, k), overwritten in place by dZ::

    dZ = dA * f'(A)
    dW = X^T dZ          (d, k)
    db = sum_i dZ_i      (k,)
    dX = dZ W^T          (n, d)   only when the layer below needs it

The GEMMs of inference and of sparse input stay in the caller (``np.dot(..., out=...)``
or a sparse product), around the fused element-wise passes ``bias_activation_forward``
and ``activation_backward_bias_grad``.

Training on dense input goes through ``dense_forward_parallel`` and
``dense_backward_parallel``: the same arithmetic, with the products and the element-wise
passes cut into ``PARTS`` fixed blocks run in ``prange`` (forward: row blocks of the
batch; backward: column blocks of dZ for dZ, db and dW, then row blocks for dX), each
block a single-threaded BLAS call (``blas.gemm``; callers keep BLAS on one thread, as
for the convolutions). One thread pool (numba's) then runs the whole step, instead of
OpenBLAS's threads for the products and numba's or none for the rest, and the blocks
never overlap, so nothing is summed across blocks. The partition is a constant of the
source, not the thread count, so results are bit-identical whatever the thread count
(not bit-identical to the unblocked products: BLAS rounds blocks differently).
"""

import numba
import numpy as np

from .._config import jit, jit_parallel
from .activations import LOGISTIC, RELU, TANH
from .blas import gemm

#: fixed number of row / column blocks of the parallel training kernels (two cores on
#: the project machine; more blocks made each product slower: smaller GEMMs)
PARTS = 2


@jit
def bias_activation_forward(z, b, code):
    """``z = f(z + b)`` in place. z (n, k) C-contiguous, b (k,)."""
    n, k = z.shape
    if code == RELU:
        for i in range(n):
            for j in range(k):
                v = z[i, j] + b[j]
                z[i, j] = v if v > 0.0 else 0.0
    elif code == TANH:
        for i in range(n):
            for j in range(k):
                z[i, j] = np.tanh(z[i, j] + b[j])
    elif code == LOGISTIC:
        for i in range(n):
            for j in range(k):
                z[i, j] = 1.0 / (1.0 + np.exp(-(z[i, j] + b[j])))
    else:
        for i in range(n):
            for j in range(k):
                z[i, j] += b[j]


@jit
def activation_backward_bias_grad(a, delta, code, db):
    """``delta *= f'(a)`` in place, then ``db = sum_i delta_i``.

    a, delta (n, k); db (k,) overwritten. f' is expressed through the output a.
    """
    n, k = a.shape
    for j in range(k):
        db[j] = 0.0
    for i in range(n):
        if code == RELU:
            for j in range(k):
                if a[i, j] <= 0.0:
                    delta[i, j] = 0.0
        elif code == TANH:
            for j in range(k):
                delta[i, j] *= 1.0 - a[i, j] * a[i, j]
        elif code == LOGISTIC:
            for j in range(k):
                delta[i, j] *= a[i, j] * (1.0 - a[i, j])
        for j in range(k):
            db[j] += delta[i, j]


@jit
def take_rows(x, idx, out):
    """``out[i] = x[idx[i]]``: the rows ``idx`` (int64) of the 2-D C-contiguous ``x``
    into the C-contiguous ``out`` (len(idx), d) (a mini-batch gather without numpy's
    fancy-indexing allocation). An index outside ``[0, len(x))`` raises IndexError."""
    n, d = x.shape
    for i in range(idx.shape[0]):
        r = idx[i]
        if r < 0 or r >= n:
            raise IndexError("take_rows: row index out of range")
        for j in range(d):
            out[i, j] = x[r, j]


@jit
def _part(p, n):
    """``[lo, hi)`` of block ``p`` of ``PARTS`` nearly equal blocks of ``range(n)``."""
    step = (n + PARTS - 1) // PARTS
    lo = min(p * step, n)
    return lo, min(lo + step, n)


@jit
def _forward_part(x, w, b, code, z, lo, hi):
    if lo < hi:
        gemm(x[lo:hi], w, z[lo:hi])
        bias_activation_forward(z[lo:hi], b, code)


@jit_parallel
def dense_forward_parallel(x, w, b, code, z):
    """``z = f(x w + b)``: x (n, d), w (d, k), b (k,), z (n, k) overwritten, all
    C-contiguous; in ``PARTS`` row blocks in parallel."""
    n = x.shape[0]
    for p in numba.prange(PARTS):
        lo, hi = _part(p, n)
        _forward_part(x, w, b, code, z, lo, hi)


@jit
def _grad_part(x, a, delta, code, dw, db, lo, hi):
    if lo < hi:
        activation_backward_bias_grad(a[:, lo:hi], delta[:, lo:hi], code, db[lo:hi])
        gemm(x.T, delta[:, lo:hi], dw[:, lo:hi])


@jit
def _dx_part(delta, w, dx, lo, hi):
    if lo < hi:
        gemm(delta[lo:hi], w.T, dx[lo:hi])


@jit_parallel
def dense_backward_parallel(x, w, a, delta, code, dw, db, dx, need_dx):
    """Backward of ``dense_forward_parallel`` given ``delta = dL/dA`` (n, k), which
    becomes dZ in place: ``dw = x^T dZ`` (d, k), ``db`` (k,) column sums, and with
    ``need_dx`` ``dx = dZ w^T`` (n, d). ``a`` (n, k) is the forward output; all arrays
    C-contiguous (``dx`` is not touched without ``need_dx``)."""
    k = delta.shape[1]
    for p in numba.prange(PARTS):
        lo, hi = _part(p, k)
        _grad_part(x, a, delta, code, dw, db, lo, hi)
    if need_dx:
        n = delta.shape[0]
        for p in numba.prange(PARTS):
            lo, hi = _part(p, n)
            _dx_part(delta, w, dx, lo, hi)
