"""MLPClassifier / MLPRegressor: parity with scikit-learn, behaviour, and bad input."""

import pickle
import warnings

import joblib
import numba
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import recall_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from threadpoolctl import threadpool_limits

from sknet import MLPClassifier, MLPRegressor
from sknet._base import BaseNetworkEstimator
from sknet.kernels import optim
from tests.kernels import reference_dense as ref

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(hidden_layer_sizes=(7,), random_state=0)


# ------------------------------------------------------------------ data
def classification(n=60, n_classes=3, seed=0):
    X, y = make_classification(n, 5, n_classes=n_classes, n_informative=3, random_state=seed)
    return StandardScaler().fit_transform(X), y


def regression(n=50, n_targets=1, seed=0):
    X, y = make_regression(n, 4, n_targets=n_targets, noise=5.0, random_state=seed)
    return StandardScaler().fit_transform(X), y / y.std()


def multilabel(n=60, seed=1):
    X, _ = classification(n, seed=seed)
    Y = (np.random.default_rng(seed).random((n, 3)) < 0.5).astype(int)
    Y[:, 0] = X[:, 0] > 0  # one learnable label
    return X, Y


def counts(n=50, seed=0):
    X, _ = regression(n, seed=seed)
    y = np.random.default_rng(seed).poisson(np.exp(0.5 * X[:, 0] + 0.3))
    return X, y.astype(float)


def params_of(est):
    return est.coefs_ + est.intercepts_


def assert_params_close(ours, theirs, atol):
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(params_of(ours), params_of(theirs)):
        assert a.shape == b.shape
        assert_allclose(a, b, rtol=0, atol=atol)


def assert_same_fit(ours, theirs, atol=1e-10):
    """Same training history and weights as scikit-learn (float64)."""
    assert ours.n_iter_ == theirs.n_iter_
    if hasattr(theirs, "loss_curve_"):
        assert len(ours.loss_curve_) == len(theirs.loss_curve_)
        assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=0, atol=atol)
    assert ours.loss_ == pytest.approx(theirs.loss_, abs=atol)
    assert ours.out_activation_ == theirs.out_activation_
    assert ours.n_layers_ == theirs.n_layers_ and ours.n_outputs_ == theirs.n_outputs_
    assert ours.t_ == theirs.t_
    assert_params_close(ours, theirs, atol)


def fit_both(ours_cls, theirs_cls, X, y, sample_weight=None, **params):
    ours = ours_cls(**params).fit(X, y, sample_weight=sample_weight)
    theirs = theirs_cls(**params).fit(X, y, sample_weight=sample_weight)
    return ours, theirs


# ------------------------------------------------------------------ parity with scikit-learn
SOLVERS = {
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "sgd-momentum": dict(solver="sgd", nesterovs_momentum=False, momentum=0.8),
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.05),
    "sgd-invscaling": dict(
        solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, power_t=0.4
    ),
    # a large tol makes every epoch "stall", so the adaptive schedule divides the rate
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", tol=10.0, n_iter_no_change=1),
    "lbfgs": dict(solver="lbfgs"),
}


@pytest.mark.parametrize("solver", SOLVERS)
def test_classifier_parity_with_sklearn(solver):
    X, y = classification()
    params = dict(SMALL, alpha=0.01, batch_size=16, max_iter=6, **SOLVERS[solver])
    ours, theirs = fit_both(MLPClassifier, SkMLPClassifier, X, y, **params)
    assert_same_fit(ours, theirs, atol=1e-10 if solver != "lbfgs" else 1e-8)
    assert_array_equal(ours.predict(X), theirs.predict(X))
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    if solver == "sgd-adaptive":
        assert ours._optimizer.learning_rate < params.get("learning_rate_init", 0.001)


@pytest.mark.parametrize("solver", SOLVERS)
def test_regressor_parity_with_sklearn(solver):
    X, y = regression()
    params = dict(SMALL, alpha=0.01, batch_size=16, max_iter=6, **SOLVERS[solver])
    params["learning_rate_init"] = min(params.get("learning_rate_init", 0.001), 0.05)
    ours, theirs = fit_both(MLPRegressor, SkMLPRegressor, X, y, **params)
    assert_same_fit(ours, theirs, atol=1e-10 if solver != "lbfgs" else 1e-8)
    assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-9)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_parity_every_activation(activation, solver):
    X, y = classification()
    params = dict(
        hidden_layer_sizes=(6, 5),
        activation=activation,
        solver=solver,
        max_iter=5,
        random_state=1,
        learning_rate_init=0.01,
    )
    assert_same_fit(*fit_both(MLPClassifier, SkMLPClassifier, X, y, **params), atol=1e-8)


