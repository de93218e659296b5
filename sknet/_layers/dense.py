"""Dense (fully connected), Dropout and Flatten layers."""

import math
from numbers import Real

import numpy as np
import scipy.sparse as sp

from ..kernels.activations import ACTIVATIONS, activation_backward, activation_forward
from ..kernels.dense import (
    BACKWARD,
    BIAS_GRAD,
    FORWARD,
    WEIGHT_GRAD,
    activation_backward_bias_grad,
    bias_activation_forward,
    dense_blocks,
)
from ..kernels.dropout import dropout_backward, dropout_forward
from .base import Layer, buffer, option, positive_int


def glorot_uniform_bound(fan_in, fan_out, activation):
    """scikit-learn's Glorot bound: sqrt(6 / (fan_in + fan_out)), 2 instead of 6 for logistic."""
    factor = 2.0 if activation == "logistic" else 6.0
    return np.sqrt(factor / (fan_in + fan_out))


class Dense(Layer):
    """``A = f(X W + b)`` on 2-D input (n, d). Kernels: ``kernels.dense``.

    With ``per_step=True`` the input is a sequence of states (n, T, d) and the same
    weights apply at every step: ``A[:, t] = f(X[:, t] W + b)``, output (n, T, units)
    (the recurrent estimators' ``output='sequence'``). The steps are folded into the
    rows, so the kernels are the same.

    Initialisation draws W then b uniformly in +-``glorot_uniform_bound`` from the
    given ``RandomState``, in scikit-learn's order, so an sknet MLP starts from the
    same weights as scikit-learn's for the same ``random_state``.
    """

    kind = "dense"

    def __init__(self, units, activation="identity", init_activation=None, per_step=False):
        if not isinstance(per_step, (bool, np.bool_)):
            raise ValueError(f"Dense: per_step must be True or False, got {per_step!r}.")
        self.per_step = bool(per_step)
        self.units = positive_int(self, "units", units)
        self.activation = option(self, "activation", activation, ACTIVATIONS)
        # scikit-learn picks the init factor from the *hidden* activation, also for the
        # output layer; init_activation lets the MLP reproduce that.
        self.init_activation = (
            activation
            if init_activation is None
            else option(self, "init_activation", init_activation, ACTIVATIONS)
        )
        self._code = ACTIVATIONS[activation]

    def _output_shape(self, input_shape):
        if self.per_step:
            if len(input_shape) != 2:
                raise ValueError(
                    f"Dense(per_step=True) expects (n_timesteps, n_features) per sample, "
                    f"got {input_shape}"
                )
            return (input_shape[0], self.units)
        if len(input_shape) != 1:
            raise ValueError(f"Dense expects 1-D features per sample, got {input_shape}")
        return (self.units,)

    def param_specs(self):
        return [("W", (self.input_shape[-1], self.units), True), ("b", (self.units,), False)]

    def init_params(self, params, rng):
        bound = glorot_uniform_bound(self.input_shape[-1], self.units, self.init_activation)
        params["W"][...] = rng.uniform(-bound, bound, params["W"].shape)
        params["b"][...] = rng.uniform(-bound, bound, params["b"].shape)

    def forward(self, X, params, ctx, training, rng):
        if self.per_step:  # (n, T, d) -> rows (n T, d), one row per step
            n, T = X.shape[:2]
            X = np.ascontiguousarray(X).reshape(n * T, -1)
            Z = self._forward_rows(X, params, ctx, training)
            return Z.reshape(n, T, self.units)
        return self._forward_rows(X, params, ctx, training)

    def _forward_rows(self, X, params, ctx, training):
        W = params["W"]
        n = X.shape[0]
        # ndarray first: scipy's issparse is an abstract-class check, slow per batch
        if not isinstance(X, np.ndarray) and sp.issparse(X):
            Z = np.ascontiguousarray(X @ W, dtype=W.dtype)
            bias_activation_forward(Z, params["b"], self._code)
        else:
            # fixed row blocks in numba's threads (``kernels.dense.dense_blocks``)
            X = np.ascontiguousarray(X)
            Z = buffer(ctx, "A", (n, self.units), W.dtype)
            dense_blocks(FORWARD, X, W, params["b"], self._code, Z, Z, W, Z)
        if training:
            ctx["X"] = X
            ctx["A_out"] = Z
        return Z

    def backward(self, dY, params, grads, ctx, need_dx):
        if self.per_step:
            n, T = dY.shape[:2]
            dY = np.ascontiguousarray(dY).reshape(n * T, self.units)
            dX = self._backward_rows(dY, params, grads, ctx, need_dx)
            return None if dX is None else dX.reshape(n, T, -1)
        return self._backward_rows(dY, params, grads, ctx, need_dx)

    def _backward_rows(self, dY, params, grads, ctx, need_dx):
        X = ctx["X"]
        W, dW = params["W"], grads["W"]
        if isinstance(X, np.ndarray):  # as the forward pass: blocks in numba's threads
            dY = np.ascontiguousarray(dY)
            # dZ = dA * f'(A) in place and db = column sums of dZ (``BIAS_GRAD``), then
            # dW alone or dW and dX side by side, each one whole product
            A, db = ctx["A_out"], grads["b"]
            if not need_dx:
                dense_blocks(BIAS_GRAD + WEIGHT_GRAD, X, W, db, self._code, A, dY, dW, dY)
                return None
            dX = buffer(ctx, "dX", (dY.shape[0], self.input_shape[-1]), dY.dtype)
            wt = buffer(ctx, "WT", W.shape[::-1], W.dtype)  # W^T for dX, kept between steps
            dense_blocks(BIAS_GRAD + BACKWARD, X, W, db, self._code, A, dY, dW, dX, wt)
            return dX
        # dZ = dA * f'(A) in place, db = column sums of dZ (C-contiguous arrays: the
        # dense block function's loops)
        dY = np.ascontiguousarray(dY)
        activation_backward_bias_grad(ctx["A_out"], dY, self._code, grads["b"])
        grads["W"][...] = X.T @ dY
        if not need_dx:
            return None
        dX = buffer(ctx, "dX", (dY.shape[0], self.input_shape[-1]), dY.dtype)
        np.dot(dY, params["W"].T, out=dX)
        return dX

    def get_config(self):
        config = {"units": self.units, "activation": self.activation}
        if self.per_step:  # only when set: other configurations stay as they were
            config["per_step"] = True
        return config


