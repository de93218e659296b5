"""In-place parameter updates over the flat parameter vector.

All arrays are 1-D views of the network's flat vectors (theta, grad and the
optimizer's state); scalars are passed in the arrays' dtype so float32 stays
float32. Updates are element-wise, so splitting them over threads is deterministic.

Each update is a serial kernel plus a ``*_parallel`` twin that runs it over fixed
blocks (``PARALLEL_BLOCK`` elements, or the ``l2_blocks``) in numba's threads, one part
of the blocks per thread, through ``runner.run_blocks`` (the parallel loop every kernel
family shares: no parallel kernel of its own to compile). Every element gets the same
arithmetic whichever thread runs it, so the twins give the serial kernels' bits at any
thread count. Callers use a twin only for vectors of at least ``PARALLEL_MIN`` elements.
Measured on the project machine (2 cores, float32 Adam with the fused penalty, 235k
parameters of the MNIST (256, 128) MLP): 47 us serial, 28 us on two threads.

The ``*_l2`` variants fold the L2 penalty's gradient into the update: they walk the
vector in cache-sized blocks (``l2_blocks``) and, for a block of penalised weights,
first add ``c * theta`` to the gradient (returning the block's sum of squares for the
loss) while the block is in cache, then update it. One pass over memory instead of two,
with the same arithmetic as ``l2_penalty_grad`` followed by the plain update. The serial
``*_l2`` functions run the parallel twins' part function with one part: one compiled
kernel for both paths (compile time), the element loops inlined into it.
"""

import numba
import numpy as np
from numba import types

from .._config import jit_reduce
from .runner import call_entry, entry, inline, internal, jit_views, run_blocks, unpack

PARALLEL_BLOCK = 1 << 15
PARALLEL_MIN = 1 << 17
L2_BLOCK = 1 << 12


@inline
def _sgd_elements(theta, grad, velocity, lr, momentum, nesterov):
    """``sgd_update``'s loop, inlined into its callers' code. On views indexed from 0 (a
    loop from a run-time start keeps numba's negative-index handling, which blocks
    vectorisation: 5x slower)."""
    for i in range(theta.shape[0]):
        v = momentum * velocity[i] - lr * grad[i]
        velocity[i] = v
        if nesterov:
            theta[i] += momentum * v - lr * grad[i]
        else:
            theta[i] += v


@inline
def _adam_elements(
    theta, grad, m, v, lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, eps
):
    """``adam_update``'s loop, inlined into its callers' code (on views indexed from 0, as
    ``_sgd_elements``)."""
    for i in range(theta.shape[0]):
        g = grad[i]
        mi = beta_1 * m[i] + one_minus_beta_1 * g
        vi = beta_2 * v[i] + one_minus_beta_2 * g * g
        m[i] = mi
        v[i] = vi
        theta[i] -= lr_t * mi / (np.sqrt(vi) + eps)


@jit_views
def sgd_update(theta, grad, velocity, lr, momentum, nesterov):
    """SGD with (Nesterov) momentum, as scikit-learn's ``SGDOptimizer``::

    v <- mu v - lr g
    theta <- theta + v                    (classical momentum)
    theta <- theta + mu v - lr g          (Nesterov)
    """
    _sgd_elements(theta, grad, velocity, lr, momentum, nesterov)


@jit_views
def adam_update(theta, grad, m, v, lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, eps):
    """Adam (Kingma & Ba), bias correction folded into ``lr_t``::

        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        theta <- theta - lr_t m / (sqrt(v) + eps),
        lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)

    The complements ``1 - b`` come from the caller in the arrays' dtype, so a float32
    update never widens to float64.
    """
    _adam_elements(theta, grad, m, v, lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, eps)


@jit_reduce
def l2_penalty_grad(theta, grad, c):
    """``grad += c * theta`` and return ``sum(theta ** 2)``, in one pass.

    theta, grad (n,) 1-D views of a penalised weight block. The sum is accumulated in
    the arrays' dtype with reassociation allowed, so it vectorises.
    """
    s = theta.dtype.type(0.0)
    for i in range(theta.shape[0]):
        w = theta[i]
        grad[i] += c * w
        s += w * w
    return np.float64(s)


_L2_ENTRIES = {}


