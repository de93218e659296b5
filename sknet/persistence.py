"""Safe persistence: save and load fitted sknet estimators without pickle.

A model file is one zip archive with

* ``sknet.json``: a JSON header -- the format name and version, the estimator's class
  name, its state (constructor parameters and fitted attributes) encoded as JSON values,
  the network's architecture (layer class names and their ``get_config()``), a manifest
  of the arrays (dtype, shape, SHA-256 of each member), optional user metadata, and a
  SHA-256 checksum over the whole header;
* ``arrays/<key>.npy``: one ``.npy`` member per array, written and read with
  ``allow_pickle=False``.

Loading executes nothing from the file: there is no pickle, and class names are looked
up in fixed tables of sknet's own estimators and layers plus a few plain-data helper
classes (``LabelBinarizer``, the optimiser state holders), never imported by name.
The network is rebuilt from its layer configurations, so every array's shape is checked
against the architecture. Anything unexpected -- a file that is not a zip archive, a
truncated or altered member, a checksum mismatch, a missing or extra array, a wrong shape
or dtype, an object (pickled) array, an unknown class, a layer setting no estimator
builds (each layer's constructor and ``build`` refuse zero strides, a dropout rate of
1, input of the wrong rank ...) -- raises
``ValueError``. The size of the architecture is compared with the stored weights before
the network is allocated.

The checksum detects accidental corruption and naive tampering; it is not a signature
(anyone can recompute it). Safety against malicious files comes from what loading
refuses to do, not from the checksum.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import struct
import warnings
import zipfile
import zlib

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.preprocessing import LabelBinarizer

from ._network import Network
from ._solvers import AdamOptimizer, SGDOptimizer
from .kernels.losses import LOSSES

__all__ = ["load", "read_header", "save"]

#: value of the header's ``format`` entry
FORMAT_NAME = "sknet-model"
#: version of the layout written by :func:`save`; :func:`load` reads versions <= this
FORMAT_VERSION = 1

_HEADER = "sknet.json"
_ARRAY_DIR = "arrays/"
# a .npy header is at most 64 KiB (format 2.0 allows more; numpy never writes that here)
_NPY_HEADER_MAX = 65536 + 16
_HEADER_MAX_BYTES = 64 * 2**20
# dtype kinds stored as arrays: bool, signed/unsigned int, float, complex, str, bytes
_ARRAY_KINDS = set("biufcUS")

# what ``training_state=False`` leaves out (restored as fresh values on load)
_TRAINING_STATE = ("_optimizer", "_best_theta")

# Plain-data helper classes an estimator may hold; restored by filling ``__dict__``.
_SAFE_OBJECTS = {
    "LabelBinarizer": LabelBinarizer,
    "SGDOptimizer": SGDOptimizer,
    "AdamOptimizer": AdamOptimizer,
}


def _estimator_classes():
    """sknet's public estimator classes, by name (the whitelist for estimators)."""
    import sknet

    classes = {}
    for name in sknet.__all__:
        obj = getattr(sknet, name, None)
        if isinstance(obj, type) and issubclass(obj, BaseEstimator) \
                and obj.__module__.startswith("sknet."):
            classes[name] = obj
    return classes


def _loss_name(net):
    """The network's loss name (robust to the attribute being renamed ``loss_name``)."""
    for attr in ("loss_name", "loss"):
        value = getattr(net, attr, None)
        if isinstance(value, str):
            return value
    raise TypeError("The network does not record its loss name.")


def _layer_classes():
    """sknet's own layer classes, by name (the whitelist for layers).

    Every subclass of ``Layer`` defined in ``sknet._layers`` (dense, convolution,
    pooling, recurrent ...), found by walking the class hierarchy; nothing is imported
    by name.
    """
    from . import _convnet, _layers, _rnn  # noqa: F401  (make sure all layers are defined)

    classes, todo = {}, [_layers.Layer]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not _layers.Layer and cls.__module__.startswith("sknet._layers."):
            classes[cls.__name__] = cls
    return classes


