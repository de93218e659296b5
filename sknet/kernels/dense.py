"""Fully connected layer: forward and backward.

Shapes: X (n, d) inputs, W (d, k) weights, b (k,) bias, A (n, k) activations.

Forward::

    Z = X W + b          (kernels.product, into a preallocated buffer)
    A = f(Z)             (activation code, see kernels.activations)

Backward, given dA = dL/dA (n, k), overwritten in place by dZ::

    dZ = dA * f'(A)
    dW = X^T dZ          (d, k)
    db = sum_i dZ_i      (k,)
    dX = dZ W^T          (n, d)   only when the layer below needs it

Dense input (training and inference) runs the products through ``dense_blocks``: a
product of at least ``BLOCK_MIN`` multiply-adds is cut into ``PARTS`` fixed blocks of
the rows of its output (forward and dX: rows of the batch; dW: rows of dW, i.e.
columns of X), run in parallel by ``runner.run_blocks``. The products are the kernels'
own (``kernels.product``, the one the convolutions and recurrent cells call), not BLAS:
each output element adds its products in one fixed order, whatever the cut of the rows
or columns, so blocked and whole products give the same bits, and the results do not
depend on the thread count. dX multiplies by a transposed copy of W (``wt``, made in
dX's block: one loop nest for every product).

Measured on the project machine (AMD Zen 5 kind, OpenBLAS pinned to its Haswell
kernels by ``OPENBLAS_CORETYPE``; MNIST (256, 128) MLP, float32, batch 200): the 784 x
256 layer's products run at 135-150 GFLOP/s on one thread against 110-115 for NumPy's
OpenBLAS ``?gemm``; on two threads, in row blocks, 250-290. dW in row blocks of dW ran
1.5-2x faster on two threads than in column blocks (each thread then reads its own
columns of X and all of dZ, rather than all of X). The one-thread epoch went from
0.64-0.77 s to 0.52-0.58 s (alternating, fresh processes; see
``docs/performance.rst``). The narrow output layer (10 columns) is slower than BLAS
(about 20 against 12 us per forward): its rows are shorter than two vectors.

A layer that needs dX runs its backward as one ``BACKWARD`` task: dW and dX, each one
whole product, as two blocks side by side. Whether the two run in parallel or one
after the other changes no bit: the same two calls.

Sparse input keeps scipy's product and ``np.dot``, around the fused element-wise passes
``bias_activation_forward`` and ``activation_backward_bias_grad``, which are the block
function's own loops (``FORWARD`` without its product, ``BIAS_GRAD``): a dense layer
compiles one function, with one copy of each loop written in it (not numba-inlined
helpers: inlining cost ~0.08 s of typing passes and ~0.1 s more lowering, for the same
code).
"""

import operator

import numba
import numpy as np

from .._config import jit
from .activations import LOGISTIC, RELU, TANH
from .product import mul, product_entry
from .runner import internal, run_blocks, unpack

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_NO_PRODUCT = (0, 0)  # the entry argument of the tasks without a product

#: fixed number of row blocks of the products (two cores on the project machine; more
#: blocks made each product slower: smaller GEMMs)
PARTS = 2
#: products of fewer multiply-adds run in one block, on one thread (waking a thread costs more than
#: it saves). Measured with the BLAS products of the time (CPU time, one thread, MNIST (256, 128)
#: MLP epoch, on a loaded machine): every product in 2 blocks +14% over unblocked; only the 784 x
#: 256 layer's products split +11%, so the split itself, not the small products, costs most. From
#: 2^22 on (2^23 before), the 256 x 128 layer's forward (200 x 256 x 128 = 6.6e6) splits too:
#: forced to 2 threads, fresh processes, three rounds alternating, 0.334-0.353 s per epoch against
#: 0.346-0.456 with it serial, and on one thread 0.59-0.62 s either way (2026-12-03 14:20). A
#: function of the shapes, so the partition still ignores the thread count.
BLOCK_MIN = 1 << 22
#: ``BACKWARD`` runs dW and dX (each one whole product) as two blocks in parallel from
#: this many multiply-adds per product on; below, one after the other on the calling
#: thread. Either way the same two calls: the bits do not depend on it.
TASKS_MIN = 1 << 20


