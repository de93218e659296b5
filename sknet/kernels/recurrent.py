"""Recurrent kernels: Elman RNN, LSTM and GRU, forward and backpropagation through time.

Conventions shared by every kernel here
---------------------------------------
* ``X`` is ``(n, T, d)`` C-contiguous: ``n`` sequences of ``T`` steps of ``d`` features.
* Weights multiply from the right ("x @ W", like scikit-learn's ``coefs_``):
  ``W_x`` is ``(d, G*H)`` and ``W_h`` is ``(H, G*H)``, with ``G`` gate blocks of ``H``
  columns each (``G`` = 1 Elman, 4 LSTM, 3 GRU). Gate orders are PyTorch's:
  LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``, so PyTorch weights import as
  ``W_x = weight_ih.T``, ``W_h = weight_hh.T`` (LSTM: ``b = bias_ih + bias_hh``).
* The initial state is zero: ``h_{-1} = 0`` (and ``c_{-1} = 0``).
* Forward writes every hidden state into ``Hs`` ``(n, T, H)`` plus a cache; backward takes
  ``dHs`` ``(n, T, H)``, the loss gradient with respect to every hidden state (zeros
  except the last step for sequence-to-one models), and *overwrites* the parameter
  gradients and, when ``need_dX`` is true, ``dX`` ``(n, T, d)``.
* All arrays of one call share one dtype, float32 or float64, and are C-contiguous.
  float64 uses exact ``math.tanh`` / ``math.exp``; float32 uses a branch-free rational
  ``tanh`` (max abs error < 1e-6, see ``_tanh_rational``) and
  sigmoid = 0.5 + 0.5 tanh(x / 2), because ``math.tanh`` / ``math.exp`` do not vectorise.

How the work is laid out
------------------------
The batch is cut into blocks of ``_CHUNK`` samples, a number fixed in the source. Each
kernel is one ``prange`` over the blocks; a block runs its whole time loop with BLAS
calls on its own rows (``(S*T, d) @ W_x`` once, then ``(S, H) @ W_h`` per step), so no
two tasks write the same memory. Weight gradients are per-block GEMMs over the block's
(sample, step) rows, written to per-block buffers and summed in block order. The
partition does not depend on the thread count, so neither do the results (bit for bit).

The BLAS calls are small; they must run single-threaded inside the ``prange`` (limit
OpenBLAS to one thread, e.g. ``threadpoolctl.threadpool_limits(1, "blas")`` after
importing ``scipy.linalg``). Results are the same either way; speed is not.

Callers allocate the arrays once per batch shape (``*Cache.empty`` / ``*Work.empty``) and
pass them unpacked::

    cache = LSTMCache.empty(n, T, d, H, X.dtype)
    work = LSTMWork.empty(n, T, d, H, X.dtype)
    lstm_forward(X, W_x, W_h, b, Hs, *cache)
    lstm_backward(X, W_x, W_h, Hs, *cache, dHs, dW_x, dW_h, db, dX, True, *work)
"""

import math
from typing import NamedTuple

import numpy as np
from numba import prange, types
from numba.extending import overload

from .._config import jit, jit_parallel

__all__ = [
    "ELMAN_RELU",
    "ELMAN_TANH",
    "ElmanCache",
    "ElmanWork",
    "GRUCache",
    "GRUWork",
    "LSTMCache",
    "LSTMWork",
    "elman_backward",
    "elman_forward",
    "gru_backward",
    "gru_forward",
    "lstm_backward",
    "lstm_forward",
    "sigmoid",
    "tanh",
]

ELMAN_TANH = 0
ELMAN_RELU = 1

# Samples per parallel task. Fixed (never derived from the thread count) so that the
# partition, and with it every rounding, is the same whatever numba's thread count.
_CHUNK = 8


def n_blocks(n):
    """Number of sample blocks the kernels cut a batch of ``n`` into."""
    return (n + _CHUNK - 1) // _CHUNK


# --------------------------------------------------------------------------------------
# Caches (forward -> backward) and work arrays (backward), allocated by the caller
# --------------------------------------------------------------------------------------
class ElmanCache(NamedTuple):
    """Scratch of ``elman_forward`` / ``elman_backward`` (``Hs`` is the real cache)."""

    step_a: np.ndarray  # (n, H)  one step's h_{t-1} W_h (backward: da_t)
    step_h: np.ndarray  # (n, H)  h_{t-1} (backward: da_{t+1} W_h^T)

    @classmethod
    def empty(cls, n, T, d, H, dtype):
        return cls(np.empty((n, H), dtype), np.empty((n, H), dtype))


