"""Element-wise activations and their derivatives.

Every activation works on arrays of any rank through a flat 1-D view (the caller
passes ``Z.reshape(-1)`` of a C-contiguous array), so dense (n, k), sequence
(n, T, k) and image (n, C, H, W) activations share one compiled kernel per dtype.

Derivatives are written in terms of the activation's *output* ``a`` (as
scikit-learn's ``inplace_*_derivative`` do), so the forward pass overwrites ``Z``
with ``a`` and nothing else has to be kept::

    identity  a = z               da/dz = 1
    logistic  a = 1 / (1 + e^-z)  da/dz = a (1 - a)
    tanh      a = tanh z          da/dz = 1 - a^2
    relu      a = max(z, 0)       da/dz = [a > 0]

Activation names are resolved to the small integer codes in ``ACTIVATIONS`` in
Python; kernels branch on the code (never receive a function).
"""

import numpy as np

from .._config import jit
from .losses import log_loss_softmax
from .runner import jit_views

__all__ = [
    "ACTIVATIONS",
    "IDENTITY",
    "LOGISTIC",
    "RELU",
    "TANH",
    "activation_backward",
    "activation_forward",
    "exp_forward",
    "softmax_forward",
]

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3

ACTIVATIONS = {"identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH, "relu": RELU}


@jit_views
def _activation(a, delta, code, backward):
    """Forward (``a = f(a)`` in place) or backward (``delta *= f'(a)`` in place): one
    compiled kernel for both directions, without reference counting nor C wrapper
    (``runner.jit_views``; compile time)."""
    if backward:
        if code == LOGISTIC:
            for i in range(a.shape[0]):
                delta[i] *= a[i] * (1.0 - a[i])
        elif code == TANH:
            for i in range(a.shape[0]):
                delta[i] *= 1.0 - a[i] * a[i]
        elif code == RELU:
            for i in range(a.shape[0]):
                if a[i] <= 0.0:
                    delta[i] = 0.0
    elif code == LOGISTIC:
        for i in range(a.shape[0]):
            a[i] = 1.0 / (1.0 + np.exp(-a[i]))
    elif code == TANH:
        for i in range(a.shape[0]):
            a[i] = np.tanh(a[i])
    elif code == RELU:
        for i in range(a.shape[0]):
            if a[i] < 0.0:
                a[i] = 0.0


def activation_forward(z, code):
    """Apply activation ``code`` in place to the 1-D array ``z`` (n,)."""
    _activation(z, z, code, False)


def activation_backward(a, delta, code):
    """Multiply ``delta`` (n,) in place by the derivative at output ``a`` (n,)."""
    _activation(a, delta, code, True)


def softmax_forward(z):
    """Row-wise softmax of ``z`` (n, k) in place, shifted by the row max for stability.

    p_ij = exp(z_ij - m_i) / sum_l exp(z_il - m_i),  m_i = max_l z_il

    Computed by the training loss kernel ``losses.log_loss_softmax`` with zero targets
    and unit weights, writing its gradient ``p - 0`` over ``z``: the same arithmetic
    (bit for bit) without a second compiled kernel.
    """
    n = z.shape[0]
    dtype = z.dtype.type
    log_loss_softmax(z, np.zeros_like(z), np.ones(n, dtype=z.dtype), dtype(1.0), z)


@jit
def exp_forward(z):
    """``z = exp(z)`` in place on the 1-D array ``z`` (the Poisson log link's inverse)."""
    for i in range(z.shape[0]):
        z[i] = np.exp(z[i])
