"""ConvNetClassifier / ConvNetRegressor: accuracy on digits, model selection over the
architecture, input formats, the training options shared with the MLPs, determinism,
persistence and bad input."""

import pickle
from functools import lru_cache

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknet import ConvNetClassifier, ConvNetRegressor
from sknet._base import BaseNetworkEstimator
from sknet._layers.conv import Conv, Pool

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(conv_filters=(4,), hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)


# ------------------------------------------------------------------ data
@lru_cache
def _digits():
    d = load_digits()
    return d.images / 16.0, d.target


def digits(n=None):
    """(n, 8, 8) images in [0, 1] and labels; a fresh copy each call."""
    X, y = _digits()
    return X[:n].copy(), y[:n].copy()


def signals(n=120, length=16, seed=0):
    """One-channel signals and a target that a 3-tap filter reads."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, length))
    return X, X[:, 3:6].sum(axis=1)


def conv_layers(est):
    return [layer for layer in est._network.layers if isinstance(layer, Conv)]


# ------------------------------------------------------------------ learning
def test_digits_accuracy():
    """The issue's requirement: >= 98% on held-out 8x8 digits (450 test images)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.25, stratify=y, random_state=0
    )
    clf = ConvNetClassifier(
        conv_filters=(16, 32),
        hidden_layer_sizes=(128,),
        input_shape=(1, 8, 8),
        alpha=1e-3,
        batch_size=64,
        learning_rate_init=2e-3,
        max_iter=30,
        random_state=0,
    )
    clf.fit(X_train.astype(np.float32), y_train)
    assert clf.score(X_test.astype(np.float32), y_test) >= 0.98


def test_regressor_learns_a_filter():
    X, y = signals(n=400)
    reg = ConvNetRegressor(
        conv_filters=(8,),
        hidden_layer_sizes=(16,),
        max_iter=100,
        learning_rate_init=0.01,
        random_state=0,
    ).fit(X, y)
    X_test, y_test = signals(n=200, seed=1)
    assert reg.score(X_test, y_test) > 0.9
    # two outputs at once
    Y = np.column_stack([y, X[:, 8] - X[:, 10]])
    reg2 = clone(reg).fit(X, Y)
    assert reg2.predict(X_test).shape == (200, 2)
    assert reg2.n_outputs_ == 2
    assert reg2.score(X_test, np.column_stack([y_test, X_test[:, 8] - X_test[:, 10]])) > 0.8


def test_poisson_regressor_predicts_positive_means():
    X, _ = signals(n=150)
    y = np.random.default_rng(0).poisson(np.exp(0.4 * X[:, 5])).astype(float)
    reg = ConvNetRegressor(loss="poisson", max_iter=20, **SMALL).fit(X, y)
    assert reg.out_activation_ == "exp"
    pred = reg.predict(X)
    assert (pred > 0).all()
    assert np.corrcoef(pred, np.exp(0.4 * X[:, 5]))[0, 1] > 0.5


