"""A residual block: ``activation(branch(X) + shortcut(X))``.

The branch is a list of layers run in sequence. The shortcut is the identity when the
branch keeps the sample shape, otherwise a projection: a 1x1 convolution (signals and
images: as many filters as the branch's output channels, the stride that maps the input
length onto the branch's) or a linear dense layer (features). ``shortcut_batchnorm``
adds a batch normalization after the shortcut (the ResNet of Wang et al. 2017 for time
series, as benchmarked by Fawaz et al. 2019).

To the network the block is one layer: its parameters (and state) are the branch's and
the shortcut's, under the names ``"<i>.<name>"`` for branch layer i and
``"shortcut<i>.<name>"`` for the shortcut's layers, in that order in ``theta``.
"""

import numpy as np

from ..kernels.activations import ACTIVATIONS, activation_backward, activation_forward
from .base import LAYER_CLASSES, Layer, buffer, option
from .conv import Conv, conv_output_size
from .dense import Dense
from .norm import BatchNorm

#: nesting depth a configuration may have (a block inside a block ...), bounding what a
#: model file can ask for
MAX_DEPTH = 8


def _from_config(entry, depth):
    """A layer from ``{"class": name, "config": {...}}`` (a model file's form)."""
    if not isinstance(entry, dict) or set(entry) != {"class", "config"}:
        raise ValueError(
            "Residual: each layer must be a Layer or a {'class': ..., 'config': ...} dict, "
            f"got {entry!r:.200}."
        )
    cls = LAYER_CLASSES.get(entry["class"]) if isinstance(entry["class"], str) else None
    if cls is None:
        raise ValueError(
            f"Residual: unknown layer class {entry['class']!r:.80}; known: {sorted(LAYER_CLASSES)}."
        )
    config = entry["config"]
    if not isinstance(config, dict):
        raise ValueError(f"Residual: the config of a {entry['class']} is not a dict.")
    if cls is Residual:
        return Residual(**config, _depth=depth + 1)
    return cls(**config)