def bias_activation_forward(z, b, code):
    """``z = f(z + b)`` in place. z (n, k) C-contiguous, b (k,) of z's dtype.

    The loops of ``dense_blocks``' ``FORWARD`` task on the whole of ``z`` (the block
    function's ``BIAS_ACTIVATION``): one compiled copy of them (sparse input's product is
    scipy's, then this)."""
    args = (BIAS_ACTIVATION, z, z, b, code, z, z, z, z, z, 1, _NO_PRODUCT)
    if not (_is_2d(z) and getattr(b, "shape", None) == (z.shape[1],)):
        _check_types(args)
        raise ValueError(f"bias_activation_forward: b must have shape ({z.shape[1]},)")
    run_blocks(_dense_blocks_block, args, 1, _check_types)


def activation_backward_bias_grad(a, delta, code, db):
    """``delta *= f'(a)`` in place, then ``db = sum_i delta_i``.

    a, delta (n, k) C-contiguous; db (k,) overwritten. f' is expressed through the output
    a. ``dense_blocks``' ``BIAS_GRAD`` task alone (one compiled copy of its loops)."""
    args = (BIAS_GRAD, a, a, db, code, a, delta, a, a, a, 1, _NO_PRODUCT)
    shape = getattr(a, "shape", None)
    if not (
        _is_2d(a)
        and getattr(delta, "shape", None) == shape
        and getattr(db, "shape", 0) == shape[1:]
    ):
        _check_types(args)
        raise ValueError("activation_backward_bias_grad: delta must have a's shape, db (k,)")
    run_blocks(_dense_blocks_block, args, 1, _check_types)


def _is_2d(x):
    return isinstance(x, np.ndarray) and x.ndim == 2


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


#: gathers of at least this many bytes run in parallel (``gather_rows``)
GATHER_MIN = 1 << 18


@internal
def _take_rows_block(p, packed, args_type):
    """Part ``p`` of ``gather_rows``: the rows ``[p step, (p + 1) step)`` of ``out``."""
    x, idx, out, parts = unpack(packed, args_type)
    m = idx.shape[0]
    step = (m + parts - 1) // parts
    lo = min(p * step, m)
    hi = min(lo + step, m)
    take_rows(x, idx[lo:hi], out[lo:hi])


@jit
def _check_rows(idx, n):
    """IndexError unless every index is in ``[0, n)`` (errors raised inside parallel
    blocks do not reach the caller)."""
    for i in range(idx.shape[0]):
        if idx[i] < 0 or idx[i] >= n:
            raise IndexError("take_rows: row index out of range")


def gather_rows(x, idx, out):
    """``out = x[idx]``: the rows ``idx`` (int64) of the 2-D C-contiguous ``x`` into the
    C-contiguous ``out`` (len(idx), d), IndexError for an index outside ``[0, len(x))``.

    Small gathers (a mini-batch) run in ``np.take``: no compiled kernel (~0.13 s of every
    family's cold compile for ``take_rows``), ~2-3 us more per gather. Large ones are cut
    in row parts over numba's threads (a copy: the same values whatever the partition). A
    mini-batch of 200 MNIST rows (627 kB) from a 188 MB training set: 29 us per gather
    on one thread, the rows' cache misses most of it."""
    parts = min(numba.get_num_threads(), idx.shape[0])
    if parts <= 1 or out.nbytes < GATHER_MIN:
        if idx.shape[0] and (idx.min() < 0 or idx.max() >= x.shape[0]):
            raise IndexError("take_rows: row index out of range")
        np.take(x, idx, axis=0, out=out, mode="clip")  # indices checked: no buffering
    else:
        _check_rows(idx, x.shape[0])
        run_blocks(_take_rows_block, (x, idx, out, parts), parts)