class ElmanWork(NamedTuple):
    """Work arrays of ``elman_backward``."""

    dgates: np.ndarray  # (n, T, H)  dL/da_t
    h_prev: np.ndarray  # (n, T, H)  h_{t-1}, zero at t = 0
    dW_x_parts: np.ndarray  # (B, d, H)  per-block sums, B = n_blocks(n)
    dW_h_parts: np.ndarray  # (B, H, H)
    db_parts: np.ndarray  # (B, H)

    @classmethod
    def empty(cls, n, T, d, H, dtype):
        B = n_blocks(n)
        return cls(
            np.empty((n, T, H), dtype),
            np.empty((n, T, H), dtype),
            np.empty((B, d, H), dtype),
            np.empty((B, H, H), dtype),
            np.empty((B, H), dtype),
        )


class LSTMCache(NamedTuple):
    """What ``lstm_forward`` stores for ``lstm_backward``, plus per-step scratch."""

    gates: np.ndarray  # (n, T, 4H)  activated gates i, f, g, o
    cells: np.ndarray  # (n, T, H)   c_t
    tanh_cells: np.ndarray  # (n, T, H)   tanh(c_t)
    step_a: np.ndarray  # (n, 4H)     scratch: h_{t-1} W_h (backward: da_t)
    step_h: np.ndarray  # (n, H)      scratch: h_{t-1} (backward: da_{t+1} W_h^T)

    @classmethod
    def empty(cls, n, T, d, H, dtype):
        return cls(
            np.empty((n, T, 4 * H), dtype),
            np.empty((n, T, H), dtype),
            np.empty((n, T, H), dtype),
            np.empty((n, 4 * H), dtype),
            np.empty((n, H), dtype),
        )


class LSTMWork(NamedTuple):
    """Work arrays of ``lstm_backward``."""

    dgates: np.ndarray  # (n, T, 4H)  dL/da_t, a_t the gate pre-activations
    h_prev: np.ndarray  # (n, T, H)   h_{t-1}, zero at t = 0
    dc: np.ndarray  # (n, H)      dL/dc_t carried back in time
    dW_x_parts: np.ndarray  # (B, d, 4H)  per-block sums, B = n_blocks(n)
    dW_h_parts: np.ndarray  # (B, H, 4H)
    db_parts: np.ndarray  # (B, 4H)

    @classmethod
    def empty(cls, n, T, d, H, dtype):
        B = n_blocks(n)
        return cls(
            np.empty((n, T, 4 * H), dtype),
            np.empty((n, T, H), dtype),
            np.empty((n, H), dtype),
            np.empty((B, d, 4 * H), dtype),
            np.empty((B, H, 4 * H), dtype),
            np.empty((B, 4 * H), dtype),
        )


class GRUCache(NamedTuple):
    """What ``gru_forward`` stores for ``gru_backward``, plus per-step scratch."""

    gates: np.ndarray  # (n, T, 3H)  activated gates r, z, n
    hn: np.ndarray  # (n, T, H)   h_{t-1} W_hn + b_hn
    step_a: np.ndarray  # (n, 3H)     scratch: h_{t-1} W_h (backward: dv_t)
    step_h: np.ndarray  # (n, H)      scratch: h_{t-1} (backward: dv_{t+1} W_h^T)

    @classmethod
    def empty(cls, n, T, d, H, dtype):
        return cls(
            np.empty((n, T, 3 * H), dtype),
            np.empty((n, T, H), dtype),
            np.empty((n, 3 * H), dtype),
            np.empty((n, H), dtype),
        )


class GRUWork(NamedTuple):
    """Work arrays of ``gru_backward``."""

    dgates_x: np.ndarray  # (n, T, 3H)  dL/du_t, u_t = x_t W_x + b_x
    dgates_h: np.ndarray  # (n, T, 3H)  dL/dv_t, v_t = h_{t-1} W_h + b_h
    h_prev: np.ndarray  # (n, T, H)   h_{t-1}, zero at t = 0
    dh_z: np.ndarray  # (n, H)      dh_{t+1} * z_{t+1}, the direct path back in time
    dW_x_parts: np.ndarray  # (B, d, 3H)  per-block sums, B = n_blocks(n)
    dW_h_parts: np.ndarray  # (B, H, 3H)
    db_x_parts: np.ndarray  # (B, 3H)
    db_h_parts: np.ndarray  # (B, 3H)

    @classmethod
    def empty(cls, n, T, d, H, dtype):
        B = n_blocks(n)
        return cls(
            np.empty((n, T, 3 * H), dtype),
            np.empty((n, T, 3 * H), dtype),
            np.empty((n, T, H), dtype),
            np.empty((n, H), dtype),
            np.empty((B, d, 3 * H), dtype),
            np.empty((B, H, 3 * H), dtype),
            np.empty((B, 3 * H), dtype),
            np.empty((B, 3 * H), dtype),
        )


