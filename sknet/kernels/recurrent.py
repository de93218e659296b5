"""Recurrent kernels: Elman RNN, LSTM and GRU, forward and backpropagation through time.

Conventions shared by every cell
--------------------------------
* ``X`` is ``(n, T, d)`` C-contiguous: ``n`` sequences of ``T`` steps of ``d`` features.
* Weights multiply from the right ("x @ W", like scikit-learn's ``coefs_``):
  ``W_x`` is ``(d, G*H)`` and ``W_h`` is ``(H, G*H)``, with ``G`` gate blocks of ``H``
  columns each (``G`` = 1 Elman, 4 LSTM, 3 GRU). Gate orders are PyTorch's:
  LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``, so PyTorch weights import as
  ``W_x = weight_ih.T``, ``W_h = weight_hh.T`` (LSTM: ``b = bias_ih + bias_hh``).
* The initial state is zero: ``h_{-1} = 0`` (and ``c_{-1} = 0``).
* All arrays of one call share one dtype, float32 or float64, and are C-contiguous.
  float64 uses exact ``math.tanh`` / ``math.exp``; float32 uses a branch-free rational
  ``tanh`` (max abs error < 1e-6, see ``_tanh_float32``) and
  sigmoid = 0.5 + 0.5 tanh(x / 2), because ``math.tanh`` / ``math.exp`` do not vectorise.

Calling convention
------------------
A cell is three NamedTuples and two block functions, gathered in one row of
:data:`CELLS`:

* ``Params`` -- the parameter arrays by name (the layer's parameter names); the same type
  carries the gradients;
* ``Cache`` -- what the forward pass stores for the backward pass, plus per-step scratch;
* ``Work`` -- the backward pass's work arrays, including per-block partial sums;
* ``forward_block`` / ``backward_block`` -- one block of samples through all its time
  steps: the cell's gate equations (forward) and their derivatives (back), side by side
  in ``_<cell>_forward_block`` / ``_<cell>_backward_block``.

Every cell runs through the same two functions, which pick the cell's block functions by
the type of ``p`` (one compiled block function per cell, direction and dtype)::

    cell = CELLS["lstm"]
    p = cell.make_params({"W_x": W_x, "W_h": W_h, "b": b})
    cache = cell.cache.empty(n, T, d, H, X.dtype)
    work = cell.work.empty(n, T, d, H, X.dtype)
    batch = Batch(X, lengths)                       # lengths (n,) int64 in [1, T]
    recurrent_forward(batch, p, Hs, cache)          # Hs (n, T, H) <- h_t
    grads = cell.make_params({"W_x": dW_x, "W_h": dW_h, "b": db})
    recurrent_backward(batch, p, Hs, cache, dHs, grads, dX, need_dx, work)

The forward pass writes every hidden state into ``Hs``; the backward pass takes ``dHs``
``(n, T, H)``, the loss gradient with respect to every hidden state (zeros except the last
step for sequence-to-one models), and *overwrites* the gradients in ``grads`` and, when
``need_dx`` is true, ``dX`` ``(n, T, d)``.

Variable lengths: sequence ``s`` is ``X[s, :lengths[s]]``; the rest of ``X`` is padding,
which nothing reads (it may hold NaN). The recurrence of ``s`` stops at its length, its
states past it are zero in ``Hs``, its last state is ``Hs[s, lengths[s] - 1]``
(:func:`last_states`), and backpropagation through time starts there. Fixed-length input
(every length ``T``) runs exactly the arithmetic it always ran.

How the work is laid out
------------------------
The batch is cut into blocks of ``CHUNK`` samples (:mod:`sknet.kernels.blocks`). Each
pass is one ``prange`` over the blocks (``runner.run_blocks``, which calls the cell's block
function through the address of its compiled code, see there why); a block runs its
whole time loop with matrix products on its own rows (``(S*T, d) @ W_x`` once, then
``(S, H) @ W_h`` per step), so no two tasks write the same memory. Weight gradients are
per-block products over the block's (sample, step) rows, written to per-block buffers and
summed in block order after the parallel loop (``_sum_grads``). The partition does not
depend on the thread count, so neither do the results (bit for bit).

The products are the kernels' own (``kernels.product``, compiled once per dtype and called
through its entry), not BLAS: these shapes are small (a block's 8 rows
against a 128 x 512 ``W_h`` per step), and OpenBLAS's kernel for them depends on the
machine and its environment: on the project's AMD Zen 5 kind, whose environment pins
OpenBLAS to its Haswell kernels (``OPENBLAS_CORETYPE``), the LSTM's products ran 3-5x
slower than with OpenBLAS's own choice. Compiled with contraction (FMAs), LLVM
vectorises them at the machine's full width; every output adds its products in a fixed
order, so the results do not depend on the thread count. Measured (LSTM layer, 64
sequences x 50 steps, float32, 1 thread, forward / backward per batch): 128 units
16.1 / 23.3 ms with OpenBLAS (Haswell) -> 5.2 / 10.8 ms; 32 units 1.6 / 2.7 -> 0.45 /
0.85 ms. The product with a transposed right operand (``dA_h W_h^T``, ``dA_x W_x^T``)
uses a transposed copy of the weights (``Work.W_hT``, ``Work.W_xT``, made once per
backward pass), so one loop nest serves every product.
"""

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._config import _FLAGS, jit
from .blocks import CHUNK, n_blocks, sum_blocks
from .product import check_c_arrays, mul_packed, product_entry
from .runner import (  # noqa: F401 (_run_blocks: tests)
    _run_blocks,
    internal,
    run_blocks,
    unpack,
)

__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "Batch",
    "ELMAN_RELU",
    "ELMAN_TANH",
    "Cell",
    "ElmanCache",
    "ElmanParams",
    "ElmanWork",
    "GRUCache",
    "GRUParams",
    "GRUWork",
    "LSTMCache",
    "LSTMParams",
    "LSTMWork",
    "last_states",
    "last_states_backward",
    "recurrent_backward",
    "recurrent_forward",
    "reverse_sequences",
    "sigmoid",
    "tanh",
]