def test_grid_search_over_architecture():
    X, y = digits(240)
    base = ConvNetClassifier(
        hidden_layer_sizes=(16,),
        max_iter=10,
        batch_size=32,
        learning_rate_init=0.01,
        random_state=0,
    )
    grid = {"conv_filters": [(4,), (4, 8)], "kernel_size": [2, 3]}
    search = GridSearchCV(base, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.8
    best = search.best_estimator_
    assert best.get_params()["conv_filters"] == search.best_params_["conv_filters"]
    convs = conv_layers(best)
    assert [c.filters for c in convs] == list(search.best_params_["conv_filters"])
    assert {c.kernel_size for c in convs} == {search.best_params_["kernel_size"]}
    # the unfitted template is untouched (clone-safe parameters)
    assert not hasattr(base, "_network") and base.conv_filters == (16, 32)


def test_pipeline_with_scaler_on_flat_rows():
    X, y = digits(300)
    pipe = make_pipeline(
        StandardScaler(),
        ConvNetClassifier(input_shape=(1, 8, 8), max_iter=10, batch_size=32, **SMALL),
    )
    pipe.fit(X.reshape(300, 64), y)
    assert pipe[-1]._network.input_shape == (1, 8, 8)
    assert pipe.score(X.reshape(300, 64), y) > 0.9


# ------------------------------------------------------------------ input formats
def test_image_formats_train_the_same_network():
    """(n, 1, H, W), (n, H, W) and flat rows + input_shape are the same images."""
    X, y = digits(150)
    fits = {
        "4d": ConvNetClassifier(max_iter=3, **SMALL).fit(X[:, None], y),
        "3d": ConvNetClassifier(max_iter=3, **SMALL).fit(X, y),
        "2d": ConvNetClassifier(input_shape=(1, 8, 8), max_iter=3, **SMALL).fit(
            X.reshape(150, 64), y
        ),
        "4d+shape": ConvNetClassifier(input_shape=[1, 8, 8], max_iter=3, **SMALL).fit(
            X[:, None], y
        ),
    }
    ref = fits["4d"]
    assert ref._network.input_shape == (1, 8, 8)
    assert conv_layers(ref)[0].ndim == 2
    for name, est in fits.items():
        assert est._network.input_shape == (1, 8, 8), name
        assert_array_equal(est._network.theta, ref._network.theta)
    proba = ref.predict_proba(X[:, None])
    assert_array_equal(fits["2d"].predict_proba(X.reshape(150, 64)), proba)
    assert_array_equal(fits["3d"].predict_proba(X), proba)


def test_multichannel_images_and_signals():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3, 6, 5))
    y = (X[:, 1, 2, 2] > 0).astype(int)
    clf = ConvNetClassifier(max_iter=30, **SMALL).fit(X, y)
    assert clf._network.input_shape == (3, 6, 5)
    assert conv_layers(clf)[0]._kernel_shape() == (4, 3, 3, 3)
    assert clf.score(X, y) > 0.9
    # (n, C, L) signals need input_shape=(C, L); without it they are (n, H, W) images
    S = rng.normal(size=(60, 2, 12))
    ys = S[:, 1, 4] + S[:, 0, 7]
    reg = ConvNetRegressor(input_shape=(2, 12), max_iter=5, **SMALL).fit(S, ys)
    assert reg._network.input_shape == (2, 12)
    assert conv_layers(reg)[0].ndim == 1
    assert reg.predict(S).shape == (60,)
    img = ConvNetRegressor(max_iter=2, **SMALL).fit(S, ys)
    assert img._network.input_shape == (1, 2, 12)


def test_flat_rows_without_input_shape_are_signals():
    X, y = signals(n=80, length=20)
    reg = ConvNetRegressor(max_iter=3, **SMALL).fit(X, y)
    assert reg._network.input_shape == (1, 20)
    assert all(c.ndim == 1 for c in conv_layers(reg))
    assert [type(layer).__name__ for layer in reg._network.layers][:2] == ["Conv", "Pool"]
    assert reg.n_features_in_ == 20
    # a pandas-free list of lists works too
    assert_allclose(reg.predict(X.tolist()), reg.predict(X))


def test_pooling_options_and_tiny_maps():
    X, y = digits(100)
    avg = ConvNetClassifier(pool="avg", max_iter=2, **SMALL).fit(X, y)
    assert [p.mode for p in avg._network.layers if isinstance(p, Pool)] == ["avg"]
    none = ConvNetClassifier(pool_size=None, max_iter=2, **SMALL).fit(X, y)
    assert not any(isinstance(p, Pool) for p in none._network.layers)
    # pooling stops once the map is smaller than the window: 8 -> 4 -> 2 -> 1, then none
    deep = ConvNetClassifier(
        conv_filters=(2, 2, 2, 2), hidden_layer_sizes=(4,), max_iter=1, random_state=0
    ).fit(X, y)
    pools = [p for p in deep._network.layers if isinstance(p, Pool)]
    assert len(pools) == 3
    assert deep._network.layers[-4].output_shape == (2, 1, 1)  # the last convolution
    assert deep.n_layers_ == 4 + 1 + 2


def test_strides_and_padding_set_the_feature_map_sizes():
    X, y = digits(60)
    for padding, strides, expected in [
        ("same", 1, (4, 8, 8)),
        ("valid", 1, (4, 6, 6)),
        (2, 1, (4, 10, 10)),
        ("same", 2, (4, 4, 4)),
        ("valid", 2, (4, 3, 3)),
    ]:
        est = ConvNetClassifier(
            padding=padding, strides=strides, pool_size=None, max_iter=1, **SMALL
        ).fit(X, y)
        assert est._network.layers[0].output_shape == expected, (padding, strides)