@pytest.mark.parametrize(
    "case", ["binary", "multilabel", "poisson", "no-shuffle", "sample_weight", "sparse"]
)
def test_parity_other_targets_and_options(case):
    X, y = classification(n_classes=2)
    cls, sk_cls = MLPClassifier, SkMLPClassifier
    params = dict(SMALL, max_iter=5, learning_rate_init=0.01, batch_size=25)
    sw = None
    if case == "multilabel":
        X, y = multilabel()
    elif case == "poisson":
        X, y = counts()
        cls, sk_cls = MLPRegressor, SkMLPRegressor
        params["loss"] = "poisson"
    elif case == "no-shuffle":
        params.update(shuffle=False, solver="sgd")
    elif case == "sample_weight":
        sw = np.random.default_rng(0).uniform(0.1, 3.0, size=len(y))
    elif case == "sparse":
        X = X.copy()
        X[np.abs(X) < 0.8] = 0.0
        X = sp.csr_matrix(X)
    ours, theirs = fit_both(cls, sk_cls, X, y, sample_weight=sw, **params)
    assert_same_fit(ours, theirs)
    if cls is MLPClassifier:
        assert_array_equal(ours.predict(X), theirs.predict(X))
    else:
        assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-10)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_parity_sample_weight_lbfgs_and_adam(solver):
    X, y = regression()
    sw = np.random.default_rng(1).uniform(0.1, 3.0, size=len(y))
    params = dict(SMALL, solver=solver, max_iter=8, alpha=0.1)
    assert_same_fit(
        *fit_both(MLPRegressor, SkMLPRegressor, X, y, sample_weight=sw, **params), atol=1e-8
    )


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_partial_fit_parity_with_sklearn(solver):
    X, y = classification()
    ours = MLPClassifier(solver=solver, **SMALL)
    theirs = SkMLPClassifier(solver=solver, **SMALL)
    for start in (0, 20, 40):
        batch = slice(start, start + 20)
        ours.partial_fit(X[batch], y[batch], classes=[2, 0, 1])
        theirs.partial_fit(X[batch], y[batch], classes=[2, 0, 1])
    assert_array_equal(ours.classes_, [0, 1, 2])
    assert_same_fit(ours, theirs)
    Xr, yr = regression()
    ours, theirs = MLPRegressor(solver=solver, **SMALL), SkMLPRegressor(solver=solver, **SMALL)
    for _ in range(3):
        ours.partial_fit(Xr, yr)
        theirs.partial_fit(Xr, yr)
    assert_same_fit(ours, theirs)


def test_warm_start_parity_with_sklearn():
    X, y = classification()
    params = dict(SMALL, max_iter=4, warm_start=True)
    ours, theirs = MLPClassifier(**params), SkMLPClassifier(**params)
    for _ in range(2):
        ours.fit(X, y)
        theirs.fit(X, y)
    assert len(ours.loss_curve_) == 8
    assert_same_fit(ours, theirs)


def test_early_stopping_parity_with_sklearn():
    X, y = classification(n=100)
    params = dict(
        SMALL,
        early_stopping=True,
        learning_rate_init=0.05,
        max_iter=40,
        n_iter_no_change=3,
        validation_fraction=0.25,
    )
    ours, theirs = fit_both(MLPClassifier, SkMLPClassifier, X, y, **params)
    assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=0, atol=1e-12)
    assert ours.best_validation_score_ == theirs.best_validation_score_
    assert ours.best_loss_ is None
    assert_same_fit(ours, theirs)  # scikit-learn restores the best weights too


@pytest.mark.parametrize("k", [2, 3])
def test_multi_output_squared_error_gradient(k):
    """With k outputs sknet follows the exact gradient of the reported loss (half squared
    error averaged over outputs); scikit-learn's step is k times larger. So one full-batch
    SGD step (no momentum, no penalty) at rate lr equals scikit-learn's at lr / k."""
    X, Y = regression(n_targets=k)
    params = dict(SMALL, solver="sgd", momentum=0.0, alpha=0.0, max_iter=1, shuffle=False)
    ours = MLPRegressor(learning_rate_init=0.1, **params).fit(X, Y)
    theirs = SkMLPRegressor(learning_rate_init=0.1 / k, **params).fit(X, Y)
    assert ours.loss_curve_[0] == pytest.approx(theirs.loss_curve_[0], abs=1e-12)
    assert_params_close(ours, theirs, atol=1e-12)
    same_rate = SkMLPRegressor(learning_rate_init=0.1, **params).fit(X, Y)
    assert not np.allclose(ours.coefs_[0], same_rate.coefs_[0], atol=1e-6)


# ------------------------------------------------------------------ targets and inputs
def test_multilabel_classification():
    X, Y = multilabel()
    clf = MLPClassifier(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=200, random_state=0).fit(
        X, Y
    )
    assert clf.out_activation_ == "logistic"
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and (proba >= 0).all() and (proba <= 1).all()
    assert (pred[:, 0] == Y[:, 0]).mean() > 0.9  # the learnable label


def test_multi_output_regression():
    X, Y = regression(n=80, n_targets=3)
    reg = MLPRegressor(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=300, random_state=0).fit(
        X, Y
    )
    assert reg.predict(X).shape == (80, 3) and reg.n_outputs_ == 3
    assert reg.score(X, Y) > 0.9


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_input_same_as_dense(fmt, solver):
    X, y = classification()
    X[np.abs(X) < 0.7] = 0.0
    Xs = sp.csr_matrix(X).asformat(fmt)
    params = dict(SMALL, solver=solver, max_iter=10)
    dense = MLPClassifier(**params).fit(X, y)
    sparse = MLPClassifier(**params).fit(Xs, y)
    assert_params_close(sparse, dense, atol=1e-10)
    assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), atol=1e-10)
    assert_allclose(sparse.transform(Xs), dense.transform(X), atol=1e-10)


