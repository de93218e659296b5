"""The matrix product every kernel family shares: ``c = op(a) @ b``, our own loop nest.

One compiled function per dtype (:func:`product`), called from the block functions of
the dense layers, the convolutions and the recurrent cells through its entry
(:func:`mul` and :func:`mul_packed`: one call instruction at each call site, nothing
linked into the caller and optimised again there).

Why not BLAS. The shapes these networks multiply are small to mid-sized (a batch of 200
rows against a 784 x 256 layer, a block's 8 rows against a 128 x 512 ``W_h``), and
OpenBLAS's kernel for them depends on the machine and its environment: on the project's
AMD Zen 5 kind, whose environment pins OpenBLAS to its Haswell kernels
(``OPENBLAS_CORETYPE``), the LSTM's products ran 3-5x slower than with OpenBLAS's own
choice, and the MNIST MLP's products at 110-115 GFLOP/s (float32, one thread) against
135-175 for this loop nest. Its bits do not depend on how the rows or columns of ``c``
are cut into blocks either (see :func:`product`), so a parallel partition changes no bit;
OpenBLAS's blocked products did.
"""

import numba
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .runner import _native_call, entry, internal

__all__ = ["check_c_arrays", "mul", "mul_packed", "product", "product_entry"]

_u = numba.uint64  # unsigned indices: no negative-index wraparound code (vectorises)


@internal(refcounts=False, fastmath={"contract"})
def product(a, ia, lda, ta, b, ib, ldb, c, ic, ldc, m, n, k):
    """``c = op(a) @ b`` on row-major matrices inside the 1-D arrays ``a``, ``b``, ``c``
    (flat views), from element offsets ``ia``, ``ib``, ``ic`` with row strides
    (leading dimensions) ``lda``, ``ldb``, ``ldc``: ``c`` (m, n), ``b`` (k, n); ``op(a)``
    (m, k) is ``a`` stored (m, k), or, when ``ta``, the transpose of ``a`` stored
    (k, m). ``m, n, k >= 1``, operands in bounds and ``c`` apart from them (not
    checked). (A product with a transposed right operand uses a transposed copy of it:
    one loop nest to compile.)

    Rows of ``c`` in blocks of 4 and l in steps of 4, the inner loop over the contiguous
    j of ``b`` and ``c`` (vectorised over j, FMAs); the rows past the last block of 4
    one at a time. Each ``c[i, j]`` adds its k products in the order of l, one FMA each,
    whichever the path: the same bits for a row in a block of 4 or alone, and for any
    cut of the columns. (Tried and not kept, timed interleaved in one process on the
    MLP's, the convolutions' and the LSTM's shapes: panels of b's rows kept in cache
    while every row block passes, no faster; the columns in chunks of 128, 2-20%
    slower.)
    """
    zero = c.dtype.type(0)
    si = 1 if ta else lda  # op(a)[i, l] = a[ia + i*si + l*sl]
    sl = lda if ta else 1
    m4 = m - m % 4
    k4 = k - k % 4
    for i in range(0, m4, 4):
        r0 = ic + i * ldc
        r1, r2, r3 = r0 + ldc, r0 + 2 * ldc, r0 + 3 * ldc
        p0 = ia + i * si
        p1, p2, p3 = p0 + si, p0 + 2 * si, p0 + 3 * si
        for j in range(n):
            c[_u(r0 + j)] = zero
            c[_u(r1 + j)] = zero
            c[_u(r2 + j)] = zero
            c[_u(r3 + j)] = zero
        for t in range(0, k4, 4):
            q0 = ib + t * ldb
            q1, q2, q3 = q0 + ldb, q0 + 2 * ldb, q0 + 3 * ldb
            l0, l1, l2, l3 = t * sl, (t + 1) * sl, (t + 2) * sl, (t + 3) * sl
            a00, a01, a02, a03 = a[_u(p0 + l0)], a[_u(p0 + l1)], a[_u(p0 + l2)], a[_u(p0 + l3)]
            a10, a11, a12, a13 = a[_u(p1 + l0)], a[_u(p1 + l1)], a[_u(p1 + l2)], a[_u(p1 + l3)]
            a20, a21, a22, a23 = a[_u(p2 + l0)], a[_u(p2 + l1)], a[_u(p2 + l2)], a[_u(p2 + l3)]
            a30, a31, a32, a33 = a[_u(p3 + l0)], a[_u(p3 + l1)], a[_u(p3 + l2)], a[_u(p3 + l3)]
            for j in range(n):
                b0, b1, b2, b3 = b[_u(q0 + j)], b[_u(q1 + j)], b[_u(q2 + j)], b[_u(q3 + j)]
                c[_u(r0 + j)] = c[_u(r0 + j)] + a00 * b0 + a01 * b1 + a02 * b2 + a03 * b3
                c[_u(r1 + j)] = c[_u(r1 + j)] + a10 * b0 + a11 * b1 + a12 * b2 + a13 * b3
                c[_u(r2 + j)] = c[_u(r2 + j)] + a20 * b0 + a21 * b1 + a22 * b2 + a23 * b3
                c[_u(r3 + j)] = c[_u(r3 + j)] + a30 * b0 + a31 * b1 + a32 * b2 + a33 * b3
        for t in range(k4, k):
            q0 = ib + t * ldb
            lt = t * sl
            x0, x1, x2, x3 = a[_u(p0 + lt)], a[_u(p1 + lt)], a[_u(p2 + lt)], a[_u(p3 + lt)]
            for j in range(n):
                y = b[_u(q0 + j)]
                c[_u(r0 + j)] = c[_u(r0 + j)] + x0 * y
                c[_u(r1 + j)] = c[_u(r1 + j)] + x1 * y
                c[_u(r2 + j)] = c[_u(r2 + j)] + x2 * y
                c[_u(r3 + j)] = c[_u(r3 + j)] + x3 * y
    for i in range(m4, m):
        r0 = ic + i * ldc
        p0 = ia + i * si
        for j in range(n):
            c[_u(r0 + j)] = zero
        for t in range(k):
            q0 = ib + t * ldb
            x0 = a[_u(p0 + t * sl)]
            for j in range(n):
                c[_u(r0 + j)] = c[_u(r0 + j)] + x0 * b[_u(q0 + j)]


