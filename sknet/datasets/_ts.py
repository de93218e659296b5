"""A reader for the ``.ts`` text format of the UCR/UEA time-series classification archive.

The format (as written by sktime and aeon)::

    # comment lines, anywhere before @data
    @problemName GunPoint
    @timeStamps false
    @missing false
    @univariate true
    @equalLength true
    @seriesLength 150
    @classLabel true 1 2
    @data
    -0.64,-0.64,...,-0.65:1
    ...

After ``@data`` every line is one series: its dimensions separated by ``:``, each
dimension's values separated by ``,``, and the class label last (when ``@classLabel``
is true). ``?`` or ``NaN`` marks a missing value. Series given with time stamps
(``@timeStamps true``, values as ``(t, v)`` pairs) are not supported.
"""

import gzip
import os
import zlib

import numpy as np

__all__ = ["load_ts"]

_GZIP_MAGIC = b"\x1f\x8b"


def _decode(raw, source):
    """The text of a file's bytes ``raw``, decompressed when they start with the gzip magic."""
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{source} looks gzipped but cannot be decompressed: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source} is not UTF-8 text: {exc}") from exc


def _flag(value, key, where):
    """A header's ``true`` / ``false`` as a bool."""
    word = value.split()[0].lower() if value.split() else ""
    if word not in ("true", "false"):
        raise ValueError(f"{where}: @{key} must be 'true' or 'false', got {value!r}.")
    return word == "true"


def _parse_header(lines, source):
    """``(header, index of the first data line, comments)``; ``header`` maps the
    lower-case keys to their raw values."""
    header, comments = {}, []
    for i, raw in enumerate(lines):
        line = raw.strip()
        where = f"{source}, line {i + 1}"
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        if not line.startswith("@"):
            raise ValueError(
                f"{where}: expected a header line starting with '@' or a comment starting "
                f"with '#' before @data, got {line[:40]!r}."
            )
        key, _, value = line[1:].partition(" ")
        key = key.lower()
        if key == "data":
            return header, i + 1, comments
        header[key] = value.strip()
    raise ValueError(f"{source}: no @data line (is this a .ts file?).")


def _parse_values(text, where, d):
    """One dimension's comma-separated values as a float64 array (``?``: NaN)."""
    values = []
    for field in text.split(","):
        field = field.strip()
        try:
            values.append(np.nan if field == "?" else float(field))
        except ValueError:
            what = "an empty value" if not field else f"{field[:30]!r}, not a number"
            raise ValueError(f"{where}: dimension {d + 1} holds {what}.") from None
    return np.array(values, dtype=np.float64)


def _parse_ts(text, source):
    """``(X, y, comments)`` from the text of a ``.ts`` file; see :func:`load_ts`."""
    lines = text.splitlines()
    header, start, comments = _parse_header(lines, source)
    where = f"{source}, header"
    if "timestamps" in header and _flag(header["timestamps"], "timeStamps", where):
        raise ValueError(f"{where}: time-stamped series (@timeStamps true) are not supported.")
    labelled, labels = False, None
    if "classlabel" in header:
        labelled = _flag(header["classlabel"], "classLabel", where)
        if labelled:
            labels = header["classlabel"].split()[1:] or None
    if not labelled and "targetlabel" in header:
        labelled = _flag(header["targetlabel"], "targetLabel", where)
    n_dims = int(header["dimensions"]) if header.get("dimensions", "").isdigit() else None
    length = None
    if header.get("equallength", "").lower() == "true" and header.get("serieslength", "").isdigit():
        length = int(header["serieslength"])

    series, y = [], []
    for i in range(start, len(lines)):
        line = lines[i].strip()
        if not line:
            continue
        where = f"{source}, line {i + 1}"
        parts = line.split(":")
        if labelled:
            if len(parts) < 2:
                raise ValueError(f"{where}: expected values then ':' and the class label.")
            label = parts.pop().strip()
            if not label:
                raise ValueError(f"{where}: the class label is empty.")
            if labels is not None and label not in labels:
                raise ValueError(
                    f"{where}: class label {label!r} is not among those the header "
                    f"declares ({' '.join(labels)})."
                )
            y.append(label)
        dims = [_parse_values(p, where, d) for d, p in enumerate(parts)]
        if n_dims is not None and len(dims) != n_dims:
            raise ValueError(
                f"{where}: {len(dims)} dimension(s), but the header declares {n_dims}."
            )
        if series and len(dims) != series[0].shape[0]:
            raise ValueError(
                f"{where}: {len(dims)} dimension(s), but the first series has {series[0].shape[0]}."
            )
        sizes = {len(v) for v in dims}
        if len(sizes) > 1:
            raise ValueError(
                f"{where}: the dimensions differ in length ({', '.join(map(str, map(len, dims)))})."
            )
        if length is not None and len(dims[0]) != length:
            raise ValueError(
                f"{where}: {len(dims[0])} values per dimension, but the header declares "
                f"@seriesLength {length}."
            )
        series.append(np.stack(dims))
    if not series:
        raise ValueError(f"{source}: no series after @data.")
    if len({s.shape[1] for s in series}) == 1:
        X = np.stack(series)
    else:
        X = series
    return X, (np.array(y) if labelled else None), comments


