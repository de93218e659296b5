"""Transfer learning: a fitted network as a frozen feature extractor, and fine-tuning.

Both tools hold on to an already fitted sknet estimator and never refit or modify it.
Like :class:`sklearn.frozen.FrozenEstimator`, they survive :func:`sklearn.base.clone`
(and with it ``GridSearchCV`` and ``cross_validate``) by sharing the fitted network
instead of copying an unfitted one, and they do not expose the fitted network's
parameters to ``set_params``.
"""

import os
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._base import BaseNetworkEstimator, state_offset
from ._compat import HasMethods, Interval, StrOptions, fit_context, skip_common_checks

__all__ = ["FineTuner", "NetworkFeatures"]


def _unwrap(estimator):
    """The sknet estimator inside ``estimator`` (a ``FrozenEstimator`` is unwrapped)."""
    inner = getattr(estimator, "estimator", None)
    if type(estimator).__name__ == "FrozenEstimator" and inner is not None:
        return inner
    return estimator


def _check_network_estimator(estimator, what):
    est = _unwrap(estimator)
    if not isinstance(est, BaseNetworkEstimator):
        raise TypeError(
            f"{what} must be an sknet estimator (MLP, RNN, ConvNet or Network), got "
            f"{type(est).__name__}."
        )
    return est


def _fitted_network_estimator(estimator, what):
    est = _check_network_estimator(estimator, what)
    if not hasattr(est, "network_"):
        raise NotFittedError(
            f"The {type(est).__name__} given as {what} is not fitted: fit it first (it is "
            "used as it is and never refitted)."
        )
    return est


def _resolve_pretrained(pretrained):
    """A fitted sknet estimator from an estimator, a shipped model's name or a file path."""
    if isinstance(pretrained, (str, os.PathLike)):
        from . import pretrained as _pretrained
        from .persistence import load

        name = os.fspath(pretrained)
        if name in _pretrained.available():
            return _pretrained.load(name)
        if os.path.isfile(name):
            return load(name)
        raise ValueError(
            f"pretrained={name!r} is neither a shipped model ({_pretrained.available()}) "
            "nor an existing model file."
        )
    return _fitted_network_estimator(pretrained, "pretrained")


