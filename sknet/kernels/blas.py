"""Matrix products handed straight to BLAS: ``c = alpha * a @ b + beta * c``.

:func:`gemm` calls the same BLAS routine as numba's ``np.dot`` (``numba_xxgemm``, numba's
own bridge to scipy's ``?gemm``), without what ``np.dot`` adds around it:

* no copies: ``a`` and ``b`` may be transposed views or row/column blocks of larger
  arrays (any 2-D view with one unit stride); ``c`` needs unit-stride rows;
* ``beta = 1`` accumulates into ``c`` without a temporary;
* one small compiled wrapper per combination of array types, instead of numba's
  ``np.dot`` overloads (their shape and layout checks, contiguous copies and error
  formatting), which took a large share of a kernel's cold compile time.

Row-major ``C = A B`` is column-major ``C^T = B^T A^T``: a row-major matrix is its own
transpose in column-major storage, so ``b`` goes first and a column-contiguous operand
(e.g. ``x.T`` of a C array) is passed with BLAS's transpose flag.

``?gemm`` is deterministic for given shapes, strides and BLAS thread count: the same
call gives the same bits. Callers keep BLAS single-threaded around parallel kernels.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .._config import jit

__all__ = ["gemm", "gemm_rows"]

_N, _T = ord("n"), ord("t")  # BLAS transpose flags (ord() in a kernel compiles numba's str code)
_char = ir.IntType(8)
_i64 = ir.IntType(64)
_voidp = ir.IntType(8).as_pointer()
_XXGEMM = ir.FunctionType(
    ir.IntType(32),
    [_char, _char, _char, _i64, _i64, _i64, _voidp, _voidp, _i64, _voidp, _i64, _voidp]
    + [_voidp, _i64],
)


def _call_xxgemm(context, builder, dtype, flags, sizes, operands, alpha, beta):
    """Emit ``numba_xxgemm(kind, transa, transb, m, n, k, &alpha, a, lda, b, ldb, &beta, c,
    ldc)``: ``flags`` two i8 values, ``sizes`` (m, n, k), ``operands`` three (data pointer,
    leading dimension) pairs, integers of any width."""
    fn = cgutils.get_or_insert_function(builder.module, _XXGEMM, "numba_xxgemm")
    kind = ir.Constant(_char, ord("s" if dtype == types.float32 else "d"))

    def slot(value):
        return builder.bitcast(cgutils.alloca_once_value(builder, value), _voidp)

    def as_i64(value):
        return builder.sext(value, _i64) if value.type.width < 64 else value

    (a, lda), (b, ldb), (c, ldc) = operands
    m, n, k = (as_i64(v) for v in sizes)
    args = [kind, *flags, m, n, k, slot(alpha), a, as_i64(lda), b, as_i64(ldb), slot(beta)]
    return builder.call(fn, args + [c, as_i64(ldc)])


def _data(context, builder, ty, value):
    """The data pointer of the array ``value`` of type ``ty``, as ``i8*``."""
    return builder.bitcast(context.make_array(ty)(context, builder, value).data, _voidp)


@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major ``c = alpha op(a) op(b) + beta c`` (``?gemm``); returns BLAS's status.

    ``transa``/``transb`` are ``ord('n')`` or ``ord('t')``; ``a``, ``b``, ``c`` arrays of
    the scalar type of ``alpha`` (float32 or float64).
    """
    arrays = (a, b, c)
    if alpha not in (types.float32, types.float64) or beta != alpha:
        raise TypingError("gemm: alpha and beta must be of the arrays' float type")
    if any(not isinstance(x, types.Array) or x.dtype != alpha for x in arrays):
        raise TypingError("gemm: a, b and c must be arrays of one float dtype")
    sig = types.int32(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, sig, args):
        ta, tb, m_, n_, k_, al, a_, lda_, b_, ldb_, be, c_, ldc_ = args
        ty = sig.args
        return _call_xxgemm(
            context,
            builder,
            ty[5],
            (builder.trunc(ta, _char), builder.trunc(tb, _char)),
            (m_, n_, k_),
            (
                (_data(context, builder, ty[6], a_), lda_),
                (_data(context, builder, ty[8], b_), ldb_),
                (_data(context, builder, ty[11], c_), ldc_),
            ),
            al,
            be,
        )

    return sig, codegen


