"""sknet.save / sknet.load: round trips, and refusal of altered or foreign files."""

import hashlib
import inspect
import io
import json
import pickle
import warnings
import zipfile
from importlib import resources

import joblib
import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import get_tags

import sknet
from sknet import MLPClassifier, MLPRegressor
from sknet.persistence import FORMAT_VERSION, STATE_KINDS, declared_state, read_header

from ._network_estimators import (
    estimator_class,
    exported_estimator_names,
    fitted,
    make_estimator,
    make_X,
    make_y,
    target_kinds,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _roundtrip(est, **kwargs):
    buf = io.BytesIO()
    sknet.save(est, buf, **kwargs)
    return sknet.load(io.BytesIO(buf.getvalue())), buf.getvalue()


def _assert_same_predictions(a, b, X):
    """Bit-identical outputs of every prediction method."""
    for method in ("predict", "predict_proba", "transform"):
        if hasattr(a, method):
            pa, pb = getattr(a, method)(X), getattr(b, method)(X)
            assert pa.dtype == pb.dtype
            np.testing.assert_array_equal(pa, pb, err_msg=method)


# ---------------------------------------------------------------------- round trips
def _kinds_for(name):
    cls = getattr(sknet, name, None)
    return target_kinds(cls) if cls is not None else ["any"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "name, kind", [(n, k) for n in exported_estimator_names() for k in _kinds_for(n)]
)
def test_roundtrip_bit_identical(name, kind, dtype, tmp_path):
    cls = estimator_class(name)
    est = make_estimator(cls)
    if kind == "multilabel" and not get_tags(est).classifier_tags.multi_label:
        pytest.skip(f"{name} does not support multilabel targets")
    est, X, y = fitted(cls, kind, dtype=dtype)
    path = tmp_path / "model.sknet"
    sknet.save(est, path)
    loaded = sknet.load(path)
    assert type(loaded) is type(est)
    assert loaded is not est
    assert loaded.get_params() == est.get_params()
    assert loaded._network.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded._network.theta, est._network.theta)
    _assert_same_predictions(est, loaded, X)
    if is_classifier(est):
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        assert loaded.classes_.dtype == est.classes_.dtype
        assert loaded.score(X, y) == est.score(X, y)
    assert loaded.loss_curve_ == est.loss_curve_
    assert loaded.n_iter_ == est.n_iter_


@pytest.mark.parametrize("name", exported_estimator_names())
def test_training_continues_identically_after_load(name):
    """Optimiser state and random state are saved: partial_fit matches bit for bit."""
    cls = estimator_class(name)
    est, X, y = fitted(cls)
    loaded, _ = _roundtrip(est)
    est.partial_fit(X, y)
    loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._network.theta, est._network.theta)


def test_string_labels_with_feature_names_and_dict_class_weight():
    pd = pytest.importorskip("pandas")
    X = make_X(MLPClassifier)
    y = make_y(X, "strings")
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = MLPClassifier(
        (5,),
        max_iter=5,
        random_state=np.random.RandomState(3),
        class_weight={"cat": 2.0, "dog": 1.0, "emu": 0.5},
    ).fit(df, y)
    loaded, _ = _roundtrip(est)
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    assert loaded.class_weight == est.class_weight
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert loaded.random_state.randint(1 << 30) == est.random_state.randint(1 << 30)
    np.testing.assert_array_equal(loaded.predict(df), est.predict(df))
    # the shared classes_ array stays shared with the label binarizer
    assert loaded.classes_ is loaded._label_binarizer.classes_


def test_sgd_dropout_and_poisson_regressor():
    X = make_X(MLPRegressor)
    y = np.abs(make_y(X, "regression"))
    est = MLPRegressor(
        loss="poisson",
        hidden_layer_sizes=(6, 4),
        dropout=0.2,
        solver="sgd",
        max_iter=20,
        random_state=0,
    ).fit(X, y)
    loaded, _ = _roundtrip(est)
    _assert_same_predictions(est, loaded, X)
    assert [type(layer).__name__ for layer in loaded._network.layers] == [
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]


