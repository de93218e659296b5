"""Convolution and pooling layers for images (n, C, H, W) and signals (n, C, L).

The arithmetic is in ``sknet.kernels.conv`` (im2col + BLAS, PyTorch's weight layout
(F, C, kh, kw)) and ``sknet.kernels.pool``. A convolution fuses its activation: the
output is overwritten with f(conv(X)), and backward multiplies by f' expressed through
that output, as the dense layer does.

Output sizes, per spatial axis of size ``n_in``, kernel ``k``, stride ``s`` and dilation
``d`` (PyTorch's: kernel taps ``d`` apart), with the effective kernel size
``ke = d (k - 1) + 1``:

* 'valid': ``(n_in - ke) // s + 1``, no padding;
* int p: ``(n_in + 2p - ke) // s + 1``, p zeros on both sides;
* 'same': ``ceil(n_in / s)``, total padding ``max((out - 1) s + ke - n_in, 0)`` with
  the smaller half on the top/left (the extra pixel, for even ``ke``, bottom/right), as
  PyTorch's ``padding='same'`` at stride 1.
"""

from numbers import Integral

import numba
import numpy as np

from ..kernels import conv as ck
from ..kernels import pool as pk
from ..kernels.activations import ACTIVATIONS, activation_backward, activation_forward
from .base import Layer, buffer, option, positive_int, spatial_ndim, writable_c

#: Largest store of a batch's im2col matrices a convolution keeps from its forward pass
#: for its backward pass (bytes); larger layers recompute im2col.
KEEP_COLS_BYTES = 2 << 20


