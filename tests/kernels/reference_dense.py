"""Slow, obviously-correct NumPy references for the network-core kernels (float64 math).

Activations, softmax, the four losses with scikit-learn's definitions, a dense layer,
inverted dropout, and scikit-learn's SGD / Adam update formulas re-implemented on lists
of arrays (as ``sklearn.neural_network._stochastic_optimizers`` writes them).
"""

import numpy as np


def _f64(*arrays):
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


# ---------------------------------------------------------------- activations
def activation(name, z):
    """The activation ``name`` of ``z`` (any shape)."""
    (z,) = _f64(z)
    if name == "identity":
        return z.copy()
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    raise ValueError(name)


def activation_derivative(name, z):
    """``f'(z)`` written in terms of ``z`` (not of the output)."""
    (z,) = _f64(z)
    if name == "identity":
        return np.ones_like(z)
    if name == "logistic":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    raise ValueError(name)


def softmax(z):
    """Row-wise softmax of ``z`` (n, k), one row at a time."""
    (z,) = _f64(z)
    out = np.empty_like(z)
    for i, row in enumerate(z):
        e = np.exp(row - row.max())
        out[i] = e / e.sum()
    return out


def log_softmax(z):
    (z,) = _f64(z)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


# ---------------------------------------------------------------- losses
# Each returns the per-sample losses l_i (n,) from the raw output z (n, k), with
# scikit-learn's definitions (its objective is sum_i sw_i l_i / sum_i sw_i).
def log_loss(z, y):
    """Multi-class cross-entropy with softmax: -sum_k y_k log p_k."""
    z, y = _f64(z, y)
    return -(y * log_softmax(z)).sum(axis=1)


def binary_log_loss(z, y):
    """Independent logistic outputs: -sum_k [y_k log p_k + (1 - y_k) log(1 - p_k)]."""
    z, y = _f64(z, y)
    # log p = -log(1 + e^-z), log(1 - p) = -log(1 + e^z)
    return (y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z)).sum(axis=1)


def squared_error(z, y):
    """Half squared error averaged over the k outputs: (1 / 2k) sum_k (z_k - y_k)^2."""
    z, y = _f64(z, y)
    return 0.5 * ((z - y) ** 2).mean(axis=1)


def poisson(z, y):
    """Half Poisson deviance with log link, summed over outputs (mu = exp z)."""
    z, y = _f64(z, y)
    mu = np.exp(z)
    ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
    return (ylogy - y * np.log(mu) - y + mu).sum(axis=1)


LOSSES = {
    "log_loss": log_loss,
    "binary_log_loss": binary_log_loss,
    "squared_error": squared_error,
    "poisson": poisson,
}

OUTPUT_ACTIVATIONS = {
    "log_loss": softmax,
    "binary_log_loss": lambda z: activation("logistic", z),
    "squared_error": lambda z: activation("identity", z),
    "poisson": lambda z: np.exp(np.asarray(z, dtype=np.float64)),
}


# ---------------------------------------------------------------- dense layer
def dense_forward(X, W, b, act="identity"):
    """``f(X W + b)`` one sample at a time."""
    X, W, b = _f64(X, W, b)
    Z = np.empty((X.shape[0], W.shape[1]))
    for i in range(X.shape[0]):
        Z[i] = X[i] @ W + b
    return activation(act, Z)


def dense_backward(X, W, b, dA, act="identity"):
    """(dW, db, dX) of ``sum(dA * f(X W + b))``."""
    X, W, b, dA = _f64(X, W, b, dA)
    Z = X @ W + b
    dZ = dA * activation_derivative(act, Z)
    dW = np.zeros_like(W)
    for i in range(X.shape[0]):
        dW += np.outer(X[i], dZ[i])
    return dW, dZ.sum(axis=0), dZ @ W.T


# ---------------------------------------------------------------- dropout
def dropout(x, u, rate):
    """Inverted dropout with uniforms ``u``: returns (y, mask)."""
    x, u = _f64(x, u)
    mask = np.where(u >= rate, 1.0 / (1.0 - rate), 0.0)
    return x * mask, mask


# ---------------------------------------------------------------- optimizers
class SGD:
    """scikit-learn's SGDOptimizer update on a list of parameter arrays."""

    def __init__(self, params, learning_rate, momentum, nesterov):
        self.params = [np.array(p, dtype=np.float64) for p in params]
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocities = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        updates = [
            self.momentum * v - self.learning_rate * g for v, g in zip(self.velocities, grads)
        ]
        self.velocities = updates
        if self.nesterov:
            updates = [
                self.momentum * v - self.learning_rate * g for v, g in zip(self.velocities, grads)
            ]
        for p, u in zip(self.params, updates):
            p += u


class Adam:
    """scikit-learn's AdamOptimizer update on a list of parameter arrays."""

    def __init__(self, params, learning_rate_init, beta_1, beta_2, epsilon):
        self.params = [np.array(p, dtype=np.float64) for p in params]
        self.learning_rate_init = learning_rate_init
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in self.params]
        self.vs = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        self.t += 1
        self.ms = [self.beta_1 * m + (1 - self.beta_1) * g for m, g in zip(self.ms, grads)]
        self.vs = [self.beta_2 * v + (1 - self.beta_2) * g**2 for v, g in zip(self.vs, grads)]
        self.learning_rate = (
            self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t) / (1 - self.beta_1**self.t)
        )
        for p, m, v in zip(self.params, self.ms, self.vs):
            p -= self.learning_rate * m / (np.sqrt(v) + self.epsilon)
