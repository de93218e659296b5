"""Networks users compose from :mod:`sknet.layers`: NetworkClassifier and NetworkRegressor."""

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils.validation import validate_data

from . import layers as specs
from ._base import (
    BaseNetworkEstimator,
    NetworkClassifierMixin,
    NetworkRegressorMixin,
    as_rectangular,
    layer_sizes,
)
from ._compat import StrOptions
from ._convnet import warn_if_channels_last
from ._layers import Dense, Flatten

_SAMPLES, _FIX = "samples: all samples need the same shape", "pad or resize them first"

#: the hidden layers of ``layers=None``: scikit-learn's MLP default, one dense layer
DEFAULT_LAYERS = (("dense", specs.Dense(100, "relu")),)


class BaseNetwork(BaseNetworkEstimator):
    """A network of user-given layers, then the output layer. Not for direct use."""

    _parameter_constraints: dict = {
        **BaseNetworkEstimator._parameter_constraints,
        "layers": [None, list, tuple],
        "input_shape": [None, tuple, list],
    }

    #: the per-sample layout of X at fit, saved by sknet.persistence (see BaseNetworkEstimator)
    _saved_state = {"_fit_sample_shape": "layout"}

    # -- the layer list as parameters (``layers__<name>__<param>``) ------------------
    def get_params(self, deep=True):
        out = super().get_params(deep=deep)
        out.update(specs.layer_list_params(self.layers, "layers", deep))
        return out

    def set_params(self, **params):
        rest = specs.set_layer_list_params(self, "layers", params)
        return super().set_params(**rest) if rest else self

    def _named_layers(self):
        return specs.named_layers(
            list(DEFAULT_LAYERS) if self.layers is None else self.layers, "layers"
        )

    def _spec_values(self, attr):
        """``spec.<attr>`` of every layer; a nested list (a Residual's) that is not one
        is reported with the layer's name."""
        out = []
        for i, (name, spec) in enumerate(self._named_layers()):
            try:
                out.append(getattr(spec, attr))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"layers[{i}] {name!r} ({type(spec).__name__}): {exc}") from None
        return out

    def _input_layout(self):
        for layout in self._spec_values("_input_layout"):
            if layout is not None:
                return layout
        return "features"

    def _fit_lbfgs(self, X, Y, sample_weight):
        if self._uses_dropout():
            raise ValueError(
                "solver='lbfgs' needs a deterministic objective, but the layers hold a "
                "Dropout with rate > 0 (a random mask per evaluation breaks L-BFGS's line "
                "search): use solver='adam' or 'sgd', or set the rate to 0 "
                "(layers__<name>__rate=0)."
            )
        return super()._fit_lbfgs(X, Y, sample_weight)

    # -- shapes and validation --------------------------------------------------------
    def _sample_shape(self, X):
        """Per-sample shape the network takes for validated X (2-D to 4-D)."""
        data = tuple(X.shape[1:])
        if self.input_shape is not None:
            shape = tuple(layer_sizes("input_shape", self.input_shape, allow_empty=False))
            if not shape or min(shape) < 1:
                raise ValueError(f"input_shape must hold positive sizes, got {self.input_shape!r}.")
            if X.ndim == 2:
                if int(np.prod(shape)) != X.shape[1]:
                    raise ValueError(
                        f"input_shape={shape} needs {int(np.prod(shape))} features per row, "
                        f"but X has {X.shape[1]}."
                    )
            elif shape not in (data, (1,) + data):
                raise ValueError(f"input_shape={shape} does not match X's per-sample shape {data}.")
            return shape
        layout = self._input_layout()
        if X.ndim == 2:
            if layout == "channels1d":
                return (1,) + data  # a univariate signal
            if layout == "time":
                return data + (1,)  # a univariate sequence
            if layout == "channels2d":
                raise ValueError(
                    "The first layer is a 2-D convolution or pooling, which needs images: "
                    "pass X of shape (n, channels, height, width) or (n, height, width), "
                    "or set input_shape=(channels, height, width) to read rows as images."
                )
        elif X.ndim == 3 and layout == "channels2d":
            return (1,) + data  # one-channel images
        return data

    def _check_ndim(self, X):
        if X.ndim not in (2, 3, 4):
            raise ValueError(
                f"{type(self).__name__} expects X of shape (n, features), (n, channels, "
                f"length), (n, timesteps, features), (n, height, width) or (n, channels, "
                f"height, width), got a {X.ndim}-D array."
            )
        if 0 in X.shape[1:]:
            raise ValueError(
                f"X has an empty axis: per-sample shape {X.shape[1:]} (every channel, "
                "length, height and width must be at least 1)."
            )

    def _flat_rows_as_fitted(self, X):
        """Flat rows of a network fitted on n-D samples, laid out as at fit.

        A network fitted on (n, 1, 28, 28) images takes the (n, 784) rows that
        ``sknet.datasets.load_mnist`` returns, read in row-major order, and (n, 28, 28)
        one-channel images, as :class:`ConvNetClassifier` does. Anything else is
        returned as is.
        """
        layout = getattr(self, "_fit_sample_shape", None)
        ndim = getattr(X, "ndim", None)
        if self.input_shape is not None or not hasattr(self, "_network") or layout is None:
            return X
        layout = tuple(layout)
        flat = ndim == 2 and len(layout) > 1
        if flat and X.shape[1] != int(np.prod(layout)):
            raise ValueError(
                f"X has {X.shape[1]} features per row, but the network was fitted on "
                f"samples of shape {layout}: flat rows need {int(np.prod(layout))}."
            )
        # (n, H, W) one-channel images for a network fitted on (n, 1, H, W)
        grey = ndim == 3 and len(layout) == 3 and (1,) + tuple(X.shape[1:]) == layout
        if flat or grey:
            return np.reshape(np.asarray(X), (X.shape[0],) + layout)
        return X

    def _validate_input(self, X, y, reset):
        X = as_rectangular(X, _SAMPLES, _FIX)
        if not reset:
            X = self._flat_rows_as_fitted(X)
        X, y = validate_data(
            self,
            X,
            y,
            allow_nd=True,
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
            y_numeric=not is_classifier(self),
        )
        self._check_ndim(X)
        shape = self._sample_shape(X)
        if not reset and hasattr(self, "_network") and shape != self._network.input_shape:
            raise ValueError(
                f"X has per-sample shape {shape}, but the network was built for "
                f"{self._network.input_shape}."
            )
        if reset:
            if self.input_shape is None and self._input_layout() == "channels2d":
                warn_if_channels_last(X, self)
            self._fit_sample_shape = tuple(X.shape[1:])  # the layout of X at fit
        return np.ascontiguousarray(X).reshape((X.shape[0],) + shape), y

    def _validate_X_predict(self, X):
        X = as_rectangular(X, _SAMPLES, _FIX)
        X = self._flat_rows_as_fitted(X)
        X = validate_data(self, X, allow_nd=True, dtype=(np.float64, np.float32), reset=False)
        self._check_ndim(X)
        shape = self._sample_shape(X)
        if shape != self._network.input_shape:
            raise ValueError(
                f"X has per-sample shape {shape}, but the network was fitted on "
                f"{self._network.input_shape}."
            )
        return np.ascontiguousarray(X).reshape((X.shape[0],) + shape)

    # -- architecture -----------------------------------------------------------------
    def _hidden_layer_sizes(self):
        return []  # no MLP-style sizes; kept for the shared fit path

    def _count_layers(self):
        # scikit-learn's count: the input, every layer, the output
        return len(self._network.layers) + 1

    def _n_output_layers(self):
        return 2 if self._network.layers[-2].kind == "flatten" else 1

    def _build_layers(self, input_shape, n_outputs):
        """The user's layers, each built on the previous one's output to report a
        misfit by name, then a flatten if needed and the output layer."""
        built = []
        shape = tuple(input_shape)
        source = "the input"
        for i, (name, spec) in enumerate(self._named_layers()):
            kind = type(spec).__name__
            try:
                layer = spec.build_layer()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"layers[{i}] {name!r} ({kind}): {exc}") from None
            try:
                out = layer.build(shape, np.float64)
            except ValueError as exc:
                hint = ""
                if isinstance(layer, Dense) and len(shape) > 1:
                    hint = " Add a Flatten or a GlobalAveragePool before it."
                raise ValueError(
                    f"layers[{i}] {name!r} ({kind}) does not fit its input: it gets samples "
                    f"of shape {shape} from {source}. {exc}{hint}"
                ) from None
            built.append(layer)
            shape = out
            source = f"layers[{i}] {name!r} ({kind})"
        if len(shape) != 1:
            built.append(Flatten())
        built.append(Dense(n_outputs, "identity"))
        return built