def test_string_labels():
    X, y = classification()
    names = np.array(["cat", "dog", "emu"])
    clf = MLPClassifier(solver="lbfgs", **SMALL).fit(X, names[y])
    assert_array_equal(clf.classes_, names)
    pred = clf.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert clf.score(X, names[y]) > 0.8
    Xb, yb = classification(n_classes=2)
    binary = MLPClassifier(solver="lbfgs", **SMALL).fit(Xb, np.array(["no", "yes"])[yb])
    assert binary.predict_proba(Xb).shape == (60, 2)
    assert set(binary.predict(Xb)) <= {"no", "yes"}


def test_partial_fit_needs_classes_first_and_rejects_unseen_classes():
    X, y = classification()
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier(solver="sgd").partial_fit(X, y)
    clf = MLPClassifier(solver="adam", **SMALL).partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert clf.predict_proba(X).shape == (60, 3)  # all classes known from the start
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(solver="sgd", early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_partial_fit_unavailable_for_lbfgs(cls):
    est = cls(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as err:
        est.partial_fit  # noqa: B018
    assert "partial_fit is only available for stochastic" in str(err.value.__cause__)
    assert hasattr(cls(solver="sgd"), "partial_fit")


def test_partial_fit_continues_training():
    X, y = regression()
    reg = MLPRegressor(solver="sgd", learning_rate_init=0.05, **SMALL)
    losses = [reg.partial_fit(X, y).loss_ for _ in range(15)]
    assert len(reg.loss_curve_) == 15
    assert reg.n_iter_ == 1  # as scikit-learn: iterations of the last call
    assert losses[-1] < 0.7 * losses[0]


def test_warm_start_continues_and_checks_classes():
    X, y = classification()
    clf = MLPClassifier(max_iter=3, warm_start=True, **SMALL).fit(X, y)
    first = [p.copy() for p in params_of(clf)]
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 6  # the history continues
    assert clf.loss_curve_[3] < clf.loss_curve_[0]
    assert not all(np.array_equal(a, b) for a, b in zip(first, params_of(clf)))
    with pytest.raises(
        ValueError, match="warm_start can only be used where `y` has the same classes"
    ):
        clf.fit(X[y < 2], y[y < 2])


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_integer_sample_weight_equals_repetition(solver):
    X, y = classification(n=40)
    w = np.random.default_rng(0).integers(1, 4, size=40)
    # full-batch, unshuffled: the weighted objective is exactly the repeated-data one
    # batch_size 'auto' = min(200, n): one full batch for both
    params = dict(SMALL, solver=solver, max_iter=15, alpha=0.1, shuffle=False)
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert_params_close(weighted, repeated, atol=1e-8)
    assert weighted.loss_ == pytest.approx(repeated.loss_, rel=1e-9)
    unweighted = MLPClassifier(**params).fit(X, y)
    assert not np.allclose(unweighted.coefs_[0], weighted.coefs_[0], atol=1e-4)


def test_zero_sample_weight_ignores_samples():
    X, y = regression()
    w = np.ones(len(y))
    w[:10] = 0.0
    y_noisy = y.copy()
    y_noisy[:10] = 1e3
    params = dict(SMALL, solver="lbfgs", max_iter=20)
    a = MLPRegressor(**params).fit(X, y_noisy, sample_weight=w)
    b = MLPRegressor(**params).fit(X, y, sample_weight=w)
    assert_params_close(a, b, atol=1e-12)


# ------------------------------------------------------------------ early stopping
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_early_stopping_restores_best_weights(cls, monkeypatch):
    if cls is MLPClassifier:
        X, y = classification(n=120)
        params = dict(hidden_layer_sizes=(8,))
    else:
        X, y = make_regression(120, 4, noise=30, random_state=0)
        y = y / 100
        params = dict(hidden_layer_sizes=(20,))
    params.update(
        early_stopping=True,
        learning_rate_init=0.05,
        max_iter=60,
        n_iter_no_change=3,
        validation_fraction=0.25,
        random_state=0,
    )
    history = []
    original = BaseNetworkEstimator._update_no_improvement_count

    def recording(self, *args):
        original(self, *args)
        history.append(self._network.theta.copy())

    monkeypatch.setattr(BaseNetworkEstimator, "_update_no_improvement_count", recording)
    est = cls(**params).fit(X, y)
    scores = est.validation_scores_
    assert len(scores) == len(est.validation_loss_curve_) == len(est.loss_curve_) == est.n_iter_
    assert est.n_iter_ < 60  # stopped early
    best = int(np.argmax(scores))
    assert best < est.n_iter_ - 1, "the test needs a best epoch before the last one"
    assert est.best_validation_score_ == scores[best]
    assert_array_equal(est._network.theta, history[best])
    assert not np.array_equal(est._network.theta, history[-1])
    assert all(np.isfinite(est.validation_loss_curve_))
    # the validation loss tracks the validation score (lower loss at the best epoch)
    assert est.validation_loss_curve_[best] < est.validation_loss_curve_[0]


def test_early_stopping_with_tiny_validation_set_errors():
    X, y = regression(n=10)
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.1, **SMALL).fit(X, y)


# ------------------------------------------------------------------ probabilities
@pytest.mark.parametrize("n_classes", [2, 3])
def test_predict_proba_and_log_proba(n_classes):
    X, y = classification(n_classes=n_classes)
    clf = MLPClassifier(max_iter=20, **SMALL).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (60, n_classes)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-12)
    assert_array_equal(clf.predict(X), clf.classes_[np.argmax(proba, axis=1)])