def n_parts(n, d, k):
    """Blocks of a dense product of x (n, d) and w (d, k): ``PARTS`` from ``BLOCK_MIN``
    multiply-adds on, else one (the same rule, written out, in the block kernel)."""
    return PARTS if n * d * k >= BLOCK_MIN else 1


#: tasks of ``dense_blocks``
FORWARD = 0
WEIGHT_GRAD = 1
INPUT_GRAD = 2
BACKWARD = 3  # WEIGHT_GRAD and INPUT_GRAD, each whole: two blocks
#: alone: ``delta *= f'(a)`` and ``b = sum_i delta_i`` (dA to dZ and db), one block;
#: added to a backward task (``BIAS_GRAD + BACKWARD``): that first, then the task
BIAS_GRAD = 4
#: internal (``bias_activation_forward``): ``FORWARD``'s ``a = f(a + b)`` without the
#: product, on all rows of ``a``
BIAS_ACTIVATION = 8


def n_blocks(task, n, d, k):
    """Blocks ``dense_blocks`` runs for ``task`` (without ``BIAS_GRAD``) on x (n, d),
    w (d, k)."""
    if task == BIAS_GRAD:
        return 1
    if task == BACKWARD:
        return 2 if n * d * k >= TASKS_MIN else 1
    return n_parts(n, d, k)


@internal(refcounts=False)
def _dense_blocks_block(p, packed, args_type):
    """Block ``p`` of ``nb`` of one ``dense_blocks`` task (rows of the batch, or rows
    of dW; for ``BACKWARD`` block 0 is dW, block 1 dX, one block both), run by
    ``runner.run_blocks``. With ``BIAS_GRAD`` (one block), dZ and db first.

    The products are calls of ``kernels.product`` through its entry ``prod`` (``mul``:
    operands as C arrays, element offsets and row strides; no reshape or slice to
    compile), from one call site (compile time); dX's block first copies W^T into
    ``wt`` (``BACKWARD``; for ``INPUT_GRAD`` alone the caller made it). The element-wise
    passes are written here: a dense layer's whole step is this one compiled function,
    without reference counting (it makes no array). ``BIAS_ACTIVATION`` (one block):
    ``FORWARD``'s element-wise pass alone, for ``bias_activation_forward``.
    """
    task, x, w, b, code, a, delta, dw, dx, wt, nb, prod = unpack(packed, args_type)
    product = task != BIAS_ACTIVATION
    if not product:
        task = FORWARD
    if task >= BIAS_GRAD:  # dZ = dA * f'(A) in place, db = column sums of dZ
        n, k = a.shape
        for j in range(k):
            b[j] = 0.0
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
                b[j] += delta[i, j]
        task -= BIAS_GRAD
        if task == FORWARD:  # BIAS_GRAD alone
            return
    n, d = x.shape
    k = w.shape[1]
    first = last = task
    parts = PARTS if n * d * k >= BLOCK_MIN else 1  # ``n_parts`` (no function to compile)
    if task == BACKWARD:  # WEIGHT_GRAD and INPUT_GRAD (consecutive codes), each whole
        first = WEIGHT_GRAD if p == 0 else INPUT_GRAD
        last = INPUT_GRAD if p == 1 or nb == 1 else WEIGHT_GRAD
        parts = 1
        p = 0
    if not product:  # (BIAS_ACTIVATION: one block, all rows)
        parts = 1
    transpose = task == BACKWARD  # INPUT_GRAD alone: wt made by the caller
    for t in range(first, last + 1):
        m = d if t == WEIGHT_GRAD else n  # the rows of the product's output
        step = (m + parts - 1) // parts
        lo = p * step
        lo = lo if lo < m else m  # (no min: it compiles a function)
        hi = lo + step if lo + step < m else m
        if lo >= hi:
            continue
        if t == FORWARD:  # a[lo:hi] = x[lo:hi] w
            op_a, ia, lda, ta, op_b, ib, ldb = x, lo * d, d, False, w, 0, k
            out, ic, ldc, mm, nn, kk = a, lo * k, k, hi - lo, k, d
        elif t == WEIGHT_GRAD:  # dw[lo:hi] = x[:, lo:hi]^T delta
            op_a, ia, lda, ta, op_b, ib, ldb = x, lo, d, True, delta, 0, k
            out, ic, ldc, mm, nn, kk = dw, lo * k, k, hi - lo, k, n
        else:  # dx[lo:hi] = delta[lo:hi] w^T, w^T from its copy wt (k, d)
            if transpose:  # 4 rows of w at a time: 4 adjacent elements of wt per j (a
                # row at a time wrote one element per cache line: 90 against 7 us for
                # a 256 x 128 w, float32)
                d4 = d - d % 4
                for i in range(0, d4, 4):
                    for j in range(k):
                        wt[j, i] = w[i, j]
                        wt[j, i + 1] = w[i + 1, j]
                        wt[j, i + 2] = w[i + 2, j]
                        wt[j, i + 3] = w[i + 3, j]
                for i in range(d4, d):
                    for j in range(k):
                        wt[j, i] = w[i, j]
            op_a, ia, lda, ta, op_b, ib, ldb = delta, lo * k, k, False, wt, 0, d
            out, ic, ldc, mm, nn, kk = dx, lo * d, d, hi - lo, d, k
        if product:  # one call site (``kernels.product``)
            mul(prod, op_a, ia, lda, ta, op_b, ib, ldb, out, ic, ldc, mm, nn, kk)
        if t == FORWARD:  # a = f(a + b) on the rows [lo, hi)
            if code == RELU:
                for i in range(lo, hi):
                    for j in range(k):
                        v = a[i, j] + b[j]
                        a[i, j] = v if v > 0.0 else 0.0
            elif code == TANH:
                for i in range(lo, hi):
                    for j in range(k):
                        a[i, j] = np.tanh(a[i, j] + b[j])
            elif code == LOGISTIC:
                for i in range(lo, hi):
                    for j in range(k):
                        a[i, j] = 1.0 / (1.0 + np.exp(-(a[i, j] + b[j])))
            else:
                for i in range(lo, hi):
                    for j in range(k):
                        a[i, j] += b[j]


