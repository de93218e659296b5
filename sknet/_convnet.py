"""Convolutional networks for images and signals: ConvNetClassifier and ConvNetRegressor."""

import warnings
from numbers import Integral

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
from ._compat import Interval, StrOptions
from ._layers import Dense

#: the convolution and pooling specifications per spatial rank
_CONV = {1: specs.Conv1D, 2: specs.Conv2D}
_POOL = {
    (1, "max"): specs.MaxPool1D,
    (1, "avg"): specs.AvgPool1D,
    (2, "max"): specs.MaxPool2D,
    (2, "avg"): specs.AvgPool2D,
}

_SAMPLES, _FIX = "samples: all images or signals need the same shape", "pad or resize it first"

#: channel counts of channels-last images (grey, RGB, RGBA): a last axis this small after a
#: larger axis 1 is more likely channels than a width
_IMAGE_CHANNELS = (1, 3, 4)


def warn_if_channels_last(X, estimator):
    """Warn when 4-D X looks like channels-last images (the Keras habit).

    ``(n, 28, 28, 1)`` read as (channels, height, width) is 28 channels of 28x1-pixel
    images: it trains, silently, on the wrong reading. Called at fit when no
    ``input_shape`` states the layout; ``input_shape=X.shape[1:]`` confirms the reading.
    """
    if X.ndim != 4 or X.shape[3] not in _IMAGE_CHANNELS or X.shape[1] <= X.shape[3]:
        return
    c, h, w = X.shape[1:]
    warnings.warn(
        f"{type(estimator).__name__} reads X of shape {X.shape} as channels-first "
        f"(n, channels, height, width): {c} channels of {h}x{w}-pixel images. If the last "
        f"axis holds the channels (channels-last, as in Keras), pass "
        f"X.transpose(0, 3, 1, 2), of shape {(X.shape[0], w, c, h)}. To keep this reading "
        f"and silence this warning, pass input_shape={(c, h, w)}.",
        UserWarning,
        stacklevel=4,
    )


def _warn_if_image_read_as_signal(shape):
    """Warn when ``input_shape=(C, L)`` for flat rows looks like an image's (H, W).

    ``input_shape=(8, 8)`` reads each row as 8 channels of a signal of length 8 (1-D
    convolutions), not as an 8x8 image. Signals rarely have more than a few channels
    and as many channels as half their length; images' heights and widths are alike.
    """
    channels, length = shape if len(shape) == 2 else (0, 0)
    if channels <= max(_IMAGE_CHANNELS) or 2 * channels < length:
        return
    warnings.warn(
        f"input_shape={shape} reads each row as {channels}-channel signals of length "
        f"{length} (1-D convolutions). For {channels}x{length} one-channel images, pass "
        f"input_shape={(1, channels, length)}. To keep this reading and silence this "
        f"warning, pass X as a 3-D array of shape (n, {channels}, {length}).",
        UserWarning,
        stacklevel=4,
    )


