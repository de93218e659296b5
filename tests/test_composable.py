"""NetworkClassifier / NetworkRegressor over sknet.layers, and the six estimators as
presets of the same machinery (``layer_specs``)."""

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import check_is_fitted

import sknet
from sknet import (
    ConvNetClassifier,
    ConvNetRegressor,
    MLPClassifier,
    NetworkClassifier,
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
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePool,
    MaxPool2D,
    Residual,
)
from sknet.transfer import NetworkFeatures

from .pinned_cases import CASES, make_data

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def signals(n=60, seed=0, dtype=np.float64):
    """(n, 2, 12) signals whose class is the sign of the first channel's mean:
    learnable by convolutions and global pooling."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 2, 12).astype(dtype)
    y = (X[:, 0].mean(axis=1) > 0).astype(int)
    return X, y


def bn_layers():
    return [
        ("conv", Conv1D(4, 3, activation="identity")),
        ("bn", BatchNorm()),
        ("relu", Activation("relu")),
        ("gap", GlobalAveragePool()),
    ]


def bn_net(**params):
    chosen = dict(layers=bn_layers(), learning_rate_init=0.02, max_iter=15, random_state=0)
    chosen.update(params)
    return NetworkClassifier(**chosen)


# ------------------------------------------------------------------ presets
def test_layer_specs_of_each_preset():
    mlp = MLPClassifier((8, 4), activation="tanh", dropout=(0.0, 0.3))
    assert mlp.layer_specs((6,)) == [
        ("dense1", Dense(8, "tanh")),
        ("dense2", Dense(4, "tanh")),
        ("dropout2", Dropout(0.3)),
    ]
    rnn = RNNRegressor(cell="lstm", hidden_layer_sizes=(5, 4), dense_layer_sizes=(3,), dropout=0.1)
    assert rnn.layer_specs((7, 3)) == [
        ("lstm1", LSTM(5, return_sequences=True)),
        ("dropout1", Dropout(0.1)),
        ("lstm2", LSTM(4)),
        ("dropout2", Dropout(0.1)),
        ("dense1", Dense(3)),
        ("dropout3", Dropout(0.1)),
    ]
    assert RNNClassifier(cell="gru").layer_specs((7, 3)) == [("gru1", GRU(32))]
    elman = RNNClassifier(cell="rnn", activation="relu", hidden_layer_sizes=(4,))
    assert elman.layer_specs((7, 3)) == [("rnn1", RNN(4, activation="relu"))]
    # a pooling layer only where the map is wide enough (8 -> 4 -> 2 -> 1, then none)
    conv = ConvNetClassifier(conv_filters=(2, 3, 4, 5), hidden_layer_sizes=(6,), pool="max")
    names = [name for name, _ in conv.layer_specs((1, 8, 8))]
    assert names == [
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "conv3",
        "pool3",
        "conv4",
        "flatten",
        "dense1",
    ]
    assert dict(conv.layer_specs((1, 8, 8)))["pool1"] == MaxPool2D(2)
    assert dict(conv.layer_specs((1, 8, 8)))["conv1"] == Conv2D(2, 3)
    sig = ConvNetRegressor(conv_filters=(3,), pool="avg", padding="valid", strides=2)
    assert sig.layer_specs((2, 16))[:2] == [
        ("conv1", Conv1D(3, 3, stride=2, padding="valid")),
        ("pool1", AvgPool1D(2)),
    ]
    assert sig.layer_specs((2, 16))[2] == ("flatten", Flatten())


def test_layer_specs_validate_and_leave_the_estimator_alone():
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(0,)).layer_specs((3,))
    with pytest.raises(ValueError, match="dropout"):
        RNNClassifier(dropout=(0.1, 0.2)).layer_specs((5, 1))
    with pytest.raises(ValueError, match="input_shape"):
        ConvNetClassifier().layer_specs((8,))
    with pytest.raises(ValueError, match="kernel_size=5 is larger"):
        ConvNetClassifier(kernel_size=5, padding="valid").layer_specs((1, 4, 4))
    est = ConvNetClassifier(conv_filters=[2])
    before = est.get_params()
    est.layer_specs((1, 8, 8))
    assert est.get_params() == before and not hasattr(est, "n_features_in_")


def _twin(est):
    """NetworkClassifier/Regressor over ``est.layer_specs`` with est's training params."""
    cls = NetworkClassifier if is_classifier(est) else NetworkRegressor
    accepted = cls().get_params(deep=False)
    params = {k: v for k, v in est.get_params(deep=False).items() if k in accepted}
    params.pop("input_shape", None)  # a ConvNet's layout of X, given to est only
    return cls(layers=est.layer_specs(est.input_shape_), **params)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_presets_equal_network_estimators_on_their_layer_specs(name, dtype):
    """Every pinned case (all six presets; adam, sgd, lbfgs; dropout; early stopping;
    1-D and 2-D convolutions; tanh hidden layers) predicts bit for bit what a
    NetworkClassifier/Regressor over the preset's layer_specs predicts."""
    cls_name, params, family, kind = CASES[name]
    X, y = make_data(family, kind)
    X = X.astype(dtype)
    est = getattr(sknet, cls_name)(random_state=0, **params).fit(X, y)
    X_in = X.reshape(X.shape[0], *est.input_shape_)  # a ConvNet's input_shape reshapes
    twin = _twin(est).fit(X_in, y)
    Xt = make_data(family, kind, n=20, seed=1)[0].astype(dtype)
    Xt_in = Xt.reshape(Xt.shape[0], *est.input_shape_)
    np.testing.assert_array_equal(twin.network_.theta, est.network_.theta)
    np.testing.assert_array_equal(twin.predict(Xt_in), est.predict(Xt))
    np.testing.assert_array_equal(twin.transform(Xt_in), est.transform(Xt))
    if hasattr(est, "predict_proba"):
        np.testing.assert_array_equal(twin.predict_proba(Xt_in), est.predict_proba(Xt))