ELMAN_TANH = 0
ELMAN_RELU = 1
#: The Elman cell's activation option, by name.
ACTIVATIONS = {"tanh": ELMAN_TANH, "relu": ELMAN_RELU}


class Batch(NamedTuple):
    """A batch of sequences: ``X`` (n, T, d) padded to the longest, and ``lengths`` (n,)
    int64, sequence ``s`` being ``X[s, :lengths[s]]``. Fixed-length input has every
    length ``T``."""

    X: np.ndarray
    lengths: np.ndarray


# --------------------------------------------------------------------------------------
# Parameters, caches (forward -> backward) and work arrays (backward), per cell
# --------------------------------------------------------------------------------------
class ElmanParams(NamedTuple):
    """Elman RNN parameters, or their gradients (then ``activation`` is ignored)."""

    W_x: np.ndarray  # (d, H)
    W_h: np.ndarray  # (H, H)
    b: np.ndarray  # (H,)
    activation: int = ELMAN_TANH  # ELMAN_TANH or ELMAN_RELU: an option, not a parameter


class ElmanCache(NamedTuple):
    """Scratch of the Elman cell (``Hs`` is its real cache)."""

    step_a: np.ndarray  # (n, H)  one step's h_{t-1} W_h (backward: da_t)
    step_h: np.ndarray  # (n, H)  h_{t-1} (backward: da_{t+1} W_h^T)

    @classmethod
    def empty(cls, n, T, d, H, dtype, arena=None):
        return cls(_take(arena, "step_a", (n, H), dtype), _take(arena, "step_h", (n, H), dtype))


class ElmanWork(NamedTuple):
    """Work arrays of the Elman cell's backward pass."""

    dA_x: np.ndarray  # (n, T, H)  dL/da_t
    dA_h: np.ndarray  # the same array: a_t takes x_t W_x and h_{t-1} W_h alike
    h_prev: np.ndarray  # (n, T, H)  h_{t-1}, zero at t = 0
    carry: np.ndarray  # (n, 0)  nothing besides dh_t is carried back in time
    x_masked: np.ndarray  # (n, T, d)  X with its padding zeroed (variable lengths)
    dW_x_parts: np.ndarray  # (B, d, H)  per-block sums, B = n_blocks(n)
    dW_h_parts: np.ndarray  # (B, H, H)
    db_x_parts: np.ndarray  # (B, H)
    W_xT: np.ndarray  # (H, d)  W_x transposed, for the input gradient
    W_hT: np.ndarray  # (H, H)  W_h transposed, for the gradient through time

    @classmethod
    def empty(cls, n, T, d, H, dtype, arena=None):
        return _empty_work(cls, n, T, d, H, 1, dtype, arena, carry=0)


class LSTMParams(NamedTuple):
    """LSTM parameters, or their gradients; ``b`` is PyTorch's ``bias_ih + bias_hh``."""

    W_x: np.ndarray  # (d, 4H)
    W_h: np.ndarray  # (H, 4H)
    b: np.ndarray  # (4H,)


class LSTMCache(NamedTuple):
    """What the LSTM forward pass stores for the backward pass, plus per-step scratch."""

    gates: np.ndarray  # (n, T, 4H)  activated gates i, f, g, o
    cells: np.ndarray  # (n, T, H)   c_t
    tanh_cells: np.ndarray  # (n, T, H)   tanh(c_t)
    step_a: np.ndarray  # (n, 4H)     scratch: h_{t-1} W_h (backward: da_t)
    step_h: np.ndarray  # (n, H)      scratch: h_{t-1} (backward: da_{t+1} W_h^T)

    @classmethod
    def empty(cls, n, T, d, H, dtype, arena=None):
        return cls(
            _take(arena, "gates", (n, T, 4 * H), dtype),
            _take(arena, "cells", (n, T, H), dtype),
            _take(arena, "tanh_cells", (n, T, H), dtype),
            _take(arena, "step_a", (n, 4 * H), dtype),
            _take(arena, "step_h", (n, H), dtype),
        )


class LSTMWork(NamedTuple):
    """Work arrays of the LSTM backward pass."""

    dA_x: np.ndarray  # (n, T, 4H)  dL/da_t, a_t the gate pre-activations
    dA_h: np.ndarray  # the same array
    h_prev: np.ndarray  # (n, T, H)   h_{t-1}, zero at t = 0
    carry: np.ndarray  # (n, H)      dL/dc_t carried back in time
    x_masked: np.ndarray  # (n, T, d)   X with its padding zeroed (variable lengths)
    dW_x_parts: np.ndarray  # (B, d, 4H)  per-block sums, B = n_blocks(n)
    dW_h_parts: np.ndarray  # (B, H, 4H)
    db_x_parts: np.ndarray  # (B, 4H)
    W_xT: np.ndarray  # (4H, d)  W_x transposed, for the input gradient
    W_hT: np.ndarray  # (4H, H)  W_h transposed, for the gradient through time

    @classmethod
    def empty(cls, n, T, d, H, dtype, arena=None):
        return _empty_work(cls, n, T, d, H, 4, dtype, arena)


class GRUParams(NamedTuple):
    """GRU parameters, or their gradients (PyTorch's biases, kept apart)."""

    W_x: np.ndarray  # (d, 3H)
    W_h: np.ndarray  # (H, 3H)
    b_x: np.ndarray  # (3H,)  bias_ih
    b_h: np.ndarray  # (3H,)  bias_hh


class GRUCache(NamedTuple):
    """What the GRU forward pass stores for the backward pass, plus per-step scratch."""

    gates: np.ndarray  # (n, T, 3H)  activated gates r, z, n
    hn: np.ndarray  # (n, T, H)   h_{t-1} W_hn + b_hn
    step_a: np.ndarray  # (n, 3H)     scratch: h_{t-1} W_h (backward: dv_t)
    step_h: np.ndarray  # (n, H)      scratch: h_{t-1} (backward: dv_{t+1} W_h^T)

    @classmethod
    def empty(cls, n, T, d, H, dtype, arena=None):
        return cls(
            _take(arena, "gates", (n, T, 3 * H), dtype),
            _take(arena, "hn", (n, T, H), dtype),
            _take(arena, "step_a", (n, 3 * H), dtype),
            _take(arena, "step_h", (n, H), dtype),
        )


