"""sknet.datasets: the IDX reader and the MNIST loader, on tiny files written here."""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.utils import Bunch

from sknet.datasets import load_mnist, load_mnist_idx

# IDX type codes, written independently of the reader's own table
CODES = {
    np.uint8: 0x08,
    np.int8: 0x09,
    np.int16: 0x0B,
    np.int32: 0x0C,
    np.float32: 0x0D,
    np.float64: 0x0E,
}


def idx_bytes(array, code=None):
    """``array`` encoded as an IDX file: zero, zero, type code, ndim, sizes, big-endian data."""
    array = np.asarray(array)
    if code is None:
        code = CODES[array.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, content, gz=False):
    path = Path(path)
    if gz:
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def make_mnist_dir(directory, kind="t10k", n=7, rows=4, cols=3, gz=False, seed=0):
    """A directory with tiny MNIST-layout files; returns the images and labels written."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write(Path(directory) / f"{kind}-images-idx3-ubyte", idx_bytes(images), gz=gz)
    write(Path(directory) / f"{kind}-labels-idx1-ubyte", idx_bytes(labels), gz=gz)
    return images, labels


# ------------------------------------------------------------------ load_mnist_idx
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", list(CODES))
def test_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=(3, 2, 5), endpoint=True, dtype=dtype)
    else:
        array = rng.standard_normal((3, 2, 5)).astype(dtype)
    path = write(tmp_path / "a-idx3", idx_bytes(array), gz=gz)
    out = load_mnist_idx(path)
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    assert out.shape == (3, 2, 5)
    assert_array_equal(out, array)
    assert out.flags.writeable


@pytest.mark.parametrize("shape", [(0,), (5,), (2, 3), (1, 2, 3, 4)])
def test_idx_any_number_of_dimensions(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape) - 3
    out = load_mnist_idx(str(write(tmp_path / "f", idx_bytes(array))))
    assert out.shape == shape
    assert_array_equal(out, array)


def test_idx_gzip_recognised_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    plain_named_gz = write(tmp_path / "plain.gz", idx_bytes(array))
    gzipped_no_suffix = tmp_path / "packed"
    gzipped_no_suffix.write_bytes(gzip.compress(idx_bytes(array)))
    assert_array_equal(load_mnist_idx(plain_named_gz), array)
    assert_array_equal(load_mnist_idx(gzipped_no_suffix), array)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "shorter than the 4-byte magic"),
        (b"\x00\x00\x08", "shorter than the 4-byte magic"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x05", "two zero bytes"),
        (b"\x00\x07\x08\x01" + struct.pack(">I", 1) + b"\x05", "two zero bytes"),
        (b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x05", "unknown element type code 0x0A"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 2), "header declares 3 dimensions"),
        (b"\x00\x00\x08\x02" + struct.pack(">2I", 2, 3) + bytes(5), "is truncated.*6 data bytes"),
        (b"\x00\x00\x0c\x01" + struct.pack(">I", 2) + bytes(7), "is truncated.*8 data bytes"),
        (b"\x00\x00\x08\x02" + struct.pack(">2I", 2, 3) + bytes(7), "trailing bytes"),
    ],
    ids=[
        "empty",
        "short-magic",
        "magic-byte0",
        "magic-byte1",
        "type-code",
        "ndim-0",
        "short-dims",
        "short-data",
        "short-int32-data",
        "trailing",
    ],
)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_idx_invalid_files(tmp_path, content, match, gz):
    path = write(tmp_path / "bad", content, gz=gz)
    with pytest.raises(ValueError, match=match):
        load_mnist_idx(path)


def test_idx_mnist_magic_numbers_are_the_documented_ones(tmp_path):
    """The standard MNIST magics 2049 (labels) and 2051 (images) parse as uint8 1-D / 3-D."""
    labels = struct.pack(">II", 2049, 3) + bytes([7, 2, 1])
    images = struct.pack(">IIII", 2051, 2, 2, 2) + bytes(range(8))
    assert_array_equal(load_mnist_idx(write(tmp_path / "l", labels)), [7, 2, 1])
    out = load_mnist_idx(write(tmp_path / "i", images))
    assert out.dtype == np.uint8
    assert_array_equal(out, np.arange(8).reshape(2, 2, 2))


def test_idx_corrupt_gzip(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="cannot be decompressed"):
        load_mnist_idx(path)
    path.write_bytes(packed[:10] + b"\xff" * 20 + packed[30:])
    with pytest.raises(ValueError, match="cannot be decompressed"):
        load_mnist_idx(path)


def test_idx_missing_file_and_bad_path_type(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_mnist_idx(tmp_path / "nope")
    with pytest.raises(TypeError, match="path must be a str or path-like"):
        load_mnist_idx(3)


# ------------------------------------------------------------------ load_mnist
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("kind", ["t10k", "train"])
def test_load_mnist_round_trip(tmp_path, kind, gz):
    images, labels = make_mnist_dir(tmp_path, kind=kind, gz=gz)
    X, y = load_mnist(tmp_path, kind=kind)
    assert X.shape == (7, 12) and X.dtype == np.float32
    assert_array_equal(X, images.reshape(7, 12) / np.float32(255))
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.dtype == np.int64
    assert_array_equal(y, labels)


def test_load_mnist_options(tmp_path):
    images, labels = make_mnist_dir(tmp_path)
    X, y = load_mnist(str(tmp_path), as_float32=False, flatten=False)
    assert X.dtype == np.uint8 and X.shape == (7, 4, 3)
    assert_array_equal(X, images)
    X, _ = load_mnist(tmp_path, as_float32=False, flatten=True)
    assert_array_equal(X, images.reshape(7, -1))
    X, _ = load_mnist(tmp_path, as_float32=True, flatten=False)
    assert X.dtype == np.float32 and X.shape == (7, 4, 3)
    assert_array_equal(X * 255, images)


def test_load_mnist_bunch(tmp_path):
    images, labels = make_mnist_dir(tmp_path, kind="train", gz=True)
    bunch = load_mnist(tmp_path, kind="train", return_X_y=False)
    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == (7, 12) and bunch.images.shape == (7, 4, 3)
    assert_array_equal(bunch.images * 255, images)
    assert_array_equal(bunch.data, bunch.images.reshape(7, -1))
    assert_array_equal(bunch.target, labels)
    assert_array_equal(bunch.target_names, np.unique(labels))
    assert bunch.filenames["images"].endswith("train-images-idx3-ubyte.gz")
    assert bunch.filenames["labels"].endswith("train-labels-idx1-ubyte.gz")
    assert "7 grey-level images of 4 x 3 pixels" in bunch.DESCR


def test_load_mnist_prefers_uncompressed_and_mixes(tmp_path):
    images, labels = make_mnist_dir(tmp_path, gz=False, seed=0)
    # a different, gzipped copy of the images next to the raw one: the raw one wins
    other = np.zeros_like(images)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(other), gz=True)
    X, y = load_mnist(tmp_path, as_float32=False, flatten=False)
    assert_array_equal(X, images)
    # raw labels with gzipped images only
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    X, y = load_mnist(tmp_path, as_float32=False, flatten=False)
    assert_array_equal(X, other)
    assert_array_equal(y, labels)


def test_load_mnist_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*never downloads"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(TypeError, match="directory must be a str or path-like"):
        load_mnist(None)


@pytest.mark.parametrize("missing", ["images", "labels"])
def test_load_mnist_missing_file(tmp_path, missing):
    make_mnist_dir(tmp_path, gz=True)
    (tmp_path / f"t10k-{missing}-idx{3 if missing == 'images' else 1}-ubyte.gz").unlink()
    with pytest.raises(
        FileNotFoundError, match=rf"t10k-{missing}-idx\d-ubyte\.gz is in .*yann\.lecun\.com"
    ):
        load_mnist(tmp_path)


def test_load_mnist_other_kind_missing(tmp_path):
    make_mnist_dir(tmp_path, kind="t10k")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, kind="train")


@pytest.mark.parametrize("kind", ["test", "TRAIN", "", None])
def test_load_mnist_bad_kind(tmp_path, kind):
    make_mnist_dir(tmp_path)
    with pytest.raises(ValueError, match="kind must be one of"):
        load_mnist(tmp_path, kind=kind)


@pytest.mark.parametrize(
    "which, array, match",
    [
        ("images", np.zeros((3, 12), np.uint8), r"3-D uint8 array.*\(3, 12\)"),
        ("images", np.zeros((3, 4, 3), np.int32), r"3-D uint8 array.*int32"),
        ("labels", np.zeros((3, 1), np.uint8), r"1-D uint8 array of labels.*\(3, 1\)"),
        ("labels", np.zeros(3, np.float32), r"1-D uint8 array of labels.*float32"),
        ("labels", np.zeros(4, np.uint8), "holds 3 images but .* holds 4 labels"),
    ],
)
def test_load_mnist_inconsistent_files(tmp_path, which, array, match):
    make_mnist_dir(tmp_path, n=3)
    stem = "t10k-images-idx3-ubyte" if which == "images" else "t10k-labels-idx1-ubyte"
    write(tmp_path / stem, idx_bytes(array))
    with pytest.raises(ValueError, match=match):
        load_mnist(tmp_path)


def test_load_mnist_invalid_idx_file_names_it(tmp_path):
    make_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte is not an IDX file"):
        load_mnist(tmp_path)


# ------------------------------------------------------------------ the real files
def _real_mnist_dir():
    """``$SKNET_MNIST_DIR``, else the project's shared data next to the checkout."""
    if os.environ.get("SKNET_MNIST_DIR"):
        return Path(os.environ["SKNET_MNIST_DIR"])
    candidates = [
        Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
        Path("/work/shared/data/mnist"),
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


MNIST_DIR = _real_mnist_dir()


@pytest.mark.skipif(
    not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
    and not (MNIST_DIR / "t10k-images-idx3-ubyte").is_file(),
    reason=f"MNIST test-set files not found in {MNIST_DIR} (set SKNET_MNIST_DIR)",
)
def test_load_real_mnist_test_set():
    bunch = load_mnist(MNIST_DIR, "t10k", return_X_y=False, as_float32=False, flatten=False)
    assert bunch.images.shape == (10000, 28, 28) and bunch.images.dtype == np.uint8
    assert bunch.images.min() == 0 and bunch.images.max() == 255
    assert_array_equal(bunch.target_names, np.arange(10))
    # the documented number of each digit in the MNIST test set
    assert_array_equal(
        np.bincount(bunch.target), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    X, y = load_mnist(MNIST_DIR)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert_array_equal(X * 255, bunch.images.reshape(10000, -1))
    assert_array_equal(y, bunch.target)
