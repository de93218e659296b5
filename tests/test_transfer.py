"""Transfer learning: NetworkFeatures, FineTuner and the shipped pretrained models."""

import io
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline

import sknet
from sknet import FineTuner, MLPClassifier, MLPRegressor, NetworkFeatures, pretrained
from sknet.datasets import load_mnist
from sknet.layers import fcn

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

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _dense_params(est):
    net = est.network_
    return [{k: v.copy() for k, v in net.params[i].items()} for i in range(len(net.layers))]


def _assert_layers_equal(a, b, layers):
    for i in layers:
        for key in a.network_.params[i]:
            np.testing.assert_array_equal(
                a.network_.params[i][key], b.network_.params[i][key], err_msg=f"layer {i} {key}"
            )


def _assert_layers_differ(a, b, layers):
    for i in layers:
        assert any(
            not np.array_equal(a.network_.params[i][k], b.network_.params[i][k])
            for k in a.network_.params[i]
        ), f"layer {i} did not change"


@pytest.fixture(scope="module")
def digits_tasks():
    """Pretrain on digits 0-4 (2-D, scaled); the new task is digits 5-9."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    old = y < 5
    return X[old], y[old], X[~old], y[~old]


@pytest.fixture(scope="module")
def base_net(digits_tasks):
    Xa, ya, _, _ = digits_tasks
    return MLPClassifier((16, 12), max_iter=60, random_state=0).fit(Xa, ya)


# ======================================================================================
# NetworkFeatures
# ======================================================================================
def test_features_in_grid_search_pipeline_without_refitting(base_net, digits_tasks):
    _, _, Xb, yb = digits_tasks
    theta = base_net.network_.theta.copy()
    n_iter, t = base_net.n_iter_, base_net.t_
    pipe = Pipeline(
        [("features", NetworkFeatures(base_net)), ("clf", LogisticRegression(max_iter=500))]
    )
    search = GridSearchCV(pipe, {"features__layer": [0, None], "clf__C": [0.1, 10.0]}, cv=3)
    search.fit(Xb[:300], yb[:300])
    # the wrapped network is shared, never cloned into an unfitted copy nor refitted
    assert search.best_estimator_.named_steps["features"].estimator is base_net
    np.testing.assert_array_equal(base_net.network_.theta, theta)
    assert (base_net.n_iter_, base_net.t_) == (n_iter, t)
    assert search.score(Xb[300:], yb[300:]) > 0.8
    assert set(search.cv_results_["param_features__layer"]) == {0, None}


def test_features_layers_and_default(base_net, digits_tasks):
    _, _, Xb, _ = digits_tasks
    net = base_net.network_
    np.testing.assert_array_equal(
        NetworkFeatures(base_net).fit().transform(Xb), base_net.transform(Xb)
    )
    first = NetworkFeatures(base_net, layer=0).transform(Xb)
    assert first.shape == (len(Xb), 16)
    np.testing.assert_array_equal(first, net.predict(Xb, stop=1))
    logits = NetworkFeatures(base_net, layer=-1).transform(Xb)
    np.testing.assert_array_equal(logits, net.predict(Xb, output_activation=False))
    # relu features are non-negative, logits are not
    assert first.min() >= 0 and logits.min() < 0
    with pytest.raises(ValueError, match="out of range"):
        NetworkFeatures(base_net, layer=3).fit(Xb)
    with pytest.raises(ValueError, match="out of range"):
        NetworkFeatures(base_net, layer=-4).transform(Xb)


def test_features_clone_and_params_leave_the_network_alone(base_net):
    feats = NetworkFeatures(base_net, layer=0)
    copy = clone(feats)
    assert copy is not feats and copy.estimator is base_net
    copy.set_params(layer=1)
    assert feats.layer == 0
    with pytest.raises(ValueError, match="frozen"):
        feats.set_params(estimator__alpha=1.0)
    assert base_net.alpha == MLPClassifier().alpha
    assert feats.get_params(deep=True) == {"estimator": base_net, "layer": 0}
    names = feats.get_feature_names_out()
    assert names.tolist() == [f"networkfeatures{i}" for i in range(16)]


def test_features_refuses_unfitted_and_accepts_frozen_estimator(base_net, digits_tasks):
    _, _, Xb, _ = digits_tasks
    with pytest.raises(NotFittedError, match="not fitted"):
        NetworkFeatures(MLPClassifier()).fit(Xb)
    with pytest.raises(TypeError, match="sknet estimator"):
        NetworkFeatures(LogisticRegression().fit(Xb[:20], np.arange(20) % 2)).fit(Xb)
    frozen = NetworkFeatures(FrozenEstimator(base_net))
    np.testing.assert_array_equal(frozen.fit(Xb).transform(Xb), base_net.transform(Xb))


@pytest.mark.parametrize("name", exported_estimator_names())
def test_features_every_estimator(name):
    cls = estimator_class(name)
    est, X, y = fitted(cls)
    feats = NetworkFeatures(est).fit(X, y)
    H = feats.transform(X)
    assert H.ndim == 2 and H.shape[0] == len(X)
    np.testing.assert_array_equal(H, est.transform(X))
    head = LogisticRegression() if is_classifier(est) and np.ndim(y) == 1 else Ridge()
    Pipeline([("f", clone(feats)), ("head", head)]).fit(X, y).predict(X)


# ======================================================================================
# FineTuner
# ======================================================================================
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("k", [1, 2])
def test_frozen_layers_bit_identical(base_net, digits_tasks, solver, k):
    _, _, Xb, yb = digits_tasks
    before = _dense_params(base_net)
    new = MLPClassifier(
        (16, 12), solver=solver, learning_rate_init=0.01, max_iter=30, random_state=0
    )
    ft = FineTuner(base_net, new, trainable_layers=k).fit(Xb[:300], yb[:300])
    tuned = ft.estimator_
    n = len(tuned.network_.layers)
    assert ft.first_trainable_layer_ == n - k
    _assert_layers_equal(tuned, base_net, range(n - k))
    _assert_layers_differ(tuned, base_net, range(n - k, n - 1))
    np.testing.assert_array_equal(ft.classes_, np.arange(5, 10))
    # the pretrained network was not touched
    for i, params in enumerate(before):
        for key, value in params.items():
            np.testing.assert_array_equal(base_net.network_.params[i][key], value)
    assert ft.score(Xb[300:], yb[300:]) > 0.6


def test_frozen_with_dropout(digits_tasks):
    Xa, ya, Xb, yb = digits_tasks
    base = MLPClassifier((16,), dropout=0.1, max_iter=30, random_state=0).fit(Xa, ya)
    new = MLPClassifier((16,), dropout=0.1, max_iter=30, random_state=1)
    tuned = FineTuner(base, new).fit(Xb, yb).estimator_
    assert [type(layer).__name__ for layer in tuned.network_.layers] == [
        "Dense",
        "Dropout",
        "Dense",
    ]
    _assert_layers_equal(tuned, base, [0])


def test_frozen_with_early_stopping(digits_tasks):
    Xa, ya, Xb, yb = digits_tasks
    base = MLPClassifier((16,), max_iter=30, random_state=0).fit(Xa, ya)
    new = MLPClassifier(
        (16,), early_stopping=True, learning_rate_init=0.01, max_iter=30, random_state=1
    )
    ft = FineTuner(base, new).fit(Xb, yb)
    assert ft.estimator_.best_validation_score_ > 0.5
    _assert_layers_equal(ft.estimator_, base, [0])


def test_unfreeze_all_trains_everything(base_net, digits_tasks):
    _, _, Xb, yb = digits_tasks
    new = MLPClassifier((16, 12), learning_rate_init=1e-4, max_iter=20, random_state=0)
    ft = FineTuner(base_net, new, trainable_layers="all").fit(Xb[:300], yb[:300])
    assert ft.first_trainable_layer_ == 0
    _assert_layers_differ(ft.estimator_, base_net, [0, 1, 2])
    # a small learning rate: the hidden layers stay close to the pretrained ones
    np.testing.assert_allclose(ft.estimator_.coefs_[0], base_net.coefs_[0], atol=0.05)


def test_starts_from_pretrained_weights():
    """With lr ~ 0, the fine-tuned net is the pretrained body + a new random head."""
    X = make_X(MLPClassifier, n=60)
    y = make_y(X, "binary")
    base = MLPClassifier((8,), max_iter=50, random_state=0).fit(X, y)
    new = MLPClassifier((8,), learning_rate_init=1e-12, max_iter=2, random_state=5)
    ft = FineTuner(base, new, trainable_layers="all", replace_output=False).fit(X, y)
    np.testing.assert_allclose(ft.estimator_.network_.theta, base.network_.theta, atol=1e-9)
    np.testing.assert_array_equal(ft.predict(X), base.predict(X))
    ft2 = FineTuner(base, new, trainable_layers="all").fit(X, 1 - y)
    np.testing.assert_allclose(ft2.estimator_.coefs_[0], base.coefs_[0], atol=1e-9)
    assert not np.allclose(ft2.estimator_.coefs_[1], base.coefs_[1])


def test_classifier_to_regressor(base_net, digits_tasks):
    _, _, Xb, yb = digits_tasks
    new = MLPRegressor(hidden_layer_sizes=(16, 12), solver="lbfgs", max_iter=200, random_state=0)
    ft = FineTuner(base_net, new, trainable_layers=2)
    assert is_regressor(ft) and not is_classifier(ft)
    ft.fit(Xb[:300], yb[:300].astype(float))  # regress the digit's value
    _assert_layers_equal(ft.estimator_, base_net, [0])
    assert ft.estimator_.network_.layers[-1].units == 1
    assert ft.predict(Xb[300:]).shape == (len(Xb) - 300,)
    assert ft.score(Xb[300:], yb[300:]) > 0.3


def test_default_estimator_is_a_clone_of_pretrained(base_net, digits_tasks):
    _, _, Xb, yb = digits_tasks
    ft = FineTuner(base_net).fit(Xb[:100], yb[:100])
    assert type(ft.estimator_) is MLPClassifier
    assert ft.estimator_.get_params() == base_net.get_params()
    assert is_classifier(ft)
    assert ft.predict_proba(Xb[:3]).shape == (3, 5)


def test_float32_frozen_weights(digits_tasks):
    Xa, ya, Xb, yb = (a.astype(np.float32) if a.dtype == float else a for a in digits_tasks)
    base = MLPClassifier((10,), max_iter=20, random_state=0).fit(Xa, ya)
    ft = FineTuner(base, MLPClassifier((10,), max_iter=20, random_state=0)).fit(Xb, yb)
    assert ft.estimator_.network_.dtype == np.float32
    _assert_layers_equal(ft.estimator_, base, [0])


def test_fine_tuner_in_grid_search_and_clone(base_net, digits_tasks):
    _, _, Xb, yb = digits_tasks
    theta = base_net.network_.theta.copy()
    ft = FineTuner(base_net, MLPClassifier((16, 12), max_iter=20, random_state=0))
    copy = clone(ft)
    assert copy.pretrained is base_net and copy.estimator is not ft.estimator
    search = GridSearchCV(
        ft, {"estimator__learning_rate_init": [1e-3, 1e-2], "trainable_layers": [1, "all"]}, cv=2
    )
    search.fit(Xb[:200], yb[:200])
    assert search.best_estimator_.pretrained is base_net
    np.testing.assert_array_equal(base_net.network_.theta, theta)
    scores = cross_val_score(ft, Xb[:200], yb[:200], cv=2)  # stratified: a classifier
    assert scores.shape == (2,)
    with pytest.raises(ValueError, match="frozen"):
        ft.set_params(pretrained__alpha=1.0)


def test_fine_tuner_errors(base_net, digits_tasks):
    _, _, Xb, yb = digits_tasks
    with pytest.raises(ValueError, match="Layer 0 differs"):
        FineTuner(base_net, MLPClassifier((8, 12))).fit(Xb, yb)
    with pytest.raises(ValueError, match="layers below the output"):
        FineTuner(base_net, MLPClassifier((16,))).fit(Xb, yb)
    with pytest.raises(ValueError, match="Layer 0 differs.*tanh"):
        FineTuner(base_net, MLPClassifier((16, 12), activation="tanh")).fit(Xb, yb)
    with pytest.raises(ValueError, match="per-sample shape"):
        FineTuner(base_net).fit(Xb[:, :10], yb)
    with pytest.raises(ValueError, match="only 3 layers with weights"):
        FineTuner(base_net, trainable_layers=4).fit(Xb, yb)
    with pytest.raises(ValueError, match="same loss"):
        FineTuner(base_net, MLPRegressor(hidden_layer_sizes=(16, 12)), replace_output=False).fit(
            Xb, yb.astype(float)
        )
    with pytest.raises(ValueError, match="trainable_layers"):
        FineTuner(base_net, trainable_layers=0).fit(Xb, yb)
    with pytest.raises(NotFittedError):
        FineTuner(MLPClassifier()).fit(Xb, yb)
    with pytest.raises(ValueError, match="neither a shipped model"):
        FineTuner("no_such_model").fit(Xb, yb)


@pytest.mark.parametrize("name", exported_estimator_names())
def test_fine_tune_every_estimator(name):
    """Body frozen bit-identically for each family, on a new target of another kind."""
    cls = estimator_class(name)
    old_kind, new_kind = target_kinds(cls)[:2]
    pre, X, _ = fitted(cls, old_kind)
    y_new = make_y(X, new_kind, seed=1)
    ft = FineTuner(pre, make_estimator(cls, random_state=1)).fit(X, y_new)
    n = len(ft.estimator_.network_.layers)
    frozen = range(ft.first_trainable_layer_)
    assert ft.first_trainable_layer_ > 0
    _assert_layers_equal(ft.estimator_, pre, frozen)
    _assert_layers_differ(ft.estimator_, pre, [n - 1])
    # non-trainable state (batch normalization's running statistics) copied and kept,
    # so the frozen part computes exactly what the pretrained network computes
    for i in frozen:
        for key, value in pre.network_.states[i].items():
            np.testing.assert_array_equal(ft.estimator_.network_.states[i][key], value)
    first = ft.first_trainable_layer_
    np.testing.assert_array_equal(ft.estimator_.forward(X, stop=first), pre.forward(X, stop=first))
    # the pretrained weights were passed to fit_from, not left on the estimator
    assert "_init_theta" not in vars(ft.estimator_)
    assert set(vars(ft.estimator_)) == set(vars(clone(ft.estimator_).fit(X, y_new)))
    assert ft.estimator_.first_trainable_layer_ == ft.first_trainable_layer_


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("family", ["RNN", "ConvNet"])
def test_fine_tune_family_classifier_to_regressor(family, solver):
    """A classifier's body under a new regression head, the last two layers trained;
    the frozen layers stay bit-identical, also through later partial_fit calls."""
    extra = {"dense_layer_sizes": (3,)} if family == "RNN" else {}
    clf_cls = estimator_class(f"{family}Classifier")
    reg_cls = estimator_class(f"{family}Regressor")
    pre, X, _ = fitted(clf_cls, "multiclass", **extra)
    y = make_y(X, "regression", seed=1)
    new = make_estimator(reg_cls, solver=solver, max_iter=10, random_state=1, **extra)
    ft = FineTuner(pre, new, trainable_layers=2).fit(X, y)
    assert is_regressor(ft)
    net = ft.estimator_.network_
    weighted = net.parametrized_layers()
    assert len(weighted) == 3 and ft.first_trainable_layer_ == weighted[1]
    assert net.layers[-1].units == 1 and pre.network_.layers[-1].units == 4
    _assert_layers_equal(ft.estimator_, pre, range(weighted[1]))
    _assert_layers_differ(ft.estimator_, pre, [weighted[1]])
    assert ft.predict(X).shape == (len(X),)
    if solver == "adam":
        ft.estimator_.partial_fit(X, y)
        _assert_layers_equal(ft.estimator_, pre, range(weighted[1]))


@pytest.mark.parametrize("family", ["RNN", "ConvNet"])
def test_fine_tune_family_all_layers_at_low_learning_rate(family):
    cls = estimator_class(f"{family}Classifier")
    pre, X, _ = fitted(cls, "binary")
    y_new = make_y(X, "strings", seed=2)
    ft = FineTuner(
        pre,
        make_estimator(cls, learning_rate_init=1e-4, max_iter=3, random_state=3),
        trainable_layers="all",
    ).fit(X, y_new)
    assert ft.first_trainable_layer_ == 0
    np.testing.assert_array_equal(ft.classes_, ["cat", "dog", "emu"])
    net = ft.estimator_.network_
    body = net.parametrized_layers()[:-1]
    _assert_layers_differ(ft.estimator_, pre, body)
    # moved, but little: 3 Adam steps (one batch per epoch) of about lr = 1e-4 each
    assert ft.estimator_.t_ == 3 * len(X)
    for i in body:
        for key, value in pre.network_.params[i].items():
            np.testing.assert_allclose(net.params[i][key], value, rtol=0, atol=1e-3)


def test_transfer_objects_save_and_load(base_net, digits_tasks):
    _, _, Xb, yb = digits_tasks
    ft = FineTuner(base_net, MLPClassifier((16, 12), max_iter=10, random_state=0))
    ft.fit(Xb[:100], yb[:100])
    for obj in (ft, NetworkFeatures(base_net, layer=0)):
        buf = io.BytesIO()
        sknet.save(obj, buf)
        loaded = sknet.load(io.BytesIO(buf.getvalue()))
        assert type(loaded) is type(obj)
        method = "predict_proba" if hasattr(obj, "predict_proba") else "transform"
        np.testing.assert_array_equal(getattr(loaded, method)(Xb), getattr(obj, method)(Xb))


# ======================================================================================
# shipped pretrained models
# ======================================================================================
def test_pretrained_registry():
    names = pretrained.available()
    assert "mnist_mlp" in names
    for name in names:
        meta = pretrained.info(name)
        assert meta["recipe"].startswith("scripts/train_pretrained_mnist.py")
        assert 0.9 < meta["test_accuracy"] <= 1.0
        assert meta["n_train"] == 8000 and meta["n_test"] == 2000
    a, b = pretrained.load("mnist_mlp"), pretrained.load("mnist_mlp")
    assert a is not b
    assert a.network_.dtype == np.float32
    for bad in ["nope", "../persistence", "mnist_mlp.sknet", None]:
        with pytest.raises(ValueError, match="Unknown pretrained model"):
            pretrained.load(bad)


@pytest.mark.skipif(not MNIST.is_dir(), reason="MNIST files not available")
@pytest.mark.parametrize("name", pretrained.available())
def test_pretrained_accuracy_reproduces_on_real_mnist(name):
    """The documented held-out accuracy is what the shipped model scores."""
    images, labels = load_mnist(MNIST, flatten=False)
    _, idx_test = train_test_split(
        np.arange(len(labels)), test_size=2000, stratify=labels, random_state=0
    )
    model = pretrained.load(name)
    X = images[idx_test].reshape(len(idx_test), *model.network_.input_shape)
    acc = model.score(X, labels[idx_test])
    assert acc == pytest.approx(pretrained.info(name)["test_accuracy"], abs=1e-4)


def test_fine_tune_from_shipped_model_by_name():
    model = pretrained.load("mnist_mlp")
    rng = np.random.RandomState(0)
    X = rng.rand(40, 784).astype(np.float32)
    y = np.arange(40) % 3
    template = MLPClassifier(
        **{
            k: v for k, v in model.get_params().items() if k in ("hidden_layer_sizes", "activation")
        },
        max_iter=3,
    )
    ft = FineTuner("mnist_mlp", template).fit(X, y)
    _assert_layers_equal(ft.estimator_, model, [0])
    assert ft.predict_proba(X).shape == (40, 3)


# ======================================================================================
# batch normalization: running statistics travel with the weights
# ======================================================================================
def _signals(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 1, 20)
    return X, (X[:, 0].mean(axis=1) > 0).astype(int), (X[:, 0, :10].mean(axis=1) > 0).astype(int)


@pytest.fixture(scope="module")
def fcn_net():
    X, y, _ = _signals()
    small = dict(filters=(4, 6, 4), kernel_sizes=(5, 3, 3))
    net = sknet.NetworkClassifier(
        fcn(**small), learning_rate_init=0.02, max_iter=10, random_state=0
    )
    return net.fit(X, y), small


@pytest.mark.parametrize("trainable_layers", [1, 3])
def test_fine_tune_fcn_keeps_frozen_batch_norm_statistics(fcn_net, trainable_layers):
    src, small = fcn_net
    X, _, y_new = _signals(seed=1)
    before = src.network_.state.copy()
    new = sknet.NetworkClassifier(fcn(**small), learning_rate_init=0.02, max_iter=5, random_state=1)
    ft = FineTuner(src, new, trainable_layers=trainable_layers).fit(X, y_new)
    est, first = ft.estimator_, ft.first_trainable_layer_
    kinds = [layer.kind for layer in est.network_.layers]
    frozen_bn = [i for i in range(first) if kinds[i] == "batchnorm"]
    assert len(frozen_bn) == (3 if trainable_layers == 1 else 2)
    for i in frozen_bn:
        for key in ("running_mean", "running_var"):
            np.testing.assert_array_equal(est.network_.states[i][key], src.network_.states[i][key])
    # the frozen part predicts what the source's does, bit for bit
    np.testing.assert_array_equal(est.forward(X, stop=first), src.forward(X, stop=first))
    # trained batch normalization (trainable_layers=3: bn3) starts from the source's
    # statistics and goes on updating them
    trained_bn = [i for i in range(first, len(kinds)) if kinds[i] == "batchnorm"]
    assert len(trained_bn) == (0 if trainable_layers == 1 else 1)
    for i in trained_bn:
        assert not np.array_equal(
            est.network_.states[i]["running_mean"], src.network_.states[i]["running_mean"]
        )
    np.testing.assert_array_equal(src.network_.state, before)  # the source is untouched
    # later partial_fit calls keep the frozen statistics too
    est.partial_fit(X, y_new)
    for i in frozen_bn:
        np.testing.assert_array_equal(
            est.network_.states[i]["running_var"], src.network_.states[i]["running_var"]
        )


def test_fit_from_state(fcn_net):
    src, small = fcn_net
    X, y, _ = _signals(seed=2)
    net = src.network_
    first = len(net.layers) - 1  # only the output layer is trained
    weights = net.theta[: net.layer_offset(first)]
    new = sknet.NetworkClassifier(fcn(**small), max_iter=3, random_state=1)
    # any starting values: frozen statistics are used and kept as given
    state = net.state * 2 + 0.5
    new.fit_from(X, y, weights, first_trainable=first, state=state)
    np.testing.assert_array_equal(new.network_.state, state)
    with pytest.raises(ValueError, match="state has 0 values.*frozen layer"):
        clone(new).fit_from(X, y, weights, first_trainable=first)
    with pytest.raises(ValueError, match="state has 3 values"):
        clone(new).fit_from(X, y, weights, first_trainable=first, state=state[:3])
    with pytest.raises(ValueError, match="state has"):
        clone(new).fit_from(X, y, weights, first_trainable=first, state=np.r_[state, 1.0])
    with pytest.raises(ValueError, match="state must be a 1-D array"):
        clone(new).fit_from(X, y, weights, first_trainable=first, state=state[None])
    with pytest.raises(ValueError, match="state contains NaN"):
        clone(new).fit_from(X, y, weights, first_trainable=first, state=state * np.nan)
    with pytest.raises(ValueError, match="first_trainable=99"):
        clone(new).fit_from(X, y, weights, first_trainable=99, state=state)
    # with nothing frozen, state only sets where training starts
    part = clone(new).fit_from(X, y, weights[:10], state=state[:4])
    assert part.first_trainable_layer_ == 0
