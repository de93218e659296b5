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
"""

import numpy as np

from ..kernels.recurrent import (
    ACTIVATIONS,
    CELLS,
    Batch,
    last_states,
    last_states_backward,
    recurrent_backward,
    recurrent_forward,
)
from .base import Layer, buffer, option, positive_int, writable_c


def _orthogonal(rng, n):
    """A random (n, n) orthogonal matrix (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


class Recurrent(Layer):
    """A recurrent layer: ``cell`` in {'rnn', 'lstm', 'gru'} with ``units`` hidden units.

    ``activation`` ('tanh' or 'relu') applies to the Elman cell only.
    """

    kind = "recurrent"

    def __init__(self, cell, units, return_sequences=False, activation="tanh"):
        self.cell = option(self, "cell", cell, CELLS)
        self.units = positive_int(self, "units", units)
        if not isinstance(return_sequences, (bool, np.bool_)):
            raise ValueError(
                f"Recurrent: return_sequences must be True or False, got {return_sequences!r}."
            )
        self.return_sequences = bool(return_sequences)
        self.activation = option(self, "activation", activation, ACTIVATIONS)

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
        T = input_shape[0]
        return (T, self.units) if self.return_sequences else (self.units,)

    def param_specs(self):
        d, H, G = self.input_shape[1], self.units, self._spec.gates
        W_x, W_h, *biases = self._spec.param_names
        specs = [(W_x, (d, G * H), True), (W_h, (H, G * H), True)]
        specs += [(name, (G * H,), False) for name in biases]
        return specs

    def init_params(self, params, rng):
        d, H, G = self.input_shape[1], self.units, self._spec.gates
        bound = np.sqrt(6.0 / (d + H))
        params["W_x"][...] = rng.uniform(-bound, bound, (d, G * H))
        for g in range(G):
            params["W_h"][:, g * H : (g + 1) * H] = _orthogonal(rng, H)
        biases = self._spec.param_names[2:]
        for name in biases:
            params[name][...] = 0.0
        for g in self._spec.unit_bias_gates:  # the LSTM's forget gate
            params[biases[0]][g * H : (g + 1) * H] = 1.0

    def _arrays(self, ctx, key, factory, n, T):
        """Cache/work NamedTuples, reallocated only when the batch shape changes."""
        tag = (key, n, T)
        if ctx.get(key + "_tag") != tag:
            ctx[key] = factory.empty(n, T, self.input_shape[1], self.units, self.dtype)
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

    def forward(self, X, params, ctx, training, rng):
        X = writable_c(X)
        n, T, _ = X.shape
        batch = Batch(X, self._lengths(ctx, n, T))
        Hs = buffer(ctx, "Hs", (n, T, self.units), X.dtype)
        cache = self._arrays(ctx, "cache", self._spec.cache, n, T)
        recurrent_forward(batch, self._spec.make_params(params, self.activation), Hs, cache)
        if training:
            ctx["batch"] = batch
        if self.return_sequences:
            return Hs  # zero past each sequence's length
        last = buffer(ctx, "last", (n, self.units), X.dtype)
        last_states(Hs, batch.lengths, last)  # the state at each sequence's last step
        return last

    def backward(self, dY, params, grads, ctx, need_dx):
        batch = ctx["batch"]
        n, T, d = batch.X.shape
        H = self.units
        if self.return_sequences:
            dHs = np.ascontiguousarray(dY)
        else:
            # sequence-to-one: only the last hidden state receives a gradient
            dHs = buffer(ctx, "dHs", (n, T, H), batch.X.dtype)
            last_states_backward(np.ascontiguousarray(dY), batch.lengths, dHs)
        Hs = ctx["Hs"][:n]
        cache = self._arrays(ctx, "cache", self._spec.cache, n, T)
        work = self._arrays(ctx, "work", self._spec.work, n, T)
        dX = buffer(ctx, "dX", (n, T, d), batch.X.dtype)
        spec = self._spec
        recurrent_backward(
            batch,
            spec.make_params(params, self.activation),
            Hs,
            cache,
            dHs,
            spec.make_params(grads),
            dX,
            need_dx,
            work,
        )
        return dX if need_dx else None

    def get_config(self):
        return {
            "cell": self.cell,
            "units": self.units,
            "return_sequences": self.return_sequences,
            "activation": self.activation,
        }