_PARAMS = """
    layers : list of (name, layer) pairs, default=None
        The hidden layers, specifications from :mod:`sknet.layers` (``Dense``,
        ``Conv1D``, ``BatchNorm``, ``Residual`` ...), as ``Pipeline`` takes steps;
        bare specifications are named after their class. The output layer (one unit
        per class or target, after a flatten when needed) is added. A layer's
        parameters are ``layers__<name>__<param>`` for ``set_params`` and
        ``GridSearchCV``. None: ``[("dense", Dense(100, "relu"))]``, scikit-learn's MLP.

    input_shape : tuple or None, default=None
        Per-sample shape (channels first) used to reshape 2-D rows (so scalers and
        pipelines work). None: X's own per-sample shape, except that 2-D rows are read
        as one-channel signals (first layer a 1-D convolution, pooling or global
        pooling), univariate sequences (first layer recurrent), and 3-D X as
        one-channel images when the first layer is 2-D.

    solver, alpha, batch_size, learning_rate, learning_rate_init, power_t, max_iter, \
shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, \
early_stopping, validation_fraction, validation_split, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun
        As for :class:`MLPClassifier`. ``alpha`` penalizes the weights of dense,
        convolutional and recurrent layers (not biases, not batch normalization).

    clip_norm : float or None, default=None
        Rescale the gradient (of all parameters together) to at most this L2 norm
        before each update of the stochastic solvers; None turns clipping off.
"""


