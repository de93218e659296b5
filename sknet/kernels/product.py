"""The matrix product every kernel family shares: ``c = op(a) @ b``, our own code.

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
135-175 for the loop nest this module had before its register tiles. Its bits do not
depend on how the rows or columns of ``c`` are cut into blocks either (see
:func:`product`), so a parallel partition changes no bit; OpenBLAS's blocked products
did.

The register tiles (:func:`_tile`) are LLVM vector IR written here, their width the
target's vector registers as numba's code generator reports its target features (its
``_tm_features``, an internal checked with numba 0.68): 64 bytes with AVX-512, else 32
(AVX2; LLVM splits vectors wider than the unit, so the code is correct anywhere). The
same bits for any width: a test compiles the product for 32-byte vectors on an AVX-512
machine and compares.
"""

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .runner import _native_call, entry, internal

__all__ = ["check_c_arrays", "mul", "mul_packed", "product", "product_entry"]

_u = numba.uint64  # unsigned indices: no negative-index wraparound code (vectorises)


#: rows of ``k`` per pass of the register tiles (b's rows of a pass stay in cache)
K_BLOCK = 256


def _vector_bytes(context):
    """Bytes of one vector register of the target numba compiles for: 64 with
    AVX-512, else 32 (read from the codegen's target features, which numba's cache
    keys its entries on, so a cached kernel never runs on another vector width)."""
    features = getattr(context.codegen(), "_tm_features", "") or ""
    return 64 if "+avx512f" in features.split(",") else 32


def _tile_vectors(context):
    """Vectors per row of a register tile: 6 rows x 4 accumulators with AVX-512's 32
    registers, 6 x 2 with AVX2's 16 (more would spill)."""
    return 4 if _vector_bytes(context) == 64 else 2


@intrinsic
def _tile_width(typingctx, c, vectors):
    """Values of ``c``'s dtype in ``vectors`` (an int literal: 1, or 0 for a whole
    tile row) vector registers of the target: a constant."""
    if not isinstance(vectors, types.IntegerLiteral):
        raise TypingError("_tile_width: vectors must be a literal")
    whole = vectors.literal_value == 0

    def codegen(context, builder, sig, args):
        size = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        width = _vector_bytes(context) // size
        return context.get_constant(types.int64, width * (_tile_vectors(context) if whole else 1))

    return types.int64(c, vectors), codegen