# --------------------------------------------------------------------------------------
# Scalar activations, chosen by dtype at compile time
# --------------------------------------------------------------------------------------
# tanh(x) ~ x P(x^2) / Q(x^2) on [-c, c], saturated outside (the rational form Eigen uses
# for float). Max abs error about 4e-7 against float64 tanh; branch-free so loops over it
# vectorise (math.tanh does not: no SVML with the PyPI llvmlite).
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_CLAMP = np.float32(7.90531110763549805)
_HALF32 = np.float32(0.5)


@jit
def _tanh_float32(x):
    """float32 tanh: x P(x^2) / Q(x^2) with x clamped to [-7.905, 7.905] (NaN stays NaN)."""
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


@jit
def _sigmoid_float32(x):
    """float32 sigmoid(x) = 0.5 + 0.5 tanh(x / 2)."""
    return _HALF32 + _HALF32 * _tanh_float32(_HALF32 * x)


@jit
def _sigmoid_float64(x):
    return 1.0 / (1.0 + math.exp(-x))


def tanh(x):
    """Scalar tanh for kernels: ``math.tanh`` for float64, rational for float32."""
    return math.tanh(x)


def sigmoid(x):
    """Scalar logistic sigmoid for kernels: exact for float64, via rational tanh for float32."""
    return 1.0 / (1.0 + math.exp(-x))


# Resolved by the argument's type when a kernel compiles; the jitted helpers carry the
# project's flags (error_model='numpy', so the division does not block vectorisation).
@overload(tanh)
def _tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh_float32(x)
    return lambda x: math.tanh(x)


@overload(sigmoid)
def _sigmoid_overload(x):
    if x == types.float32:
        return lambda x: _sigmoid_float32(x)
    return lambda x: _sigmoid_float64(x)


@jit
def apply_tanh(x, out):
    """``out[i] = tanh(x[i])`` with the kernels' scalar tanh; 1-d arrays (for tests)."""
    for i in range(x.shape[0]):
        out[i] = tanh(x[i])


@jit
def apply_sigmoid(x, out):
    """``out[i] = sigmoid(x[i])`` with the kernels' scalar sigmoid; 1-d arrays (for tests)."""
    for i in range(x.shape[0]):
        out[i] = sigmoid(x[i])


# --------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------
@jit
def _input_projection(lo, hi, X, W_x, A):
    """``A[s, t] = x_{s,t} W_x`` for every step of samples ``lo <= s < hi`` (one GEMM)."""
    T, d = X.shape[1], X.shape[2]
    rows = (hi - lo) * T
    np.dot(X[lo:hi].reshape(rows, d), W_x, A[lo:hi].reshape(rows, A.shape[2]))


@jit
def _block_grads(lo, hi, X, W_x, dA_x, h_prev, dA_h, dX, need_dX, dW_x_parts, dW_h_parts):
    """Block ``c``'s share of the weight gradients, and its rows of ``dX``.

    ``dW_x_parts[c] = X_b^T dA_x``, ``dW_h_parts[c] = h_prev_b^T dA_h`` over the block's
    (sample, step) rows; ``dX_b = dA_x W_x^T`` when ``need_dX``.
    """
    c = lo // _CHUNK
    T, d = X.shape[1], X.shape[2]
    H, GH = h_prev.shape[2], dA_x.shape[2]
    rows = (hi - lo) * T
    Ax = dA_x[lo:hi].reshape(rows, GH)
    np.dot(X[lo:hi].reshape(rows, d).T, Ax, dW_x_parts[c])
    np.dot(h_prev[lo:hi].reshape(rows, H).T, dA_h[lo:hi].reshape(rows, GH), dW_h_parts[c])
    if need_dX:
        np.dot(Ax, W_x.T, dX[lo:hi].reshape(rows, d))


@jit
def _block_column_sums(lo, hi, A, parts):
    """``parts[c, j] = sum over samples lo <= s < hi and steps t of A[s, t, j]``, c the block."""
    c = lo // _CHUNK
    T, G = A.shape[1], A.shape[2]
    A2 = A[lo:hi].reshape((hi - lo) * T, G)
    out = parts[c]
    for j in range(G):
        out[j] = A2[0, j]
    for r in range(1, A2.shape[0]):
        for j in range(G):
            out[j] += A2[r, j]


