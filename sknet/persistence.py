"""Safe persistence: save and load fitted sknet estimators without pickle.

A model file is one zip archive with

* ``sknet.json``: a JSON header -- the format name and version, the estimator's class
  name, its constructor ``params``, its fitted ``state``, a manifest of the arrays
  (dtype, shape, SHA-256 of each member), optional user ``metadata``, the library
  ``versions`` that wrote it, and a SHA-256 checksum over the whole header;
* ``arrays/<key>.npy``: one little-endian ``.npy`` member per array, written and read
  with ``allow_pickle=False``.

The state is declared, not ``vars(estimator)``: each estimator class lists the fitted
attributes it saves in ``_saved_state`` (attribute -> kind; merged along the class
hierarchy: the family base, the classifier mixin, the ConvNet family), and each layer
saves its constructor arguments (``get_config()``). :data:`STATE_KINDS` says, per kind,
how a value is written and what ``load`` accepts. Renaming a private attribute is
therefore a format change only if its declaration changes, and then
:data:`FORMAT_VERSION` goes up. Adding a constructor parameter is not a format change
(earlier files load with its default); removing or renaming one is.

What :func:`load` guarantees
----------------------------
* Nothing from the file is executed: no pickle (``.npy`` members are read with
  ``allow_pickle=False``), no import by name. Class names are looked up in fixed tables
  of sknet's six network estimators, the two transfer-learning meta-estimators
  (``FineTuner``, ``NetworkFeatures``, which wrap them), its layer classes and its two
  optimisers.
* Memory stays bounded by the file: the header is at most 16 MiB and 200,000 JSON
  objects or lists, counted before it is parsed; each member is streamed through its
  checksum into one buffer of the size the archive declares, and refused as soon as it
  outgrows it, or when it inflates more than 32 times its compressed size (past 16 MiB:
  trained weights barely compress, a zip bomb inflates a thousandfold); each ``.npy``
  member's own header is checked against the manifest before its data is used.
* The estimator is rebuilt from its constructor parameters (validated as ``fit``
  validates them) and exactly its declared state: an unknown parameter or state entry,
  a missing required state entry, a value of the wrong type, an array of the wrong
  dtype, shape or byte order is refused. A constructor parameter the file lacks takes
  its default: the file was written before sknet added that parameter, and a new
  parameter's default keeps the earlier behaviour, so the model predicts as it did.
  Only declared names are set, as instance attributes, never over a method; a declared
  name the class computes as a property is compared with the file, not set.
* The state is consistent: the network is rebuilt from its layers' configurations (each
  layer validates its own settings), its size is compared with the stored weights
  before anything is allocated, and ``input_shape_``, ``n_features_in_``,
  ``n_outputs_``, ``out_activation_``, ``classes_``, the loss, the frozen-layer count
  and the optimiser's moment sizes must agree with it. A file that loads is a model that
  predicts and trains; anything else raises ``ValueError`` naming the problem.
  :func:`save` runs the same checks on what it writes, so a file it writes loads.

What it does not guarantee
--------------------------
The checksum detects accidental corruption and naive tampering; it is not a signature
(anyone can recompute it), so it says nothing about who wrote a file. A well-formed
file with consistent but chosen weights loads and predicts whatever those weights
compute; safety against malicious files comes from what loading refuses to do, not from
the checksum. ``load`` does not check that the constructor parameters would build the
saved architecture (a later ``fit`` builds a fresh network from them), and the user
``metadata`` is only required to be JSON. Files of an older format version are refused
(see :data:`FORMAT_VERSION`).
"""

import contextlib
import hashlib
import importlib.metadata
import inspect
import io
import json
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import InconsistentVersionWarning, NotFittedError
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from . import layers as specs
from ._base import register_portable_state
from ._composable import NetworkClassifier, NetworkRegressor
from ._convnet import ConvNetClassifier, ConvNetRegressor
from ._layers import LAYER_CLASSES
from ._mlp import MLPClassifier, MLPRegressor
from ._network import Network
from ._rnn import RNNClassifier, RNNRegressor
from ._solvers import AdamOptimizer, SGDOptimizer
from .kernels.losses import LOSSES

__all__ = ["load", "read_header", "save"]

#: value of the header's ``format`` entry
FORMAT_NAME = "sknet-model"
#: version of the layout written by :func:`save`, the only one :func:`load` reads.
#: 1: ``vars(estimator)`` wholesale (sknet 0.1.0 before declared state; refused).
#: 2: constructor ``params`` + declared ``state``; little-endian arrays.
FORMAT_VERSION = 2

_HEADER = "sknet.json"
_HEADER_KEYS = {
    "format",
    "format_version",
    "class",
    "versions",
    "metadata",
    "params",
    "state",
    "arrays",
    "checksum",
}
_ARRAY_DIR = "arrays/"
# a .npy header is at most 64 KiB (format 2.0 allows more; numpy never writes that here)
_NPY_HEADER_MAX = 65536 + 16
_HEADER_MAX_BYTES = 16 * 2**20
#: JSON containers ('{' or '[') a header may hold; counted on the raw bytes before
#: parsing, so a header of millions of nested empty objects is refused cheaply
_HEADER_MAX_CONTAINERS = 200_000
#: a member inflating to more than this ...
_INFLATE_FREE_BYTES = 16 * 2**20
#: ... must not inflate more than this many times its compressed size: trained weights
#: barely compress (about 1.1x), a zip bomb inflates about 1000x
_MAX_INFLATE_RATIO = 32
#: bytes read at a time while streaming a member through its checksum
_READ_CHUNK = 2**20
# dtype kinds stored as arrays: bool, signed/unsigned int, float, complex, str, bytes
_ARRAY_KINDS = set("biufcUS")

