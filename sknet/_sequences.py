"""Variable-length sequences: validating a list of arrays, and the padded container the
recurrent estimators train and predict on.

A user passes ``X`` as a list (or tuple, or object array) of arrays of shape
``(length_i, n_features)``, or ``(length_i,)`` for univariate sequences.
:func:`check_sequences` validates it and pads it with zeros into a
:class:`PaddedSequences`: ``data`` ``(n, T, d)`` and ``lengths`` ``(n,)``. The recurrent
kernels stop each sequence at its own length, so the padding never counts.
:func:`bucket_order` groups sequences of similar lengths into the same mini-batches, so
that training costs the real steps rather than the padded ones.
"""

import numpy as np

__all__ = [
    "PaddedSequences",
    "StepTargets",
    "bucket_order",
    "check_sequences",
    "is_ragged",
    "step_targets",
]

#: Mini-batches per pool in :func:`bucket_order`: sequences are sorted by length within
#: a pool of this many batches of shuffled samples (a bucketing iterator's pool).
BUCKET_POOL = 50


class PaddedSequences:
    """``n`` sequences padded with zeros to the longest.

    Array-like enough for the estimator base and scikit-learn's splitters: ``shape``,
    ``dtype``, ``ndim``, ``len``, ``astype`` and indexing by a slice, integer indices or
    a boolean mask, which returns the selected sequences padded to the longest of them.

    Parameters
    ----------
    data : ndarray of shape (n, T, d)
        Sequence ``i`` is ``data[i, :lengths[i]]``; the rest is zero.
    lengths : ndarray of shape (n,), dtype int64
        Lengths, each in ``[1, T]``.
    """

    ndim = 3

    def __init__(self, data, lengths):
        self.data = data
        self.lengths = lengths

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __len__(self):
        return self.data.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):  # scikit-learn's _safe_indexing asks X[key, ...]
            if len(key) != 2 or key[1] is not Ellipsis:
                raise IndexError("PaddedSequences index the sample axis only.")
            key = key[0]
        if isinstance(key, slice):
            lengths = self.lengths[key]
            data = self.data[key]
        else:
            key = np.asarray(key)
            if key.dtype == bool:
                key = np.flatnonzero(key)
            if key.ndim != 1 or key.dtype.kind not in "iu":
                raise IndexError("PaddedSequences take a slice, integer indices or a mask.")
            lengths = self.lengths[key]
            data = self.data[key]
        steps = int(lengths.max()) if lengths.size else 1
        return PaddedSequences(data[:, :steps], lengths)

    def astype(self, dtype, copy=True):
        return PaddedSequences(self.data.astype(dtype, copy=copy), self.lengths)

    def to_list(self):
        """The sequences as a list of ``(length_i, d)`` arrays (views)."""
        return [x[:length] for x, length in zip(self.data, self.lengths)]

    @classmethod
    def from_array(cls, X):
        """Fixed-length sequences: ``X`` (n, T, d), every length ``T``."""
        return cls(X, np.full(X.shape[0], X.shape[1], dtype=np.int64))


def _is_sequence_container(X):
    if isinstance(X, (list, tuple)):
        return True
    return isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1


def is_ragged(X):
    """Whether ``X`` is a list (tuple, 1-D object array) of array-likes whose shapes
    differ: variable-length sequences (or a mistake :func:`check_sequences` names).
    Lists of equal shapes convert to an array and take the fixed-length path."""
    if not _is_sequence_container(X) or len(X) == 0:
        return False
    shapes = set()
    for x in X:
        try:
            shapes.add(np.shape(x))
        except ValueError:  # a ragged element: check_sequences says which
            return True
        if len(shapes) > 1:
            return True
    return False