def test_training_state_false_is_smaller_and_predicts_the_same():
    est, X, y = fitted(MLPClassifier, hidden_layer_sizes=(30,))
    full, data_full = _roundtrip(est)
    small, data_small = _roundtrip(est, training_state=False)
    assert len(data_small) < 0.6 * len(data_full)
    assert not hasattr(small, "_optimizer")
    _assert_same_predictions(est, small, X)
    small.partial_fit(X, y)  # starts a fresh optimiser
    assert small.t_ == est.t_ + len(X)
    assert not np.array_equal(small._network.theta, est._network.theta)


def test_metadata_and_header():
    est, _, _ = fitted(MLPRegressor)
    buf = io.BytesIO()
    sknet.save(est, buf, metadata={"note": "toy", "score": 0.5})
    header = read_header(io.BytesIO(buf.getvalue()))
    assert header["metadata"] == {"note": "toy", "score": 0.5}
    assert header["format"] == "sknet-model"
    assert header["format_version"] == FORMAT_VERSION
    assert header["class"] == "MLPRegressor"
    with pytest.raises(TypeError, match="metadata must be JSON-compatible"):
        sknet.save(est, io.BytesIO(), metadata={"bad": object()})


def test_pickle_and_joblib_still_work(tmp_path):
    est, X, _ = fitted(MLPClassifier, "multilabel")
    _assert_same_predictions(est, pickle.loads(pickle.dumps(est)), X)
    joblib.dump(est, tmp_path / "m.joblib")
    _assert_same_predictions(est, joblib.load(tmp_path / "m.joblib"), X)


# --------------------------------------------------------------------- save refusals
def test_save_refuses_unfitted_foreign_and_unsafe_estimators():
    with pytest.raises(ValueError, match="not fitted"):
        sknet.save(MLPClassifier(), io.BytesIO())
    from sklearn.linear_model import LinearRegression

    lr = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    with pytest.raises(TypeError, match="sknet estimators only"):
        sknet.save(lr, io.BytesIO())
    est, X, _ = fitted(MLPRegressor)
    est.extra_ = lambda x: x  # undeclared state is not saved
    loaded, _ = _roundtrip(est)
    assert not hasattr(loaded, "extra_")
    _assert_same_predictions(est, loaded, X)
    est.alpha = lambda x: x  # a parameter the safe format cannot hold
    with pytest.raises(TypeError, match="alpha"):
        sknet.save(est, io.BytesIO())