def load_ts(path):
    """Read a time-series file in the ``.ts`` format of the UCR/UEA archive.

    The ``.ts`` format is the text format in which the UCR/UEA time-series
    classification archive (timeseriesclassification.com) distributes its data sets,
    one file per split (``<Name>_TRAIN.ts``, ``<Name>_TEST.ts``). Header lines start
    with ``@`` (``@problemName``, ``@univariate``, ``@dimensions``, ``@equalLength``,
    ``@seriesLength``, ``@classLabel true <labels>``, ...), comments with ``#``; after
    ``@data``, each line is one series: dimensions separated by ``:``, values by
    ``,``, the class label last. ``?`` or ``NaN`` marks a missing value (read as NaN).

    Values are returned as stored: the UCR univariate series are usually already
    z-normalised, the UEA multivariate ones usually not. Nothing is downloaded.

    Parameters
    ----------
    path : str or path-like
        The file, gzipped or not (recognised by its content, not by its name).

    Returns
    -------
    X : ndarray of shape (n_series, n_channels, length), float64, or list of ndarray
        The series, channels (the file's dimensions) first, as
        :class:`~sknet.NetworkClassifier` takes them. When the series differ in length,
        a list of ``n_series`` arrays of shape ``(n_channels, length_i)`` instead (pad
        or resample them to one length before fitting).
    y : ndarray of shape (n_series,) of str, or None
        The class labels as written in the file (strings, e.g. ``'1'``); None when the
        file has no labels (``@classLabel false``). For a regression file
        (``@targetLabel true``), the targets as strings: convert them with
        ``y.astype(float)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is malformed: no ``@data`` line, a value that is not a number, a
        label the header does not declare, a series whose number of dimensions or
        length differs from the header's or from the other series'. The message names
        the file and the line. Also for time-stamped series, which are not supported.

    See Also
    --------
    load_gunpoint : GunPoint, a UCR data set shipped with sknet.

    Examples
    --------
    A file of three series of two channels and four steps, labelled ``a`` or ``b``:

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from sknet.datasets import load_ts
    >>> text = '''# a tiny example
    ... @problemName Tiny
    ... @univariate false
    ... @dimensions 2
    ... @equalLength true
    ... @seriesLength 4
    ... @classLabel true a b
    ... @data
    ... 1,2,3,4:0,0,1,1:a
    ... 4,3,2,1:1,1,0,0:b
    ... 1,?,3,4:0,0,1,1:a
    ... '''
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "Tiny_TRAIN.ts"
    ...     _ = path.write_text(text)
    ...     X, y = load_ts(path)
    >>> X.shape, X.dtype
    ((3, 2, 4), dtype('float64'))
    >>> X[1]
    array([[4., 3., 2., 1.],
           [1., 1., 0., 0.]])
    >>> y
    array(['a', 'b', 'a'], dtype='<U1')
    >>> bool(np.isnan(X[2, 0, 1]))
    True
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like object, got {type(path).__name__}.")
    with open(path, "rb") as fh:
        raw = fh.read()
    X, y, _ = _parse_ts(_decode(raw, os.fspath(path)), os.fspath(path))
    return X, y