def test_mlp_with_logistic_hidden_layers_starts_its_output_layer_differently():
    """The one preset whose initialisation differs: scikit-learn draws the MLP's output
    weights with the hidden activation's Glorot factor (2 for logistic, 6 otherwise),
    while a NetworkClassifier's output layer always uses 6."""
    X, y = make_data("flat", "binary")
    for activation, same_output in [("relu", True), ("logistic", False)]:
        mlp = MLPClassifier((5,), activation=activation, random_state=0).initialize(X, y)
        twin = _twin(mlp).initialize(X, y)
        hidden = mlp.network_.layer_offset(1)
        np.testing.assert_array_equal(twin.network_.theta[:hidden], mlp.network_.theta[:hidden])
        out_same = np.array_equal(twin.network_.theta[hidden:], mlp.network_.theta[hidden:])
        assert out_same is same_output


def test_presets_build_their_layers_from_the_specs(monkeypatch):
    """fit builds a preset's hidden layers with LayerSpec.build_layer."""
    calls = []
    original = Dense.build_layer

    def spy(self):
        calls.append(self.units)
        return original(self)

    monkeypatch.setattr(Dense, "build_layer", spy)
    X, y = make_data("flat", "binary")
    MLPClassifier((7, 3), max_iter=2, random_state=0).fit(X, y)
    assert calls == [7, 3]


# ------------------------------------------------------------------ layer lists that do not fit
@pytest.mark.parametrize(
    "layers, X, match",
    [
        (  # a kernel longer than the sequence
            [("conv", Conv1D(4, 20, padding="valid"))],
            np.zeros((10, 2, 12)),
            r"layers\[0\] 'conv' \(Conv1D\).*shape \(2, 12\).*kernel_size=20",
        ),
        (  # shapes that do not chain
            [("conv", Conv1D(4, 3)), ("head", Dense(4))],
            np.zeros((10, 2, 12)),
            r"layers\[1\] 'head' \(Dense\).*shape \(4, 12\) from layers\[0\] 'conv'.*Flatten",
        ),
        (  # a residual branch that changes the shape, without a projection
            [("block", Residual([("conv", Conv1D(8, 3))], shortcut="identity"))],
            np.zeros((10, 2, 12)),
            r"layers\[0\] 'block' \(Residual\).*maps \(2, 12\) to \(8, 12\)",
        ),
        (  # a recurrent layer after a 2-D convolution
            [("conv", Conv2D(4, 3)), ("lstm", LSTM(4))],
            np.zeros((10, 1, 6, 6)),
            r"layers\[1\] 'lstm' \(LSTM\).*shape \(4, 6, 6\) from layers\[0\] 'conv' "
            r"\(Conv2D\).*\(n_timesteps, n_features\)",
        ),
    ],
    ids=["kernel-too-long", "no-chain", "residual-identity", "recurrent-after-conv2d"],
)
def test_layers_that_do_not_fit_are_refused_before_training(layers, X, match, monkeypatch):
    est = NetworkClassifier(layers, max_iter=3)
    y = np.arange(len(X)) % 2
    trained = []
    monkeypatch.setattr(type(est), "_fit_stochastic", lambda *a, **k: trained.append(1))
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not trained
    with pytest.raises(NotFittedError):
        check_is_fitted(est, "network_")