# ======================================================================================
class NetworkFeatures(TransformerMixin, BaseEstimator):
    """The activations of one layer of a fitted sknet network, as a frozen transformer.

    Wraps an already fitted sknet estimator (MLP, RNN, ConvNet or Network) and returns the
    activations of a chosen layer, by default the last hidden one, so that any
    scikit-learn estimator can be trained on them in a :class:`~sklearn.pipeline.Pipeline`.
    ``fit`` does nothing (it only checks that the network is fitted), and
    :func:`~sklearn.base.clone` returns a new transformer sharing the same fitted network,
    following the convention of :class:`sklearn.frozen.FrozenEstimator`: the network is
    never refitted, not even inside ``GridSearchCV``.

    Parameters
    ----------
    estimator : fitted sknet estimator or FrozenEstimator
        The network to read features from; it is not copied and never modified.

    layer : int or None, default=None
        Index into the network's layers (``estimator.network_.layers``, see
        :func:`sknet.summary`): the output of that layer is returned, flattened to one
        row per sample, with dropout off. Negative values count from the end (``-1`` is
        the output layer, before its output activation). ``None`` means the last hidden
        layer, as the estimator's own ``transform``.

    Attributes
    ----------
    n_features_in_ : int
        Number of input features of the wrapped network.

    See Also
    --------
    FineTuner : Train a new network starting from a fitted one.
    sklearn.frozen.FrozenEstimator : The same idea for any estimator.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sknet import MLPClassifier
    >>> from sknet.transfer import NetworkFeatures
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> net = MLPClassifier((32,), max_iter=50, random_state=0).fit(X[:1000], y[:1000])
    >>> pipe = make_pipeline(NetworkFeatures(net), LogisticRegression(max_iter=1000))
    >>> pipe.fit(X[1000:1400], y[1000:1400]).score(X[1400:], y[1400:]) > 0.85
    True
    """

    #: fitted state sknet.persistence saves (see BaseNetworkEstimator._saved_state)
    _saved_state: dict = {}

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["predict"])],
        "layer": [Integral, None],
    }

    def __init__(self, estimator, *, layer=None):
        self.estimator = estimator
        self.layer = layer

    # -- clone and parameters: share the fitted network, expose nothing inside it -----
    def __sklearn_clone__(self):
        return type(self)(self.estimator, layer=self.layer)

    def get_params(self, deep=True):
        """Get parameters for this transformer.

        Parameters
        ----------
        deep : bool, default=True
            Ignored: the wrapped network's parameters are not exposed.

        Returns
        -------
        params : dict
            ``{"estimator": ..., "layer": ...}``.
        """
        return {"estimator": self.estimator, "layer": self.layer}

    def set_params(self, **params):
        """Set ``estimator`` or ``layer``; the wrapped network's parameters are frozen.

        Parameters
        ----------
        **params : dict
            ``estimator`` and/or ``layer``.

        Returns
        -------
        self : NetworkFeatures
            This transformer.
        """
        unknown = sorted(set(params) - {"estimator", "layer"})
        if unknown:
            raise ValueError(
                f"Invalid parameters {unknown} for NetworkFeatures: only 'estimator' and "
                "'layer' can be set; the wrapped network is frozen."
            )
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def __sklearn_is_fitted__(self):
        return hasattr(_unwrap(self.estimator), "network_")

    # -- the work ----------------------------------------------------------------------
    def _stop(self, est):
        """Number of leading layers to run (the chosen layer's index + 1)."""
        n = len(est.network_.layers)
        if self.layer is None:
            idx = est.last_hidden_layer_
            if idx < 0:
                raise ValueError("The network has no hidden layer; pass layer= explicitly.")
            return idx + 1
        layer = int(self.layer)
        if not -n <= layer < n:
            raise ValueError(
                f"layer={self.layer} is out of range for a network of {n} layers "
                f"(valid: {-n} to {n - 1})."
            )
        return layer % n + 1

    def fit(self, X=None, y=None, **fit_params):
        """Check that the network is fitted; nothing is trained.

        Parameters
        ----------
        X, y : object
            Ignored.

        **fit_params : dict
            Ignored.

        Returns
        -------
        self : NetworkFeatures
            This transformer.
        """
        self._validate_params()
        est = _fitted_network_estimator(self.estimator, "estimator")
        self._stop(est)
        return self

    def transform(self, X):
        """Activations of the chosen layer.

        Parameters
        ----------
        X : array-like
            Input accepted by the wrapped network's ``predict``.

        Returns
        -------
        X_features : ndarray of shape (n_samples, n_features_out)
            The chosen layer's output, one flattened row per sample, in the network's
            dtype.
        """
        est = _fitted_network_estimator(self.estimator, "estimator")
        H = est.forward(X, stop=self._stop(est))
        return H.reshape(H.shape[0], -1)

    @property
    def n_features_in_(self):
        est = _unwrap(self.estimator)
        if not hasattr(est, "n_features_in_"):
            raise AttributeError("n_features_in_")
        return est.n_features_in_

    @property
    def _n_features_out(self):
        est = _fitted_network_estimator(self.estimator, "estimator")
        layer = est.network_.layers[self._stop(est) - 1]
        return int(np.prod(layer.output_shape))

    def get_feature_names_out(self, input_features=None):
        """Output feature names ``networkfeatures0, networkfeatures1, ...``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored (checked against the network's input names by scikit-learn).

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per output feature.
        """
        check_is_fitted(self)
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        skip_common_checks(tags)  # needs a fitted network as its parameter
        tags.requires_fit = False
        try:
            tags.input_tags.sparse = get_tags(_unwrap(self.estimator)).input_tags.sparse
        except (AttributeError, TypeError):  # pragma: no cover - not an estimator
            pass
        return tags


# ======================================================================================
def _estimator_has(attr):
    def check(self):
        if hasattr(self, "estimator_"):
            return hasattr(self.estimator_, attr)
        return hasattr(self._template(), attr)

    return check