@jit
def _reduce(parts, out):
    """``out = parts[0] + parts[1] + ...`` in block order; ``parts`` is ``(B,) + out.shape``."""
    B = parts.shape[0]
    P = parts.reshape(B, out.size)
    o = out.reshape(out.size)
    for i in range(o.size):
        o[i] = P[0, i]
    for c in range(1, B):
        for i in range(o.size):
            o[i] += P[c, i]


# --------------------------------------------------------------------------------------
# Elman RNN
# --------------------------------------------------------------------------------------
@jit
def _elman_forward_block(lo, hi, W_h, b, activation, Hs, step_a, step_h):
    T, H = Hs.shape[1], Hs.shape[2]
    zero = Hs.dtype.type(0.0)
    step_h[lo:hi] = zero
    for t in range(T):
        if t > 0:
            np.dot(step_h[lo:hi], W_h, step_a[lo:hi])
        else:
            step_a[lo:hi] = zero
        for s in range(lo, hi):
            h = Hs[s, t]
            a = step_a[s]
            if activation == ELMAN_RELU:
                for j in range(H):
                    h[j] = max((h[j] + a[j]) + b[j], zero)
            else:
                for j in range(H):
                    h[j] = tanh((h[j] + a[j]) + b[j])
            h_state = step_h[s]
            for j in range(H):
                h_state[j] = h[j]


@jit_parallel
def elman_forward(X, W_x, W_h, b, activation, Hs, step_a, step_h):
    """Elman RNN over whole sequences.

    ``a_t = x_t W_x + h_{t-1} W_h + b``, ``h_t = act(a_t)``, ``h_{-1} = 0``, with
    ``act = tanh`` (``activation == ELMAN_TANH``) or ``relu`` (``ELMAN_RELU``).

    Parameters
    ----------
    X : (n, T, d) inputs.
    W_x : (d, H), W_h : (H, H), b : (H,) parameters.
    activation : int, ``ELMAN_TANH`` or ``ELMAN_RELU``.
    Hs : (n, T, H) output, overwritten with ``h_t``; the only thing backward needs.
    step_a, step_h : (n, H) scratch, see ``ElmanCache``.
    """
    n = X.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = np.int64(c) * _CHUNK
        hi = min(lo + _CHUNK, n)
        _input_projection(lo, hi, X, W_x, Hs)  # Hs[s, t] = x_t W_x, activated in place
        _elman_forward_block(lo, hi, W_h, b, activation, Hs, step_a, step_h)


@jit
def _elman_backward_block(lo, hi, W_h, activation, Hs, dHs, step_a, step_h, dgates, h_prev):
    T, H = Hs.shape[1], Hs.shape[2]
    zero = Hs.dtype.type(0.0)
    one = Hs.dtype.type(1.0)
    step_h[lo:hi] = zero  # da_{t+1} W_h^T, the gradient reaching h_t through the recurrence
    for t in range(T - 1, -1, -1):
        for s in range(lo, hi):
            h = Hs[s, t]
            dh = step_h[s]
            da = dgates[s, t]
            dh_out = dHs[s, t]
            if activation == ELMAN_RELU:
                for j in range(H):
                    da[j] = (dh[j] + dh_out[j]) if h[j] > zero else zero
            else:
                for j in range(H):
                    da[j] = (dh[j] + dh_out[j]) * (one - h[j] * h[j])
            da_step = step_a[s]
            for j in range(H):
                da_step[j] = da[j]
            hp = h_prev[s, t]
            if t > 0:
                h_before = Hs[s, t - 1]
                for j in range(H):
                    hp[j] = h_before[j]
            else:
                for j in range(H):
                    hp[j] = zero
        if t > 0:
            np.dot(step_a[lo:hi], W_h.T, step_h[lo:hi])


