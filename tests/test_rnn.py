"""RNNRegressor and RNNClassifier: learning, the scikit-learn API around them, bad input.

scikit-learn's own estimator checks run in test_common.py; the layer and its gradients
in test_recurrent_layer.py. Data are tiny and epochs few, to keep this file fast.
"""

import pickle
import warnings

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from sknet import RNNClassifier, RNNRegressor
from sknet._base import DivergenceError
from sknet.timeseries import LagWindows, forecast
from tests.kernels import reference_recurrent as ref

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CELLS = ["rnn", "lstm", "gru"]
FAST = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, random_state=0)


def memory_task(rng, n=300, T=10):
    """y needs the first step (memory) and the last step of a 2-feature sequence."""
    X = rng.uniform(-1, 1, size=(n, T, 2))
    return X, X[:, 0, 0] + 0.5 * X[:, -1, 1]


def sign_task(rng, n=300, T=12):
    """Binary label: the sign of the sum of a univariate sequence, 2-D X (n, T)."""
    X = rng.normal(size=(n, T))
    return X, (X.sum(axis=1) > 0).astype(int)


# --------------------------------------------------------------------------------------
# learning
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_regressor_learns_a_memory_task(cell, rng):
    X, y = memory_task(rng)
    reg = RNNRegressor(
        cell=cell, hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.02, random_state=0
    ).fit(X[:200], y[:200])
    assert reg.score(X[200:], y[200:]) > 0.8
    assert reg.loss_curve_[-1] < 0.2 * reg.loss_curve_[0]
    assert reg.n_iter_ == len(reg.loss_curve_)
    assert reg.n_layers_ == 3 and reg.n_outputs_ == 1 and reg.out_activation_ == "identity"


@pytest.mark.parametrize("cell", CELLS)
def test_classifier_learns_the_sign_of_a_sum(cell, rng):
    X, y = sign_task(rng)
    clf = RNNClassifier(cell=cell, max_iter=40, **FAST).fit(X[:200], y[:200])
    assert clf.score(X[200:], y[200:]) > 0.8
    assert_array_equal(clf.classes_, [0, 1])
    proba = clf.predict_proba(X[200:])
    assert proba.shape == (100, 2)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_array_equal(clf.predict(X[200:]), clf.classes_[proba.argmax(axis=1)])


def test_multiclass_string_labels_stacked_with_dense_and_dropout(rng):
    """Three string classes: which third of the sequence holds the largest value."""
    X = rng.normal(size=(240, 9, 1))
    third = np.argmax(X[:, :, 0], axis=1) // 3
    y = np.array(["early", "middle", "late"])[third]
    clf = RNNClassifier(
        cell="gru",
        hidden_layer_sizes=(12, 12),
        dense_layer_sizes=(8,),
        dropout=0.1,
        max_iter=60,
        learning_rate_init=0.02,
        random_state=0,
    ).fit(X[:180], y[:180])
    assert clf.n_layers_ == 5
    assert sorted(clf.classes_) == ["early", "late", "middle"]
    assert clf.predict_proba(X).shape == (240, 3)
    assert clf.score(X[180:], y[180:]) > 0.6  # chance is 1/3


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_other_solvers(solver, rng):
    X, y = memory_task(rng, n=150, T=6)
    reg = RNNRegressor(
        cell="gru",
        hidden_layer_sizes=(8,),
        solver=solver,
        max_iter=80,
        batch_size=16,
        learning_rate_init=0.05,
        random_state=0,
    ).fit(X, y)
    assert reg.score(X, y) > 0.8


