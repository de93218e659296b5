"""The estimator family base: validation, the fit / partial_fit loop, prediction.

Every sknet estimator (MLP, RNN, ConvNet; classifier or regressor) is this base plus
a family class that says how to validate X and which layers to build, plus a small
classifier or regressor mixin that handles targets. The training loop follows
scikit-learn's MLP step by step (same random draws, same schedules, same stopping
rules), split into short steps: ``_fit`` -> ``_fit_stochastic`` -> ``_run_epoch`` ->
``_train_step``; or ``_fit`` -> ``_fit_lbfgs``.
"""

import warnings
from abc import ABCMeta, abstractmethod
from collections import namedtuple
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, gen_batches, shuffle
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from ._compat import (
    CallbackSupportMixin,
    Interval,
    Options,
    StrOptions,
    callback_teardown,
    check_partial_fit_first_call,
    check_sample_weight,
    fit_context,
)
from ._compile_lock import share_compilation
from ._layers import walk_layers
from ._network import Network
from ._progress import ProgressReporter
from ._solvers import AdamOptimizer, SGDOptimizer, minimize_lbfgs
from ._summary import summary as _summary
from ._threads import fit_threads, step_done
from .kernels.optim import clip_by_norm

_STOCHASTIC_SOLVERS = ("sgd", "adam")


def _check_solver(est):
    if est.solver not in _STOCHASTIC_SOLVERS:
        raise AttributeError(
            "partial_fit is only available for stochastic optimizers. "
            f"{est.solver} is not stochastic."
        )
    return True


def as_rectangular(X, what, fix):
    """Lists (and object arrays) as arrays, with a clear message for ragged input.

    Anything else that does not convert is left to scikit-learn's validation, which
    names the problem (strings, a dict in an object array ...).
    """
    is_object = getattr(getattr(X, "dtype", None), "kind", None) == "O"
    if hasattr(X, "ndim") and not is_object:
        return X
    try:
        # an object array may hold arrays: unpack it to nested lists first
        return np.asarray(X.tolist(), dtype=float) if is_object else np.asarray(X)
    except ValueError as exc:
        if "inhomogeneous" in str(exc) or "with a sequence" in str(exc):
            raise ValueError(
                f"X must be a rectangular array of {what} (ragged input is "
                f"not supported; {fix}). ({exc})"
            ) from None
    except TypeError:
        pass
    return X


def state_offset(net, i):
    """Start of layer ``i``'s non-trainable state in ``net.state`` (``i == len(layers)``:
    the end); the state is laid out layer by layer, like ``theta``."""
    return sum(view.size for views in net.states[:i] for view in views.values())


def layer_sizes(name, value, *, allow_empty=True):
    """``value`` (an int or a sequence of ints) as a list of positive ints, else a
    ValueError naming the parameter ``name``."""
    sizes = list(value) if hasattr(value, "__iter__") and not isinstance(value, str) else [value]
    for s in sizes:
        if (
            isinstance(s, (bool, np.bool_))
            or not isinstance(s, (Integral, Real))
            or not np.isfinite(s)
            or s != int(s)
            or s < 1
        ):
            raise ValueError(f"{name} must be positive integers, got {value!r}.")
    if not sizes and not allow_empty:
        raise ValueError(f"{name} must hold at least one size, got {value!r}.")
    return [int(s) for s in sizes]


#: scikit-learn's message for weights that overflowed, which sknet's errors begin with
_NON_FINITE = (
    "Solver produced non-finite parameter weights. The input data may contain large values "
    "and need to be preprocessed."
)


class DivergenceError(ValueError):
    """Training produced a non-finite loss; the weights were restored."""


class _FitTask(namedtuple("_FitTask", "context X y metadata incremental")):
    """The callback context of a running fit, and what its hooks receive: the training
    data as validated (X, the labels or targets y) and ``{"sample_weight": ...}``;
    ``incremental`` is True in ``partial_fit``.

    Each epoch (each L-BFGS iteration) is a leaf task below ``context``, as in
    scikit-learn's estimators. The hooks' ``fitted_estimator`` is a shallow copy of
    the estimator sharing its network: the network as it is when the hook runs.
    """

    def begin(self, estimator, task_name):
        """Open the next iteration's task (``on_fit_task_begin``) and return it."""
        ctx = self.context.subcontext(task_name=task_name)
        ctx.call_on_fit_task_begin(estimator=estimator, X=self.X, y=self.y, metadata=self.metadata)
        return ctx

    def end(self, estimator, ctx, *, empty=False):
        """Close ``ctx`` (``on_fit_task_end``); True when a callback asks to stop.
        ``empty``: the iteration did not complete (no data, no fitted estimator)."""
        if empty:
            return ctx.call_on_fit_task_end(estimator=estimator)
        return ctx.call_on_fit_task_end(
            estimator=estimator,
            X=self.X,
            y=self.y,
            metadata=self.metadata,
            reconstruction_attributes={},
        )


# -- pickle, copy and skops: the state as builtins and NumPy arrays ------------------------
#: ``encode(estimator) -> dict or None`` and ``decode(cls, dict) -> attributes``, registered
#: by :mod:`sknet.persistence` (which builds on the estimators, so it cannot be imported
#: here): its declared state, without any sknet-internal type.
_PORTABLE_STATE = {}


def register_portable_state(encode, decode):
    """Set the codec :class:`PortableStateMixin` pickles through (see its docstring)."""
    _PORTABLE_STATE.update(encode=encode, decode=decode)


class PortableStateMixin:
    """Pickle an estimator as its saved form: builtins and NumPy arrays only.

    ``__getstate__`` returns what :func:`sknet.save` writes (the constructor parameters
    and the declared fitted state, as a JSON string and a dict of arrays), so
    ``skops.io`` finds no sknet-internal type (layers, network, optimiser) to trust:
    only the estimator's own class. ``__setstate__`` rebuilds the estimator with the
    checks of :func:`sknet.load`. Pickle, :func:`copy.deepcopy` and joblib go through the
    same path. An estimator the safe format cannot hold (a parameter such as a
    ``RandomState`` instance, attributes that are not declared state, a subclass) is
    pickled as its plain attributes, as before.
    """

    def __getstate__(self):
        state = super().__getstate__()
        encode = _PORTABLE_STATE.get("encode")
        portable = None if encode is None else encode(self)
        return state if portable is None else {"_sknet_portable": portable}

    def __setstate__(self, state):
        if isinstance(state, dict) and set(state) == {"_sknet_portable"}:
            state = _PORTABLE_STATE["decode"](type(self), state["_sknet_portable"])
        super().__setstate__(state)