class GRUWork(NamedTuple):
    """Work arrays of the GRU backward pass."""

    dA_x: np.ndarray  # (n, T, 3H)  dL/du_t, u_t = x_t W_x + b_x
    dA_h: np.ndarray  # (n, T, 3H)  dL/dv_t, v_t = h_{t-1} W_h + b_h
    h_prev: np.ndarray  # (n, T, H)   h_{t-1}, zero at t = 0
    carry: np.ndarray  # (n, H)      dh_{t+1} * z_{t+1}, the direct path back in time
    x_masked: np.ndarray  # (n, T, d)   X with its padding zeroed (variable lengths)
    dW_x_parts: np.ndarray  # (B, d, 3H)  per-block sums, B = n_blocks(n)
    dW_h_parts: np.ndarray  # (B, H, 3H)
    db_x_parts: np.ndarray  # (B, 3H)
    db_h_parts: np.ndarray  # (B, 3H)
    W_xT: np.ndarray  # (3H, d)  W_x transposed, for the input gradient
    W_hT: np.ndarray  # (3H, H)  W_h transposed, for the gradient through time

    @classmethod
    def empty(cls, n, T, d, H, dtype, arena=None):
        return _empty_work(cls, n, T, d, H, 3, dtype, arena, own_dA_h=True)


def _take(arena, name, shape, dtype):
    """A fresh C-contiguous array of ``shape``, or, given ``arena`` (a tuple of the same
    type allocated for a batch at least as large), a view of the first elements of its
    field ``name`` in that shape: also C-contiguous, and nothing is allocated. Batches
    of varying lengths (variable-length training) then reuse one allocation."""
    if arena is None:
        return np.empty(shape, dtype)
    return getattr(arena, name).reshape(-1)[: math.prod(shape)].reshape(shape)


def _empty_work(cls, n, T, d, H, G, dtype, arena=None, own_dA_h=False, carry=None):
    """A ``Work`` tuple of type ``cls`` for ``G`` gate blocks: the fields it names, with
    ``dA_h`` its own array or ``dA_x`` again, and ``carry`` (n, H) or (n, ``carry``);
    views into ``arena`` when given (see ``_take``)."""
    B, GH = n_blocks(n), G * H
    shapes = {
        "dA_x": (n, T, GH),
        "h_prev": (n, T, H),
        "x_masked": (n, T, d),
        "carry": (n, H if carry is None else carry),
        "dW_x_parts": (B, d, GH),
        "dW_h_parts": (B, H, GH),
        "db_x_parts": (B, GH),
        "db_h_parts": (B, GH),
        "W_xT": (GH, d),
        "W_hT": (GH, H),
    }
    if own_dA_h:
        shapes["dA_h"] = (n, T, GH)
    arrays = {
        name: _take(arena, name, shape, dtype)
        for name, shape in shapes.items()
        if name in cls._fields
    }
    if not own_dA_h:
        arrays["dA_h"] = arrays["dA_x"]
    return cls(**{name: arrays[name] for name in cls._fields})


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


def _inline(func):
    """A part of the block functions: inlined into its caller when that compiles
    (numba's ``inline='always'``), never compiled on its own."""
    return numba.njit(inline="always", **_FLAGS)(func)


def _tanh_float32(x):
    """float32 tanh: x P(x^2) / Q(x^2) with x clamped to [-7.905, 7.905] (NaN stays NaN)."""
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


def _tanh_float64(x):
    return math.tanh(x)


def _sigmoid_float32(x):
    """float32 sigmoid(x) = 0.5 + 0.5 tanh(x / 2)."""
    return _HALF32 + _HALF32 * tanh(_HALF32 * x)


def _sigmoid_float64(x):
    return 1.0 / (1.0 + math.exp(-x))


def tanh(x):
    """Scalar tanh for kernels: ``math.tanh`` for float64, rational for float32."""
    return math.tanh(x)


def sigmoid(x):
    """Scalar logistic sigmoid for kernels: exact for float64, via rational tanh for float32."""
    return 1.0 / (1.0 + math.exp(-x))


# Resolved by the argument's type when a kernel compiles: the implementations above
# compile as the overloads themselves (not a lambda calling a jitted helper: one
# function less each), without entry wrappers (called from kernels only), with the
# project's error_model ('numpy': no zero-division check to block vectorisation).
# (numba's inline='always' for these overloads gave wrong Elman relu results in a trial.)
_ACTIVATION_OPTIONS = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True, **_FLAGS}
del _ACTIVATION_OPTIONS["cache"]  # compiled into the calling kernel, cached with it


@overload(tanh, jit_options=_ACTIVATION_OPTIONS)
def _tanh_overload(x):
    return _tanh_float32 if x == types.float32 else _tanh_float64


@overload(sigmoid, jit_options=_ACTIVATION_OPTIONS)
def _sigmoid_overload(x):
    return _sigmoid_float32 if x == types.float32 else _sigmoid_float64


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
# The parts every cell's block functions share
# --------------------------------------------------------------------------------------
# Compile cost. numba optimises and generates the machine code of a called function
# again inside each function that calls it (the callee is compiled on its own, then
# linked into its caller's module and optimised there once more). So each cell's block
# function holds its gate equations itself, and the small parts the cells share below
# are inlined into it at numba's level (``inline='always'``): compiled once, inside the
# block. Inlining copies the callee's IR block by block, each copy carrying the callee's
# whole variable scope, at a cost of about (blocks x variables) of the callee: so these
# parts stay small and none calls another. Every matrix product is a call of
# ``kernels.product`` through its entry (``mul_packed``; not linked in); no block function
# allocates, so they run without reference counting (``internal(refcounts=False)``).
# Copies are element loops (an array-valued slice assignment would compile numba's
# shape-error formatting, ~2 s).
def _flat_at(context, builder, ty, value, offset):
    """The address of element ``offset`` of the C array ``value`` in memory order."""
    data = context.make_array(ty)(context, builder, value).data
    return builder.gep(data, [offset])