@jit_parallel
def elman_backward(
    X,
    W_x,
    W_h,
    activation,
    Hs,
    step_a,
    step_h,
    dHs,
    dW_x,
    dW_h,
    db,
    dX,
    need_dX,
    dgates,
    h_prev,
    dW_x_parts,
    dW_h_parts,
    db_parts,
):
    """Backpropagation through time for ``elman_forward``.

    With ``dh_t = dHs_t + da_{t+1} W_h^T``: ``da_t = dh_t * act'(a_t)`` where
    ``tanh' = 1 - h_t^2`` and ``relu' = [h_t > 0]``; then
    ``dW_x = sum x_t^T da_t``, ``dW_h = sum h_{t-1}^T da_t``, ``db = sum da_t``,
    ``dx_t = da_t W_x^T`` (sums over steps and samples).

    Parameters
    ----------
    X, W_x, W_h, activation, Hs, step_a, step_h : as given to ``elman_forward``.
    dHs : (n, T, H) dL/dh_t for every step.
    dW_x : (d, H), dW_h : (H, H), db : (H,) overwritten with the gradients.
    dX : (n, T, d) overwritten with dL/dX when ``need_dX``; otherwise not touched
        (any array of the dtype and ndim, e.g. ``np.empty((0, 0, 0))``).
    need_dX : bool.
    dgates, h_prev, dW_x_parts, dW_h_parts, db_parts : work arrays, see ``ElmanWork``.
    """
    n = X.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = np.int64(c) * _CHUNK
        hi = min(lo + _CHUNK, n)
        _elman_backward_block(lo, hi, W_h, activation, Hs, dHs, step_a, step_h, dgates, h_prev)
        _block_grads(lo, hi, X, W_x, dgates, h_prev, dgates, dX, need_dX, dW_x_parts, dW_h_parts)
        _block_column_sums(lo, hi, dgates, db_parts)
    _reduce(dW_x_parts, dW_x)
    _reduce(dW_h_parts, dW_h)
    _reduce(db_parts, db)


# --------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------
@jit
def _lstm_forward_block(lo, hi, W_h, b, Hs, gates, cells, tanh_cells, step_a, step_h):
    T, H = Hs.shape[1], Hs.shape[2]
    zero = Hs.dtype.type(0.0)
    step_h[lo:hi] = zero
    # The element-wise loops index views from 0 and each touch few arrays: that keeps
    # numba's negative-index handling and LLVM's runtime alias checks out of the way of
    # vectorisation.
    for t in range(T):
        if t > 0:
            np.dot(step_h[lo:hi], W_h, step_a[lo:hi])
        else:
            step_a[lo:hi] = zero
        for s in range(lo, hi):
            a = gates[s, t]
            r = step_a[s]
            # a_t = x_t W_x + h_{t-1} W_h + b, then i, f = sigmoid, g = tanh, o = sigmoid
            a_if, r_if, b_if = a[: 2 * H], r[: 2 * H], b[: 2 * H]
            for j in range(2 * H):
                a_if[j] = sigmoid((a_if[j] + r_if[j]) + b_if[j])
            a_g, r_g, b_g = a[2 * H : 3 * H], r[2 * H : 3 * H], b[2 * H : 3 * H]
            for j in range(H):
                a_g[j] = tanh((a_g[j] + r_g[j]) + b_g[j])
            a_o, r_o, b_o = a[3 * H :], r[3 * H :], b[3 * H :]
            for j in range(H):
                a_o[j] = sigmoid((a_o[j] + r_o[j]) + b_o[j])
            i_g = a[:H]
            f_g = a[H : 2 * H]
            g_g = a[2 * H : 3 * H]
            o_g = a[3 * H :]
            cell = cells[s, t]
            tc = tanh_cells[s, t]
            if t > 0:
                c_prev = cells[s, t - 1]
                for j in range(H):
                    c = f_g[j] * c_prev[j] + i_g[j] * g_g[j]  # c_t = f c_{t-1} + i g
                    cell[j] = c
                    tc[j] = tanh(c)
            else:
                for j in range(H):
                    c = i_g[j] * g_g[j]
                    cell[j] = c
                    tc[j] = tanh(c)
            h = Hs[s, t]
            h_state = step_h[s]
            for j in range(H):
                v = o_g[j] * tc[j]  # h_t = o tanh(c_t)
                h[j] = v
                h_state[j] = v


@jit_parallel
def lstm_forward(X, W_x, W_h, b, Hs, gates, cells, tanh_cells, step_a, step_h):
    """LSTM over whole sequences, PyTorch's gate order (i, f, g, o).

    With ``a_t = x_t W_x + h_{t-1} W_h + b`` split in four blocks of ``H`` columns::

        i_t = sigmoid(a_t[0:H])      f_t = sigmoid(a_t[H:2H])
        g_t = tanh(a_t[2H:3H])       o_t = sigmoid(a_t[3H:4H])
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)        (h_{-1} = c_{-1} = 0)

    Parameters
    ----------
    X : (n, T, d) inputs.
    W_x : (d, 4H), W_h : (H, 4H), b : (4H,) parameters (``b`` = PyTorch's
        ``bias_ih + bias_hh``).
    Hs : (n, T, H) output, overwritten with ``h_t``.
    gates : (n, T, 4H) cache, overwritten with the activated ``i, f, g, o``.
    cells : (n, T, H) cache, overwritten with ``c_t``.
    tanh_cells : (n, T, H) cache, overwritten with ``tanh(c_t)``.
    step_a : (n, 4H), step_h : (n, H) scratch.
    """
    n = X.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = np.int64(c) * _CHUNK
        hi = min(lo + _CHUNK, n)
        _input_projection(lo, hi, X, W_x, gates)  # gates[s, t] = x_t W_x, activated in place
        _lstm_forward_block(lo, hi, W_h, b, Hs, gates, cells, tanh_cells, step_a, step_h)