# ======================================================================================
# encoding: Python / NumPy values -> JSON values + arrays
# ======================================================================================
class _Encoder:
    def __init__(self):
        self.arrays = {}  # key -> ndarray
        self._memo = {}  # id(ndarray) -> key, so shared arrays stay shared

    def array(self, a):
        a = np.asarray(a)
        key = self._memo.get(id(a))
        if key is None:
            key = f"a{len(self.arrays)}"
            self.arrays[key] = a
            self._memo[id(a)] = key
        return {"$type": "ndarray", "key": key}

    def value(self, v, where):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int) and not isinstance(v, np.integer):
            return int(v)
        if isinstance(v, float) and not isinstance(v, np.floating):
            return v if math.isfinite(v) else {"$type": "float", "value": repr(v)}
        if isinstance(v, np.generic):
            return self._scalar(v, where)
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, tuple):
            return {"$type": "tuple",
                    "items": [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, dict):
            return self._dict(v, where)
        if isinstance(v, np.ndarray):
            return self._ndarray(v, where)
        if isinstance(v, np.dtype):
            return {"$type": "dtype", "value": self._dtype_str(v, where)}
        if isinstance(v, np.random.RandomState):
            return {"$type": "RandomState", "state": self.value(v.get_state(), where)}
        if isinstance(v, Network):
            return self._network(v, where)
        if isinstance(v, BaseEstimator) and type(v).__name__ in _estimator_classes() \
                and _estimator_classes()[type(v).__name__] is type(v):
            return {"$type": "estimator", "class": type(v).__name__,
                    "state": self._dict(vars(v), where)}
        name = type(v).__name__
        if _SAFE_OBJECTS.get(name) is type(v):
            return {"$type": "object", "class": name, "state": self._dict(vars(v), where)}
        raise TypeError(
            f"sknet.save cannot store {where} of type {type(v).__module__}.{name} in the "
            "safe format (only numbers, strings, lists, dicts, NumPy arrays, sknet "
            "estimators and layers are supported); use pickle or joblib for this object."
        )

    def _scalar(self, v, where):
        dtype = self._dtype_str(v.dtype, where)
        if v.dtype.kind == "b":
            value = bool(v)
        elif v.dtype.kind in "iu":
            value = int(v)
        elif v.dtype.kind == "f":
            value = float(v)
            value = value if math.isfinite(value) else repr(value)
        elif v.dtype.kind in "US":
            value = v.item() if v.dtype.kind == "U" else v.item().decode("latin-1")
        else:
            raise TypeError(f"sknet.save cannot store {where}: NumPy scalar of dtype {dtype}.")
        return {"$type": "npscalar", "dtype": dtype, "value": value}

    @staticmethod
    def _dtype_str(dtype, where):
        if dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"sknet.save cannot store {where}: dtype {dtype} is not supported.")
        return dtype.str

    def _dict(self, d, where):
        if all(isinstance(k, str) for k in d) and "$type" not in d:
            return {k: self.value(v, f"{where}.{k}" if where else k) for k, v in d.items()}
        return {"$type": "dict",
                "items": [[self.value(k, f"{where} key"), self.value(v, f"{where}[{k!r}]")]
                          for k, v in d.items()]}

    def _ndarray(self, a, where):
        if a.dtype.kind == "O":
            items = a.ravel().tolist()
            for x in items:
                if not (x is None or isinstance(x, (bool, int, float, str))):
                    raise TypeError(
                        f"sknet.save cannot store {where}: an object array holding "
                        f"{type(x).__name__} values (only str, int, float, bool, None)."
                    )
            return {"$type": "objarray", "shape": list(a.shape),
                    "items": [self.value(x, where) for x in items]}
        self._dtype_str(a.dtype, where)
        return self.array(a)

    def _network(self, net, where):
        layers = _layer_classes()
        specs = []
        for i, layer in enumerate(net.layers):
            name = type(layer).__name__
            if layers.get(name) is not type(layer):
                raise TypeError(
                    f"sknet.save cannot store {where}: layer {i} is a {name}, which is not "
                    "one of sknet's layer classes."
                )
            specs.append({"class": name,
                          "config": self.value(layer.get_config(), f"{where}.layers[{i}]")})
        return {
            "$type": "Network",
            "loss": _loss_name(net),
            "input_shape": [int(s) for s in net.input_shape],
            "dtype": net.dtype.name,
            "layers": specs,
            "theta": self.array(net.theta),
        }


