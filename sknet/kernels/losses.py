"""Losses fused with their output activation, and the gradient at the raw output.

Every loss takes the raw output ``z`` (n, k) of the last layer (before the output
activation), the targets ``y`` (n, k), per-sample weights ``sw`` (n,) and a scale
``c`` (the network passes ``1 / sum(sw)``). It returns the weighted loss *sum*
``sum_i sw_i * l_i`` and writes ``delta = c * sw_i * dl_i/dz`` into ``delta`` (n, k).

Each loss is paired with its canonical link, which is what makes
``dl/dz = act(z) - y`` (times a constant) valid:

=====================  ==================  ===============================================
loss                   output activation   per-sample loss l_i
=====================  ==================  ===============================================
log_loss               softmax             -sum_k y_k log p_k
binary_log_loss        logistic            -sum_k [y_k log p_k + (1 - y_k) log(1 - p_k)]
squared_error          identity            (1 / 2k) sum_k (z_k - y_k)^2
poisson                exp                 sum_k [y_k log(y_k / mu_k) - y_k + mu_k]
=====================  ==================  ===============================================

These are scikit-learn's loss values (half squared error averaged over outputs, half
Poisson deviance summed over outputs). Unlike scikit-learn, the squared-error
gradient is the exact derivative of the reported loss also for k > 1 outputs.
Log-probabilities are computed as ``z - logsumexp(z)``, never ``log(p)``, so the loss
is finite and exact where a probability underflows.
"""

import numpy as np

from .runner import jit_views

LOG_LOSS = 0
BINARY_LOG_LOSS = 1
SQUARED_ERROR = 2
POISSON = 3

LOSSES = {
    "log_loss": LOG_LOSS,
    "binary_log_loss": BINARY_LOG_LOSS,
    "squared_error": SQUARED_ERROR,
    "poisson": POISSON,
}

# output activation applied at prediction time, per loss
OUTPUT_ACTIVATIONS = {
    "log_loss": "softmax",
    "binary_log_loss": "logistic",
    "squared_error": "identity",
    "poisson": "exp",
}


@jit_views
def log_loss_softmax(z, y, sw, c, delta):
    """Softmax cross-entropy. z, y, delta (n, k); sw (n,). Returns sum_i sw_i l_i."""
    n, k = z.shape
    total = 0.0
    for i in range(n):
        m = z[i, 0]
        for j in range(1, k):
            if z[i, j] > m:
                m = z[i, j]
        s = 0.0
        for j in range(k):
            e = np.exp(z[i, j] - m)
            delta[i, j] = e
            s += e
        log_s = np.log(s)
        inv = 1.0 / s
        li = 0.0
        w = sw[i] * c
        for j in range(k):
            # log p_ij = z_ij - m - log s
            if y[i, j] != 0.0:
                li -= y[i, j] * (z[i, j] - m - log_s)
            delta[i, j] = (delta[i, j] * inv - y[i, j]) * w
        total += sw[i] * li
    return total


@jit_views
def log_loss_logistic(z, y, sw, c, delta):
    """Independent logistic outputs (binary / multilabel). Shapes as ``log_loss_softmax``.

    -[y log s(z) + (1 - y) log(1 - s(z))] = softplus(z) - y z,
    softplus(z) = max(z, 0) + log1p(exp(-|z|)).
    """
    n, k = z.shape
    total = 0.0
    for i in range(n):
        li = 0.0
        w = sw[i] * c
        for j in range(k):
            zij = z[i, j]
            li += max(zij, 0.0) + np.log1p(np.exp(-abs(zij))) - y[i, j] * zij
            p = 1.0 / (1.0 + np.exp(-zij))
            delta[i, j] = (p - y[i, j]) * w
        total += sw[i] * li
    return total


@jit_views
def squared_error_loss(z, y, sw, c, delta):
    """Half squared error averaged over the k outputs. Shapes as ``log_loss_softmax``."""
    n, k = z.shape
    total = 0.0
    inv_k = 1.0 / k
    for i in range(n):
        li = 0.0
        w = sw[i] * c * inv_k
        for j in range(k):
            r = z[i, j] - y[i, j]
            li += r * r
            delta[i, j] = r * w
        total += sw[i] * 0.5 * li * inv_k
    return total


@jit_views
def poisson_loss(z, y, sw, c, delta):
    """Half Poisson deviance with log link, mu = exp(z). Shapes as ``log_loss_softmax``.

    l = sum_k [y log y - y z - y + exp(z)]   (y log y = 0 at y = 0)
    """
    n, k = z.shape
    total = 0.0
    for i in range(n):
        li = 0.0
        w = sw[i] * c
        for j in range(k):
            mu = np.exp(z[i, j])
            yij = y[i, j]
            if yij > 0.0:
                li += yij * np.log(yij)
            li += mu - yij * z[i, j] - yij
            delta[i, j] = (mu - yij) * w
        total += sw[i] * li
    return total


#: the loss kernels by code: each is compiled on first use, so a network compiles only
#: its own loss (one jitted dispatcher over all four compiled every one of them)
LOSS_KERNELS = (log_loss_softmax, log_loss_logistic, squared_error_loss, poisson_loss)


def loss_and_delta(code, z, y, sw, c, delta):
    """Dispatch on the loss code; returns the weighted loss sum and fills ``delta``."""
    return LOSS_KERNELS[code](z, y, sw, c, delta)
