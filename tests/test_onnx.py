"""ONNX export: every estimator family and layer type, run with onnxruntime.

Each model is fitted on float32 data (sknet then computes in float32) and its ONNX
graph is run by onnxruntime on batches of 1 and 1,000 rows; outputs must agree with
``predict`` / ``predict_proba`` / ``transform`` within 1e-5 (absolute, plus 1e-5
relative for the Poisson regressor's exp outputs), labels exactly.
"""

import sys
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknet import (
    ConvNetClassifier,
    ConvNetRegressor,
    FineTuner,
    MLPClassifier,
    MLPRegressor,
    NetworkClassifier,
    NetworkFeatures,
    NetworkRegressor,
    RNNClassifier,
    RNNRegressor,
)
from sknet.layers import (
    GRU,
    LSTM,
    RNN,
    Activation,
    AvgPool1D,
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePool,
    GlobalMaxPool,
    MaxPool1D,
    MaxPool2D,
    Residual,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
sknet_onnx = pytest.importorskip("sknet.onnx")

ATOL = 1e-5
N_FIT = 64
BATCHES = (1, 1000)


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _data(shape, seed=0, n=N_FIT + BATCHES[-1]):
    """float32 samples of per-sample ``shape`` (the first N_FIT rows are for fitting)."""
    return np.random.RandomState(seed).randn(n, *shape).astype(np.float32)


def _targets(X, kind, seed=1):
    rng = np.random.RandomState(seed)
    flat = X.reshape(X.shape[0], -1)
    score = flat[:, : min(3, flat.shape[1])].sum(axis=1)
    if kind == "binary":
        return (score > 0).astype(np.int64)
    if kind == "multiclass":
        return np.array(["cat", "dog", "emu"])[np.digitize(score, [-0.5, 0.5])]
    if kind == "multilabel":
        return np.stack([score > 0, flat[:, -1] > 0, rng.rand(len(X)) > 0.5], axis=1).astype(int)
    if kind == "poisson":
        return rng.poisson(np.exp(0.3 * np.tanh(score))).astype(np.float64)
    if kind == "multioutput":
        return np.stack([score, flat[:, -1]], axis=1)
    return score


@contextmanager
def _no_fuss():
    """Silence ConvergenceWarning: a few epochs are enough to get non-trivial weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _fit(est, X, y):
    est = clone(est).set_params(random_state=0)
    with _no_fuss():
        return est.fit(X[:N_FIT], y[:N_FIT])


def _check(est, X, y, *, rtol=0.0):
    """Fit on float32 data, export, compare on batches of 1 and 1000 rows."""
    est = _fit(est, X, y)
    assert est.network_.dtype == np.float32  # sknet kept the float32 data's dtype
    model = sknet_onnx.to_onnx(est, X)
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    for n in BATCHES:
        Xb = np.ascontiguousarray(X[N_FIT : N_FIT + n])
        out = sess.run(None, {"X": Xb})
        if is_classifier(est):
            assert names == ["label", "probabilities"]
            label, proba = out
            np.testing.assert_array_equal(label, est.predict(Xb))
            np.testing.assert_allclose(proba, est.predict_proba(Xb), rtol=rtol, atol=ATOL)
            assert proba.shape == (n, len(est.classes_))
        else:
            assert names == ["variable"]
            expected = est.predict(Xb).reshape(n, -1)
            np.testing.assert_allclose(out[0], expected, rtol=rtol, atol=ATOL)
    return est, model


# ======================================================================================
# MLPs: every activation, both classifier losses (binary, multiclass), multilabel,
# squared error (one and two outputs) and Poisson
# ======================================================================================
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("target", ["binary", "multiclass"])
def test_mlp_classifier(activation, target):
    X = _data((6,))
    clf = MLPClassifier((7, 5), activation=activation, max_iter=15)
    _check(clf, X, _targets(X, target))


def test_mlp_classifier_multilabel():
    X = _data((6,))
    clf = MLPClassifier((7,), max_iter=15)
    est, model = _check(clf, X, _targets(X, "multilabel"))
    label = model.graph.output[0]
    assert label.type.tensor_type.elem_type == onnx.TensorProto.INT64


@pytest.mark.parametrize(
    "loss, target, rtol",
    [("squared_error", "regression", 0.0), ("squared_error", "multioutput", 0.0)]
    # exp outputs: relative error of float32 exp
    + [("poisson", "poisson", 1e-5)],
)
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_mlp_regressor(loss, target, rtol, activation):
    X = _data((5,))
    reg = MLPRegressor(hidden_layer_sizes=(6,), activation=activation, loss=loss, max_iter=15)
    _check(reg, X, _targets(X, target), rtol=rtol)


def test_a_single_class():
    """y of one class: that label and one column of ones, as predict / predict_proba."""
    X = _data((4,))
    _check(MLPClassifier((5,), max_iter=5), X, np.full(len(X), "only"))


def test_integer_labels_and_n_features():
    X = _data((4,))
    y = np.where(X[:, 0] > 0, 7, -3)
    est = _fit(MLPClassifier((5,), max_iter=10), X, y)
    model = sknet_onnx.to_onnx(est, 4)  # the number of features instead of a sample
    label, _ = _session(model).run(None, {"X": X[N_FIT:]})
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, est.predict(X[N_FIT:]))


# ======================================================================================
# ConvNets: images from flat rows (input_shape) or 4-D, signals, both pools, dropout
# ======================================================================================
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_convnet_classifier_flat_rows(pool):
    X = _data((64,))
    clf = ConvNetClassifier(
        (3, 4), 3, pool=pool, hidden_layer_sizes=(6,), input_shape=(1, 8, 8), max_iter=3
    )
    _check(clf, X, _targets(X, "multiclass"))


def test_convnet_regressor_images_dropout():
    X = _data((2, 9, 7))
    reg = ConvNetRegressor(
        (3,), 3, strides=2, padding="valid", hidden_layer_sizes=(5,), dropout=0.3, max_iter=3
    )
    _check(reg, X, _targets(X, "regression"))


def test_convnet_signals():
    X = _data((2, 20))
    clf = ConvNetClassifier((3, 3), 5, hidden_layer_sizes=(4,), max_iter=3)
    _check(clf, X, _targets(X, "binary"))


# ======================================================================================
# RNNs: every cell, stacked (return_sequences), univariate 2-D and 3-D input
# ======================================================================================
@pytest.mark.parametrize(
    "cell, activation", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
)
def test_rnn_classifier(cell, activation):
    X = _data((7, 3))
    clf = RNNClassifier(cell, (5, 4), activation=activation, dense_layer_sizes=(3,), max_iter=5)
    _check(clf, X, _targets(X, "multiclass"))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_rnn_stacked(cell):
    """Both directions on ONNX's direction axis, forward first, as sknet concatenates
    them (every step for the stacked layer, each direction's final state for the last)."""
    X = _data((7, 3))
    clf = RNNClassifier(cell, (5, 4), bidirectional=True, max_iter=5)
    _check(clf, X, _targets(X, "multiclass"))


def test_per_step_output_is_refused():
    X = _data((6, 2))
    y = (np.cumsum(X[:, :, 0], axis=1) > 0).astype(int)
    est = _fit(RNNClassifier("gru", (4,), output="sequence", max_iter=2), X, y)
    with pytest.raises(ValueError, match="output='sequence'"):
        sknet_onnx.to_onnx(est, X)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_regressor_univariate(cell):
    X = _data((9,))  # (n, T): one feature per step
    reg = RNNRegressor(cell, (4,), max_iter=5)
    _check(reg, X, _targets(X, "regression"))


# ======================================================================================
# Networks: every layer spec
# ======================================================================================
NETWORKS = {
    "dense": ((6,), [Dense(5, "tanh"), Dropout(0.2), BatchNorm(), Activation("relu")]),
    "conv1d": (
        (2, 23),
        [
            Conv1D(3, 4, stride=2, padding="same", dilation=2),
            MaxPool1D(3, stride=2),
            BatchNorm(),
            Conv1D(4, 3, padding=1, activation="tanh"),
            AvgPool1D(2),
            GlobalMaxPool(),
        ],
    ),
    "conv2d": (
        (1, 11, 10),
        [
            Conv2D(3, 3, stride=2, padding="same", activation="logistic"),
            # an even kernel: 'same' pads one more row and column after than before
            Conv2D(3, 2, padding="same", activation="identity"),
            BatchNorm(),
            Activation("relu"),
            MaxPool2D(2, stride=1),
            AvgPool2D(2),
            Dropout(0.1),
            Flatten(),
            Dense(4),
        ],
    ),
    "conv2d_valid_gap": (
        (2, 9, 9),
        [Conv2D(3, 4, stride=3, padding="valid"), Conv2D(4, 2, padding=2), GlobalAveragePool()],
    ),
    "recurrent": (
        (6, 3),
        [
            LSTM(4, return_sequences=True),
            GRU(3, return_sequences=True),
            RNN(3, activation="relu", return_sequences=True),
            RNN(3),
        ],
    ),
    "recurrent_gap": ((6, 2), [GRU(4, return_sequences=True), GlobalAveragePool()]),
    "residual": (
        (2, 16),
        [
            Residual([Conv1D(2, 3), BatchNorm()], shortcut="identity"),
            Residual([Conv1D(4, 3, stride=2), BatchNorm()], shortcut_batchnorm=True),
            Residual([Conv1D(4, 3, activation="tanh")], shortcut="projection", activation="tanh"),
            GlobalAveragePool(),
            Residual([Dense(4), Dense(4, "identity")], activation="identity"),
            Residual([Dense(3)]),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("cls", [NetworkClassifier, NetworkRegressor])
def test_network(name, cls):
    shape, layers = NETWORKS[name]
    X = _data(shape)
    # batch_size 16: several updates, so the batch normalizations' running statistics
    # differ from their initial values
    est = cls(layers=layers, max_iter=3, batch_size=16)
    target = "multiclass" if cls is NetworkClassifier else "multioutput"
    _check(est, X, _targets(X, target))


@pytest.mark.parametrize("name", ["recurrent", "residual", "conv2d"])
def test_oldest_opset(name):
    shape, layers = NETWORKS[name]
    X = _data(shape)
    est = _fit(
        NetworkClassifier(layers=layers, max_iter=2, batch_size=16), X, _targets(X, "binary")
    )
    model = sknet_onnx.to_onnx(est, X, target_opset=sknet_onnx.MIN_OPSET)
    assert model.opset_import[0].version == sknet_onnx.MIN_OPSET
    label, proba = _session(model).run(None, {"X": X[N_FIT:]})
    np.testing.assert_array_equal(label, est.predict(X[N_FIT:]))
    np.testing.assert_allclose(proba, est.predict_proba(X[N_FIT:]), atol=ATOL)


def test_network_flat_rows_with_input_shape():
    X = _data((2 * 5 * 4,))
    est = NetworkRegressor(
        layers=[Conv2D(2, 3), GlobalAveragePool()], input_shape=(2, 5, 4), max_iter=3
    )
    _check(est, X, _targets(X, "regression"))


def test_float64_network_is_exported_in_float32():
    """A float64 network's weights are rounded to float32: outputs agree to float32
    precision (relative ~1e-7 per operation, a few operations deep)."""
    X = _data((6,)).astype(np.float64)
    est = _fit(MLPRegressor(hidden_layer_sizes=(8, 8), max_iter=15), X, _targets(X, "regression"))
    assert est.network_.dtype == np.float64
    (out,) = _session(sknet_onnx.to_onnx(est, X)).run(None, {"X": X[N_FIT:].astype(np.float32)})
    np.testing.assert_allclose(out.ravel(), est.predict(X[N_FIT:]), rtol=1e-5, atol=1e-5)


def test_sample_of_images_sets_the_input_shape():
    X = _data((1, 6, 6))
    clf = _fit(
        ConvNetClassifier((2,), 3, hidden_layer_sizes=(3,), max_iter=2), X, _targets(X, "binary")
    )
    model = sknet_onnx.to_onnx(clf, X)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, 6, 6]
    label, _ = _session(model).run(None, {"X": X[N_FIT:]})
    np.testing.assert_array_equal(label, clf.predict(X[N_FIT:]))


# ======================================================================================
# the features built on the estimators
# ======================================================================================
def test_fine_tuner():
    X = _data((5,))
    y = _targets(X, "binary")
    base = _fit(MLPClassifier((6,), max_iter=10), X, y)
    with _no_fuss():
        ft = FineTuner(base, MLPClassifier((6,), max_iter=5, random_state=0)).fit(
            X[:N_FIT], y[:N_FIT]
        )
    label, proba = _session(sknet_onnx.to_onnx(ft, X)).run(None, {"X": X[N_FIT:]})
    np.testing.assert_array_equal(label, ft.predict(X[N_FIT:]))
    np.testing.assert_allclose(proba, ft.predict_proba(X[N_FIT:]), atol=ATOL)


@pytest.mark.parametrize("layer", [None, 0, -1])
def test_network_features(layer):
    X = _data((6, 2))
    reg = _fit(RNNRegressor("gru", (4,), dense_layer_sizes=(3,), max_iter=3), X, X[:, 0, 0])
    feats = NetworkFeatures(reg, layer=layer).fit()
    (out,) = _session(sknet_onnx.to_onnx(feats, X)).run(None, {"X": X[N_FIT:]})
    np.testing.assert_allclose(out, feats.transform(X[N_FIT:]), atol=ATOL)


# ======================================================================================
# skl2onnx: pipelines
# ======================================================================================
@pytest.fixture(scope="module")
def skl2onnx():
    skl2onnx = pytest.importorskip("skl2onnx")
    registered = sknet_onnx.register()
    assert MLPClassifier in registered and NetworkRegressor in registered
    return skl2onnx


def _pipeline(est, X, y):
    with _no_fuss():
        return make_pipeline(StandardScaler(), clone(est).set_params(random_state=0)).fit(
            X[:N_FIT], y[:N_FIT]
        )


@pytest.mark.parametrize(
    "est, shape, target",
    [
        (MLPClassifier((6,), max_iter=10), (5,), "multiclass"),
        (RNNClassifier("lstm", (4,), max_iter=3), (8,), "binary"),
        (
            ConvNetClassifier((2,), 3, hidden_layer_sizes=(3,), input_shape=(1, 4, 4), max_iter=3),
            (16,),
            "binary",
        ),
        (
            NetworkClassifier([Conv1D(2, 3), GlobalMaxPool(), Dense(3)], max_iter=3),
            (10,),
            "multiclass",
        ),
    ],
    ids=["mlp", "rnn", "convnet", "network"],
)
def test_classifier_pipeline(skl2onnx, est, shape, target):
    X = _data(shape)
    y = _targets(X, target)
    pipe = _pipeline(est, X, y)
    Xt = X[N_FIT:]
    model = skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False})
    label, proba = _session(model).run(None, {"X": Xt})
    np.testing.assert_array_equal(label, pipe.predict(Xt))
    # the scaler's float32 arithmetic differs from scikit-learn's float64 by ~1e-7
    np.testing.assert_allclose(proba, pipe.predict_proba(Xt), atol=1e-4)
    assert np.mean(np.abs(proba - pipe.predict_proba(Xt))) < ATOL


def test_classifier_pipeline_zipmap(skl2onnx):
    X = _data((5,))
    y = _targets(X, "multiclass")
    pipe = _pipeline(MLPClassifier((6,), max_iter=10), X, y)
    model = skl2onnx.to_onnx(pipe, X[:1])  # default: probabilities as a ZipMap
    label, proba = _session(model).run(None, {"X": X[N_FIT : N_FIT + 20]})
    np.testing.assert_array_equal(label, pipe.predict(X[N_FIT : N_FIT + 20]))
    expected = pipe.predict_proba(X[N_FIT : N_FIT + 20])
    assert [sorted(d) for d in proba] == [sorted(pipe.classes_)] * 20
    got = np.array([[d[c] for c in pipe.classes_] for d in proba])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_multilabel_pipeline_zipmap_columns(skl2onnx):
    X = _data((5,))
    Y = _targets(X, "multilabel")
    pipe = _pipeline(MLPClassifier((6,), max_iter=10), X, Y)
    Xt = X[N_FIT : N_FIT + 50]
    label, proba = _session(skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False})).run(
        None, {"X": Xt}
    )
    np.testing.assert_array_equal(label, pipe.predict(Xt))
    np.testing.assert_allclose(proba, pipe.predict_proba(Xt), atol=1e-4)
    # zipmap="columns": the label, then one probability output per label column
    out = _session(skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": "columns"})).run(
        None, {"X": Xt}
    )
    np.testing.assert_array_equal(out[0], pipe.predict(Xt))
    np.testing.assert_allclose(np.stack(out[1:], axis=1), pipe.predict_proba(Xt), atol=1e-4)