# ------------------------------------------------------------------ training options
def test_partial_fit_is_one_epoch_and_continues():
    X, y = digits(200)
    classes = np.arange(10)
    inc = ConvNetClassifier(batch_size=32, **SMALL)
    inc.partial_fit(X, y, classes=classes)
    once = ConvNetClassifier(max_iter=1, batch_size=32, **SMALL).fit(X, y)
    assert_array_equal(inc._network.theta, once._network.theta)
    losses = [inc.partial_fit(X, y).loss_ for _ in range(6)]
    assert losses[-1] < 0.7 * losses[0]
    assert inc.n_iter_ == 1 and len(inc.loss_curve_) == 7
    # a batch with a subset of the classes is fine; unseen classes are not
    inc.partial_fit(X[y < 3], y[y < 3])
    with pytest.raises(ValueError, match="classes"):
        inc.partial_fit(X, y + 10)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        ConvNetClassifier(**SMALL).partial_fit(X, y)
    with pytest.raises(AttributeError, match="partial_fit"):
        ConvNetClassifier(solver="lbfgs").partial_fit(X, y, classes=classes)
    reg = ConvNetRegressor(**SMALL)
    Xs, ys = signals()
    reg_losses = [reg.partial_fit(Xs, ys).loss_ for _ in range(8)]
    assert reg_losses[-1] < reg_losses[0]


def test_warm_start_continues_and_checks_classes():
    X, y = digits(200)
    clf = ConvNetClassifier(max_iter=3, warm_start=True, **SMALL).fit(X, y)
    first = clf._network.theta.copy()
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 6
    assert clf.loss_curve_[3] < clf.loss_curve_[0]
    assert not np.array_equal(first, clf._network.theta)
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        clf.fit(X[y < 5], y[y < 5])
    # without warm_start, a refit starts over from the same initial weights
    cold = ConvNetClassifier(max_iter=3, **SMALL).fit(X, y)
    again = clone(cold).fit(X, y)
    assert_array_equal(cold._network.theta, again._network.theta)