def _init(
    self,
    layers,
    input_shape,
    solver,
    alpha,
    batch_size,
    learning_rate,
    learning_rate_init,
    power_t,
    max_iter,
    shuffle,
    random_state,
    tol,
    verbose,
    warm_start,
    momentum,
    nesterovs_momentum,
    early_stopping,
    validation_fraction,
    validation_split,
    beta_1,
    beta_2,
    epsilon,
    n_iter_no_change,
    max_fun,
    clip_norm,
):
    self.layers = layers
    self.input_shape = input_shape
    self.solver = solver
    self.alpha = alpha
    self.batch_size = batch_size
    self.learning_rate = learning_rate
    self.learning_rate_init = learning_rate_init
    self.power_t = power_t
    self.max_iter = max_iter
    self.shuffle = shuffle
    self.random_state = random_state
    self.tol = tol
    self.verbose = verbose
    self.warm_start = warm_start
    self.momentum = momentum
    self.nesterovs_momentum = nesterovs_momentum
    self.early_stopping = early_stopping
    self.validation_fraction = validation_fraction
    self.validation_split = validation_split
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.n_iter_no_change = n_iter_no_change
    self.max_fun = max_fun
    self.clip_norm = clip_norm


class NetworkClassifier(NetworkClassifierMixin, ClassifierMixin, BaseNetwork):
    __doc__ = f"""Classifier of any network composed from :mod:`sknet.layers`.

    Parameters
    ----------{_PARAMS}
    class_weight : dict, 'balanced' or None, default=None
        Weights per class multiplied into ``sample_weight``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, n_iter_, n_outputs_, out_activation_
        As for :class:`MLPClassifier`.

    n_layers_ : int
        Layers of the network, the input and the output layer included.

    input_shape_ : tuple of int
        Shape of one sample as the network takes it.

    See Also
    --------
    sknet.layers.fcn, sknet.layers.resnet : Time-series networks to give as ``layers``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import BatchNorm, Conv1D, GlobalAveragePool
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(120, 40))
    >>> y = (X[:, 10:20].sum(axis=1) > 0).astype(int)
    >>> clf = NetworkClassifier(
    ...     [("conv", Conv1D(8, 5)), ("bn", BatchNorm()), ("gap", GlobalAveragePool())],
    ...     max_iter=5, random_state=0,
    ... ).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    >>> clf.set_params(layers__conv__filters=16).get_params()["layers__conv__filters"]
    16
    """

    _parameter_constraints: dict = {
        **BaseNetwork._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        layers=None,
        *,
        input_shape=None,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="random",
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        clip_norm=None,
        class_weight=None,
    ):
        _init(**{k: v for k, v in locals().items() if k not in ("class_weight", "__class__")})
        self.class_weight = class_weight


class NetworkRegressor(NetworkRegressorMixin, RegressorMixin, BaseNetwork):
    __doc__ = f"""Regressor of any network composed from :mod:`sknet.layers`.

    Parameters
    ----------{_PARAMS}
    loss : {{'squared_error', 'poisson'}}, default='squared_error'
        Loss of the output, as for :class:`MLPRegressor`.

    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, n_iter_, n_outputs_, out_activation_
        As for :class:`MLPRegressor`.

    n_layers_ : int
        Layers of the network, the input and the output layer included.

    input_shape_ : tuple of int
        Shape of one sample as the network takes it.

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import NetworkRegressor
    >>> from sknet.layers import Dense
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> y = X @ np.arange(5.0)
    >>> reg = NetworkRegressor([Dense(32)], max_iter=300, learning_rate_init=0.01,
    ...                        random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **BaseNetwork._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        layers=None,
        *,
        input_shape=None,
        loss="squared_error",
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="random",
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        clip_norm=None,
    ):
        _init(**{k: v for k, v in locals().items() if k not in ("loss", "__class__")})
        self.loss = loss