class FineTuner(MetaEstimatorMixin, BaseEstimator):
    """Train a network for a new task starting from a fitted network's weights.

    A new estimator (``estimator``, or a copy of ``pretrained``'s hyperparameters) is
    built for the new data. Its layers up to the output layer must match the pretrained
    network's (same layer types, configurations and input shape); they start from the
    pretrained weights. The output layer is replaced by a freshly initialised one sized
    for the new targets (new classes, or regression instead of classification), unless
    ``replace_output=False``. Then only the last ``trainable_layers`` layers with weights
    are trained; the others stay frozen and are bit-identical after training. With
    ``trainable_layers='all'`` everything is trained, usually with a lower
    ``learning_rate_init`` set on ``estimator``.

    ``pretrained`` is never modified nor refitted, and :func:`~sklearn.base.clone`
    keeps a reference to it rather than copying it, so ``FineTuner`` can be used in
    ``GridSearchCV`` (tune ``estimator__learning_rate_init`` or ``trainable_layers``).

    Parameters
    ----------
    pretrained : fitted sknet estimator, FrozenEstimator or str
        The source of the weights. A string names a model shipped in
        :mod:`sknet.pretrained` or a file written by :func:`sknet.save`.

    estimator : sknet estimator or None, default=None
        Unfitted estimator for the new task, holding the training hyperparameters
        (solver, ``learning_rate_init``, ``max_iter``, ``alpha``, ``random_state``...)
        and the architecture, which must match ``pretrained``'s below the output layer.
        It may be of another kind than ``pretrained`` (a regressor fine-tuned from a
        classifier). ``None`` uses a clone of ``pretrained`` (same class and
        hyperparameters). Its ``random_state`` initialises the new output layer: give
        it another seed than the pretrained model's, or the new output layer starts
        from the weights the pretrained one started from.

    trainable_layers : int >= 1 or 'all', default=1
        How many of the last layers with weights are trained (1: only the output layer,
        that is, retrain the classifier at the end). Layers without weights (dropout,
        pooling, flatten) are not counted. 'all' trains every layer.

    replace_output : bool, default=True
        Replace the output layer by a new, randomly initialised one. ``False`` keeps the
        pretrained output layer too (same task on new data); the outputs and loss must
        then match.

    Attributes
    ----------
    estimator_ : sknet estimator
        The fine-tuned estimator (trained with its ``fit_from``). It keeps the frozen
        layers frozen in ``partial_fit``; its ``fit`` trains a fresh network from
        scratch, refit the ``FineTuner`` to fine-tune again.

    first_trainable_layer_ : int
        Index of the first trained layer in ``estimator_.network_.layers``; the layers
        before it are frozen.

    classes_ : ndarray of shape (n_classes,)
        Class labels (classifiers only).

    n_features_in_ : int
        Number of features seen during fit.

    See Also
    --------
    NetworkFeatures : Use a fitted network's hidden layer as fixed features.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sknet import MLPClassifier
    >>> from sknet.transfer import FineTuner
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> five = y < 5                      # pretrain on the digits 0-4
    >>> base = MLPClassifier((32,), max_iter=100, random_state=0).fit(X[five], y[five])
    >>> new = MLPClassifier((32,), learning_rate_init=0.01, max_iter=200, random_state=0)
    >>> ft = FineTuner(base, new, trainable_layers=1)
    >>> Xn, yn = X[~five], y[~five]       # new classes 5-9
    >>> ft.fit(Xn[:300], yn[:300]).score(Xn[300:], yn[300:]) > 0.8
    True
    >>> bool(np.array_equal(ft.estimator_.coefs_[0], base.coefs_[0]))  # frozen
    True
    """

    #: fitted state sknet.persistence saves (see BaseNetworkEstimator._saved_state)
    _saved_state = {"estimator_": "estimator", "first_trainable_layer_": "count"}

    _parameter_constraints: dict = {
        "pretrained": [HasMethods(["predict"]), str, os.PathLike],
        "estimator": [HasMethods(["fit"]), None],
        "trainable_layers": [Interval(Integral, 1, None, closed="left"), StrOptions({"all"})],
        "replace_output": ["boolean"],
    }

    def __init__(self, pretrained, estimator=None, *, trainable_layers=1, replace_output=True):
        self.pretrained = pretrained
        self.estimator = estimator
        self.trainable_layers = trainable_layers
        self.replace_output = replace_output

    # -- clone and parameters ------------------------------------------------------------
    def __sklearn_clone__(self):
        estimator = self.estimator
        if estimator is not None:
            estimator = clone(estimator)
        return type(self)(
            self.pretrained,
            estimator,
            trainable_layers=self.trainable_layers,
            replace_output=self.replace_output,
        )

    def get_params(self, deep=True):
        """Get parameters; ``estimator``'s are included as ``estimator__*``, not ``pretrained``'s.

        Parameters
        ----------
        deep : bool, default=True
            Include the parameters of ``estimator``.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=False)
        if deep and self.estimator is not None and hasattr(self.estimator, "get_params"):
            for key, value in self.estimator.get_params(deep=True).items():
                params[f"estimator__{key}"] = value
        return params

    def set_params(self, **params):
        """Set parameters; the pretrained network's own parameters cannot be changed.

        Parameters
        ----------
        **params : dict
            Parameters of this estimator, and ``estimator__*`` parameters.

        Returns
        -------
        self : FineTuner
            This estimator.
        """
        frozen = sorted(k for k in params if k.startswith("pretrained__"))
        if frozen:
            raise ValueError(
                f"Cannot set {frozen}: the pretrained network is frozen. Change the new "
                "network through estimator__* parameters."
            )
        return super().set_params(**params)

    def _template(self):
        """The (unfitted or fitted) estimator whose class and hyperparameters are used."""
        if self.estimator is not None:
            return self.estimator
        if isinstance(self.pretrained, (str, os.PathLike)):
            return _resolve_pretrained(self.pretrained)
        return _unwrap(self.pretrained)

    # -- fitting -------------------------------------------------------------------------
    def _check_compatible(self, src, probe):
        """Raise ValueError unless the layers to copy have identical architecture;
        return how many leading layers are copied."""
        src_net, new_net = src.network_, probe.network_
        if src.input_shape_ != probe.input_shape_:
            raise ValueError(
                f"The new data has per-sample shape {probe.input_shape_}, the pretrained "
                f"network expects {src.input_shape_}."
            )
        if self.replace_output:
            n_src = src.last_hidden_layer_ + 1
            n_new = probe.last_hidden_layer_ + 1
        else:
            n_src, n_new = len(src_net.layers), len(new_net.layers)
            if src_net.loss != new_net.loss:
                raise ValueError(
                    f"replace_output=False needs the same loss, but the pretrained network "
                    f"uses {src_net.loss!r} and the new task {new_net.loss!r}."
                )
        if n_src != n_new:
            raise ValueError(
                f"The new network has {n_new} layers below the output, the pretrained one "
                f"{n_src}: {new_net.layers[:n_new]} vs {src_net.layers[:n_src]}. Use the "
                "same architecture (hidden_layer_sizes, dropout, ...)."
            )
        for i in range(n_src):
            a, b = src_net.layers[i], new_net.layers[i]
            shapes_a = [p.shape for p in src_net.params[i].values()]
            shapes_b = [p.shape for p in new_net.params[i].values()]
            shapes_a += [v.shape for v in src_net.states[i].values()]
            shapes_b += [v.shape for v in new_net.states[i].values()]
            if type(a) is not type(b) or a.get_config() != b.get_config() or shapes_a != shapes_b:
                raise ValueError(
                    f"Layer {i} differs: pretrained {a!r} with parameter shapes "
                    f"{shapes_a}, new {b!r} with {shapes_b}."
                )
        return n_src

    def _first_trainable_layer(self, net):
        param_layers = net.parametrized_layers()
        if self.trainable_layers == "all":
            return 0
        k = int(self.trainable_layers)
        if k > len(param_layers):
            raise ValueError(
                f"trainable_layers={k}, but the network has only {len(param_layers)} layers "
                "with weights."
            )
        return param_layers[-k]

    @fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Build the new network from the pretrained weights and train it.

        Parameters
        ----------
        X : array-like
            Training input, in the format the pretrained network takes.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets of the new task.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : FineTuner
            The fitted meta-estimator.
        """
        src = _resolve_pretrained(self.pretrained)
        template = self.estimator if self.estimator is not None else src
        est = clone(_check_network_estimator(template, "estimator"))
        # the network est will build for (X, y), on a throwaway copy
        probe = clone(est).initialize(X, y)
        n_copy = self._check_compatible(src, probe)
        first = self._first_trainable_layer(probe.network_)
        src_net = src.network_
        # the copied layers' weights and non-trainable state (batch normalization's
        # running statistics), both laid out layer by layer
        est.fit_from(
            X,
            y,
            src_net.theta[: src_net.layer_offset(n_copy)],
            first_trainable=first,
            sample_weight=sample_weight,
            state=src_net.state[: state_offset(src_net, n_copy)],
        )
        self.estimator_ = est
        self.first_trainable_layer_ = first
        return self

    # -- delegation ---------------------------------------------------------------------
    @available_if(_estimator_has("predict"))
    def predict(self, X):
        """Predict with the fine-tuned estimator.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        y : ndarray
            Predictions of ``estimator_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities from the fine-tuned classifier.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of ``estimator_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities from the fine-tuned classifier.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities of ``estimator_``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("transform"))
    def transform(self, X):
        """Last hidden layer of the fine-tuned network.

        Parameters
        ----------
        X : array-like
            Input data.

        Returns
        -------
        X_hidden : ndarray of shape (n_samples, n_hidden)
            ``estimator_.transform(X)``.
        """
        check_is_fitted(self)
        return self.estimator_.transform(X)

    def score(self, X, y, sample_weight=None):
        """Accuracy (classifiers) or R^2 (regressors) of the fine-tuned estimator.

        Parameters
        ----------
        X : array-like
            Test input.
        y : array-like
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            ``estimator_.score(X, y, sample_weight)``.
        """
        check_is_fitted(self)
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    @property
    def classes_(self):
        check_is_fitted(self)
        return self.estimator_.classes_

    @property
    def n_features_in_(self):
        check_is_fitted(self)
        return self.estimator_.n_features_in_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        skip_common_checks(tags)  # needs a fitted network as its parameter
        try:
            inner = get_tags(self._template())
        except (TypeError, ValueError, AttributeError, NotFittedError):
            return tags
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        tags.target_tags = inner.target_tags
        tags.input_tags = inner.input_tags
        return tags