def test_poisson_predictions_are_positive_means():
    X, y = counts(n=120)
    reg = MLPRegressor(loss="poisson", solver="lbfgs", max_iter=100, **SMALL).fit(X, y)
    assert reg.out_activation_ == "exp"
    pred = reg.predict(X)
    assert (pred > 0).all()
    assert pred.mean() == pytest.approx(y.mean(), rel=0.1)


# ------------------------------------------------------------------ stopping and interrupts
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_convergence_warning_at_max_iter(solver):
    X, y = classification()
    with pytest.warns(ConvergenceWarning, match="(Maximum iterations|failed to converge)"):
        MLPClassifier(solver=solver, max_iter=2, **SMALL).fit(X, y)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_keyboard_interrupt_keeps_partial_model(solver, monkeypatch):
    X, y = classification()
    calls = []
    original = BaseNetworkEstimator._train_step

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 6:  # during the second epoch (4 batches per epoch)
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(BaseNetworkEstimator, "_train_step", interrupted)
    clf = MLPClassifier(solver=solver, batch_size=15, max_iter=50, **SMALL)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        clf.fit(X, y)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1
    assert all(np.isfinite(p).all() for p in params_of(clf))
    assert clf.predict(X).shape == (60,)
    fresh = MLPClassifier(solver=solver, batch_size=15, max_iter=1, **SMALL)
    monkeypatch.setattr(BaseNetworkEstimator, "_train_step", original)
    fresh.fit(X, y)
    # one more batch was applied after the first epoch
    assert not np.array_equal(clf.coefs_[0], fresh.coefs_[0])


def test_keyboard_interrupt_in_lbfgs_keeps_model(monkeypatch):
    from sknet._network import Network

    X, y = regression()
    calls = []
    original = Network.loss_and_grad

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Network, "loss_and_grad", interrupted)
    reg = MLPRegressor(solver="lbfgs", max_iter=100, **SMALL)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        reg.fit(X, y)
    assert all(np.isfinite(p).all() for p in params_of(reg))
    assert np.isfinite(reg.predict(X)).all()


