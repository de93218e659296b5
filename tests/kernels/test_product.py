"""The shared matrix product (``kernels.product``) against NumPy."""

import numba
import numpy as np
import pytest

from sknet.kernels.product import mul, mul_packed, product, product_entry


@numba.njit
def _call_product(a, ia, lda, ta, b, ib, ldb, c, ic, ldc, m, n, k):
    product(a, ia, lda, ta, b, ib, ldb, c, ic, ldc, m, n, k)


# with the register tiles (``product``'s docstring): blocks of 6 and 4 rows and the
# rows after them (m = 2, 7, 14: 6 + 1, 6 + 4 + 4), whole tiles, one-vector tiles and
# the last columns (n = 83, 200), k in one or two passes (k = 300, 257 > K_BLOCK)
SHAPES = [
    (1, 1, 1),
    (2, 9, 5),
    (3, 5, 2),
    (4, 4, 4),
    (7, 33, 20),
    (9, 7, 13),
    (8, 512, 128),
    (8, 128, 512),
    (1, 512, 400),
    (5, 83, 300),
    (12, 200, 257),
    (14, 83, 257),
]


def _embedded(rng, rows, cols, pad, fill, dtype):
    """A (rows, cols) matrix inside rows of ``cols + pad`` elements, itself at offset 3
    of a flat array whose other elements are ``fill``: (matrix, flat, offset, stride)."""
    M = rng.normal(size=(rows, cols)).astype(dtype)
    flat = np.full(3 + rows * (cols + pad) + 5, fill, dtype)
    flat[3 : 3 + rows * (cols + pad)].reshape(rows, cols + pad)[:, :cols] = M
    return M, flat, 3, cols + pad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("m, n, k", SHAPES)
def test_product_against_numpy(dtype, ta, pad, m, n, k):
    """``product`` against NumPy, on operands at offsets inside larger arrays, with row
    strides past their widths (``pad``), whose other elements are NaN (a read outside an
    operand would show); nothing written outside ``c``'s elements; a row's values do not
    depend on whether it falls in a block of rows or after the last one, nor on a cut
    of the columns."""
    rng = np.random.default_rng(m * 1000 + n * 10 + k + pad)
    A, a, ia, lda = _embedded(rng, k if ta else m, m if ta else k, pad, np.nan, dtype)
    B, b, ib, ldb = _embedded(rng, k, n, pad, np.nan, dtype)
    ldc = n + pad
    c = np.full(4 + m * ldc + 9, -3.0, dtype)
    _call_product(a, ia, lda, ta, b, ib, ldb, c, 4, ldc, m, n, k)
    op_a = A.T if ta else A
    expected = op_a.astype(np.float64) @ B.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    inside = c[4 : 4 + m * ldc].reshape(m, ldc)
    got = inside[:, :n]
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * k)
    assert (c[:4] == -3.0).all() and (c[4 + m * ldc :] == -3.0).all()
    assert (inside[:, n:] == -3.0).all()
    # each row alone (m = 1: the path after the blocks of rows) gives the same bits
    row = np.empty(n, dtype)
    for i in range(m):
        a_row = np.ascontiguousarray(op_a[i])  # (k,) as a (1, k) matrix
        _call_product(a_row, 0, k, False, B.ravel(), 0, n, row, 0, n, 1, n, k)
        np.testing.assert_array_equal(row, got[i])
    # the columns in two parts give the same bits
    if n > 1:
        h = n // 2
        parts = np.empty((m, n), dtype)
        for lo, hi in ((0, h), (h, n)):
            _call_product(a, ia, lda, ta, b, ib + lo, ldb, parts.ravel(), lo, n, m, hi - lo, k)
        np.testing.assert_array_equal(parts, got)


@numba.njit
def _via_mul(prod, a, ta, b, c):
    m, n = c.shape
    k = b.shape[0]
    mul(prod, a, 0, a.shape[1], ta, b, 0, n, c, 0, n, m, n, k)


@numba.njit
def _via_mul_packed(prod, a, ta, b, c3, s):
    m, n = c3.shape[1], c3.shape[2]
    mul_packed(prod, a, 0, ta, b, 0, c3, s * m * n, m, n, b.shape[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
def test_mul_intrinsics(dtype, ta):
    """``mul`` and ``mul_packed`` call ``product`` through its entry on whole C arrays
    of any dimensions (their flat views): the same values as NumPy, into sample ``s`` of
    a 3-D ``c`` for ``mul_packed``."""
    rng = np.random.default_rng(5)
    m, n, k = 6, 9, 7
    A = rng.normal(size=(k, m) if ta else (m, k)).astype(dtype)
    B = rng.normal(size=(k, n)).astype(dtype)
    expected = (A.T if ta else A) @ B
    prod = product_entry(np.dtype(dtype))
    tol = 1e-5 if dtype == np.float32 else 1e-13
    c = np.zeros((m, n), dtype)
    _via_mul(prod, A, ta, B, c)
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol)
    c3 = np.zeros((3, m, n), dtype)
    _via_mul_packed(prod, A, ta, B, c3, 1)
    np.testing.assert_array_equal(c3[1], c)
    assert not c3[0].any() and not c3[2].any()


def test_tiles_of_a_narrower_vector_unit_give_the_same_bits(monkeypatch):
    """Compiled for a 32-byte vector unit (AVX2: tiles of 6 or 4 rows x 2 vectors) instead of
    this machine's (64 bytes with AVX-512), ``product`` gives the same bits: each sum's
    order does not depend on the tiles."""
    from sknet.kernels import product as P

    monkeypatch.setattr(P, "_vector_bytes", lambda context: 32)
    narrow = numba.njit(fastmath={"contract"}, error_model="numpy")(P.product.py_func)
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(11)
        for m, n, k, ta in [(12, 200, 300, False), (9, 83, 257, True), (14, 8, 5, False)]:
            A = rng.normal(size=(k, m) if ta else (m, k)).astype(dtype)
            B = rng.normal(size=(k, n)).astype(dtype)
            lda = m if ta else k
            got = np.empty(m * n, dtype)
            narrow(A.ravel(), 0, lda, ta, B.ravel(), 0, n, got, 0, n, m, n, k)
            want = np.empty(m * n, dtype)
            _call_product(A.ravel(), 0, lda, ta, B.ravel(), 0, n, want, 0, n, m, n, k)
            np.testing.assert_array_equal(got, want)
    sig = narrow.signatures[0]
    ir_text = narrow.inspect_llvm(sig)
    assert "llvm.fma.v8f32" in ir_text and "llvm.fma.v16f32" not in ir_text  # the tiles