def _l2_entry(dtype):
    """``runner.entry`` of :func:`l2_penalty_grad` for 1-D C arrays of ``dtype``: the
    fused updates call the penalty through it, so the fused and the unfused paths run one
    compiled copy of its (reassociated, vectorised) sum. Linked into each update kernel
    instead, the copy there was optimised again with the caller and could round the sum
    differently; which copy ran then depended on the JIT's symbol resolution (the same
    float64 Adam update gave a different last bit of a block's sum of squares in a
    process that compiled it and in one that loaded it from the cache)."""
    fn = _L2_ENTRIES.get(dtype)
    if fn is None:
        scalar = numba.from_dtype(dtype)
        array = types.Array(scalar, 1, "C")
        fn = _L2_ENTRIES[dtype] = entry(l2_penalty_grad, (array, array, scalar))
    return fn


@jit_reduce
def sum_squares(x):
    """``sum(x ** 2)`` of a 1-D array (vectorised, accumulated in x's dtype)."""
    s = x.dtype.type(0.0)
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return np.float64(s)


@jit_views
def clip_by_norm(grad, max_norm):
    """Rescale ``grad`` (n,) in place so that ``||grad||_2 <= max_norm``; return the norm
    before clipping (float64). A non-finite norm is returned unchanged (no rescale)."""
    norm = np.sqrt(sum_squares(grad))
    if np.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for i in range(grad.shape[0]):
            grad[i] *= scale
    return norm


def l2_blocks(ranges, start, stop, block=L2_BLOCK):
    """Blocks ``(lo, hi, penalised)`` covering ``[start, stop)``, relative to ``start``.

    ``ranges`` are the ``(a, b)`` spans of penalised weights in the flat vector; blocks
    hold at most ``block`` elements and never straddle a span's boundary. Returns an
    int64 array of shape (n_blocks, 3) for the ``*_l2`` update kernels.
    """
    cuts = {start, stop}
    for a, b in ranges:
        cuts.update(x for x in (a, b) if start <= x <= stop)
    edges = sorted(cuts)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        pen = any(a <= lo and hi <= b for a, b in ranges)
        for s in range(lo, hi, block):
            rows.append((s - start, min(s + block, hi) - start, int(pen)))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


@jit_views
def _sgd_l2_part(theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq, p, parts, l2):
    """The blocks of ``sgd_update_l2`` that start in part ``p`` of ``parts`` equal parts
    of theta (all of them for ``parts = 1``); ``l2`` is ``_l2_entry``'s."""
    n = theta.shape[0]
    for k in range(blocks.shape[0]):
        lo, hi = blocks[k, 0], blocks[k, 1]
        if parts > 1 and (lo * parts) // n != p:
            continue
        sumsq[k] = call_entry(l2, (theta[lo:hi], grad[lo:hi], c)) if blocks[k, 2] else 0.0
        _sgd_elements(theta[lo:hi], grad[lo:hi], velocity[lo:hi], lr, momentum, nesterov)


@jit_views
def _adam_l2_part(
    theta,
    grad,
    m,
    v,
    lr_t,
    beta_1,
    one_minus_beta_1,
    beta_2,
    one_minus_beta_2,
    eps,
    c,
    blocks,
    sumsq,
    p,
    parts,
    l2,
):
    """The blocks of ``adam_update_l2`` that start in part ``p`` of ``parts`` equal parts
    of theta (all of them for ``parts = 1``); ``l2`` is ``_l2_entry``'s."""
    n = theta.shape[0]
    for k in range(blocks.shape[0]):
        lo, hi = blocks[k, 0], blocks[k, 1]
        if parts > 1 and (lo * parts) // n != p:
            continue
        sumsq[k] = call_entry(l2, (theta[lo:hi], grad[lo:hi], c)) if blocks[k, 2] else 0.0
        _adam_elements(
            theta[lo:hi],
            grad[lo:hi],
            m[lo:hi],
            v[lo:hi],
            lr_t,
            beta_1,
            one_minus_beta_1,
            beta_2,
            one_minus_beta_2,
            eps,
        )


def sgd_update_l2(theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq):
    """``sgd_update`` block by block, penalised blocks first getting ``grad += c theta``
    (``sumsq[k]`` receives block k's sum of squared weights, 0 if not penalised): the
    part function with one part (one compiled kernel for the serial and parallel paths)."""
    l2 = _l2_entry(theta.dtype)
    _sgd_l2_part(theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq, 0, 1, l2)


