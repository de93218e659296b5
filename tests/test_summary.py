"""summary(): layers, output shapes and parameter counts, before and after fit."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

import sknet
from sknet import MLPClassifier, MLPRegressor, summary


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _data(n_features=6, n_classes=3, n=30, seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, n_features)), np.arange(n) % n_classes


def test_unfitted_counts_follow_the_architecture():
    clf = MLPClassifier(hidden_layer_sizes=(5, 4), dropout=0.5)
    s = summary(clf, input_shape=(6,), n_outputs=3)
    assert [r["output_shape"] for r in s.rows] == [(5,), (5,), (4,), (4,), (3,)]
    assert [r["params"] for r in s.rows] == [6 * 5 + 5, 0, 5 * 4 + 4, 0, 4 * 3 + 3]
    assert s.total_params == s.trainable_params == 35 + 24 + 15
    assert s.non_trainable_params == 0
    assert [r["layer"].split("(")[0] for r in s.rows] == ["Dense", "Dropout"] * 2 + ["Dense"]
    text = str(s)
    assert "Dense(units=5, activation='relu')" in text
    assert "Dropout(rate=0.5)" in text
    assert "Total params: 74" in text
    assert not hasattr(clf, "_network")  # nothing was fitted or attached


def test_unfitted_without_n_outputs_is_symbolic():
    s = summary(MLPRegressor(hidden_layer_sizes=(7,)), input_shape=3)
    out = s.rows[-1]
    assert out["output_shape"] == ("n_outputs",)
    assert out["params_per_output"] == 7 + 1
    assert s.total_params is None and s.trainable_params is None
    text = str(s)
    assert "Dense(units=n_outputs, activation='identity')" in text
    assert "(n, n_outputs)" in text
    assert "Total params: 28 + 8*n_outputs" in text


@pytest.mark.parametrize("n_classes, n_outputs", [(2, 1), (4, 4)])
def test_fitted_summary_matches_the_network(n_classes, n_outputs):
    X, y = _data(n_classes=n_classes)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    before = summary(clf, input_shape=X.shape[1:], n_outputs=n_outputs)
    _quiet_fit(clf, X, y)
    after = clf.summary()
    assert after.total_params == clf.network_.theta.size
    assert after.total_params == sum(w.size for w in clf.coefs_ + clf.intercepts_)
    assert [r["params"] for r in after.rows] == [r["params"] for r in before.rows]
    assert [r["output_shape"] for r in after.rows] == [r["output_shape"] for r in before.rows]
    text = str(after)
    assert text.startswith("MLPClassifier (fitted)")
    expected = "softmax" if n_classes > 2 else "logistic"
    assert f"Output activation: {expected}" in text
    assert "float64" in text


def test_fitted_float32_and_multi_output_regressor():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    Y = rng.normal(size=(30, 2))
    reg = _quiet_fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0), X, Y)
    s = reg.summary()
    assert s.rows[-1]["output_shape"] == (2,)
    assert s.total_params == 4 * 3 + 3 + 3 * 2 + 2
    assert f"Parameter memory: {s.total_params * 4} B (float32)" in str(s)


def test_method_and_function_agree():
    clf = MLPClassifier(hidden_layer_sizes=(3,))
    assert str(clf.summary(input_shape=(2,))) == str(summary(clf, (2,)))
    assert repr(clf.summary(input_shape=(2,))) == str(summary(clf, (2,)))


def test_frozen_layers_are_counted_as_non_trainable():
    X, y = _data()
    base = _quiet_fit(MLPClassifier(hidden_layer_sizes=(5, 4), max_iter=2, random_state=0), X, y)
    clf = MLPClassifier(hidden_layer_sizes=(5, 4), max_iter=2, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # what transfer learning does: layer 0 starts from base's weights and is frozen
        clf.fit_from(X, y, base.network_.theta[: base.network_.layer_offset(1)], first_trainable=1)
    s = clf.summary()
    assert s.non_trainable_params == 6 * 5 + 5
    assert s.trainable_params == s.total_params - s.non_trainable_params
    assert "[frozen]" in str(s).splitlines()[5]
    assert "[frozen]" not in str(s).splitlines()[6]


def test_summary_does_not_change_the_estimator():
    clf = MLPClassifier(hidden_layer_sizes=[4, 3], dropout=[0.1, 0.2])
    params = clone(clf).get_params()
    summary(clf, input_shape=(5,))
    assert clf.get_params() == params
    assert clf.hidden_layer_sizes == [4, 3]


def test_unfitted_needs_an_input_shape():
    with pytest.raises(ValueError, match="needs input_shape"):
        summary(MLPClassifier())


@pytest.mark.parametrize(
    "bad, err",
    [
        ((0,), ValueError),
        ((), ValueError),
        ((2.5,), ValueError),
        ("abc", ValueError),
        (object(), TypeError),
        ((True,), ValueError),
    ],
)
def test_invalid_input_shape(bad, err):
    with pytest.raises(err, match="input_shape"):
        summary(MLPClassifier(), input_shape=bad)


def test_input_shape_that_does_not_fit_the_layers():
    with pytest.raises(ValueError, match="does not fit MLPClassifier's layers"):
        summary(MLPClassifier(), input_shape=(8, 8))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_invalid_n_outputs(bad):
    with pytest.raises(ValueError, match="n_outputs"):
        summary(MLPClassifier(), input_shape=(3,), n_outputs=bad)


def test_invalid_hyperparameters_are_reported():
    with pytest.raises(ValueError, match="activation"):
        summary(MLPClassifier(activation="swish"), input_shape=(3,))


def test_fitted_mismatch_is_reported():
    X, y = _data()
    clf = _quiet_fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0), X, y)
    with pytest.raises(ValueError, match="does not match the fitted network's input shape"):
        clf.summary(input_shape=(7,))
    with pytest.raises(ValueError, match="does not match the fitted network's 3 outputs"):
        clf.summary(n_outputs=5)
    assert clf.summary(input_shape=(6,), n_outputs=3).total_params == 6 * 3 + 3 + 3 * 3 + 3


def test_not_an_sknet_estimator():
    with pytest.raises(TypeError, match="LogisticRegression"):
        summary(LogisticRegression(), input_shape=(3,))


# Every family: the summary before fit (hyperparameters + input shape) describes the same
# network as after fit. Families not merged yet are skipped.
_FAMILIES = [
    ("MLPClassifier", {"hidden_layer_sizes": (4,)}, (5,), "clf"),
    ("MLPRegressor", {"hidden_layer_sizes": (4,)}, (5,), "reg"),
    ("RNNClassifier", {"hidden_layer_sizes": (4,), "cell": "gru"}, (6, 3), "clf"),
    ("RNNRegressor", {"hidden_layer_sizes": (4,), "cell": "lstm"}, (6, 3), "reg"),
    (
        "ConvNetClassifier",
        {
            "conv_filters": (2,),
            "kernel_size": 3,
            "hidden_layer_sizes": (4,),
            "input_shape": (1, 6, 6),
        },
        (1, 6, 6),
        "clf",
    ),
    (
        "ConvNetRegressor",
        {
            "conv_filters": (2,),
            "kernel_size": 3,
            "hidden_layer_sizes": (4,),
            "input_shape": (1, 6, 6),
        },
        (1, 6, 6),
        "reg",
    ),
]


@pytest.mark.parametrize("name, params, shape, kind", _FAMILIES, ids=[f[0] for f in _FAMILIES])
def test_before_and_after_fit_agree_for_every_family(name, params, shape, kind):
    cls = getattr(sknet, name, None)
    if cls is None:
        pytest.skip(f"{name} is not in sknet yet")
    est = cls()
    valid = est.get_params()
    est.set_params(
        **{k: v for k, v in params.items() if k in valid},
        **{k: v for k, v in {"max_iter": 2, "random_state": 0}.items() if k in valid},
    )
    rng = np.random.RandomState(0)
    X = rng.normal(size=(24,) + shape)
    y = np.arange(24) % 3 if kind == "clf" else rng.normal(size=24)
    n_outputs = 3 if kind == "clf" else 1
    before = summary(est, input_shape=shape, n_outputs=n_outputs)
    _quiet_fit(est, X, y)
    after = summary(est)
    assert after.total_params == before.total_params == est.network_.theta.size
    assert [r["output_shape"] for r in after.rows] == [r["output_shape"] for r in before.rows]


# -- recurrent and convolutional networks: shapes and counts follow the formulas ---------
@pytest.mark.parametrize(
    "cell, gates, bias_per_gate", [("rnn", 1, 1), ("lstm", 4, 1), ("gru", 3, 2)]
)
def test_recurrent_summary_shapes_and_counts(cell, gates, bias_per_gate):
    # two stacked layers: the first returns its sequence of states, the second its last
    d, T, H1, H2 = 3, 7, 5, 4
    reg = sknet.RNNRegressor(
        cell=cell, hidden_layer_sizes=(H1, H2), dense_layer_sizes=(6,), dropout=0.1
    )
    s = reg.summary(input_shape=(T, d), n_outputs=2)
    assert [r["output_shape"] for r in s.rows] == [(T, H1), (T, H1), (H2,), (H2,), (6,), (6,), (2,)]

    def rec(d, H):
        return gates * (d * H + H * H + bias_per_gate * H)

    assert [r["params"] for r in s.rows] == [
        rec(d, H1),
        0,
        rec(H1, H2),
        0,
        H2 * 6 + 6,
        0,
        6 * 2 + 2,
    ]
    text = str(s)
    assert f"Recurrent(cell='{cell}', units={H1}, return_sequences=True" in text
    assert f"Recurrent(cell='{cell}', units={H2}, return_sequences=False" in text
    assert f"(n, {T}, {H1})" in text
    # fitted: the same table, with the real output size
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(20, T, d)), rng.normal(size=(20, 2))
    _quiet_fit(reg.set_params(max_iter=2, random_state=0), X, y)
    after = reg.summary()
    assert after.total_params == s.total_params == reg.network_.theta.size
    assert str(after).startswith("RNNRegressor (fitted)")


def test_recurrent_summary_needs_the_sequence_shape():
    with pytest.raises(ValueError, match="needs input_shape"):
        summary(sknet.RNNClassifier())
    with pytest.raises(ValueError, match="does not fit RNNClassifier's layers"):
        summary(sknet.RNNClassifier(), input_shape=(5,))  # one step of nothing


@pytest.mark.parametrize(
    "padding, conv_shape, pooled", [("same", (3, 9, 9), (3, 4, 4)), ("valid", (3, 7, 7), (3, 3, 3))]
)
def test_convnet_summary_shapes_and_counts(padding, conv_shape, pooled):
    C, F, k = 2, 3, 3
    clf = sknet.ConvNetClassifier(
        conv_filters=(F,),
        kernel_size=k,
        padding=padding,
        hidden_layer_sizes=(5,),
        input_shape=(C, 9, 9),
    )
    s = summary(clf, n_outputs=4)  # input_shape comes from the hyperparameter
    assert s.input_shape == (C, 9, 9)
    assert [r["output_shape"] for r in s.rows] == [
        conv_shape,
        pooled,
        (int(np.prod(pooled)),),
        (5,),
        (4,),
    ]
    assert [r["params"] for r in s.rows] == [
        F * C * k * k + F,
        0,
        0,
        int(np.prod(pooled)) * 5 + 5,
        5 * 4 + 4,
    ]
    text = str(s)
    assert text.startswith("ConvNetClassifier (not fitted)")
    assert f"Conv(filters={F}, kernel_size={k}, stride=1, padding='{padding}'" in text
    assert "Pool(mode='max', size=2" in text and "Flatten()" in text


def test_convnet_summary_of_signals():
    reg = sknet.ConvNetRegressor(conv_filters=(4, 8), kernel_size=5, hidden_layer_sizes=(6,))
    s = reg.summary(input_shape=(2, 32))
    assert [r["output_shape"] for r in s.rows] == [
        (4, 32),
        (4, 16),
        (8, 16),
        (8, 8),
        (64,),
        (6,),
        ("n_outputs",),
    ]
    assert s.rows[0]["params"] == 4 * 2 * 5 + 4
    assert s.rows[2]["params"] == 8 * 4 * 5 + 8


# -- repr: scikit-learn's, the non-default hyperparameters, as code that rebuilds it -----
_REPR_PARAMS = {
    "MLPClassifier": {"hidden_layer_sizes": (64, 32), "dropout": 0.2},
    "MLPRegressor": {"loss": "poisson", "max_iter": 50},
    "RNNClassifier": {"cell": "gru", "hidden_layer_sizes": (16,), "clip_norm": 1.0},
    "RNNRegressor": {"cell": "rnn", "dense_layer_sizes": (8,), "activation": "relu"},
    "ConvNetClassifier": {"conv_filters": (8,), "input_shape": (1, 8, 8), "pool": "avg"},
    "ConvNetRegressor": {"kernel_size": 5, "padding": "valid", "hidden_layer_sizes": (32,)},
}


@pytest.mark.parametrize("name", list(_REPR_PARAMS))
def test_repr_shows_the_non_default_hyperparameters(name):
    cls = getattr(sknet, name)
    params = _REPR_PARAMS[name]
    text = repr(cls(**params))
    assert text.startswith(f"{name}(") and text.endswith(")")
    assert repr(cls()) == f"{name}()"
    for key in params:
        assert f"{key}=" in text
    assert text.count("=") == len(params)  # nothing else
    rebuilt = eval(text, {name: cls})  # the repr is code that rebuilds the estimator
    assert rebuilt.get_params() == cls(**params).get_params()


# -- composed networks: residual blocks as a row and its sub-rows, running statistics ----
def test_residual_block_is_a_row_with_sub_rows():
    from sknet.layers import resnet

    clf = sknet.NetworkClassifier(resnet())
    s = clf.summary(input_shape=(1, 150), n_outputs=3)
    layers = clf.build_layers((1, 150), n_outputs=3)
    assert len(s.rows) == len(layers) == 5  # three blocks, the pooling, the output
    block = s.rows[0]
    assert block["layer"] == "Residual(shortcut='auto', shortcut_batchnorm=True, activation='relu')"
    parts = [sub["part"] for sub in block["sublayers"]]
    assert parts == ["branch"] * 8 + ["shortcut"] * 2
    assert block["params"] == sum(sub["params"] for sub in block["sublayers"])
    assert block["sublayers"][0]["params"] == 64 * 1 * 8 + 64
    assert block["sublayers"][-2]["layer"].startswith("Conv(filters=64, kernel_size=1")
    assert block["sublayers"][-2]["output_shape"] == (64, 150)
    # the third block keeps 128 channels: identity shortcut, then its batch normalization
    assert [sub["layer"].split("(")[0] for sub in s.rows[2]["sublayers"][-1:]] == ["BatchNorm"]
    assert s.total_params == sum(r["params"] for r in s.rows)
    # running statistics: a mean and a variance per channel of every BatchNorm
    bn_channels = (64 * 4) + (128 * 4) + (128 * 4)
    assert s.state_size == 2 * bn_channels
    assert block["state"] == 2 * 64 * 4
    text = str(s)
    assert f"Running statistics: {2 * bn_channels:,} (fitted, not trained)" in text
    assert "'layers'" not in text and "'config'" not in text  # no nested configuration
    assert "shortcut: Conv(filters=64, kernel_size=1" in text
    assert "\n     Conv(filters=64, kernel_size=8" in text  # branch rows are indented
    # one line per layer, of a reasonable width
    assert len(text.splitlines()) == 4 + 1 + 5 + (10 + 10 + 9) + 5
    assert max(len(line) for line in text.splitlines()) < 130


def test_identity_shortcut_and_nested_blocks():
    from sknet.layers import Conv1D, Dense, Residual

    s = sknet.NetworkRegressor([Residual([Dense(8), Dense(8)])]).summary(input_shape=(8,))
    block = s.rows[0]
    assert [(sub["part"], sub["layer"]) for sub in block["sublayers"]][-1] == (
        "shortcut",
        "identity",
    )
    assert block["sublayers"][-1]["params"] == 0
    assert "shortcut: identity" in str(s)
    assert s.state_size == 0 and "Running statistics" not in str(s)

    inner = Residual([Conv1D(4)])
    s = sknet.NetworkRegressor([Residual([Conv1D(4), inner])]).summary(input_shape=(1, 20))
    nested = s.rows[0]["sublayers"][1]
    assert nested["layer"].startswith("Residual(") and len(nested["sublayers"]) == 2
    # 1 -> 4 channels, a block of 4 -> 4, the projection of the shortcut 1 -> 4
    assert s.rows[0]["params"] == (4 * 1 * 3 + 4) + (4 * 4 * 3 + 4) + (4 * 1 + 4)
    assert "\n       Conv(filters=4" in str(s)  # two levels of indentation


def test_long_descriptions_drop_default_settings():
    from sknet.layers import Conv1D, Residual

    net = sknet.NetworkClassifier([Residual([Conv1D(128, 8, dilation=4, activation="identity")])])
    s = net.summary(input_shape=(3, 100), n_outputs=2)
    sub = s.rows[0]["sublayers"][0]
    # the rows keep the full description; the table prints the short one
    assert sub["layer"] == (
        "Conv(filters=128, kernel_size=8, stride=1, padding='same', activation='identity', "
        "ndim=1, dilation=4)"
    )
    assert sub["layer_short"] == (
        "Conv(filters=128, kernel_size=8, activation='identity', ndim=1, dilation=4)"
    )
    text = str(s)
    assert sub["layer_short"] in text and sub["layer"] not in text
    assert "Residual(activation='relu')" in text
    assert max(len(line) for line in text.splitlines()) < 130


def test_old_summaries_keep_their_full_descriptions():
    s = sknet.ConvNetClassifier(conv_filters=(16,), padding="valid", input_shape=(1, 8, 8))
    text = str(s.summary(n_outputs=10))
    assert "Conv(filters=16, kernel_size=3, stride=1, padding='valid', activation='relu'" in text
    assert "Running statistics" not in text


def test_fitted_summary_of_batchnorm_and_frozen_block():
    from sknet.layers import BatchNorm, Dense, Residual

    X, y = _data(n_features=6, n_classes=2, n=40)
    layers = [
        ("block", Residual([("dense", Dense(5)), ("bn", BatchNorm())])),
        ("head", Dense(4)),
    ]
    base = _quiet_fit(sknet.NetworkClassifier(layers, max_iter=2, random_state=0), X, y)
    s = base.summary()
    net = base.network_
    assert s.total_params == net.theta.size
    assert s.state_size == net.state.size == 2 * 5  # mean and variance of 5 channels
    assert [sub["part"] for sub in s.rows[0]["sublayers"]] == ["branch", "branch", "shortcut"]
    assert "Running statistics: 10 (fitted, not trained)" in str(s)

    clf = sknet.NetworkClassifier(layers, max_iter=2, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit_from(X, y, net.theta[: net.layer_offset(1)], first_trainable=1, state=net.state)
    s = clf.summary()
    assert s.non_trainable_params == s.rows[0]["params"] == (6 * 5 + 5) + 2 * 5 + (6 * 5 + 5)
    assert s.trainable_params == s.total_params - s.non_trainable_params
    lines = str(s).splitlines()
    assert lines[5].endswith("  80") and "[frozen]" in lines[5]
    assert not any("[frozen]" in line for line in lines[6:])


# -- pipelines and meta-estimators --------------------------------------------------------
def test_pipeline_summary_shows_each_step_and_the_network_tables():
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data(n_features=6, n_classes=3)
    pipe = make_pipeline(StandardScaler(), PCA(4), MLPClassifier((5,), max_iter=3))
    before = summary(pipe, input_shape=(4,), n_outputs=3)
    assert isinstance(before, sknet._summary.PipelineSummary)
    assert [name for name, _, _ in before.steps] == ["standardscaler", "pca", "mlpclassifier"]
    assert [table is None for _, _, table in before.steps] == [True, True, False]
    assert before.total_params == 4 * 5 + 5 + 5 * 3 + 3
    text = str(before)
    assert "[2] pca: PCA(n_components=4)" in text
    assert "[3] mlpclassifier: MLPClassifier(hidden_layer_sizes=(5,), max_iter=3)" in text
    assert "    MLPClassifier (not fitted)" in text and "Total params: 43" in text
    _quiet_fit(pipe, X, y)
    after = summary(pipe)
    table = after.network_summaries["mlpclassifier"]
    assert table.title == "MLPClassifier (fitted)" and table.input_shape == (4,)
    assert table.total_params == summary(pipe[-1]).total_params == 4 * 5 + 5 + 5 * 3 + 3
    with pytest.raises(ValueError, match="needs input_shape"):
        summary(make_pipeline(StandardScaler(), MLPClassifier()))


def test_fine_tuner_and_network_features_summaries():
    from sknet.transfer import FineTuner, NetworkFeatures

    X, y = _data(n_features=6, n_classes=2)
    base = _quiet_fit(MLPClassifier((4,), max_iter=3, random_state=0), X, y)
    ft = FineTuner(base, MLPClassifier((4,), max_iter=3, random_state=1))
    before = summary(ft)  # the new network, on the pretrained network's input shape
    assert before.title == "FineTuner (estimator): MLPClassifier (not fitted)"
    assert before.input_shape == (6,) and before.trainable_params is None
    _quiet_fit(ft, X, y)
    after = summary(ft)
    assert after.title == "FineTuner (estimator_): MLPClassifier (fitted)"
    assert "[frozen]" in str(after)
    assert after.non_trainable_params == 6 * 4 + 4 and after.trainable_params == 4 + 1
    assert summary(FineTuner(base)).title.startswith("FineTuner (pretrained): MLPClassifier")
    assert summary(NetworkFeatures(base)).total_params == summary(base).total_params
    with pytest.raises(TypeError, match="pretrained model is a name or a path"):
        summary(FineTuner("mnist_mlp"))