def dense_blocks(task, x, w, b, code, a, delta, dw, dx, wt=None):
    """One product of a dense layer in ``PARTS`` fixed blocks in parallel; all arrays
    C-contiguous, of one dtype (unused ones may be any such array):

    * ``FORWARD``: ``a = f(x w + b)`` (row blocks) - x (n, d), w (d, k), b (k,), a (n, k);
    * ``WEIGHT_GRAD``: ``dw = x^T delta`` (row blocks of dw) - delta (n, k) = dZ, dw (d, k);
    * ``INPUT_GRAD``: ``dx = delta w^T`` (row blocks) - dx (n, d);
    * ``BACKWARD``: both, each one whole product, the two in parallel (``TASKS_MIN``);
      dX multiplies by W^T, copied into ``wt`` (k, d) (a buffer the caller keeps
      between steps, else a new one);
    * ``BIAS_GRAD``: ``delta *= f'(a)`` in place (dA to dZ, a (n, k) the forward's
      output) and ``b = sum_i delta_i`` (b receives db); added to a backward task
      (``BIAS_GRAD + WEIGHT_GRAD``, ``BIAS_GRAD + BACKWARD``), that first, then the task.

    One compiled block function serves them all, run in parallel by
    ``runner.run_blocks`` (the parallel loop every kernel family shares: no parallel
    kernel of its own to compile). Arrays of other dtypes, dimensions or layouts, or
    shapes that do not fit, raise ValueError / TypeError.
    """
    try:  # the shapes, per call (the types: ``_check_types``, once per combination)
        n, d = x.shape
        k = w.shape[1]
        base = task - BIAS_GRAD if BIAS_GRAD < task < 2 * BIAS_GRAD else task
        if base == FORWARD:
            ok = a.shape == (n, k)
        elif base == WEIGHT_GRAD:
            ok = delta.shape == (n, k) and dw.shape == (d, k)
        elif base == INPUT_GRAD:
            ok = delta.shape == (n, k) and dx.shape == (n, d)
        elif base == BACKWARD:
            ok = delta.shape == (n, k)
            ok = ok and dw.shape == (d, k) and dx.shape == (n, d)
        else:
            ok = base == BIAS_GRAD and delta.shape == (n, k)
        if task >= BIAS_GRAD:
            ok = ok and a.shape == (n, k)
        ok = ok and w.shape == (d, k) and b.shape == (k,)
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        _check((task, x, w, b, code, a, delta, dw, dx))
    # a product below BLOCK_MIN is one block: no parallel region
    nb = n_blocks(base, n, d, k)
    prod = product_entry(x.dtype)
    if base in (INPUT_GRAD, BACKWARD):  # w^T for dX (BACKWARD: made by dX's block)
        if wt is None:
            wt = np.empty((k, d), x.dtype)
        elif not (
            isinstance(wt, np.ndarray)
            and wt.shape == (k, d)
            and wt.dtype == x.dtype
            and wt.flags.c_contiguous
        ):
            raise ValueError(
                f"dense_blocks: wt must be a C-contiguous ({k}, {d}) array of x's dtype"
            )
        if base == INPUT_GRAD:
            np.copyto(wt, w.T)
    else:
        wt = w
    if task != base and nb > 1:  # dZ, db on their own first: both blocks need dZ
        args = (BIAS_GRAD, x, w, b, code, a, delta, dw, dx, wt, 1, prod)
        run_blocks(_dense_blocks_block, args, 1, _check_types)
        task = base
    args = (task, x, w, b, code, a, delta, dw, dx, wt, nb, prod)
    run_blocks(_dense_blocks_block, args, nb, _check_types)