# ------------------------------------------------------------------ model selection, persistence
def test_pipeline_and_grid_search():
    X, y = make_classification(80, 5, n_informative=3, random_state=0)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(solver="lbfgs", max_iter=50, random_state=0)),
        ]
    )
    grid = {"mlp__hidden_layer_sizes": [(3,), (10,)], "mlp__alpha": [1e-4, 1.0]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.7
    best = search.best_params_
    refit = clone(pipe).set_params(**best).fit(X, y)
    assert_array_equal(search.predict(X), refit.predict(X))
    assert search.best_estimator_["mlp"].hidden_layer_sizes == best["mlp__hidden_layer_sizes"]


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_pickle_and_joblib_round_trip(cls, tmp_path):
    X, y = classification() if cls is MLPClassifier else regression()
    est = cls(solver="adam", max_iter=5, **SMALL).fit(X, y)
    out = est.predict_proba(X) if cls is MLPClassifier else est.predict(X)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    for loaded in (pickle.loads(pickle.dumps(est)), joblib.load(path)):
        assert loaded is not est
        got = loaded.predict_proba(X) if cls is MLPClassifier else loaded.predict(X)
        assert_array_equal(got, out)
        for a, b in zip(params_of(loaded), params_of(est)):
            assert_array_equal(a, b)
        # training state (optimizer moments) survives: continuing gives the same result
        loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    assert_array_equal(loaded.coefs_[0], est.coefs_[0])


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_memory_mapped_model_predicts_and_trains(solver, tmp_path):
    """joblib.load(mmap_mode="r") gives read-only arrays: the model copies what it
    writes to (weights, optimizer state), so predicting and training keep working."""
    X, y = classification()
    est = MLPClassifier(solver=solver, max_iter=5, **SMALL).fit(X, y)
    joblib.dump(est, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib", mmap_mode="r")
    assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    assert_array_equal(loaded.coefs_[0], est.coefs_[0])


def test_fixed_random_state_is_bit_identical():
    X, y = classification()
    for solver in ("adam", "sgd", "lbfgs"):
        a = MLPClassifier(solver=solver, max_iter=5, **SMALL).fit(X, y)
        b = MLPClassifier(solver=solver, max_iter=5, **SMALL).fit(X, y)
        assert_params_close(a, b, atol=0)
    c = MLPClassifier(max_iter=5, hidden_layer_sizes=(7,), random_state=1).fit(X, y)
    assert not np.array_equal(c.coefs_[0], a.coefs_[0])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_bit_identical_across_numba_thread_counts(solver):
    """Large enough that the optimizer takes its multi-threaded path."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 64))
    y = rng.integers(0, 3, 100)
    params = dict(
        hidden_layer_sizes=(8000,),
        solver=solver,
        max_iter=2,
        batch_size=50,
        random_state=0,
        dropout=0.2,
    )
    old = numba.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            est = MLPClassifier(**params).fit(X, y)
            results.append(est._network.theta.copy())
    finally:
        numba.set_num_threads(old)
    assert est._network.n_params >= getattr(optim, "PARALLEL_MIN", 0)
    assert_array_equal(results[0], results[1])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_bit_identical_across_thread_counts_with_large_products():
    """Products big enough for BLAS to split them over threads (an MNIST-sized first
    layer), and enough steps for the fit's thread plan to try both counts: OpenBLAS
    rounds a product differently on one thread and on two, so the dense kernels cut the
    products into fixed blocks in numba's threads and keep BLAS on one thread."""
    rng = np.random.default_rng(0)
    X = rng.random((1200, 784), dtype=np.float32)
    y = rng.integers(0, 10, 1200)
    params = dict(hidden_layer_sizes=(256, 128), max_iter=3, batch_size=100, random_state=0)
    old = numba.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2, 2):
            numba.set_num_threads(n_threads)
            # the suite keeps BLAS on one thread (conftest): give it both here
            with threadpool_limits(limits=n_threads, user_api="blas"):
                est = MLPClassifier(**params).fit(X, y)
                results.append((est._network.theta.copy(), est.predict_proba(X[:300])))
    finally:
        numba.set_num_threads(old)
    for theta, proba in results[1:]:
        assert_array_equal(theta, results[0][0])
        assert_array_equal(proba, results[0][1])


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_float32_end_to_end(solver):
    X, y = classification()
    X32 = X.astype(np.float32)
    clf = MLPClassifier(solver=solver, max_iter=10, **SMALL).fit(X32, y)
    for p in params_of(clf):
        assert p.dtype == np.float32
    assert clf.predict_proba(X32).dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32  # float64 input, float32 model
    assert clf.transform(X32).dtype == np.float32
    clf64 = MLPClassifier(solver=solver, max_iter=10, **SMALL).fit(X, y)
    assert clf.loss_ == pytest.approx(clf64.loss_, rel=1e-3)
    assert_allclose(clf.predict_proba(X32), clf64.predict_proba(X), atol=1e-3)
    Xr, yr = regression()
    reg = MLPRegressor(solver=solver, max_iter=10, **SMALL).fit(Xr.astype(np.float32), yr)
    assert reg.predict(Xr.astype(np.float32)).dtype == np.float32
    if solver == "adam":
        reg.partial_fit(Xr.astype(np.float32), yr)
        assert all(p.dtype == np.float32 for p in params_of(reg))


def test_digits_accuracy():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    clf = MLPClassifier(random_state=0).fit(scaler.transform(X_train), y_train)
    assert clf.score(scaler.transform(X_test), y_test) >= 0.97


def test_comparable_loss_to_sklearn_on_same_data():
    """Different precision (sknet float32, scikit-learn float64), same final loss level."""
    X, y = make_regression(300, 8, noise=10, random_state=0)
    X = StandardScaler().fit_transform(X)
    y = y / y.std()
    params = dict(hidden_layer_sizes=(32,), max_iter=60, random_state=0)
    ours = MLPRegressor(**params).fit(X.astype(np.float32), y)
    theirs = SkMLPRegressor(**params).fit(X, y)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.02)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.01)


# ------------------------------------------------------------------ sknet extras
def test_dropout_changes_training_identity_at_predict_and_reproducible():
    X, y = classification()
    params = dict(hidden_layer_sizes=(10, 8), max_iter=5, random_state=0)
    plain = MLPClassifier(**params).fit(X, y)
    drop = MLPClassifier(dropout=0.4, **params).fit(X, y)
    again = MLPClassifier(dropout=0.4, **params).fit(X, y)
    other = MLPClassifier(dropout=0.4, **dict(params, random_state=1)).fit(X, y)
    assert not np.allclose(plain.loss_curve_, drop.loss_curve_)
    assert_array_equal(drop.loss_curve_, again.loss_curve_)
    assert_params_close(drop, again, atol=0)
    assert not np.array_equal(drop.coefs_[0], other.coefs_[0])
    # at prediction dropout is the identity: a plain forward pass with the weights
    a = X
    for W, b in zip(drop.coefs_[:-1], drop.intercepts_[:-1]):
        a = np.maximum(a @ W + b, 0)
    expected = ref.softmax(a @ drop.coefs_[-1] + drop.intercepts_[-1])
    assert_allclose(drop.predict_proba(X), expected, rtol=1e-12)
    assert_array_equal(drop.predict_proba(X), drop.predict_proba(X))
    assert drop.n_layers_ == plain.n_layers_ == 4