@pytest.mark.parametrize(
    "layers, match",
    [
        ("conv", "'layers' parameter"),
        ([], "at least one layer"),
        ([("a", Dense(3)), ("a", Dense(3))], r"repeated names \['a'\]"),
        ([("a__b", Dense(3))], "name 'a__b'"),
        ([("", Dense(3))], "name ''"),
        ([("a", "dense")], r"layers\[0\] \('a'\) must be a layer of sknet.layers"),
        ([("a", Dense(3)), 3], r"layers\[1\] must be a \(name, layer\) pair"),
        ([("a", Dense(3), "x")], r"layers\[0\] must be a \(name, layer\) pair"),
        ([("conv", Conv1D(0, 3))], r"'conv' \(Conv1D\).*filters must be a positive"),
        ([("conv", Conv1D(2, 3)), ("drop", Dropout(1.5))], r"'drop' \(Dropout\).*rate"),
        ([("d", Dense(3, activation="gelu"))], r"'d' \(Dense\).*activation"),
        ([("r", Residual([("x", 5)]))], r"'r' \(Residual\).*Residual.layers\[0\]"),
    ],
)
def test_bad_layers_values_raise_value_error_naming_them(layers, match):
    X, y = signals(20)
    with pytest.raises(ValueError, match=match):
        NetworkClassifier(layers, max_iter=2).fit(X, y)


def test_set_params_refuses_unknown_layer_names():
    est = NetworkClassifier(bn_layers())
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        est.set_params(layers__nope__filters=3)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        est.set_params(layers__nope=Dense(3))
    with pytest.raises(ValueError, match="Invalid parameter 'nonsense'"):
        est.set_params(layers__conv__nonsense=3)
    with pytest.raises(ValueError, match="default layers"):
        NetworkClassifier().set_params(layers__dense__units=3)
    block = NetworkClassifier([("block", Residual([("conv", Conv1D(3))]))])
    with pytest.raises(ValueError, match="no layer named 'cnv'"):
        block.set_params(layers__block__layers__cnv__filters=3)
    block.set_params(layers__block__layers__conv__filters=5)
    assert block.layers[0][1].layers[0][1].filters == 5


def test_set_params_replaces_a_layer_in_a_new_list():
    layers = bn_layers()
    est = NetworkClassifier(layers)
    est.set_params(layers__gap=Flatten())
    assert est.layers[-1] == ("gap", Flatten())
    assert layers[-1] == ("gap", GlobalAveragePool())  # the user's list is not changed