@pytest.mark.parametrize(
    "est, shape",
    [
        (MLPRegressor(hidden_layer_sizes=(6,), max_iter=10), (5,)),
        (RNNRegressor("gru", (3,), max_iter=3), (7,)),
        (NetworkRegressor([Dense(4), BatchNorm(), Dense(3)], max_iter=3, batch_size=16), (5,)),
    ],
    ids=["mlp", "rnn", "network"],
)
def test_regressor_pipeline(skl2onnx, est, shape):
    X = _data(shape)
    y = _targets(X, "regression")
    pipe = _pipeline(est, X, y)
    model = skl2onnx.to_onnx(pipe, X[:1])
    (pred,) = _session(model).run(None, {"X": X[N_FIT:]})
    assert pred.shape == (len(X) - N_FIT, 1)
    np.testing.assert_allclose(pred.ravel(), pipe.predict(X[N_FIT:]), atol=1e-4)


def test_feature_pipelines(skl2onnx):
    """A FineTuner converts as its estimator_; NetworkFeatures feeds a later step."""
    X = _data((5,))
    y = _targets(X, "binary")
    base = _fit(MLPClassifier((6,), max_iter=10), X, y)
    with _no_fuss():
        ft = make_pipeline(
            StandardScaler(), FineTuner(base, MLPClassifier((6,), max_iter=5, random_state=0))
        ).fit(X[:N_FIT], y[:N_FIT])
    label, proba = _session(skl2onnx.to_onnx(ft, X[:1], options={"zipmap": False})).run(
        None, {"X": X[N_FIT:]}
    )
    np.testing.assert_array_equal(label, ft.predict(X[N_FIT:]))
    np.testing.assert_allclose(proba, ft.predict_proba(X[N_FIT:]), atol=1e-4)
    feats = make_pipeline(NetworkFeatures(base), StandardScaler()).fit(X[:N_FIT])
    (out,) = _session(skl2onnx.to_onnx(feats, X[:1])).run(None, {"X": X[N_FIT:]})
    np.testing.assert_allclose(out, feats.transform(X[N_FIT:]), atol=1e-4)