_ENTRIES = {}


def product_entry(dtype):
    """The entry (``runner.entry``) of :func:`product` for ``dtype`` (a NumPy float
    dtype), compiled or loaded from the cache on first use: what :func:`mul` takes."""
    found = _ENTRIES.get(dtype)
    if found is None:
        flat = types.Array(numba.from_dtype(dtype), 1, "C")
        found = _ENTRIES[dtype] = entry(product, _argtypes(flat))
    return found


def _argtypes(flat):
    """:func:`product`'s argument types, ``flat`` its arrays' type."""
    i64 = types.int64
    return (flat, i64, i64, types.boolean, flat, i64, i64, flat, i64, i64, i64, i64, i64)


def _flat_view(context, builder, ty, value):
    """The 1-D C array (its LLVM value) over all of the C array ``value`` of type ``ty``."""
    src = context.make_array(ty)(context, builder, value)
    dst = context.make_array(types.Array(ty.dtype, 1, "C"))(context, builder)
    item = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(ty.dtype)))
    context.populate_array(
        dst,
        data=src.data,
        shape=cgutils.pack_array(builder, [src.nitems]),
        strides=cgutils.pack_array(builder, [item]),
        itemsize=item,
        meminfo=src.meminfo,
        parent=src.parent,
    )
    return dst._getvalue()


def check_c_arrays(name, *arrays):
    """TypingError unless the numba types ``arrays`` are C-contiguous arrays of one
    dtype (the intrinsics' argument check)."""
    if not all(isinstance(x, types.Array) and x.layout == "C" for x in arrays):
        raise TypingError(f"{name}: C-contiguous arrays expected")
    if any(x.dtype != arrays[0].dtype for x in arrays):
        raise TypingError(f"{name}: arrays of one dtype expected")


def _check_operands(name, a, b, c):
    check_c_arrays(name, a, b, c)
    if a.dtype not in (types.float32, types.float64):
        raise TypingError(f"{name}: float32 or float64 arrays expected")


def _call(context, builder, prod, a_ty, values):
    """The native call of :func:`product`'s entry ``prod`` with ``values`` (its 13
    arguments, arrays already flat views, integers int64)."""
    argtypes = _argtypes(types.Array(a_ty.dtype, 1, "C"))
    address = builder.extract_value(prod, 0)
    return _native_call(context, builder, address, argtypes, values)


@intrinsic
def mul(typingctx, prod, a, ia, lda, ta, b, ib, ldb, c, ic, ldc, m, n, k):
    """``product(flat(a), ia, lda, ta, flat(b), ib, ldb, flat(c), ic, ldc, m, n, k)``
    through its entry ``prod`` (:func:`product_entry` of the arrays' dtype), ``flat``
    the 1-D view of a whole C array (of any dimensions): one call instruction at the
    call site (no views, tuple or key check for numba to type and lower there)."""
    _check_operands("mul", a, b, c)
    sig = types.none(prod, a, ia, lda, ta, b, ib, ldb, c, ic, ldc, m, n, k)

    def codegen(context, builder, sig, args):
        ty = sig.args
        want = _argtypes(types.Array(ty[1].dtype, 1, "C"))
        values = []
        for i in range(1, 14):
            if i in (1, 5, 8):
                values.append(_flat_view(context, builder, ty[i], args[i]))
            else:
                values.append(context.cast(builder, args[i], ty[i], want[i - 1]))
        return _call(context, builder, args[0], ty[1], values)

    return sig, codegen


@intrinsic
def mul_packed(typingctx, prod, a, ia, ta, b, ib, c, ic, m, n, k):
    """:func:`mul` on packed operands: ``op(a)`` stored (m, k), or (k, m) when ``ta``,
    ``b`` (k, n) and ``c`` (m, n), each with rows of its own width (the recurrent
    kernels' products)."""
    _check_operands("mul_packed", a, b, c)
    sig = types.none(prod, a, ia, ta, b, ib, c, ic, m, n, k)

    def codegen(context, builder, sig, args):
        ty = sig.args
        i64, b1 = types.int64, types.boolean

        def num(i, want=i64):
            return context.cast(builder, args[i], ty[i], want)

        ta_, m_, n_, k_ = num(3, b1), num(8), num(9), num(10)
        lda = builder.select(ta_, m_, k_)
        values = [_flat_view(context, builder, ty[1], args[1]), num(2), lda, ta_]
        values += [_flat_view(context, builder, ty[4], args[4]), num(5), n_]
        values += [_flat_view(context, builder, ty[6], args[6]), num(7), n_, m_, n_, k_]
        return _call(context, builder, args[0], ty[1], values)

    return sig, codegen
