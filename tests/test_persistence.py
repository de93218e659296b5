"""sknet.save / sknet.load: round trips, and refusal of altered or foreign files."""

import hashlib
import io
import json
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import get_tags

import sknet
from sknet import MLPClassifier, MLPRegressor
from sknet.persistence import FORMAT_VERSION, read_header

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
@pytest.mark.parametrize("name, kind", [(n, k) for n in exported_estimator_names()
                                        for k in _kinds_for(n)])
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
    est = MLPClassifier((5,), max_iter=5, random_state=np.random.RandomState(3),
                        class_weight={"cat": 2.0, "dog": 1.0, "emu": 0.5}).fit(df, y)
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
    est = MLPRegressor(loss="poisson", hidden_layer_sizes=(6, 4), dropout=0.2, solver="sgd",
                       max_iter=20, random_state=0).fit(X, y)
    loaded, _ = _roundtrip(est)
    _assert_same_predictions(est, loaded, X)
    assert [type(layer).__name__ for layer in loaded._network.layers] == \
        ["Dense", "Dropout", "Dense", "Dropout", "Dense"]


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

    for edit, match in [(bad_param, "invalid \\w+Classifier parameters"),
                        (bad_type, "unknown value type"),
                        (bad_layer, "invalid configuration"),
                        (bad_loss, "unknown loss"),
                        (newer, "newer than this sknet reads")]:
        with pytest.raises(ValueError, match=match):
            _load(forged(edit))


@pytest.mark.parametrize("content", [
    b"",
    b"not a model at all",
    json.dumps({"format": "sknet-model"}).encode(),
    pickle.dumps({"a": 1}),
])
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


@pytest.mark.parametrize("name, layer, config, match", [
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
])
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
    """skops (optional, not a test dependency) trusts scikit-learn/NumPy/SciPy types
    only: loading an sknet model needs sknet's classes trusted by hand."""
    sio = pytest.importorskip("skops.io")
    cls = estimator_class(name)
    est, X, _ = fitted(cls, target_kinds(cls)[1])
    data = sio.dumps(est)
    untrusted = sio.get_untrusted_types(data=data)
    assert f"{cls.__module__}.{name}" in untrusted
    assert "sknet._network.Network" in untrusted
    assert all(t.startswith("sknet.") or t == "numpy.dtype" for t in untrusted), untrusted
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.loads(data)
    loaded = sio.loads(data, trusted=untrusted)
    _assert_same_predictions(est, loaded, X)