@intrinsic
def _copy(typingctx, src, i, dst, j, count):
    """``dst.flat[j : j + count] = src.flat[i : i + count]``: C arrays of one dtype, the
    two ranges apart, in bounds (not checked). One ``memcpy``: no loop to compile."""
    check_c_arrays("_copy", src, dst)

    def codegen(context, builder, sig, args):
        ty = sig.args
        item = context.get_abi_sizeof(context.get_data_type(ty[0].dtype))
        to = _flat_at(context, builder, ty[2], args[2], args[3])
        cgutils.raw_memcpy(
            builder, to, _flat_at(context, builder, ty[0], args[0], args[1]), args[4], item
        )
        return context.get_dummy_value()

    return types.none(src, i, dst, j, count), codegen


@intrinsic
def _zero(typingctx, dst, j, count):
    """``dst.flat[j : j + count] = 0`` (+0.0): a C array, in bounds (not checked). One
    ``memset``: no loop to compile."""
    check_c_arrays("_zero", dst)

    def codegen(context, builder, sig, args):
        item = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        size = builder.mul(args[2], context.get_constant(sig.args[2], item))
        cgutils.memset(builder, _flat_at(context, builder, sig.args[0], args[0], args[1]), size, 0)
        return context.get_dummy_value()

    return types.none(dst, j, count), codegen


@_inline
def _block_range(c, X, lengths):
    """Samples ``lo <= s < hi`` of block ``c``, its longest sequence ``steps``, and
    ``padded``, whether a sample is shorter than ``T``."""
    n, T = X.shape[0], X.shape[1]
    lo = c * CHUNK
    hi = lo + CHUNK if lo + CHUNK < n else n  # (no min/max: each compiles a function)
    steps = 0
    padded = False
    for s in range(lo, hi):
        L = lengths[s]
        if L > steps:
            steps = L
        if L < T:
            padded = True
    return lo, hi, steps, padded


@_inline
def _forward_start(lo, hi, padded, X, lengths, W_x, A, step_h, prod):
    """``A[s, t] = x_{s,t} W_x`` for the real steps of samples ``lo <= s < hi`` (padding
    is never read), and ``h_{-1} = 0`` in ``step_h``."""
    T, d, GH = X.shape[1], X.shape[2], A.shape[2]
    if padded:  # one product per sample over its own steps
        for s in range(lo, hi):
            mul_packed(prod, X, s * T * d, False, W_x, 0, A, s * T * GH, lengths[s], GH, d)
    else:  # one product over the block's (sample, step) rows
        mul_packed(prod, X, lo * T * d, False, W_x, 0, A, lo * T * GH, (hi - lo) * T, GH, d)
    H = step_h.shape[1]
    _zero(step_h, lo * H, (hi - lo) * H)


@_inline
def _hidden_product(lo, hi, t, W_h, step_h, step_a, prod):
    """Going forward: ``step_a = h_{t-1} W_h`` for samples ``lo <= s < hi`` (zero at
    ``t = 0``), ``step_h`` holding ``h_{t-1}``."""
    H, GH = W_h.shape[0], W_h.shape[1]
    if t > 0:
        mul_packed(prod, step_h, lo * H, False, W_h, 0, step_a, lo * GH, hi - lo, GH, H)
    else:
        _zero(step_a, lo * GH, (hi - lo) * GH)


@_inline
def _zero_padding(lo, hi, lengths, A):
    """``A[s, t] = 0`` for the padded steps ``t >= lengths[s]`` of samples ``lo <= s < hi``."""
    T, G = A.shape[1], A.shape[2]
    for s in range(lo, hi):
        L = lengths[s]
        _zero(A, (s * T + L) * G, (T - L) * G)


@_inline
def _backward_start(lo, hi, Hs, h_prev, step_h, carry):
    """``h_prev[s, t] = h_{t-1}`` (zero at ``t = 0``) for samples ``lo <= s < hi``, and no
    gradient from later steps yet (``step_h``, ``carry``)."""
    T, H = Hs.shape[1], Hs.shape[2]
    for s in range(lo, hi):
        _zero(h_prev, s * T * H, H)  # h_{-1}
        _copy(Hs, s * T * H, h_prev, (s * T + 1) * H, (T - 1) * H)  # zero on padded steps
    _zero(step_h, lo * H, (hi - lo) * H)  # dA_h[t+1] W_h^T, the gradient reaching h_t
    C = carry.shape[1]
    _zero(carry, lo * C, (hi - lo) * C)


@_inline
def _hidden_gradient(lo, hi, t, W_hT, step_a, step_h, prod):
    """Going back: ``step_h = dA_h[t] W_h^T`` for samples ``lo <= s < hi`` when ``t > 0``,
    the gradient reaching ``h_{t-1}`` through ``W_h`` (``step_a`` holds ``dA_h[t]``;
    ``W_hT`` is ``W_h``'s transpose, (GH, H), made once per pass)."""
    GH, H = W_hT.shape[0], W_hT.shape[1]
    if t > 0:
        mul_packed(prod, step_a, lo * GH, False, W_hT, 0, step_h, lo * H, hi - lo, H, GH)


@_inline
def _mask_padding(lo, hi, lengths, X, dA_x, dA_h, x_masked):
    """No gradient on padded steps (``dA_x``, ``dA_h`` zero there), and ``x_masked`` a copy
    of X with its padding zeroed for the weight products (0 * NaN would be NaN)."""
    T, d, GH = X.shape[1], X.shape[2], dA_x.shape[2]
    for s in range(lo, hi):
        L = lengths[s]
        _zero(dA_x, (s * T + L) * GH, (T - L) * GH)
        _zero(dA_h, (s * T + L) * GH, (T - L) * GH)
        _copy(X, s * T * d, x_masked, s * T * d, L * d)
        _zero(x_masked, (s * T + L) * d, (T - L) * d)


@_inline
def _weight_products(c, lo, hi, X_b, dA_x, h_prev, dA_h, dW_x_parts, dW_h_parts, prod):
    """``dW_x_parts[c] = X_b^T dA_x`` and ``dW_h_parts[c] = h_prev^T dA_h`` over block
    ``c``'s (sample, step) rows ``lo <= s < hi``."""
    T, d, H, GH = X_b.shape[1], X_b.shape[2], h_prev.shape[2], dA_x.shape[2]
    R = (hi - lo) * T
    mul_packed(prod, X_b, lo * T * d, True, dA_x, lo * T * GH, dW_x_parts, c * d * GH, d, GH, R)
    mul_packed(prod, h_prev, lo * T * H, True, dA_h, lo * T * GH, dW_h_parts, c * H * GH, H, GH, R)