def test_dropout_with_lbfgs_is_a_clear_error():
    X, y = classification()
    with pytest.raises(ValueError, match="dropout needs a stochastic solver"):
        MLPClassifier(solver="lbfgs", dropout=0.2).fit(X, y)


def test_dropout_per_layer_rates_and_errors():
    X, y = classification()
    clf = MLPClassifier(
        hidden_layer_sizes=(6, 5), dropout=[0.5, 0.0], max_iter=2, random_state=0
    ).fit(X, y)
    kinds = [layer.kind for layer in clf._network.layers]
    assert kinds == ["dense", "dropout", "dense", "dense"]
    with pytest.raises(ValueError, match="dropout has 3 rates but there are 2 hidden"):
        MLPClassifier(hidden_layer_sizes=(6, 5), dropout=[0.1, 0.1, 0.1]).fit(X, y)
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(dropout=1.0).fit(X, y)


# ------------------------------------------------------------------ clip_norm
@pytest.mark.parametrize("clip", [None, 0.01, 1e6])
def test_clip_norm_bounds_the_update(clip):
    """One full-batch plain-SGD step moves theta by rate * min(|grad|, clip_norm), with
    |grad| the L2 norm over all parameters, penalty included (as for RNN and ConvNet)."""
    X, y = regression()
    params = dict(
        solver="sgd",
        learning_rate_init=0.1,
        momentum=0.0,
        batch_size=X.shape[0],
        max_iter=1,
        shuffle=False,
        **SMALL,
    )
    reg = MLPRegressor(clip_norm=clip, **params).fit(X, y)
    net = reg._network
    theta0 = net.theta.copy()
    net.loss_and_grad(X, y.reshape(-1, 1), None, reg.alpha)
    gnorm = np.linalg.norm(net.grad)
    assert gnorm > 0.01  # so that the small clip does act
    reg.partial_fit(X, y)
    step = np.linalg.norm(net.theta - theta0)
    assert_allclose(step, 0.1 * (gnorm if clip is None else min(gnorm, clip)), rtol=1e-6)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_clip_norm_tames_a_huge_learning_signal():
    X, y = regression()
    y = y * 1e6  # unscaled targets: huge gradients
    params = dict(solver="sgd", learning_rate_init=0.1, momentum=0.0, max_iter=10, **SMALL)
    with pytest.raises(ValueError, match="diverged"):
        MLPRegressor(**params).fit(X, y)
    reg = MLPRegressor(clip_norm=1.0, **params)
    theta0 = reg.initialize(X, y)._network.theta.copy()
    reg.fit(X, y)
    # ten updates (one batch per epoch) of at most rate * clip_norm each
    assert reg.n_iter_ == 10 and np.isfinite(reg.loss_curve_).all()
    assert np.linalg.norm(reg._network.theta - theta0) <= 10 * 0.1 * 1.0 * (1 + 1e-9)
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_clip_norm_default_and_lbfgs_unchanged():
    """clip_norm=None is the fused, unclipped update; L-BFGS ignores clip_norm."""
    X, y = classification()
    assert MLPClassifier().clip_norm is None and MLPRegressor().clip_norm is None
    for solver in ("sgd", "lbfgs"):
        plain = MLPClassifier(solver=solver, max_iter=5, **SMALL).fit(X, y)
        huge = MLPClassifier(solver=solver, max_iter=5, clip_norm=1e12, **SMALL).fit(X, y)
        tight = MLPClassifier(solver=solver, max_iter=5, clip_norm=1e-3, **SMALL).fit(X, y)
        assert_allclose(huge._network.theta, plain._network.theta, rtol=1e-12)
        if solver == "lbfgs":
            assert_array_equal(tight._network.theta, plain._network.theta)
        else:
            assert not np.allclose(tight._network.theta, plain._network.theta)
    with pytest.raises(InvalidParameterError, match="clip_norm"):
        MLPRegressor(clip_norm=0.0).fit(*regression())


def _imbalanced():
    return make_classification(
        200,
        4,
        n_informative=2,
        n_redundant=0,
        weights=[0.9, 0.1],
        class_sep=0.5,
        flip_y=0,
        random_state=0,
    )


def test_class_weight_improves_minority_recall():
    X, y = _imbalanced()
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=100, random_state=0)
    recall = {}
    for cw in (None, "balanced", {0: 1.0, 1: 9.0}):
        clf = MLPClassifier(class_weight=cw, **params).fit(X, y)
        recall[str(cw)] = recall_score(y, clf.predict(X))
    assert recall["balanced"] > recall["None"]
    assert recall[str({0: 1.0, 1: 9.0})] > recall["None"]


def test_class_weight_is_sample_weight():
    X, y = _imbalanced()
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=20, random_state=0)
    cw = MLPClassifier(class_weight={0: 1.0, 1: 4.0}, **params).fit(X, y)
    sw = MLPClassifier(**params).fit(X, y, sample_weight=np.where(y == 1, 4.0, 1.0))
    assert_params_close(cw, sw, atol=1e-12)
    # class weights multiply sample weights; without a penalty a constant factor cancels
    params["alpha"] = 0.0
    cw = MLPClassifier(class_weight={0: 1.0, 1: 4.0}, **params).fit(X, y)
    both = MLPClassifier(class_weight={0: 1.0, 1: 4.0}, **params).fit(
        X, y, sample_weight=np.full(len(y), 2.0)
    )
    assert_params_close(both, cw, atol=1e-8)