def test_integer_sample_weight_equals_repetition():
    X, y = digits(40)
    w = np.random.default_rng(0).integers(1, 4, size=40)
    # L-BFGS on the full-batch objective: sum_i w_i l_i / sum_i w_i, the same objective
    params = dict(SMALL, solver="lbfgs", max_iter=10, alpha=0.1)
    weighted = ConvNetClassifier(**params).fit(X, y, sample_weight=w)
    repeated = ConvNetClassifier(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert_allclose(weighted._network.theta, repeated._network.theta, rtol=1e-7, atol=1e-9)
    unweighted = ConvNetClassifier(**params).fit(X, y)
    assert not np.allclose(unweighted._network.theta, weighted._network.theta, atol=1e-4)


def test_zero_sample_weight_ignores_samples():
    X, y = signals(n=60)
    w = np.ones(60)
    w[:10] = 0.0
    y_bad = y.copy()
    y_bad[:10] = 1e3
    params = dict(SMALL, solver="lbfgs", max_iter=10)
    a = ConvNetRegressor(**params).fit(X, y_bad, sample_weight=w)
    b = ConvNetRegressor(**params).fit(X, y, sample_weight=w)
    assert_allclose(a._network.theta, b._network.theta, rtol=0, atol=1e-12)


def test_class_weight_is_sample_weight():
    X, y = digits(120)
    params = dict(SMALL, max_iter=3)
    cw = {k: 1.0 + (k % 3) for k in range(10)}
    a = ConvNetClassifier(class_weight=cw, **params).fit(X, y)
    b = ConvNetClassifier(**params).fit(X, y, sample_weight=np.array([cw[k] for k in y]))
    assert_allclose(a._network.theta, b._network.theta, rtol=1e-12, atol=1e-14)
    plain = ConvNetClassifier(**params).fit(X, y)
    assert not np.allclose(a._network.theta, plain._network.theta)
    ConvNetClassifier(class_weight="balanced", **params).fit(X, y)
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        ConvNetClassifier(class_weight="balanced", **SMALL).partial_fit(X, y, classes=range(10))
    with pytest.raises(ValueError, match="class_weight names classes not in y"):
        ConvNetClassifier(class_weight={11: 2.0}, **params).fit(X, y)


def test_early_stopping_restores_best_weights(monkeypatch):
    X, y = digits(300)
    history = []
    original = BaseNetworkEstimator._update_no_improvement_count

    def recording(self, *args):
        original(self, *args)
        history.append(self._network.theta.copy())

    monkeypatch.setattr(BaseNetworkEstimator, "_update_no_improvement_count", recording)
    clf = ConvNetClassifier(
        conv_filters=(4,),
        hidden_layer_sizes=(16,),
        early_stopping=True,
        learning_rate_init=0.03,
        max_iter=60,
        n_iter_no_change=3,
        validation_fraction=0.3,
        random_state=0,
    ).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == len(clf.validation_loss_curve_) == clf.n_iter_ < 60
    best = int(np.argmax(scores))
    assert best < clf.n_iter_ - 1, "the test needs a best epoch before the last one"
    assert clf.best_validation_score_ == scores[best] > 0.8
    assert_array_equal(clf._network.theta, history[best])
    assert not np.array_equal(clf._network.theta, history[-1])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        ConvNetClassifier(early_stopping=True, **SMALL).partial_fit(X, y, classes=range(10))


def test_transform_returns_last_hidden_layer():
    X, y = digits(100)
    clf = ConvNetClassifier(
        conv_filters=(3,),
        hidden_layer_sizes=(12, 6),
        activation="tanh",
        max_iter=3,
        random_state=0,
        dropout=0.2,
    ).fit(X, y)
    H = clf.transform(X)
    assert H.shape == (100, 6)
    out = clf._network.params[-1]
    Z = H @ out["W"] + out["b"]
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    assert_allclose(P / P.sum(axis=1, keepdims=True), clf.predict_proba(X), rtol=1e-10)
    assert (np.abs(H) < 1).all()  # tanh units, dropout off at inference
    assert_array_equal(clf.transform(X), H)  # no dropout randomness at inference
    assert list(clf.get_feature_names_out()) == [f"convnetclassifier{i}" for i in range(6)]
    # no dense hidden layer: the flattened pooled feature maps (3 x 4 x 4)
    flat = ConvNetClassifier(
        conv_filters=(3,), hidden_layer_sizes=(), max_iter=1, random_state=0
    ).fit(X, y)
    assert flat.transform(X).shape == (100, 48)
    assert flat.n_layers_ == 3


def _activations(est, input_shape=(1, 8, 8)):
    """(kind, activation) of every layer with an activation, in order."""
    layers = est.build_layers(input_shape, 10)
    return [
        (type(layer).__name__, layer.activation) for layer in layers if hasattr(layer, "activation")
    ]


def test_dense_activation_sets_the_dense_layers_only():
    """As in the RNNs: ``activation`` for the convolutions, ``dense_activation`` for the
    dense hidden layers; None (the default) uses ``activation`` for both, as before."""
    params = dict(conv_filters=(3, 4), hidden_layer_sizes=(6, 5))
    assert ConvNetClassifier().dense_activation is None
    assert _activations(ConvNetClassifier(**params)) == [
        ("Conv", "relu"),
        ("Conv", "relu"),
        ("Dense", "relu"),
        ("Dense", "relu"),
        ("Dense", "identity"),
    ]
    assert _activations(ConvNetRegressor(activation="relu", dense_activation="tanh", **params)) == [
        ("Conv", "relu"),
        ("Conv", "relu"),
        ("Dense", "tanh"),
        ("Dense", "tanh"),
        ("Dense", "identity"),
    ]
    assert _activations(ConvNetClassifier(activation="logistic", **params))[2] == (
        "Dense",
        "logistic",
    )
    with pytest.raises(ValueError, match="dense_activation"):
        ConvNetClassifier(dense_activation="softsign").fit(*digits(20))


def test_dense_activation_trains_tanh_dense_layers_on_relu_convolutions():
    X, y = digits(100)
    fit = dict(conv_filters=(3,), hidden_layer_sizes=(12,), max_iter=3, random_state=0)
    mixed = ConvNetClassifier(dense_activation="tanh", **fit).fit(X, y)
    H = mixed.transform(X)
    assert (np.abs(H) < 1).all() and (H < 0).any()  # tanh units
    # the same network as activation='tanh' except for the convolutions
    tanh = ConvNetClassifier(activation="tanh", **fit).fit(X, y)
    assert not np.array_equal(mixed._network.theta, tanh._network.theta)
    # dense_activation equal to activation is the default network, bit for bit
    plain = ConvNetClassifier(**fit).fit(X, y)
    same = ConvNetClassifier(dense_activation="relu", **fit).fit(X, y)
    assert_array_equal(same._network.theta, plain._network.theta)
    assert_array_equal(same.predict_proba(X), plain.predict_proba(X))


def test_dropout_and_clip_norm():
    X, y = digits(120)
    base = ConvNetClassifier(max_iter=3, **SMALL).fit(X, y)
    drop = ConvNetClassifier(max_iter=3, dropout=0.5, **SMALL).fit(X, y)
    drop2 = ConvNetClassifier(max_iter=3, dropout=0.5, **SMALL).fit(X, y)
    assert not np.array_equal(base._network.theta, drop._network.theta)
    assert_array_equal(drop._network.theta, drop2._network.theta)
    clipped = ConvNetClassifier(max_iter=3, clip_norm=1e-3, **SMALL).fit(X, y)
    init = ConvNetClassifier(max_iter=1, **SMALL)
    init.fit(X, y)
    # with the gradient norm clipped to 1e-3, Adam still moves (it normalises steps), but
    # plain SGD barely does
    sgd = dict(SMALL, solver="sgd", momentum=0.0, max_iter=1)
    a = ConvNetClassifier(**sgd).fit(X, y)._network.theta
    b = ConvNetClassifier(clip_norm=1e-3, **sgd).fit(X, y)._network.theta
    start = ConvNetClassifier(**dict(sgd, learning_rate_init=1e-12)).fit(X, y)._network.theta
    assert np.linalg.norm(b - start) < 0.01 * np.linalg.norm(a - start)
    assert np.isfinite(clipped._network.theta).all()
    with pytest.raises(ValueError, match="dropout needs a stochastic solver"):
        ConvNetClassifier(solver="lbfgs", dropout=0.2, **SMALL).fit(X, y)


def test_float32_end_to_end():
    X, y = digits(150)
    X32 = X.astype(np.float32)
    clf = ConvNetClassifier(max_iter=4, **SMALL).fit(X32, y)
    assert clf._network.theta.dtype == np.float32
    assert clf.predict_proba(X32).dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32  # float64 input, float32 model
    assert clf.transform(X32).dtype == np.float32
    clf.partial_fit(X, y)  # float64 batches are cast to the model's dtype
    assert clf._network.theta.dtype == np.float32
    clf64 = ConvNetClassifier(max_iter=4, **SMALL).fit(X, y)
    assert clf64._network.theta.dtype == np.float64
    assert clf.loss_curve_[3] == pytest.approx(clf64.loss_, rel=1e-3)
    reg = ConvNetRegressor(max_iter=3, **SMALL).fit(*[a.astype(np.float32) for a in signals()])
    assert reg.predict(signals()[0].astype(np.float32)).dtype == np.float32


def test_pickle_round_trip():
    X, y = digits(150)
    clf = ConvNetClassifier(max_iter=3, **SMALL).fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf))
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(loaded.transform(X), clf.transform(X))
    # the optimizer state survives: training continues identically
    loaded.partial_fit(X, y)
    clf.partial_fit(X, y)
    assert_array_equal(loaded._network.theta, clf._network.theta)