#: the estimator classes a model file may name
_ESTIMATORS = {
    cls.__name__: cls
    for cls in (
        MLPClassifier,
        MLPRegressor,
        RNNClassifier,
        RNNRegressor,
        ConvNetClassifier,
        ConvNetRegressor,
        NetworkClassifier,
        NetworkRegressor,
    )
}
#: the public layer specifications a NetworkClassifier's ``layers`` may hold
_SPECS = {
    name: getattr(specs, name)
    for name in specs.__all__
    if isinstance(getattr(specs, name), type) and name != "LayerSpec"
}
#: the layer classes a network may hold (a new layer type is one entry there)
_LAYERS = LAYER_CLASSES
#: optimisers: class, constructor arguments, scalar state (-> kind), moment arrays;
#: rebuilt as ``cls(size, dtype, **constructor arguments)``, then the state is filled in
_OPTIMIZERS = {
    "SGDOptimizer": (
        SGDOptimizer,
        ("learning_rate_init", "lr_schedule", "momentum", "nesterov", "power_t"),
        {"learning_rate": "float"},
        ("velocity",),
    ),
    "AdamOptimizer": (
        AdamOptimizer,
        ("learning_rate_init", "beta_1", "beta_2", "epsilon"),
        {"learning_rate": "float", "t": "count"},
        ("m", "v"),
    ),
}
_Y_TYPES = {"binary", "multiclass", "multilabel-indicator"}
#: Meta-estimators wrapping a network estimator that a model file may name (their
#: classes declare their fitted state in ``_saved_state`` like the estimators do).
#: sknet.transfer sits above this module (it loads model files), so they are found by
#: qualified name among the loaded subclasses of BaseEstimator, never imported here.
_META_ESTIMATORS = {"sknet.transfer.FineTuner", "sknet.transfer.NetworkFeatures"}


def _meta_classes():
    """``{name: class}`` of the loaded classes listed in :data:`_META_ESTIMATORS`."""
    found, todo = {}, [BaseEstimator]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if f"{cls.__module__}.{cls.__qualname__}" in _META_ESTIMATORS:
            found[cls.__name__] = cls
    return found


def _sknet_version():
    try:
        return importlib.metadata.version("sknet")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