def _npy_bytes(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _canonical(header):
    body = {k: v for k, v in header.items() if k != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def save(estimator, file, *, metadata=None, training_state=True):
    """Save a fitted sknet estimator to one file, without pickle.

    Parameters
    ----------
    estimator : sknet estimator
        A fitted estimator whose class is exported by :mod:`sknet`.
    file : str, os.PathLike or binary file object
        Where to write (a zip archive; the extension ``.sknet`` is customary).
    metadata : dict, default=None
        JSON-compatible information to keep alongside the model (a description, a
        training recipe, scores); read it back with :func:`read_header`.
    training_state : bool, default=True
        Keep what only continued training needs: the optimiser's state (Adam's moment
        estimates, SGD's velocity) and the early-stopping snapshot of the weights.
        ``False`` makes the file about three times smaller (for shipping a model); the
        loaded model predicts identically, and ``partial_fit`` or ``warm_start`` restart
        the optimiser from scratch.

    Raises
    ------
    TypeError
        If the estimator is not an sknet estimator or holds a value the safe format cannot
        represent (use pickle or joblib for such models).
    ValueError
        If the estimator is not fitted.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import sknet
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    >>> clf = sknet.MLPClassifier((4,), max_iter=5, random_state=0).fit(X, [0, 1, 1, 0])
    >>> buf = io.BytesIO()
    >>> sknet.save(clf, buf)
    >>> clf2 = sknet.load(io.BytesIO(buf.getvalue()))
    >>> bool((clf2.predict_proba(X) == clf.predict_proba(X)).all())
    True
    """
    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(
            f"sknet.save stores sknet estimators only, got {type(estimator).__module__}."
            f"{name}. Known classes: {sorted(classes)}."
        )
    if not _is_fitted(estimator):
        raise ValueError(f"This {name} instance is not fitted yet; fit it before saving.")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}.")
        try:
            json.dumps(metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata must be JSON-compatible: {exc}") from None
    enc = _Encoder()
    state = dict(vars(estimator))
    if not training_state:
        for key in _TRAINING_STATE:
            state.pop(key, None)
    state = enc._dict(state, "")
    members = {key: _npy_bytes(a) for key, a in enc.arrays.items()}
    import sknet

    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "class": name,
        "versions": {"sknet": sknet.__version__, "scikit-learn": sklearn.__version__,
                     "numpy": np.__version__},
        "metadata": metadata if metadata is not None else {},
        "state": state,
        "arrays": {
            key: {"dtype": a.dtype.str, "shape": list(a.shape),
                  "sha256": hashlib.sha256(members[key]).hexdigest()}
            for key, a in enc.arrays.items()
        },
    }
    header["checksum"] = hashlib.sha256(_canonical(header)).hexdigest()
    text = json.dumps(header, sort_keys=True, indent=1, allow_nan=False).encode("utf-8")
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_HEADER, text)
        for key, data in members.items():
            zf.writestr(f"{_ARRAY_DIR}{key}.npy", data)


def _is_fitted(est):
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(est)
    except Exception:  # NotFittedError or an estimator without fitted attributes
        return False
    return True


# ======================================================================================
# decoding
# ======================================================================================
def _fail(msg):
    raise ValueError(f"Cannot load sknet model: {msg}")


def _reject_constant(name):
    _fail(f"the header contains the non-JSON constant {name}.")