# --------------------------------------------------------------------- load refusals
@pytest.fixture(scope="module", params=["MLPClassifier", "RNNClassifier", "ConvNetClassifier"])
def saved_bytes(request):
    """A saved classifier with string labels, of each family."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est, X, y = fitted(estimator_class(request.param), "strings")
    buf = io.BytesIO()
    sknet.save(est, buf)
    return buf.getvalue()


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _pack(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _reseal(members):
    """Recompute every checksum, as a deliberate forger would."""
    header = json.loads(members["sknet.json"])
    for key, spec in header["arrays"].items():
        name = f"arrays/{key}.npy"
        if name in members:
            spec["sha256"] = hashlib.sha256(members[name]).hexdigest()
    body = {k: v for k, v in header.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    header["checksum"] = hashlib.sha256(canonical.encode()).hexdigest()
    members["sknet.json"] = json.dumps(header).encode()
    return members


def _theta_key(header):
    return header["state"]["_network"]["theta"]["key"]


def _load(data):
    return sknet.load(io.BytesIO(data))


def test_the_fixture_file_loads(saved_bytes):
    name = read_header(io.BytesIO(saved_bytes))["class"]
    assert type(_load(saved_bytes)).__name__ == name
    assert type(_load(_pack(_members(saved_bytes)))).__name__ == name


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(saved_bytes, cut):
    with pytest.raises(ValueError, match="Cannot load sknet model"):
        _load(saved_bytes[: int(len(saved_bytes) * cut)])


def test_flipped_bytes_anywhere_are_refused(saved_bytes):
    rng = np.random.RandomState(0)
    for pos in rng.choice(len(saved_bytes), min(len(saved_bytes), 400), replace=False):
        data = bytearray(saved_bytes)
        data[pos] ^= 0xFF
        try:
            _load(bytes(data))
        except ValueError as exc:
            assert "Cannot load sknet model" in str(exc)
        else:  # the byte was in a part zip ignores (e.g. a timestamp): must load the same
            with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
                assert {n: zf.read(n) for n in zf.namelist()} == _members(saved_bytes)


def test_changed_array_content_is_refused(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    name = f"arrays/{_theta_key(header)}.npy"
    data = bytearray(members[name])
    data[-1] ^= 0x01  # one bit of one weight
    members[name] = bytes(data)
    with pytest.raises(ValueError, match="does not match its checksum"):
        _load(_pack(members))


def test_changed_header_is_refused(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    header["params"]["alpha"] = 0.5
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="checksum mismatch"):
        _load(_pack(members))


def test_missing_array_is_refused(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    del members[f"arrays/{_theta_key(header)}.npy"]
    with pytest.raises(ValueError, match="missing arrays"):
        _load(_pack(members))


def test_extra_member_is_refused(saved_bytes):
    members = _members(saved_bytes)
    members["arrays/evil.npy"] = b"x"
    with pytest.raises(ValueError, match="unexpected members"):
        _load(_pack(members))


def _npy(a, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_wrong_shape_is_refused_even_when_resealed(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    key = _theta_key(header)
    theta = np.lib.format.read_array(io.BytesIO(members[f"arrays/{key}.npy"]))
    # an array whose shape disagrees with the manifest
    members[f"arrays/{key}.npy"] = _npy(theta[:-1])
    with pytest.raises(ValueError, match="the manifest says"):
        _load(_pack(_reseal(dict(members))))
    # manifest and array agree, but the architecture needs another size
    header["arrays"][key]["shape"] = [theta.size - 1]
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="parameter vector of shape"):
        _load(_pack(_reseal(members)))


class _Boom:
    """Unpickling this would set a flag: loading must never get that far."""

    triggered = False

    def __reduce__(self):
        return (_trigger, ())


def _trigger():
    _Boom.triggered = True
    return "boom"


def test_pickled_object_array_is_refused_and_not_executed(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    key = header["state"]["classes_"]["key"]
    evil = np.empty(3, dtype=object)
    evil[:] = [_Boom(), _Boom(), _Boom()]
    members[f"arrays/{key}.npy"] = _npy(evil, allow_pickle=True)
    header["arrays"][key]["dtype"] = "|O"
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="not allowed|without pickle"):
        _load(_pack(_reseal(members)))
    # and with the manifest still claiming a string dtype
    members = _members(saved_bytes)
    members[f"arrays/{key}.npy"] = _npy(evil, allow_pickle=True)
    with pytest.raises(ValueError, match="without pickle"):
        _load(_pack(_reseal(members)))
    assert not _Boom.triggered


@pytest.mark.parametrize("cls_name", ["os.system", "Popen", "builtins.eval", "Pipeline"])
def test_unknown_classes_are_refused(saved_bytes, cls_name):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    header["class"] = cls_name
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="not an sknet estimator class"):
        _load(_pack(_reseal(members)))
    header = json.loads(_members(saved_bytes)["sknet.json"])
    header["state"]["_optimizer"]["class"] = cls_name
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="is not one of"):
        _load(_pack(_reseal(members)))
    header = json.loads(_members(saved_bytes)["sknet.json"])
    header["state"]["_network"]["layers"][0]["class"] = cls_name
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="unknown class"):
        _load(_pack(_reseal(members)))


def test_invalid_values_are_refused(saved_bytes):
    def forged(edit):
        members = _members(saved_bytes)
        header = json.loads(members["sknet.json"])
        edit(header)
        members["sknet.json"] = json.dumps(header).encode()
        return _pack(_reseal(members))

    def bad_param(h):
        h["params"]["solver"] = "rm -rf"

    def bad_type(h):
        h["params"]["alpha"] = {"$type": "__import__", "value": "os"}

    def bad_layer(h):
        h["state"]["_network"]["layers"][0]["config"]["activation"] = "exec"

    def bad_loss(h):
        h["state"]["_network"]["loss"] = "evil"

    def newer(h):
        h["format_version"] = FORMAT_VERSION + 1

    for edit, match in [
        (bad_param, "invalid \\w+Classifier parameters"),
        (bad_type, "unknown value type"),
        (bad_layer, "invalid configuration"),
        (bad_loss, "unknown loss"),
        (newer, "newer than this sknet reads"),
    ]:
        with pytest.raises(ValueError, match=match):
            _load(forged(edit))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a model at all",
        json.dumps({"format": "sknet-model"}).encode(),
        pickle.dumps({"a": 1}),
    ],
)
def test_foreign_files_are_refused(content):
    with pytest.raises(ValueError, match="not an sknet model file"):
        _load(content)


def test_other_zip_formats_are_refused(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.arange(3))
    with pytest.raises(ValueError, match="no sknet.json"):
        sknet.load(tmp_path / "x.npz")
    members = {"sknet.json": json.dumps({"format": "something-else"}).encode()}
    with pytest.raises(ValueError, match="format is not"):
        _load(_pack(members))


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sknet.load(tmp_path / "nope.sknet")


def _forge_layer(data, layer, **config):
    members = _members(data)
    header = json.loads(members["sknet.json"])
    header["state"]["_network"]["layers"][layer]["config"].update(config)
    members["sknet.json"] = json.dumps(header).encode()
    return _pack(_reseal(members))


@pytest.mark.parametrize(
    "name, layer, config, match",
    [
        # values no estimator builds, which would reach the kernels
        # (the messages are the layers' own: each layer validates its settings)
        ("ConvNetClassifier", 0, {"stride": 0}, "Conv: stride must be a positive integer, got 0"),
        ("ConvNetClassifier", 0, {"kernel_size": -3}, "kernel_size must be a positive .*got -3"),
        ("ConvNetClassifier", 0, {"padding": -1}, "Conv: padding must be .*got -1"),
        ("ConvNetClassifier", 0, {"padding": "exec"}, "Conv: padding must be .*got 'exec'"),
        ("ConvNetClassifier", 0, {"ndim": 1}, "Conv1D expects 2-D samples"),
        ("ConvNetClassifier", 0, {"ndim": 3}, "Conv: ndim must be 1 or 2, got 3"),
        ("ConvNetClassifier", 0, {"activation": "exec"}, "Conv: activation must be one of"),
        ("ConvNetClassifier", 1, {"size": 0}, "Pool: size must be a positive integer, got 0"),
        ("ConvNetClassifier", 1, {"ndim": 1}, "Pool1D expects 2-D samples"),
        ("ConvNetClassifier", 1, {"mode": "median"}, "invalid configuration"),
        ("RNNClassifier", 0, {"units": 0}, "Recurrent: units must be a positive integer, got 0"),
        ("RNNClassifier", 0, {"units": 2.5}, "Recurrent: units must be a positive .*got 2.5"),
        ("RNNClassifier", 0, {"cell": "transformer"}, "invalid configuration"),
        ("RNNClassifier", 0, {"return_sequences": "yes"}, "return_sequences must be True or"),
        ("RNNClassifier", 0, {"return_sequences": True}, "do not fit together"),
        ("MLPClassifier", 0, {"units": -5}, "Dense: units must be a positive integer, got -5"),
        ("MLPClassifier", 0, {"units": True}, "Dense: units must be a positive integer, got T"),
        # consistent-looking sizes that disagree with the stored weights
        ("ConvNetClassifier", 0, {"filters": 3}, "parameter vector of shape"),
        ("ConvNetClassifier", 0, {"stride": 2}, "parameter vector of shape"),
        ("RNNClassifier", 0, {"cell": "gru"}, "parameter vector of shape"),
        # a huge layer is refused from the sizes alone, before anything is allocated
        ("RNNClassifier", 0, {"units": 10**7}, "parameter vector of shape \\(4000\\d+,\\)"),
    ],
)
def test_forged_layer_configurations_are_refused(name, layer, config, match):
    est, X, _ = fitted(estimator_class(name), "binary")
    buf = io.BytesIO()
    sknet.save(est, buf)
    with pytest.raises(ValueError, match=f"Cannot load sknet model.*{match}"):
        _load(_forge_layer(buf.getvalue(), layer, **config))


def test_forged_dropout_rate_is_refused():
    est, X, _ = fitted(MLPClassifier, "binary", dropout=0.2)
    buf = io.BytesIO()
    sknet.save(est, buf)
    assert type(_load(_forge_layer(buf.getvalue(), 1, rate=0.5))) is MLPClassifier
    for rate in (1.0, -0.1, {"$type": "float", "value": "nan"}):
        with pytest.raises(ValueError, match="Dropout: rate must be a number in \\[0, 1\\)"):
            _load(_forge_layer(buf.getvalue(), 1, rate=rate))


# --------------------------------------------------------------------- skops
@pytest.mark.parametrize("name", exported_estimator_names())
def test_skops_loads_sknet_models_only_with_explicitly_trusted_types(name):
    """skops trusts scikit-learn/NumPy/SciPy types only: loading an sknet model needs
    the estimator's own class trusted by hand, and nothing else of sknet's (its state
    is builtins and arrays, see tests/test_skops.py)."""
    sio = pytest.importorskip("skops.io")
    cls = estimator_class(name)
    est, X, _ = fitted(cls, target_kinds(cls)[1])
    data = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted == [f"{cls.__module__}.{name}"]
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.loads(data)
    loaded = sio.loads(data, trusted=untrusted)
    _assert_same_predictions(est, loaded, X)


# --------------------------------------------------------------------- declared state
ALL_SIX = [
    "MLPClassifier",
    "MLPRegressor",
    "RNNClassifier",
    "RNNRegressor",
    "ConvNetClassifier",
    "ConvNetRegressor",
]


@pytest.mark.parametrize("name", ALL_SIX + ["FineTuner", "NetworkFeatures"])
def test_declared_state_is_well_formed(name):
    """Every kind is known and no saved name is a method (a property, derived from other
    state, is compared with the file, not set)."""
    cls = getattr(sknet, name)
    declared = declared_state(cls)
    assert set(kind for kind, _ in declared.values()) <= set(STATE_KINDS)
    for attr in declared:
        assert not callable(inspect.getattr_static(cls, attr, None)), attr
    if name in ALL_SIX:
        assert declared["_network"] == ("network", False)
        assert declared["input_shape_"] == ("shape", False)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ALL_SIX)
def test_roundtrip_after_partial_fit_keeps_the_optimizer(name, dtype, solver):
    """fit + partial_fit, save, load: same predictions, same optimiser state, and the
    next partial_fit gives the same weights bit for bit."""
    cls = estimator_class(name)
    est, X, y = fitted(cls, dtype=dtype, solver=solver)
    est.partial_fit(X, y)
    loaded, _ = _roundtrip(est)
    _assert_same_predictions(est, loaded, X)
    assert type(loaded._optimizer) is type(est._optimizer)
    for key, value in vars(est._optimizer).items():
        other = vars(loaded._optimizer)[key]
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(other, value, err_msg=key)
        else:
            assert other == value, key
    assert loaded.input_shape_ == est._network.input_shape
    est.partial_fit(X, y)
    loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded._network.theta, est._network.theta)
    assert loaded.loss_curve_ == est.loss_curve_


def test_pretrained_files_are_the_current_format():
    from sknet import pretrained

    for model in pretrained.available():
        header = pretrained.info(model)
        assert header["versions"]
        with resources.as_file(resources.files(pretrained) / f"{model}.sknet") as path:
            header = read_header(path)
        assert header["format_version"] == FORMAT_VERSION
        cls = getattr(sknet, header["class"])
        assert set(header["state"]) <= set(declared_state(cls))
        assert "_optimizer" not in header["state"]  # saved without training state


@pytest.fixture(scope="module")
def multiclass_bytes():
    """A float64 MLPClassifier on 4 classes (int labels), with Adam's state."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est, X, y = fitted(MLPClassifier, "multiclass")
    buf = io.BytesIO()
    sknet.save(est, buf)
    return buf.getvalue()