def test_grid_search_over_layer_parameters():
    X, y = signals(60)
    layers = [
        ("conv", Conv1D(2, 3)),
        ("drop", Dropout(0.1)),
        ("gap", GlobalAveragePool()),
    ]
    snapshot = copy.deepcopy(layers)
    grid = GridSearchCV(
        NetworkClassifier(layers, learning_rate_init=0.05, max_iter=5, random_state=0),
        {"layers__conv__filters": [2, 4], "layers__drop__rate": [0.0, 0.2]},
        cv=2,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    best = grid.best_estimator_
    assert best.get_params()["layers__conv__filters"] == grid.best_params_["layers__conv__filters"]
    assert best.network_.layers[0].filters == grid.best_params_["layers__conv__filters"]
    assert best.network_.layers[1].rate == grid.best_params_["layers__drop__rate"]
    assert layers == snapshot  # GridSearchCV tuned clones


def test_clone_and_get_params_invariance():
    est = bn_net(layers=[*bn_layers(), ("block", Residual([("conv", Conv1D(4))]))])
    params = est.get_params()
    assert params["layers__conv__filters"] == 4
    assert params["layers__block__layers__conv__filters"] == 4
    assert params["layers__bn"] is est.layers[1][1]
    twin = clone(est)
    twin_params = twin.get_params()
    assert set(twin_params) == set(params)
    for key, value in params.items():
        assert twin_params[key] == value, key
    assert twin.layers[0][1] is not est.layers[0][1]  # deep copies of the specs
    # set_params(**get_params()) is a no-op
    before = copy.deepcopy(est.get_params(deep=False))
    est.set_params(**est.get_params())
    assert est.get_params(deep=False) == before


def test_fit_does_not_modify_the_layers_given():
    layers = bn_layers()
    specs = [spec for _, spec in layers]
    snapshot = copy.deepcopy(layers)
    est = bn_net(layers=layers)
    X, y = signals()
    est.fit(X, y)
    est.partial_fit(X, y)
    assert est.layers is layers
    assert layers == snapshot
    assert all(a is b for (_, a), b in zip(layers, specs))
    # one list of specifications can serve two estimators
    other = bn_net(layers=layers, random_state=1).fit(X, y)
    assert other.network_.layers[0] is not est.network_.layers[0]


def test_pickle_roundtrip_keeps_predictions_and_running_statistics():
    X, y = signals()
    est = bn_net().fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(back.network_.state, est.network_.state)
    assert back.get_params()["layers__conv__filters"] == 4


# ------------------------------------------------ training with batch normalization
def test_batch_norm_learns_and_keeps_running_statistics():
    X, y = signals(120)
    est = bn_net(max_iter=40).fit(X, y)
    assert est.score(X, y) > 0.85
    mean, var = est.network_.states[1]["running_mean"], est.network_.states[1]["running_var"]
    assert mean.shape == var.shape == (4,)
    assert not np.allclose(mean, 0) and not np.allclose(var, 1)  # moved from the init


def test_lbfgs_with_batch_norm():
    """Full-batch L-BFGS trains through batch normalization (a deterministic objective);
    after it, the running statistics are the whole training set's at the final weights
    (not a moving average over the line search's trial points), so predicting the
    training set reproduces the training forward pass."""
    X, y = signals(120)
    est = bn_net(solver="lbfgs", max_iter=60).fit(X, y)
    assert est.n_iter_ > 5
    assert est.score(X, y) > 0.9
    assert est.score(*signals(200, seed=1)) > 0.9
    net = est.network_
    conv_out = net.forward(X, stop=1)  # the input of the BatchNorm layer
    C = conv_out.shape[1]
    per_channel = conv_out.transpose(1, 0, 2).reshape(C, -1)
    np.testing.assert_allclose(net.states[1]["running_mean"], per_channel.mean(axis=1), rtol=1e-10)
    np.testing.assert_allclose(
        net.states[1]["running_var"], per_channel.var(axis=1, ddof=1), rtol=1e-10
    )


def test_early_stopping_restores_batch_norm_statistics_with_the_best_weights(monkeypatch):
    X, y = signals(120)
    est = bn_net(early_stopping=True, n_iter_no_change=3, max_iter=200, learning_rate_init=0.05)
    cls = type(est)
    snapshots = {}
    original_keep, original_count = cls._keep_best, cls._update_no_improvement_count

    def keep_best(self):
        original_keep(self)
        snapshots["best"] = (self.network_.theta.copy(), self.network_.state.copy())

    def count(self, *args):
        original_count(self, *args)
        snapshots["last"] = (self.network_.theta.copy(), self.network_.state.copy())

    monkeypatch.setattr(cls, "_keep_best", keep_best)
    monkeypatch.setattr(cls, "_update_no_improvement_count", count)
    est.fit(X, y)
    assert est.n_iter_ < 200  # stopped early, after epochs without improvement
    best_theta, best_state = snapshots["best"]
    np.testing.assert_array_equal(est.network_.theta, best_theta)
    np.testing.assert_array_equal(est.network_.state, best_state)
    assert not np.array_equal(best_state, snapshots["last"][1])  # the restore did something


def test_partial_fit_and_warm_start_with_batch_norm():
    X, y = signals()
    est = bn_net()
    for _ in range(3):
        state = None if not hasattr(est, "n_iter_") else est.network_.state.copy()
        est.partial_fit(X, y, classes=[0, 1])
        if state is not None:  # running statistics carry on between calls
            assert not np.array_equal(est.network_.state, state)
    assert est.t_ == 3 * len(X)
    warm = bn_net(warm_start=True, max_iter=3).fit(X, y)
    net, state = warm.network_, warm.network_.state.copy()
    warm.fit(X, y)
    assert warm.network_ is net  # continued, not rebuilt
    assert not np.array_equal(net.state, state)
    cold = bn_net(max_iter=3).fit(X, y)
    np.testing.assert_array_equal(cold.network_.state, state)  # first fits agree
    cold.fit(X, y)
    np.testing.assert_array_equal(cold.network_.state, state)  # fit starts afresh


def test_class_weight_is_sample_weight_with_batch_norm():
    X, y = signals()
    weighted = bn_net(class_weight={0: 1.0, 1: 3.0}).fit(X, y)
    sample = bn_net().fit(X, y, sample_weight=np.where(y == 1, 3.0, 1.0))
    np.testing.assert_array_equal(weighted.network_.theta, sample.network_.theta)
    np.testing.assert_array_equal(weighted.network_.state, sample.network_.state)
    plain = bn_net().fit(X, y)
    assert not np.array_equal(plain.network_.theta, weighted.network_.theta)


def test_float32_with_batch_norm():
    X, y = signals(dtype=np.float32)
    est = bn_net().fit(X, y)
    assert est.network_.theta.dtype == est.network_.state.dtype == np.float32
    assert est.predict_proba(X).dtype == np.float32
    ref = bn_net().fit(X.astype(np.float64), y)
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), atol=1e-3)


