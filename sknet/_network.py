"""A stack of layers and a loss: forward, backward, loss and gradient.

All parameters live in one flat, contiguous vector ``theta`` (and the gradient in
``grad``); every layer sees dicts of views into them. Solvers therefore work on flat
vectors, and scipy's L-BFGS can drive ``loss_and_grad`` directly. The layout is layer
by layer (W1, b1, W2, b2, ...), so "all but the first k layers" is a contiguous tail.
"""

import threading

import numpy as np

from ._layers.base import buffer
from ._sequences import PaddedSequences
from .kernels.activations import LOGISTIC, activation_forward, exp_forward, softmax_forward
from .kernels.dense import gather_rows
from .kernels.losses import LOSSES, OUTPUT_ACTIVATIONS, loss_and_delta
from .kernels.optim import l2_blocks, l2_penalty_grad, sum_squares

#: rows per chunk when predicting, bounding memory for large inputs ...
PREDICT_CHUNK = 4096
#: ... and fewer when the widest per-sample activation times the rows would pass this
#: (an FCN on 500-step series: 64 rows; the buffers then stay in cache-friendly sizes)
PREDICT_CHUNK_BYTES = 32 * 2**20
#: a thread keeps its prediction buffers for the next call when they hold at most this
#: many bytes (fresh buffers cost page faults and zeroing on every call: the GunPoint
#: FCN's 50-series prediction spent 36 ms with them against 26 ms reusing them)
PREDICT_KEEP_BYTES = 64 * 2**20