@_inline
def _input_gradient(lo, hi, dA_x, W_xT, dX, prod):
    """``dX_b = dA_x W_x^T`` over the (sample, step) rows ``lo <= s < hi`` (``W_xT``:
    ``W_x``'s transpose, (GH, d))."""
    T, d, GH = dX.shape[1], dX.shape[2], dA_x.shape[2]
    mul_packed(prod, dA_x, lo * T * GH, False, W_xT, 0, dX, lo * T * d, (hi - lo) * T, d, GH)


@_inline
def _column_sums(lo, hi, A, parts):
    """``parts[c, j] = sum over samples lo <= s < hi and steps t of A[s, t, j]``, c the
    block, added in (sample, step) order."""
    c = lo // CHUNK
    T, G = A.shape[1], A.shape[2]
    out = parts[c]
    for j in range(G):
        out[j] = A[lo, 0, j]
    for s in range(lo, hi):
        for t in range(1 if s == lo else 0, T):
            for j in range(G):
                out[j] += A[s, t, j]


# --------------------------------------------------------------------------------------
# The cells: one block of samples through all its time steps, forward and back
# --------------------------------------------------------------------------------------
# A block function runs block ``c`` (samples ``lo <= s < hi``, see ``runner.run_blocks``
# for ``packed``). Each time step ``t`` going forward: ``cache.step_a[s] = h_{t-1} W_h``
# (zero at t = 0) and ``cache.step_h[s] = h_{t-1}``, then the gate equations write
# ``h_t`` into ``Hs[s, t]`` and ``cache.step_h[s]``. Going back:
# ``cache.step_h[s] = dA_h[s, t+1] W_h^T`` (zero at the last step), ``work.h_prev[s, t]
# = h_{t-1}``; the equations write ``work.dA_x[s, t]`` and ``work.dA_h[s, t]``, copy
# ``dA_h[s, t]`` to ``cache.step_a[s]`` (for the next recurrence product) and update
# ``work.carry[s]``; the copies ride in the element-wise loops rather than in a pass of
# their own. The element-wise loops index views from 0 and each touch few arrays: that
# keeps numba's negative-index handling and LLVM's runtime alias checks out of the way
# of vectorisation. Then the block's shares of the weight gradients (per-block sums,
# added in block order by ``_sum_grads``) and its rows of dX.
# Sequences end at their own length: a step ``t >= lengths[s]`` leaves sample ``s``
# alone going forward (its state stays ``h_{L-1}``), and going back only zeroes
# ``cache.step_a[s]``, so no gradient enters the sequence before its last real step.
@internal(refcounts=False)
def _elman_forward_block(c, packed, args_type):
    """``h_t = act(x_t W_x + h_{t-1} W_h + b)``, ``act = tanh`` or ``relu``
    (``p.activation``); ``x_t W_x`` goes into ``Hs`` first."""
    X, lengths, p, Hs, cache, dHs, dX, need_dx, work, prod = unpack(packed, args_type)
    lo, hi, steps, padded = _block_range(c, X, lengths)
    _forward_start(lo, hi, padded, X, lengths, p.W_x, Hs, cache.step_h, prod)
    T, H = Hs.shape[1], Hs.shape[2]
    zero = Hs.dtype.type(0.0)
    b = p.b
    for t in range(steps):
        _hidden_product(lo, hi, t, p.W_h, cache.step_h, cache.step_a, prod)
        for s in range(lo, hi):
            if t >= lengths[s]:  # past this sequence's end: h stays h_{L-1}
                continue
            h = Hs[s, t]
            a = cache.step_a[s]
            if p.activation == ELMAN_RELU:
                for j in range(H):
                    h[j] = max((h[j] + a[j]) + b[j], zero)
            else:
                for j in range(H):
                    h[j] = tanh((h[j] + a[j]) + b[j])
            _copy(Hs, (s * T + t) * H, cache.step_h, s * H, H)  # h_t, the next step's h_{t-1}
    if padded:
        _zero_padding(lo, hi, lengths, Hs)


@internal(refcounts=False)
def _elman_backward_block(c, packed, args_type):
    """``da_t = dh_t * act'(a_t)`` with ``dh_t = dHs_t + da_{t+1} W_h^T``,
    ``tanh' = 1 - h_t^2`` and ``relu' = [h_t > 0]``."""
    X, lengths, p, Hs, cache, dHs, dX, need_dx, work, prod = unpack(packed, args_type)
    lo, hi, steps, padded = _block_range(c, X, lengths)
    _backward_start(lo, hi, Hs, work.h_prev, cache.step_h, work.carry)
    T, H, GH = Hs.shape[1], Hs.shape[2], cache.step_a.shape[1]
    zero = Hs.dtype.type(0.0)
    one = Hs.dtype.type(1.0)
    for t in range(steps - 1, -1, -1):
        for s in range(lo, hi):
            if t >= lengths[s]:  # past the end: nothing flows back through W_h
                _zero(cache.step_a, s * GH, GH)
                continue
            h = Hs[s, t]
            dh = cache.step_h[s]
            da = work.dA_x[s, t]
            dh_out = dHs[s, t]
            if p.activation == ELMAN_RELU:
                for j in range(H):
                    da[j] = (dh[j] + dh_out[j]) if h[j] > zero else zero
            else:
                for j in range(H):
                    da[j] = (dh[j] + dh_out[j]) * (one - h[j] * h[j])
            _copy(work.dA_x, (s * T + t) * H, cache.step_a, s * H, H)  # for the product
        _hidden_gradient(lo, hi, t, work.W_hT, cache.step_a, cache.step_h, prod)
    X_b = X
    if padded:
        _mask_padding(lo, hi, lengths, X, work.dA_x, work.dA_h, work.x_masked)
        X_b = work.x_masked
    _weight_products(
        c, lo, hi, X_b, work.dA_x, work.h_prev, work.dA_h, work.dW_x_parts, work.dW_h_parts, prod
    )
    if need_dx:
        _input_gradient(lo, hi, work.dA_x, work.W_xT, dX, prod)
    _column_sums(lo, hi, work.dA_x, work.db_x_parts)


