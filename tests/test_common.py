"""scikit-learn's estimator checks over every sknet estimator.

To add an estimator, append a small, fast instance of it to ``ESTIMATORS`` and its class
to the default-parameter list. No expected-failure tags: every check must pass.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from sknet import (
    ConvNetClassifier,
    ConvNetRegressor,
    MLPClassifier,
    MLPRegressor,
    NetworkClassifier,
    NetworkRegressor,
    RNNClassifier,
    RNNRegressor,
)

# Small networks and few epochs keep the checks fast; they still run every check.
ESTIMATORS = [
    MLPClassifier(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=100, random_state=0),
    MLPRegressor(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=100, random_state=0),
    # a stochastic solver too: partial_fit (hidden for lbfgs) gets checked only here
    MLPClassifier(hidden_layer_sizes=(10,), learning_rate_init=0.05, max_iter=60, random_state=0),
    MLPRegressor(hidden_layer_sizes=(10,), learning_rate_init=0.05, max_iter=60, random_state=0),
    # recurrent: 2-D X is read as (n_samples, n_timesteps) univariate sequences
    RNNClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=100, random_state=0),
    RNNRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=100, random_state=0),
    # convolutional: 2-D X without input_shape is read as one-channel 1-D signals
    ConvNetClassifier(
        conv_filters=(4,),
        hidden_layer_sizes=(16,),
        learning_rate_init=0.01,
        max_iter=50,
        random_state=0,
    ),
    ConvNetRegressor(
        conv_filters=(4,),
        hidden_layer_sizes=(16,),
        learning_rate_init=0.01,
        max_iter=100,
        random_state=0,
    ),
    # composed networks with their default layers (one dense layer of 100 units)
    NetworkClassifier(solver="lbfgs", max_iter=100, random_state=0),
    NetworkRegressor(solver="lbfgs", max_iter=100, random_state=0),
    NetworkClassifier(learning_rate_init=0.05, max_iter=60, random_state=0),
    NetworkRegressor(learning_rate_init=0.05, max_iter=60, random_state=0),
]
# ... and every estimator exactly as a user gets it: default parameters (the brief's
# promise; the checks set random_state themselves where they compare fits)
ESTIMATORS += [
    cls()
    for cls in (
        MLPClassifier,
        MLPRegressor,
        RNNClassifier,
        RNNRegressor,
        ConvNetClassifier,
        ConvNetRegressor,
        NetworkClassifier,
        NetworkRegressor,
    )
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