# --------------------------------------------------------------------------------------
# the scikit-learn API around the estimators
# --------------------------------------------------------------------------------------
def test_pipeline_and_grid_search_over_cell_and_sizes(rng):
    X, y = sign_task(rng, n=160, T=8)
    pipe = make_pipeline(StandardScaler(), RNNClassifier(max_iter=20, **FAST))
    grid = GridSearchCV(
        pipe,
        {"rnnclassifier__cell": ["rnn", "gru"], "rnnclassifier__hidden_layer_sizes": [(4,), (8,)]},
        cv=KFold(2, shuffle=True, random_state=0),
    )
    grid.fit(X[:120], y[:120])
    assert len(grid.cv_results_["params"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_params_["rnnclassifier__cell"] in ("rnn", "gru")
    assert grid.best_score_ > 0.7
    assert grid.score(X[120:], y[120:]) > 0.7
    # the refitted estimator has the best parameters, unchanged by fit
    best = grid.best_estimator_[-1]
    assert (
        best.get_params()["hidden_layer_sizes"]
        == grid.best_params_["rnnclassifier__hidden_layer_sizes"]
    )


def test_partial_fit(rng):
    X, y = sign_task(rng, n=120, T=8)
    clf = RNNClassifier(cell="lstm", **FAST)
    losses = []
    for epoch in range(15):
        clf.partial_fit(X, y, classes=[0, 1] if epoch == 0 else None)
        losses.append(clf.loss_)
        assert clf.t_ == (epoch + 1) * len(X)
    assert losses[-1] < 0.7 * losses[0]
    assert clf.loss_curve_ == losses
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        clf.partial_fit(X, np.full(len(X), 7))
    reg = RNNRegressor(cell="rnn", **FAST)
    Xr, yr = memory_task(rng, n=100, T=5)
    for _ in range(3):
        reg.partial_fit(Xr, yr)
    assert len(reg.loss_curve_) == 3 and reg.t_ == 300
    assert not hasattr(RNNRegressor(solver="lbfgs"), "partial_fit")


def test_warm_start_continues_from_the_fitted_weights(rng):
    X, y = memory_task(rng, n=150, T=6)
    reg = RNNRegressor(cell="gru", max_iter=15, warm_start=True, **FAST).fit(X, y)
    theta = reg._network.theta.copy()
    first_curve = list(reg.loss_curve_)
    reg.fit(X, y)
    # the second fit starts from the first one's weights: its first epoch's loss is close
    # to where the first fit ended, far below a fresh start's
    assert reg.loss_curve_[:15] == first_curve
    assert reg.loss_curve_[15] < 0.6 * first_curve[0]
    assert reg.loss_curve_[15] < 1.1 * first_curve[-1]
    assert not np.array_equal(reg._network.theta, theta)
    # without warm_start, a second fit starts afresh and repeats the first exactly
    cold = RNNRegressor(cell="gru", max_iter=15, **FAST)
    a = cold.fit(X, y)._network.theta.copy()
    assert_array_equal(cold.fit(X, y)._network.theta, a)
    assert_array_equal(a, theta)


def test_zero_sample_weight_is_dropping_the_sample(rng):
    """Full-batch L-BFGS: weight 0 is the same objective as leaving the samples out."""
    X, y = memory_task(rng, n=60, T=5)
    sw = np.ones(60)
    sw[::3] = 0.0
    keep = sw > 0
    params = dict(cell="lstm", hidden_layer_sizes=(5,), solver="lbfgs", max_iter=40, random_state=0)
    a = RNNRegressor(**params).fit(X, y, sample_weight=sw)
    b = RNNRegressor(**params).fit(X[keep], y[keep])
    assert_allclose(a.predict(X), b.predict(X), rtol=1e-6, atol=1e-8)
    # and weights do change the fit
    c = RNNRegressor(**params).fit(X, y, sample_weight=np.where(y > 0, 5.0, 1.0))
    assert np.abs(c.predict(X) - b.predict(X)).max() > 1e-3


def test_class_weight_equals_the_matching_sample_weight(rng):
    X, y = sign_task(rng, n=100, T=6)
    y[:70] = 0  # imbalanced
    for cw in [{0: 1.0, 1: 3.0}, "balanced"]:
        a = RNNClassifier(cell="rnn", max_iter=5, class_weight=cw, **FAST).fit(X, y)
        b = RNNClassifier(cell="rnn", max_iter=5, **FAST).fit(
            X, y, sample_weight=compute_sample_weight(cw, y)
        )
        assert_array_equal(a._network.theta, b._network.theta)
    plain = RNNClassifier(cell="rnn", max_iter=5, **FAST).fit(X, y)
    assert not np.array_equal(plain._network.theta, a._network.theta)
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        RNNClassifier(class_weight="balanced", **FAST).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="classes not in y"):
        RNNClassifier(class_weight={5: 2.0}, max_iter=2, **FAST).fit(X, y)


def test_early_stopping(rng):
    X, y = memory_task(rng, n=200, T=6)
    y = y + rng.normal(scale=0.3, size=y.shape)  # noise: the validation score plateaus
    reg = RNNRegressor(
        cell="gru",
        max_iter=300,
        early_stopping=True,
        n_iter_no_change=5,
        validation_fraction=0.2,
        **{**FAST, "learning_rate_init": 0.03},
    )
    reg.fit(X, y)
    assert reg.n_iter_ < 300
    assert len(reg.validation_scores_) == len(reg.validation_loss_curve_) == reg.n_iter_
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    assert reg.best_validation_score_ > 0.7
    # the weights of the best epoch are restored
    assert_array_equal(reg._network.theta, reg._best_theta)
    best_epoch = int(np.argmax(reg.validation_scores_))
    assert best_epoch < reg.n_iter_ - 1
    with pytest.raises(ValueError, match="early_stopping"):
        reg.partial_fit(X, y)


def test_multi_output_regression_gives_multi_step_forecasts():
    t = np.arange(400)
    series = np.sin(2 * np.pi * t / 20) + 0.5 * np.sin(2 * np.pi * t / 7)
    lags = LagWindows(window=20, horizon=4).fit(series)
    X, y = lags.make_xy(series[:320])
    reg = RNNRegressor(
        cell="gru", hidden_layer_sizes=(24,), max_iter=80, learning_rate_init=0.01, random_state=0
    ).fit(X, y)
    assert reg.n_outputs_ == 4
    Xt, yt = lags.make_xy(series[300:])
    pred = reg.predict(Xt)
    assert pred.shape == yt.shape == (77, 4)
    for step in range(4):
        r2 = (
            1
            - ((pred[:, step] - yt[:, step]) ** 2).sum()
            / ((yt[:, step] - yt[:, step].mean()) ** 2).sum()
        )
        assert r2 > 0.9, (step, r2)
    # a direct forecast from the end of the history is the last window's prediction
    fc = forecast(reg, series[:320], steps=4, method="direct")
    assert_allclose(fc, reg.predict(lags.transform(series[:320])[-1:])[0])
    assert np.abs(fc - series[320:324]).max() < 0.25


@pytest.mark.parametrize("cell", CELLS)
def test_transform_returns_the_final_hidden_state(cell, rng):
    X, y = memory_task(rng, n=40, T=5)
    reg = RNNRegressor(cell=cell, max_iter=3, **FAST).fit(X, y)
    H = reg.transform(X)
    assert H.shape == (40, 8)
    p = reg._network.params[0]
    if cell == "rnn":
        Hs = ref.elman_forward(X, p["W_x"], p["W_h"], p["b"])
    elif cell == "lstm":
        Hs = ref.lstm_forward(X, p["W_x"], p["W_h"], p["b"])[0]
    else:
        Hs = ref.gru_forward(X, p["W_x"], p["W_h"], p["b_x"], p["b_h"])
    assert_allclose(H, Hs[:, -1], rtol=1e-10, atol=1e-12)
    # the output layer reads exactly this state
    W, b = reg._network.params[1]["W"], reg._network.params[1]["b"]
    assert_allclose(reg.predict(X), (H @ W + b).ravel(), rtol=1e-10, atol=1e-12)
    names = reg.get_feature_names_out()
    assert len(names) == 8 and names[0] == "rnnregressor0"


def test_stacked_transform_is_the_last_recurrent_layer(rng):
    X, y = sign_task(rng, n=30, T=5)
    clf = RNNClassifier(cell="lstm", hidden_layer_sizes=(6, 4), max_iter=2, random_state=0).fit(
        X, y
    )
    assert clf.transform(X).shape == (30, 4)
    H = clf.transform(X)
    assert np.all(np.abs(H) < 1)  # LSTM states: o * tanh(c)


def test_float32_end_to_end(rng):
    X, y = memory_task(rng, n=120, T=6)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    reg = RNNRegressor(cell="lstm", max_iter=30, **FAST).fit(X32, y32)
    assert reg._network.theta.dtype == np.float32
    assert reg.predict(X32).dtype == np.float32
    assert reg.transform(X32).dtype == np.float32
    assert reg.predict(X).dtype == np.float32  # float64 input is cast to the model's dtype
    assert all(np.isfinite(reg.loss_curve_))
    assert reg.score(X32, y32) > 0.6
    # the float64 model of the same settings learns the same function, approximately
    reg64 = RNNRegressor(cell="lstm", max_iter=30, **FAST).fit(X, y)
    assert_allclose(reg.predict(X), reg64.predict(X), atol=0.05)
    clf = RNNClassifier(cell="gru", max_iter=5, **FAST).fit(X32, (y > 0).astype(int))
    assert clf.predict_proba(X32).dtype == np.float32


@pytest.mark.parametrize("Est", [RNNRegressor, RNNClassifier])
def test_pickle_round_trip(Est, rng):
    X, y = memory_task(rng, n=60, T=5)
    if Est is RNNClassifier:
        y = (y > 0).astype(int)
    est = Est(
        cell="gru", hidden_layer_sizes=(6, 5), dense_layer_sizes=(4,), max_iter=5, random_state=0
    ).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    assert_array_equal(again.predict(X), est.predict(X))
    assert_array_equal(again.transform(X), est.transform(X))
    # and it can keep training
    again.partial_fit(X, y)
    assert again.t_ == est.t_ + len(X)


@pytest.mark.parametrize("cell", CELLS)
def test_fixed_seed_same_weights_across_numba_thread_counts(cell, rng):
    # 45 samples per batch: 6 kernel blocks of 8 (one partial), so both threads work
    X, y = memory_task(rng, n=90, T=6)
    params = dict(
        cell=cell, hidden_layer_sizes=(6, 5), dropout=0.2, batch_size=45, max_iter=4, random_state=3
    )
    before = numba.get_num_threads()
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba runs with a single thread here")
    try:
        thetas = []
        for n_threads in (1, 2, 1):
            numba.set_num_threads(n_threads)
            thetas.append(RNNRegressor(**params).fit(X, y)._network.theta.copy())
    finally:
        numba.set_num_threads(before)
    assert_array_equal(thetas[0], thetas[1])
    assert_array_equal(thetas[0], thetas[2])
    other = RNNRegressor(**{**params, "random_state": 4}).fit(X, y)._network.theta
    assert not np.array_equal(other, thetas[0])


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X, y = memory_task(rng, n=40, T=5)
    return RNNRegressor(cell="rnn", max_iter=2, **FAST).fit(X, y), X, y


def test_ragged_sequences_are_variable_length_input():
    """Ragged lists are variable-length sequences (tests/test_variable_length.py has the
    rest); the 1-D/2-D and empty-sequence mistakes name the sequence."""
    ragged = [[[0.0], [1.0], [2.0]], [[0.0], [1.0]]]
    reg = RNNRegressor(max_iter=1, **FAST).fit(ragged, [0.0, 1.0])
    assert reg.n_features_in_ == 1 and reg.predict(ragged).shape == (2,)
    with pytest.raises(ValueError, match=r"X\[1\] is an empty sequence"):
        RNNClassifier().fit([[0.0, 1.0, 2.0], []], [0, 1])
    with pytest.raises(ValueError, match="mixes 1-D and 2-D"):
        RNNClassifier().fit([[0.0, 1.0, 2.0], [[0.0], [1.0]]], [0, 1])


def test_ragged_sequences_at_predict(fitted):
    """A model fitted on fixed-length arrays predicts lists of any lengths: each sequence
    as if alone."""
    reg, X, _ = fitted
    seqs = [X[0], X[1, :4]]
    expected = np.r_[reg.predict(X[:1]), reg.predict([X[1, :4], X[2], X[3, :2]])[:1]]
    np.testing.assert_allclose(reg.predict(seqs), expected, rtol=0, atol=1e-12)
    as_object = np.empty(2, dtype=object)
    as_object[:] = seqs
    assert_array_equal(reg.predict(as_object), reg.predict(seqs))
    # an object array of equal sequences is not ragged: it is read as numbers
    as_object[1] = np.ones((5, 2))
    assert_array_equal(reg.predict(as_object), reg.predict(np.stack(list(as_object))))
    # what is not numeric at all is not called ragged
    with pytest.raises(ValueError, match="could not convert string to float"):
        reg.predict([[["a", "b"]] * 5] * 3)


@pytest.mark.parametrize("cell", CELLS)
def test_read_only_input_compiles_no_extra_kernel(cell, rng):
    """A read-only X (a memmap, as joblib hands to workers) is copied before the kernels,
    so they are not compiled again for numba's read-only array type."""
    from sknet.kernels import recurrent as rk

    X, y = memory_task(rng, n=30, T=4)
    reg = RNNRegressor(cell=cell, max_iter=1, **FAST).fit(X, y)
    frozen = X.copy()
    frozen.flags.writeable = False
    assert_array_equal(reg.predict(frozen), reg.predict(X))
    assert not any("readonly" in str(sig) for sig in rk._run_blocks.signatures)


def test_non_finite_input_is_rejected(fitted):
    reg, X, y = fitted
    bad = X.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RNNRegressor(max_iter=1).fit(bad, y)
    with pytest.raises(ValueError, match="NaN"):
        reg.predict(bad)
    bad[3, 2, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        reg.predict(bad)
    y_bad = y.copy()
    y_bad[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RNNRegressor(max_iter=1).fit(X, y_bad)


def test_wrong_shape_at_predict(fitted):
    reg, X, _ = fitted  # fitted on (n, 5, 2)
    with pytest.raises(ValueError, match="4 time steps of 2 feature"):
        reg.predict(X[:, :4])
    with pytest.raises(ValueError, match="5 time steps of 3 feature"):
        reg.predict(np.concatenate([X, X[:, :, :1]], axis=2))
    with pytest.raises(ValueError, match="fitted on 5 time steps of 2 feature"):
        reg.transform(X[:, :, :1])
    # 2-D X is read as univariate: refused by a model fitted on 2 features per step
    with pytest.raises(ValueError, match="X is 2-D, read as 5 time steps of 1 feature"):
        reg.predict(X[:, :, 0])
    with pytest.raises(ValueError, match="X is 2-D"):
        reg.partial_fit(X[:, :, 0], np.zeros(len(X)))
    # a univariate model sees 2-D rows: a wrong length is caught as well
    uni = RNNRegressor(cell="gru", max_iter=2, **FAST).fit(X[:, :, 0], X[:, -1, 0])
    with pytest.raises(ValueError, match="5 features"):
        uni.predict(X[:, :4, 0])
    with pytest.raises(ValueError, match="time steps of 2 feature"):
        uni.predict(X)
    with pytest.raises(ValueError, match="fitted on 5 time steps of 2 feature"):
        reg.partial_fit(X[:, :3], np.zeros(len(X)))


@pytest.mark.parametrize("Est", [RNNRegressor, RNNClassifier])
def test_wrong_number_of_dimensions(Est, fitted):
    reg, X, _ = fitted
    y = np.arange(len(X)) % 2
    with pytest.raises(ValueError, match="got a 4-D array"):
        Est().fit(X[..., None], y)
    with pytest.raises(ValueError, match="got a 1-D array"):
        Est().fit(X[:, 0, 0], y)
    with pytest.raises(ValueError, match="got a 4-D array"):
        reg.predict(X[..., None])
    with pytest.raises(ValueError, match="0 feature\\(s\\) per sample"):
        Est().fit(X[:, :, :0], y)
    with pytest.raises(ValueError, match="0 time step\\(s\\)"):
        Est().fit(X[:, :0], y)


def test_bad_hyperparameters(rng):
    X, y = memory_task(rng, n=20, T=4)
    with pytest.raises(ValueError, match="cell"):
        RNNRegressor(cell="transformer").fit(X, y)
    with pytest.raises(ValueError, match="dense_layer_sizes must be positive integers"):
        RNNRegressor(dense_layer_sizes=(4, 0)).fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be positive integers"):
        RNNRegressor(hidden_layer_sizes=(0,)).fit(X, y)
    with pytest.raises(ValueError, match="clip_norm"):
        RNNRegressor(clip_norm=0.0).fit(X, y)
    with pytest.raises(ValueError, match="dropout has 1 rates but there are 2"):
        RNNRegressor(hidden_layer_sizes=(4, 4), dropout=[0.1]).fit(X, y)
    with pytest.raises(ValueError, match="dropout needs a stochastic solver"):
        RNNRegressor(solver="lbfgs", dropout=0.2).fit(X, y)


def test_input_is_not_modified(rng):
    X, y = memory_task(rng, n=50, T=5)
    X32 = X.astype(np.float32)
    Xc, yc, X32c = X.copy(), y.copy(), X32.copy()
    sw = np.ones(50)
    reg = RNNRegressor(cell="lstm", max_iter=3, **FAST).fit(X, y, sample_weight=sw)
    reg.predict(X)
    reg.transform(X)
    RNNRegressor(cell="gru", max_iter=3, **FAST).fit(X32, y).predict(X32)
    assert_array_equal(X, Xc)
    assert_array_equal(y, yc)
    assert_array_equal(X32, X32c)
    assert_array_equal(sw, 1.0)


# --------------------------------------------------------------------------------------
# exploding gradients: clipped, or stopped with a clear message
# --------------------------------------------------------------------------------------
def exploding_setup(rng):
    """A relu Elman RNN over 30 steps of large inputs, trained by plain SGD at rate 1."""
    X = rng.normal(size=(64, 30, 1)) * 3
    y = rng.normal(size=64) * 3
    params = dict(
        cell="rnn",
        activation="relu",
        hidden_layer_sizes=(32,),
        solver="sgd",
        learning_rate_init=1.0,
        momentum=0.0,
        batch_size=64,
        max_iter=20,
        random_state=0,
    )
    return X, y, params


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy overflow while diverging
def test_exploding_gradients_stop_with_a_clear_message(rng):
    X, y, params = exploding_setup(rng)
    reg = RNNRegressor(clip_norm=None, **params)
    with pytest.raises(DivergenceError, match="diverged. Lower learning_rate_init"):
        reg.fit(X, y)
    assert isinstance(DivergenceError("x"), ValueError)
    # the weights kept are those from the start of the failing epoch: finite
    assert np.isfinite(reg._network.theta).all()
    assert np.isfinite(reg.predict(X)).all()


def test_exploding_gradients_are_clipped(rng):
    X, y, params = exploding_setup(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow anywhere
        reg = RNNRegressor(clip_norm=1.0, **params).fit(X, y)
    assert reg.n_iter_ == 20 and np.isfinite(reg.loss_curve_).all()
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]


@pytest.mark.parametrize("clip", [0.01, 1e6])
def test_clip_norm_bounds_the_update(clip, rng):
    """One full-batch plain-SGD step moves theta by rate * min(|grad|, clip_norm)."""
    X, y, params = exploding_setup(rng)
    params.update(learning_rate_init=0.1, max_iter=1, shuffle=False)
    reg = RNNRegressor(clip_norm=clip, **params).fit(X, y)
    net = reg._network
    theta0 = net.theta.copy()
    Y = y.reshape(-1, 1)
    net.loss_and_grad(X, Y, None, reg.alpha)
    gnorm = np.linalg.norm(net.grad)
    assert gnorm > 0.01  # so that the small clip does act
    reg.partial_fit(X, y)
    step = np.linalg.norm(net.theta - theta0)
    assert_allclose(step, 0.1 * min(gnorm, clip), rtol=1e-6)


# --------------------------------------------------------------------------------------
# activation: the Elman cell's only
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_activation_with_a_gated_cell_warns_and_changes_nothing(cell, rng):
    X, y = memory_task(rng, n=60)
    plain = RNNRegressor(cell=cell, max_iter=2, **FAST).fit(X, y)
    with pytest.warns(UserWarning, match=f"activation='relu' has no effect with cell='{cell}'"):
        relu = RNNRegressor(cell=cell, activation="relu", max_iter=2, **FAST).fit(X, y)
    assert_array_equal(relu._network.theta, plain._network.theta)
    assert_array_equal(relu.predict(X), plain.predict(X))
    assert relu.activation == "relu"  # warned, not rewritten (clone, grid search)


@pytest.mark.parametrize(
    "cell, activation", [("rnn", "relu"), ("rnn", "tanh"), ("lstm", "tanh"), ("gru", "tanh")]
)
def test_activation_that_applies_does_not_warn(cell, activation, rng):
    X, y = memory_task(rng, n=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # a UserWarning too
        RNNRegressor(cell=cell, activation=activation, max_iter=2, **FAST).fit(X, y)


def test_clone_keeps_hyperparameters():
    est = RNNClassifier(
        cell="gru",
        hidden_layer_sizes=(3, 2),
        dense_layer_sizes=[4],
        clip_norm=None,
        class_weight="balanced",
        dropout=[0.1, 0.2, 0.0],
    )
    assert clone(est).get_params() == est.get_params()


def test_convergence_warning(rng):
    X, y = memory_task(rng, n=30, T=4)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        RNNRegressor(max_iter=2, **FAST).fit(X, y)
