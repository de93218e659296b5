"""sknet.datasets: the .ts reader (on tiny files written here) and the shipped GunPoint."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.utils import Bunch

from sknet.datasets import load_gunpoint, load_ts

HEADER = """# a comment
#another one
@problemName Tiny
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true a b
@data
"""


def write(tmp_path, text, name="Tiny_TRAIN.ts", gz=False):
    path = Path(tmp_path) / name
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# ------------------------------------------------------------------ load_ts
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_reads_multivariate_equal_length(tmp_path, gz):
    text = HEADER + "1,2,3:4,5,6:a\n\n-1.5,?,2e-3:0,NaN,1:b\n"
    X, y = load_ts(write(tmp_path, text, gz=gz))
    assert X.dtype == np.float64 and X.shape == (2, 2, 3)
    assert_array_equal(X[0], [[1, 2, 3], [4, 5, 6]])
    assert_array_equal(X[1, 0], [-1.5, np.nan, 2e-3])
    assert np.isnan(X[1, 1, 1])
    assert_array_equal(y, ["a", "b"])


def test_reads_univariate_with_str_path_and_windows_newlines(tmp_path):
    text = "@problemName U\r\n@classLabel true 1 2\r\n@data\r\n1,2:1\r\n3,4:2\r\n"
    X, y = load_ts(str(write(tmp_path, text)))
    assert X.shape == (2, 1, 2)
    assert_array_equal(y, ["1", "2"])


def test_header_keys_are_case_insensitive(tmp_path):
    text = "@ProblemName U\n@CLASSLABEL True x y\n@DATA\n1,2:y\n"
    X, y = load_ts(write(tmp_path, text))
    assert X.shape == (1, 1, 2) and list(y) == ["y"]


def test_unequal_lengths_give_a_list(tmp_path):
    text = "@equalLength false\n@classLabel true 1 2\n@data\n1,2,3:1\n4,5:2\n"
    X, y = load_ts(write(tmp_path, text))
    assert isinstance(X, list) and [x.shape for x in X] == [(1, 3), (1, 2)]
    assert_array_equal(X[1], [[4, 5]])
    assert_array_equal(y, ["1", "2"])


def test_unlabelled_file_gives_y_none(tmp_path):
    X, y = load_ts(write(tmp_path, "@classLabel false\n@data\n1,2\n3,4\n"))
    assert y is None and X.shape == (2, 1, 2)


def test_regression_targets_come_as_strings(tmp_path):
    text = "@classLabel false\n@targetLabel true\n@data\n1,2:0.5\n3,4:-2\n"
    X, y = load_ts(write(tmp_path, text))
    assert_array_equal(y.astype(float), [0.5, -2.0])


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("1,2,x:4,5,6:a\n", 12, "dimension 1 holds 'x', not a number"),
        ("1,2,3:4,,6:a\n", 12, "dimension 2 holds an empty value"),
        ("1,2,3:4,5,6:c\n", 12, "class label 'c' is not among those the header declares"),
        ("1,2,3:4,5,6:\n", 12, "the class label is empty"),
        ("1,2,3:a\n", 12, "1 dimension(s), but the header declares 2"),
        ("1,2,3:4,5,6:a\n1,2:4,5:b\n", 13, "2 values per dimension, but the header declares"),
        ("1,2,3:4,5:a\n", 12, "the dimensions differ in length (3, 2)"),
        ("1,2,3\n", 12, "expected values then ':' and the class label"),
    ],
)
def test_malformed_lines_are_refused_by_line(tmp_path, body, line, message):
    path = write(tmp_path, HEADER + body)
    with pytest.raises(ValueError, match=rf"Tiny_TRAIN\.ts, line {line}: ") as info:
        load_ts(path)
    assert message in str(info.value)


def test_dimension_count_must_agree_between_series(tmp_path):
    text = "@classLabel true a\n@data\n1,2:a\n1,2:3,4:a\n"
    with pytest.raises(ValueError, match=r"line 4: 2 dimension\(s\), but the first series has 1"):
        load_ts(write(tmp_path, text))


@pytest.mark.parametrize(
    "text, message",
    [
        ("@problemName X\n1,2:a\n", r"line 2: expected a header line starting with '@'"),
        ("@problemName X\n", r"no @data line"),
        ("@classLabel true a\n@data\n\n", r"no series after @data"),
        ("@timeStamps true\n@data\n(0,1):a\n", r"@timeStamps true\) are not supported"),
        ("@classLabel maybe\n@data\n1:a\n", r"@classLabel must be 'true' or 'false'"),
    ],
)
def test_malformed_files_are_refused(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_ts(write(tmp_path, text))


def test_broken_gzip_and_binary_are_refused(tmp_path):
    path = Path(tmp_path) / "broken.ts.gz"
    path.write_bytes(gzip.compress(b"@data\n1:a\n")[:-8] + b"\x00")
    with pytest.raises(ValueError, match="looks gzipped but cannot be decompressed"):
        load_ts(path)
    path.write_bytes(b"\xff\xfe@data")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        load_ts(path)


def test_path_type_and_missing_file(tmp_path):
    with pytest.raises(TypeError, match="path must be a str or path-like"):
        load_ts(3)
    with pytest.raises(FileNotFoundError):
        load_ts(Path(tmp_path) / "absent.ts")


# ------------------------------------------------------------------ load_gunpoint
def test_gunpoint_splits():
    X_train, y_train = load_gunpoint(return_X_y=True)
    X_test, y_test = load_gunpoint(split="test", return_X_y=True)
    assert X_train.shape == (50, 1, 150) and X_test.shape == (150, 1, 150)
    assert X_train.dtype == np.float64 and np.isfinite(X_test).all()
    assert sorted(set(y_train)) == sorted(set(y_test)) == ["1", "2"]
    # the archive's counts per class
    assert_array_equal(np.unique(y_train, return_counts=True)[1], [24, 26])
    assert_array_equal(np.unique(y_test, return_counts=True)[1], [76, 74])
    # z-normalised by the archive
    assert np.allclose(X_train.mean(axis=-1), 0, atol=1e-6)
    assert np.allclose(X_train.std(axis=-1), 1, atol=0.01)


def test_gunpoint_bunch_and_all():
    data = load_gunpoint(split=None)
    assert isinstance(data, Bunch)
    assert data.data.shape == (200, 1, 150) and data.target.shape == (200,)
    assert_array_equal(data.data[:50], load_gunpoint().data)
    assert data.target_names == ["1", "2"]
    assert "UCR time series archive" in data.DESCR and "Gun-Draw" in data.DESCR


def test_gunpoint_bad_split():
    with pytest.raises(ValueError, match="split must be 'train', 'test' or None"):
        load_gunpoint(split="validation")


def test_gunpoint_file_is_small():
    data = Path(__file__).resolve().parents[1] / "sknet" / "datasets" / "data"
    assert sum(p.stat().st_size for p in data.glob("GunPoint_*.ts.gz")) < 200_000
