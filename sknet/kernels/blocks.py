"""Fixed sample blocks: the unit of parallel work and of ordered partial sums.

Kernels that sum a weight gradient over a batch (``conv``, ``recurrent``) cut the batch
into blocks of ``CHUNK`` samples, write one partial sum per block inside ``prange`` and
add the partial sums after the parallel loop in block order (:func:`sum_blocks`). The
block size is a constant of the source, never derived from the thread count, so the
partition, and with it every rounding, is the same whatever numba's thread count: results
are bit-identical across thread counts.
"""

from .._config import jit, jit_reduce

__all__ = ["CHUNK", "n_blocks", "row_sum", "sum_blocks"]

#: Samples per block: the unit of the per-block partial sums, and so of their order.
CHUNK = 8


def n_blocks(n):
    """Number of blocks of ``CHUNK`` samples covering a batch of ``n``."""
    return (n + CHUNK - 1) // CHUNK


@jit
def sum_blocks(parts, n_parts, out):
    """``out = parts[0] + parts[1] + ... + parts[n_parts - 1]``, added in block order.

    parts : (B, M, N) per-block partial sums, ``B >= n_parts``.
    out : (M, N) overwritten, any layout (e.g. a transposed view); zeros when
        ``n_parts == 0``. For vectors pass ``parts.reshape(B, 1, N)``, ``out.reshape(1, N)``.
    """
    M, N = out.shape
    if n_parts == 0:  # empty batch
        out[:] = 0
        return
    for i in range(M):
        for j in range(N):
            out[i, j] = parts[0, i, j]
    for c in range(1, n_parts):
        for i in range(M):
            for j in range(N):
                out[i, j] += parts[c, i, j]


@jit_reduce
def row_sum(x):
    """sum_t x[t] of a 1-D array, accumulated in float64. Reassociated so that it
    vectorises: one fixed order per compiled kernel, whatever the thread count."""
    acc = 0.0
    for t in range(x.shape[0]):
        acc += x[t]
    return acc
