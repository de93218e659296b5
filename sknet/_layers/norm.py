"""Batch normalization over the channel axis (axis 0 of a sample) of any input.

A sample of shape (C,) (dense features), (C, L) (signals) or (C, H, W) (images) is
normalized per channel c over the batch and every other position; the kernels in
``sknet.kernels.batchnorm`` work on the (n, C, L) view of the batch, PyTorch's
``BatchNorm1d`` / ``BatchNorm2d`` convention (``momentum`` is the weight of the new
batch statistic, 0.1 by default; ``eps`` 1e-5; the running variance is updated with the
unbiased batch variance).

Parameters ``gamma`` (scale, starts at 1) and ``beta`` (shift, starts at 0), neither
penalized by ``alpha``; state ``running_mean`` (starts at 0) and ``running_var`` (starts
at 1), used when predicting.
"""

import math
from numbers import Real

import numpy as np

from ..kernels.batchnorm import (
    RunningStats,
    batchnorm_backward,
    batchnorm_cache,
    batchnorm_forward,
    batchnorm_forward_inference,
)
from .base import Layer, buffer, writable_c


def _number(layer, name, value, low, high, closed_low):
    ok = (
        not isinstance(value, (bool, np.bool_))
        and isinstance(value, Real)
        and math.isfinite(value)
        and (value >= low if closed_low else value > low)
        and value <= high
    )
    if not ok:
        bracket = "[" if closed_low else "("
        raise ValueError(
            f"{type(layer).__name__}: {name} must be a number in {bracket}{low}, {high}], "
            f"got {value!r}."
        )
    return float(value)


class BatchNorm(Layer):
    """Batch normalization: batch statistics while training, running ones to predict."""

    kind = "batchnorm"

    def __init__(self, momentum=0.1, eps=1e-5):
        self.momentum = _number(self, "momentum", momentum, 0.0, 1.0, True)
        self.eps = _number(self, "eps", eps, 0.0, math.inf, False)

    def _output_shape(self, input_shape):
        if len(input_shape) < 1:
            raise ValueError(f"BatchNorm expects samples with a channel axis, got {input_shape}")
        return input_shape

    @property
    def _channels(self):
        return self.input_shape[0]

    def _view(self, A):
        """(n, C, L) view of a C-contiguous batch."""
        return A.reshape(A.shape[0], self._channels, -1)

    def param_specs(self):
        C = self._channels
        return [("gamma", (C,), False), ("beta", (C,), False)]

    def init_params(self, params, rng):
        params["gamma"][...] = 1.0
        params["beta"][...] = 0.0

    def state_specs(self):
        C = self._channels
        return [("running_mean", (C,), 0.0), ("running_var", (C,), 1.0)]

    def forward(self, X, params, ctx, training, rng):
        X = writable_c(X)
        n = X.shape[0]
        Y = buffer(ctx, "Y", X.shape, X.dtype)
        state = ctx["state"]
        running = RunningStats(state["running_mean"], state["running_var"])
        cache = ctx.get("cache")
        if cache is None or cache.mean.shape[0] != self._channels:
            cache = ctx["cache"] = batchnorm_cache(self._channels)
        if not training:
            batchnorm_forward_inference(
                self._view(X),
                params["gamma"],
                params["beta"],
                running,
                self.eps,
                self._view(Y),
                cache,
            )
            return Y
        m = n * int(np.prod(self.input_shape[1:]))
        if m < 2:
            raise ValueError(
                "BatchNorm needs more than one value per channel in a training batch, got a "
                f"batch of {n} sample(s) of shape {self.input_shape}: choose a batch_size "
                "that leaves no batch of a single sample."
            )
        batchnorm_forward(
            self._view(X),
            params["gamma"],
            params["beta"],
            running,
            self.momentum,
            self.eps,
            self._view(Y),
            cache,
        )
        ctx["X"] = X
        return Y

    def backward(self, dY, params, grads, ctx, need_dx):
        X = ctx["X"]
        dY = np.ascontiguousarray(dY)
        dX = buffer(ctx, "dX", X.shape, X.dtype)
        batchnorm_backward(
            self._view(X),
            self._view(dY),
            params["gamma"],
            ctx["cache"],
            grads["gamma"],
            grads["beta"],
            self._view(dX),
            need_dx,
        )
        return dX if need_dx else None

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps}


__all__ = ["BatchNorm"]