def check_sequences(X, *, dtype=(np.float64, np.float32), name="X"):
    """Validate a list of sequences and pad it.

    Parameters
    ----------
    X : list, tuple or 1-D object array of array-like
        Each of shape ``(length_i, n_features)``, or ``(length_i,)`` for univariate
        sequences (one form for all), with ``length_i >= 1``.
    dtype : dtype or tuple of dtypes, default=(np.float64, np.float32)
        Kept when every sequence has one of the dtypes of a tuple (float32 only when all
        are float32); otherwise the first.
    name : str, default="X"
        How messages name the input.

    Returns
    -------
    sequences : PaddedSequences

    Raises
    ------
    ValueError
        Naming the sequence's index (and the lengths or shapes) for an empty sequence, a
        different number of features, a mix of 1-D and 2-D sequences, a sequence that is
        not numeric or not 1-D/2-D, or NaN/infinity.
    """
    if not _is_sequence_container(X):
        raise TypeError(f"{name} must be a list of sequences, got {type(X).__name__}.")
    if len(X) == 0:
        raise ValueError(f"{name} is an empty list: at least one sequence is required.")
    arrays = []
    for i, x in enumerate(X):
        try:
            a = np.asarray(x)
        except ValueError as exc:
            raise ValueError(f"{name}[{i}] is not an array of numbers ({exc}).") from None
        if a.dtype.kind not in "biuf":
            raise ValueError(
                f"{name}[{i}] has dtype {a.dtype}; each sequence must be an array of numbers."
            )
        if a.ndim not in (1, 2):
            raise ValueError(
                f"{name}[{i}] has {a.ndim} dimension(s) (shape {a.shape}); each sequence "
                "must be 2-D (n_steps, n_features), or 1-D (n_steps,) when univariate."
            )
        if arrays and a.ndim != arrays[0].ndim:
            first = arrays[0]
            raise ValueError(
                f"{name} mixes 1-D and 2-D sequences: {name}[0] has shape {first.shape} "
                f"({first.ndim}-D) and {name}[{i}] has shape {a.shape} ({a.ndim}-D). Use "
                "one form: 2-D (n_steps, n_features) arrays, or 1-D arrays for univariate "
                "sequences."
            )
        arrays.append(a)
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        i = int(empty[0])
        others = lengths[lengths > 0]
        span = f"the others have {others.min()} to {others.max()}" if others.size else "all are"
        raise ValueError(
            f"{name}[{i}] is an empty sequence (length 0; {span} steps): every sequence "
            "needs at least one time step."
        )
    d = 1 if arrays[0].ndim == 1 else arrays[0].shape[1]
    for i, a in enumerate(arrays):
        di = 1 if a.ndim == 1 else a.shape[1]
        if di != d or di == 0:
            raise ValueError(
                f"{name}[{i}] has {di} feature(s) per step (shape {a.shape}), but {name}[0] "
                f"has {d} (shape {arrays[0].shape}): all sequences need the same number "
                "of features, at least one."
            )
    allowed = [np.dtype(t) for t in (dtype if isinstance(dtype, tuple) else (dtype,))]
    kinds = {a.dtype for a in arrays}
    out_dtype = kinds.pop() if len(kinds) == 1 and next(iter(kinds)) in allowed else allowed[0]
    data = np.zeros((len(arrays), int(lengths.max()), d), dtype=out_dtype)
    for i, a in enumerate(arrays):
        data[i, : a.shape[0]] = a.reshape(a.shape[0], d)
        if not np.isfinite(data[i, : a.shape[0]]).all():
            raise ValueError(f"{name}[{i}] contains NaN or infinity.")
    return PaddedSequences(data, lengths)


def check_step_targets(y, lengths, *, name="y"):
    """Refuse per-step targets whose lengths do not match the sequences'.

    A ragged ``y`` (a list of arrays of different lengths) reads as one target per time
    step: ``y[i]`` must then have ``lengths[i]`` entries. Returns None; raises a
    ValueError naming the first sequence whose lengths differ.
    """
    if not is_ragged(y):
        return
    if len(y) != len(lengths):
        raise ValueError(f"{name} has {len(y)} target sequences, but X has {len(lengths)}.")
    for i, (target, length) in enumerate(zip(y, lengths)):
        n_steps = np.shape(target)[0] if np.ndim(target) else 1
        if n_steps != length:
            raise ValueError(
                f"{name}[{i}] has {n_steps} step(s) but X[{i}] has {length}: per-step "
                "targets need one value per time step of their sequence."
            )