def _forge(data, edit=None, arrays=None):
    """Edit the header and/or replace arrays (manifest updated), then reseal."""
    members = _members(data)
    header = json.loads(members["sknet.json"])
    if edit is not None:
        edit(header)
    for key, a in (arrays or {}).items():
        members[f"arrays/{key}.npy"] = _npy(a)
        header["arrays"][key]["dtype"] = a.dtype.str
        header["arrays"][key]["shape"] = list(a.shape)
    members["sknet.json"] = json.dumps(header).encode()
    return _pack(_reseal(members))


def _array(data, path):
    """(key, array) of the array at ``path`` (keys into the header's state)."""
    members = _members(data)
    entry = json.loads(members["sknet.json"])["state"]
    for step in path:
        entry = entry[step]
    key = entry["key"]
    return key, np.lib.format.read_array(io.BytesIO(members[f"arrays/{key}.npy"]))


def _set(path, value):
    def edit(header):
        entry = header["state"]
        for step in path[:-1]:
            entry = entry[step]
        entry[path[-1]] = value

    return edit


def test_unknown_missing_and_method_named_entries_are_refused(multiclass_bytes):
    assert type(_load(multiclass_bytes)) is MLPClassifier
    cases = [
        (_set(["extra_"], 1), r"unknown state entries \['extra_'\]"),
        (_set(["predict"], 1), r"unknown state entries \['predict'\]"),
        (_set(["_fit_start_time"], 1.5), r"unknown state entries \['_fit_start_time'\]"),
        (lambda h: h["state"].pop("n_outputs_"), r"state lacks \['n_outputs_'\]"),
        (lambda h: h["state"].pop("input_shape_"), r"state lacks \['input_shape_'\]"),
        (lambda h: h["params"].update(predict=1), r"unknown: \['predict'\]"),
        (lambda h: h.update(extra=1), r"unknown: \['extra'\]"),
        (lambda h: h["state"]["_optimizer"].update(evil=1), "must have exactly the entries"),
        (lambda h: h["state"]["_network"].update(evil=1), "must have exactly the entries"),
        (lambda h: h.update(format_version=1), "format_version 1 is no longer read"),
    ]
    for edit, match in cases:
        with pytest.raises(ValueError, match=f"Cannot load sknet model.*{match}"):
            _load(_forge(multiclass_bytes, edit))