#: where the HTML estimator diagram links an sknet estimator's name: its page in sknet's
#: API reference (``docs/gen_modules/sknet.<Name>.html``). Relative to a page one level
#: below the documentation's root (the gallery, the guide, the API pages), as the docs
#: are not published at a fixed address yet; set the published root here once they are.
DOCS_ROOT = "../"


class DocLinkMixin:
    """The HTML estimator diagram's "?" link goes to sknet's API page (scikit-learn's
    ``_doc_link_module`` / ``_doc_link_template`` convention; the public names live in
    ``sknet``, so ``sknet._mlp.MLPClassifier`` links to ``sknet.MLPClassifier``)."""

    _doc_link_module = "sknet"
    _doc_link_template = DOCS_ROOT + "gen_modules/{estimator_module}.{estimator_name}.html"


class BaseNetworkEstimator(
    DocLinkMixin,
    PortableStateMixin,
    CallbackSupportMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
    metaclass=ABCMeta,
):
    """Shared training machinery. Not for direct use.

    The interface features use: code built on the estimators (:mod:`sknet.transfer`,
    :mod:`sknet.torch_interop`, :func:`sknet.summary`, the examples) uses only these
    members, never the estimator's private attributes.

    - :meth:`build_layers` ``(input_shape, n_outputs, dtype)``: the layers the
      hyperparameters describe, built for one sample of ``input_shape``; no data, no
      weights, the estimator is not modified.
    - :meth:`initialize` ``(X, y)``: what ``fit`` does before training (validate X and
      y, encode the targets, set ``classes_``, ``n_outputs_`` ..., build the network and
      draw its initial weights from ``random_state``), and no training.
    - :meth:`forward` ``(X, *, stop=None, output_activation=False)``: validate X, cast
      it to the network's dtype and run the first ``stop`` layers. ``predict`` and
      ``transform`` use it.
    - :meth:`fit_from` ``(X, y, weights, *, first_trainable=0, sample_weight=None,
      state=None)``: ``fit``, with the first layers starting from given weights (and
      non-trainable state) and the layers before ``first_trainable`` frozen.
    - :meth:`set_weights` ``(weights)``: replace the fitted network's weights.
    - ``network_``: the fitted network (layers, parameter views, ``theta``);
      ``input_shape_``: the per-sample shape it takes; ``first_trainable_layer_``:
      layers before it are frozen; ``last_hidden_layer_``: the layer ``transform``
      returns.

    Callbacks (``set_callbacks``, scikit-learn's protocol): the fit is a task whose
    subtasks are the epochs (``"epoch"``) or L-BFGS iterations (``"lbfgs-iter"``).
    :mod:`sknet.callbacks`, part of the training loop, also uses ``_snapshot`` /
    ``_restore`` (weights and batch-normalization state), ``_set_learning_rate`` (the
    optimiser's base rate) and ``_fit_task`` (the running fit: its context, data and
    whether it is a ``partial_fit``).
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose", StrOptions({"progress"})],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "validation_split": [StrOptions({"random", "last"})],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [None, Interval(Real, 0, 1, closed="left"), "array-like"],
        "clip_norm": [None, Interval(Real, 0, None, closed="neither")],
    }

    # layers before this index keep their weights during training (see ``fit_from``);
    # set at every fit
    _first_trainable = 0

    #: The fitted state a model file holds (sknet.persistence saves exactly this, plus
    #: the constructor parameters, and checks it on load): attribute -> kind, the kinds
    #: being listed in ``persistence.STATE_KINDS``; "?" marks state that may be absent
    #: (stochastic solvers only, training-only, or set by transfer learning). Subclasses
    #: add entries; renaming an attribute here is a format change, elsewhere it is not.
    _saved_state = {
        "_network": "network",
        "input_shape_": "shape",
        "n_features_in_": "count",
        "feature_names_in_": "names?",
        "n_outputs_": "count",
        "n_layers_": "count",
        "out_activation_": "str",
        "n_iter_": "count",
        "t_": "count",
        "loss_": "float?",
        "loss_curve_": "floats?",
        "best_loss_": "float|None?",
        "best_iteration_": "count?",
        "validation_scores_": "floats|None?",
        "validation_loss_curve_": "floats|None?",
        "best_validation_score_": "float|None?",
        "_no_improvement_count": "counter?",
        "_first_trainable": "first_trainable?",
        "_optimizer": "optimizer?",
        "_best_theta": "weights?",
        "_best_state": "state|None?",
        # the learning_rate_init the optimiser last took (a later change takes effect)
        "_learning_rate_init_used": "float?",
    }

    # ------------------------------------------------------------------ family hooks
    @abstractmethod
    def _validate_input(self, X, y, reset):
        """Validate (X, y) at fit; return X (float32/float64 array or sparse) and raw y."""

    @abstractmethod
    def _validate_X_predict(self, X):
        """Validate X at predict time (``reset=False``)."""

    @abstractmethod
    def _build_layers(self, input_shape, n_outputs):
        """Return the list of layers for per-sample ``input_shape`` and ``n_outputs``."""

    def _input_shape(self, X):
        return X.shape[1:]

    def _n_output_layers(self):
        """How many trailing layers form the output block (``transform`` skips them)."""
        return 1

    # ------------------------------------------------------------------ helpers
    def _hidden_layer_sizes(self):
        return layer_sizes("hidden_layer_sizes", self.hidden_layer_sizes)

    def _dropout_rates(self, n_hidden):
        """Per-hidden-layer drop rates from ``dropout`` (None, a float or a sequence)."""
        d = self.dropout
        if d is None:
            return [0.0] * n_hidden
        if np.isscalar(d):
            rates = [float(d)] * n_hidden
        else:
            rates = [float(r) for r in d]
            if len(rates) != n_hidden:
                raise ValueError(
                    f"dropout has {len(rates)} rates but there are {n_hidden} hidden layers."
                )
        for r in rates:
            if not 0.0 <= r < 1.0:
                raise ValueError(f"dropout rates must be in [0, 1), got {r}.")
        return rates

    @property
    def _loss_name(self):
        return self.loss

    def _uses_dropout(self):
        return any(
            layer.kind == "dropout" and layer.rate > 0
            for layer in walk_layers(self._network.layers)  # residual branches too
        )

    # ------------------------------------------------------------------ the interface
    def build_layers(self, input_shape, n_outputs, dtype=np.float64):
        """The layers the hyperparameters describe, built for one sample of ``input_shape``.

        Each layer knows its input and output shapes and its parameter shapes
        (``param_specs()``); no weights are allocated and the estimator is not
        modified. ``fit`` and :meth:`initialize` build their network from these layers,
        :func:`sknet.summary` describes them before fit.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one sample as the network takes it (see ``input_shape_``).
        n_outputs : int
            Number of network outputs.
        dtype : dtype, default=np.float64
            Floating-point type of the layers.

        Returns
        -------
        layers : list of Layer
            Fresh layer objects, built.

        Raises
        ------
        ValueError
            If a hyperparameter is invalid or ``input_shape`` does not fit the layers.
        """
        self._validate_params()
        input_shape = tuple(int(s) for s in input_shape)
        layers = self._build_layers(input_shape, n_outputs)
        shape = input_shape
        for i, layer in enumerate(layers):
            try:
                shape = layer.build(shape, dtype)
            except ValueError as exc:
                raise ValueError(
                    f"input_shape={input_shape} does not fit {type(self).__name__}'s "
                    f"layers: layer {i + 1} ({type(layer).__name__}) failed with: {exc}"
                ) from exc
        return layers

    @fit_context(prefer_skip_nested_validation=True)
    def initialize(self, X, y):
        """Build the network for (X, y) and draw its initial weights, without training.

        Does what ``fit`` does before its first epoch: validates X and y, encodes the
        targets (``classes_``, ``n_outputs_``, ``n_features_in_`` ... are set), builds
        the network and initialises its weights from ``random_state``, exactly as
        ``fit`` would. The estimator is then usable (``predict``, ``forward``) with
        ``n_iter_ == 0``.

        Parameters
        ----------
        X : array-like
            Sample input, in any form ``fit`` accepts; fixes the input shape and dtype.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Sample targets; fix the classes or the number of outputs.

        Returns
        -------
        self : object
            The estimator, with an untrained network.
        """
        self._setup(X, y, None, incremental=False)
        return self

    @fit_context(prefer_skip_nested_validation=True)
    def fit_from(self, X, y, weights, *, first_trainable=0, sample_weight=None, state=None):
        """Fit, starting the first layers from given weights and freezing some of them.

        As ``fit`` (a fresh network, the other weights drawn from ``random_state``),
        except that the first ``weights.size`` entries of the flat parameter vector
        (``network_.theta``, layer by layer) start from ``weights`` and the layers
        before ``first_trainable`` are not trained: their weights stay bit-identical.
        Likewise the first ``state.size`` entries of the non-trainable state
        (``network_.state``, the running statistics of batch normalization, layer by
        layer) start from ``state``; frozen layers that hold state keep it unchanged
        (they run in inference mode), so ``state`` must cover them.
        The weights are not kept on the estimator; ``first_trainable_layer_`` is, and
        later ``partial_fit`` or ``warm_start`` fits keep those layers frozen. A plain
        ``fit`` trains everything again from a fresh initialisation.

        Parameters
        ----------
        X : array-like
            Training input, as for ``fit``.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets, as for ``fit``.
        weights : array-like of shape (n_weights,)
            Starting values of the first layers' parameters, for example
            ``other.network_.theta[:other.network_.layer_offset(k)]`` of a fitted
            network whose first ``k`` layers match this one's.
        first_trainable : int, default=0
            Index into ``network_.layers`` of the first trained layer; every layer
            before it must be covered by ``weights``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        state : array-like of shape (n_state,), default=None
            Starting values of the first layers' non-trainable state, for example
            ``other.network_.state[:n]`` with ``n`` the state size of its first ``k``
            layers (the sizes of ``other.network_.states[:k]``). Required when a
            frozen layer holds state (a batch normalization before
            ``first_trainable``). None: every layer's state starts at its initial
            value (running mean 0, variance 1).

        Returns
        -------
        self : object
            Trained model.
        """
        weights = np.asarray(weights)
        if weights.ndim != 1 or weights.dtype.kind not in "fiu":
            raise ValueError(
                f"weights must be a 1-D array of numbers, got shape {weights.shape} and "
                f"dtype {weights.dtype}."
            )
        if (
            isinstance(first_trainable, bool)
            or not isinstance(first_trainable, Integral)
            or first_trainable < 0
        ):
            raise ValueError(f"first_trainable must be an int >= 0, got {first_trainable!r}.")
        if state is not None:
            state = np.asarray(state)
            if state.ndim != 1 or state.dtype.kind not in "fiu":
                raise ValueError(
                    f"state must be a 1-D array of numbers, got shape {state.shape} and "
                    f"dtype {state.dtype}."
                )
            if not np.isfinite(state).all():
                raise ValueError("state contains NaN or infinity.")
        return self._fit(
            X,
            y,
            sample_weight=sample_weight,
            incremental=False,
            start=(weights, int(first_trainable), state),
        )

    def set_weights(self, weights):
        """Replace the fitted network's weights.

        Training state that belonged to the old weights is reset: the best weights
        kept for early stopping, and the optimiser's moments (the next ``partial_fit``
        starts a fresh optimiser).

        Parameters
        ----------
        weights : array-like of shape (n_params,)
            The new flat parameter vector, in the layout of ``network_.theta``; cast
            to the network's dtype.

        Returns
        -------
        self : object
            The estimator.
        """
        check_is_fitted(self, "_network")
        net = self._network
        weights = np.asarray(weights)
        if weights.shape != net.theta.shape:
            raise ValueError(
                f"weights must have shape {net.theta.shape} (the network's parameter "
                f"count), got {weights.shape}."
            )
        if not np.isfinite(weights).all():
            raise ValueError("The weights contain NaN or infinity.")
        net.theta[...] = weights
        self._keep_best()
        self.__dict__.pop("_optimizer", None)
        self.__dict__.pop("best_iteration_", None)
        return self

    @property
    def network_(self):
        """Network: the fitted network (layers, parameter views, flat ``theta``)."""
        check_is_fitted(self, "_network")  # NotFittedError is an AttributeError
        return self._network

    @property
    def input_shape_(self):
        """tuple of int: shape of one sample as the fitted network takes it.

        ``(n_features,)`` for an MLP, ``(n_timesteps, n_features)`` for an RNN,
        ``(channels, height, width)`` or ``(channels, length)`` for a ConvNet.
        """
        return tuple(int(s) for s in self.network_.input_shape)

    @property
    def first_trainable_layer_(self):
        """int: index of the first trained layer; the layers before it are frozen."""
        check_is_fitted(self, "_network")
        return self._first_trainable

    @property
    def last_hidden_layer_(self):
        """int: index in ``network_.layers`` of the layer ``transform`` returns, the
        last one before the output block (-1 for a network without hidden layers)."""
        return len(self.network_.layers) - self._n_output_layers() - 1

    # ------------------------------------------------------------------ fitting
    def _initialize(self, X, Y, start=None):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = Y.shape[-1]  # (n, k), or (n, T, k) per time step
        self.out_activation_ = self._out_activation()
        shape = self._input_shape(X)
        # parameters were validated once by fit's entry point; the network builds (and
        # shape-checks) each layer once
        layers = self._build_layers(shape, self.n_outputs_)
        net = self._network = Network(layers, self._loss_name).build(shape, X.dtype)
        net.init_params(self._random_state)
        self._first_trainable = 0
        if start is not None:  # fit_from
            weights, first, state = start
            if first > len(net.layers):
                raise ValueError(
                    f"first_trainable={first}, but the network has {len(net.layers)} layers."
                )
            if weights.size > net.n_params or net.layer_offset(first) > weights.size:
                raise ValueError(
                    f"weights has {weights.size} values; the network has {net.n_params} "
                    f"parameters, {net.layer_offset(first)} of them in the "
                    f"{first} frozen layer(s) before first_trainable, which need weights."
                )
            frozen_state = state_offset(net, first)
            n_state = 0 if state is None else state.size
            if n_state > net.state.size or frozen_state > n_state:
                raise ValueError(
                    f"state has {n_state} values; the network has {net.state.size} values "
                    f"of non-trainable state (running statistics), {frozen_state} of them "
                    f"in the {first} frozen layer(s) before first_trainable, which need "
                    "them: pass state= (the source network's network_.state[:n])."
                )
            net.theta[: weights.size] = weights
            if n_state:
                net.state[:n_state] = state
            self._first_trainable = first
        self.n_layers_ = self._count_layers()
        self._keep_best()
        self.__dict__.pop("best_iteration_", None)
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.validation_loss_curve_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.validation_loss_curve_ = None
                self.best_validation_score_ = None

    def _count_layers(self):
        return len(self._hidden_layer_sizes()) + 2

    def _setup(self, X, y, sample_weight, incremental, start=None):
        """Validate and encode the training data; on a first pass (or ``start``) build
        and initialise the network. Returns X, Y in the network's dtype, the sample
        weights (class weights folded in) and y as validated (labels, not encoded)."""
        first_pass = (
            start is not None
            or not hasattr(self, "_network")
            or (not self.warm_start and not incremental)
        )
        self._hidden_layer_sizes()  # validates
        X, y = self._validate_input(X, y, reset=first_pass)
        Y = self._encode_targets(y, incremental, first_pass)
        if sample_weight is not None:
            sample_weight = check_sample_weight(
                sample_weight,
                X if not sp.issparse(X) else np.empty(X.shape[0]),
                dtype=X.dtype,
                ensure_non_negative=True,
            )
        sample_weight = self._apply_class_weight(y, sample_weight, incremental, X.dtype)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X, Y, start)
        else:
            net = self._network
            self._check_same_architecture(self._input_shape(X), incremental)
            if self._input_shape(X) != net.input_shape:
                raise ValueError(
                    f"X has per-sample shape {self._input_shape(X)}, but the network was "
                    f"built for {net.input_shape}."
                )
            if Y.shape[-1] != self.n_outputs_:
                raise ValueError(
                    f"y has {Y.shape[-1]} outputs, but the network was built for {self.n_outputs_}."
                )
            if X.dtype != net.dtype:
                X = X.astype(net.dtype)
        return X, Y.astype(self._network.dtype, copy=False), sample_weight, y

    def _check_same_architecture(self, shape, incremental):
        """Continued training (warm_start, partial_fit) keeps the fitted network: refuse
        hyperparameters that now describe another one, instead of ignoring them."""
        try:
            layers = self._build_layers(tuple(shape), self.n_outputs_)
        except ValueError as exc:
            raise ValueError(
                f"{'partial_fit' if incremental else 'warm_start=True'} continues training "
                f"the fitted network, but the hyperparameters no longer build a network: {exc}"
            ) from None

        def describe(layer):
            return f"{type(layer).__name__}({layer.get_config()})"

        have = [describe(layer) for layer in self._network.layers]
        want = [describe(layer) for layer in layers]
        if have != want:
            where = next(
                (i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want))
            )
            old = have[where] if where < len(have) else "nothing"
            new = want[where] if where < len(want) else "nothing"
            how = "partial_fit" if incremental else "warm_start=True"
            raise ValueError(
                f"{how} continues training the fitted network, but the hyperparameters now "
                f"describe another architecture: layer {where} is {old} in the fitted "
                f"network and {new} in the new one. Call fit with warm_start=False to train "
                "a new network, or restore the hyperparameters."
            )

    def _fit(self, X, y, sample_weight=None, incremental=False, start=None, validation=None):
        with callback_teardown(self):
            return self._fit_with_callbacks(X, y, sample_weight, incremental, start, validation)

    def _fit_with_callbacks(self, X, y, sample_weight, incremental, start, validation):
        """``_fit`` as a task tree for callbacks (``set_callbacks``): the fit is the root
        task, each epoch (L-BFGS iteration) a subtask, as in scikit-learn's estimators."""
        if validation is not None:
            self._check_validation_request(*validation)
        user_weight = sample_weight
        X, Y, sample_weight, y = self._setup(X, y, sample_weight, incremental, start)
        if validation is not None:
            validation = self._validation_set(*validation)
        stochastic = self.solver in _STOCHASTIC_SOLVERS
        # as LogisticRegression: L-BFGS has max_iter iterations plus the empty task that
        # follows scipy's last callback
        max_subtasks = (1 if incremental else self.max_iter) if stochastic else self.max_iter + 1
        context = self._init_callback_context(max_subtasks=max_subtasks)
        metadata = None if user_weight is None else {"sample_weight": user_weight}
        self._fit_task = _FitTask(context, X, y, metadata, incremental)
        batch = self.batch_size if stochastic else None
        try:
            context.call_on_fit_task_begin(estimator=self, X=X, y=y, metadata=metadata)
            with fit_threads(self._network, X.shape[0], batch, adaptive=stochastic):
                if stochastic:
                    self._fit_stochastic(X, Y, sample_weight, incremental, validation)
                else:
                    self._fit_lbfgs(X, Y, sample_weight)
        finally:
            del self._fit_task
        if not np.isfinite(self._network.theta).all():  # pragma: no cover - guarded above
            raise ValueError(_NON_FINITE)
        context.call_on_fit_task_end(
            estimator=self, X=X, y=y, metadata=metadata, reconstruction_attributes={}
        )
        return self

    def _fit_lbfgs(self, X, Y, sample_weight):
        net = self._network
        if self._uses_dropout():
            # a random mask per evaluation would make the objective stochastic, which
            # breaks L-BFGS's line search
            raise ValueError(
                "dropout needs a stochastic solver (solver='sgd' or 'adam'); "
                "solver='lbfgs' requires a deterministic objective. Set dropout=None."
            )
        start = net.layer_offset(self._first_trainable)
        x0 = net.theta[start:].astype(np.float64)
        dtype = net.dtype

        def fun(x):
            net.theta[start:] = x.astype(dtype, copy=False)
            loss = net.loss_and_grad(
                X, Y, sample_weight, self.alpha, first_trainable=self._first_trainable
            )
            return float(loss), net.grad[start:].astype(np.float64)

        task = getattr(self, "_fit_task", None)
        on_iteration = None
        if task is not None:
            iteration = [task.begin(self, "lbfgs-iter")]

            def on_iteration(x, loss):
                # the iterate is the network's weights while the hooks run (scipy's
                # last evaluation may have been a line-search trial point)
                net.theta[start:] = x.astype(dtype, copy=False)
                self.n_iter_ = iteration[0].task_id + 1
                self.loss_ = float(loss)
                stop = task.end(self, iteration[0])
                iteration[0] = task.begin(self, "lbfgs-iter")
                return stop

        try:
            res = minimize_lbfgs(
                fun,
                x0,
                self.max_iter,
                self.max_fun,
                self.tol,
                self.verbose,
                on_iteration=on_iteration,
            )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
            self.loss_ = np.nan
            return
        finally:
            if task is not None:  # the task after scipy's last callback never runs
                task.end(self, iteration[0], empty=True)
        if not np.isfinite(res.x).all() or not np.isfinite(res.fun):
            net.theta[start:] = x0.astype(dtype)
            raise DivergenceError(
                f"{_NON_FINITE} (The loss became {res.fun}; the initial weights were kept.)"
            )
        net.theta[start:] = res.x.astype(dtype)
        if net.state.size:
            self._full_batch_statistics(X)
        self.n_iter_ = int(res.nit)
        if res.status == 1:
            warnings.warn(
                "lbfgs failed to converge after %d iteration(s) (status=%d):\n%s.\n\n"
                "Increase the number of iterations to improve the convergence "
                "(max_iter=%d)." % (res.nit, res.status, res.message, self.max_iter),
                ConvergenceWarning,
            )
        self.loss_ = float(res.fun)

    def _full_batch_statistics(self, X):
        """Set the running statistics to those of the whole training set at the final
        weights. L-BFGS trains on the full batch, but its line search evaluates trial
        points: a moving average over the evaluations would lag the weights kept."""

        net = self._network
        layers = [
            layer
            for layer in walk_layers(net.layers[self._first_trainable :])
            if layer.kind == "batchnorm"
        ]
        saved = [bn.momentum for bn in layers]
        try:
            for bn in layers:
                bn.momentum = 1.0  # running statistics := this batch's
            net.forward(X, training=True, first_trainable=self._first_trainable)
        finally:
            for bn, momentum in zip(layers, saved):
                bn.momentum = momentum

    def _make_optimizer(self, size, dtype):
        if self.solver == "sgd":
            return SGDOptimizer(
                size,
                dtype,
                self.learning_rate_init,
                self.learning_rate,
                self.momentum,
                self.nesterovs_momentum,
                self.power_t,
            )
        return AdamOptimizer(
            size, dtype, self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon
        )

    def _split_validation(self, X, Y, sample_weight):
        """The early-stopping split: scikit-learn's (same random draws), or the last
        ``validation_fraction`` of the samples in their given order
        (``validation_split='last'``, for data in time order)."""
        if self.validation_split == "last":
            n = X.shape[0]
            # train_test_split's rounding of a float test_size: ceil(fraction * n)
            n_val = int(np.ceil(self.validation_fraction * n))
            cut = n - n_val
            if n_val < 2 or cut < 1:
                raise ValueError(
                    f"The validation set is too small: validation_fraction="
                    f"{self.validation_fraction} of {n} samples leaves {n_val} for "
                    f"validation and {cut} for training. Increase 'validation_fraction' or "
                    "the size of your dataset."
                )
            sw_tr = sw_val = None
            if sample_weight is not None:
                sw_tr, sw_val = sample_weight[:cut], sample_weight[cut:]
            return X[:cut], X[cut:], Y[:cut], Y[cut:], sw_tr, sw_val
        should_stratify = is_classifier(self) and self.n_outputs_ == 1
        # the bool encoding, as scikit-learn (its split, and its error messages, name
        # the classes True and False)
        stratify = Y.astype(bool) if should_stratify else None
        if sample_weight is None:
            X_tr, X_val, Y_tr, Y_val = train_test_split(
                X,
                Y,
                random_state=self._random_state,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
            sw_tr = sw_val = None
        else:
            X_tr, X_val, Y_tr, Y_val, sw_tr, sw_val = train_test_split(
                X,
                Y,
                sample_weight,
                random_state=self._random_state,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the "
                "size of your dataset."
            )
        return X_tr, X_val, Y_tr, Y_val, sw_tr, sw_val

    def _check_validation_request(self, X_val, y_val, sample_weight_val):
        """X_val / y_val make sense with early stopping of a stochastic solver only."""
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together (or neither).")
        if X_val is None:
            if sample_weight_val is not None:
                raise ValueError("sample_weight_val is given without X_val and y_val.")
            return
        if not self.early_stopping or self.solver not in _STOCHASTIC_SOLVERS:
            raise ValueError(
                "X_val and y_val are passed to fit, but they are only used for early "
                "stopping: set early_stopping=True with solver='adam' or 'sgd' "
                f"(now early_stopping={self.early_stopping}, solver={self.solver!r})."
            )

    def _validation_set(self, X_val, y_val, sample_weight_val):
        """The given validation set, validated as for predict and encoded as y; None
        when there is none (early stopping then splits the training data)."""
        if X_val is None:
            return None
        net = self._network
        X_val = self._validate_X_predict(X_val)
        X_val = X_val.astype(net.dtype, copy=False)
        y_val = np.asarray(y_val)
        if y_val.shape[0] != X_val.shape[0]:
            raise ValueError(f"X_val has {X_val.shape[0]} samples but y_val has {y_val.shape[0]}.")
        Y_val = self._encode_validation_targets(y_val).astype(net.dtype, copy=False)
        if Y_val.shape[1] != self.n_outputs_:
            raise ValueError(f"y_val has {Y_val.shape[1]} outputs, the network {self.n_outputs_}.")
        if sample_weight_val is not None:
            sample_weight_val = check_sample_weight(
                sample_weight_val,
                np.empty(X_val.shape[0]),
                dtype=net.dtype,
                ensure_non_negative=True,
            )
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small: X_val needs at least 2 samples.")
        return X_val, Y_val, sample_weight_val

    def _fit_stochastic(self, X, Y, sample_weight, incremental, validation=None):
        net = self._network
        start = net.layer_offset(self._first_trainable)
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer(net.n_params - start, net.dtype)
            self._learning_rate_init_used = float(self.learning_rate_init)
        elif self.learning_rate_init != getattr(
            self, "_learning_rate_init_used", self._optimizer.learning_rate_init
        ):
            # learning_rate_init changed since the last partial_fit: it takes effect now
            # (the moments and the step count are kept)
            self._optimizer.set_learning_rate(self.learning_rate_init, self.t_)
            self._learning_rate_init_used = float(self.learning_rate_init)
        if not self.early_stopping:
            # the weights will be the last epoch's
            self.__dict__.pop("best_iteration_", None)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping and validation is not None:  # fit(..., X_val=, y_val=)
            X_tr, Y_tr, sw_tr = X, Y, sample_weight
            X_val, Y_val, sw_val = validation
        elif early_stopping:
            X_tr, X_val, Y_tr, Y_val, sw_tr, sw_val = self._split_validation(X, Y, sample_weight)
        else:
            X_tr, Y_tr, sw_tr = X, Y, sample_weight
            X_val = Y_val = sw_val = None
        n_samples = X_tr.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going "
                    "to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        # dropout masks: a Generator seeded from random_state (drawn only when needed, so
        # networks without dropout consume exactly scikit-learn's random stream)
        drop_rng = None
        if self._uses_dropout():
            drop_rng = np.random.default_rng(self._random_state.randint(np.iinfo(np.int32).max))
        sample_idx = np.arange(n_samples, dtype=int)
        progress = ProgressReporter(self.verbose, self.max_iter, incremental=incremental)
        task = getattr(self, "_fit_task", None)
        try:
            progress.start()
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = shuffle(sample_idx, random_state=self._random_state)
                epoch = None if task is None else task.begin(self, "epoch")
                try:
                    self.loss_ = self._run_epoch(
                        X_tr, Y_tr, sw_tr, sample_idx, batch_size, start, drop_rng
                    )
                except DivergenceError as exc:
                    if epoch is not None:
                        task.end(self, epoch, empty=True)
                    if not early_stopping:
                        raise
                    # as scikit-learn (its issue 29504): a diverging loss ends training
                    # and the weights with the best validation score are kept
                    self._record_divergence(exc)
                    break
                self.n_iter_ += 1
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                self._update_no_improvement_count(early_stopping, X_val, Y_val, sw_val)
                if early_stopping:
                    progress.epoch_end(
                        self.n_iter_,
                        self.loss_,
                        self.validation_scores_[-1],
                        self.validation_loss_curve_[-1],
                    )
                else:
                    progress.epoch_end(self.n_iter_, self.loss_)
                self._optimizer.iteration_ends(self.t_)
                if epoch is not None and task.end(self, epoch):
                    break  # a callback stopped training
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = (
                            "Validation score did not improve more than tol=%f for %d "
                            "consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    else:
                        msg = (
                            "Training loss did not improve more than tol=%f for %d "
                            "consecutive epochs." % (self.tol, self.n_iter_no_change)
                        )
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                        "optimization hasn't converged yet." % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        finally:
            progress.close()
        if early_stopping:
            self._restore_best()

    def _record_divergence(self, exc):
        """Close the epoch whose loss diverged under early stopping: NaN loss and scores
        recorded, a warning; ``_fit_stochastic`` then restores the best weights."""
        self.n_iter_ += 1
        self.loss_ = np.nan
        self.loss_curve_.append(np.nan)
        self.validation_scores_.append(np.nan)
        self.validation_loss_curve_.append(np.nan)
        warnings.warn(
            f"{exc} Training stopped; the weights with the best validation score (iteration "
            f"{int(np.nanargmax(self.validation_scores_)) + 1 if self.n_iter_ > 1 else 0}) "
            "were kept.",
            ConvergenceWarning,
        )

    def _snapshot(self):
        """Copies of the weights and of the non-trainable state (None without any)."""
        net = self._network
        return net.theta.copy(), (net.state.copy() if net.state.size else None)

    def _restore(self, theta, state):
        """Put back weights (and state) taken by :meth:`_snapshot`."""
        net = self._network
        net.theta[...] = theta
        if state is not None:
            net.state[...] = state

    def _keep_best(self):
        """Remember the current weights (and non-trainable state) as the best ones."""
        self._best_theta, self._best_state = self._snapshot()

    def _restore_best(self):
        """Put back the weights (and state) :meth:`_keep_best` remembered."""
        self._restore(self._best_theta, getattr(self, "_best_state", None))

    def _set_learning_rate(self, learning_rate):
        """The stochastic optimiser's base learning rate from the next update on (the
        schedules of :mod:`sknet.callbacks`); ``learning_rate_init`` is unchanged."""
        self._optimizer.set_learning_rate(learning_rate, self.t_)

    def _run_epoch(self, X, Y, sample_weight, sample_idx, batch_size, start, drop_rng):
        """One pass over the data in mini-batches; returns the mean training loss."""
        net = self._network
        theta_before = net.theta.copy(), net.state.copy()
        accumulated = 0.0
        for batch in gen_batches(X.shape[0], batch_size):
            if self.shuffle:
                idx = sample_idx[batch]
                Xb, Yb = net.take_batch(X, idx, "X"), net.take_batch(Y, idx, "Y")
            else:
                idx = batch
                Xb, Yb = X[idx], Y[idx]
            sw_b = None if sample_weight is None else sample_weight[idx]
            loss = self._train_step(Xb, Yb, sw_b, start, drop_rng)
            step_done(batch.stop - batch.start)  # the fit's thread plan times steps
            if not np.isfinite(loss):
                self._diverged(theta_before, f"The training loss became non-finite ({loss})")
            accumulated += loss * (batch.stop - batch.start)
        # an update can overflow the weights while every loss so far was finite (the
        # last batch, or a loss like log-loss that stays finite): check once per epoch,
        # so the weights kept are always finite (those at the epoch's start are, by
        # induction from the finite initial weights)
        if not np.isfinite(net.theta).all():
            self._diverged(theta_before, "The weights became non-finite")
        return accumulated / X.shape[0]

    def _diverged(self, theta_before, what):
        """Restore the weights (and state) from the start of the epoch and raise
        DivergenceError."""
        self._network.theta[...] = theta_before[0]
        self._network.state[...] = theta_before[1]
        # the optimizer's moments saw the non-finite gradients: a later partial_fit
        # starts a fresh optimizer (with the then-current learning_rate_init)
        del self._optimizer
        raise DivergenceError(
            f"{_NON_FINITE} ({what} in iteration {self.n_iter_ + 1}: the optimisation "
            f"diverged. Lower learning_rate_init (now {self.learning_rate_init}) or scale "
            "the inputs; the weights from the start of that iteration were kept.)"
        )

    def _train_step(self, Xb, Yb, sw_b, start, drop_rng):
        """Loss and gradient on one batch, then one optimiser update.

        Without gradient clipping, the L2 penalty of the trainable weights is folded
        into the optimiser's update (one pass over the parameters instead of two; same
        arithmetic): the network returns the data loss, the update adds ``c * W`` to the
        gradient block by block and returns ``||W||^2`` for the loss.
        """
        net = self._network
        if sw_b is not None and not sw_b.sum() > 0:
            # a mini-batch whose samples all weigh 0 contributes nothing: no update
            return 0.0
        first = self._first_trainable
        clip = self.clip_norm
        fused = bool(self.alpha) and clip is None
        loss = net.loss_and_grad(
            Xb, Yb, sw_b, self.alpha, rng=drop_rng, first_trainable=first, penalty=not fused
        )
        if clip is not None:
            # global L2 gradient-norm clipping (``clip_norm``, every family)
            clip_by_norm(net.grad[start:], float(clip))
        if not fused:
            self._optimizer.update_params(net.theta[start:], net.grad[start:])
            return loss
        scale = 1.0 / (Xb.shape[0] if sw_b is None else float(sw_b.sum()))
        sumsq = self._optimizer.update_params(
            net.theta[start:], net.grad[start:], l2=(self.alpha * scale, net.l2_blocks(first))
        )
        return loss + 0.5 * self.alpha * sumsq * scale

    def _update_no_improvement_count(self, early_stopping, X_val, Y_val, sw_val):
        if early_stopping:
            val_score = self._score_encoded(X_val, Y_val, sw_val)
            self.validation_scores_.append(val_score)
            self.validation_loss_curve_.append(float(self._network.data_loss(X_val, Y_val, sw_val)))
            last = self.validation_scores_[-1]
            if last < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last > self.best_validation_score_:
                self.best_validation_score_ = last
                self._keep_best()
                self.best_iteration_ = len(self.loss_curve_)
        else:
            if self.best_loss_ is None:
                # continuing without early stopping a fit made with it (warm_start,
                # partial_fit): no best training loss was tracked yet
                self.best_loss_ = np.inf
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values (class labels in classification, real numbers in
            regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        X_val : array-like, default=None
            A validation set for early stopping (``early_stopping=True``), in any form
            ``predict`` accepts, used instead of holding out ``validation_fraction`` of
            X at random: for example the most recent part of a time series, which a
            random split would mix with the training windows. As in
            :meth:`sklearn.ensemble.HistGradientBoostingClassifier.fit`.
        y_val : array-like, default=None
            Targets of ``X_val``; classes must be among y's.
        sample_weight_val : array-like of shape (n_val_samples,), default=None
            Weights of the validation samples.

        Returns
        -------
        self : object
            Trained model.
        """
        share_compilation(self, X, y, sample_weight)  # one process compiles, others load
        return self._fit(
            X,
            y,
            sample_weight=sample_weight,
            incremental=False,
            validation=(X_val, y_val, sample_weight_val),
        )

    def summary(self, input_shape=None, *, n_outputs=None):
        """Table of the network's layers, output shapes and parameter counts.

        See :func:`sknet.summary`, which this calls.

        Parameters
        ----------
        input_shape : int or tuple of int, default=None
            Shape of one sample; required before fit unless the estimator has an
            ``input_shape`` hyperparameter.
        n_outputs : int, default=None
            Number of network outputs; before fit, when None, the output layer is
            shown in terms of ``n_outputs``.

        Returns
        -------
        summary : ModelSummary
            Prints as a table; see :func:`sknet.summary`.
        """
        return _summary(self, input_shape, n_outputs=n_outputs)

    # ------------------------------------------------------------------ inference
    def forward(self, X, *, stop=None, output_activation=False):
        """Outputs of the network's first ``stop`` layers for X (dropout off).

        X is validated as for ``predict`` and cast to the network's dtype. ``predict``
        and ``transform`` are built on this.

        Parameters
        ----------
        X : array-like
            Input, in any form ``predict`` accepts.
        stop : int or None, default=None
            Number of leading layers of ``network_.layers`` to run; None runs all.
        output_activation : bool, default=False
            Apply the output activation (softmax, logistic, exp) when every layer runs.
            By default the raw outputs are returned.

        Returns
        -------
        out : ndarray of shape (n_samples, ...)
            Output of layer ``stop - 1``, one entry per sample in the layer's output
            shape, unflattened (X itself, cast, for ``stop=0``), in the network's dtype.
        """
        check_is_fitted(self, "_network")
        net = self._network
        if stop is not None and (
            isinstance(stop, bool)
            or not isinstance(stop, Integral)
            or not 0 <= stop <= len(net.layers)
        ):
            raise ValueError(
                f"stop must be None or an int in [0, {len(net.layers)}], got {stop!r}."
            )
        X = self._validate_X_predict(X)
        if X.dtype != net.dtype:
            X = X.astype(net.dtype)
        with fit_threads(net, X.shape[0], None, adaptive=False):  # one thread when small
            out = net.predict(X, stop=stop, output_activation=output_activation)
        if not np.isfinite(out).all():
            rows = np.flatnonzero(~np.isfinite(out.reshape(out.shape[0], -1)).all(axis=1))
            raise ValueError(
                f"The network's output overflowed (NaN or infinity) for {rows.size} sample(s) "
                f"of X (rows {rows[:5].tolist()}{' ...' if rows.size > 5 else ''}): their "
                "values are far outside the range the network was trained on. Scale X as "
                "the training data was scaled."
            )
        return out

    def transform(self, X):
        """Activations of the last hidden layer.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        X_hidden : ndarray of shape (n_samples, n_hidden)
            The last hidden layer's activations (dropout off).
        """
        H = self.forward(X, stop=self.last_hidden_layer_ + 1)
        return H.reshape(H.shape[0], -1)

    @property
    def _n_features_out(self):
        """Width of the representation ``transform`` returns."""
        stop = self.last_hidden_layer_ + 1
        shape = (
            self._network.layers[stop - 1].output_shape if stop > 0 else self._network.input_shape
        )
        return int(np.prod(shape))

    def _score_encoded(self, X, Y, sample_weight):
        """Validation score on encoded targets (accuracy or R^2), NaN if not finite."""
        out = self._network.predict(X)
        if not np.isfinite(out).all():
            return np.nan
        return self._score_from_output(out, Y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class NetworkClassifierMixin:
    """Targets for classifiers: labels, one-hot / multilabel encoding, class weights."""

    #: fitted label state saved by sknet.persistence (see BaseNetworkEstimator)
    _saved_state = {"classes_": "classes", "_label_binarizer": "label_binarizer"}

    @property
    def _loss_name(self):
        return "log_loss" if self._label_binarizer.y_type_ == "multiclass" else "binary_log_loss"

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _encode_targets(self, y, incremental, first_pass):
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return self._label_binarizer.transform(y).astype(bool)

    def _encode_validation_targets(self, y_val):
        """y_val in the network's target encoding; its labels must be known."""
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        if y_val.ndim == 1:
            unknown = np.setdiff1d(unique_labels(y_val), self.classes_)
            if unknown.size:
                raise ValueError(
                    f"y_val has classes not seen in y: {unknown.tolist()} (classes_ is "
                    f"{self.classes_.tolist()})."
                )
        return self._label_binarizer.transform(y_val).astype(bool)

    def _apply_class_weight(self, y, sample_weight, incremental, dtype):
        cw = self.class_weight
        if cw is None:
            return sample_weight
        if incremental and cw == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: the class "
                "frequencies of later batches are unknown. Pass a dict instead."
            )
        if isinstance(cw, dict):
            unknown = set(cw) - set(np.asarray(self.classes_).tolist())
            if unknown:
                raise ValueError(f"class_weight names classes not in y: {sorted(unknown)}.")
            bad = {
                k: v
                for k, v in cw.items()
                if isinstance(v, bool) or not isinstance(v, Real) or not (np.isfinite(v) and v >= 0)
            }
            if bad:
                raise ValueError(f"class_weight values must be finite numbers >= 0, got {bad}.")
        w = compute_sample_weight(cw, y).astype(dtype)
        return w if sample_weight is None else sample_weight * w

    def _score_from_output(self, out, Y, sample_weight):
        y_true = self._label_binarizer.inverse_transform(Y)
        y_pred = self._label_binarizer.inverse_transform(
            out.ravel() if self.n_outputs_ == 1 else out
        )
        return accuracy_score(y_true, y_pred, sample_weight=sample_weight)

    def predict(self, X):
        """Predict using the trained network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        out = self.forward(X, output_activation=True)
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            The predicted probability of each class, classes ordered as in
            ``classes_``.
        """
        out = self.forward(X, output_activation=True)
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._proba_columns(out) if out.ndim == 1 else out

    def _proba_columns(self, p):
        """The columns of ``classes_`` from the logistic output ``p`` (n,) =
        P(classes_[1]): two, or one column of ones when y had one class (it is certain;
        scikit-learn's MLP returns two columns there)."""
        if len(self.classes_) == 1:
            return np.ones((p.shape[0], 1), dtype=p.dtype)
        return np.vstack([1 - p, p]).T

    def predict_log_proba(self, X):
        """Log of probability estimates, ``log(predict_proba(X))``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            The log-probability of each class, classes ordered as in ``classes_``.
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    @available_if(_check_solver)
    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        The optimiser's state (Adam's moments, SGD's velocity) carries over from one
        call to the next; a ``learning_rate_init`` changed since the last call takes
        effect from this one (a hand-made schedule), keeping that state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first call.

        Returns
        -------
        self : object
            Trained model.
        """
        if check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class NetworkRegressorMixin:
    """Targets for regressors: real-valued, one or several outputs."""

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _encode_targets(self, y, incremental, first_pass):
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y (counts or rates).")
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _apply_class_weight(self, y, sample_weight, incremental, dtype):
        return sample_weight

    def _encode_validation_targets(self, y_val):
        y_val = check_array(y_val, ensure_2d=False, dtype=np.float64)
        return self._encode_targets(y_val, incremental=True, first_pass=False)

    def _score_from_output(self, out, Y, sample_weight):
        if Y.shape[1] == 1:
            Y, out = Y.ravel(), out.ravel()
        return r2_score(Y, out, sample_weight=sample_weight)

    def predict(self, X):
        """Predict using the trained network.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values.
        """
        out = self.forward(X, output_activation=True)
        return out.ravel() if out.shape[1] == 1 else out

    @available_if(_check_solver)
    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with a single iteration over the given data.

        The optimiser's state (Adam's moments, SGD's velocity) carries over from one
        call to the next; a ``learning_rate_init`` changed since the last call takes
        effect from this one (a hand-made schedule), keeping that state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : object
            Trained model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