class Residual(Layer):
    """``activation(branch(X) + shortcut(X))`` over the ``layers`` of the branch.

    ``shortcut``: 'auto' (the identity when the branch keeps the shape, else a
    projection), 'identity' (the branch must keep the shape) or 'projection' (always a
    1x1 convolution or dense layer).
    """

    kind = "residual"

    def __init__(
        self,
        layers,
        shortcut="auto",
        shortcut_batchnorm=False,
        activation="relu",
        *,
        _depth=0,
    ):
        if _depth > MAX_DEPTH:
            raise ValueError(f"Residual: blocks nested more than {MAX_DEPTH} deep.")
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ValueError("Residual: layers must be a non-empty list of layers.")
        self.layers = [
            layer if isinstance(layer, Layer) else _from_config(layer, _depth) for layer in layers
        ]
        self.shortcut = option(self, "shortcut", shortcut, ("auto", "identity", "projection"))
        if not isinstance(shortcut_batchnorm, (bool, np.bool_)):
            raise ValueError(
                f"Residual: shortcut_batchnorm must be True or False, got {shortcut_batchnorm!r}."
            )
        self.shortcut_batchnorm = bool(shortcut_batchnorm)
        self.activation = option(self, "activation", activation, ACTIVATIONS)
        self._code = ACTIVATIONS[activation]

    # -- shapes ------------------------------------------------------------------------
    def _output_shape(self, input_shape):
        shape = input_shape
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape, self.dtype)
            except ValueError as exc:
                raise ValueError(
                    f"Residual branch layer {i} ({type(layer).__name__}) does not fit its "
                    f"input of shape {shape}: {exc}"
                ) from None
        self.shortcut_layers = self._shortcut_layers(input_shape, shape)
        s = input_shape
        for layer in self.shortcut_layers:
            s = layer.build(s, self.dtype)
        if s != shape:  # pragma: no cover - the projection is built to match
            raise ValueError(f"Residual: the shortcut gives {s}, the branch {shape}.")
        return shape

    def _shortcut_layers(self, input_shape, out_shape):
        same = tuple(input_shape) == tuple(out_shape)
        if self.shortcut == "identity" or (self.shortcut == "auto" and same):
            if not same:
                raise ValueError(
                    f"Residual: the branch maps {input_shape} to {out_shape}, which an "
                    "identity shortcut cannot add; use shortcut='auto' or 'projection'."
                )
            layers = []
        elif len(input_shape) == 1 and len(out_shape) == 1:
            layers = [Dense(out_shape[0], "identity")]
        elif len(input_shape) == len(out_shape) and len(input_shape) in (2, 3):
            stride = self._projection_stride(input_shape[1:], out_shape[1:])
            if stride is None:
                raise ValueError(
                    f"Residual: no 1x1 convolution maps the input {input_shape} onto the "
                    f"branch's output {out_shape}."
                )
            layers = [Conv(out_shape[0], 1, stride, "valid", "identity", ndim=len(out_shape) - 1)]
        else:
            raise ValueError(
                f"Residual: the branch maps {input_shape} to {out_shape}, which no "
                "projection shortcut joins (the number of axes changed)."
            )
        if self.shortcut_batchnorm:
            layers.append(BatchNorm())
        return layers

    @staticmethod
    def _projection_stride(spatial_in, spatial_out):
        for stride in range(1, max(spatial_in) + 1):
            out = tuple(conv_output_size(n, 1, stride, "valid")[0] for n in spatial_in)
            if out == tuple(spatial_out):
                return stride
        return None

    # -- parameters and state ----------------------------------------------------------
    def sublayers(self):
        return [layer for _, layer in self._children()]

    def _children(self):
        """(prefix, layer) of every layer inside, branch then shortcut."""
        children = [(f"{i}.", layer) for i, layer in enumerate(self.layers)]
        children += [(f"shortcut{i}.", layer) for i, layer in enumerate(self.shortcut_layers)]
        return children

    def param_specs(self):
        return [
            (prefix + name, shape, penalized)
            for prefix, layer in self._children()
            for name, shape, penalized in layer.param_specs()
        ]

    def state_specs(self):
        return [
            (prefix + name, shape, value)
            for prefix, layer in self._children()
            for name, shape, value in layer.state_specs()
        ]

    @staticmethod
    def _split(views, prefix):
        k = len(prefix)
        return {name[k:]: v for name, v in views.items() if name.startswith(prefix)}

    def init_params(self, params, rng):
        for prefix, layer in self._children():
            layer.init_params(self._split(params, prefix), rng)

    def _contexts(self, ctx):
        """One ctx per layer inside (with its state views), kept in ``ctx``."""
        subs = ctx.get("children")
        if subs is None:
            state = ctx.get("state", {})
            subs = ctx["children"] = [
                {"state": self._split(state, prefix)} for prefix, _ in self._children()
            ]
        return subs

    # -- passes ------------------------------------------------------------------------
    def forward(self, X, params, ctx, training, rng):
        subs = self._contexts(ctx)
        children = self._children()
        n_branch = len(self.layers)
        out = X
        for (prefix, layer), sub in zip(children[:n_branch], subs):
            out = layer.forward(out, self._split(params, prefix), sub, training, rng)
        short = X
        for (prefix, layer), sub in zip(children[n_branch:], subs[n_branch:]):
            short = layer.forward(short, self._split(params, prefix), sub, training, rng)
        Y = buffer(ctx, "Y", out.shape, out.dtype)
        np.add(out, short, out=Y)
        activation_forward(Y.reshape(-1), self._code)
        return Y

    def backward(self, dY, params, grads, ctx, need_dx):
        subs = self._contexts(ctx)
        children = self._children()
        n_branch = len(self.layers)
        n = dY.shape[0]
        dY = np.ascontiguousarray(dY)
        activation_backward(ctx["Y"][:n].reshape(-1), dY.reshape(-1), self._code)
        # the branch's layers may overwrite their dY: the shortcut gets its own copy
        dS = buffer(ctx, "dS", dY.shape, dY.dtype)
        dS[...] = dY
        d = dY
        for i in range(n_branch - 1, -1, -1):
            prefix, layer = children[i]
            d = layer.backward(
                d,
                self._split(params, prefix),
                self._split(grads, prefix),
                subs[i],
                need_dx=need_dx or i > 0,
            )
        for i in range(len(children) - 1, n_branch - 1, -1):
            prefix, layer = children[i]
            dS = layer.backward(
                dS,
                self._split(params, prefix),
                self._split(grads, prefix),
                subs[i],
                need_dx=need_dx or i > n_branch,
            )
        if not need_dx:
            return None
        dX = buffer(ctx, "dX", (n,) + self.input_shape, dY.dtype)
        np.add(d, dS, out=dX)
        return dX

    def get_config(self):
        return {
            "layers": [
                {"class": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
            "shortcut": self.shortcut,
            "shortcut_batchnorm": self.shortcut_batchnorm,
            "activation": self.activation,
        }


__all__ = ["Residual"]