class _Decoder:
    def __init__(self, arrays):
        self.arrays = arrays

    def value(self, v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            _fail(f"unexpected JSON value of type {type(v).__name__}.")
        if "$type" not in v:
            return {k: self.value(x) for k, x in v.items()}
        kind = v["$type"]
        handler = self._HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            _fail(f"unknown value type {kind!r}.")
        try:
            return handler(self, v)
        except (KeyError, TypeError, IndexError) as exc:
            _fail(f"malformed {kind!r} entry ({type(exc).__name__}: {exc}).")

    def _float(self, v):
        value = float(v["value"])
        if math.isfinite(value):
            _fail("a tagged float must be inf, -inf or nan.")
        return value

    def _tuple(self, v):
        return tuple(self.value(x) for x in v["items"])

    def _dict(self, v):
        out = {}
        for k, x in v["items"]:
            k = self.value(k)
            if isinstance(k, (list, dict)):
                _fail("a dict key must be a scalar.")
            out[k] = self.value(x)
        return out

    def _dtype(self, v):
        return _checked_dtype(v["value"])

    def _npscalar(self, v):
        dtype = _checked_dtype(v["dtype"])
        value = v["value"]
        if dtype.kind == "f" and isinstance(value, str):
            value = float(value)
        if dtype.kind == "S":
            value = value.encode("latin-1")
        return dtype.type(value)

    def _ndarray(self, v):
        key = v["key"]
        if key not in self.arrays:
            _fail(f"the header refers to array {key!r}, which the manifest does not list.")
        return self.arrays[key]

    def _objarray(self, v):
        items = [self.value(x) for x in v["items"]]
        for x in items:
            if not (x is None or isinstance(x, (bool, int, float, str))):
                _fail("object arrays may only hold str, int, float, bool or None.")
        shape = tuple(_shape(v["shape"]))
        out = np.empty(len(items), dtype=object)
        out[:] = items
        if int(np.prod(shape)) != len(items):
            _fail(f"object array of shape {shape} has {len(items)} items.")
        return out.reshape(shape)

    def _random_state(self, v):
        state = self.value(v["state"])
        rs = np.random.RandomState()
        try:
            rs.set_state(state)
        except (TypeError, ValueError) as exc:
            _fail(f"invalid RandomState state ({exc}).")
        return rs

    def _object(self, v):
        cls = _SAFE_OBJECTS.get(v["class"])
        if cls is None:
            _fail(f"class {v['class']!r} is not one of {sorted(_SAFE_OBJECTS)}.")
        return _from_state(cls, self.value(v["state"]))

    def _estimator(self, v):
        return _build_estimator(v["class"], self.value(v["state"]))

    def _network(self, v):
        layer_classes = _layer_classes()
        layers = []
        for i, spec in enumerate(v["layers"]):
            cls = layer_classes.get(spec["class"])
            if cls is None:
                _fail(f"layer {i} has unknown class {spec['class']!r}; known layers: "
                      f"{sorted(layer_classes)}.")
            config = self.value(spec["config"])
            if not isinstance(config, dict):
                _fail(f"layer {i} config is not a dict.")
            try:
                layers.append(cls(**config))  # the layer validates its own settings
            except (TypeError, ValueError) as exc:
                _fail(f"invalid configuration {config!r} for layer {i} ({spec['class']}): "
                      f"{exc}")
        dtype = _checked_dtype(v["dtype"])
        if dtype not in (np.float32, np.float64):
            _fail(f"network dtype must be float32 or float64, got {dtype}.")
        if not isinstance(v["loss"], str) or v["loss"] not in LOSSES:
            _fail(f"unknown loss {v['loss']!r}.")
        input_shape = _shape(v["input_shape"])
        theta = self.value(v["theta"])
        # the architecture's size, before allocating anything for it: a forged layer
        # size must not make loading allocate more than the file holds
        n_params = _count_parameters(layers, input_shape, dtype)
        if not isinstance(theta, np.ndarray) or theta.shape != (n_params,) \
                or theta.dtype != dtype:
            got = (theta.shape, theta.dtype) if isinstance(theta, np.ndarray) else type(theta)
            _fail(f"the network needs a parameter vector of shape {(n_params,)} and dtype "
                  f"{dtype}, the file holds {got}.")
        try:
            net = Network(layers, v["loss"]).build(input_shape, dtype)
        except (ValueError, TypeError, ArithmeticError) as exc:
            _fail(f"the layers do not fit together: {exc}")
        net.theta[...] = theta
        return net

    _HANDLERS = {
        "float": _float,
        "tuple": _tuple,
        "dict": _dict,
        "dtype": _dtype,
        "npscalar": _npscalar,
        "ndarray": _ndarray,
        "objarray": _objarray,
        "RandomState": _random_state,
        "object": _object,
        "estimator": _estimator,
        "Network": _network,
    }


def _count_parameters(layers, input_shape, dtype):
    """Number of parameters of ``layers`` on ``input_shape``; each layer checks the shape
    it gets (``build``). Nothing is allocated."""
    shape = input_shape
    n = 0
    for layer in layers:
        try:
            shape = layer.build(shape, dtype)
            specs = layer.param_specs()
        except (ValueError, TypeError, ArithmeticError) as exc:
            _fail(f"the layers do not fit together: {exc}")
        n += sum(math.prod(pshape) for _, pshape, _ in specs)
    return n


def _checked_dtype(s):
    try:
        dtype = np.dtype(str(s))
    except TypeError:
        _fail(f"invalid dtype {s!r}.")
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        _fail(f"dtype {dtype} is not allowed (no object, structured or void arrays).")
    return dtype


def _shape(s):
    if not isinstance(s, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                          and d >= 0 for d in s):
        _fail(f"invalid shape {s!r}.")
    return tuple(s)


def _from_state(cls, state):
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        _fail(f"the state of a {cls.__name__} must be a dict with string keys.")
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _build_estimator(name, state):
    classes = _estimator_classes()
    cls = classes.get(name)
    if cls is None:
        _fail(f"{name!r} is not an sknet estimator class; known: {sorted(classes)}.")
    est = _from_state(cls, state)
    missing = [p for p in cls._get_param_names() if p not in state]
    if missing:
        _fail(f"the {name} state lacks the parameters {missing}.")
    try:
        est._validate_params()
    except (ValueError, TypeError) as exc:
        _fail(f"invalid {name} parameters: {exc}")
    return est


@contextlib.contextmanager
def _archive_errors():
    """Turn what the zip reader raises on a damaged archive (a flipped byte can give
    ``negative seek value``, ``zip file version 23.5``, struct or zlib errors ...) into
    this module's clear ValueError; our own messages and missing files pass through."""
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as exc:
        if str(exc).startswith("Cannot load sknet model"):
            raise
        _fail(f"the archive is corrupted ({exc}).")
    except (zipfile.BadZipFile, EOFError, zlib.error, struct.error, OSError, RuntimeError,
            NotImplementedError, OverflowError, KeyError) as exc:
        _fail(f"the archive is corrupted ({type(exc).__name__}: {exc}).")


def _open_zip(file):
    try:
        return zipfile.ZipFile(file, "r")
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        _fail(f"not an sknet model file (not a readable zip archive: {exc}).")
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
            raise
        _fail(f"not an sknet model file ({exc}).")


def _read_member(zf, name, limit):
    info = zf.getinfo(name)
    if info.file_size > limit:
        _fail(f"member {name!r} is {info.file_size} bytes, larger than its declared "
              f"content allows ({limit}).")
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, RuntimeError,
            NotImplementedError) as exc:
        _fail(f"member {name!r} is corrupted or truncated ({exc}).")
    if len(data) != info.file_size:
        _fail(f"member {name!r} is truncated.")
    return data


