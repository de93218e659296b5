"""Multi-layer perceptrons: drop-in replacements for ``sklearn.neural_network``."""

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils.validation import validate_data

from . import layers as specs
from ._base import (
    BaseNetworkEstimator,
    NetworkClassifierMixin,
    NetworkRegressorMixin,
)
from ._compat import StrOptions
from ._layers import Dense


class BaseMLP(BaseNetworkEstimator):
    """Dense layers on 2-D (optionally sparse) input. Not for direct use."""

    def _validate_input(self, X, y, reset):
        return validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
            y_numeric=not is_classifier(self),
        )

    def _validate_X_predict(self, X):
        return validate_data(
            self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False
        )

    def layer_specs(self, input_shape=None):
        """The hidden layers as specifications of :mod:`sknet.layers`.

        ``NetworkClassifier(layers=clf.layer_specs(shape), ...)`` builds the same
        network as this estimator (the output layer is added by either), and ``fit``
        builds its hidden layers from exactly these specifications. With the same
        training parameters the two train to bit-identical weights, except with
        ``activation='logistic'``: scikit-learn draws the MLP's output weights with
        the hidden activation's Glorot factor, which only logistic changes.

        Parameters
        ----------
        input_shape : tuple of int or None, default=None
            Shape of one sample, ``(n_features,)``; an MLP's hidden layers do not
            depend on it.

        Returns
        -------
        layers : list of (name, spec)
            ``dense1``, ``dense2``, ... (``Dense(units, activation)``), each followed
            by ``dropout1``, ... (``Dropout(rate)``) where its dropout rate is > 0.

        Examples
        --------
        >>> from sknet import MLPClassifier
        >>> MLPClassifier((8, 4), dropout=0.2).layer_specs((10,))
        [('dense1', Dense(units=8)), ('dropout1', Dropout(rate=0.2)), \
('dense2', Dense(units=4)), ('dropout2', Dropout(rate=0.2))]
        """
        self._validate_params()
        return self._layer_specs()

    def _layer_specs(self):
        sizes = self._hidden_layer_sizes()
        rates = self._dropout_rates(len(sizes))
        out = []
        for i, (units, rate) in enumerate(zip(sizes, rates), start=1):
            out.append((f"dense{i}", specs.Dense(units, self.activation)))
            if rate > 0:
                out.append((f"dropout{i}", specs.Dropout(rate)))
        return out

    def _build_layers(self, input_shape, n_outputs):
        layers = [spec.build_layer() for _, spec in self._layer_specs()]
        # scikit-learn draws the output layer's init with the hidden activation's factor
        layers.append(Dense(n_outputs, "identity", init_activation=self.activation))
        return layers

    def _dense_layers(self):
        net = self._network
        return [i for i, layer in enumerate(net.layers) if isinstance(layer, Dense)]

    @property
    def coefs_(self):
        """list of ndarray: weight matrix of each layer, views into the flat vector."""
        if not hasattr(self, "_network"):
            raise AttributeError("coefs_")
        return [self._network.params[i]["W"] for i in self._dense_layers()]

    @coefs_.setter
    def coefs_(self, values):
        self._assign("coefs_", "W", values)

    @property
    def intercepts_(self):
        """list of ndarray: bias vector of each layer, views into the flat vector."""
        if not hasattr(self, "_network"):
            raise AttributeError("intercepts_")
        return [self._network.params[i]["b"] for i in self._dense_layers()]

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign("intercepts_", "b", values)

    def _assign(self, attr, key, values):
        """Copy ``values`` into the network's parameter views; counts and shapes must match
        exactly (no silent truncation or broadcasting)."""
        if not hasattr(self, "_network"):
            raise AttributeError(f"{attr} can only be assigned after fit.")
        values = list(values)
        layers = self._dense_layers()
        if len(values) != len(layers):
            raise ValueError(f"{attr} needs {len(layers)} arrays, got {len(values)}.")
        views = [self._network.params[i][key] for i in layers]
        for j, (view, v) in enumerate(zip(views, values)):
            if np.shape(v) != view.shape:
                raise ValueError(f"{attr}[{j}] must have shape {view.shape}, got {np.shape(v)}.")
        for view, v in zip(views, values):
            view[...] = v

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_MLP_DOC_PARAMS = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith dense hidden layer (the
        output layer is not counted). As in :class:`ConvNetClassifier`; in
        :class:`RNNClassifier` it sizes the recurrent layers instead.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the dense hidden layers (the output activation follows the loss).

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        Weight optimiser: L-BFGS (scipy), SGD with momentum, or Adam.

    alpha : float, default=0.0001
        Strength of the L2 penalty, ``alpha / (2 * sum(sample_weight)) * ||W||^2``.

    batch_size : int or 'auto', default='auto'
        Minibatch size for stochastic solvers; 'auto' is ``min(200, n_samples)``.

    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule for ``solver='sgd'``.

    learning_rate_init : float, default=0.001
        Initial step size (sgd, adam).

    power_t : float, default=0.5
        Exponent of 'invscaling'.

    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or iterations (lbfgs).

    shuffle : bool, default=True
        Shuffle samples in each epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, the early-stopping split and dropout masks.

    tol : float, default=1e-4
        Tolerance for the optimisation.

    verbose : int, bool or "progress", default=False
        0/False: silent. 1/True (or any larger integer): one line per epoch, as
        scikit-learn prints. "progress": a tqdm progress bar on a terminal (plain
        periodic lines elsewhere).

    warm_start : bool, default=False
        Reuse the previous solution as initialisation.

    momentum : float, default=0.9
        Momentum for sgd.

    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (sgd).

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its score stalls.

    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.

    validation_split : {'random', 'last'}, default='random'
        Which ``validation_fraction`` of the training data early stopping holds out:
        'random' draws it as scikit-learn does (stratified for classifiers), 'last'
        takes the last samples in the order given, as Keras's ``validation_split``
        does. Use 'last' on data in time order (the lag windows of
        :mod:`sknet.timeseries`), where random validation windows overlap training
        windows and score optimistically; ``fit(..., X_val=, y_val=)`` takes a
        validation set of your own instead. An sknet addition.

    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's decay rates.

    epsilon : float, default=1e-8
        Adam's numerical-stability constant.

    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping.

    max_fun : int, default=15000
        Maximum loss evaluations (lbfgs).

    dropout : float, sequence of float or None, default=None
        Drop probability after each hidden layer (one rate for all, or one per
        hidden layer); inverted dropout during training, identity at prediction.
        Not in scikit-learn.

    clip_norm : float or None, default=None
        Rescale the gradient (of all parameters together) to at most this L2 norm
        before each update of the stochastic solvers; ignored by 'lbfgs'. None turns
        clipping off. As in :class:`RNNClassifier` and :class:`ConvNetClassifier`.
        Not in scikit-learn.
