"""Small, fast instances of every sknet estimator and matching toy data.

Shared by the persistence, transfer and PyTorch-interop tests. The six estimators the
project plans are listed by name; those not exported by :mod:`sknet` yet are skipped
with a reason, and any other exported network estimator is picked up too.
"""

import numpy as np
import pytest
from sklearn.base import clone, is_classifier

import sknet
from sknet._base import BaseNetworkEstimator
from sknet.layers import Activation, BatchNorm, Conv1D, Dense, GlobalAveragePool, Residual

PLANNED = [
    "MLPClassifier",
    "MLPRegressor",
    "RNNClassifier",
    "RNNRegressor",
    "ConvNetClassifier",
    "ConvNetRegressor",
]

# hyperparameters that keep each family tiny (only those the class accepts are used)
SMALL = {
    "MLP": {"hidden_layer_sizes": (5,)},
    "RNN": {"hidden_layer_sizes": (4,)},
    "ConvNet": {"conv_filters": (2,), "kernel_size": 3, "hidden_layer_sizes": (4,)},
    # every new layer type once: convolution, batch normalization, a residual block
    # with a projection shortcut, global pooling, a dense layer
    "Network": {
        "layers": [
            ("conv", Conv1D(3, 3, activation="identity")),
            ("bn", BatchNorm()),
            ("relu", Activation("relu")),
            ("block", Residual([("conv", Conv1D(4, 3)), ("bn", BatchNorm())])),
            ("gap", GlobalAveragePool()),
            ("dense", Dense(4)),
        ]
    },
}


def exported_estimator_names():
    """PLANNED plus any other network estimator in ``sknet.__all__``."""
    names = list(PLANNED)
    for name in sknet.__all__:
        obj = getattr(sknet, name, None)
        if isinstance(obj, type) and issubclass(obj, BaseNetworkEstimator) and name not in names:
            names.append(name)
    return names


def estimator_class(name):
    cls = getattr(sknet, name, None)
    if cls is None:
        pytest.skip(f"sknet.{name} does not exist yet")
    return cls


def family(cls):
    for prefix in ("MLP", "RNN", "ConvNet", "Network"):
        if cls.__name__.startswith(prefix):
            return prefix
    raise ValueError(f"no toy data recipe for {cls.__name__}: add one to {__name__}")


def make_estimator(cls, **params):
    """A small, seeded instance: few epochs, tiny layers."""
    accepted = cls().get_params()
    chosen = {"max_iter": 5, "random_state": 0}
    chosen.update(SMALL[family(cls)])
    chosen.update(params)
    # cloned: the layer specifications in SMALL are shared, and set_params mutates them
    return clone(cls(**{k: v for k, v in chosen.items() if k in accepted or k in params}))


def make_X(cls, n=40, dtype=np.float64, seed=0):
    """Toy input in the family's format."""
    rng = np.random.RandomState(seed)
    fam = family(cls)
    if fam == "MLP":
        return rng.randn(n, 6).astype(dtype)
    if fam == "RNN":
        return rng.randn(n, 5, 3).astype(dtype)  # (n, T, d)
    if fam == "Network":
        return rng.randn(n, 2, 12).astype(dtype)  # (n, C, L) signals
    return rng.randn(n, 1, 8, 8).astype(dtype)  # (n, C, H, W), PyTorch's layout


def make_y(X, kind, seed=0):
    """Targets of the given kind, loosely tied to X so that they are learnable."""
    rng = np.random.RandomState(seed)
    s = X.reshape(len(X), -1)
    a, b = s[:, 0], s[:, 1]
    if kind == "binary":
        return (a > 0).astype(int)
    if kind == "multiclass":
        return (a > 0).astype(int) + (b > 0).astype(int) * 2  # 4 classes
    if kind == "strings":
        return np.array(["cat", "dog", "emu"])[((a > 0).astype(int) + (b > 0.5)) % 3]
    if kind == "multilabel":
        return np.column_stack([a > 0, b > 0, a + b > 0.5]).astype(int)
    if kind == "regression":
        return a + 0.5 * b + 0.1 * rng.randn(len(X))
    if kind == "multioutput":
        return np.column_stack([a + b, a - b])
    raise ValueError(kind)


def target_kinds(cls):
    if is_classifier(cls()):
        return ["binary", "multiclass", "strings", "multilabel"]
    return ["regression", "multioutput"]


def fitted(cls, kind=None, dtype=np.float64, **params):
    """A small fitted estimator with its training data."""
    kind = kind or target_kinds(cls)[1]
    X = make_X(cls, dtype=dtype)
    y = make_y(X, kind)
    est = make_estimator(cls, **params)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return est, X, y