def adam_update_l2(
    theta,
    grad,
    m,
    v,
    lr_t,
    beta_1,
    one_minus_beta_1,
    beta_2,
    one_minus_beta_2,
    eps,
    c,
    blocks,
    sumsq,
):
    """``adam_update`` block by block, penalised blocks first getting ``grad += c theta``
    (``sumsq[k]`` receives block k's sum of squared weights, 0 if not penalised): the
    part function with one part (one compiled kernel for the serial and parallel paths)."""
    _adam_l2_part(
        theta,
        grad,
        m,
        v,
        lr_t,
        beta_1,
        one_minus_beta_1,
        beta_2,
        one_minus_beta_2,
        eps,
        c,
        blocks,
        sumsq,
        0,
        1,
        _l2_entry(theta.dtype),
    )


# ---------------------------------------------------------------- parallel twins
@internal
def _sgd_l2_block(p, packed, args_type):
    """Part ``p`` of ``sgd_update_l2_parallel``: the blocks that start in it."""
    theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq, parts, l2 = unpack(
        packed, args_type
    )
    _sgd_l2_part(theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq, p, parts, l2)


@internal
def _adam_l2_block(p, packed, args_type):
    """Part ``p`` of ``adam_update_l2_parallel``: the blocks that start in it."""
    args = unpack(packed, args_type)
    _adam_l2_part(*args[:13], p, args[13], args[14])


def _parts(blocks):
    """Parts of the blocks to run in parallel: one per thread (the partition changes
    no result: every element's arithmetic is the same in any part)."""
    return min(numba.get_num_threads(), blocks.shape[0])


_PLAIN_BLOCKS = {}


def _plain_blocks(n):
    """``l2_blocks`` of ``PARALLEL_BLOCK`` elements, none penalised, over ``n``."""
    blocks = _PLAIN_BLOCKS.get(n)
    if blocks is None:
        if len(_PLAIN_BLOCKS) > 16:
            _PLAIN_BLOCKS.clear()
        blocks = _PLAIN_BLOCKS[n] = l2_blocks([], 0, n, PARALLEL_BLOCK)
    return blocks


def sgd_update_l2_parallel(theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq):
    """``sgd_update_l2`` with the blocks spread over numba's threads."""
    parts = _parts(blocks)
    if parts <= 1:
        return sgd_update_l2(theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq)
    args = (theta, grad, velocity, lr, momentum, bool(nesterov), c, blocks, sumsq, parts)
    run_blocks(_sgd_l2_block, (*args, _l2_entry(theta.dtype)), parts)


def adam_update_l2_parallel(
    theta,
    grad,
    m,
    v,
    lr_t,
    beta_1,
    one_minus_beta_1,
    beta_2,
    one_minus_beta_2,
    eps,
    c,
    blocks,
    sumsq,
):
    """``adam_update_l2`` with the blocks spread over numba's threads."""
    args = (theta, grad, m, v, lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, eps)
    parts = _parts(blocks)
    if parts <= 1:
        return adam_update_l2(*args, c, blocks, sumsq)
    run_blocks(_adam_l2_block, (*args, c, blocks, sumsq, parts, _l2_entry(theta.dtype)), parts)


def sgd_update_parallel(theta, grad, velocity, lr, momentum, nesterov):
    """``sgd_update`` over fixed blocks of ``PARALLEL_BLOCK`` elements in parallel."""
    blocks = _plain_blocks(theta.shape[0])
    sumsq = np.empty(blocks.shape[0])
    c = theta.dtype.type(0.0)
    sgd_update_l2_parallel(theta, grad, velocity, lr, momentum, nesterov, c, blocks, sumsq)


def adam_update_parallel(
    theta, grad, m, v, lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, eps
):
    """``adam_update`` over fixed blocks of ``PARALLEL_BLOCK`` elements in parallel."""
    blocks = _plain_blocks(theta.shape[0])
    sumsq = np.empty(blocks.shape[0])
    args = (theta, grad, m, v, lr_t, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, eps)
    adam_update_l2_parallel(*args, theta.dtype.type(0.0), blocks, sumsq)