def test_a_parameter_the_class_lacks_is_refused(saved_bytes):
    """A file from a newer sknet (or a forged one) with a parameter this sknet has not."""
    forged = _forge(saved_bytes, lambda h: h["params"].update(future_option=0.5))
    with pytest.raises(
        ValueError,
        match=r"Cannot load sknet model.*parameters do not "
        r"match its constructor; unknown: "
        r"\['future_option'\]",
    ):
        _load(forged)


@pytest.mark.parametrize("missing", [["clip_norm"], ["clip_norm", "alpha", "dropout"]])
def test_parameters_missing_from_the_file_take_their_defaults(saved_bytes, missing):
    """A file written before sknet added a parameter loads with the parameter's default,
    and predicts as the file's model."""
    forged = _forge(saved_bytes, lambda h: [h["params"].pop(p) for p in missing])
    assert not set(missing) & set(read_header(io.BytesIO(forged))["params"])
    est, loaded = _load(saved_bytes), _load(forged)
    defaults = type(est)().get_params()
    for p in missing:
        assert loaded.get_params()[p] == defaults[p]
    X = make_X(type(est))
    _assert_same_predictions(loaded, est, X)


def test_pretrained_files_lacking_newer_parameters_load_with_defaults():
    """The shipped files may predate parameters (when written: ``clip_norm`` of the MLPs,
    ``dense_activation`` of the ConvNets); they load, those taking their defaults."""
    from sknet import pretrained

    for model in pretrained.available():
        with resources.as_file(resources.files(pretrained) / f"{model}.sknet") as path:
            header = read_header(path)
            est = sknet.load(path)
        cls = type(est)
        assert set(header["params"]) <= set(cls._get_param_names())
        defaults = cls().get_params()
        for p in set(cls._get_param_names()) - set(header["params"]):
            assert est.get_params()[p] == defaults[p], p


