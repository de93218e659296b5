"""Fully connected layer: forward and backward.

Shapes: X (n, d) inputs, W (d, k) weights, b (k,) bias, A (n, k) activations.

Forward::

    Z = X W + b          (GEMM through BLAS, into a preallocated buffer)
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
the bits of unblocked ones either (measured: any row, column or inner split of the MNIST
MLP's products changes some bits).

A layer that needs dX runs its backward as one ``BACKWARD`` task: dW and dX, each one
whole product, as two blocks side by side (two threads busy without cutting a product:
no block edges, no shared operand packed twice; a split (256, 128) product costs 25-30%
more on one thread than the whole one). Whether the two run in parallel or one after
the other changes no bit: the same two calls.

The ``?gemm`` called is that of the OpenBLAS NumPy's wheels bundle when there is one
(``_numpy_gemm``: faster on these shapes than scipy's copy, which numba's bridge
calls; the same bits on the project machine), else scipy's. Sparse input keeps scipy's
product and ``np.dot``, around the fused element-wise passes ``bias_activation_forward``
and ``activation_backward_bias_grad``, which are the block function's own loops
(``FORWARD`` without its product, ``BIAS_GRAD``): a dense layer compiles one function,
with one copy of each loop written in it (not numba-inlined helpers: inlining cost
~0.08 s of typing passes and ~0.1 s more lowering, for the same code).
"""

