"""gemm against NumPy's matmul: layouts, transposes, blocks, alpha/beta, edge shapes."""

import numpy as np
import pytest
from numba.core.errors import TypingError
from numpy.testing import assert_allclose

from sknet.kernels.blas import gemm

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