def _read_verified_header(zf):
    names = zf.namelist()
    if _HEADER not in names:
        _fail(f"not an sknet model file (no {_HEADER} member).")
    if len(set(names)) != len(names):
        _fail("the archive has duplicate members.")
    raw = _read_member(zf, _HEADER, _HEADER_MAX_BYTES)
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        _fail(f"the header is not valid JSON ({exc}).")
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        _fail(f"not an sknet model file (format is not {FORMAT_NAME!r}).")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        _fail(f"invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        _fail(f"format_version {version} is newer than this sknet reads ({FORMAT_VERSION}); "
              "upgrade sknet.")
    checksum = header.get("checksum")
    try:
        expected = hashlib.sha256(_canonical(header)).hexdigest()
    except ValueError as exc:
        _fail(f"the header holds non-JSON values ({exc}).")
    if checksum != expected:
        _fail("checksum mismatch: the file was altered or corrupted.")
    for key in ("class", "state", "arrays", "metadata", "versions"):
        if key not in header:
            _fail(f"the header lacks the {key!r} entry.")
    if not isinstance(header["arrays"], dict) or not isinstance(header["state"], dict):
        _fail("malformed header ('arrays' and 'state' must be objects).")
    expected_names = {_HEADER} | {f"{_ARRAY_DIR}{k}.npy" for k in header["arrays"]}
    extra = sorted(set(names) - expected_names)
    if extra:
        _fail(f"unexpected members in the archive: {extra}.")
    missing = sorted(expected_names - set(names))
    if missing:
        _fail(f"missing arrays: {missing}.")
    return header