def _nbytes(value):
    """Bytes of the arrays in ``value`` (an array, a dict, a tuple or a NamedTuple)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


def step_rows(X, Z, Y, sw):
    """Per-step outputs as rows for the loss kernels: ``Z`` (n, T, k) and ``Y`` (n, >= T,
    k) as (n T, k), and each row's weight: ``sw_i`` at the real steps of sequence ``i``
    (``t < lengths[i]`` for ``PaddedSequences``, every step otherwise), 0 at padding."""
    n, T, k = Z.shape
    Y = np.ascontiguousarray(Y[:, :T]).reshape(n * T, k)
    w = np.empty((n, T), dtype=Z.dtype)
    w[...] = sw[:n, None]
    if isinstance(X, PaddedSequences):
        w[np.arange(T)[None, :] >= X.lengths[:, None]] = 0
    return Z.reshape(n * T, k), Y, w.reshape(-1)


class Network:
    """Layers + loss, parameters in one flat vector.

    Parameters
    ----------
    layers : list of Layer
    loss : {'log_loss', 'binary_log_loss', 'squared_error', 'poisson'}
        Fixes the output activation (softmax, logistic, identity, exp).

    Attributes
    ----------
    What code outside the core may read (an estimator's ``network_``); the rest is
    private. Set by ``build``: ``input_shape`` and ``output_shape`` (per sample),
    ``dtype``, ``n_params``, ``theta`` (the flat parameter vector, layer by layer) and
    ``params`` (per layer, a dict of views into ``theta``, in ``param_specs`` order),
    ``state`` (the flat vector of non-trainable fitted values, such as running
    statistics; float, possibly empty) and ``states`` (per layer, views into it).
    Always: ``layers``, ``loss`` and ``out_activation``. With the methods
    ``layer_offset``, ``parametrized_layers`` and ``predict``.
    """

    def __init__(self, layers, loss):
        self.layers = list(layers)
        self.loss = loss
        self._loss_code = LOSSES[loss]
        self.out_activation = OUTPUT_ACTIVATIONS[loss]

    # -- construction -------------------------------------------------------------
    def build(self, input_shape, dtype):
        """Propagate shapes, lay out and allocate ``theta`` and ``grad``."""
        self.input_shape = tuple(int(s) for s in input_shape)
        self.dtype = np.dtype(dtype)
        shape = self.input_shape
        self._layout = []  # per layer: list of (name, start, stop, shape, penalized)
        self._layer_start = []
        offset = 0
        for layer in self.layers:
            shape = layer.build(shape, self.dtype)
            self._layer_start.append(offset)
            entries = []
            for name, pshape, penalized in layer.param_specs():
                size = int(np.prod(pshape))
                entries.append((name, offset, offset + size, tuple(pshape), penalized))
                offset += size
            self._layout.append(entries)
        self._layer_start.append(offset)
        self.output_shape = shape
        self.n_params = offset
        self.theta = np.zeros(offset, dtype=self.dtype)
        self.grad = np.zeros(offset, dtype=self.dtype)
        # non-trainable fitted values (running statistics), layer by layer
        self._state_layout = []
        offset = 0
        for layer in self.layers:
            entries = []
            for name, sshape, _ in layer.state_specs():
                size = int(np.prod(sshape))
                entries.append((name, offset, offset + size, tuple(sshape)))
                offset += size
            self._state_layout.append(entries)
        self.state = np.zeros(offset, dtype=self.dtype)
        self._make_views()
        self.reset_state()
        return self

    def reset_state(self):
        """Set every layer's non-trainable state to its initial value."""
        for layer, views in zip(self.layers, self.states):
            for name, _, value in layer.state_specs():
                views[name][...] = value

    def _make_views(self):
        self.params = [
            {name: self.theta[a:b].reshape(s) for name, a, b, s, _ in entries}
            for entries in self._layout
        ]
        self.grads = [
            {name: self.grad[a:b].reshape(s) for name, a, b, s, _ in entries}
            for entries in self._layout
        ]
        self._penalized_ranges = [
            (a, b) for entries in self._layout for _, a, b, _, pen in entries if pen
        ]
        self.states = [
            {name: self.state[a:b].reshape(s) for name, a, b, s in entries}
            for entries in getattr(self, "_state_layout", [[] for _ in self.layers])
        ]
        self._ctx = self._new_ctxs()
        self._l2_cache = {}
        self._predict_ctxs = threading.local()  # per thread: its last prediction's ctxs

    def _new_ctxs(self):
        """Fresh per-layer ``ctx`` dicts, each holding its layer's state views."""
        return [{"state": views} for views in self.states]

    def init_params(self, rng):
        """Initialise every layer's parameters from ``rng`` (a ``RandomState``), in order."""
        for layer, params in zip(self.layers, self.params):
            layer.init_params(params, rng)

    def layer_offset(self, i):
        """Start of layer ``i``'s parameters in ``theta`` (``i == len(layers)``: the end)."""
        return self._layer_start[i]

    def parametrized_layers(self):
        """Indices of the layers that hold parameters, in order."""
        return [i for i, entries in enumerate(self._layout) if entries]

    # -- pickling: views are rebuilt, buffers are dropped ---------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        for key in (
            "params",
            "grads",
            "states",
            "_penalized_ranges",
            "_ctx",
            "_predict_ctxs",
            "_ones",
            "_l2_cache",
            "_batches",
        ):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "theta" in state:
            # a read-only theta (joblib.load(..., mmap_mode="r")) would make numba
            # compile read-only variants of every kernel, and training impossible
            if "state" not in state:  # pickled before networks had state
                self._state_layout = [[] for _ in self.layers]
                self.state = np.zeros(0, dtype=self.theta.dtype)
            for key in ("theta", "grad", "state"):
                arr = getattr(self, key, None)
                if arr is not None and not arr.flags.writeable:
                    setattr(self, key, np.array(arr))
            self._make_views()

    # -- passes ---------------------------------------------------------------------
    def forward(self, X, training=False, rng=None, stop=None, ctxs=None, first_trainable=0):
        """Raw output of layers ``[0, stop)`` for a batch (no output activation).

        With ``training``, frozen layers (before ``first_trainable``) that hold state run
        in inference mode: a frozen batch normalization uses and keeps its running
        statistics, as in Keras.
        """
        ctxs = self._ctx if ctxs is None else ctxs
        out = X
        # variable-length sequences: the padded array goes through the layers, and every
        # layer's ctx holds the lengths (the recurrent layers stop each sequence there)
        lengths = None
        if isinstance(X, PaddedSequences):
            out, lengths = X.data, X.lengths
        for i, (layer, params, ctx) in enumerate(zip(self.layers[:stop], self.params, ctxs)):
            ctx["lengths"] = lengths
            mode = training and (i >= first_trainable or not self._state_layout[i])
            out = layer.forward(out, params, ctx, mode, rng)
        return out

    def apply_output_activation(self, Z):
        """Apply the loss's output activation in place to the raw output ``Z`` (n, k),
        or (n, T, k) per step (C-contiguous)."""
        if Z.ndim == 3:
            Z = Z.reshape(-1, Z.shape[2])
        if self.out_activation == "softmax":
            softmax_forward(Z)
        elif self.out_activation == "logistic":
            activation_forward(Z.reshape(-1), LOGISTIC)
        elif self.out_activation == "exp":
            exp_forward(Z.reshape(-1))
        return Z

    def predict(self, X, stop=None, output_activation=True):
        """Forward pass for inference in chunks; a fresh result array, thread-safe."""
        n = X.shape[0]
        out = None
        # this thread's buffers from its last prediction (another thread's call gets its
        # own), taken out while in use
        ctxs = getattr(self._predict_ctxs, "ctxs", None) or self._new_ctxs()
        self._predict_ctxs.ctxs = None
        chunk = self._predict_chunk()
        sequences = isinstance(X, PaddedSequences)
        if sequences:
            # chunks of similar lengths (the cost follows the real steps); the results go
            # back to the input's order
            order = np.argsort(X.lengths, kind="stable")
            chunk = self._predict_chunk(n_steps=X.shape[1])
        for start in range(0, n, chunk):
            rows = order[start : start + chunk] if sequences else slice(start, start + chunk)
            Z = self.forward(X[rows], stop=stop, ctxs=ctxs)
            per_step = sequences and Z.ndim == 3  # states per step, padded to X's length
            if out is None:
                shape = (X.shape[1],) + Z.shape[2:] if per_step else Z.shape[1:]
                out = np.empty((n,) + shape, dtype=Z.dtype)
                if per_step:
                    out[...] = 0
            if per_step:
                out[rows, : Z.shape[1]] = Z
            else:
                out[rows] = Z
        if out is None:  # n == 0 cannot reach here after validation; keep shapes honest
            out = np.empty((0,) + self.output_shape, dtype=self.dtype)
        if output_activation and (stop is None or stop >= len(self.layers)):
            self.apply_output_activation(out)  # padding steps too: finite, ignored
        if _nbytes(ctxs) <= PREDICT_KEEP_BYTES:
            self._predict_ctxs.ctxs = ctxs
        return out

    def _predict_chunk(self, n_steps=None):
        """Rows per prediction chunk: PREDICT_CHUNK, fewer for wide activations (with
        ``n_steps``, sequences of up to that many steps, whatever the built shapes say)."""
        shapes = [self.input_shape] + [layer.output_shape for layer in self.layers]
        if n_steps is not None:
            # per step, four times the widest (the gates of an LSTM), times the steps
            shapes = [(n_steps, 4 * max(shape[-1] for shape in shapes))]
        widest = max(int(np.prod(shape)) for shape in shapes)
        rows = PREDICT_CHUNK_BYTES // max(widest * self.dtype.itemsize, 1)
        return int(min(PREDICT_CHUNK, max(rows, 16)))

    def data_loss(self, X, Y, sample_weight=None):
        """Data loss (no penalty) of the current parameters on ``(X, Y)``; no gradient."""
        Z = self.predict(X, output_activation=False)
        sw = np.ones(X.shape[0], dtype=self.dtype) if sample_weight is None else sample_weight
        if Z.ndim == 3:
            Z, Y, sw = step_rows(X, Z, Y, sw)
        S = float(sw.sum())
        delta = np.empty_like(Z)
        return loss_and_delta(self._loss_code, Z, Y, sw, self.dtype.type(1.0 / S), delta) / S

    def loss_and_grad(self, X, Y, sample_weight, alpha, rng=None, first_trainable=0, penalty=True):
        """Loss and gradient (into ``self.grad``) at the current ``theta``.

        loss = sum_i sw_i l_i / S + (alpha / 2S) ||W||^2,  S = sum_i sw_i,
        exactly scikit-learn's objective (``sample_weight=None`` means sw_i = 1).
        Gradients of layers before ``first_trainable`` are not computed.

        Outputs per time step (raw output (n, T, k), ``Y`` (n, >= T, k)): the data loss
        is the weighted mean over the real steps, ``sum_i sw_i sum_{t < L_i} l_it /
        sum_i sw_i L_i`` (``L_i`` the lengths of ``PaddedSequences``, else T); padding
        steps weigh exactly 0. The penalty stays ``(alpha / 2S) ||W||^2`` per sequence.

        ``penalty=False`` leaves the trainable weights' penalty, loss and gradient, to
        the caller (an optimiser that folds it into its update, see
        :meth:`l2_blocks`); frozen weights' penalty is still in the loss.
        """
        n = X.shape[0]
        if sample_weight is None:
            sw = self._ctx_ones(n)
            sw_sum = float(n)
        else:
            sw = sample_weight
            sw_sum = float(sample_weight.sum())
        Z = self.forward(X, training=True, rng=rng, first_trainable=first_trainable)
        delta = self._delta_buffer(Z.shape)
        scale = 1.0 / sw_sum
        if Z.ndim == 3:  # per step: one row per (sequence, step), padding weighs 0
            Z2, Y2, w = step_rows(X, Z, Y, sw)
            data_scale = 1.0 / float(w.sum())
            delta2 = delta.reshape(Z2.shape)
            loss = loss_and_delta(self._loss_code, Z2, Y2, w, self.dtype.type(data_scale), delta2)
            loss *= data_scale
        else:
            loss = loss_and_delta(self._loss_code, Z, Y, sw, self.dtype.type(scale), delta)
            loss *= scale
        dY = delta
        for i in range(len(self.layers) - 1, first_trainable - 1, -1):
            dY = self.layers[i].backward(
                dY, self.params[i], self.grads[i], self._ctx[i], need_dx=i > first_trainable
            )
        if alpha:
            # penalty (alpha / 2S) ||W||^2 and its gradient (alpha / S) W, fused per block;
            # frozen blocks count in the loss but get no gradient
            c = self.dtype.type(alpha * scale)
            start = self.layer_offset(first_trainable)
            sumsq = 0.0
            for a, b in self._penalized_ranges:
                if a < start:
                    sumsq += sum_squares(self.theta[a:b])
                elif penalty:
                    sumsq += l2_penalty_grad(self.theta[a:b], self.grad[a:b], c)
            loss += 0.5 * alpha * sumsq * scale
        return loss

    def l2_blocks(self, first_trainable=0):
        """Cache-sized blocks of ``theta[layer_offset(first_trainable):]`` marking the
        penalised weights, for the optimisers' fused penalty (``kernels.optim.l2_blocks``)."""
        blocks = self._l2_cache.get(first_trainable)
        if blocks is None:
            blocks = l2_blocks(
                self._penalized_ranges, self.layer_offset(first_trainable), self.n_params
            )
            self._l2_cache[first_trainable] = blocks
        return blocks

    def take_batch(self, A, idx, key):
        """``A[idx]`` for a mini-batch: the rows ``idx`` (int64 array) of ``A``.

        A C-contiguous float ndarray (the training X and the encoded Y of the dense
        families) is gathered by a kernel into a buffer ``key`` kept between steps (valid
        until the next call with that key); anything else (sparse, sequences, other
        layouts) is indexed by numpy. The same values either way.
        """
        if (
            type(A) is not np.ndarray
            or A.ndim < 2
            or not A.flags.c_contiguous
            or A.dtype not in (np.float32, np.float64)
            or idx.dtype != np.int64
        ):
            return A[idx]
        batches = getattr(self, "_batches", None)
        if batches is None:
            batches = self._batches = {}
        out = buffer(batches, key, (idx.shape[0],) + A.shape[1:], A.dtype)
        gather_rows(A.reshape(A.shape[0], -1), idx, out.reshape(idx.shape[0], -1))
        return out

    def _ctx_ones(self, n):
        ones = getattr(self, "_ones", None)
        if ones is None or ones.shape[0] < n:
            ones = np.ones(n, dtype=self.dtype)
            self._ones = ones
        return ones[:n]

    def _delta_buffer(self, shape):
        buf = self._ctx[-1].get("_delta")
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:]:
            buf = np.empty(shape, dtype=self.dtype)
            self._ctx[-1]["_delta"] = buf
        return buf[: shape[0]]