@intrinsic
def gemm_rows(typingctx, a, ia, ta, b, ib, tb, c, ic, m, n, k):
    """``c = op(a) @ op(b)`` on matrices stored row-major and contiguous inside C arrays,
    starting at element offsets: ``c`` (m, n) at ``c.flat[ic:]``; ``op(a)`` (m, k) is
    ``a`` stored (m, k) at ``a.flat[ia:]``, or, when ``ta``, the transpose of ``a``
    stored (k, m); ``op(b)`` (k, n) likewise from (k, n), or (n, k) when ``tb``.

    The same ``?gemm`` call as :func:`gemm` on the equivalent 2-D views (same transpose
    flags and leading dimensions, size-1 dimensions included, so the same bits), as a
    single call instruction: no checks (``m, n, k >= 1``, the operands in bounds, ``c``
    apart from ``a`` and ``b``), no compiled function, no signature per layout.
    """
    arrays = (a, b, c)
    if any(not isinstance(x, types.Array) or x.layout != "C" for x in arrays):
        raise TypingError("gemm_rows: a, b and c must be C-contiguous arrays")
    if a.dtype not in (types.float32, types.float64) or b.dtype != a.dtype or c.dtype != a.dtype:
        raise TypingError("gemm_rows: a, b and c must be arrays of one float dtype")
    sig = types.none(a, ia, ta, b, ib, tb, c, ic, m, n, k)

    def codegen(context, builder, sig, args):
        a_, ia_, ta_, b_, ib_, tb_, c_, ic_, m_, n_, k_ = args
        ty = sig.args
        one = ir.Constant(_i64, 1)
        m_, n_, k_, ia_, ib_, ic_ = (
            builder.sext(v, _i64) if v.type.width < 64 else v for v in (m_, n_, k_, ia_, ib_, ic_)
        )
        ta_ = builder.icmp_unsigned("!=", ta_, ir.Constant(ta_.type, 0))
        tb_ = builder.icmp_unsigned("!=", tb_, ir.Constant(tb_.type, 0))
        N, T = ir.Constant(_char, ord("n")), ir.Constant(_char, ord("t"))

        def at(index, value, offset):
            arr = context.make_array(ty[index])(context, builder, value)
            return builder.bitcast(builder.gep(arr.data, [offset]), _voidp)

        # gemm's _operand: a transposed view with a size-1 dimension has unit-stride rows
        a_deg = builder.or_(builder.icmp_signed("==", m_, one), builder.icmp_signed("==", k_, one))
        a_t = builder.and_(ta_, builder.not_(a_deg))
        lda = builder.select(ta_, builder.select(a_deg, k_, m_), k_)
        b_deg = builder.or_(builder.icmp_signed("==", k_, one), builder.icmp_signed("==", n_, one))
        b_t = builder.and_(tb_, builder.not_(b_deg))
        ldb = builder.select(tb_, builder.select(b_deg, n_, k_), n_)
        dtype = context.get_value_type(ty[0].dtype)
        # row-major c = op(a) op(b) is column-major c^T = op(b)^T op(a)^T: b first
        _call_xxgemm(
            context,
            builder,
            ty[0].dtype,
            (builder.select(b_t, T, N), builder.select(a_t, T, N)),
            (n_, m_, k_),
            ((at(3, b_, ib_), ldb), (at(0, a_, ia_), lda), (at(6, c_, ic_), n_)),
            ir.Constant(dtype, 1.0),
            ir.Constant(dtype, 0.0),
        )
        return context.get_dummy_value()

    return sig, codegen


@jit
def _operand(x):
    """(BLAS transpose flag, leading dimension) of the 2-D view ``x`` as the column-major
    transpose BLAS sees: 'n' for unit-stride rows, 't' for unit-stride columns."""
    r, s = x.shape
    step = x.itemsize
    if x.strides[1] == step or s == 1:
        if x.strides[0] >= 0 and x.strides[0] % step == 0:
            return _N, max(x.strides[0] // step, s, 1)
    if x.strides[0] == step or r == 1:
        if x.strides[1] >= 0 and x.strides[1] % step == 0:
            return _T, max(x.strides[1] // step, r, 1)
    raise ValueError("gemm: an operand has no unit stride along either axis")


@jit
def gemm(a, b, c, alpha=1.0, beta=0.0):
    """``c = alpha * a @ b + beta * c`` in place; returns nothing.

    a (m, k), b (k, n), c (m, n): 2-D arrays of one dtype (float32 or float64). ``a`` and
    ``b`` may be any views with a unit stride along one axis (transposes, blocks); ``c``
    must have unit-stride rows and must not overlap ``a`` or ``b``. With ``beta = 0``
    the old content of ``c`` is ignored (NaN in it does not propagate).
    """
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError("gemm: shapes of a, b and c do not match")
    if m == 0 or n == 0:
        return
    one = c.dtype.type
    if k == 0:  # a @ b is zero: c = beta * c
        for i in range(m):
            for j in range(n):
                c[i, j] = 0.0 if beta == 0.0 else beta * c[i, j]
        return
    if (c.strides[1] != c.itemsize and n > 1) or c.strides[0] < 0:
        raise ValueError("gemm: the rows of c must be contiguous")
    ldc = max(c.strides[0] // c.itemsize, n)
    ta, lda = _operand(a)
    tb, ldb = _operand(b)
    # row-major c = a b is column-major c^T = b^T a^T: b first
    _xxgemm(tb, ta, n, m, k, one(alpha), b, ldb, a, lda, one(beta), c, ldc)