def test_fixed_random_state_is_bit_identical():
    X, y = digits(150)
    for solver in ("adam", "sgd", "lbfgs"):
        a = ConvNetClassifier(solver=solver, max_iter=3, **SMALL).fit(X, y)
        b = ConvNetClassifier(solver=solver, max_iter=3, **SMALL).fit(X, y)
        assert_array_equal(a._network.theta, b._network.theta)
    c = ConvNetClassifier(max_iter=3, **dict(SMALL, random_state=1)).fit(X, y)
    assert not np.array_equal(c._network.theta, a._network.theta)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_bit_identical_across_numba_thread_counts():
    """Batches of 50 split over the threads: 2-D and 1-D convolutions, max pooling,
    dropout."""
    X, y = digits(200)
    Xs, ys = signals(n=200)
    old = numba.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            clf = ConvNetClassifier(
                conv_filters=(4, 6),
                hidden_layer_sizes=(16,),
                max_iter=2,
                batch_size=50,
                dropout=0.2,
                random_state=0,
            ).fit(X, y)
            reg = ConvNetRegressor(
                conv_filters=(3, 3),
                hidden_layer_sizes=(8,),
                max_iter=2,
                batch_size=50,
                random_state=0,
            ).fit(Xs, ys)
            results.append(
                (clf._network.theta.copy(), reg._network.theta.copy(), clf.predict_proba(X))
            )
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results):
        assert_array_equal(a, b)