@intrinsic
def _tile(typingctx, a, p, si, sl, b, q, ldb, c, r, ldc, k, first, vectors, count, rows):
    """The register tile: ``c[r + i*ldc + j] (+)= sum_{t < k} a[p + i*si + t*sl] *
    b[q + t*ldb + j]`` for the ``rows`` rows i (an int literal) and the ``vectors`` * W
    columns j of the tile (W values a vector register; ``vectors`` an int literal, 0
    for :func:`_tile_vectors`), from +0 when ``first``, else from c's values. Each sum
    adds its k products in the order of t, one FMA each (the bits of :func:`product`'s
    one-row loop); the ``rows`` x ``vectors`` partial sums stay in registers for all of
    k (LLVM vector IR: per step, a broadcast of each row's a and ``vectors`` loads of
    b's row t). ``vectors`` -1: one vector of which only the first ``count`` (< W)
    columns are read and written (masked loads and stores), for the last columns of a
    row."""
    if not isinstance(vectors, types.IntegerLiteral) or not isinstance(rows, types.IntegerLiteral):
        raise TypingError("_tile: vectors and rows must be literals")
    check_c_arrays("_tile", a, b, c)
    n_rows = rows.literal_value

    def codegen(context, builder, sig, args):
        a_, p_, si_, sl_, b_, q_, ldb_, c_, r_, ldc_, k_, first_, _, count_, _ = args
        elt = context.get_data_type(sig.args[0].dtype)
        size = context.get_abi_sizeof(elt)
        W = _vector_bytes(context) // size
        masked = vectors.literal_value < 0
        nv = 1 if masked else vectors.literal_value or _tile_vectors(context)
        vty = ir.VectorType(elt, W)
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        data = [context.make_array(sig.args[i])(context, builder, args[i]).data for i in (0, 4, 7)]
        adata, bdata, cdata = data
        fnty = ir.FunctionType(vty, [vty, vty, vty])
        fma = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{W}f{size * 8}")
        zero = ir.Constant(vty, [ir.Constant(elt, 0.0)] * W)
        spread = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)

        def vec_at(base, offset, h):
            at = builder.add(offset, ir.Constant(i64, h * W)) if h else offset
            return builder.bitcast(builder.gep(base, [at]), vty.as_pointer())

        if masked:  # lanes j < count
            i64v = ir.VectorType(i64, W)
            lanes = ir.Constant(i64v, list(range(W)))
            n_ = builder.insert_element(
                ir.Constant(i64v, ir.Undefined), count_, ir.Constant(i32, 0)
            )
            n_ = builder.shuffle_vector(n_, ir.Constant(i64v, ir.Undefined), spread)
            mask = builder.icmp_unsigned("<", lanes, n_)
            align = ir.Constant(i32, size)
            name = f"v{W}f{size * 8}.p0"
            mtype = ir.VectorType(ir.IntType(1), W)
            mload = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(vty, [vty.as_pointer(), i32, mtype, vty]),
                f"llvm.masked.load.{name}",
            )
            mstore = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32, mtype]),
                f"llvm.masked.store.{name}",
            )

        def load(ptr):
            if masked:
                return builder.call(mload, [ptr, align, mask, zero])
            return builder.load(ptr, align=size)

        def store(value, ptr):
            if masked:
                builder.call(mstore, [value, ptr, align, mask])
            else:
                builder.store(value, ptr, align=size)

        others = range(1, n_rows)
        rows_ = [r_] + [builder.add(r_, builder.mul(ldc_, ir.Constant(i64, i))) for i in others]
        starts = [p_] + [builder.add(p_, builder.mul(si_, ir.Constant(i64, i))) for i in others]
        acc = []
        for r in rows_:
            for h in range(nv):
                old = load(vec_at(cdata, r, h))
                acc.append(cgutils.alloca_once_value(builder, builder.select(first_, zero, old)))
        with cgutils.for_range(builder, k_) as loop:
            t = loop.index
            boff = builder.add(q_, builder.mul(t, ldb_))
            bv = [load(vec_at(bdata, boff, h)) for h in range(nv)]
            toff = builder.mul(t, sl_)
            for i, p in enumerate(starts):
                x = builder.load(builder.gep(adata, [builder.add(p, toff)]))
                xv = builder.insert_element(
                    ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0)
                )
                xv = builder.shuffle_vector(xv, ir.Constant(vty, ir.Undefined), spread)
                for h in range(nv):
                    slot = acc[i * nv + h]
                    builder.store(builder.call(fma, [xv, bv[h], builder.load(slot)]), slot)
        for i, r in enumerate(rows_):
            for h in range(nv):
                store(builder.load(acc[i * nv + h]), vec_at(cdata, r, h))
        return context.get_dummy_value()

    sig = types.none(a, p, si, sl, b, q, ldb, c, r, ldc, k, first, vectors, count, rows)
    return sig, codegen