def test_class_weight_errors():
    X, y = _imbalanced()
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        MLPClassifier(solver="sgd", class_weight="balanced").partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="class_weight names classes not in y"):
        MLPClassifier(class_weight={0: 1.0, 7: 2.0}, max_iter=2).fit(X, y)
    clf = MLPClassifier(solver="sgd", class_weight={0: 1.0, 1: 3.0}, **SMALL)
    clf.partial_fit(X, y, classes=[0, 1])  # a dict is fine incrementally
    assert clf.n_iter_ == 1


@pytest.mark.parametrize("dropout", [None, 0.3])
def test_transform_returns_last_hidden_layer(dropout):
    X, y = classification()
    clf = MLPClassifier(
        hidden_layer_sizes=(6, 4), activation="tanh", max_iter=5, random_state=0, dropout=dropout
    ).fit(X, y)
    H = np.tanh(
        np.tanh(X @ clf.coefs_[0] + clf.intercepts_[0]) @ clf.coefs_[1] + clf.intercepts_[1]
    )
    assert_allclose(clf.transform(X), H, rtol=1e-12)
    assert_allclose(clf.fit_transform(X, y), H, rtol=1e-12)
    assert list(clf.get_feature_names_out()) == [f"mlpclassifier{i}" for i in range(4)]
    reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(*regression())
    assert reg.transform(regression()[0]).shape == (50, 3)


