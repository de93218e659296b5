"""fit(..., X_val=, y_val=, sample_weight_val=): a given validation set for early
stopping (scikit-learn's HistGradientBoosting convention), for every network estimator."""

import warnings

import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning

from tests._network_estimators import (
    estimator_class,
    exported_estimator_names,
    make_estimator,
    make_X,
    make_y,
)

NAMES = exported_estimator_names()


def _data(cls, n=60, seed=0):
    X = make_X(cls, n=n, seed=seed)
    return X, make_y(X, "binary" if is_classifier(cls()) else "regression", seed=seed)


@pytest.mark.parametrize("name", NAMES)
def test_the_given_validation_set_is_used_and_the_training_set_is_whole(name):
    cls = estimator_class(name)
    X, y = _data(cls)
    X_val, y_val = _data(cls, n=20, seed=1)
    est = make_estimator(cls, early_stopping=True, max_iter=6, n_iter_no_change=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, X_val=X_val, y_val=y_val)
    assert est.t_ == est.n_iter_ * len(X)  # no sample of X was held out
    assert len(est.validation_scores_) == est.n_iter_
    # the kept weights are the best epoch's, scored on X_val
    assert est.best_validation_score_ == pytest.approx(est.score(X_val, y_val), abs=1e-12)
    assert est.best_validation_score_ == max(est.validation_scores_)


@pytest.mark.parametrize("name", NAMES)
def test_validation_sample_weights_change_the_scores(name):
    cls = estimator_class(name)
    X, y = _data(cls)
    X_val, y_val = _data(cls, n=20, seed=1)
    sw_val = np.linspace(0.1, 2.0, len(X_val))
    kw = dict(early_stopping=True, max_iter=1)  # one epoch: its score is the final one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = make_estimator(cls, **kw).fit(X, y, X_val=X_val, y_val=y_val)
        b = make_estimator(cls, **kw).fit(X, y, X_val=X_val, y_val=y_val, sample_weight_val=sw_val)
    np.testing.assert_array_equal(a.network_.theta, b.network_.theta)  # same training
    assert b.validation_scores_[0] == pytest.approx(
        b.score(X_val, y_val, sample_weight=sw_val), abs=1e-12
    )
    assert a.validation_scores_[0] == pytest.approx(a.score(X_val, y_val), abs=1e-12)
    assert a.validation_scores_ != b.validation_scores_


@pytest.mark.parametrize(
    "params, fit_kw, match",
    [
        ({"early_stopping": False}, {"X_val": "X", "y_val": "y"}, "early_stopping=True"),
        ({"early_stopping": True, "solver": "lbfgs"}, {"X_val": "X", "y_val": "y"}, "solver"),
        ({"early_stopping": True}, {"X_val": "X"}, "together"),
        ({"early_stopping": True}, {"sample_weight_val": "w"}, "without X_val"),
        ({"early_stopping": True}, {"X_val": "X1", "y_val": "y1"}, "at least 2"),
        ({"early_stopping": True}, {"X_val": "X", "y_val": "yshort"}, "samples but y_val"),
    ],
)
def test_bad_validation_requests_are_refused(params, fit_kw, match):
    cls = estimator_class("MLPClassifier")
    X, y = _data(cls)
    values = {"X": X, "y": y, "w": np.ones(len(X)), "X1": X[:1], "y1": y[:1], "yshort": y[:-1]}
    with pytest.raises(ValueError, match=match):
        make_estimator(cls, **params).fit(X, y, **{k: values[v] for k, v in fit_kw.items()})


def test_unknown_validation_classes_and_shapes_are_refused():
    cls = estimator_class("MLPClassifier")
    X, y = _data(cls)
    est = make_estimator(cls, early_stopping=True)
    with pytest.raises(ValueError, match="y_val has classes not seen in y"):
        est.fit(X, y, X_val=X[:10], y_val=np.full(10, 7))
    with pytest.raises(ValueError, match="features"):
        est.fit(X, y, X_val=X[:10, :3], y_val=y[:10])


@pytest.mark.parametrize("name", NAMES)
def test_validation_split_last_is_fit_with_the_tail_as_validation_set(name):
    """validation_split='last' holds out the last ceil(fraction * n) samples in the order
    given: the same training as passing that tail as X_val (sample weights split too)."""
    cls = estimator_class(name)
    X, y = _data(cls, n=50)
    sw = np.linspace(0.5, 1.5, len(X))
    kw = dict(early_stopping=True, max_iter=4, n_iter_no_change=100, validation_fraction=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        last = make_estimator(cls, validation_split="last", **kw).fit(X, y, sample_weight=sw)
        cut = 50 - 8  # ceil(0.15 * 50) = 8 validation samples
        given = make_estimator(cls, **kw).fit(
            X[:cut], y[:cut], sw[:cut], X_val=X[cut:], y_val=y[cut:], sample_weight_val=sw[cut:]
        )
        shuffled = make_estimator(cls, **kw).fit(X, y, sample_weight=sw)
    np.testing.assert_array_equal(last.network_.theta, given.network_.theta)
    assert last.validation_scores_ == given.validation_scores_
    assert last.t_ == given.t_ == last.n_iter_ * cut
    # the default draws at random: another validation set, other scores
    assert shuffled.validation_scores_ != last.validation_scores_


def test_validation_split_is_validated_and_the_tail_must_hold_two_samples():
    X, y = _data(estimator_class("MLPRegressor"), n=9)
    from sknet import MLPRegressor

    with pytest.raises(ValueError, match="validation_split"):
        MLPRegressor(early_stopping=True, validation_split="end").fit(X, y)
    with pytest.raises(ValueError, match="validation set is too small.*1 for validation"):
        MLPRegressor(early_stopping=True, validation_split="last").fit(X, y)