def test_regressor_with_batch_norm_and_multioutput():
    X, _ = signals()
    Y = np.column_stack([X[:, 0].mean(axis=1), X[:, 1].mean(axis=1)])
    est = NetworkRegressor(
        [*bn_layers(), ("dense", Dense(8))], learning_rate_init=0.05, max_iter=100, random_state=0
    ).fit(X, Y)
    assert est.predict(X).shape == (len(X), 2)
    assert est.score(X, Y) > 0.9


# ------------------------------------------------------------------ features built on estimators
def test_summary_transform_save_load_and_network_features(tmp_path):
    X, y = signals()
    est = bn_net(layers=[*bn_layers(), ("dense", Dense(5))]).fit(X, y)
    table = est.summary()
    assert [row["layer"].split("(")[0] for row in table.rows] == [
        "Conv",
        "BatchNorm",
        "Activation",
        "GlobalPool",
        "Dense",
        "Dense",
    ]
    H = est.transform(X)
    assert H.shape == (len(X), 5)
    np.testing.assert_array_equal(NetworkFeatures(est).fit().transform(X), H)
    path = tmp_path / "net.skn"
    sknet.save(est, path)
    back = sknet.load(path)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(back.network_.state, est.network_.state)
    assert back.get_params()["layers__conv__filters"] == 4


def test_sample_weight_zero_matches_no_sample_for_dense_layers():
    """Without batch statistics, a zero-weight sample does not change full-batch
    L-BFGS training (the objective is scikit-learn's weighted mean)."""
    X, y = make_data("flat", "binary")
    w = np.ones(len(X))
    w[:5] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = NetworkClassifier([Dense(4)], solver="lbfgs", max_iter=30, random_state=0)
        a.fit(X, y, sample_weight=w)
        b = NetworkClassifier([Dense(4)], solver="lbfgs", max_iter=30, random_state=0)
        b.fit(X[5:], y[5:])
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-6, atol=1e-8)


def _dropout_block(rate):
    return [
        ("block", Residual([("conv", Conv1D(3, 3)), ("drop", Dropout(rate))])),
        ("gap", GlobalAveragePool()),
    ]


def test_dropout_inside_a_residual_block():
    X, y = signals()
    a = NetworkClassifier(_dropout_block(0.5), max_iter=3, random_state=0).fit(X, y)
    b = NetworkClassifier(_dropout_block(0.5), max_iter=3, random_state=0).fit(X, y)
    off = NetworkClassifier(_dropout_block(0.0), max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(a.network_.theta, b.network_.theta)  # seeded masks
    assert not np.array_equal(a.network_.theta, off.network_.theta)  # masks were drawn
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("nested", [False, True])
def test_lbfgs_refuses_dropout(nested):
    X, y = signals()
    layers = _dropout_block(0.5) if nested else [("conv", Conv1D(3)), ("drop", Dropout(0.5))]
    with pytest.raises(ValueError, match="solver='lbfgs'.*Dropout.*layers__<name>__rate=0"):
        NetworkClassifier(layers, solver="lbfgs", max_iter=3).fit(X, y)