def test_arrays_outside_the_state_are_refused(multiclass_bytes):
    members = _members(multiclass_bytes)
    header = json.loads(members["sknet.json"])
    members["arrays/zz.npy"] = _npy(np.arange(3))
    header["arrays"]["zz"] = {"dtype": np.arange(3).dtype.str, "shape": [3], "sha256": ""}
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match=r"the arrays \['zz'\] are not part of the model"):
        _load(_pack(_reseal(members)))


def test_wrongly_typed_scalars_are_refused(multiclass_bytes):
    cases = [
        (_set(["n_iter_"], -1), "n_iter_ must be an integer >= 0"),
        (_set(["n_iter_"], 2.0), "n_iter_ must be an integer >= 0"),
        (_set(["t_"], True), "t_ must be an integer >= 0"),
        (_set(["loss_"], "low"), "loss_ must be a number"),
        (_set(["loss_curve_"], [0.5, "x"]), "loss_curve_ must be a list of numbers"),
        (_set(["out_activation_"], 3), "out_activation_ must be a string"),
        (_set(["input_shape_"], [0]), "input_shape_ must be a list of positive integers"),
        (_set(["_label_binarizer", "y_type_"], "continuous"), "y_type_ must be one of"),
        (_set(["_optimizer", "t"], -3), r"_optimizer\.t must be an integer >= 0"),
        (_set(["_optimizer", "beta_1"], "x"), r"_optimizer\.beta_1 must be a finite number"),
    ]
    for edit, match in cases:
        with pytest.raises(ValueError, match=f"Cannot load sknet model.*{match}"):
            _load(_forge(multiclass_bytes, edit))


