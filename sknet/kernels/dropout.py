"""Inverted dropout.

The caller draws ``u ~ U[0, 1)`` (n,) from a seeded ``np.random.Generator`` (kernels
never touch global random state). With drop rate p and keep probability q = 1 - p::

    mask_i = (u_i >= p) / q           forward:  y = x * mask
                                      backward: dx = dy * mask

so expectations match at inference, where dropout is the identity.
"""

from .._config import jit


@jit
def dropout_forward(x, u, rate, y, mask):
    """x, u, y, mask (n,) flat; writes the scaled mask and ``y = x * mask``."""
    scale = 1.0 / (1.0 - rate)
    for i in range(x.shape[0]):
        m = scale if u[i] >= rate else 0.0
        mask[i] = m
        y[i] = x[i] * m


@jit
def dropout_backward(dy, mask, dx):
    """dy, mask, dx (n,) flat; ``dx = dy * mask``."""
    for i in range(dy.shape[0]):
        dx[i] = dy[i] * mask[i]