# ------------------------------------------------------------------ bad input
def test_wrong_input_shape_for_the_data():
    X, y = digits(30)
    with pytest.raises(
        ValueError,
        match=r"input_shape=\(1, 7, 7\) needs 49 features per row, "
        "but X has 64",
    ):
        ConvNetClassifier(input_shape=(1, 7, 7), **SMALL).fit(X.reshape(30, 64), y)
    with pytest.raises(
        ValueError,
        match=r"input_shape=\(2, 8, 8\) does not match X's "
        r"per-sample shape \(8, 8\)",
    ):
        ConvNetClassifier(input_shape=(2, 8, 8), **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="input_shape must be"):
        ConvNetClassifier(input_shape=(1, 1, 8, 8), **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="input_shape must be"):
        ConvNetClassifier(input_shape=(0, 64), **SMALL).fit(X.reshape(30, 64), y)


def test_kernel_larger_than_the_image():
    X, y = digits(30)
    with pytest.raises(
        ValueError,
        match="kernel_size=9 is larger than the 8x8 input of convolution 1.*padding='valid'",
    ):
        ConvNetClassifier(kernel_size=9, padding="valid", **SMALL).fit(X, y)
    # the second convolution sees the pooled 3x3 map
    with pytest.raises(
        ValueError, match="kernel_size=3 is larger than the 1x1 input of convolution 3"
    ):
        ConvNetClassifier(**dict(SMALL, conv_filters=(2, 2, 2)), padding="valid").fit(X, y)
    with pytest.raises(ValueError, match="kernel_size=40 is larger than the 30 input"):
        ConvNetRegressor(kernel_size=40, padding=4, **SMALL).fit(*signals(length=30))
    # 'same' padding always fits
    ConvNetClassifier(kernel_size=9, max_iter=1, **SMALL).fit(X, y)