class Dropout(Layer):
    """Inverted dropout with drop probability ``rate``; the identity at inference.

    Masks come from the ``np.random.Generator`` passed to ``forward`` (the estimator
    seeds it from ``random_state``). Works on activations of any rank.
    """

    kind = "dropout"

    def __init__(self, rate):
        if (
            isinstance(rate, (bool, np.bool_))
            or not isinstance(rate, Real)
            or not (math.isfinite(rate) and 0.0 <= rate < 1.0)
        ):
            raise ValueError(f"Dropout: rate must be a number in [0, 1), got {rate!r}.")
        self.rate = float(rate)

    def forward(self, X, params, ctx, training, rng):
        if not training or self.rate == 0.0:
            ctx["active"] = False
            return X
        ctx["active"] = True
        shape = X.shape
        u = rng.random(X.size, dtype=X.dtype)
        Y = buffer(ctx, "Y", shape, X.dtype)
        mask = buffer(ctx, "mask", shape, X.dtype)
        dropout_forward(
            np.ascontiguousarray(X).reshape(-1),
            u,
            X.dtype.type(self.rate),
            Y.reshape(-1),
            mask.reshape(-1),
        )
        return Y

    def backward(self, dY, params, grads, ctx, need_dx):
        if not need_dx:
            return None
        if not ctx["active"]:
            return dY
        mask = ctx["mask"][: dY.shape[0]]
        dropout_backward(dY.reshape(-1), mask.reshape(-1), dY.reshape(-1))
        return dY

    def get_config(self):
        return {"rate": self.rate}


class Flatten(Layer):
    """Reshape (n, *shape) to (n, prod(shape)) (a view, no copy)."""

    kind = "flatten"

    def _output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, X, params, ctx, training, rng):
        return np.ascontiguousarray(X).reshape(X.shape[0], -1)

    def backward(self, dY, params, grads, ctx, need_dx):
        if not need_dx:
            return None
        return dY.reshape((dY.shape[0],) + self.input_shape)


class Activation(Layer):
    """A stand-alone element-wise activation (for layers that do not fuse one)."""

    kind = "activation"

    def __init__(self, activation):
        self.activation = option(self, "activation", activation, ACTIVATIONS)
        self._code = ACTIVATIONS[activation]

    def forward(self, X, params, ctx, training, rng):
        Y = buffer(ctx, "Y", X.shape, X.dtype)
        Y[...] = X
        activation_forward(Y.reshape(-1), self._code)
        if training:
            ctx["Y_out"] = Y
        return Y

    def backward(self, dY, params, grads, ctx, need_dx):
        if not need_dx:
            return None
        dY = np.ascontiguousarray(dY)
        activation_backward(ctx["Y_out"][: dY.shape[0]].reshape(-1), dY.reshape(-1), self._code)
        return dY

    def get_config(self):
        return {"activation": self.activation}


__all__ = ["Dense", "Dropout", "Flatten", "Activation"]