def _read_arrays(zf, manifest):
    arrays = {}
    for key, spec in manifest.items():
        name = f"{_ARRAY_DIR}{key}.npy"
        try:
            dtype = _checked_dtype(spec["dtype"])
            shape = _shape(spec["shape"])
            digest = spec["sha256"]
        except (KeyError, TypeError):
            _fail(f"malformed manifest entry for array {key!r}.")
        limit = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize + _NPY_HEADER_MAX
        data = _read_member(zf, name, limit)
        if hashlib.sha256(data).hexdigest() != digest:
            _fail(f"array {key!r} does not match its checksum: altered or corrupted.")
        try:
            a = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            _fail(f"array {key!r} cannot be read without pickle ({exc}); refusing it.")
        except (OSError, EOFError) as exc:
            _fail(f"array {key!r} is not a valid .npy member ({exc}).")
        if a.dtype != dtype or a.shape != shape:
            _fail(f"array {key!r} has dtype {a.dtype} and shape {a.shape}, the manifest "
                  f"says {dtype} and {shape}.")
        arrays[key] = a
    return arrays


def read_header(file):
    """Read and verify a model file's header without building the estimator.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        A file written by :func:`save`.

    Returns
    -------
    header : dict
        The verified header: ``format``, ``format_version``, ``class``, ``versions``
        (of sknet, scikit-learn and NumPy that wrote it), ``metadata``, ``state``,
        ``arrays`` (the manifest) and ``checksum``.

    Raises
    ------
    ValueError
        If the file is not an sknet model file, or was altered or corrupted.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import sknet
    >>> from sknet.persistence import read_header
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> reg = sknet.MLPRegressor(hidden_layer_sizes=(3,), max_iter=5).fit(X, [0, 1, 2])
    >>> buf = io.BytesIO()
    >>> sknet.save(reg, buf, metadata={"note": "toy"})
    >>> header = read_header(io.BytesIO(buf.getvalue()))
    >>> header["class"], header["format_version"], header["metadata"]
    ('MLPRegressor', 1, {'note': 'toy'})
    """
    file = _as_file(file)
    with _archive_errors(), _open_zip(file) as zf:
        return _read_verified_header(zf)


def _as_file(file):
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    if not hasattr(file, "read"):
        raise TypeError(f"file must be a path or a binary file object, got "
                        f"{type(file).__name__}.")
    return file


def load(file):
    """Load an estimator saved by :func:`save`; nothing in the file is executed.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        A file written by :func:`save`.

    Returns
    -------
    estimator : sknet estimator
        The fitted estimator; it predicts bit-identically to the one saved.

    Raises
    ------
    ValueError
        If the file is not an sknet model file, is truncated, was altered (checksum,
        missing, extra or reshaped arrays), holds a pickled (object) array or names a
        class outside sknet's fixed whitelist.

    Warns
    -----
    InconsistentVersionWarning
        When the file was written with another version of scikit-learn (the state of
        helper objects such as ``LabelBinarizer`` may differ between versions).

    See Also
    --------
    save : Write a model file.
    read_header : Inspect a model file without loading it.

    Examples
    --------
    >>> import sknet
    >>> clf = sknet.pretrained.load("mnist_mlp")  # reads a file saved by sknet.save
    >>> import io
    >>> buf = io.BytesIO()
    >>> sknet.save(clf, buf)
    >>> data = bytearray(buf.getvalue())
    >>> data[len(data) // 2] ^= 1  # one flipped bit
    >>> sknet.load(io.BytesIO(bytes(data)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Cannot load sknet model: ...
    """
    file = _as_file(file)
    with _archive_errors(), _open_zip(file) as zf:
        header = _read_verified_header(zf)
        arrays = _read_arrays(zf, header["arrays"])
    versions = header["versions"] if isinstance(header["versions"], dict) else {}
    written = versions.get("scikit-learn")
    if written is not None and written != sklearn.__version__:
        warnings.warn(
            InconsistentVersionWarning(estimator_name=str(header["class"]),
                                       current_sklearn_version=sklearn.__version__,
                                       original_sklearn_version=str(written)),
            stacklevel=2,
        )
    decoder = _Decoder(arrays)
    try:
        state = decoder.value(header["state"])
    except RecursionError:
        _fail("the header is nested too deeply.")
    est = _build_estimator(header["class"], state)
    if not _is_fitted(est):
        _fail(f"the saved {header['class']} is not fitted.")
    if hasattr(est, "_network") and not hasattr(est, "_best_theta"):
        est._best_theta = est._network.theta.copy()  # saved with training_state=False
    return est