import ctypes
import glob
import operator
import os

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .._config import jit
from .activations import LOGISTIC, RELU, TANH
from .blas import _call_xxgemm
from .runner import internal, run_blocks, unpack

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: fixed number of row / column blocks of the products (two cores on the project
#: machine; more blocks made each product slower: smaller GEMMs)
PARTS = 2
#: products of fewer multiply-adds run in one block, on one thread: the constant cost of
#: each BLAS call (packing the shared operand again, small edge blocks) makes a split
#: small product dearer. Measured (CPU time, one thread, MNIST (256, 128) MLP epoch, on
#: a loaded machine): every product in 2 blocks +14% over unblocked; only the 784 x 256
#: layer's products split +11%, so the split itself, not the small products, costs most.
#: From 2^22 on (2^23 before), the 256 x 128 layer's forward (200 x 256 x 128 = 6.6e6)
#: splits too: forced to 2 threads, fresh processes, three rounds alternating,
#: 0.334-0.353 s per epoch against 0.346-0.456 with it serial, and on one thread
#: 0.59-0.62 s either way (2026-12-03 14:20). A function of the shapes, so the
#: partition still ignores the thread count.
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
    args = (BIAS_ACTIVATION, z, z, b, code, z, z, z, z, 1, 0)
    if not (_is_2d(z) and getattr(b, "shape", None) == (z.shape[1],)):
        _check_types(args)
        raise ValueError(f"bias_activation_forward: b must have shape ({z.shape[1]},)")
    run_blocks(_dense_blocks_block, args, 1, _check_types)


def activation_backward_bias_grad(a, delta, code, db):
    """``delta *= f'(a)`` in place, then ``db = sum_i delta_i``.

    a, delta (n, k) C-contiguous; db (k,) overwritten. f' is expressed through the output
    a. ``dense_blocks``' ``BIAS_GRAD`` task alone (one compiled copy of its loops)."""
    args = (BIAS_GRAD, a, a, db, code, a, delta, a, a, 1, 0)
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


_I64 = ir.IntType(64)
_VOIDP = ir.IntType(8).as_pointer()
_FGEMM = ir.FunctionType(ir.VoidType(), [_VOIDP] * 13)


@intrinsic
def _gemm_at(
    typingctx, address, transa, transb, m, n, k, alpha, a, ia, lda, b, ib, ldb, beta, c, ic, ldc
):
    """Column-major ``c = alpha op(a) op(b) + beta c`` (``?gemm``) on the matrices starting
    at element ``ia``, ``ib``, ``ic`` of the C arrays ``a``, ``b``, ``c`` (any
    dimensions, memory order; offsets not checked), ``transa``/``transb`` ``ord('n')`` or
    ``ord('t')``: the Fortran interface with 64-bit integers (ILP64) at ``address`` (a
    run-time value, see ``_numpy_gemm``: the cached code stays valid), or scipy's
    ``?gemm`` through numba's bridge (``blas._xxgemm``'s call) when ``address`` is 0.

    Offsets instead of flat views: no ``reshape`` or slice to compile in the caller."""
    if alpha not in (types.float32, types.float64) or beta != alpha:
        raise TypingError("_gemm_at: alpha and beta must be of the arrays' float type")
    if any(not isinstance(x, types.Array) or x.dtype != alpha for x in (a, b, c)):
        raise TypingError("_gemm_at: a, b and c must be arrays of one float dtype")
    sig = types.void(
        address, transa, transb, m, n, k, alpha, a, ia, lda, b, ib, ldb, beta, c, ic, ldc
    )

    def codegen(context, builder, sig, args):
        addr, ta, tb, m_, n_, k_, al, a_, ia_, lda_, b_, ib_, ldb_, be, c_, ic_, ldc_ = args

        def i64(value):
            return builder.sext(value, _I64) if value.type.width < 64 else value

        def at(index, value, offset):
            data = context.make_array(sig.args[index])(context, builder, value).data
            return builder.bitcast(builder.gep(data, [i64(offset)]), _VOIDP)

        def slot(value):
            return builder.bitcast(cgutils.alloca_once_value(builder, value), _VOIDP)

        ptrs = (at(7, a_, ia_), at(10, b_, ib_), at(14, c_, ic_))
        flags = (builder.trunc(ta, ir.IntType(8)), builder.trunc(tb, ir.IntType(8)))
        ints = [i64(v) for v in (m_, n_, k_, lda_, ldb_, ldc_)]
        with builder.if_else(builder.icmp_signed("!=", addr, ir.Constant(addr.type, 0))) as (
            numpy_blas,
            scipy_blas,
        ):
            with numpy_blas:
                fn = builder.inttoptr(addr, _FGEMM.as_pointer())
                builder.call(
                    fn,
                    [slot(flags[0]), slot(flags[1])]
                    + [slot(v) for v in ints[:3]]
                    + [slot(al), ptrs[0], slot(ints[3]), ptrs[1], slot(ints[4]), slot(be)]
                    + [ptrs[2], slot(ints[5])],
                )
            with scipy_blas:
                _call_xxgemm(
                    context,
                    builder,
                    sig.args[6],
                    flags,
                    ints[:3],
                    ((ptrs[0], ints[3]), (ptrs[1], ints[4]), (ptrs[2], ints[5])),
                    al,
                    be,
                )
        return context.get_dummy_value()

    return sig, codegen


_GEMM_ADDRESSES = None


def _numpy_gemm(dtype):
    """Address of ``?gemm`` (64-bit integer Fortran interface) of the OpenBLAS NumPy's
    wheels bundle (``numpy.libs/libscipy_openblas64_*``), 0 when there is none.

    NumPy's copy (OpenBLAS 0.3.31 on the project machine) ran the MNIST MLP's products
    12-35% faster on one thread than scipy's (0.3.30), which numba's ``np.dot`` bridge
    calls: a one-thread (256, 128) epoch 0.61-0.64 -> 0.55-0.57 s. Other NumPy builds
    (MKL, a system BLAS) fall back to scipy's ``?gemm`` through numba. Which library
    runs depends on the installation only, not on the thread count.
    """
    global _GEMM_ADDRESSES
    if _GEMM_ADDRESSES is None:
        found = {np.dtype(np.float32): 0, np.dtype(np.float64): 0}
        libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
        for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so")))[:1]:
            try:
                lib = ctypes.CDLL(path)
                for dt, name in ((np.float32, "scipy_sgemm_64_"), (np.float64, "scipy_dgemm_64_")):
                    found[np.dtype(dt)] = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
            except (OSError, AttributeError):  # pragma: no cover (another build)
                found = dict.fromkeys(found, 0)
        _GEMM_ADDRESSES = found
    return _GEMM_ADDRESSES.get(dtype, 0)


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
    """Block ``p`` of ``nb`` of one ``dense_blocks`` task (rows of the batch, or columns
    of dZ; for ``BACKWARD`` block 0 is dW, block 1 dX, one block both), run by
    ``runner.run_blocks``. With ``BIAS_GRAD`` (one block), dZ and db first.

    The products go straight to ``?gemm`` with the layouts spelled out, operands as
    C arrays and element offsets (``_gemm_at``): no layout dispatch, no reshape or slice
    to compile. Row-major ``C = A B`` is column-major ``C^T = B^T A^T`` (see
    ``kernels.blas``). One call site of ``_gemm_at`` (compile time). The element-wise
    passes are written here: a dense layer's whole step is this one compiled function,
    without reference counting (it makes no array). ``BIAS_ACTIVATION`` (one block):
    ``FORWARD``'s element-wise pass alone, for ``bias_activation_forward``.
    """
    task, x, w, b, code, a, delta, dw, dx, nb, address = unpack(packed, args_type)
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
    N, T = 110, 116  # ord("n"), ord("t"): no string code to compile
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for t in range(first, last + 1):
        m = k if t == WEIGHT_GRAD else n
        step = (m + parts - 1) // parts
        lo = p * step
        lo = lo if lo < m else m  # (no min: it compiles a function)
        hi = lo + step if lo + step < m else m
        if lo >= hi:
            continue
        if t == FORWARD:  # a[lo:hi] = x[lo:hi] w  <=>  a^T = w^T x^T
            ta, tb, mm, nn, kk, lda, ldb, ldc = N, N, k, hi - lo, d, k, d, k
            op_a, ia, op_b, ib, out, ic = w, 0, x, lo * d, a, lo * k
        elif t == WEIGHT_GRAD:  # dw[:, lo:hi] = x^T delta[:, lo:hi]  <=>  dw^T = delta^T x
            ta, tb, mm, nn, kk, lda, ldb, ldc = N, T, hi - lo, d, n, k, d, k
            op_a, ia, op_b, ib, out, ic = delta, lo, x, 0, dw, lo
        else:  # dx[lo:hi] = delta[lo:hi] w^T  <=>  dx^T = w delta^T
            ta, tb, mm, nn, kk, lda, ldb, ldc = T, N, d, hi - lo, k, k, k, d
            op_a, ia, op_b, ib, out, ic = w, 0, delta, lo * k, dx, lo * d
        if product:  # NumPy's OpenBLAS (``_numpy_gemm``), else scipy's
            _gemm_at(
                address, ta, tb, mm, nn, kk, one, op_a, ia, lda, op_b, ib, ldb, zero, out, ic, ldc
            )
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


def dense_blocks(task, x, w, b, code, a, delta, dw, dx):
    """One product of a dense layer in ``PARTS`` fixed blocks in parallel; all arrays
    C-contiguous, of one dtype (unused ones may be any such array):

    * ``FORWARD``: ``a = f(x w + b)`` (row blocks) - x (n, d), w (d, k), b (k,), a (n, k);
    * ``WEIGHT_GRAD``: ``dw = x^T delta`` (column blocks) - delta (n, k) = dZ, dw (d, k);
    * ``INPUT_GRAD``: ``dx = delta w^T`` (row blocks) - dx (n, d);
    * ``BACKWARD``: both, each one whole product (no blocks: no block edges, no operand
      packed twice), the two in parallel (``TASKS_MIN``);
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
    address = _numpy_gemm(x.dtype)
    if task != base and nb > 1:  # dZ, db on their own first: both blocks need dZ
        args = (BIAS_GRAD, x, w, b, code, a, delta, dw, dx, 1, address)
        run_blocks(_dense_blocks_block, args, 1, _check_types)
        task = base
    args = (task, x, w, b, code, a, delta, dw, dx, nb, address)
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