@jit
def _lstm_backward_block(
    lo, hi, W_h, Hs, gates, cells, tanh_cells, dHs, step_a, step_h, dgates, h_prev, dc_carry
):
    T, H = Hs.shape[1], Hs.shape[2]
    zero = Hs.dtype.type(0.0)
    one = Hs.dtype.type(1.0)
    step_h[lo:hi] = zero  # da_{t+1} W_h^T, the gradient reaching h_t through the recurrence
    dc_carry[lo:hi] = zero  # dc_{t+1} * f_{t+1}, then dc_t
    for t in range(T - 1, -1, -1):
        for s in range(lo, hi):
            a = gates[s, t]
            i_g = a[:H]
            f_g = a[H : 2 * H]
            g_g = a[2 * H : 3 * H]
            o_g = a[3 * H :]
            da = dgates[s, t]
            da_i = da[:H]
            da_f = da[H : 2 * H]
            da_g = da[2 * H : 3 * H]
            da_o = da[3 * H :]
            dh = step_h[s]
            dc = dc_carry[s]
            tc = tanh_cells[s, t]
            dh_out = dHs[s, t]
            for j in range(H):
                dh[j] += dh_out[j]  # dh_t = dHs_t + da_{t+1} W_h^T
            for j in range(H):
                o = o_g[j]
                dc[j] += dh[j] * o * (one - tc[j] * tc[j])  # dc_t
                da_o[j] = dh[j] * tc[j] * o * (one - o)
            for j in range(H):
                i = i_g[j]
                g = g_g[j]
                da_i[j] = dc[j] * g * i * (one - i)
                da_g[j] = dc[j] * i * (one - g * g)
            hp = h_prev[s, t]
            if t > 0:
                c_prev = cells[s, t - 1]
                for j in range(H):
                    f = f_g[j]
                    da_f[j] = dc[j] * c_prev[j] * f * (one - f)
                h_before = Hs[s, t - 1]
                for j in range(H):
                    hp[j] = h_before[j]
            else:
                for j in range(H):
                    da_f[j] = zero
                    hp[j] = zero
            for j in range(H):
                dc[j] *= f_g[j]  # dc_t f_t, carried to step t - 1
            da_step = step_a[s]
            for j in range(4 * H):
                da_step[j] = da[j]
        if t > 0:
            np.dot(step_a[lo:hi], W_h.T, step_h[lo:hi])


@jit_parallel
def lstm_backward(
    X,
    W_x,
    W_h,
    Hs,
    gates,
    cells,
    tanh_cells,
    step_a,
    step_h,
    dHs,
    dW_x,
    dW_h,
    db,
    dX,
    need_dX,
    dgates,
    h_prev,
    dc,
    dW_x_parts,
    dW_h_parts,
    db_parts,
):
    """Backpropagation through time for ``lstm_forward``.

    Going back in time with ``dh_t = dHs_t + da_{t+1} W_h^T`` and
    ``dc_t = dc_{t+1} * f_{t+1} + dh_t * o_t * (1 - tanh(c_t)^2)``::

        da_i = dc_t * g_t * i_t (1 - i_t)        da_f = dc_t * c_{t-1} * f_t (1 - f_t)
        da_g = dc_t * i_t * (1 - g_t^2)          da_o = dh_t * tanh(c_t) * o_t (1 - o_t)

    then ``dW_x = sum x_t^T da_t``, ``dW_h = sum h_{t-1}^T da_t``, ``db = sum da_t``,
    ``dx_t = da_t W_x^T`` (sums over steps and samples).

    Parameters
    ----------
    X, W_x, W_h, Hs, gates, cells, tanh_cells, step_a, step_h : as given to
        ``lstm_forward`` (``*cache``).
    dHs : (n, T, H) dL/dh_t for every step.
    dW_x : (d, 4H), dW_h : (H, 4H), db : (4H,) overwritten with the gradients.
    dX : (n, T, d) overwritten with dL/dX when ``need_dX``; otherwise not touched.
    need_dX : bool.
    dgates, h_prev, dc, dW_x_parts, dW_h_parts, db_parts : work arrays, see ``LSTMWork``.
    """
    n = X.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = np.int64(c) * _CHUNK
        hi = min(lo + _CHUNK, n)
        _lstm_backward_block(
            lo, hi, W_h, Hs, gates, cells, tanh_cells, dHs, step_a, step_h, dgates, h_prev, dc
        )
        _block_grads(lo, hi, X, W_x, dgates, h_prev, dgates, dX, need_dX, dW_x_parts, dW_h_parts)
        _block_column_sums(lo, hi, dgates, db_parts)
    _reduce(dW_x_parts, dW_x)
    _reduce(dW_h_parts, dW_h)
    _reduce(db_parts, db)