# each array kind: where it sits in the state, and what a wrong dtype / shape says
ARRAY_KINDS = {
    "network": (["_network", "theta"], "parameter vector of shape"),
    "classes": (["classes_"], "non-empty 1-D array of labels"),
    "optimizer": (["_optimizer", "m"], "moment arrays differ in size|must be a 1-D float64"),
    "weights": (["_best_theta"], "must be a 1-D float64 array|must be an array of shape"),
}


@pytest.mark.parametrize("kind", ARRAY_KINDS)
def test_arrays_of_the_wrong_dtype_shape_or_byte_order_are_refused(multiclass_bytes, kind):
    path, match = ARRAY_KINDS[kind]
    key, a = _array(multiclass_bytes, path)
    wrong_dtype = a.astype(np.complex128 if kind == "classes" else np.float32)
    wrong_shape = a.reshape(2, -1) if kind == "classes" else a[:-1]
    for forged in (wrong_dtype, wrong_shape):
        with pytest.raises(ValueError, match=f"Cannot load sknet model.*({match})"):
            _load(_forge(multiclass_bytes, arrays={key: forged}))
    with pytest.raises(ValueError, match=f"array {key!r} has byte order '>"):
        _load(_forge(multiclass_bytes, arrays={key: a.astype(a.dtype.newbyteorder(">"))}))


def test_adam_moments_of_the_wrong_size_are_refused(multiclass_bytes):
    (km, m), (kv, v) = (_array(multiclass_bytes, ["_optimizer", k]) for k in "mv")
    with pytest.raises(
        ValueError,
        match="the optimiser's moments have .* entries, but the "
        "network has .* trainable parameters",
    ):
        _load(_forge(multiclass_bytes, arrays={km: m[:-1], kv: v[:-1]}))
    with pytest.raises(ValueError, match="moment arrays differ in size"):
        _load(_forge(multiclass_bytes, arrays={km: m[:-1]}))
    key, classes = _array(multiclass_bytes, ["classes_"])
    with pytest.raises(ValueError, match="repeats a label"):
        _load(_forge(multiclass_bytes, arrays={key: np.array([0, 0, 1, 2])}))


def test_state_inconsistent_with_the_network_is_refused(multiclass_bytes):
    key, classes = _array(multiclass_bytes, ["classes_"])
    assert classes.tolist() == [0, 1, 2, 3]
    n_layers = 2  # Dense(5), Dense(4)
    cases = [
        (_set(["n_outputs_"], 3), r"n_outputs_=3, but the network's last layer outputs \(4,\)"),
        (_set(["n_features_in_"], 5), "n_features_in_=5, but X at fit had per-sample shape"),
        # (a property once estimators derive input_shape_ from the network)
        (
            _set(["input_shape_"], [7]),
            r"input_shape_=\(7,\), but the (network takes|estimator derives) \(6,\)",
        ),
        (_set(["out_activation_"], "logistic"), "out_activation_='logistic', but"),
        (_set(["_label_binarizer", "y_type_"], "binary"), "4 classes for binary targets"),
        (_set(["_first_trainable"], n_layers), "_first_trainable=2, but the network has 2"),
        (_set(["_first_trainable"], 1), "the optimiser's moments have"),
        (_set(["_network", "loss"], "binary_log_loss"), "out_activation_='softmax', but"),
    ]
    for edit, match in cases:
        with pytest.raises(
            ValueError,
            match=f"inconsistent MLPClassifier state.*{match}|Cannot load sknet model.*{match}",
        ):
            _load(_forge(multiclass_bytes, edit))
    # classes_ count against the outputs
    with pytest.raises(
        ValueError,
        match=r"3 classes \(multiclass\) need 3 outputs, but "
        "n_outputs_=4",
    ):
        _load(_forge(multiclass_bytes, arrays={key: classes[:3]}))