def _check_types(args):
    """TypeError / ValueError unless ``args`` are types ``dense_blocks`` takes."""
    task, x, w, b, code, a, delta, dw, dx = args[:9]
    for name, v in (("task", task), ("code", code)):
        try:
            operator.index(v)
        except TypeError:
            raise TypeError(f"dense_blocks: {name} must be an integer") from None
    arrays = zip(
        ("x", "w", "b", "a", "delta", "dw", "dx"), args[1:4] + args[5:9], (2, 2, 1, 2, 2, 2, 2)
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
    tasks = (FORWARD, WEIGHT_GRAD, INPUT_GRAD, BACKWARD, BIAS_GRAD)
    if task not in tasks + tuple(BIAS_GRAD + t for t in tasks[1:4]):
        raise ValueError(f"dense_blocks: unknown task {task}")
    n, d = x.shape
    k = w.shape[1]
    shapes = {"w": (w.shape, (d, k)), "b": (b.shape, (k,))}
    if task >= BIAS_GRAD:  # a is the forward's output
        shapes["a"] = (a.shape, (n, k))
    task = task - BIAS_GRAD if task > BIAS_GRAD else task
    if task == FORWARD:
        shapes["a"] = (a.shape, (n, k))
    else:
        shapes["delta"] = (delta.shape, (n, k))
        if task in (WEIGHT_GRAD, BACKWARD):
            shapes["dw"] = (dw.shape, (d, k))
        if task in (INPUT_GRAD, BACKWARD):
            shapes["dx"] = (dx.shape, (n, d))
    for name, (shape, expected) in shapes.items():
        if shape != expected:
            raise ValueError(f"dense_blocks: {name} has shape {shape}, expected {expected}")
    raise AssertionError("dense_blocks: arguments rejected and accepted")  # pragma: no cover