class BaseConvNet(BaseNetworkEstimator):
    """Convolution + pooling blocks, then dense layers. Not for direct use.

    Input: 4-D (n, channels, height, width), 3-D (n, height, width) (or (n, channels,
    length) signals with ``input_shape=(channels, length)``), or 2-D rows that
    ``input_shape`` reshapes; with ``input_shape=None`` a 2-D row of length d is read as
    a one-channel signal of length d (1-D convolutions).
    """

    _parameter_constraints: dict = {
        **BaseNetworkEstimator._parameter_constraints,
        "conv_filters": ["array-like"],
        "kernel_size": [Interval(Integral, 1, None, closed="left")],
        "strides": [Interval(Integral, 1, None, closed="left")],
        "padding": [StrOptions({"same", "valid"}), Interval(Integral, 0, None, closed="left")],
        "pool_size": [None, Interval(Integral, 1, None, closed="left")],
        "pool": [StrOptions({"max", "avg"})],
        "input_shape": [None, tuple, list],
        "dense_activation": [None, StrOptions({"identity", "logistic", "tanh", "relu"})],
    }

    #: the per-sample layout of X at fit, saved by sknet.persistence (see BaseNetworkEstimator)
    _saved_state = {"_fit_sample_shape": "layout"}

    # -- shapes and validation -------------------------------------------------------
    def _sample_shape(self, X):
        """Per-sample (C, H, W) or (C, L) shape of validated X."""
        if X.ndim == 4:
            data_shape = X.shape[1:]
        elif X.ndim == 3:
            data_shape = (1,) + X.shape[1:]
        else:
            data_shape = (1, X.shape[1])
        if self.input_shape is None:
            return tuple(data_shape)
        shape = tuple(layer_sizes("input_shape", self.input_shape, allow_empty=False))
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(
                "input_shape must be (channels, height, width) for images or (channels, "
                f"length) for signals, got {self.input_shape!r}."
            )
        if X.ndim == 2:
            if int(np.prod(shape)) != X.shape[1]:
                raise ValueError(
                    f"input_shape={shape} needs {int(np.prod(shape))} features per row, but "
                    f"X has {X.shape[1]}."
                )
        elif shape not in (tuple(X.shape[1:]), tuple(data_shape)):
            # 3-D X is (n, H, W) one-channel images, or (n, C, L) signals when
            # input_shape says (C, L)
            raise ValueError(
                f"input_shape={shape} does not match X's per-sample shape {X.shape[1:]}."
            )
        return shape

    def _reshape(self, X, shape):
        return np.ascontiguousarray(X).reshape((X.shape[0],) + tuple(shape))

    def _check_ndim(self, X):
        if X.ndim not in (2, 3, 4):
            raise ValueError(
                f"{type(self).__name__} expects X of shape (n, channels, height, width), "
                f"(n, height, width) or (n, n_features), got a {X.ndim}-D array."
            )
        if 0 in X.shape[1:]:
            raise ValueError(
                f"X has an empty axis: per-sample shape {X.shape[1:]} (every channel, "
                "length, height and width must be at least 1)."
            )

    def _check_fitted_shape(self, X):
        """Raise if X's per-sample shape is not the one the network was fitted on."""
        shape = tuple(self._sample_shape(X))
        if shape != self._network.input_shape:
            raise ValueError(
                f"X has per-sample shape {shape}, but the network was "
                f"fitted on {self._network.input_shape}."
            )
        return shape

    def _early_shape_check(self, X):
        """Check X's per-sample shape against the fitted network; return X laid out as at fit.

        Whole per-sample shapes are compared before scikit-learn's feature-count check,
        whose "X has 6 features" would call image rows (X.shape[1]) features. Images given
        in another accepted layout than at fit (flat rows with ``input_shape``, (n, H, W),
        (n, C, H, W)) are reshaped to the fitted layout, so that check compares like with
        like. Flat rows fitted as flat rows keep scikit-learn's message.
        """
        ndim = getattr(X, "ndim", None)
        if not hasattr(self, "_network") or ndim not in (2, 3, 4):
            return X
        layout = self._fit_sample_shape
        if ndim == 2 and len(layout) == 1 and len(self._network.input_shape) == 2:
            return X
        if ndim == 2 and self.input_shape is None and len(layout) > 1:
            # flat rows for a network fitted on arrays of images or signals (the rows of
            # sknet.datasets.load_mnist for a ConvNet fitted on (n, 1, 28, 28)): read in
            # row-major order, as np.reshape(X, (n,) + layout) would
            size = int(np.prod(layout))
            if X.shape[1] != size:
                raise ValueError(
                    f"X has {X.shape[1]} features per row, but the network was fitted on "
                    f"samples of shape {self._network.input_shape}: flat rows need {size}."
                )
            return np.reshape(np.asarray(X), (X.shape[0],) + layout)
        self._check_fitted_shape(X)
        if tuple(X.shape[1:]) != layout:
            X = np.reshape(np.asarray(X), (X.shape[0],) + layout)
        return X

    def _validate_input(self, X, y, reset):
        X = as_rectangular(X, _SAMPLES, _FIX)
        if not reset:
            X = self._early_shape_check(X)
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
        if not reset and hasattr(self, "_network"):
            shape = self._check_fitted_shape(X)
        else:
            shape = self._sample_shape(X)
            if self.input_shape is None:
                warn_if_channels_last(X, self)
            elif X.ndim == 2:
                _warn_if_image_read_as_signal(shape)
            self._fit_sample_shape = tuple(X.shape[1:])  # the layout of X at fit
        return self._reshape(X, shape), y

    def _validate_X_predict(self, X):
        X = self._early_shape_check(as_rectangular(X, _SAMPLES, _FIX))
        X = validate_data(self, X, allow_nd=True, dtype=(np.float64, np.float32), reset=False)
        self._check_ndim(X)
        return self._reshape(X, self._check_fitted_shape(X))

    # -- architecture ----------------------------------------------------------------
    def _count_layers(self):
        return len(self.conv_filters) + len(self._hidden_layer_sizes()) + 2

    def layer_specs(self, input_shape):
        """The hidden layers as specifications of :mod:`sknet.layers`.

        ``NetworkClassifier(layers=clf.layer_specs(shape), ...)`` builds the same
        network as this estimator (the output layer is added by either), and ``fit``
        builds its hidden layers from exactly these specifications.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one sample, ``(channels, height, width)`` or ``(channels,
            length)`` (see ``input_shape_``): it decides between 1-D and 2-D layers
            and where a feature map is wide enough to pool.

        Returns
        -------
        layers : list of (name, spec)
            ``conv1``, ``pool1``, ``conv2``, ... (a pooling layer only where the map
            is at least ``pool_size`` wide), ``flatten``, then ``dense1``, ... each
            followed by ``dropout1``, ... where its dropout rate is > 0.

        Examples
        --------
        >>> from sknet import ConvNetClassifier
        >>> clf = ConvNetClassifier(conv_filters=(4, 8, 8), hidden_layer_sizes=(16,))
        >>> [name for name, _ in clf.layer_specs((1, 6, 6))]  # maps 6x6, 3x3, 1x1
        ['conv1', 'pool1', 'conv2', 'pool2', 'conv3', 'flatten', 'dense1']
        """
        self._validate_params()
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(
                "input_shape must be (channels, height, width) for images or (channels, "
                f"length) for signals, got {input_shape!r}."
            )
        return self._layer_specs(shape)

    def _layer_specs(self, input_shape):
        filters = layer_sizes("conv_filters", self.conv_filters)
        ndim = len(input_shape) - 1
        conv_spec, pool_spec = _CONV[ndim], _POOL[ndim, self.pool]
        spatial = list(input_shape[1:])
        out = []
        for i, f in enumerate(filters, start=1):
            conv = conv_spec(
                f,
                self.kernel_size,
                stride=self.strides,
                padding=self.padding,
                activation=self.activation,
            )
            if self.padding != "same":
                pad = 0 if self.padding == "valid" else int(self.padding)
                if any(s + 2 * pad < self.kernel_size for s in spatial):
                    raise ValueError(
                        f"kernel_size={self.kernel_size} is larger than the "
                        f"{'x'.join(map(str, spatial))} input of convolution {i} "
                        f"(padding={self.padding!r}); use padding='same', a smaller kernel "
                        "or fewer pooling stages."
                    )
            out.append((f"conv{i}", conv))
            spatial = list(conv.build_layer()._spatial_out(spatial))
            p = self.pool_size
            if p and p > 1 and all(s >= p for s in spatial):
                out.append((f"pool{i}", pool_spec(p)))
                spatial = [s // p for s in spatial]
        out.append(("flatten", specs.Flatten()))
        sizes = self._hidden_layer_sizes()
        rates = self._dropout_rates(len(sizes))
        dense_activation = (
            self.activation if self.dense_activation is None else self.dense_activation
        )
        for i, (units, rate) in enumerate(zip(sizes, rates), start=1):
            out.append((f"dense{i}", specs.Dense(units, dense_activation)))
            if rate > 0:
                out.append((f"dropout{i}", specs.Dropout(rate)))
        return out

    def _build_layers(self, input_shape, n_outputs):
        layers = [spec.build_layer() for _, spec in self._layer_specs(input_shape)]
        layers.append(Dense(n_outputs, "identity"))
        return layers

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


_CONV_PARAMS = """
    conv_filters : array-like of int, default=(16, 32)
        Number of filters of each convolution; each is followed by ``activation`` and,
        where the feature map is at least ``pool_size`` wide, a pooling layer.

    kernel_size : int, default=3
        Square (or, for signals, 1-D) convolution kernel size.

    strides : int, default=1
        Convolution stride.

    padding : {'same', 'valid'} or int, default='same'
        Zero padding: 'same' keeps the size at stride 1, 'valid' adds none, an int pads
        that many pixels on every side.

    pool_size : int or None, default=2
        Pooling window and stride after each convolution; None or 1 for no pooling.

    pool : {'max', 'avg'}, default='max'
        Max or average pooling.

    hidden_layer_sizes : array-like of int, default=(128,)
        Units of each dense hidden layer after the flattened feature maps (the output
        layer is not counted), as in :class:`MLPClassifier`; the convolutions are
        ``conv_filters``.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the convolutions, and of the dense hidden layers unless
        ``dense_activation`` is given.

    dense_activation : {'identity', 'logistic', 'tanh', 'relu'} or None, default=None
        Activation of the dense hidden layers of ``hidden_layer_sizes``; None uses
        ``activation``. As in :class:`RNNClassifier`.

    input_shape : tuple or None, default=None
        Per-sample shape (channels, height, width) for images or (channels, length)
        for signals, used to reshape 2-D rows (so scalers and pipelines work); with 3-D X
        of shape (n, C, L), ``(C, L)`` reads it as C-channel signals. None: 4-D X is
        (n, C, H, W), 3-D X is (n, H, W), 2-D X is read as one-channel signals. Once
        fitted on 3-D or 4-D X, the estimator also takes flat rows of as many values
        (``X.reshape(n, -1)``, as :func:`sknet.datasets.load_mnist` returns them).
        Channels-first is the only layout: fit warns when 4-D X looks channels-last,
        (n, H, W, 1) or (n, H, W, 3), and when ``input_shape=(H, W)``-like sizes would
        read flat rows as many-channel signals; each warning says how to state either
        reading.

    solver, alpha, batch_size, learning_rate, learning_rate_init, power_t, max_iter, \
shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, \
early_stopping, validation_fraction, validation_split, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun
        As for :class:`MLPClassifier`.

    dropout : float, sequence of float or None, default=None
        Drop rate after each dense hidden layer.

    clip_norm : float or None, default=None
        Rescale the gradient (of all parameters together) to at most this L2 norm
        before each update of the stochastic solvers; ignored by 'lbfgs'. None turns
        clipping off. As in :class:`MLPClassifier` and :class:`RNNClassifier`.
"""


class ConvNetClassifier(NetworkClassifierMixin, ClassifierMixin, BaseConvNet):
    __doc__ = f"""Convolutional network classifier on numba kernels.

    Parameters
    ----------{_CONV_PARAMS}
    class_weight : dict, 'balanced' or None, default=None
        Weights per class multiplied into ``sample_weight``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, n_iter_, n_layers_, n_outputs_, out_activation_
        As for :class:`MLPClassifier`.

    input_shape_ : tuple of int
        Shape of one sample as the network takes it: ``(channels, height, width)`` or
        ``(channels, length)``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> from sknet import ConvNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
    >>> clf = ConvNetClassifier(conv_filters=(8,), hidden_layer_sizes=(32,),
    ...                         input_shape=(1, 8, 8), max_iter=30, random_state=0)
    >>> clf.fit(X_train, y_train).score(X_test, y_test) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **BaseConvNet._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        conv_filters=(16, 32),
        kernel_size=3,
        *,
        strides=1,
        padding="same",
        pool_size=2,
        pool="max",
        hidden_layer_sizes=(128,),
        activation="relu",
        dense_activation=None,
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
        dropout=None,
        clip_norm=None,
        class_weight=None,
    ):
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.pool_size = pool_size
        self.pool = pool
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dense_activation = dense_activation
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
        self.dropout = dropout
        self.clip_norm = clip_norm
        self.class_weight = class_weight


class ConvNetRegressor(NetworkRegressorMixin, RegressorMixin, BaseConvNet):
    __doc__ = f"""Convolutional network regressor on numba kernels.

    Parameters
    ----------
    loss : {{'squared_error', 'poisson'}}, default='squared_error'
        Loss of the output, as for :class:`MLPRegressor`.
    {_CONV_PARAMS}
    Attributes
    ----------
    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, n_iter_, n_layers_, n_outputs_, out_activation_
        As for :class:`MLPRegressor`.

    input_shape_ : tuple of int
        Shape of one sample as the network takes it: ``(channels, height, width)`` or
        ``(channels, length)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import ConvNetRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 16))
    >>> y = X[:, 3:6].sum(axis=1)
    >>> reg = ConvNetRegressor(conv_filters=(4,), hidden_layer_sizes=(16,), max_iter=60,
    ...                        learning_rate_init=0.01, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **BaseConvNet._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        conv_filters=(16, 32),
        kernel_size=3,
        *,
        loss="squared_error",
        strides=1,
        padding="same",
        pool_size=2,
        pool="max",
        hidden_layer_sizes=(128,),
        activation="relu",
        dense_activation=None,
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
        dropout=None,
        clip_norm=None,
    ):
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.loss = loss
        self.strides = strides
        self.padding = padding
        self.pool_size = pool_size
        self.pool = pool
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dense_activation = dense_activation
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
        self.dropout = dropout
        self.clip_norm = clip_norm