def test_coefs_assignment():
    X, y = classification()
    a = MLPClassifier(max_iter=5, **SMALL).fit(X, y)
    b = MLPClassifier(max_iter=5, hidden_layer_sizes=(7,), random_state=3).fit(X, y)
    assert not np.allclose(a.predict_proba(X), b.predict_proba(X))
    b.coefs_ = [c.copy() for c in a.coefs_]
    b.intercepts_ = [c.copy() for c in a.intercepts_]
    assert_array_equal(b.predict_proba(X), a.predict_proba(X))
    # the lists are views: in-place edits reach the network
    b.coefs_[1][...] = 0.0
    b.intercepts_[1][...] = 0.0
    assert_allclose(b.predict_proba(X), 1 / 3)
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(5, 7\)"):
        b.coefs_ = [np.zeros(7), a.coefs_[1]]  # would broadcast silently
    with pytest.raises(ValueError, match="needs 2 arrays"):
        b.intercepts_ = [a.intercepts_[0]]
    with pytest.raises(AttributeError):
        MLPClassifier().coefs_ = a.coefs_


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_bad_input_raises_clear_errors(cls):
    X, y = classification() if cls is MLPClassifier else regression()
    est = cls(max_iter=2, **SMALL)
    Xnan = X.copy()
    Xnan[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(Xnan, y)
    Xinf = X.copy()
    Xinf[0, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.fit(Xinf, y)
    with pytest.raises(ValueError, match="Found array with dim 3"):
        est.fit(X.reshape(len(X), -1, 1), y)
    with pytest.raises(ValueError, match="0 sample"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    est.fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but .* expecting"):
        est.predict(X[:, :3])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(Xnan)
    with pytest.raises(ValueError, match="Found array with dim 3"):
        est.predict(X.reshape(len(X), -1, 1))
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(X[:0])


@pytest.mark.parametrize(
    "param,value",
    [
        ("activation", "softsign"),
        ("solver", "rmsprop"),
        ("learning_rate", "cosine"),
        ("alpha", -1.0),
        ("hidden_layer_sizes", (4, 0)),
        ("batch_size", 0),
    ],
)
def test_invalid_hyperparameters(param, value):
    X, y = classification()
    with pytest.raises(ValueError, match=param) as err:
        MLPClassifier(**{param: value}).fit(X, y)
    if param != "hidden_layer_sizes":
        assert err.type is InvalidParameterError


def test_poisson_rejects_negative_targets():
    X, y = regression()
    with pytest.raises(ValueError, match="poisson.*non-negative"):
        MLPRegressor(loss="poisson", **SMALL).fit(X, y)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_divergence_raises_clear_error_and_keeps_finite_weights(solver):
    X, y = make_regression(60, 4, random_state=0)
    X = X * 100  # unscaled
    lr = {"sgd": 1e6, "adam": 1e306, "lbfgs": None}[solver]
    params = dict(hidden_layer_sizes=(10,), solver=solver, max_iter=5, random_state=0)
    if lr is not None:
        params["learning_rate_init"] = lr
    else:  # scipy's L-BFGS from a huge-scale problem
        X, y = X * 1e150, y * 1e150
    reg = MLPRegressor(**params)
    with pytest.raises(ValueError, match="(diverged|non-finite)"):
        reg.fit(X, y)
    assert all(np.isfinite(p).all() for p in params_of(reg))
    assert np.isfinite(reg._network.theta).all()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_partial_fit_recovers_after_divergence():
    X, y = regression()
    reg = MLPRegressor(learning_rate_init=1e306, batch_size=25, **SMALL)
    with pytest.raises(ValueError, match="diverged"):
        reg.partial_fit(X, y)  # diverges in the first call: the initial weights are kept
    assert np.isfinite(reg._network.theta).all()
    # with a sane rate, training resumes from the kept weights with a fresh optimizer
    # state (the old moments saw non-finite gradients)
    reg.set_params(learning_rate_init=0.01)
    losses = [reg.partial_fit(X, y).loss_ for _ in range(5)]
    assert np.isfinite(reg._network.theta).all()
    assert losses[-1] < losses[0]


def test_adam_divergence_in_last_update_keeps_finite_weights():
    """The update of the last batch overflows while every loss was finite."""
    X, y = make_regression(60, 4, random_state=0)
    reg = MLPRegressor(
        hidden_layer_sizes=(10,),
        learning_rate_init=1e306,
        max_iter=1,
        batch_size=60,
        random_state=0,
    )
    with pytest.raises(ValueError, match="weights became non-finite.*diverged"):
        reg.fit(X * 100, y)
    assert np.isfinite(reg._network.theta).all()


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_user_arrays_are_not_modified(solver):
    X, y = classification()
    sw = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    Xr, yr = regression()
    X32 = X.astype(np.float32)
    Xs = sp.csr_matrix(np.where(np.abs(X) < 0.5, 0.0, X))
    copies = [a.copy() for a in (X, y, sw, Xr, yr, X32)] + [Xs.copy()]
    clf = MLPClassifier(
        solver=solver,
        max_iter=3,
        class_weight="balanced",
        **SMALL,
        dropout=0.2 if solver == "adam" else None,
    )
    clf.fit(X, y, sample_weight=sw)
    clf.predict_proba(X)
    clf.transform(X)
    clf.fit(X32, y, sample_weight=sw)
    clf.fit(Xs, y, sample_weight=sw)
    clf.predict(Xs)
    if solver == "adam":
        clf.set_params(class_weight=None).partial_fit(Xs, y, sample_weight=sw)
        MLPClassifier(early_stopping=True, max_iter=3, **SMALL).fit(X, y, sample_weight=sw)
    reg = MLPRegressor(solver=solver, max_iter=3, **SMALL).fit(Xr, yr, sample_weight=sw[:50])
    reg.predict(Xr)
    for before, after in zip(copies, (X, y, sw, Xr, yr, X32, Xs)):
        if sp.issparse(before):
            assert_array_equal(before.toarray(), after.toarray())
        else:
            assert_array_equal(before, after)


def test_no_warnings_on_clean_fit():
    X, y = classification()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # L-BFGS needs 534 iterations on one CPU kind here: leave it room to converge
        MLPClassifier(solver="lbfgs", alpha=1.0, max_iter=3000, **SMALL).fit(X, y).predict(X)
        MLPRegressor(solver="adam", learning_rate_init=0.01, max_iter=500, **SMALL).fit(
            *regression()
        ).predict(regression()[0])


# ------------------------------------------------ scikit-learn's divergence behaviour
def test_non_finite_weights_carry_scikit_learns_message():
    """scikit-learn's test_nonfinite_params: its message, then sknet's advice."""
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    msg = (
        "Solver produced non-finite parameter weights. The input data may contain large"
        " values and need to be preprocessed."
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=msg) as info:
            MLPRegressor().fit(X, y)
    assert "learning_rate_init" in str(info.value)  # sknet's advice follows


def test_diverging_loss_with_early_stopping_keeps_the_best_weights():
    """scikit-learn's test_mlp_diverging_loss (its issue 29504): no error, NaN recorded,
    the best validation weights kept, and a warning saying so."""
    from sklearn.datasets import load_iris
    from sklearn.exceptions import ConvergenceWarning

    X, y = load_iris(return_X_y=True)
    mlp = MLPRegressor(
        hidden_layer_sizes=100,
        activation="identity",
        solver="sgd",
        learning_rate_init=1,
        max_iter=20,
        early_stopping=True,
        random_state=0,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlp.fit(X, y)
    assert str(mlp.validation_scores_[-1]) == str(np.nan)
    assert isinstance(mlp.validation_scores_[-1], float)
    assert np.isfinite(mlp.network_.theta).all()
    best = int(np.nanargmax(mlp.validation_scores_))
    assert mlp.best_validation_score_ == mlp.validation_scores_[best]
    assert any(
        issubclass(w.category, ConvergenceWarning) and "best validation score" in str(w.message)
        for w in caught
    )


def test_early_stopping_split_reports_classes_as_scikit_learn():
    """scikit-learn's test_early_stopping_stratified, message included (scikit-learn
    1.8 and later name the classes; 1.7 does not)."""
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    y = [0, 0, 0, 1]
    with pytest.raises(ValueError, match=r"The least populated class(es)? in y ha") as info:
        MLPClassifier(early_stopping=True).fit(X, y)
    if "Classes with too few members" in str(info.value):
        assert "Classes with too few members are: ['True']" in str(info.value)
