"""Recurrent layers (Elman RNN, LSTM, GRU) over whole sequences.

One ``Recurrent`` layer runs one cell over (n, T, d) input; the time loop and
backpropagation through time are inside the kernels of ``sknet.kernels.recurrent``.
With ``return_sequences`` it outputs every hidden state (n, T, H), for stacking;
otherwise only the last one (n, H), for a sequence-to-one head.

Parameters per cell (G gate blocks of H columns, PyTorch's gate orders):

======  =====================================================  ==========
cell    parameters                                             gates
======  =====================================================  ==========
rnn     W_x (d, H), W_h (H, H), b (H,)                         --
lstm    W_x (d, 4H), W_h (H, 4H), b (4H,)                      i, f, g, o
gru     W_x (d, 3H), W_h (H, 3H), b_x (3H,), b_h (3H,)         r, z, n
======  =====================================================  ==========

Initialisation: W_x Glorot-uniform per gate block, W_h orthogonal per gate block,
biases zero except the LSTM forget gate's, which starts at 1 (so early gradients flow
through the cell state).

Variable lengths: when the network's ``ctx["lengths"]`` holds the batch's sequence
lengths, each sequence's recurrence stops at its own length (see the kernels), the
output is the state at its last real step, and states past it are zero.

Bidirectional (``bidirectional=True``, PyTorch's layout): a second set of parameters
(``W_x_reverse`` ...) runs the same cell over each sequence reversed *within its own
length*; the outputs are concatenated, forward direction first: every step
``[h_t, h'_t]`` (2H), where ``h'_t`` has read steps ``L-1 .. t``, or, sequence-to-one,
``[h_{L-1}, h'_0]``, each direction's final state (PyTorch's ``h_n``).
"""

import math

import numpy as np

from .._threads import one_blas_thread
from ..kernels.recurrent import (
    ACTIVATIONS,
    CELLS,
    Batch,
    last_states,
    last_states_backward,
    recurrent_backward,
    recurrent_forward,
    reverse_sequences,
)
from .base import Layer, buffer, option, positive_int, writable_c


def _scratch(ctx, key, shape, dtype):
    """A C-contiguous array of ``shape``: the first elements of a flat buffer
    ``ctx[key]`` that grows only when a batch needs more, so batches of changing
    lengths reuse it (``base.buffer`` reallocates when the time axis changes)."""
    size = math.prod(shape)
    flat = ctx.get(key)
    if flat is None or flat.size < size or flat.dtype != dtype:
        flat = np.empty(size, dtype)
        ctx[key] = flat
    return flat[:size].reshape(shape)


def _orthogonal(rng, n):
    """A random (n, n) orthogonal matrix (QR of a Gaussian, signs fixed; BLAS on one
    thread, see :func:`sknet._threads.one_blas_thread`)."""
    with one_blas_thread():
        q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


