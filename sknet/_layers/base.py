"""The layer protocol every sknet layer follows.

A layer knows its shapes and parameters; the arithmetic lives in ``sknet.kernels``.
Shapes never include the sample axis. Parameters are not owned by the layer: the
network keeps all of them in one flat vector and hands each layer a dict of views
(``params['W']`` ...) into it, and likewise for gradients. Per-batch buffers live in
a ``ctx`` dict that the caller owns, so a layer holds no training state.

Some layers have fitted values that are not trained by gradient (batch normalization's
running statistics). They declare them in ``state_specs``; the network keeps them in a
second flat vector ``state`` (outside ``theta``: no gradient, no penalty, no optimiser)
and hands each layer a dict of views into it as ``ctx["state"]``.
"""

import math
from numbers import Integral, Real

import numpy as np


def writable_c(X):
    """X as a C-contiguous, writable array (read-only input, a memmap, is copied): the
    kernels then compile once per dtype, not again for numba's read-only array type."""
    X = np.ascontiguousarray(X)
    return X if X.flags.writeable else X.copy()


def buffer(ctx, key, shape, dtype):
    """A reusable C-contiguous buffer ``ctx[key][:shape[0]]`` of at least ``shape``.

    Grows (reallocates) only when a larger batch arrives, so steady-state training
    allocates nothing per batch.
    """
    buf = ctx.get(key)
    if (
        buf is None
        or buf.shape[0] < shape[0]
        or buf.shape[1:] != tuple(shape[1:])
        or buf.dtype != dtype
    ):
        buf = np.empty(shape, dtype=dtype)
        ctx[key] = buf
    return buf[: shape[0]]


def positive_int(layer, name, value):
    """``value`` as an int >= 1 (integral floats such as 5.0 are accepted), else a
    ValueError naming the layer's setting."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value != int(value)
        or value < 1
    ):
        raise ValueError(
            f"{type(layer).__name__}: {name} must be a positive integer, got {value!r}."
        )
    return int(value)


def option(layer, name, value, options):
    """``value`` if it is one of ``options`` (strings), else a ValueError naming them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(
            f"{type(layer).__name__}: {name} must be one of {sorted(options)}, got {value!r}."
        )
    return value


def spatial_ndim(layer, value):
    """``ndim`` of a convolution or pooling layer: 1 (signals) or 2 (images)."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, Integral)
        or value not in (1, 2)
    ):
        raise ValueError(f"{type(layer).__name__}: ndim must be 1 or 2, got {value!r}.")
    return int(value)


#: every sknet layer class by name: what a model file (or a Residual's configuration)
#: may name; filled as the classes of ``sknet._layers`` are defined
LAYER_CLASSES = {}


def walk_layers(layers):
    """Every layer of ``layers`` and, depth first, of the layers inside them."""
    for layer in layers:
        yield layer
        yield from walk_layers(layer.sublayers())


class Layer:
    """Base class. Subclasses override the methods they need.

    Attributes set by ``build``: ``input_shape``, ``output_shape``, ``dtype``.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("sknet._layers."):  # sknet's own layers only
            LAYER_CLASSES[cls.__name__] = cls

    #: short name of the layer type, so code can ask ``layer.kind == "dropout"``
    #: without importing the class (model files name layers by class name)
    kind = "layer"

    def build(self, input_shape, dtype):
        """Record shapes and return the output shape (tuple, no sample axis)."""
        self.input_shape = tuple(int(s) for s in input_shape)
        self.dtype = np.dtype(dtype)
        self.output_shape = self._output_shape(self.input_shape)
        return self.output_shape

    def _output_shape(self, input_shape):
        return input_shape

    def param_specs(self):
        """List of ``(name, shape, penalized)``; ``penalized`` marks L2-regularised weights."""
        return []

    def init_params(self, params, rng):
        """Fill the views in ``params`` in place (``rng`` a ``np.random.RandomState``)."""

    def sublayers(self):
        """The layers inside this one (a residual block's branch and shortcut), in
        order; none for a plain layer."""
        return []

    def state_specs(self):
        """List of ``(name, shape, initial value)`` of the non-trainable fitted values
        (running statistics); the network passes views of them as ``ctx["state"]``."""
        return []

    def forward(self, X, params, ctx, training, rng):
        """Return the layer's output for a batch ``X`` (n, *input_shape)."""
        raise NotImplementedError

    def backward(self, dY, params, grads, ctx, need_dx):
        """Overwrite ``grads`` views from ``dY`` (n, *output_shape); return dX or None.

        May overwrite ``dY``. Must follow a ``forward`` with ``training=True`` on the
        same ``ctx``.
        """
        raise NotImplementedError

    def get_config(self):
        """JSON-compatible constructor arguments (for summaries and safe persistence).

        ``type(layer)(**layer.get_config())`` rebuilds the layer; the constructor
        validates every setting (a ValueError naming the layer and the setting).
        """
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