@internal(refcounts=False)
def _lstm_forward_block(c, packed, args_type):
    """With ``a_t = x_t W_x + h_{t-1} W_h + b`` split in four blocks of ``H`` columns::

        i_t = sigmoid(a_t[0:H])      f_t = sigmoid(a_t[H:2H])
        g_t = tanh(a_t[2H:3H])       o_t = sigmoid(a_t[3H:4H])
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)        (c_{-1} = 0)

    ``cache.gates[s, t]`` holds ``x_t W_x``, then the activated gates.
    """
    X, lengths, p, Hs, cache, dHs, dX, need_dx, work, prod = unpack(packed, args_type)
    lo, hi, steps, padded = _block_range(c, X, lengths)
    _forward_start(lo, hi, padded, X, lengths, p.W_x, cache.gates, cache.step_h, prod)
    H = Hs.shape[2]
    b = p.b
    for t in range(steps):
        _hidden_product(lo, hi, t, p.W_h, cache.step_h, cache.step_a, prod)
        for s in range(lo, hi):
            if t >= lengths[s]:  # past this sequence's end: h stays h_{L-1}
                continue
            a = cache.gates[s, t]
            r = cache.step_a[s]
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
            cell = cache.cells[s, t]
            tc = cache.tanh_cells[s, t]
            if t > 0:
                c_prev = cache.cells[s, t - 1]
                for j in range(H):
                    c_t = f_g[j] * c_prev[j] + i_g[j] * g_g[j]  # c_t = f c_{t-1} + i g
                    cell[j] = c_t
                    tc[j] = tanh(c_t)
            else:
                for j in range(H):
                    c_t = i_g[j] * g_g[j]
                    cell[j] = c_t
                    tc[j] = tanh(c_t)
            h = Hs[s, t]
            h_state = cache.step_h[s]
            for j in range(H):
                v = o_g[j] * tc[j]  # h_t = o tanh(c_t)
                h[j] = v
                h_state[j] = v
    if padded:
        _zero_padding(lo, hi, lengths, Hs)


@internal(refcounts=False)
def _lstm_backward_block(c, packed, args_type):
    """With ``dh_t = dHs_t + da_{t+1} W_h^T`` and
    ``dc_t = dc_{t+1} * f_{t+1} + dh_t * o_t * (1 - tanh(c_t)^2)`` (``work.carry``)::

        da_i = dc_t * g_t * i_t (1 - i_t)        da_f = dc_t * c_{t-1} * f_t (1 - f_t)
        da_g = dc_t * i_t * (1 - g_t^2)          da_o = dh_t * tanh(c_t) * o_t (1 - o_t)
    """
    X, lengths, p, Hs, cache, dHs, dX, need_dx, work, prod = unpack(packed, args_type)
    lo, hi, steps, padded = _block_range(c, X, lengths)
    _backward_start(lo, hi, Hs, work.h_prev, cache.step_h, work.carry)
    T, H, GH = Hs.shape[1], Hs.shape[2], cache.step_a.shape[1]
    zero = Hs.dtype.type(0.0)
    one = Hs.dtype.type(1.0)
    for t in range(steps - 1, -1, -1):
        for s in range(lo, hi):
            if t >= lengths[s]:  # past the end: nothing flows back through W_h
                _zero(cache.step_a, s * GH, GH)
                continue
            a = cache.gates[s, t]
            i_g = a[:H]
            f_g = a[H : 2 * H]
            g_g = a[2 * H : 3 * H]
            o_g = a[3 * H :]
            da = work.dA_x[s, t]
            da_i = da[:H]
            da_f = da[H : 2 * H]
            da_g = da[2 * H : 3 * H]
            da_o = da[3 * H :]
            dh = cache.step_h[s]
            dc = work.carry[s]
            tc = cache.tanh_cells[s, t]
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
            if t > 0:
                c_prev = cache.cells[s, t - 1]
                for j in range(H):
                    f = f_g[j]
                    da_f[j] = dc[j] * c_prev[j] * f * (one - f)
            else:
                for j in range(H):
                    da_f[j] = zero
            for j in range(H):
                dc[j] *= f_g[j]  # dc_t f_t, carried to step t - 1
            _copy(work.dA_x, (s * T + t) * GH, cache.step_a, s * GH, GH)  # for the product
        _hidden_gradient(lo, hi, t, work.W_hT, cache.step_a, cache.step_h, prod)
    X_b = X
    if padded:
        _mask_padding(lo, hi, lengths, X, work.dA_x, work.dA_h, work.x_masked)
        X_b = work.x_masked
    _weight_products(
        c, lo, hi, X_b, work.dA_x, work.h_prev, work.dA_h, work.dW_x_parts, work.dW_h_parts, prod
    )
    if need_dx:
        _input_gradient(lo, hi, work.dA_x, work.W_xT, dX, prod)
    _column_sums(lo, hi, work.dA_x, work.db_x_parts)


