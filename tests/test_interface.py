"""The estimator interface the features use: build_layers, initialize, forward, fit_from,
set_weights, network_, input_shape_, first_trainable_layer_, last_hidden_layer_."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from sknet import ConvNetClassifier, MLPClassifier, MLPRegressor, RNNRegressor
from sknet._base import BaseNetworkEstimator

from ._network_estimators import (
    PLANNED,
    estimator_class,
    family,
    fitted,
    make_estimator,
    make_X,
    make_y,
    target_kinds,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# per-sample shape of make_X's data, as each family's network takes it
SHAPES = {"MLP": (6,), "RNN": (5, 3), "ConvNet": (1, 8, 8)}


@pytest.mark.parametrize("name", PLANNED)
def test_input_shape_is_the_fitted_per_sample_shape(name):
    cls = estimator_class(name)
    unfitted = make_estimator(cls)
    assert not hasattr(unfitted, "input_shape_")
    est, X, y = fitted(cls)
    assert est.input_shape_ == SHAPES[family(cls)]
    assert all(type(s) is int for s in est.input_shape_)
    assert est.input_shape_ == est.network_.input_shape
    # a refit on data of another shape changes it
    X2 = make_X(cls)[..., :-1] if family(cls) != "ConvNet" else make_X(cls)[:, :, :6, :6]
    est.fit(X2, y)
    assert est.input_shape_ == X2.shape[1:]


def test_input_shape_after_the_familys_reshaping():
    X = np.random.RandomState(0).randn(30, 7)
    y = X[:, 0]
    assert RNNRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, y).input_shape_ == (7, 1)
    conv = ConvNetClassifier(
        conv_filters=(2,), hidden_layer_sizes=(3,), input_shape=(1, 4, 4), max_iter=2
    )
    X16 = np.random.RandomState(0).randn(30, 16)
    assert conv.fit(X16, X16[:, 0] > 0).input_shape_ == (1, 4, 4)


@pytest.mark.parametrize("name", PLANNED)
def test_initialize_is_fit_without_training(name, monkeypatch):
    cls = estimator_class(name)
    X = make_X(cls)
    y = make_y(X, target_kinds(cls)[1])
    est = make_estimator(cls)
    assert est.initialize(X, y) is est
    assert est.n_iter_ == 0 and est.first_trainable_layer_ == 0
    assert est.predict(X).shape[0] == len(X)
    # the same network and initial weights as fit's, before its first epoch
    monkeypatch.setattr(BaseNetworkEstimator, "_fit_stochastic", lambda *args: None)
    untrained = make_estimator(cls).fit(X, y)
    assert_array_equal(est.network_.theta, untrained.network_.theta)
    assert [repr(a) for a in est.network_.layers] == [repr(b) for b in untrained.network_.layers]
    assert est.n_outputs_ == untrained.n_outputs_


def test_build_layers_validates_and_does_not_modify():
    clf = MLPClassifier((5, 4), dropout=0.5)
    layers = clf.build_layers((6,), 3)
    assert [layer.output_shape for layer in layers] == [(5,), (5,), (4,), (4,), (3,)]
    assert not hasattr(clf, "network_")
    with pytest.raises(ValueError, match="alpha"):
        MLPClassifier(alpha=-1.0).build_layers((6,), 3)
    with pytest.raises(ValueError, match="does not fit"):
        MLPClassifier((5,)).build_layers((2, 3), 3)  # Dense takes 1-D samples


@pytest.mark.parametrize("name", PLANNED)
def test_forward_is_what_predict_and_transform_run(name):
    cls = estimator_class(name)
    est, X, _ = fitted(cls)
    net = est.network_
    raw = est.forward(X)
    assert raw.shape == (len(X),) + net.output_shape and raw.dtype == net.dtype
    out = est.forward(X, output_activation=True)
    if hasattr(est, "predict_proba"):
        assert_array_equal(out, est.predict_proba(X))
    else:
        assert_array_equal(out.reshape(est.predict(X).shape), est.predict(X))
    stop = est.last_hidden_layer_ + 1
    assert stop == len(net.layers) - 1
    hidden = est.forward(X, stop=stop)
    assert hidden.shape == (len(X),) + net.layers[stop - 1].output_shape
    assert_array_equal(hidden.reshape(len(X), -1), est.transform(X))
    X32 = X.astype(np.float32)  # cast to the network's dtype
    assert_array_equal(est.forward(X32), est.forward(X32.astype(net.dtype)))
    for bad in (-1, len(net.layers) + 1, 1.5, True):
        with pytest.raises(ValueError, match="stop"):
            est.forward(X, stop=bad)
    with pytest.raises(NotFittedError):
        make_estimator(cls).forward(X)


def _pretrained_mlp():
    X = make_X(MLPClassifier, n=60)
    y = make_y(X, "multiclass")
    return MLPClassifier((8, 6), max_iter=20, random_state=0).fit(X, y), X, y


def test_fit_from_freezes_the_first_layers_and_keeps_no_weights():
    base, X, y = _pretrained_mlp()
    body = base.network_.theta[: base.network_.layer_offset(2)]
    est = MLPRegressor(hidden_layer_sizes=(8, 6), max_iter=20, random_state=3)
    est.fit_from(X, y.astype(float), body, first_trainable=2)
    assert est.first_trainable_layer_ == 2
    assert_array_equal(est.network_.theta[: body.size], body)  # frozen: bit-identical
    assert set(vars(est)) == set(vars(clone(est).fit(X, y.astype(float))))  # nothing extra
    # partial_fit keeps them frozen; a plain fit starts afresh and trains everything
    est.partial_fit(X, y.astype(float))
    assert_array_equal(est.network_.theta[: body.size], body)
    est.fit(X, y.astype(float))
    assert est.first_trainable_layer_ == 0
    assert not np.array_equal(est.network_.theta[: body.size], body)


def test_fit_from_rejects_bad_weights():
    base, X, y = _pretrained_mlp()
    est = MLPClassifier((8, 6), max_iter=2, random_state=0)
    n = base.network_.n_params
    with pytest.raises(ValueError, match="1-D array"):
        est.fit_from(X, y, base.network_.theta.reshape(1, -1))
    with pytest.raises(ValueError, match="parameters"):
        est.fit_from(X, y, np.zeros(n + 1))
    with pytest.raises(ValueError, match="frozen"):  # frozen layers need weights
        est.fit_from(X, y, base.network_.theta[: base.network_.layer_offset(1)], first_trainable=2)
    with pytest.raises(ValueError, match="first_trainable"):
        est.fit_from(X, y, base.network_.theta, first_trainable=-1)


def test_set_weights_replaces_weights_and_training_state():
    base, X, y = _pretrained_mlp()
    est = MLPClassifier((8, 6), max_iter=5, random_state=1).fit(X, y)
    assert "_optimizer" in vars(est)
    assert est.set_weights(base.network_.theta) is est
    assert_array_equal(est.predict_proba(X), base.predict_proba(X))
    assert "_optimizer" not in vars(est)  # its moments belonged to the old weights
    est.partial_fit(X, y)  # a fresh optimiser
    with pytest.raises(ValueError, match="shape"):
        est.set_weights(base.network_.theta[:-1])
    with pytest.raises(ValueError, match="NaN"):
        est.set_weights(np.full(base.network_.n_params, np.nan))
    with pytest.raises(NotFittedError):
        MLPClassifier().set_weights(base.network_.theta)