class Recurrent(Layer):
    """A recurrent layer: ``cell`` in {'rnn', 'lstm', 'gru'} with ``units`` hidden units.

    ``activation`` ('tanh' or 'relu') applies to the Elman cell only.
    """

    kind = "recurrent"

    def __init__(self, cell, units, return_sequences=False, activation="tanh", bidirectional=False):
        self.cell = option(self, "cell", cell, CELLS)
        self.units = positive_int(self, "units", units)
        for name, value in (
            ("return_sequences", return_sequences),
            ("bidirectional", bidirectional),
        ):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"Recurrent: {name} must be True or False, got {value!r}.")
        self.return_sequences = bool(return_sequences)
        self.activation = option(self, "activation", activation, ACTIVATIONS)
        self.bidirectional = bool(bidirectional)

    @property
    def _directions(self):
        """Parameter-name suffixes of the directions: '' (forward), '_reverse'."""
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def _spec(self):
        # looked up, not stored: the layer's state stays plain data (no jitted kernels),
        # which skops.io and other state-based serialisers need
        return CELLS[self.cell]

    def _output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"Recurrent expects (n_timesteps, n_features) per sample, got {input_shape}"
            )
        T, width = input_shape[0], self.units * len(self._directions)
        return (T, width) if self.return_sequences else (width,)

    def param_specs(self):
        d, H, G = self.input_shape[1], self.units, self._spec.gates
        W_x, W_h, *biases = self._spec.param_names
        specs = []
        for sfx in self._directions:
            specs += [(W_x + sfx, (d, G * H), True), (W_h + sfx, (H, G * H), True)]
            specs += [(name + sfx, (G * H,), False) for name in biases]
        return specs

    def init_params(self, params, rng):
        d, H, G = self.input_shape[1], self.units, self._spec.gates
        bound = np.sqrt(6.0 / (d + H))
        biases = self._spec.param_names[2:]
        for sfx in self._directions:
            params["W_x" + sfx][...] = rng.uniform(-bound, bound, (d, G * H))
            for g in range(G):
                params["W_h" + sfx][:, g * H : (g + 1) * H] = _orthogonal(rng, H)
            for name in biases:
                params[name + sfx][...] = 0.0
            for g in self._spec.unit_bias_gates:  # the LSTM's forget gate
                params[biases[0] + sfx][g * H : (g + 1) * H] = 1.0

    def _direction_params(self, params, sfx):
        """One direction's ``Params`` from the layer's parameter (or gradient) views."""
        names = self._spec.param_names
        return self._spec.make_params({k: params[k + sfx] for k in names}, self.activation)

    def _arrays(self, ctx, key, factory, n, T):
        """Cache/work NamedTuples for an (n, T) batch: views into arrays allocated for
        the largest batch seen, so batches of other lengths (variable-length training,
        length-sorted prediction chunks) allocate nothing."""
        tag = (n, T)
        if ctx.get(key + "_tag") == tag:
            return ctx[key]
        d, H = self.input_shape[1], self.units
        cap_n, cap_T = ctx.get(key + "_cap", (0, 0))
        if n > cap_n or T > cap_T:
            cap_n, cap_T = max(n, cap_n), max(T, cap_T)
            ctx[key + "_arena"] = factory.empty(cap_n, cap_T, d, H, self.dtype)
            ctx[key + "_cap"] = (cap_n, cap_T)
        arena = ctx[key + "_arena"]
        ctx[key] = (
            arena
            if (n, T) == (cap_n, cap_T)
            else factory.empty(n, T, d, H, self.dtype, arena=arena)
        )
        ctx[key + "_tag"] = tag
        return ctx[key]

    def _lengths(self, ctx, n, T):
        """The batch's sequence lengths: ``ctx["lengths"]`` (variable-length input, set by
        the network), else every sequence ``T`` steps long."""
        lengths = ctx.get("lengths")
        if lengths is not None:
            return lengths
        full = ctx.get("_full_lengths")
        if full is None or full.shape[0] < n or ctx.get("_full_T") != T:
            full = np.full(n, T, dtype=np.int64)
            ctx["_full_lengths"], ctx["_full_T"] = full, T
        return full[:n]

    def _run_forward(self, batch, params, ctx, sfx):
        """One direction's states ``(n, T, H)`` (in the ctx under ``"Hs" + sfx``)."""
        n, T, _ = batch.X.shape
        Hs = _scratch(ctx, "Hs" + sfx, (n, T, self.units), batch.X.dtype)
        cache = self._arrays(ctx, "cache" + sfx, self._spec.cache, n, T)
        recurrent_forward(batch, self._direction_params(params, sfx), Hs, cache)
        return Hs

    def _run_backward(self, batch, params, grads, ctx, sfx, dHs, need_dx):
        n, T, d = batch.X.shape
        Hs = _scratch(ctx, "Hs" + sfx, (n, T, self.units), batch.X.dtype)  # the forward's
        cache = self._arrays(ctx, "cache" + sfx, self._spec.cache, n, T)
        work = self._arrays(ctx, "work" + sfx, self._spec.work, n, T)
        dX = _scratch(ctx, "dX" + sfx, (n, T, d), batch.X.dtype)
        recurrent_backward(
            batch,
            self._direction_params(params, sfx),
            Hs,
            cache,
            dHs,
            self._direction_params(grads, sfx),
            dX,
            need_dx,
            work,
        )
        return dX

    def forward(self, X, params, ctx, training, rng):
        X = writable_c(X)
        n, T, _ = X.shape
        batch = Batch(X, self._lengths(ctx, n, T))
        Hs = self._run_forward(batch, params, ctx, "")
        if training:
            ctx["batch"] = batch
        if not self.bidirectional:
            if self.return_sequences:
                return Hs  # zero past each sequence's length
            last = buffer(ctx, "last", (n, self.units), X.dtype)
            last_states(Hs, batch.lengths, last)  # the state at each sequence's last step
            return last
        # the backward direction: the same kernels on each sequence reversed in its length
        H = self.units
        X_rev = _scratch(ctx, "X_rev", X.shape, X.dtype)
        reverse_sequences(X, batch.lengths, X_rev)
        batch_rev = Batch(X_rev, batch.lengths)
        Hs_rev = self._run_forward(batch_rev, params, ctx, "_reverse")
        if training:
            ctx["batch_rev"] = batch_rev
        if self.return_sequences:
            out = _scratch(ctx, "out", (n, T, 2 * H), X.dtype)
            out[:, :, :H] = Hs
            back = _scratch(ctx, "back", (n, T, H), X.dtype)
            reverse_sequences(Hs_rev, batch.lengths, back)  # back in the input's time
            out[:, :, H:] = back
            return out
        last = buffer(ctx, "last", (n, 2 * H), X.dtype)
        part = buffer(ctx, "last_part", (n, H), X.dtype)
        last_states(Hs, batch.lengths, part)
        last[:, :H] = part
        last_states(Hs_rev, batch.lengths, part)  # the reverse direction's final state
        last[:, H:] = part
        return last

    def _state_grads(self, ctx, dY, lengths, key):
        """dL/dHs (n, T, H) of one direction from its share ``dY`` of the output's
        gradient: per step (``return_sequences``), or at each last step."""
        n, T = ctx["batch"].X.shape[:2]
        dtype = ctx["batch"].X.dtype
        if self.return_sequences:
            return np.ascontiguousarray(dY)
        dHs = _scratch(ctx, key, (n, T, self.units), dtype)
        last_states_backward(np.ascontiguousarray(dY), lengths, dHs)
        return dHs

    def backward(self, dY, params, grads, ctx, need_dx):
        batch = ctx["batch"]
        H = self.units
        width = H if self.bidirectional else dY.shape[-1]
        dHs = self._state_grads(ctx, dY[..., :width], batch.lengths, "dHs")
        dX = self._run_backward(batch, params, grads, ctx, "", dHs, need_dx)
        if not self.bidirectional:
            return dX if need_dx else None
        batch_rev = ctx["batch_rev"]
        dY_rev = dY[..., H:]
        if self.return_sequences:  # into the reversed time of the backward direction
            flipped = _scratch(ctx, "dY_rev", batch.X.shape[:2] + (H,), batch.X.dtype)
            reverse_sequences(np.ascontiguousarray(dY_rev), batch.lengths, flipped)
            dY_rev = flipped
        dHs_rev = self._state_grads(ctx, dY_rev, batch.lengths, "dHs_rev")
        dX_rev = self._run_backward(batch_rev, params, grads, ctx, "_reverse", dHs_rev, need_dx)
        if not need_dx:
            return None
        back = _scratch(ctx, "dX_back", batch.X.shape, batch.X.dtype)
        reverse_sequences(dX_rev, batch.lengths, back)
        dX += back
        return dX

    def get_config(self):
        return {
            "cell": self.cell,
            "units": self.units,
            "return_sequences": self.return_sequences,
            "activation": self.activation,
            # only when set: configurations (summaries, model files) of one-directional
            # layers stay as they were
            **({"bidirectional": True} if self.bidirectional else {}),
        }