# --------------------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------------------
@jit
def _gru_forward_block(lo, hi, W_h, b_x, b_h, Hs, gates, hn, step_a, step_h):
    T, H = Hs.shape[1], Hs.shape[2]
    zero = Hs.dtype.type(0.0)
    step_h[lo:hi] = zero
    b_xn = b_x[2 * H :]
    b_hn = b_h[2 * H :]
    # The element-wise loops index views from 0 and each touch few arrays: that keeps
    # numba's negative-index handling and LLVM's runtime alias checks out of the way of
    # vectorisation.
    for t in range(T):
        if t > 0:
            np.dot(step_h[lo:hi], W_h, step_a[lo:hi])
        else:
            step_a[lo:hi] = zero
        for s in range(lo, hi):
            a = gates[s, t]  # x_t W_x, then r, z, n
            v = step_a[s]  # h_{t-1} W_h
            for j in range(2 * H):
                a[j] = sigmoid((a[j] + b_x[j]) + (v[j] + b_h[j]))  # r, z
            r_g = a[:H]
            z_g = a[H : 2 * H]
            n_g = a[2 * H :]
            v_n = v[2 * H :]
            vn = hn[s, t]
            for j in range(H):
                vn[j] = v_n[j] + b_hn[j]
            for j in range(H):
                n_g[j] = tanh((n_g[j] + b_xn[j]) + r_g[j] * vn[j])  # n
            h = Hs[s, t]
            h_state = step_h[s]  # h_{t-1}, then h_t
            for j in range(H):
                n_t = n_g[j]
                v = n_t + z_g[j] * (h_state[j] - n_t)  # (1 - z) n + z h_{t-1}
                h[j] = v
                h_state[j] = v


@jit_parallel
def gru_forward(X, W_x, W_h, b_x, b_h, Hs, gates, hn, step_a, step_h):
    """GRU over whole sequences, PyTorch's formulation and gate order (r, z, n).

    With ``u_t = x_t W_x + b_x`` and ``v_t = h_{t-1} W_h + b_h`` split in three blocks
    of ``H`` columns::

        r_t = sigmoid(u_t[0:H] + v_t[0:H])
        z_t = sigmoid(u_t[H:2H] + v_t[H:2H])
        n_t = tanh(u_t[2H:3H] + r_t * v_t[2H:3H])
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}       (h_{-1} = 0)

    Parameters
    ----------
    X : (n, T, d) inputs.
    W_x : (d, 3H), W_h : (H, 3H), b_x : (3H,), b_h : (3H,) parameters
        (PyTorch's ``weight_ih.T``, ``weight_hh.T``, ``bias_ih``, ``bias_hh``).
    Hs : (n, T, H) output, overwritten with ``h_t``.
    gates : (n, T, 3H) cache, overwritten with the activated ``r, z, n``.
    hn : (n, T, H) cache, overwritten with ``v_t[2H:3H] = h_{t-1} W_hn + b_hn``.
    step_a : (n, 3H), step_h : (n, H) scratch.
    """
    n = X.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = np.int64(c) * _CHUNK
        hi = min(lo + _CHUNK, n)
        _input_projection(lo, hi, X, W_x, gates)  # gates[s, t] = x_t W_x, activated in place
        _gru_forward_block(lo, hi, W_h, b_x, b_h, Hs, gates, hn, step_a, step_h)