@internal(refcounts=False)
def _gru_forward_block(c, packed, args_type):
    """PyTorch's GRU. With ``u_t = x_t W_x + b_x`` and ``v_t = h_{t-1} W_h + b_h`` split
    in three blocks of ``H`` columns::

        r_t = sigmoid(u_t[0:H] + v_t[0:H])
        z_t = sigmoid(u_t[H:2H] + v_t[H:2H])
        n_t = tanh(u_t[2H:3H] + r_t * v_t[2H:3H])
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    ``cache.gates[s, t]`` holds ``x_t W_x``, then the activated gates;
    ``cache.hn[s, t] = v_t[2H:3H]``.
    """
    X, lengths, p, Hs, cache, dHs, dX, need_dx, work, prod = unpack(packed, args_type)
    lo, hi, steps, padded = _block_range(c, X, lengths)
    _forward_start(lo, hi, padded, X, lengths, p.W_x, cache.gates, cache.step_h, prod)
    H = Hs.shape[2]
    b_x, b_h = p.b_x, p.b_h
    b_xn = b_x[2 * H :]
    b_hn = b_h[2 * H :]
    for t in range(steps):
        _hidden_product(lo, hi, t, p.W_h, cache.step_h, cache.step_a, prod)
        for s in range(lo, hi):
            if t >= lengths[s]:  # past this sequence's end: h stays h_{L-1}
                continue
            a = cache.gates[s, t]  # x_t W_x, then r, z, n
            v = cache.step_a[s]  # h_{t-1} W_h
            for j in range(2 * H):
                a[j] = sigmoid((a[j] + b_x[j]) + (v[j] + b_h[j]))  # r, z
            r_g = a[:H]
            z_g = a[H : 2 * H]
            n_g = a[2 * H :]
            v_n = v[2 * H :]
            vn = cache.hn[s, t]
            for j in range(H):
                vn[j] = v_n[j] + b_hn[j]
            for j in range(H):
                n_g[j] = tanh((n_g[j] + b_xn[j]) + r_g[j] * vn[j])  # n
            h = Hs[s, t]
            h_state = cache.step_h[s]  # h_{t-1}, then h_t
            for j in range(H):
                n_t = n_g[j]
                h_t = n_t + z_g[j] * (h_state[j] - n_t)  # (1 - z) n + z h_{t-1}
                h[j] = h_t
                h_state[j] = h_t
    if padded:
        _zero_padding(lo, hi, lengths, Hs)


@internal(refcounts=False)
def _gru_backward_block(c, packed, args_type):
    """With ``dh_t = dHs_t + dh_{t+1} z_{t+1} + dv_{t+1} W_h^T`` (the middle term is
    ``work.carry``) and ``vn_t = h_{t-1} W_hn + b_hn``::

        dan = dh_t * (1 - z_t) * (1 - n_t^2)
        daz = dh_t * (h_{t-1} - n_t) * z_t (1 - z_t)
        dar = dan * vn_t * r_t (1 - r_t)
        du_t = [dar, daz, dan]            (dA_x: gradient w.r.t. u_t = x_t W_x + b_x)
        dv_t = [dar, daz, dan * r_t]      (dA_h: gradient w.r.t. v_t = h_{t-1} W_h + b_h)
    """
    X, lengths, p, Hs, cache, dHs, dX, need_dx, work, prod = unpack(packed, args_type)
    lo, hi, steps, padded = _block_range(c, X, lengths)
    _backward_start(lo, hi, Hs, work.h_prev, cache.step_h, work.carry)
    T, H, GH = Hs.shape[1], Hs.shape[2], cache.step_a.shape[1]
    one = Hs.dtype.type(1.0)
    for t in range(steps - 1, -1, -1):
        for s in range(lo, hi):
            if t >= lengths[s]:  # past the end: nothing flows back through W_h
                _zero(cache.step_a, s * GH, GH)
                continue
            a = cache.gates[s, t]
            r_g = a[:H]
            z_g = a[H : 2 * H]
            n_g = a[2 * H :]
            vn = cache.hn[s, t]
            du = work.dA_x[s, t]
            du_r = du[:H]
            du_z = du[H : 2 * H]
            du_n = du[2 * H :]
            dh = cache.step_h[s]
            dh_direct = work.carry[s]
            dh_out = dHs[s, t]
            hp = work.h_prev[s, t]
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
            row = (s * T + t) * GH
            _copy(work.dA_x, row, work.dA_h, row, 2 * H)  # dar, daz
            dv_n = work.dA_h[s, t, 2 * H :]
            for j in range(H):
                dv_n[j] = du_n[j] * r_g[j]  # dan * r
            _copy(work.dA_h, row, cache.step_a, s * GH, GH)  # for the product
        _hidden_gradient(lo, hi, t, work.W_hT, cache.step_a, cache.step_h, prod)
    X_b = X
    if padded:
        _mask_padding(lo, hi, lengths, X, work.dA_x, work.dA_h, work.x_masked)
        X_b = work.x_masked
    _weight_products(
        c, lo, hi, X_b, work.dA_x, work.h_prev, work.dA_h, work.dW_x_parts, work.dW_h_parts, prod
    )
    if need_dx:
        _input_gradient(lo, hi, work.dA_x, work.W_xT, dX, prod)
    _column_sums(lo, hi, work.dA_x, work.db_x_parts)
    _column_sums(lo, hi, work.dA_h, work.db_h_parts)


# --------------------------------------------------------------------------------------
# The registry: one row per cell, read by the kernels, the layer, the tests and the
# PyTorch exchange
# --------------------------------------------------------------------------------------
class Cell(NamedTuple):
    """One recurrent cell: its gate count, its tuples and its block functions."""

    gates: int  # G: W_x is (d, G*H), W_h (H, G*H), biases (G*H,)
    params: type  # Params NamedTuple; its array fields are the layer's parameter names
    cache: type  # Cache NamedTuple, allocated by cache.empty(n, T, d, H, dtype)
    work: type  # Work NamedTuple, allocated by work.empty(n, T, d, H, dtype)
    # one block of samples through all its steps: (c, packed, args_type), the arguments
    # (X, lengths, p, Hs, cache, dHs, dX, need_dx, work) packed by ``runner.run_blocks``
    forward_block: object
    backward_block: object
    unit_bias_gates: tuple = ()  # gate blocks whose (first) bias starts at 1

    @property
    def param_names(self):
        """Names of the parameter arrays, weights first: ``W_x``, ``W_h``, then biases."""
        return tuple(name for name in self.params._fields if name != "activation")

    def make_params(self, arrays, activation="tanh"):
        """The cell's ``Params`` from a mapping of arrays by name (values or gradients);
        ``activation`` ('tanh' or 'relu') is read by cells that have that option."""
        values = {name: arrays[name] for name in self.param_names}
        if "activation" in self.params._fields:
            values["activation"] = ACTIVATIONS[activation]
        return self.params(**values)


CELLS = {
    "rnn": Cell(1, ElmanParams, ElmanCache, ElmanWork, _elman_forward_block, _elman_backward_block),
    # the LSTM's forget gate starts open (bias 1), so early gradients flow through c_t
    "lstm": Cell(
        4,
        LSTMParams,
        LSTMCache,
        LSTMWork,
        _lstm_forward_block,
        _lstm_backward_block,
        unit_bias_gates=(1,),
    ),
    "gru": Cell(3, GRUParams, GRUCache, GRUWork, _gru_forward_block, _gru_backward_block),
}