"""

_MLP_DOC_ATTRS = """
    loss_ : float
        The current loss computed with the loss function.

    best_loss_ : float or None
        Minimum training loss reached (None with ``early_stopping=True``).

    loss_curve_ : list of float
        Training loss at the end of each epoch (stochastic solvers).

    validation_scores_ : list of float or None
        Validation score per epoch with ``early_stopping=True``.

    validation_loss_curve_ : list of float or None
        Validation loss (without penalty) per epoch with ``early_stopping=True``.
        Not in scikit-learn.

    best_validation_score_ : float or None
        Best validation score with ``early_stopping=True``.

    t_ : int
        Number of training samples seen by the solver.

    coefs_ : list of ndarray
        Weight matrix of each layer (``coefs_[i]`` has shape (fan_in, fan_out)).

    intercepts_ : list of ndarray
        Bias vector of each layer.

    n_features_in_ : int
        Number of features seen during fit.

    input_shape_ : tuple of int
        Shape of one sample, ``(n_features_in_,)``. Not in scikit-learn.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string column names.

    n_iter_ : int
        Number of iterations the solver ran.

    n_layers_ : int
        Number of layers, input and output included.

    n_outputs_ : int
        Number of outputs.

    out_activation_ : str
        Name of the output activation.
"""


class MLPClassifier(NetworkClassifierMixin, ClassifierMixin, BaseMLP):
    __doc__ = f"""Multi-layer perceptron classifier with numba kernels.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`: the same
    parameters, defaults and fitted attributes, plus ``dropout``, ``class_weight``,
    ``clip_norm``, ``transform`` (last hidden layer) and float32 training when X is
    float32.

    Parameters
    ----------{_MLP_DOC_PARAMS}
    class_weight : dict, 'balanced' or None, default=None
        Weights ``{{class_label: weight}}`` multiplied into ``sample_weight``;
        'balanced' uses ``n_samples / (n_classes * bincount(y))``. Not in scikit-learn.

    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels.
    {_MLP_DOC_ATTRS}
    See Also
    --------
    MLPRegressor : The regression counterpart.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sknet import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, random_state=0)
    >>> clf.fit(X[:1500] / 16, y[:1500]).score(X[1500:] / 16, y[1500:]) > 0.85
    True
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    loss = "log_loss"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
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
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
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


class MLPRegressor(NetworkRegressorMixin, RegressorMixin, BaseMLP):
    __doc__ = f"""Multi-layer perceptron regressor with numba kernels.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`: the same
    parameters, defaults and fitted attributes, plus ``dropout``, ``clip_norm``,
    ``transform`` (last hidden layer) and float32 training when X is float32.

    Parameters
    ----------
    loss : {{'squared_error', 'poisson'}}, default='squared_error'
        Half squared error (identity output) or half Poisson deviance (log link,
        exp output; needs ``y >= 0``).
    {_MLP_DOC_PARAMS}
    Attributes
    ----------{_MLP_DOC_ATTRS}
    See Also
    --------
    MLPClassifier : The classification counterpart.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sknet import MLPRegressor
    >>> X, y = make_regression(n_samples=300, n_features=10, noise=1, random_state=0)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=500,
    ...                    random_state=0)
    >>> reg.fit(X[:250], y[:250]).score(X[250:], y[250:]) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
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
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
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
