"""Fully connected layer: forward and backward.

Shapes: X (n, d) inputs, W (d, k) weights, b (k,) bias, A (n, k) activations.

Forward::

    Z = X W + b          (GEMM through BLAS: np.dot into a preallocated buffer)
    A = f(Z)             (activation code, see kernels.activations)

Backward, given dA = dL/dA (n, k), overwritten in place by dZ::

    dZ = dA * f'(A)
    dW = X^T dZ          (d, k)
    db = sum_i dZ_i      (k,)
    dX = dZ W^T          (n, d)   only when the layer below needs it

The GEMMs stay in the caller (``np.dot(..., out=...)`` or a sparse product) so a
sparse first-layer input takes the same path; the element-wise work around them is
fused here into one pass each way.
"""

import numpy as np

from .._config import jit
from .activations import LOGISTIC, RELU, TANH


@jit
def bias_activation_forward(z, b, code):
    """``z = f(z + b)`` in place. z (n, k) C-contiguous, b (k,)."""
    n, k = z.shape
    if code == RELU:
        for i in range(n):
            for j in range(k):
                v = z[i, j] + b[j]
                z[i, j] = v if v > 0.0 else 0.0
    elif code == TANH:
        for i in range(n):
            for j in range(k):
                z[i, j] = np.tanh(z[i, j] + b[j])
    elif code == LOGISTIC:
        for i in range(n):
            for j in range(k):
                z[i, j] = 1.0 / (1.0 + np.exp(-(z[i, j] + b[j])))
    else:
        for i in range(n):
            for j in range(k):
                z[i, j] += b[j]


@jit
def activation_backward_bias_grad(a, delta, code, db):
    """``delta *= f'(a)`` in place, then ``db = sum_i delta_i``.

    a, delta (n, k); db (k,) overwritten. f' is expressed through the output a.
    """
    n, k = a.shape
    for j in range(k):
        db[j] = 0.0
    for i in range(n):
        if code == RELU:
            for j in range(k):
                if a[i, j] <= 0.0:
                    delta[i, j] = 0.0
        elif code == TANH:
            for j in range(k):
                delta[i, j] *= 1.0 - a[i, j] * a[i, j]
        elif code == LOGISTIC:
            for j in range(k):
                delta[i, j] *= a[i, j] * (1.0 - a[i, j])
        for j in range(k):
            db[j] += delta[i, j]


@jit
def take_rows(x, idx, out):
    """``out[i] = x[idx[i]]``: the rows ``idx`` (int64) of the 2-D C-contiguous ``x``
    into the C-contiguous ``out`` (len(idx), d) (a mini-batch gather without numpy's
    fancy-indexing allocation). An index outside ``[0, len(x))`` raises IndexError."""
    n, d = x.shape
    for i in range(idx.shape[0]):
        r = idx[i]
        if r < 0 or r >= n:
            raise IndexError("take_rows: row index out of range")
        for j in range(d):
            out[i, j] = x[r, j]