def test_non_finite_and_malformed_input():
    X, y = digits(40)
    est = ConvNetClassifier(max_iter=1, **SMALL)
    Xnan = X.copy()
    Xnan[3, 2, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(Xnan, y)
    Xinf = X.copy()
    Xinf[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.fit(Xinf, y)
    with pytest.raises(ValueError, match="got a 5-D array"):
        est.fit(X[:, None, None], y)
    with pytest.raises(ValueError, match="got a 1-D array|Expected 2D array"):
        est.fit(X[:, 0, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="conv_filters must be positive integers"):
        ConvNetClassifier(conv_filters=(4, 0)).fit(X, y)
    with pytest.raises(ValueError, match="padding"):
        ConvNetClassifier(padding="full").fit(X, y)
    with pytest.raises(ValueError, match="pool"):
        ConvNetClassifier(pool="min").fit(X, y)
    est.fit(X, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(Xnan)
    with pytest.raises(
        ValueError,
        match=r"per-sample shape \(1, 6, 6\), but the network "
        r"was fitted on \(1, 8, 8\)",
    ):
        est.predict(X[:, :6, :6])
    # flat rows of a network fitted on images: the right length is read as the images
    np.testing.assert_array_equal(est.predict(X.reshape(40, 64)), est.predict(X))
    with pytest.raises(ValueError, match=r"X has 60 features per row, .* need 64"):
        est.predict(X.reshape(40, 64)[:, :60])
    with pytest.raises(ValueError, match=r"per-sample shape \(1, 6, 6\), but the network"):
        est.partial_fit(X[:, :6, :6], y)
    # flat rows fitted as flat rows keep scikit-learn's feature-count message
    reg = ConvNetRegressor(max_iter=1, **SMALL).fit(*signals(length=12))
    with pytest.raises(
        ValueError, match="X has 10 features, but ConvNetRegressor is expecting 12 features"
    ):
        reg.predict(signals(length=10)[0])


def test_ragged_input():
    images = [np.zeros((8, 8)), np.zeros((7, 8))]
    with pytest.raises(ValueError, match="rectangular array of samples.*ragged"):
        ConvNetClassifier(**SMALL).fit(images, [0, 1])
    as_object = np.empty(2, dtype=object)
    as_object[:] = images
    with pytest.raises(ValueError, match="ragged"):
        ConvNetClassifier(**SMALL).fit(as_object, [0, 1])
    X, y = digits(20)
    clf = ConvNetClassifier(max_iter=1, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="ragged"):
        clf.predict([X[0], X[1, :7]])
    with pytest.raises(ValueError, match="could not convert string to float"):
        clf.predict([[["a"] * 8] * 8])


def test_predict_accepts_the_other_image_layouts():
    """Fitted on flat rows + input_shape, on (n, H, W) or on (n, 1, H, W): every layout of
    the same images predicts the same; a wrong size names the shapes."""
    X, y = digits(60)
    layouts = {"flat": X.reshape(60, 64), "3d": X, "4d": X[:, None]}
    for fitted_on, X_fit in layouts.items():
        clf = ConvNetClassifier(input_shape=(1, 8, 8), max_iter=2, **SMALL).fit(X_fit, y)
        proba = clf.predict_proba(X_fit)
        for name, X_other in layouts.items():
            assert_array_equal(clf.predict_proba(X_other), proba, err_msg=(fitted_on, name))
            assert_array_equal(clf.transform(X_other), clf.transform(X_fit))
        clf.partial_fit(layouts["4d"], y)  # and training continues on another layout
        with pytest.raises(ValueError, match=r"needs 64 features per row, but X has 63"):
            clf.predict(X.reshape(60, 64)[:, :63])
        with pytest.raises(ValueError, match=r"\(1, 7, 8\)"):
            clf.predict(X[:, None, :7])
    # without input_shape, (n, H, W) and (n, 1, H, W) are the same images too
    clf = ConvNetClassifier(max_iter=2, **SMALL).fit(X, y)
    assert_array_equal(clf.predict_proba(X[:, None]), clf.predict_proba(X))


def test_read_only_input_compiles_no_extra_kernel():
    from sknet.kernels import conv as ck
    from sknet.kernels import pool as pk

    X, y = digits(30)
    Xs, ys = signals(n=30)
    clf = ConvNetClassifier(max_iter=1, **SMALL).fit(X, y)
    reg = ConvNetRegressor(max_iter=1, **SMALL).fit(Xs, ys)
    for est, data in ((clf, X), (reg, Xs)):
        frozen = data.copy()
        frozen.flags.writeable = False
        assert_array_equal(est.predict(frozen), est.predict(data))
    # conv1d runs conv2d, whose slots run in ck._conv_block (its arguments: X, ...)
    assert not any("readonly" in str(sig) for sig in ck._conv_block.signatures)
    for kernel in (pk._maxpool_2x2_forward, pk._maxpool_1x2_forward, pk._maxpool2d_forward):
        assert not any("readonly" in str(sig[0]) for sig in kernel.signatures)


def test_blas_is_single_threaded_during_passes_and_restored_after(monkeypatch):
    """Dense layers' GEMMs run with one BLAS thread next to numba's parallel convolutions
    (no oversubscription); the caller's BLAS limits come back afterwards."""
    import scipy.linalg  # noqa: F401  (load scipy's OpenBLAS, which numba uses)
    from threadpoolctl import threadpool_info, threadpool_limits

    from sknet._network import Network

    def blas_threads():
        return {d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"}

    seen = []
    for name in ("loss_and_grad", "predict"):
        original = getattr(Network, name)

        def recording(self, *args, _original=original, **kwargs):
            seen.append(blas_threads())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Network, name, recording)
    X, y = digits(40)
    with threadpool_limits(2, user_api="blas"):
        clf = ConvNetClassifier(max_iter=1, **SMALL).fit(X, y)
        clf.predict_proba(X)
        clf.transform(X)
        assert blas_threads() == {2}
    assert len(seen) >= 3 and all(s == {1} for s in seen), seen


def test_user_arrays_are_not_modified():
    X, y = digits(80)
    X32 = X.astype(np.float32)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, 80)
    Xs, ys = signals(n=80)
    copies = [a.copy() for a in (X, y, X32, sw, Xs, ys)]
    clf = ConvNetClassifier(max_iter=2, class_weight="balanced", dropout=0.3, **SMALL)
    clf.fit(X, y, sample_weight=sw)
    clf.predict_proba(X)
    clf.transform(X)
    clf.fit(X32, y, sample_weight=sw)
    ConvNetClassifier(input_shape=(1, 8, 8), max_iter=2, **SMALL).fit(X.reshape(80, 64), y)
    reg = ConvNetRegressor(max_iter=2, **SMALL).fit(Xs, ys, sample_weight=sw)
    reg.partial_fit(Xs, ys)
    reg.predict(Xs)
    for before, after in zip(copies, (X, y, X32, sw, Xs, ys)):
        assert_array_equal(before, after)