@jit
def _gru_backward_block(
    lo, hi, W_h, Hs, gates, hn, dHs, step_a, step_h, dgates_x, dgates_h, h_prev, dh_z
):
    T, H = Hs.shape[1], Hs.shape[2]
    zero = Hs.dtype.type(0.0)
    one = Hs.dtype.type(1.0)
    step_h[lo:hi] = zero  # dv_{t+1} W_h^T, the gradient reaching h_t through the gates
    dh_z[lo:hi] = zero  # dh_{t+1} * z_{t+1}, the gradient reaching h_t directly
    for t in range(T - 1, -1, -1):
        for s in range(lo, hi):
            a = gates[s, t]
            r_g = a[:H]
            z_g = a[H : 2 * H]
            n_g = a[2 * H :]
            vn = hn[s, t]
            du = dgates_x[s, t]
            du_r = du[:H]
            du_z = du[H : 2 * H]
            du_n = du[2 * H :]
            dh = step_h[s]
            dh_direct = dh_z[s]
            dh_out = dHs[s, t]
            hp = h_prev[s, t]
            if t > 0:
                h_before = Hs[s, t - 1]
                for j in range(H):
                    hp[j] = h_before[j]
            else:
                for j in range(H):
                    hp[j] = zero
            for j in range(H):
                dh[j] += dh_out[j] + dh_direct[j]  # dh_t
            for j in range(H):
                z = z_g[j]
                n_t = n_g[j]
                du_n[j] = dh[j] * (one - z) * (one - n_t * n_t)  # dan
                du_z[j] = dh[j] * (hp[j] - n_t) * z * (one - z)  # daz
            for j in range(H):
                r = r_g[j]
                du_r[j] = du_n[j] * vn[j] * r * (one - r)  # dar
            for j in range(H):
                dh_direct[j] = dh[j] * z_g[j]  # dh_t z_t, carried to step t - 1
            dv = dgates_h[s, t]
            dv_step = step_a[s]
            for j in range(2 * H):
                dv[j] = du[j]
                dv_step[j] = du[j]
            dv_n = dv[2 * H :]
            dv_step_n = dv_step[2 * H :]
            for j in range(H):
                g = du_n[j] * r_g[j]  # dan * r
                dv_n[j] = g
                dv_step_n[j] = g
        if t > 0:
            np.dot(step_a[lo:hi], W_h.T, step_h[lo:hi])


@jit_parallel
def gru_backward(
    X,
    W_x,
    W_h,
    Hs,
    gates,
    hn,
    step_a,
    step_h,
    dHs,
    dW_x,
    dW_h,
    db_x,
    db_h,
    dX,
    need_dX,
    dgates_x,
    dgates_h,
    h_prev,
    dh_z,
    dW_x_parts,
    dW_h_parts,
    db_x_parts,
    db_h_parts,
):
    """Backpropagation through time for ``gru_forward``.

    Going back in time with ``dh_t = dHs_t + dh_{t+1} z_{t+1} + dv_{t+1} W_h^T`` and
    ``vn_t = h_{t-1} W_hn + b_hn``::

        dan = dh_t * (1 - z_t) * (1 - n_t^2)
        daz = dh_t * (h_{t-1} - n_t) * z_t (1 - z_t)
        dar = dan * vn_t * r_t (1 - r_t)
        du_t = [dar, daz, dan]            (gradient w.r.t. u_t = x_t W_x + b_x)
        dv_t = [dar, daz, dan * r_t]      (gradient w.r.t. v_t = h_{t-1} W_h + b_h)

    then ``dW_x = sum x_t^T du_t``, ``db_x = sum du_t``, ``dW_h = sum h_{t-1}^T dv_t``,
    ``db_h = sum dv_t``, ``dx_t = du_t W_x^T`` (sums over steps and samples).

    Parameters
    ----------
    X, W_x, W_h, Hs, gates, hn, step_a, step_h : as given to ``gru_forward``
        (``*cache``).
    dHs : (n, T, H) dL/dh_t for every step.
    dW_x : (d, 3H), dW_h : (H, 3H), db_x : (3H,), db_h : (3H,) overwritten with the
        gradients.
    dX : (n, T, d) overwritten with dL/dX when ``need_dX``; otherwise not touched.
    need_dX : bool.
    dgates_x, dgates_h, h_prev, dh_z, dW_x_parts, dW_h_parts, db_x_parts, db_h_parts :
        work arrays, see ``GRUWork``.
    """
    n = X.shape[0]
    for c in prange((n + _CHUNK - 1) // _CHUNK):
        lo = np.int64(c) * _CHUNK
        hi = min(lo + _CHUNK, n)
        _gru_backward_block(
            lo, hi, W_h, Hs, gates, hn, dHs, step_a, step_h, dgates_x, dgates_h, h_prev, dh_z
        )
        _block_grads(
            lo, hi, X, W_x, dgates_x, h_prev, dgates_h, dX, need_dX, dW_x_parts, dW_h_parts
        )
        _block_column_sums(lo, hi, dgates_x, db_x_parts)
        _block_column_sums(lo, hi, dgates_h, db_h_parts)
    _reduce(dW_x_parts, dW_x)
    _reduce(dW_h_parts, dW_h)
    _reduce(db_x_parts, db_x)
    _reduce(db_h_parts, db_h)