@internal(refcounts=False, fastmath={"contract"})
def product(a, ia, lda, ta, b, ib, ldb, c, ic, ldc, m, n, k):
    """``c = op(a) @ b`` on row-major matrices inside the 1-D arrays ``a``, ``b``, ``c``
    (flat views), from element offsets ``ia``, ``ib``, ``ic`` with row strides
    (leading dimensions) ``lda``, ``ldb``, ``ldc``: ``c`` (m, n), ``b`` (k, n); ``op(a)``
    (m, k) is ``a`` stored (m, k), or, when ``ta``, the transpose of ``a`` stored
    (k, m). ``m, n, k >= 1``, operands in bounds and ``c`` apart from them (not
    checked). (A product with a transposed right operand uses a transposed copy of it:
    one loop nest to compile.)

    Rows of ``c`` in blocks of 6, then of 4 (every row but one of an odd m; for m = 2
    or 3 none), each block's columns in register tiles (:func:`_tile`: 6 or 4 rows x 4
    vector registers with AVX-512, x 2 without; then one-vector tiles; then one masked
    tile for the last columns, fewer than a vector), whose partial sums stay in
    registers over ``K_BLOCK`` rows of k at a time (b's rows of a pass stay in cache);
    the rows past the blocks one at a time, a loop over the contiguous j of ``b`` and
    ``c`` that LLVM vectorises. Each ``c[i, j]`` adds its k products in the order of l,
    one FMA each, whichever the path: the same bits for a row in a block or alone, for
    any cut of the rows or columns, and for any vector width. (Blocks of 6 rows against
    only blocks of 4, float32, one thread, interleaved in one process, the same bits: the
    FCN's and the MNIST MLP's products 12-23% less time, 7 rows 50%, 8 rows (blocks of 4
    either way) the same; compile +0.13-0.16 CPU s per dtype. Against the loop nest
    the tiles replaced, rows in blocks of 4 and l in
    steps of 4 with ``c`` loaded and stored every 4 steps, float32, alternating old and
    new code in fresh processes, one thread: the FCN's layers 10-13%, an LSTM-128 layer
    6-18%, a GRU-32 layer 17% less time, the MNIST MLP (256, 128) epoch 20-30%; a
    10-column product (an output layer) 13 -> 6 us; compile 0.70-1.05 -> 0.48-0.65 CPU
    s. Tried and not kept: panels of b's rows kept in cache while every row block
    passes, no faster; the columns in chunks of 128, 2-20% slower; l in steps of 8,
    1-30% slower.)
    """
    zero = c.dtype.type(0)
    si = 1 if ta else lda  # op(a)[i, l] = a[ia + i*si + l*sl]
    sl = lda if ta else 1
    # the rows in blocks of 6, then of 4, covering every row but one of an odd m (m = 2:
    # none): 6*m6 + 4*n4 = m - m % 2 (2*n4 = (m - m % 2)/2 mod 3)
    half = m // 2
    n4 = (2 * half) % 3 if half >= 2 else 0
    m6 = 6 * ((half - 2 * n4) // 3) if half >= 2 else 0
    m4 = m6 + 4 * n4
    # the register tiles: whole tiles, then one-vector tiles, for each block of rows
    # and the columns up to n1; k in passes of K_BLOCK
    tw = _tile_width(c, 0)
    w1 = _tile_width(c, 1)
    nt = n - n % tw
    n1 = n - n % w1
    for t0 in range(0, k, K_BLOCK):
        kb = K_BLOCK if k - t0 > K_BLOCK else k - t0
        q = ib + t0 * ldb
        first = t0 == 0
        for i in range(0, m6, 6):
            r = ic + i * ldc
            p = ia + i * si + t0 * sl
            for j in range(0, nt, tw):
                _tile(a, p, si, sl, b, q + j, ldb, c, r + j, ldc, kb, first, 0, 0, 6)
            for j in range(nt, n1, w1):
                _tile(a, p, si, sl, b, q + j, ldb, c, r + j, ldc, kb, first, 1, 0, 6)
            if n1 < n:  # the last columns, fewer than a vector
                _tile(a, p, si, sl, b, q + n1, ldb, c, r + n1, ldc, kb, first, -1, n - n1, 6)
        # (the same loop for blocks of 4: a tile's row count is a compile-time literal)
        for i in range(m6, m4, 4):
            r = ic + i * ldc
            p = ia + i * si + t0 * sl
            for j in range(0, nt, tw):
                _tile(a, p, si, sl, b, q + j, ldb, c, r + j, ldc, kb, first, 0, 0, 4)
            for j in range(nt, n1, w1):
                _tile(a, p, si, sl, b, q + j, ldb, c, r + j, ldc, kb, first, 1, 0, 4)
            if n1 < n:
                _tile(a, p, si, sl, b, q + n1, ldb, c, r + n1, ldc, kb, first, -1, n - n1, 4)
    # the rows past the blocks (at most 3), one at a time
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