# ======================================================================================
# generic values (constructor parameters, plain fields): Python / NumPy -> JSON + arrays
# ======================================================================================
class _Encoder:
    def __init__(self, training_state=True):
        self.training_state = training_state
        self.arrays = {}  # key -> little-endian ndarray
        self._memo = {}  # id(ndarray) -> key, so shared arrays stay shared

    def array(self, a):
        key = self._memo.get(id(a))
        if key is None:
            key = f"a{len(self.arrays)}"
            self.arrays[key] = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
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
            return {
                "$type": "tuple",
                "items": [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)],
            }
        if isinstance(v, dict):
            return self._dict(v, where)
        if isinstance(v, np.ndarray):
            return self._ndarray(v, where)
        if isinstance(v, np.dtype):
            return {"$type": "dtype", "value": self._dtype_str(v, where)}
        if isinstance(v, np.random.RandomState):
            return {"$type": "RandomState", "state": self.value(v.get_state(), where)}
        name = type(v).__name__
        if _SPECS.get(name) is type(v):  # a layer specification (NetworkClassifier's layers)
            params = v.get_params(deep=False)
            return {
                "$type": "layerspec",
                "class": name,
                "params": {k: self.value(x, f"{where}.{k}") for k, x in params.items()},
            }
        if _ESTIMATORS.get(name) is type(v):  # e.g. the network a meta-estimator wraps
            params, state = _encode_estimator(v, self)
            return {"$type": "estimator", "class": name, "params": params, "state": state}
        raise TypeError(
            f"sknet.save cannot store {where} of type {type(v).__module__}.{name} in the "
            "safe format (only numbers, strings, lists, dicts, NumPy arrays, RandomState "
            "and sknet estimators are supported); use pickle or joblib for this object."
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
        return dtype.newbyteorder("<").str

    def _dict(self, d, where):
        if all(isinstance(k, str) for k in d) and "$type" not in d:
            return {k: self.value(v, f"{where}.{k}" if where else k) for k, v in d.items()}
        return {
            "$type": "dict",
            "items": [
                [self.value(k, f"{where} key"), self.value(v, f"{where}[{k!r}]")]
                for k, v in d.items()
            ],
        }

    def _ndarray(self, a, where):
        if a.dtype.kind == "O":
            items = a.ravel().tolist()
            for x in items:
                if not (x is None or isinstance(x, (bool, int, float, str))):
                    raise TypeError(
                        f"sknet.save cannot store {where}: an object array holding "
                        f"{type(x).__name__} values (only str, int, float, bool, None)."
                    )
            return {
                "$type": "objarray",
                "shape": list(a.shape),
                "items": [self.value(x, where) for x in items],
            }
        self._dtype_str(a.dtype, where)
        return self.array(a)


def _npy_bytes(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def _canonical(header):
    body = {k: v for k, v in header.items() if k != "checksum"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _fail(msg):
    raise ValueError(f"Cannot load sknet model: {msg}")


def _reject_constant(name):
    _fail(f"the header contains the non-JSON constant {name}.")


class _Decoder:
    """JSON values + the file's arrays -> Python / NumPy values (generic, unchecked)."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.used = set()  # keys of the arrays the header refers to

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
        self.used.add(key)
        return self.arrays[key]

    def _objarray(self, v):
        items = [self.value(x) for x in v["items"]]
        for x in items:
            if not (x is None or isinstance(x, (bool, int, float, str))):
                _fail("object arrays may only hold str, int, float, bool or None.")
        shape = tuple(_shape(v["shape"]))
        if math.prod(shape) != len(items):  # Python ints: no overflow
            _fail(f"object array of shape {shape} has {len(items)} items.")
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(shape)

    def _random_state(self, v):
        state = self.value(v["state"])
        rs = np.random.RandomState()
        try:
            rs.set_state(state)
        except (TypeError, ValueError) as exc:
            _fail(f"invalid RandomState state ({exc}).")
        return rs

    def _layerspec(self, v):
        if set(v) != {"$type", "class", "params"} or not isinstance(v["params"], dict):
            _fail("a layer specification entry must have exactly 'class' and 'params'.")
        cls = _SPECS.get(v["class"]) if isinstance(v["class"], str) else None
        if cls is None:
            _fail(f"unknown layer specification {v['class']!r:.80}; known: {sorted(_SPECS)}.")
        params = {k: self.value(x) for k, x in v["params"].items()}
        expected = set(inspect.signature(cls.__init__).parameters) - {"self"}
        if not set(params) <= expected:
            _fail(f"{v['class']} has no parameters {sorted(set(params) - expected)}.")
        try:
            return cls(**params)  # values are checked when a fit builds the layer
        except TypeError as exc:
            _fail(f"invalid parameters for {v['class']}: {exc}")

    def _estimator(self, v):
        if set(v) != {"$type", "class", "params", "state"}:
            _fail("an estimator entry must have exactly 'class', 'params' and 'state'.")
        return _decode_estimator(v["class"], v["params"], v["state"], self, nested=True)

    _HANDLERS = {
        "float": _float,
        "tuple": _tuple,
        "dict": _dict,
        "dtype": _dtype,
        "npscalar": _npscalar,
        "ndarray": _ndarray,
        "objarray": _objarray,
        "RandomState": _random_state,
        "estimator": _estimator,
        "layerspec": _layerspec,
    }


def _checked_dtype(s):
    try:
        dtype = np.dtype(str(s))
    except TypeError:
        _fail(f"invalid dtype {s!r}.")
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        _fail(f"dtype {dtype} is not allowed (no object, structured or void arrays).")
    return dtype


def _shape(s):
    if not isinstance(s, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s
    ):
        _fail(f"invalid shape {s!r}.")
    return tuple(s)


# ======================================================================================
# declared state: kinds
# ======================================================================================
class _Kind(NamedTuple):
    """How one kind of fitted state is written and what ``load`` accepts."""

    encode: Callable  # (value, encoder, where) -> JSON value
    decode: Callable  # (JSON value, decoder, network, where) -> checked value
    training: bool = False  # left out by ``save(..., training_state=False)``
    default: Callable = None  # (network) -> value set when the entry is absent


def _generic(v, enc, where):
    return enc.value(v, where)


def _bad(where, expected, value):
    shown = (
        f"an array of shape {value.shape} and dtype {value.dtype}"
        if isinstance(value, np.ndarray)
        else repr(value)
    )
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    _fail(f"{where} must be {expected}, the file holds {shown}.")


def _is_int(v):
    return isinstance(v, Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return isinstance(v, Real) and not isinstance(v, (bool, np.bool_))


def _enc_count(v, enc, where):
    return int(v) if _is_int(v) else enc.value(v, where)


def _dec_count(raw, dec, net, where):
    v = dec.value(raw)
    if not _is_int(v) or v < 0:
        _bad(where, "an integer >= 0", v)
    return int(v)


def _enc_float(v, enc, where):
    return enc.value(float(v) if isinstance(v, Real) and not isinstance(v, bool) else v, where)


def _dec_float(raw, dec, net, where):
    v = dec.value(raw)
    if not _is_real(v):
        _bad(where, "a number", v)
    return float(v)


def _dec_float_or_none(raw, dec, net, where):
    return None if raw is None else _dec_float(raw, dec, net, where)


def _enc_floats(v, enc, where):
    return (
        enc.value([float(x) if isinstance(x, Real) else x for x in v], where)
        if isinstance(v, list)
        else enc.value(v, where)
    )


def _dec_floats(raw, dec, net, where):
    v = dec.value(raw)
    if not isinstance(v, list) or not all(_is_real(x) for x in v):
        _bad(where, "a list of numbers", v)
    return [float(x) for x in v]


def _dec_floats_or_none(raw, dec, net, where):
    return None if raw is None else _dec_floats(raw, dec, net, where)


def _dec_str(raw, dec, net, where):
    if not isinstance(raw, str):
        _bad(where, "a string", raw)
    return raw


def _enc_shape(v, enc, where):
    return [int(s) for s in v]


def _dec_shape(raw, dec, net, where):
    if not isinstance(raw, list) or not raw or not all(_is_int(s) and s >= 1 for s in raw):
        _bad(where, "a list of positive integers (a per-sample shape)", raw)
    return tuple(raw)


def _dec_names(raw, dec, net, where):
    v = dec.value(raw)
    if (
        not isinstance(v, np.ndarray)
        or v.ndim != 1
        or v.dtype != object
        or not all(isinstance(x, str) for x in v)
    ):
        _bad(where, "a 1-D object array of strings", v)
    return v


def _dec_classes(raw, dec, net, where):
    v = dec.value(raw)
    if not isinstance(v, np.ndarray) or v.ndim != 1 or not len(v) or v.dtype.kind not in "biufUSO":
        _bad(where, "a non-empty 1-D array of labels", v)
    if len(set(v.tolist())) != len(v):
        _fail(f"{where} repeats a label: {v!r}.")
    return v


def _enc_label_binarizer(lb, enc, where):
    if (lb.neg_label, lb.pos_label, lb.sparse_output) != (0, 1, False):
        raise TypeError(
            f"sknet.save cannot store {where}: a LabelBinarizer with "
            "non-default settings (sknet estimators never build one)."
        )
    return {"y_type_": lb.y_type_, "sparse_input_": bool(lb.sparse_input_)}


def _dec_label_binarizer(raw, dec, net, where):
    """A default ``LabelBinarizer`` in the fitted state; its ``classes_`` is the
    estimator's (set by the consistency check)."""
    if not isinstance(raw, dict) or set(raw) != {"y_type_", "sparse_input_"}:
        _bad(where, "an object with the entries y_type_ and sparse_input_", raw)
    if raw["y_type_"] not in _Y_TYPES:
        _bad(f"{where}.y_type_", f"one of {sorted(_Y_TYPES)}", raw["y_type_"])
    if not isinstance(raw["sparse_input_"], bool):
        _bad(f"{where}.sparse_input_", "true or false", raw["sparse_input_"])
    lb = LabelBinarizer()
    lb.y_type_, lb.sparse_input_ = raw["y_type_"], raw["sparse_input_"]
    return lb


def _params_vector(v, net, where):
    """A copy of ``v`` if it is a 1-D array of the network's dtype (the caller checks its
    length against the network)."""
    if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype != net.dtype:
        _bad(where, f"a 1-D {net.dtype} array", v)
    return np.array(v)  # a copy: never shared with another entry


def _enc_optimizer(opt, enc, where):
    name = type(opt).__name__
    if _OPTIMIZERS.get(name, (None,))[0] is not type(opt):
        raise TypeError(f"sknet.save cannot store {where} of type {name}.")
    _, settings, state, arrays = _OPTIMIZERS[name]
    out = {"class": name}
    out.update({k: enc.value(getattr(opt, k), f"{where}.{k}") for k in settings})
    out.update(
        {
            k: STATE_KINDS[kind].encode(getattr(opt, k), enc, f"{where}.{k}")
            for k, kind in state.items()
        }
    )
    out.update({k: enc.array(getattr(opt, k)) for k in arrays})
    return out


def _dec_optimizer(raw, dec, net, where):
    """The optimiser, rebuilt through its constructor; moment sizes are compared with the
    trainable parameters by the consistency check."""
    name = raw.get("class") if isinstance(raw, dict) else None
    if name not in _OPTIMIZERS:
        _fail(f"{where} has class {name!r}, which is not one of {sorted(_OPTIMIZERS)}.")
    cls, settings, state, arrays = _OPTIMIZERS[name]
    expected = {"class", *settings, *state, *arrays}
    if set(raw) != expected:
        _fail(
            f"{where} ({name}) must have exactly the entries {sorted(expected)}, the file "
            f"has {sorted(raw)}."
        )
    args = {k: dec.value(raw[k]) for k in settings}
    for k, v in args.items():
        if k == "lr_schedule":
            if not isinstance(v, str) or v not in ("constant", "invscaling", "adaptive"):
                _bad(f"{where}.{k}", "'constant', 'invscaling' or 'adaptive'", v)
        elif k == "nesterov":
            if not isinstance(v, (bool, np.bool_)):
                _bad(f"{where}.{k}", "true or false", v)
        elif not _is_real(v) or not math.isfinite(v) or v < 0:
            _bad(f"{where}.{k}", "a finite number >= 0", v)
    moments = {k: _params_vector(dec.value(raw[k]), net, f"{where}.{k}") for k in arrays}
    sizes = {m.shape[0] for m in moments.values()}
    if len(sizes) != 1:
        _fail(
            f"{where}'s moment arrays differ in size: "
            f"{ {k: m.shape[0] for k, m in moments.items()} }."
        )
    opt = cls(sizes.pop(), net.dtype, **args)
    for k, kind in state.items():
        setattr(opt, k, STATE_KINDS[kind].decode(raw[k], dec, net, f"{where}.{k}"))
    for k, m in moments.items():
        getattr(opt, k)[...] = m
    return opt


def _dec_weights(raw, dec, net, where):
    v = _params_vector(dec.value(raw), net, where)
    if v.shape != (net.n_params,):
        _bad(where, f"an array of shape {(net.n_params,)}", v)
    return v


def _dec_state_or_none(raw, dec, net, where):
    v = dec.value(raw)
    if v is None:
        return None
    v = _params_vector(v, net, where)
    if v.shape != net.state.shape or not np.isfinite(v).all():
        _bad(where, f"None or a finite array of shape {net.state.shape}", v)
    return v


def _dec_estimator(raw, dec, net, where):
    v = dec.value(raw)
    if _ESTIMATORS.get(type(v).__name__) is not type(v) or not _is_fitted(v):
        _bad(where, "a fitted sknet network estimator", v)
    return v


def _dec_first_trainable(raw, dec, net, where):
    v = _dec_count(raw, dec, net, where)
    if v >= len(net.layers):
        _fail(
            f"{where}={v}, but the network has {len(net.layers)} layers (it must be "
            "the index of a layer)."
        )
    return v


#: The kinds of fitted state an estimator may declare in ``_saved_state`` (one entry
#: per kind: how it is written, how ``load`` checks it). Cross-entry consistency (with
#: the network, between labels and outputs ...) is checked by ``_check_consistency``.
STATE_KINDS = {
    "count": _Kind(_enc_count, _dec_count),
    "float": _Kind(_enc_float, _dec_float),
    "float|None": _Kind(_enc_float, _dec_float_or_none),
    "floats": _Kind(_enc_floats, _dec_floats),
    "floats|None": _Kind(_enc_floats, _dec_floats_or_none),
    "str": _Kind(_generic, _dec_str),
    # the network's per-sample input shape
    "shape": _Kind(_enc_shape, _dec_shape),
    # the per-sample layout of X at fit (reshaped to ``shape`` for the network)
    "layout": _Kind(_enc_shape, _dec_shape),
    "names": _Kind(_generic, _dec_names),
    "classes": _Kind(_generic, _dec_classes),
    "label_binarizer": _Kind(_enc_label_binarizer, _dec_label_binarizer),
    "network": _Kind(
        lambda net, enc, where: _encode_network(net, enc, where),
        lambda raw, dec, net, where: _decode_network(raw, dec, where),
    ),
    # a fitted network estimator wrapped by a meta-estimator
    "estimator": _Kind(_generic, _dec_estimator),
    "first_trainable": _Kind(_enc_count, _dec_first_trainable),
    # a counter only continued training reads (0 when absent)
    "counter": _Kind(_enc_count, _dec_count, training=True, default=lambda net: 0),
    "optimizer": _Kind(_enc_optimizer, _dec_optimizer, training=True),
    "weights": _Kind(
        lambda v, enc, where: enc.array(v),
        _dec_weights,
        training=True,
        default=lambda net: net.theta.copy(),
    ),
    # the non-trainable state (running statistics) kept with the best weights
    "state|None": _Kind(
        lambda v, enc, where: enc.value(None, where) if v is None else enc.array(v),
        _dec_state_or_none,
        training=True,
        default=lambda net: net.state.copy() if net.state.size else None,
    ),
}


def declared_state(cls):
    """``{attribute: (kind, optional)}`` that ``cls`` saves, merged along its MRO.

    Parameters
    ----------
    cls : type
        An sknet estimator class.

    Returns
    -------
    declared : dict
        Attribute name -> (kind in :data:`STATE_KINDS`, whether it may be absent).
    """
    tables = [(k.__name__, vars(k).get("_saved_state", {})) for k in reversed(cls.__mro__)]
    declared = {}
    for owner, saved in tables:
        for name, spec in saved.items():
            optional = spec.endswith("?")
            kind = spec[:-1] if optional else spec
            if kind not in STATE_KINDS:
                raise TypeError(
                    f"{owner}._saved_state[{name!r}] has unknown kind {kind!r}; "
                    f"known: {sorted(STATE_KINDS)}."
                )
            declared[name] = (kind, optional)
    return declared


# ======================================================================================
# the network
# ======================================================================================
def _encode_network(net, enc, where):
    specs = []
    for i, layer in enumerate(net.layers):
        name = type(layer).__name__
        if _LAYERS.get(name) is not type(layer):
            raise TypeError(
                f"sknet.save cannot store {where}: layer {i} is a {name}, which "
                "is not one of sknet's layer classes."
            )
        specs.append(
            {"class": name, "config": enc.value(layer.get_config(), f"{where}.layers[{i}]")}
        )
    return {
        "loss": net.loss,
        "input_shape": [int(s) for s in net.input_shape],
        "dtype": net.dtype.name,
        "layers": specs,
        "theta": enc.array(net.theta),
        **({"state": enc.array(net.state)} if net.state.size else {}),
    }


_NETWORK_KEYS = {"loss", "input_shape", "dtype", "layers", "theta"}


def _decode_network(raw, dec, where):
    # "state" (running statistics) is present exactly when the layers have state
    if not isinstance(raw, dict) or set(raw) - {"state"} != _NETWORK_KEYS:
        _fail(
            f"{where} must have exactly the entries {sorted(_NETWORK_KEYS)} (and 'state' "
            "for layers with running statistics)."
        )
    if not isinstance(raw["layers"], list) or not raw["layers"]:
        _fail(f"{where}.layers must be a non-empty list.")
    layers = []
    for i, spec in enumerate(raw["layers"]):
        if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
            _fail(f"layer {i} must have exactly the entries 'class' and 'config'.")
        cls = _LAYERS.get(spec["class"]) if isinstance(spec["class"], str) else None
        if cls is None:
            _fail(
                f"layer {i} has unknown class {spec['class']!r}; known layers: {sorted(_LAYERS)}."
            )
        config = dec.value(spec["config"])
        if not isinstance(config, dict):
            _fail(f"layer {i} config is not a dict.")
        try:
            layers.append(cls(**config))  # the layer validates its own settings
        except (TypeError, ValueError) as exc:
            _fail(f"invalid configuration {config!r} for layer {i} ({spec['class']}): {exc}")
    dtype = _checked_dtype(raw["dtype"])
    if dtype not in (np.float32, np.float64):
        _fail(f"network dtype must be float32 or float64, got {dtype}.")
    if not isinstance(raw["loss"], str) or raw["loss"] not in LOSSES:
        _fail(f"unknown loss {raw['loss']!r}.")
    input_shape = _dec_shape(raw["input_shape"], dec, None, f"{where}.input_shape")
    theta = dec.value(raw["theta"])
    # the architecture's size, before allocating anything for it: a forged layer size
    # must not make loading allocate more than the file holds
    n_params, n_state = _count_parameters(layers, input_shape, dtype)
    if not isinstance(theta, np.ndarray) or theta.shape != (n_params,) or theta.dtype != dtype:
        got = (theta.shape, theta.dtype) if isinstance(theta, np.ndarray) else type(theta)
        _fail(
            f"the network needs a parameter vector of shape {(n_params,)} and dtype "
            f"{dtype}, the file holds {got}."
        )
    state = dec.value(raw["state"]) if "state" in raw else np.zeros(0, dtype)
    if not isinstance(state, np.ndarray) or state.shape != (n_state,) or state.dtype != dtype:
        got = (state.shape, state.dtype) if isinstance(state, np.ndarray) else type(state)
        _fail(
            f"the network needs a state vector (running statistics) of shape {(n_state,)} "
            f"and dtype {dtype}, the file holds {got}."
        )
    if not np.isfinite(state).all():
        _fail(f"{where}.state holds NaN or infinity.")
    try:
        net = Network(layers, raw["loss"]).build(input_shape, dtype)
    except (ValueError, TypeError, ArithmeticError) as exc:
        _fail(f"the layers do not fit together: {exc}")
    net.theta[...] = theta
    net.state[...] = state
    return net


def _count_parameters(layers, input_shape, dtype):
    """Number of parameters of ``layers`` on ``input_shape``; each layer checks the shape
    it gets (``build``). Nothing is allocated."""
    shape = input_shape
    n = n_state = 0
    for layer in layers:
        try:
            shape = layer.build(shape, dtype)
            specs = layer.param_specs()
            state_specs = layer.state_specs()
        except (ValueError, TypeError, ArithmeticError) as exc:
            _fail(f"the layers do not fit together: {exc}")
        n += sum(math.prod(pshape) for _, pshape, _ in specs)
        n_state += sum(math.prod(sshape) for _, sshape, _ in state_specs)
    return n, n_state


def _of_kind(state, declared, kind, default=None):
    """The value of the (single) declared entry of ``kind`` in ``state``."""
    return next(
        (state[name] for name, (k, _) in declared.items() if k == kind and name in state), default
    )


def _check_consistency(est, state, declared, net):
    """Fitted facts that must agree with the rebuilt network and with each other."""

    def bad(msg):
        _fail(f"inconsistent {type(est).__name__} state: {msg}")

    if est.input_shape_ != net.input_shape:
        bad(f"input_shape_={est.input_shape_}, but the network takes {net.input_shape}.")
    # (n_outputs,), or (n_timesteps, n_outputs) from a per-step output layer
    per_step = int(getattr(net.layers[-1], "per_step", False))
    if net.output_shape[per_step:] != (est.n_outputs_,):
        bad(
            f"n_outputs_={est.n_outputs_}, but the network's last layer outputs {net.output_shape}."
        )
    layout = _of_kind(state, declared, "layout", est.input_shape_)
    if math.prod(layout) != math.prod(net.input_shape):
        bad(
            f"X's per-sample layout at fit {layout} does not reshape to the network's "
            f"input {net.input_shape}."
        )
    # (a recurrent model fitted on variable-length sequences counts features per step)
    per_step = getattr(est, "_fit_input", None) == "sequences"
    if est.n_features_in_ != (layout[-1] if per_step else layout[0]):
        bad(f"n_features_in_={est.n_features_in_}, but X at fit had per-sample shape {layout}.")
    names = _of_kind(state, declared, "names")
    if names is not None and len(names) != est.n_features_in_:
        bad(f"{len(names)} feature names for n_features_in_={est.n_features_in_}.")
    if est.out_activation_ != net.out_activation:
        bad(
            f"out_activation_={est.out_activation_!r}, but the network's loss "
            f"{net.loss!r} uses {net.out_activation!r}."
        )
    if is_classifier(est):
        lb = _of_kind(state, declared, "label_binarizer")
        lb.classes_ = est.classes_  # shared, as after fit
        n_classes, y_type = len(est.classes_), lb.y_type_
        outputs = 1 if y_type == "binary" else n_classes
        if y_type == "binary" and n_classes > 2 or y_type == "multiclass" and n_classes < 3:
            bad(f"{n_classes} classes for {y_type} targets.")
        if est.n_outputs_ != outputs:
            bad(
                f"{n_classes} classes ({y_type}) need {outputs} outputs, but "
                f"n_outputs_={est.n_outputs_}."
            )
        loss = "log_loss" if y_type == "multiclass" else "binary_log_loss"
    else:
        loss = est.loss
    if net.loss != loss:
        bad(f"the network's loss is {net.loss!r}, the estimator trains with {loss!r}.")
    first = _of_kind(state, declared, "first_trainable", 0)
    optimizer = _of_kind(state, declared, "optimizer")
    if optimizer is not None:
        n_trainable = net.n_params - net.layer_offset(first)
        moment = getattr(optimizer, _OPTIMIZERS[type(optimizer).__name__][3][0])
        if moment.shape[0] != n_trainable:
            bad(
                f"the optimiser's moments have {moment.shape[0]} entries, but the network "
                f"has {n_trainable} trainable parameters (layers {first} and up)."
            )


# ======================================================================================
# estimator <-> header
# ======================================================================================
_ABSENT = object()


def _estimator_class(name, nested=False):
    """The class a file names: one of the six network estimators, or (not nested) one of
    the meta-estimators of :data:`_META_ESTIMATORS`."""
    cls = _ESTIMATORS.get(name) if isinstance(name, str) else None
    if cls is None and not nested and isinstance(name, str):
        cls = _meta_classes().get(name)
    if cls is None:
        known = sorted(_ESTIMATORS) if nested else sorted(_ESTIMATORS) + sorted(_meta_classes())
        _fail(f"{name!r} is not an sknet estimator class; known: {known}.")
    return cls


def _encode_estimator(est, enc):
    """``(params, state)`` JSON values of an estimator (``state`` None if not fitted)."""
    cls = type(est)
    params = {p: enc.value(getattr(est, p), p) for p in cls._get_param_names()}
    if not _is_fitted(est):
        return params, None
    state = {}
    for name, (kind, optional) in declared_state(cls).items():
        spec = STATE_KINDS[kind]
        if spec.training and not enc.training_state:
            continue
        value = getattr(est, name, _ABSENT)
        if value is _ABSENT:
            if optional:
                continue
            raise ValueError(
                f"This {cls.__name__} lacks its fitted attribute {name}; it cannot be saved."
            )
        state[name] = spec.encode(value, enc, name)
    return params, state


def _decode_estimator(name, raw_params, raw_state, dec, nested=False):
    """The estimator from its params and declared state, checked (see the module doc);
    ``raw_state`` None for an unfitted estimator held by a meta-estimator."""
    cls = _estimator_class(name, nested)
    if not isinstance(raw_params, dict) or not (
        isinstance(raw_state, dict) or nested and raw_state is None
    ):
        _fail(f"malformed {name} entry ('params' and 'state' must be objects).")
    unknown = sorted(set(raw_params) - set(cls._get_param_names()))
    if unknown:
        _fail(f"the {name} parameters do not match its constructor; unknown: {unknown}.")
    # a parameter missing from the file was added to sknet after the file was written:
    # the constructor's default, which keeps the earlier behaviour, stands in for it
    params = {p: dec.value(v) for p, v in raw_params.items()}
    try:
        est = cls(**params)
        est._validate_params()
    except (ValueError, TypeError) as exc:
        _fail(f"invalid {name} parameters: {exc}")
    if raw_state is None:
        return est

    declared = declared_state(cls)
    unknown = sorted(set(raw_state) - set(declared))
    if unknown:
        _fail(f"unknown state entries {unknown}; {name} declares {sorted(declared)}.")
    missing = sorted(
        k for k, (_, optional) in declared.items() if not optional and k not in raw_state
    )
    if missing:
        _fail(f"the {name} state lacks {missing}.")
    net_name = next((k for k, (kind, _) in declared.items() if kind == "network"), None)
    net = None if net_name is None else _decode_network(raw_state[net_name], dec, net_name)
    state = {} if net_name is None else {net_name: net}
    for key, (kind, _) in declared.items():
        spec = STATE_KINDS[kind]
        if key in raw_state and key != net_name:
            state[key] = spec.decode(raw_state[key], dec, net, key)
        elif key not in raw_state and spec.default is not None:
            state[key] = spec.default(net)
    derived = {}
    for key, value in state.items():
        static = inspect.getattr_static(cls, key, None)
        if isinstance(static, property):  # derived from other state: checked, not set
            derived[key] = value
        elif callable(static) or isinstance(static, (classmethod, staticmethod)):
            _fail(f"the state entry {key!r} would shadow {name}.{key}.")
        else:  # an instance attribute (over a class-level default, if any)
            setattr(est, key, value)
    for key, value in derived.items():
        if getattr(est, key) != value:
            _fail(
                f"inconsistent {name} state: {key}={value!r}, but the estimator derives "
                f"{getattr(est, key)!r}."
            )
    if net is not None:
        _check_consistency(est, state, declared, net)
    if not _is_fitted(est):
        _fail(f"the saved {name} is not fitted.")
    return est


def _is_fitted(est):
    try:
        check_is_fitted(est)
    except NotFittedError:
        return False
    return True


def save(estimator, file, *, metadata=None, training_state=True):
    """Save a fitted sknet estimator to one file, without pickle.

    The file holds the constructor parameters and the fitted state the estimator's class
    declares (see :mod:`sknet.persistence`), nothing else.

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
        If the estimator is not an sknet estimator (a :class:`~sklearn.pipeline.Pipeline`
        holding one is saved with ``skops.io``, see the user guide) or a parameter holds
        a value the safe format cannot represent (use pickle or joblib for such models).
    ValueError
        If the estimator is not fitted, or its state is inconsistent (the file would not
        load).

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
    name = type(estimator).__name__
    known = {**_ESTIMATORS, **_meta_classes()}
    if isinstance(getattr(estimator, "steps", None), list):  # a Pipeline and the like
        raise TypeError(
            f"sknet.save stores one sknet estimator, got a {name}: the safe format holds "
            "no scikit-learn transformers. Save the whole pipeline with skops "
            "(skops.io.dump(pipe, path); load it with skops.io.load(path, trusted=...) "
            "after checking that skops.io.get_untrusted_types(file=path) lists only "
            "sknet's estimator classes), or save its sknet step alone "
            "(sknet.save(pipe[-1], path))."
        )
    if known.get(name) is not type(estimator):
        raise TypeError(
            f"sknet.save stores sknet estimators only, got {type(estimator).__module__}."
            f"{name}. Known classes: {sorted(known)}."
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
    enc = _Encoder(training_state)
    params, state = _encode_estimator(estimator, enc)
    members = {key: _npy_bytes(a) for key, a in enc.arrays.items()}
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "class": name,
        "versions": {
            "sknet": _sknet_version(),
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
        },
        "metadata": metadata if metadata is not None else {},
        "params": params,
        "state": state,
        "arrays": {
            key: {
                "dtype": a.dtype.str,
                "shape": list(a.shape),
                "sha256": hashlib.sha256(members[key]).hexdigest(),
            }
            for key, a in enc.arrays.items()
        },
    }
    header["checksum"] = hashlib.sha256(_canonical(header)).hexdigest()
    text = json.dumps(header, sort_keys=True, indent=1, allow_nan=False).encode("utf-8")
    # what load will rebuild from this file must pass load's checks
    written = json.loads(text)
    try:
        _decode_estimator(name, written["params"], written["state"], _Decoder(enc.arrays))
    except ValueError as exc:
        raise ValueError(f"sknet.save: this {name} would not load back ({exc}).") from None
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_HEADER, text)
        for key, data in members.items():
            zf.writestr(f"{_ARRAY_DIR}{key}.npy", data)


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
    except (
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        struct.error,
        OSError,
        RuntimeError,
        NotImplementedError,
        OverflowError,
        KeyError,
    ) as exc:
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


def _read_member(zf, name, limit, digest=None):
    """The bytes of member ``name``: at most ``limit`` of them, streamed in chunks into
    one buffer (and through sha256 when ``digest`` is given), refused as soon as the
    data outgrows the size the zip directory declares or the compression ratio a model
    file can have."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        _fail(
            f"member {name!r} is {info.file_size} bytes, larger than its declared "
            f"content allows ({limit})."
        )
    if info.file_size > _INFLATE_FREE_BYTES and info.file_size > _MAX_INFLATE_RATIO * max(
        info.compress_size, 1
    ):
        _fail(
            f"member {name!r} inflates from {info.compress_size} to {info.file_size} bytes "
            f"(more than {_MAX_INFLATE_RATIO}x); model weights do not compress like that "
            "(a zip bomb?). Refusing it."
        )
    data = bytearray(info.file_size)
    view = memoryview(data)
    sha = hashlib.sha256() if digest is not None else None
    got = 0
    try:
        with zf.open(info) as fh:
            while True:
                chunk = fh.read(_READ_CHUNK)
                if not chunk:
                    break
                if got + len(chunk) > info.file_size:
                    _fail(f"member {name!r} holds more data than the archive declares.")
                view[got : got + len(chunk)] = chunk
                if sha is not None:
                    sha.update(chunk)
                got += len(chunk)
    except (
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        OSError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        _fail(f"member {name!r} is corrupted or truncated ({exc}).")
    finally:
        view.release()
    if got != info.file_size:
        _fail(f"member {name!r} is truncated.")
    if sha is not None and sha.hexdigest() != digest:
        _fail(f"member {name!r} does not match its checksum: altered or corrupted.")
    return data


def _read_verified_header(zf):
    names = zf.namelist()
    if _HEADER not in names:
        _fail(f"not an sknet model file (no {_HEADER} member).")
    if len(set(names)) != len(names):
        _fail("the archive has duplicate members.")
    raw = _read_member(zf, _HEADER, _HEADER_MAX_BYTES)
    n_containers = raw.count(b"{") + raw.count(b"[")
    if n_containers > _HEADER_MAX_CONTAINERS:
        _fail(
            f"the header holds {n_containers} JSON objects or lists, more than a model's "
            f"header has ({_HEADER_MAX_CONTAINERS}); refusing to parse it."
        )
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
        _fail(
            f"format_version {version} is newer than this sknet reads ({FORMAT_VERSION}); "
            "upgrade sknet."
        )
    if version < FORMAT_VERSION:
        _fail(
            f"format_version {version} is no longer read (it stored every private "
            f"attribute; this sknet reads version {FORMAT_VERSION}). Load the file with "
            "the sknet that wrote it, keep the model with joblib, and save it again with "
            "this sknet."
        )
    checksum = header.get("checksum")
    try:
        expected = hashlib.sha256(_canonical(header)).hexdigest()
    except ValueError as exc:
        _fail(f"the header holds non-JSON values ({exc}).")
    if checksum != expected:
        _fail("checksum mismatch: the file was altered or corrupted.")
    if set(header) != _HEADER_KEYS:
        _fail(
            f"the header must have exactly the entries {sorted(_HEADER_KEYS)}; unknown: "
            f"{sorted(set(header) - _HEADER_KEYS)}, missing: "
            f"{sorted(_HEADER_KEYS - set(header))}."
        )
    if not all(isinstance(header[k], dict) for k in ("arrays", "params", "state")):
        _fail("malformed header ('arrays', 'params' and 'state' must be objects).")
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
        if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "sha256"}:
            _fail(f"malformed manifest entry for array {key!r}.")
        dtype = _checked_dtype(spec["dtype"])
        shape = _shape(spec["shape"])
        digest = spec["sha256"]
        if dtype.str[0] not in "<|":
            _fail(
                f"array {key!r} has byte order {dtype.str!r}; model files store "
                "little-endian arrays."
            )
        if not isinstance(digest, str):
            _fail(f"malformed manifest entry for array {key!r}.")
        limit = math.prod(shape) * dtype.itemsize + _NPY_HEADER_MAX
        data = _read_member(zf, name, limit, digest)
        a = _npy_from_bytes(data, key, dtype, shape)
        arrays[key] = a.astype(a.dtype.newbyteorder("="), copy=False)  # native order
    return arrays


def _npy_from_bytes(data, key, dtype, shape):
    """The array a ``.npy`` member holds, its own header checked against the manifest
    before anything is allocated for it (the data is used in place, not copied)."""
    fh = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            h_shape, fortran, h_dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            h_shape, fortran, h_dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            _fail(f"array {key!r} has .npy format version {version}, which is not read.")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        _fail(f"array {key!r} is not a valid .npy member ({exc}).")
    if h_dtype.hasobject:
        _fail(
            f"array {key!r} holds Python objects, which cannot be read without pickle; refusing it."
        )
    if h_dtype != dtype or tuple(h_shape) != shape:
        _fail(
            f"array {key!r} has dtype {h_dtype} and shape {tuple(h_shape)}, the manifest "
            f"says {dtype} and {shape}."
        )
    offset = fh.tell()
    nbytes = math.prod(shape) * dtype.itemsize
    if len(data) - offset != nbytes:
        _fail(f"array {key!r} holds {len(data) - offset} data bytes, its shape needs {nbytes}.")
    a = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    return a.reshape(shape, order="F" if fortran else "C")


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
        (of sknet, scikit-learn and NumPy that wrote it), ``metadata``, ``params``,
        ``state``, ``arrays`` (the manifest) and ``checksum``.

    Raises
    ------
    ValueError
        If the file is not an sknet model file of this format version, or was altered or
        corrupted.

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
    ('MLPRegressor', 2, {'note': 'toy'})
    """
    file = _as_file(file)
    with _archive_errors(), _open_zip(file) as zf:
        return _read_verified_header(zf)


def _as_file(file):
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    if not hasattr(file, "read"):
        raise TypeError(f"file must be a path or a binary file object, got {type(file).__name__}.")
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
        If the file is not an sknet model file of this format version, is truncated, was
        altered (checksum, missing, extra or reshaped arrays), holds a pickled (object)
        array, names a class outside sknet's fixed tables, or its state is not exactly
        the declared state of its class, consistent with its network (see
        :mod:`sknet.persistence`).

    Warns
    -----
    InconsistentVersionWarning
        When the file was written with another version of scikit-learn.

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
            InconsistentVersionWarning(
                estimator_name=str(header["class"]),
                current_sklearn_version=sklearn.__version__,
                original_sklearn_version=str(written),
            ),
            stacklevel=2,
        )
    decoder = _Decoder(arrays)
    try:
        est = _decode_estimator(header["class"], header["params"], header["state"], decoder)
    except RecursionError:
        _fail("the header is nested too deeply.")
    unused = sorted(set(arrays) - decoder.used)
    if unused:
        _fail(f"the arrays {unused} are not part of the model's state.")
    return est


# -- pickle, copy and skops: the saved form as builtins and arrays ---------------------------
#: what an estimator may hold besides its parameters and declared state and still be
#: pickled in its saved form: the random generator that continued training draws from
_PORTABLE_EXTRAS = {"_random_state"}


def _portable_state(est):
    """The saved form of ``est`` as ``{"header": str, "arrays": {key: ndarray}, ...}``,
    or None when the safe format cannot hold all of it (then pickle takes its attributes
    as they are). See :class:`sknet._base.PortableStateMixin`."""
    cls = type(est)
    if _ESTIMATORS.get(cls.__name__) is not cls:  # a user's subclass
        return None
    attrs = vars(est)
    known = set(cls._get_param_names()) | _PORTABLE_EXTRAS
    if _is_fitted(est):
        known |= set(declared_state(cls))
    if set(attrs) - known:  # undeclared attributes (or a fit in progress): keep them all
        return None
    rng = attrs.get("_random_state")
    if rng is not None and not isinstance(rng, np.random.RandomState):
        return None
    try:  # parameters load would refuse (set but never fitted): keep them as they are
        est._validate_params()
    except (TypeError, ValueError):
        return None
    enc = _Encoder(training_state=True)
    try:
        params, state = _encode_estimator(est, enc)
        header = json.dumps(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "class": cls.__name__,
                "params": params,
                "state": state,
            },
            sort_keys=True,
            allow_nan=False,
        )
    except (TypeError, ValueError):  # a parameter the format cannot represent
        return None
    out = {"header": header, "arrays": dict(enc.arrays)}
    if rng is not None:
        if rng is est.random_state:  # shared with the parameter: keep them one object
            return None
        rs = rng.get_state(legacy=False)
        out["random_state"] = {
            "key": rs["state"]["key"],
            "pos": int(rs["state"]["pos"]),
            "has_gauss": int(rs["has_gauss"]),
            "gauss": float(rs["gauss"]),
        }
    return out


def _portable_attributes(cls, portable):
    """The attributes of the estimator ``portable`` describes, rebuilt and checked as
    :func:`load` rebuilds a file's."""
    try:
        header = json.loads(portable["header"])
        arrays = dict(portable["arrays"])
        name, fmt = header["class"], (header["format"], header["format_version"])
        raw_params, raw_state = header["params"], header["state"]
    except (KeyError, TypeError, ValueError) as exc:
        _fail(f"malformed pickled state ({type(exc).__name__}: {exc}).")
    if fmt != (FORMAT_NAME, FORMAT_VERSION) or name != cls.__name__:
        _fail(f"the pickled state describes a {name!r} of format {fmt}, not a {cls.__name__}.")
    if not all(isinstance(a, np.ndarray) and a.dtype.kind in _ARRAY_KINDS for a in arrays.values()):
        _fail("the pickled state holds arrays of unsupported dtypes.")
    decoder = _Decoder(arrays)
    est = _decode_estimator(name, raw_params, raw_state, decoder, nested=True)
    if type(est) is not cls or sorted(set(arrays) - decoder.used):
        _fail(f"the pickled state is not a consistent {cls.__name__}.")
    attrs = dict(vars(est))
    rs = portable.get("random_state")
    if rs is not None:
        rng = np.random.RandomState()
        try:
            rng.set_state(("MT19937", rs["key"], rs["pos"], rs["has_gauss"], rs["gauss"]))
        except (KeyError, TypeError, ValueError) as exc:
            _fail(f"malformed pickled random state ({exc}).")
        attrs["_random_state"] = rng
    return attrs


register_portable_state(_portable_state, _portable_attributes)