def conv_output_size(n_in, k, s, padding, dilation=1):
    """(output size, top/left padding) of one spatial axis.

    Kernel ``k`` with dilation ``dilation`` spans ``ke = dilation * (k - 1) + 1`` inputs;
    'same' pads ``max((out - 1) * s + ke - n_in, 0)`` in total, the smaller half first.
    """
    ke = dilation * (k - 1) + 1
    if padding == "same":
        out = -(-n_in // s)
        total = max((out - 1) * s + ke - n_in, 0)
        return out, total // 2
    p = 0 if padding == "valid" else int(padding)
    return (n_in + 2 * p - ke) // s + 1, p


def _valid_padding(padding):
    """'same', 'valid' or an integer >= 0 (not a bool)."""
    if isinstance(padding, str):
        return padding in ("same", "valid")
    return (
        isinstance(padding, Integral) and not isinstance(padding, (bool, np.bool_)) and padding >= 0
    )


class Conv(Layer):
    """``filters`` convolutions of size ``kernel_size`` (square in 2-D), then ``activation``.

    ``ndim`` 2 for (C, H, W) input, 1 for (C, L). ``dilation`` spaces the kernel taps
    ``dilation`` apart on every spatial axis (PyTorch's ``dilation``; 1 is a plain
    convolution), so the kernel spans ``dilation * (kernel_size - 1) + 1`` inputs.
    """

    kind = "conv"

    def __init__(
        self,
        filters,
        kernel_size=3,
        stride=1,
        padding="same",
        activation="relu",
        ndim=2,
        dilation=1,
    ):
        self.filters = positive_int(self, "filters", filters)
        self.kernel_size = positive_int(self, "kernel_size", kernel_size)
        self.stride = positive_int(self, "stride", stride)
        if not _valid_padding(padding):
            raise ValueError(
                f"Conv: padding must be 'same', 'valid' or an integer >= 0, got {padding!r}."
            )
        self.padding = padding
        self.activation = option(self, "activation", activation, ACTIVATIONS)
        self.ndim = spatial_ndim(self, ndim)
        self.dilation = positive_int(self, "dilation", dilation)
        self._code = ACTIVATIONS[activation]

    def _output_size(self, n_in):
        """(output size, top/left padding) of a spatial axis of size ``n_in``."""
        return conv_output_size(n_in, self.kernel_size, self.stride, self.padding, self.dilation)

    def _spatial_out(self, spatial):
        return tuple(self._output_size(n)[0] for n in spatial)

    def _output_shape(self, input_shape):
        if len(input_shape) != self.ndim + 1:
            raise ValueError(
                f"Conv{self.ndim}D expects {self.ndim + 1}-D samples "
                f"(channels first), got {input_shape}"
            )
        spatial = input_shape[1:]
        out = self._spatial_out(spatial)
        if min(out) < 1:
            dilated = f", dilation={self.dilation}" if self.dilation != 1 else ""
            raise ValueError(
                f"kernel_size={self.kernel_size}{dilated} does not fit the "
                f"{'x'.join(map(str, spatial))} input (padding={self.padding!r})."
            )
        self._pads = tuple(self._output_size(n)[1] for n in spatial)
        return (self.filters,) + out

    def _kernel_shape(self):
        C, k = self.input_shape[0], self.kernel_size
        return (self.filters, C) + (k,) * self.ndim

    def param_specs(self):
        return [("W", self._kernel_shape(), True), ("b", (self.filters,), False)]

    def init_params(self, params, rng):
        C, k = self.input_shape[0], self.kernel_size
        area = k**self.ndim
        bound = np.sqrt(6.0 / ((C + self.filters) * area))
        params["W"][...] = rng.uniform(-bound, bound, params["W"].shape)
        params["b"][...] = 0.0

    def _workspace(self, ctx, n_backward=0):
        """The kernels' scratch buffers, reallocated when numba's thread count changes
        (one im2col slot per thread) or a backward pass needs room for more samples.

        Forward uses only the im2col slots, so a forward-only workspace (prediction)
        holds no per-chunk gradient buffers. Results never depend on the slot count.
        """
        ws = ctx.get("ws")
        n_slots = numba.get_num_threads()
        C, F, k = self.input_shape[0], self.filters, self.kernel_size
        out = self.output_shape[1:]
        # The backward pass reads back the forward pass's im2col matrices (the kernels'
        # keep_cols) only when they take at most KEEP_COLS_BYTES: for larger stores the
        # memory traffic cost more than recomputing saved (LeNet-like layers, batch 128:
        # conv fwd + bwd 14-22% slower with the store; the 8x8 digits network's layers,
        # 0.4-1.2 MB: 20% faster with it). Results are the same bits either way.
        # The workspace never shrinks: it is sized for the largest batch seen.
        capacity = 0 if ws is None else ws.dW_chunks.shape[0] * ws.chunk
        if ws is None or ws.cols.shape[0] != n_slots or capacity < n_backward:
            n_backward = max(n_backward, capacity)
            rows = C * k**self.ndim + 4  # im2col rows, padded
            store = n_backward * rows * int(np.prod(out)) * np.dtype(self.dtype).itemsize
            keep = 0 < store <= KEEP_COLS_BYTES
            size = self.input_shape[1:]
            if self.ndim == 2:
                ws = ck.conv2d_workspace(
                    C, F, (k, k), out, n_backward, self.dtype, n_slots, keep_cols=keep, in_size=size
                )
            else:
                ws = ck.conv1d_workspace(
                    C,
                    F,
                    k,
                    out[0],
                    n_backward,
                    self.dtype,
                    n_slots,
                    keep_cols=keep,
                    in_size=size[0],
                )
            ctx["ws"] = ws
        return ws

    def _geom(self):
        """The 2-D kernels' geometry (kh, kw, sh, sw, ph, pw, dh, dw)."""
        k, s, d = self.kernel_size, self.stride, self.dilation
        return (k, k, s, s, self._pads[0], self._pads[1], d, d)

    def forward(self, X, params, ctx, training, rng):
        X = writable_c(X)
        n = X.shape[0]
        Y = buffer(ctx, "Y", (n,) + self.output_shape, X.dtype)
        ws = self._workspace(ctx, n_backward=n if training else 0)
        s, d = self.stride, self.dilation
        if self.ndim == 2:
            # the shapes fit by construction: the kernel without its per-call checks
            ck._forward(X, params["W"], params["b"], self._geom(), Y, ws)
        else:
            ck.conv1d_forward(X, params["W"], params["b"], s, self._pads[0], Y, ws, d)
        activation_forward(Y.reshape(-1), self._code)
        if training:
            ctx["X"] = X
        return Y

    def backward(self, dY, params, grads, ctx, need_dx):
        X = ctx["X"]
        n = X.shape[0]
        dY = np.ascontiguousarray(dY)
        activation_backward(ctx["Y"][:n].reshape(-1), dY.reshape(-1), self._code)
        dX = buffer(ctx, "dX", X.shape, X.dtype)
        ws = self._workspace(ctx, n_backward=n)
        s, d = self.stride, self.dilation
        if self.ndim == 2:
            # as forward; dY stands in for an unused dX (the public kernel does the same)
            need = bool(need_dx)
            ck._backward(
                X,
                params["W"],
                dY,
                self._geom(),
                grads["W"],
                grads["b"],
                dX if need else dY,
                need,
                ws,
            )
        else:
            ck.conv1d_backward(
                X, params["W"], dY, s, self._pads[0], grads["W"], grads["b"], dX, need_dx, ws, d
            )
        return dX if need_dx else None

    def get_config(self):
        config = {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "activation": self.activation,
            "ndim": self.ndim,
        }
        # only when set (as PyTorch's repr): summaries and saved files of undilated
        # layers stay as they were, and ``Conv(**config)`` rebuilds the layer either way
        if self.dilation != 1:
            config["dilation"] = self.dilation
        return config


class Pool(Layer):
    """Max or average pooling with window ``size`` and ``stride`` (None: ``size``); the
    output size is ``(n_in - size) // stride + 1`` (windows inside the input, no padding)."""

    kind = "pool"

    def __init__(self, mode="max", size=2, ndim=2, stride=None):
        if not isinstance(mode, str) or mode not in ("max", "avg"):
            raise ValueError(f"Pool: pool must be 'max' or 'avg', got {mode!r}.")
        self.mode = mode
        self.size = positive_int(self, "size", size)
        self.ndim = spatial_ndim(self, ndim)
        self.stride = None if stride is None else positive_int(self, "stride", stride)

    @property
    def _stride(self):
        return self.size if self.stride is None else self.stride

    def _output_shape(self, input_shape):
        if len(input_shape) != self.ndim + 1:
            raise ValueError(
                f"Pool{self.ndim}D expects {self.ndim + 1}-D samples "
                f"(channels first), got {input_shape}"
            )
        if min(input_shape[1:]) < self.size:
            raise ValueError(
                f"pool size {self.size} is larger than the feature map {input_shape[1:]}."
            )
        spatial = tuple((s - self.size) // self._stride + 1 for s in input_shape[1:])
        if min(spatial) < 1:
            raise ValueError(
                f"pool size {self.size} is larger than the feature map {input_shape[1:]}."
            )
        return (input_shape[0],) + spatial

    def forward(self, X, params, ctx, training, rng):
        X = writable_c(X)
        n = X.shape[0]
        Y = buffer(ctx, "Y", (n,) + self.output_shape, X.dtype)
        p, s = self.size, self._stride
        if self.mode == "max":
            arg = buffer(ctx, "argmax", (n,) + self.output_shape, np.int32)
            if self.ndim == 2:
                pk.maxpool2d_forward(X, p, p, s, s, Y, arg)
            else:
                pk.maxpool1d_forward(X, p, s, Y, arg)
        elif self.ndim == 2:
            pk.avgpool2d_forward(X, p, p, s, s, Y)
        else:
            pk.avgpool1d_forward(X, p, s, Y)
        return Y

    def backward(self, dY, params, grads, ctx, need_dx):
        if not need_dx:
            return None
        dY = np.ascontiguousarray(dY)
        n = dY.shape[0]
        dX = buffer(ctx, "dX", (n,) + self.input_shape, dY.dtype)
        p, s = self.size, self._stride
        if self.mode == "max":
            arg = ctx["argmax"][:n]
            if self.ndim == 2:
                pk.maxpool2d_backward(dY, arg, dX)
            else:
                pk.maxpool1d_backward(dY, arg, dX)
        elif self.ndim == 2:
            pk.avgpool2d_backward(dY, p, p, s, s, dX)
        else:
            pk.avgpool1d_backward(dY, p, s, dX)
        return dX

    def get_config(self):
        config = {"mode": self.mode, "size": self.size, "ndim": self.ndim}
        if self.stride is not None:  # files written before Pool had a stride stay valid
            config["stride"] = self.stride
        return config


class GlobalPool(Layer):
    """Average or maximum of each channel over all positions: (C, ...) -> (C,)."""

    kind = "global_pool"

    def __init__(self, mode="avg"):
        self.mode = option(self, "mode", mode, ("avg", "max"))

    def _output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(
                f"GlobalPool expects (channels, length) or (channels, height, width) "
                f"samples, got {input_shape}"
            )
        return (input_shape[0],)

    def _view(self, A):
        return A.reshape(A.shape[0], self.input_shape[0], -1)

    def forward(self, X, params, ctx, training, rng):
        X = writable_c(X)
        n = X.shape[0]
        Y = buffer(ctx, "Y", (n,) + self.output_shape, X.dtype)
        if self.mode == "avg":
            pk.global_avgpool_forward(self._view(X), Y)
        else:
            arg = buffer(ctx, "argmax", (n,) + self.output_shape, np.int32)
            pk.global_maxpool_forward(self._view(X), Y, arg)
        return Y

    def backward(self, dY, params, grads, ctx, need_dx):
        if not need_dx:
            return None
        dY = np.ascontiguousarray(dY)
        n = dY.shape[0]
        dX = buffer(ctx, "dX", (n,) + self.input_shape, dY.dtype)
        if self.mode == "avg":
            pk.global_avgpool_backward(dY, self._view(dX))
        else:
            pk.global_maxpool_backward(dY, ctx["argmax"][:n], self._view(dX))
        return dX

    def get_config(self):
        return {"mode": self.mode}
