"""GunPoint, a small time-series classification set of the UCR archive, shipped with sknet."""

from importlib import resources

import numpy as np
from sklearn.utils import Bunch

from ._ts import _decode, _parse_ts

__all__ = ["load_gunpoint"]

_FILES = {"train": "GunPoint_TRAIN.ts.gz", "test": "GunPoint_TEST.ts.gz"}

_SOURCE = """GunPoint, from the UCR time series classification archive.

Source: the archive's GunPoint_TRAIN.ts and GunPoint_TEST.ts files (the published
train/test split), as distributed in the .ts format with the aeon toolkit
(the files in aeon 1.6.0's wheel, aeon/datasets/data/), gzipped unchanged. Data set
contributed by C. A. Ratanamahatana and E. Keogh. Archive: H. A. Dau,
A. Bagnall, K. Kamgar, C.-C. M. Yeh, Y. Zhu, S. Gharghabi, C. A. Ratanamahatana and
E. Keogh, "The UCR time series archive", IEEE/CAA Journal of Automatica Sinica 6(6),
2019, whose authors ask users of the archive to cite it.

The file's own description:
"""


def _load(split):
    name = _FILES[split]
    raw = resources.files("sknet.datasets").joinpath("data", name).read_bytes()
    return _parse_ts(_decode(raw, name), name)


def load_gunpoint(*, split="train", return_X_y=False):
    """Load GunPoint, a two-class time-series classification set of the UCR archive.

    Each series is the horizontal position of an actor's right hand over 150 frames
    while the actor either draws a replica gun from a hip holster, points it at a
    target and puts it back (Gun-Draw), or points with the index finger (Point); the
    archive labels the two classes ``'1'`` and ``'2'``. 50 training and 150 test
    series, each z-normalised
    (zero mean, unit variance) by the archive. Shipped inside sknet (140 kB of gzipped
    ``.ts`` text, read with :func:`load_ts`): nothing is downloaded.

    Source: the UCR time series classification archive (Dau et al., "The UCR time
    series archive", IEEE/CAA Journal of Automatica Sinica 6(6), 2019), its
    ``GunPoint_TRAIN.ts`` and ``GunPoint_TEST.ts`` files as distributed with the aeon
    toolkit (1.6.0); data set contributed by C. A. Ratanamahatana and E. Keogh. Cite the
    archive when you publish results on it. Published accuracies on the test split
    (Fawaz et al., "Deep learning for time series classification: a review", Data
    Mining and Knowledge Discovery 33(4), 2019): MLP 92.7%, FCN 100.0%, ResNet 99.1%.

    Parameters
    ----------
    split : {"train", "test", None}, default="train"
        Which split of the archive: the 50 training series, the 150 test series, or
        None for all 200 (the training series first).

    return_X_y : bool, default=False
        If True, return ``(X, y)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields:

        data : ndarray of shape (n_series, 1, 150), float64
            The series, one channel, as :class:`~sknet.NetworkClassifier` takes them
            (``data[:, 0]`` gives 2-D rows for the estimators that take those).
        target : ndarray of shape (n_series,), str
            The class labels, ``'1'`` or ``'2'``, as in the archive.
        target_names : list of str
            ``['1', '2']``.
        DESCR : str
            Source, citation and the data set's description from the file.
    (X, y) : tuple of ndarray
        If ``return_X_y`` is True.

    See Also
    --------
    load_ts : Read any data set of the UCR/UEA archive from its ``.ts`` file.

    Examples
    --------
    >>> from sknet.datasets import load_gunpoint
    >>> X_train, y_train = load_gunpoint(split="train", return_X_y=True)
    >>> X_test, y_test = load_gunpoint(split="test", return_X_y=True)
    >>> X_train.shape, X_test.shape
    ((50, 1, 150), (150, 1, 150))
    >>> sorted(set(y_train.tolist()))
    ['1', '2']
    >>> print(load_gunpoint().DESCR.splitlines()[0])
    GunPoint, from the UCR time series classification archive.
    """
    if split not in ("train", "test", None):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}.")
    parts = [_load(s) for s in (("train", "test") if split is None else (split,))]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    if return_X_y:
        return X, y
    descr = _SOURCE + "\n".join(parts[0][2])
    return Bunch(data=X, target=y, target_names=["1", "2"], DESCR=descr)
