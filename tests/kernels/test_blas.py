"""gemm against NumPy's matmul: layouts, transposes, blocks, alpha/beta, edge shapes;
gemm_rows against gemm, bit for bit."""

import numba
import numpy as np
import pytest
from numba.core.errors import TypingError
from numpy.testing import assert_allclose, assert_array_equal

from sknet.kernels.blas import gemm, gemm_rows

DTYPES = [np.float64, np.float32]


def tol(dtype):
    return {"rtol": 1e-12, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-5}


def views(x):
    """x as a C array, a Fortran array, a transposed view of a copy and a block."""
    big = np.zeros((x.shape[0] + 3, x.shape[1] + 5), x.dtype)
    big[1 : 1 + x.shape[0], 2 : 2 + x.shape[1]] = x
    bigT = np.zeros((x.shape[1] + 4, x.shape[0] + 2), x.dtype)
    bigT[3 : 3 + x.shape[1], 1 : 1 + x.shape[0]] = x.T
    return {
        "C": np.ascontiguousarray(x),
        "F": np.asfortranarray(x),
        "block": big[1 : 1 + x.shape[0], 2 : 2 + x.shape[1]],
        "Tblock": bigT[3 : 3 + x.shape[1], 1 : 1 + x.shape[0]].T,
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("la", ["C", "F", "block", "Tblock"])
@pytest.mark.parametrize("lb", ["C", "F", "block", "Tblock"])
def test_gemm_layouts(la, lb, dtype, rng):
    a = rng.normal(size=(7, 5)).astype(dtype)
    b = rng.normal(size=(5, 4)).astype(dtype)
    c = np.full((7, 4), np.nan, dtype)
    gemm(views(a)[la], views(b)[lb], c)
    assert_allclose(c, a.astype(np.float64) @ b, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_alpha_beta_and_output_block(dtype, rng):
    a = rng.normal(size=(6, 3)).astype(dtype)
    b = rng.normal(size=(3, 8)).astype(dtype)
    big = rng.normal(size=(9, 12)).astype(dtype)
    before = big.copy()
    c = big[2:8, 3:11]  # unit-stride rows, row stride 12
    gemm(a, b, c, 2.0, 0.5)
    expected = before.copy()
    expected[2:8, 3:11] = 2.0 * (a.astype(np.float64) @ b) + 0.5 * before[2:8, 3:11]
    assert_allclose(big, expected, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_vector_shapes_and_empty(dtype, rng):
    a = rng.normal(size=(1, 5)).astype(dtype)
    b = rng.normal(size=(5, 1)).astype(dtype)
    c = np.empty((1, 1), dtype)
    gemm(a, b, c)
    assert_allclose(c, a.astype(np.float64) @ b, **tol(dtype))
    col = rng.normal(size=(4, 6)).astype(dtype)[:, 2:3]  # (4, 1), row stride 6
    out = np.empty((4, 5), dtype)
    gemm(col, a, out)
    assert_allclose(out, col.astype(np.float64) @ a, **tol(dtype))
    # k = 0: a @ b is zero, so c = beta * c
    c = np.ones((3, 2), dtype)
    gemm(np.empty((3, 0), dtype), np.empty((0, 2), dtype), c, 1.0, 3.0)
    assert_allclose(c, 3.0)
    gemm(np.empty((3, 0), dtype), np.empty((0, 2), dtype), c)
    assert_allclose(c, 0.0)
    gemm(np.empty((0, 3), dtype), np.empty((3, 2), dtype), np.empty((0, 2), dtype))


def test_gemm_bad_input(rng):
    a = rng.normal(size=(4, 3))
    with pytest.raises(ValueError, match="shapes"):
        gemm(a, np.ones((4, 2)), np.empty((4, 2)))
    with pytest.raises(ValueError, match="rows of c"):
        gemm(a, np.ones((3, 2)), np.empty((2, 4)).T)
    with pytest.raises(ValueError, match="unit stride"):
        gemm(np.ones((8, 6))[::2, ::2], np.ones((3, 2)), np.empty((4, 2)))
    with pytest.raises(TypingError, match="one float dtype"):
        gemm(a.astype(np.float32), np.ones((3, 2)), np.empty((4, 2)))


@numba.njit
def _gemm_rows(a, ia, ta, b, ib, tb, c, ic, m, n, k):
    gemm_rows(a, ia, ta, b, ib, tb, c, ic, m, n, k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("m, n, k", [(5, 4, 3), (1, 4, 3), (5, 1, 3), (5, 4, 1), (1, 1, 1)])
def test_gemm_rows_is_gemm_on_the_same_views(m, n, k, ta, tb, dtype, rng):
    """Matrices stored at offsets inside flat and 3-D C arrays: the same bits as gemm on
    the equivalent (transposed) views, size-1 dimensions included."""
    ia, ib, ic = 3, 7, 2
    a = rng.normal(size=ia + m * k + 4).astype(dtype)
    b = rng.normal(size=(2, ib + k * n + 1, 1)).astype(dtype)  # a 3-D C array
    c = np.full(ic + m * n + 3, np.nan, dtype)
    A = a[ia : ia + m * k].reshape((k, m)).T if ta else a[ia : ia + m * k].reshape((m, k))
    flat_b = b.reshape(-1)
    B = flat_b[ib : ib + k * n].reshape((n, k)).T if tb else flat_b[ib : ib + k * n].reshape((k, n))
    _gemm_rows(a, ia, ta, b, ib, tb, c, ic, m, n, k)
    expected = np.full((m, n), np.nan, dtype)
    gemm(A, B, expected)
    assert_array_equal(c[ic : ic + m * n].reshape(m, n), expected)
    assert np.isnan(c[:ic]).all() and np.isnan(c[ic + m * n :]).all()  # nothing else written
    assert_allclose(expected, A.astype(np.float64) @ B, **tol(dtype))


def test_gemm_rows_bad_types():
    a = np.ones(6)
    with pytest.raises(TypingError, match="one float dtype"):
        _gemm_rows(a.astype(np.float32), 0, False, a, 0, False, np.empty(4), 0, 2, 2, 3)
    with pytest.raises(TypingError, match="C-contiguous"):
        _gemm_rows(a[::2], 0, False, a, 0, False, np.empty(4), 0, 1, 2, 3)
