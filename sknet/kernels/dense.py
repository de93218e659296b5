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

Dense input (training and inference) runs the products through ``dense_blocks``: a
product of at least ``BLOCK_MIN`` multiply-adds is cut into ``PARTS`` fixed blocks
(forward and dX: row blocks of the batch; dW: column blocks of dZ), run in parallel by
``runner.run_blocks``, each block a single-threaded BLAS call (``?gemm``; callers keep
BLAS on one thread, as for the convolutions). The blocks never overlap, so nothing is
summed across blocks, and the partition depends on the shapes only, not the thread
count: results are bit-identical whatever the thread count. OpenBLAS's own threads are
not: it rounds a product differently on one thread and on two (measured on the project
machine for every product shape of the MNIST MLP benchmark), so a fit whose thread plan
switched BLAS between 1 and 2 threads depended on timing. Blocked products do not give
the bits of unblocked ones either. Sparse input keeps scipy's product and ``np.dot``,
around the fused element-wise passes ``bias_activation_forward`` and
``activation_backward_bias_grad`` (which dense input uses too).
"""

import operator

import numpy as np
from numba.extending import register_jitable

from .._config import jit
from .activations import LOGISTIC, RELU, TANH
from .blas import _xxgemm
from .runner import internal, run_blocks, unpack

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: fixed number of row / column blocks of the products (two cores on the project
#: machine; more blocks made each product slower: smaller GEMMs)
PARTS = 2
#: products of fewer multiply-adds run in one block, on one thread: the constant cost of
#: each BLAS call (packing the shared operand again, small edge blocks) makes a split
#: small product dearer. Measured (CPU time, one thread, MNIST (256, 128) MLP epoch, on
#: a loaded machine): every product in 2 blocks +14% over unblocked; with this limit
#: (only the 784 x 256 layer's products split) +11% (median of 6, 0.723 vs 0.652 s), so
#: the split itself, not the small products, costs most. A function of the shapes, so
#: the partition still ignores the thread count.
BLOCK_MIN = 1 << 23


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


@register_jitable
def n_parts(n, d, k):
    """Blocks of a dense product of x (n, d) and w (d, k): ``PARTS`` from ``BLOCK_MIN``
    multiply-adds on, else one (the same rule in Python and in the block kernel)."""
    return PARTS if n * d * k >= BLOCK_MIN else 1


#: tasks of ``dense_blocks``
FORWARD = 0
WEIGHT_GRAD = 1
INPUT_GRAD = 2


@jit
def _dense_block(task, p, x, w, b, code, a, delta, dw, dx):
    """Block ``p`` of one ``dense_blocks`` task (rows of the batch, or columns of dZ).

    The products go straight to ``?gemm`` (``blas._xxgemm``) with the layouts spelled
    out, all operands as flat C arrays: one signature, no layout dispatch to compile.
    Row-major ``C = A B`` is column-major ``C^T = B^T A^T`` (see ``kernels.blas``).
    """
    n, d = x.shape
    k = w.shape[1]
    m = k if task == WEIGHT_GRAD else n
    parts = n_parts(n, d, k)
    step = (m + parts - 1) // parts
    lo = min(p * step, m)
    hi = min(lo + step, m)
    if lo >= hi:
        return
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    N, T = 110, 116  # ord("n"), ord("t"): no string code to compile
    if task == FORWARD:  # a[lo:hi] = x[lo:hi] w  <=>  a^T = w^T x^T
        af = a.reshape(-1)
        xf = x.reshape(-1)
        _xxgemm(N, N, k, hi - lo, d, one, w.reshape(-1), k, xf[lo * d :], d, zero, af[lo * k :], k)
        bias_activation_forward(a[lo:hi], b, code)
    elif task == WEIGHT_GRAD:  # dw[:, lo:hi] = x^T delta[:, lo:hi]  <=>  dw^T = delta^T x
        df = delta.reshape(-1)
        dwf = dw.reshape(-1)
        _xxgemm(N, T, hi - lo, d, n, one, df[lo:], k, x.reshape(-1), d, zero, dwf[lo:], k)
    else:  # dx[lo:hi] = delta[lo:hi] w^T  <=>  dx^T = w delta^T
        df = delta.reshape(-1)
        dxf = dx.reshape(-1)
        _xxgemm(T, N, d, hi - lo, k, one, w.reshape(-1), k, df[lo * k :], k, zero, dxf[lo * d :], d)


@internal
def _dense_blocks_block(p, packed, args_type):
    """Block ``p`` of ``dense_blocks`` (run by ``runner.run_blocks``)."""
    task, x, w, b, code, a, delta, dw, dx = unpack(packed, args_type)
    _dense_block(task, p, x, w, b, code, a, delta, dw, dx)


def dense_blocks(task, x, w, b, code, a, delta, dw, dx):
    """One product of a dense layer in ``PARTS`` fixed blocks in parallel; all arrays
    C-contiguous, of one dtype (unused ones may be any such array):

    * ``FORWARD``: ``a = f(x w + b)`` (row blocks) - x (n, d), w (d, k), b (k,), a (n, k);
    * ``WEIGHT_GRAD``: ``dw = x^T delta`` (column blocks) - delta (n, k) = dZ, dw (d, k);
    * ``INPUT_GRAD``: ``dx = delta w^T`` (row blocks) - dx (n, d).

    One compiled block function serves the three, run in parallel by
    ``runner.run_blocks`` (the parallel loop every kernel family shares: no parallel
    kernel of its own to compile); ``activation_backward_bias_grad`` turns dA into dZ and
    fills db before the last two. Arrays of other dtypes, dimensions or layouts, or
    shapes that do not fit, raise ValueError / TypeError.
    """
    args = (task, x, w, b, code, a, delta, dw, dx)
    try:  # the shapes, per call (the types: ``_check_types``, once per combination)
        n, d = x.shape
        k = w.shape[1]
        if task == FORWARD:
            ok = a.shape == (n, k)
        elif task == WEIGHT_GRAD:
            ok = delta.shape == (n, k) and dw.shape == (d, k)
        else:
            ok = task == INPUT_GRAD and delta.shape == (n, k) and dx.shape == (n, d)
        ok = ok and w.shape == (d, k) and b.shape == (k,)
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        _check(args)
    # a product below BLOCK_MIN is one block: no parallel region
    run_blocks(_dense_blocks_block, args, n_parts(n, d, k), _check_types)


def _check_types(args):
    """TypeError / ValueError unless ``args`` are types ``dense_blocks`` takes."""
    task, x, w, b, code, a, delta, dw, dx = args
    for name, v in (("task", task), ("code", code)):
        try:
            operator.index(v)
        except TypeError:
            raise TypeError(f"dense_blocks: {name} must be an integer") from None
    arrays = zip(
        ("x", "w", "b", "a", "delta", "dw", "dx"), args[1:4] + args[5:], (2, 2, 1, 2, 2, 2, 2)
    )
    dtype = getattr(x, "dtype", None)
    for name, v, ndim in arrays:
        if not isinstance(v, np.ndarray) or v.ndim != ndim:
            raise TypeError(f"dense_blocks: {name} must be a {ndim}-D ndarray")
        if v.dtype != dtype or dtype not in _DTYPES:
            raise TypeError(f"dense_blocks: {name} must be float32 or float64, as x")
        if not v.flags.c_contiguous:
            raise ValueError(f"dense_blocks: {name} must be C-contiguous")


def _check(args):
    """The clear error for arguments of wrong types or shapes."""
    _check_types(args)
    task, x, w, b, code, a, delta, dw, dx = args
    if task not in (FORWARD, WEIGHT_GRAD, INPUT_GRAD):
        raise ValueError(f"dense_blocks: unknown task {task}")
    n, d = x.shape
    k = w.shape[1]
    shapes = {"w": (w.shape, (d, k)), "b": (b.shape, (k,))}
    if task == FORWARD:
        shapes["a"] = (a.shape, (n, k))
    else:
        shapes["delta"] = (delta.shape, (n, k))
        if task == WEIGHT_GRAD:
            shapes["dw"] = (dw.shape, (d, k))
        else:
            shapes["dx"] = (dx.shape, (n, d))
    for name, (shape, expected) in shapes.items():
        if shape != expected:
            raise ValueError(f"dense_blocks: {name} has shape {shape}, expected {expected}")
    raise AssertionError("dense_blocks: arguments rejected and accepted")  # pragma: no cover