def test_regressor_loss_must_match_the_network():
    est, X, y = fitted(MLPRegressor)
    buf = io.BytesIO()
    sknet.save(est, buf)
    data = buf.getvalue()
    with pytest.raises(
        ValueError,
        match="the network's loss is 'poisson', the estimator trains with 'squared_error'",
    ):
        _load(
            _forge(
                data,
                lambda h: (
                    _set(["_network", "loss"], "poisson")(h),
                    _set(["out_activation_"], "exp")(h),
                ),
            )
        )


def test_layer_with_zero_units_is_refused_by_the_layer(multiclass_bytes):
    from sknet._layers import Dense

    with pytest.raises(ValueError) as exc:
        Dense(0)
    message = str(exc.value)
    assert message == "Dense: units must be a positive integer, got 0."

    def zero_units(header):
        header["state"]["_network"]["layers"][0]["config"]["units"] = 0

    with pytest.raises(ValueError, match="Cannot load sknet model") as exc:
        _load(_forge(multiclass_bytes, zero_units))
    assert message in str(exc.value)


def test_save_refuses_state_that_would_not_load():
    est, X, y = fitted(MLPClassifier, "multiclass")
    est.n_outputs_ = 3
    with pytest.raises(ValueError, match="would not load back.*n_outputs_=3"):
        sknet.save(est, io.BytesIO())
    est.n_outputs_ = 4
    del est.n_iter_
    with pytest.raises(ValueError, match="lacks its fitted attribute n_iter_"):
        sknet.save(est, io.BytesIO())


# ---------------------------------------------------------- memory bombs (bounded reads)
def _pack_deflated(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _peak_bytes(fn):
    """Peak memory Python allocated while ``fn`` ran (tracemalloc sees bytearrays and
    NumPy's buffers)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_zip_bomb_is_refused_before_inflating(saved_bytes):
    # a theta member of 256 MiB of zeros (about 260 KB deflated), the manifest's shape
    # changed to match and every checksum recomputed
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    key = _theta_key(header)
    n = 32 * 2**20
    members[f"arrays/{key}.npy"] = _npy(np.zeros(n))
    header["arrays"][key]["shape"] = [n]
    members["sknet.json"] = json.dumps(header).encode()
    data = _pack_deflated(_reseal(members))
    assert len(data) < 2**20

    def load():
        with pytest.raises(ValueError, match="zip bomb"):
            _load(data)

    assert _peak_bytes(load) < 16 * 2**20


def test_json_bomb_header_is_refused_before_parsing(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    header["metadata"] = {"x": [{}] * 3_000_000}  # 9 MB of JSON, 3 million objects
    members["sknet.json"] = json.dumps(header, separators=(",", ":")).encode()
    data = _pack_deflated(_reseal(members))

    def load():
        with pytest.raises(ValueError, match="JSON objects or lists"):
            _load(data)

    assert _peak_bytes(load) < 40 * 2**20


def test_npy_header_declaring_a_huge_shape_is_refused(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    key = _theta_key(header)
    theta = np.lib.format.read_array(io.BytesIO(members[f"arrays/{key}.npy"]))
    npy = _npy(theta)
    # the member's own header claims 10**12 values; its data and the manifest do not
    forged = npy.replace(f"({theta.size},)".encode(), b"(1000000000000,)", 1)
    assert forged != npy
    members[f"arrays/{key}.npy"] = forged
    with pytest.raises(ValueError, match=f"array '{key}' has dtype .* shape \\(1000000000000,\\)"):
        _load(_pack(_reseal(members)))


def test_object_array_with_a_huge_shape_is_refused(saved_bytes):
    members = _members(saved_bytes)
    header = json.loads(members["sknet.json"])
    # a parameter holding it (the product of the shape overflows 64-bit integers to 0)
    header["params"]["class_weight"] = {"$type": "objarray", "shape": [2**32, 2**32], "items": []}
    members["sknet.json"] = json.dumps(header).encode()
    with pytest.raises(ValueError, match="object array of shape"):
        _load(_pack(_reseal(members)))
