"""Slow, obviously-correct NumPy references for the recurrent kernels (float64 math).

Same conventions as :mod:`sknet.kernels.recurrent`: ``X`` is ``(n, T, d)``, weights
multiply from the right, gate orders are PyTorch's, and the initial state is zero.
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def elman_forward(X, W_x, W_h, b, activation="tanh"):
    """Return ``Hs`` ``(n, T, H)`` with ``h_t = act(x_t W_x + h_{t-1} W_h + b)``."""
    X, W_x, W_h, b = (np.asarray(v, dtype=np.float64) for v in (X, W_x, W_h, b))
    n, T, _ = X.shape
    H = W_h.shape[0]
    h = np.zeros((n, H))
    Hs = np.zeros((n, T, H))
    for t in range(T):
        a = X[:, t] @ W_x + h @ W_h + b
        h = np.tanh(a) if activation == "tanh" else np.maximum(a, 0.0)
        Hs[:, t] = h
    return Hs


def lstm_forward(X, W_x, W_h, b):
    """Return ``Hs, Cs``, both ``(n, T, H)``; gates (i, f, g, o) along the 4H axis."""
    X, W_x, W_h, b = (np.asarray(v, dtype=np.float64) for v in (X, W_x, W_h, b))
    n, T, _ = X.shape
    H = W_h.shape[0]
    h = np.zeros((n, H))
    c = np.zeros((n, H))
    Hs = np.zeros((n, T, H))
    Cs = np.zeros((n, T, H))
    for t in range(T):
        a = X[:, t] @ W_x + h @ W_h + b
        i = sigmoid(a[:, 0:H])
        f = sigmoid(a[:, H : 2 * H])
        g = np.tanh(a[:, 2 * H : 3 * H])
        o = sigmoid(a[:, 3 * H : 4 * H])
        c = f * c + i * g
        h = o * np.tanh(c)
        Hs[:, t] = h
        Cs[:, t] = c
    return Hs, Cs


def gru_forward(X, W_x, W_h, b_x, b_h):
    """Return ``Hs`` ``(n, T, H)``; PyTorch's GRU, gates (r, z, n) along the 3H axis."""
    X, W_x, W_h, b_x, b_h = (np.asarray(v, dtype=np.float64) for v in (X, W_x, W_h, b_x, b_h))
    n, T, _ = X.shape
    H = W_h.shape[0]
    h = np.zeros((n, H))
    Hs = np.zeros((n, T, H))
    for t in range(T):
        u = X[:, t] @ W_x + b_x
        v = h @ W_h + b_h
        r = sigmoid(u[:, 0:H] + v[:, 0:H])
        z = sigmoid(u[:, H : 2 * H] + v[:, H : 2 * H])
        n_t = np.tanh(u[:, 2 * H :] + r * v[:, 2 * H :])
        h = (1.0 - z) * n_t + z * h
        Hs[:, t] = h
    return Hs


#: One row per cell of ``sknet.kernels.recurrent.CELLS``: ``Hs`` from the parameters by
#: name (and the Elman activation).
STATES = {
    "rnn": lambda X, p, act: elman_forward(X, p["W_x"], p["W_h"], p["b"], act),
    "lstm": lambda X, p, act: lstm_forward(X, p["W_x"], p["W_h"], p["b"])[0],
    "gru": lambda X, p, act: gru_forward(X, p["W_x"], p["W_h"], p["b_x"], p["b_h"]),
}


def states(cell, X, params, activation="tanh"):
    """All hidden states ``(n, T, H)`` of ``cell`` ('rnn', 'lstm', 'gru') over ``X``."""
    return STATES[cell](X, params, activation)