def test_pipeline_with_double_input_is_refused(skl2onnx):
    X = _data((4,))
    pipe = _pipeline(MLPRegressor(hidden_layer_sizes=(3,), max_iter=5), X, X[:, 0])
    with pytest.raises(TypeError, match="float tensors"):
        skl2onnx.to_onnx(pipe, X[:1].astype(np.float64))


# ======================================================================================
# bad input and the optional dependency
# ======================================================================================
def test_unfitted_estimator():
    with pytest.raises(NotFittedError):
        sknet_onnx.to_onnx(MLPClassifier(), 3)
    with pytest.raises(NotFittedError):
        sknet_onnx.to_onnx(FineTuner(MLPClassifier()), 3)


def test_bad_arguments():
    X = _data((4,))
    est = _fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=5), X, X[:, 0])
    with pytest.raises(TypeError, match="sknet estimators"):
        sknet_onnx.to_onnx(StandardScaler().fit(X), X)
    with pytest.raises(ValueError, match="features"):
        sknet_onnx.to_onnx(est, 5)  # fitted on 4 features
    with pytest.raises(ValueError, match="number of features"):
        sknet_onnx.to_onnx(est, 0)
    with pytest.raises(ValueError, match="target_opset"):
        sknet_onnx.to_onnx(est, X, target_opset=7)
    X_before = X.copy()
    sknet_onnx.to_onnx(est, X, target_opset=sknet_onnx.MIN_OPSET)
    np.testing.assert_array_equal(X, X_before)  # the sample is not modified


def test_integral_float_labels_become_int64():
    X = _data((3,))
    est = _fit(MLPClassifier((3,), max_iter=5), X, np.where(X[:, 0] > 0, 1.0, 2.0))
    label, _ = _session(sknet_onnx.to_onnx(est, X)).run(None, {"X": X[N_FIT:]})
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, est.predict(X[N_FIT:]))


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    X = _data((3,))
    est = _fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=5), X, X[:, 0])
    with pytest.raises(ImportError, match=r"sknet\[onnx\]"):
        sknet_onnx.to_onnx(est, X)
    with pytest.raises(ImportError, match=r"sknet\[onnx\]"):
        sknet_onnx.register()


def test_missing_skl2onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ImportError, match=r"skl2onnx.*sknet\[onnx\]"):
        sknet_onnx.register()
