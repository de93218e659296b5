"""Readers for the IDX file format and the MNIST files stored in it.

An IDX file is a big-endian header followed by the raw array::

    bytes 0-1   zero
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions, d
    4 * d       the size of each dimension, uint32
    ...         prod(sizes) elements, row-major, big-endian

MNIST ships four such files (images: type 0x08 with 3 dimensions, magic 2051; labels:
type 0x08 with 1 dimension, magic 2049), usually gzipped. Nothing here downloads them.
"""

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_mnist", "load_mnist_idx"]

# IDX type code -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"

_KINDS = ("t10k", "train")

_WHERE_TO_GET = (
    "sknet never downloads data: get the MNIST files (images and labels, in IDX "
    "format, gzipped or not) from the MNIST database of Y. LeCun, C. Cortes and "
    "C. J. C. Burges (http://yann.lecun.com/exdb/mnist/) or one of its mirrors, and "
    "pass the directory that holds them."
)


def _read_bytes(path):
    """The content of ``path``, decompressed when it starts with the gzip magic."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} looks gzipped but cannot be decompressed: {exc}") from exc


def load_mnist_idx(path):
    """Read one file in the IDX format (the format of the MNIST files).

    Parameters
    ----------
    path : str or path-like
        The file, gzipped or not (recognised by its content, not by its name).

    Returns
    -------
    array : ndarray
        The stored array, with the shape given in the header and the element type
        given by its type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
        0x0D float32, 0x0E float64), in native byte order. A new, writeable array.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an IDX file (bad magic number or type code), is
        truncated, or holds more or fewer bytes than its header announces.

    See Also
    --------
    load_mnist : Read the MNIST images and labels of one split.

    Examples
    --------
    A 2 x 3 uint8 array: magic (0, 0, 0x08, 2 dimensions), the sizes, then the bytes.

    >>> import pathlib, struct, tempfile
    >>> from sknet.datasets import load_mnist_idx
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "tiny-idx2-ubyte"
    ...     _ = path.write_bytes(struct.pack(">4B2I", 0, 0, 0x08, 2, 2, 3) + bytes(range(6)))
    ...     array = load_mnist_idx(path)
    >>> array
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like object, got {type(path).__name__}.")
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(
            f"{path} is not an IDX file: {len(data)} bytes, shorter than the 4-byte magic number."
        )
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path} is not an IDX file: its magic number 0x{data[:4].hex()} does not "
            "start with two zero bytes."
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(
            f"{path} is not an IDX file: unknown element type code 0x{code:02X} in its "
            f"magic number (known: {known})."
        )
    if ndim == 0:
        raise ValueError(f"{path}: the IDX header declares 0 dimensions.")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{path} is truncated: the header declares {ndim} dimensions, which need "
            f"{header_size} header bytes, but the file has {len(data)} bytes."
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{path} {problem}: its header announces shape {shape} of {dtype.name} "
            f"({expected} data bytes) but the file holds {actual} data bytes."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _find(directory, stem):
    """The uncompressed file ``stem`` in ``directory``, else ``stem.gz``."""
    for name in (stem, stem + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Neither {stem} nor {stem}.gz is in {directory}. {_WHERE_TO_GET}")


def load_mnist(directory, kind="t10k", *, return_X_y=True, as_float32=True, flatten=True):
    """Load the MNIST digits of one split from IDX files in a local directory.

    Reads ``{kind}-images-idx3-ubyte`` and ``{kind}-labels-idx1-ubyte`` (each either
    uncompressed or with a ``.gz`` suffix; the uncompressed file wins when both exist).
    The files must already be on disk: nothing is downloaded. Files of the same layout,
    such as Fashion-MNIST's, load the same way.

    Parameters
    ----------
    directory : str or path-like
        Directory that holds the files.

    kind : {"t10k", "train"}, default="t10k"
        Which split: the 10,000 test images or the 60,000 training images.

    return_X_y : bool, default=True
        If True, return ``(X, y)``; otherwise a :class:`~sklearn.utils.Bunch`.

    as_float32 : bool, default=True
        If True, pixels are float32 scaled to [0, 1] (divided by 255); if False, the
        raw uint8 grey levels 0-255 (0 is background).

    flatten : bool, default=True
        If True, ``X`` has shape ``(n_samples, rows * cols)`` (784 for MNIST), as
        :class:`~sknet.MLPClassifier` expects; if False, ``(n_samples, rows, cols)``.

    Returns
    -------
    X, y : tuple of ndarray
        If ``return_X_y`` is True: the images as described above and the labels as an
        int64 array of shape ``(n_samples,)``.

    data : :class:`~sklearn.utils.Bunch`
        If ``return_X_y`` is False, with attributes

        data : ndarray
            The images, as ``X`` above.
        images : ndarray of shape (n_samples, rows, cols)
            The same pixels, never flattened.
        target : ndarray of shape (n_samples,)
            The labels, int64.
        target_names : ndarray
            The distinct labels, sorted.
        filenames : dict
            Paths of the ``"images"`` and ``"labels"`` files read.
        DESCR : str
            A short description.

    Raises
    ------
    FileNotFoundError
        If ``directory`` or one of the two files is missing; the message says where to
        get them.
    ValueError
        If ``kind`` is unknown, a file is not a valid IDX file, the images are not a
        3-D uint8 array, the labels not a 1-D uint8 array, or their counts differ.

    See Also
    --------
    load_mnist_idx : Read one IDX file.

    Examples
    --------
    >>> from sknet.datasets import load_mnist
    >>> X, y = load_mnist("path/to/mnist")  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5]  # doctest: +SKIP
    ((10000, 784), dtype('float32'), array([7, 2, 1, 0, 4]))
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}.")
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"directory must be a str or path-like object, got {type(directory).__name__}."
        )
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist. {_WHERE_TO_GET}")
    image_path = _find(directory, f"{kind}-images-idx3-ubyte")
    label_path = _find(directory, f"{kind}-labels-idx1-ubyte")
    images = load_mnist_idx(image_path)
    labels = load_mnist_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{image_path} must hold a 3-D uint8 array (images x rows x cols), got "
            f"shape {images.shape} of {images.dtype}."
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(
            f"{label_path} must hold a 1-D uint8 array of labels, got shape "
            f"{labels.shape} of {labels.dtype}."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels."
        )

    if as_float32:
        images = images.astype(np.float32)
        images /= np.float32(255)
    target = labels.astype(np.int64)
    data = images.reshape(len(images), -1) if flatten else images
    if return_X_y:
        return data, target
    n, rows, cols = images.shape
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=np.unique(target),
        filenames={"images": str(image_path), "labels": str(label_path)},
        DESCR=(
            f"MNIST-format digits, split {kind!r}: {n} grey-level images of "
            f"{rows} x {cols} pixels with their labels, read from {directory}."
        ),
    )
