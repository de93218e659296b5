"""Bad input to every network estimator: a clear ValueError naming the problem, never a
ZeroDivisionError, a silently kept network or a silent NaN.

Parametrized over every exported network estimator (``exported_estimator_names``), so a
new estimator is covered without editing this file.
"""

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


def _target(cls, X):
    return make_y(X, "multiclass" if is_classifier(cls()) else "regression")


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn()


@pytest.mark.parametrize("name", NAMES)
def test_negative_sample_weights_are_refused(name):
    cls = estimator_class(name)
    X = make_X(cls)
    y = _target(cls, X)
    sw = np.tile([1.0, -1.0], len(X) // 2)
    with pytest.raises(ValueError, match="[Nn]egative"):
        make_estimator(cls).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_batches_whose_weights_sum_to_zero_are_skipped(name, method):
    """With batch_size=1 and every other weight 0, half the batches weigh nothing: no
    division by zero, and the zero-weight samples do not move the weights."""
    cls = estimator_class(name)
    X = make_X(cls)
    # binary targets: both classes stay among the weighted samples
    y = make_y(X, "binary" if is_classifier(cls()) else "regression")
    sw = (np.arange(len(X)) % 2).astype(float)
    kw = {"classes": np.unique(y)} if method == "partial_fit" and is_classifier(cls()) else {}
    a = make_estimator(cls, batch_size=1, shuffle=False, max_iter=2)
    _quiet(lambda: getattr(a, method)(X, y, sample_weight=sw, **kw))
    assert np.isfinite(a.network_.theta).all()
    # the same as training on the weighted samples alone, in the same order
    b = make_estimator(cls, batch_size=1, shuffle=False, max_iter=2)
    keep = sw > 0
    kw_b = dict(kw)
    _quiet(lambda: getattr(b, method)(X[keep], y[keep], sample_weight=sw[keep], **kw_b))
    np.testing.assert_array_equal(a.network_.theta, b.network_.theta)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_continued_training_refuses_a_changed_architecture(name, how):
    cls = estimator_class(name)
    X = make_X(cls)
    y = _target(cls, X)
    est = make_estimator(cls, warm_start=how == "warm_start")
    kw = {"classes": np.unique(y)} if how == "partial_fit" and is_classifier(cls()) else {}
    fit = est.fit if how == "warm_start" else (lambda X, y: est.partial_fit(X, y, **kw))
    _quiet(lambda: fit(X, y))
    theta = est.network_.theta.copy()
    changed = {
        "MLP": {"hidden_layer_sizes": (7, 5)},
        "RNN": {"hidden_layer_sizes": (6,)},
        "ConvNet": {"conv_filters": (3,)},
    }
    family = next((f for f in changed if name.startswith(f)), None)
    if family is not None:
        est.set_params(**changed[family])
    else:  # a layer list: change one layer's setting
        first = est.get_params()["layers"][0][0]
        key = next(k for k in est.get_params() if k.startswith(f"layers__{first}__"))
        value = est.get_params()[key]
        est.set_params(**{key: value + 1 if isinstance(value, int) else "tanh"})
    with pytest.raises(ValueError, match="another architecture"):
        fit(X, y)
    np.testing.assert_array_equal(est.network_.theta, theta)  # nothing was trained


@pytest.mark.parametrize("name", [n for n in NAMES if "Classifier" in n])
def test_a_single_class_is_predicted_with_certainty(name):
    """y of one class (scikit-learn's MLP fits it too): predict gives that class and
    predict_proba one column of ones, matching classes_; partial_fit and
    score agree."""
    cls = estimator_class(name)
    X = make_X(cls)
    y = np.full(len(X), "only")
    est = make_estimator(cls).fit(X, y)
    assert est.classes_.tolist() == ["only"]
    assert est.predict(X).tolist() == ["only"] * len(X)
    np.testing.assert_array_equal(est.predict_proba(X), np.ones((len(X), 1)))
    np.testing.assert_array_equal(est.predict_log_proba(X), np.zeros((len(X), 1)))
    assert est.score(X, y) == 1.0
    inc = make_estimator(cls)
    if hasattr(inc, "partial_fit"):
        inc.partial_fit(X, y, classes=["only"])
        assert inc.predict_proba(X[:3]).shape == (3, 1)


@pytest.mark.parametrize("name", [n for n in NAMES if "Classifier" in n])
def test_class_weight_must_be_finite_and_non_negative(name):
    cls = estimator_class(name)
    X = make_X(cls)
    y = _target(cls, X)
    for bad in (np.nan, -1.0, np.inf):
        with pytest.raises(ValueError, match="class_weight"):
            make_estimator(cls, class_weight={0: bad}).fit(X, y)


@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")
@pytest.mark.parametrize("name", NAMES)
def test_inputs_far_outside_the_training_range_are_refused_not_nan(name):
    cls = estimator_class(name)
    X = make_X(cls)
    est = _quiet(lambda: make_estimator(cls).fit(X, _target(cls, X)))
    huge = np.full_like(X[:3], 1.7e308)
    method = est.predict_proba if hasattr(est, "predict_proba") else est.predict
    try:
        out = method(huge)
    except ValueError as exc:
        assert "overflowed" in str(exc)
    else:  # a bounded network (tanh, sigmoid) may stay finite: then it must be finite
        assert np.isfinite(out).all()


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("MLPClassifier", {"hidden_layer_sizes": [[3]]}, "hidden_layer_sizes must be positive"),
        ("MLPClassifier", {"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes must be positive"),
        ("RNNClassifier", {"hidden_layer_sizes": ()}, "hidden_layer_sizes must hold at least"),
        ("RNNClassifier", {"hidden_layer_sizes": [[3]]}, "hidden_layer_sizes must be positive"),
        ("ConvNetClassifier", {"hidden_layer_sizes": [[3]]}, "hidden_layer_sizes must be"),
        ("ConvNetClassifier", {"conv_filters": (2.5,)}, "conv_filters must be positive"),
        ("ConvNetClassifier", {"input_shape": ("a", 8, 8)}, "input_shape must be positive"),
        ("NetworkClassifier", {"input_shape": (1, -8, 8)}, "input_shape must be positive"),
    ],
)
def test_malformed_hyperparameters_name_the_parameter(name, params, match):
    cls = estimator_class(name)
    X = make_X(cls)
    with pytest.raises(ValueError, match=match):
        make_estimator(cls, **params).fit(X, _target(cls, X))


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(("ConvNet", "Network"))])
def test_an_empty_channel_axis_is_refused(name):
    cls = estimator_class(name)
    X = np.ones((40, 0, 6, 6)) if name.startswith("ConvNet") else np.ones((40, 0, 6))
    with pytest.raises(ValueError, match="empty axis"):
        make_estimator(cls).fit(X, np.arange(40) % 2)