class StepTargets:
    """Targets given per time step, validated against the sequences' lengths.

    ``values`` holds the real steps of all sequences one after the other (sequence 0's
    steps, then sequence 1's ...), shape ``(sum(lengths),)`` or ``(sum(lengths), k)``;
    :meth:`padded` lays them out as ``(n, T, k)`` with zeros at the padding steps.
    """

    def __init__(self, values, lengths):
        self.values = values
        self.lengths = lengths

    def mask(self, n_steps=None):
        """(n, T) bool: True at the real steps."""
        T = int(self.lengths.max()) if n_steps is None else n_steps
        return np.arange(T)[None, :] < self.lengths[:, None]

    def padded(self, encoded, n_steps=None):
        """``encoded`` (sum(lengths), k), one row per real step, as (n, T, k) with zeros
        at the padding steps."""
        mask = self.mask(n_steps)
        out = np.zeros(mask.shape + encoded.shape[1:], dtype=encoded.dtype)
        out[mask] = encoded
        return out


def step_targets(y, lengths, *, name="y"):
    """Validate targets given per time step against the sequences' ``lengths``.

    Parameters
    ----------
    y : list of array-like, or array-like
        A list (tuple, 1-D object array) with ``y[i]`` of shape ``(lengths[i],)`` or
        ``(lengths[i], n_outputs)`` (one form for all); or, when every sequence has
        the same length ``T``, an array of shape ``(n, T)`` or ``(n, T, n_outputs)``.
    lengths : ndarray of shape (n,)
        The sequences' lengths.
    name : str, default="y"
        How messages name the targets.

    Returns
    -------
    targets : StepTargets

    Raises
    ------
    ValueError
        When the number of target sequences differs from the number of sequences, or a
        target sequence's length differs from its sequence's (naming the index and
        both lengths), or the shapes do not give one target per step.
    """
    n = len(lengths)
    if _is_sequence_container(y) and any(np.ndim(t) >= 1 for t in y):
        items = list(y)  # one array per sequence
    else:
        arr = np.asarray(y)
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"{name} has shape {arr.shape}, but output='sequence' takes one target per "
                f"time step: {name} of shape (n_sequences, n_timesteps) or (n_sequences, "
                f"n_timesteps, n_outputs), or a list of per-sequence arrays of length "
                "n_steps_i for a list X."
            )
        items = list(arr)
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} target sequences, but X has {n} sequences.")
    arrays = []
    for i, (target, length) in enumerate(zip(items, lengths)):
        a = np.asarray(target)
        if a.ndim not in (1, 2):
            raise ValueError(
                f"{name}[{i}] has shape {a.shape}: each target sequence must be 1-D "
                "(n_steps,) or 2-D (n_steps, n_outputs)."
            )
        if a.shape[0] != length:
            raise ValueError(
                f"{name}[{i}] has {a.shape[0]} step(s) but X[{i}] has {length}: per-step "
                "targets need one value per time step of their sequence."
            )
        if arrays and a.shape[1:] != arrays[0].shape[1:]:
            raise ValueError(
                f"{name}[{i}] has shape {a.shape} but {name}[0] has shape "
                f"{arrays[0].shape}: all target sequences need the same number of outputs."
            )
        arrays.append(a)
    return StepTargets(np.concatenate(arrays), np.asarray(lengths, dtype=np.int64))


def bucket_order(lengths, order, batch_size, rng=None, pool=BUCKET_POOL):
    """Sample indices reordered so that mini-batches hold sequences of similar lengths.

    ``order`` (already shuffled, or ``arange`` without shuffling) is cut into pools of
    ``pool * batch_size`` samples; each pool is sorted by length (stably: equal lengths
    keep their shuffled order) and cut into batches of ``batch_size``. With ``rng`` (a
    ``RandomState``), the batches are then visited in a random order, so an epoch does
    not run from short to long sequences. Deterministic for a given ``rng`` state.

    Returns
    -------
    order : ndarray of int
        A permutation of ``order``; consecutive runs of ``batch_size`` are the batches.
    """
    order = np.asarray(order)
    size = max(1, pool * batch_size)
    pieces = []
    for start in range(0, order.size, size):
        chunk = order[start : start + size]
        pieces.append(chunk[np.argsort(lengths[chunk], kind="stable")])
    order = np.concatenate(pieces) if pieces else order
    if rng is None:
        return order
    batches = [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    # a partial batch stays last, where the caller's fixed-size cut expects it
    n_full = len(batches) - (batches[-1].size < batch_size)
    visit = list(rng.permutation(n_full)) + list(range(n_full, len(batches)))
    return np.concatenate([batches[i] for i in visit])