def _sum_grads(work, n_parts, grads):
    """The gradients in ``grads`` from the per-block sums, in block order (``sum_blocks``
    from Python: one compiled signature per dtype, the bias sums as (B, 1, N) -> (1, N)
    views)."""
    sum_blocks(work.dW_x_parts, n_parts, grads.W_x)
    sum_blocks(work.dW_h_parts, n_parts, grads.W_h)
    if isinstance(grads, GRUParams):
        sum_blocks(work.db_x_parts[:, None], n_parts, grads.b_x[None])
        sum_blocks(work.db_h_parts[:, None], n_parts, grads.b_h[None])
    else:
        sum_blocks(work.db_x_parts[:, None], n_parts, grads.b[None])


_BY_PARAMS = {cell.params: cell for cell in CELLS.values()}


# --------------------------------------------------------------------------------------
# Blocks in parallel: ``runner.run_blocks``, the parallel loop shared with the other
# kernel families, calls the compiled block function through its address (see there why)
# --------------------------------------------------------------------------------------
# empty backward arguments for the forward blocks, per (cell, dtype): the forward and
# backward blocks of a cell take the same arguments, so they share one ``_pack``
_NO_GRADIENTS = {}


def _blocks(block, args):
    """Run ``block`` over every block of ``CHUNK`` samples of ``args[0]``, in parallel."""
    run_blocks(block, args, n_blocks(args[0].shape[0]))


def recurrent_forward(batch, p, Hs, cache):
    """Run a recurrent cell over whole sequences; the cell is the one of ``type(p)``.

    Parameters
    ----------
    batch : ``Batch(X, lengths)``: X (n, T, d) inputs, sequence ``s`` being
        ``X[s, :lengths[s]]``; lengths (n,) int64 in [1, T]. Steps past a sequence's
        length (padding) are never read.
    p : the cell's ``Params`` (``ElmanParams``, ``LSTMParams``, ``GRUParams``).
    Hs : (n, T, H) output, overwritten with ``h_t`` for ``t < lengths[s]`` and zero after.
    cache : the cell's ``Cache``, overwritten with what ``recurrent_backward`` needs.

    The gate equations are in the cell's ``_*_forward_block``, which runs one block of
    samples; the blocks run in parallel (``runner.run_blocks``). A block runs its time
    loop to its longest sequence only: the cost follows the real steps when the caller
    batches sequences of similar lengths together.
    """
    cell = _BY_PARAMS[type(p)]
    dtype = batch.X.dtype
    key = (cell, dtype)
    if key not in _NO_GRADIENTS:
        none = np.empty((0, 0, 0), dtype)
        _NO_GRADIENTS[key] = (none, none, False, cell.work.empty(0, 0, 0, 0, dtype))
    args = (batch.X, batch.lengths, p, Hs, cache) + _NO_GRADIENTS[key]
    _blocks(cell.forward_block, args + (product_entry(dtype),))


def recurrent_backward(batch, p, Hs, cache, dHs, grads, dX, need_dx, work):
    """Backpropagation through time for ``recurrent_forward``.

    The cell's ``_*_backward_block`` gives ``dA_x``, the gradient with respect to the
    input side of the pre-activations (``u_t = x_t W_x + ...``), and ``dA_h``, with
    respect to the recurrent side (``h_{t-1} W_h + ...``; the same array except for the
    GRU); then ``dW_x = sum x_t^T dA_x``, ``dW_h = sum h_{t-1}^T dA_h``,
    ``db = sum dA_x`` (GRU: ``db_x = sum dA_x``, ``db_h = sum dA_h``) and
    ``dx_t = dA_x W_x^T`` (sums over the real steps and samples). Each sequence's
    backpropagation starts at its own last step ``lengths[s] - 1``.

    Parameters
    ----------
    batch, p, Hs, cache : as given to ``recurrent_forward``.
    dHs : (n, T, H) dL/dh_t for every step; padded steps are not read.
    grads : the cell's ``Params`` holding the gradient arrays, overwritten.
    dX : (n, T, d) overwritten with dL/dX (zero on padded steps) when ``need_dx``;
        otherwise not touched (any array of the dtype and ndim, e.g.
        ``np.empty((0, 0, 0))``).
    need_dx : bool.
    work : the cell's ``Work``.
    """
    work.W_xT[...] = p.W_x.T  # the products' right operands, transposed once
    work.W_hT[...] = p.W_h.T
    args = (batch.X, batch.lengths, p, Hs, cache, dHs, dX, bool(need_dx), work)
    _blocks(_BY_PARAMS[type(p)].backward_block, args + (product_entry(batch.X.dtype),))
    _sum_grads(work, n_blocks(batch.X.shape[0]), grads)


def last_states(Hs, lengths, out):
    """``out[s] = Hs[s, lengths[s] - 1]``: each sequence's state at its last real step.

    Hs (n, T, H), lengths (n,), out (n, H). A NumPy gather (nothing to compile).
    """
    out[...] = Hs[np.arange(Hs.shape[0]), lengths - 1]


def last_states_backward(dY, lengths, dHs):
    """The gradient of :func:`last_states`: ``dHs[s, lengths[s] - 1] = dY[s]``, zero
    elsewhere. dY (n, H), lengths (n,), dHs (n, T, H) overwritten."""
    dHs[...] = 0.0
    dHs[np.arange(dHs.shape[0]), lengths - 1] = dY


@jit
def reverse_sequences(X, lengths, out):
    """``out[s, t] = X[s, lengths[s] - 1 - t]`` for ``t < lengths[s]``, zero after: each
    sequence reversed within its own length (a bidirectional layer's backward direction).
    X, out (n, T, d), distinct arrays."""
    zero = out.dtype.type(0.0)
    for s in range(X.shape[0]):
        L = lengths[s]
        for t in range(L):
            for k in range(X.shape[2]):
                out[s, t, k] = X[s, L - 1 - t, k]
        out[s, L:] = zero
