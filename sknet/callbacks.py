"""Callbacks for sknet's training loop: learning-rate schedules, early stopping on a
scorer, checkpoints.

They follow scikit-learn's callback protocol (:mod:`sklearn.callback`, scikit-learn
1.9): set them with ``estimator.set_callbacks(...)``, next to scikit-learn's own
:class:`~sklearn.callback.ProgressBar` and :class:`~sklearn.callback.ScoringMonitor`.
Every sknet estimator reports its fit as a task whose subtasks are the epochs (named
``"epoch"``; ``"lbfgs-iter"`` for L-BFGS iterations, as
:class:`~sklearn.linear_model.LogisticRegression`).

With scikit-learn 1.7 and 1.8, which have no callback framework, sknet's estimators
still offer ``set_callbacks`` and run these callbacks (scikit-learn's own callbacks do
not exist there); the callbacks follow the estimator through ``clone``, so they work
in a :class:`~sklearn.pipeline.Pipeline` and under
:class:`~sklearn.model_selection.GridSearchCV` on every supported version.

Set these callbacks on the sknet estimator itself (in a Pipeline, on its last step):
they are not propagated from meta-estimators. One callback instance may serve several
clones of an estimator (a grid search): its per-fit state lives on each estimator.

**Monitored quantities.** :class:`ReduceLROnPlateau`, :class:`EarlyStopping` and
:class:`Checkpoint` watch one value per epoch, ``monitor``:

- ``"loss"``: the training loss of the epoch (``loss_curve_``); lower is better;
- ``"validation_loss"``, ``"validation_score"``: the estimator's own early-stopping
  curves (``validation_loss_curve_``, ``validation_scores_``); they need
  ``early_stopping=True`` (which holds out ``validation_fraction`` of X, or uses
  ``fit``'s ``X_val`` / ``y_val``);
- any scikit-learn scorer: a name (``"f1_macro"``, ``"neg_log_loss"`` ...), a
  callable ``scorer(estimator, X, y)``, or None for the estimator's ``score``
  (accuracy or R^2); greater is better. It is evaluated on ``validation_data=(X_val,
  y_val)`` or ``(X_val, y_val, sample_weight_val)`` when given, in the form the
  estimator receives (after a Pipeline's preprocessing), else on the training data.
"""

import math
import uuid
from numbers import Integral, Real

import numpy as np
from sklearn.metrics import check_scoring, get_scorer

__all__ = [
    "Checkpoint",
    "CosineAnnealingWarmRestarts",
    "EarlyStopping",
    "ExponentialLR",
    "LinearWarmup",
    "ReduceLROnPlateau",
    "StepLR",
]

_BUILTIN_MONITORS = {
    # name -> (estimator attribute, sign making greater better)
    "loss": ("loss_curve_", -1.0),
    "validation_loss": ("validation_loss_curve_", -1.0),
    "validation_score": ("validation_scores_", 1.0),
}


# ------------------------------------------------------------------ helpers
def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    return int(value)


def _check_real(name, value, low, high=math.inf, *, low_open=False, high_open=False):
    ok = (
        not isinstance(value, bool)
        and isinstance(value, Real)
        and math.isfinite(value)
        and (value > low if low_open else value >= low)
        and (value < high if high_open else value <= high)
    )
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}.")
    return float(value)


def _is_iteration(context):
    """An epoch (or L-BFGS iteration): a leaf task of the estimator's fit."""
    return context.max_subtasks == 0


def _epochs_done(estimator):
    """Epochs (L-BFGS iterations) the network has been trained for, over all the fit
    and partial_fit calls since it was initialised."""
    curve = getattr(estimator, "loss_curve_", None)
    return len(curve) if curve is not None else int(estimator.n_iter_)


def _continues(estimator):
    """True when the fit starting now continues training (partial_fit, warm_start)."""
    return bool(getattr(estimator, "loss_curve_", None))


def _is_stochastic(estimator):
    return getattr(estimator, "solver", None) in ("sgd", "adam")


class _Callback:
    """Hooks that do nothing, and per-estimator state.

    The state of a callback for one estimator is kept on that estimator (so a
    callback shared by the clones of a grid search keeps them apart, and so it
    survives between ``partial_fit`` calls); it is reset when a fit starts from a
    fresh network.
    """

    def __init__(self):
        self._key = uuid.uuid4().hex

    def _state(self, estimator):
        states = estimator.__dict__.setdefault("_sknet_callback_states", {})
        return states.setdefault(self._key, {})

    def _reset(self, estimator, **state):
        states = estimator.__dict__.setdefault("_sknet_callback_states", {})
        states[self._key] = state
        return state

    def setup(self, estimator, context):
        """Check that the callback applies to ``estimator`` (called before fit)."""

    def teardown(self, estimator, context):
        """Nothing to release."""

    def on_fit_task_begin(self, estimator, context):
        """Called at the start of the fit and of every epoch."""

    def on_fit_task_end(self, estimator, context):
        """Called at the end of every epoch and of the fit."""


class _Monitor:
    """One number per epoch, greater is better (see the module docstring)."""

    def __init__(self, monitor, validation_data, owner):
        if isinstance(monitor, str) and monitor in _BUILTIN_MONITORS:
            self.builtin = _BUILTIN_MONITORS[monitor]
        elif monitor is None or callable(monitor):
            self.builtin = None
        elif isinstance(monitor, str):
            self.builtin = None
            try:
                get_scorer(monitor)  # an unknown name fails here, not mid-fit
            except ValueError as exc:
                raise ValueError(
                    f"{owner}: monitor={monitor!r} is neither 'loss', 'validation_loss', "
                    f"'validation_score' nor a scikit-learn scorer name. ({exc})"
                ) from None
        else:
            raise ValueError(
                f"{owner}: monitor must be 'loss', 'validation_loss', 'validation_score', "
                f"a scorer name, a callable scorer or None, got {monitor!r}."
            )
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                2,
                3,
            ):
                raise ValueError(
                    f"{owner}: validation_data must be (X_val, y_val) or (X_val, y_val, "
                    f"sample_weight_val), got {type(validation_data).__name__}."
                )
            if self.builtin is not None:
                raise ValueError(
                    f"{owner}: validation_data is used with a scorer, not with "
                    f"monitor={monitor!r} (the estimator's own curve)."
                )
        self.monitor = monitor
        self.validation_data = validation_data
        self.owner = owner

    def check(self, estimator):
        if self.builtin is None:
            return
        if not _is_stochastic(estimator):
            raise ValueError(
                f"{self.owner}: monitor={self.monitor!r} needs a stochastic solver ('sgd' "
                f"or 'adam'), which records it per epoch; solver={estimator.solver!r}. "
                "Monitor a scorer instead."
            )
        if self.monitor != "loss" and not estimator.early_stopping:
            raise ValueError(
                f"{self.owner}: monitor={self.monitor!r} is the estimator's own validation "
                "curve, which needs early_stopping=True. Set it, or monitor a scorer with "
                "validation_data=(X_val, y_val)."
            )

    def __call__(self, estimator, X, y, metadata, fitted_estimator):
        if self.builtin is not None:
            attr, sign = self.builtin
            value = sign * float(getattr(estimator, attr)[-1])
        else:
            scorer = check_scoring(estimator, self.monitor)
            if self.validation_data is not None:
                X, y, *rest = self.validation_data
                kwargs = {"sample_weight": rest[0]} if rest else {}
            else:
                kwargs = dict(metadata or {})
            value = float(scorer(fitted_estimator, X, y, **kwargs))
        return value if math.isfinite(value) else -math.inf


# ------------------------------------------------------------------ schedules
class _Schedule(_Callback):
    """A learning rate per epoch, set at the start of the epoch.

    The schedule sets the optimiser's base learning rate, the role of
    ``learning_rate_init`` (which stays unchanged: schedules start from it); Adam's
    bias correction applies on top of it. Epochs are counted over the network's whole
    training: a ``partial_fit`` call or a ``warm_start`` fit continues the schedule.
    """

    def learning_rate(self, epoch, base_learning_rate):
        """The learning rate of epoch ``epoch`` (0 for the first).

        Parameters
        ----------
        epoch : int
            Number of epochs trained before this one.
        base_learning_rate : float
            The estimator's ``learning_rate_init``.

        Returns
        -------
        learning_rate : float
        """
        raise NotImplementedError

    def setup(self, estimator, context):
        _check_schedulable(estimator, type(self).__name__)

    def on_fit_task_begin(self, estimator, context):
        if _is_iteration(context):
            lr = self.learning_rate(_epochs_done(estimator), float(estimator.learning_rate_init))
            estimator._set_learning_rate(lr)


def _check_schedulable(estimator, name):
    if not _is_stochastic(estimator):
        raise ValueError(
            f"{name} schedules the learning rate of solver='sgd' or 'adam'; "
            f"{type(estimator).__name__} has solver={getattr(estimator, 'solver', None)!r}."
        )
    if estimator.solver == "sgd" and estimator.learning_rate != "constant":
        raise ValueError(
            f"{name} replaces scikit-learn's learning_rate={estimator.learning_rate!r} "
            "schedule: set learning_rate='constant' with solver='sgd'."
        )


class StepLR(_Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    ``lr(epoch) = learning_rate_init * gamma ** (epoch // step_size)``.

    Parameters
    ----------
    step_size : int
        Epochs between two decays.
    gamma : float, default=0.1
        Decay factor, in (0, 1].

    Examples
    --------
    >>> from sknet.callbacks import StepLR
    >>> [StepLR(step_size=2, gamma=0.5).learning_rate(e, 0.1) for e in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """

    def __init__(self, step_size, *, gamma=0.1):
        super().__init__()
        self.step_size = _check_int("step_size", step_size, 1)
        self.gamma = _check_real("gamma", gamma, 0, 1, low_open=True)

    def learning_rate(self, epoch, base_learning_rate):
        return base_learning_rate * self.gamma ** (epoch // self.step_size)


class ExponentialLR(_Schedule):
    """Multiply the learning rate by ``gamma`` every epoch.

    ``lr(epoch) = learning_rate_init * gamma ** epoch``.

    Parameters
    ----------
    gamma : float
        Decay factor per epoch, in (0, 1].

    Examples
    --------
    >>> from sknet.callbacks import ExponentialLR
    >>> [round(ExponentialLR(0.5).learning_rate(e, 1.0), 3) for e in range(4)]
    [1.0, 0.5, 0.25, 0.125]
    """

    def __init__(self, gamma):
        super().__init__()
        self.gamma = _check_real("gamma", gamma, 0, 1, low_open=True)

    def learning_rate(self, epoch, base_learning_rate):
        return base_learning_rate * self.gamma**epoch


class CosineAnnealingWarmRestarts(_Schedule):
    """Cosine annealing with warm restarts (SGDR, Loshchilov and Hutter, 2017).

    Cycle ``i`` lasts ``T_i = T_0 * T_mult ** i`` epochs; at epoch ``t`` of its cycle
    ``lr = eta_min + (learning_rate_init - eta_min) * (1 + cos(pi * t / T_i)) / 2``,
    then it restarts at ``learning_rate_init``.

    Parameters
    ----------
    T_0 : int
        Length of the first cycle, in epochs.
    T_mult : int, default=1
        Growth factor of the cycle length.
    eta_min : float, default=0.0
        Lowest learning rate.

    Examples
    --------
    >>> from sknet.callbacks import CosineAnnealingWarmRestarts
    >>> s = CosineAnnealingWarmRestarts(T_0=2, T_mult=2)
    >>> [round(s.learning_rate(e, 1.0), 3) for e in range(7)]
    [1.0, 0.5, 1.0, 0.854, 0.5, 0.146, 1.0]
    """

    def __init__(self, T_0, *, T_mult=1, eta_min=0.0):
        super().__init__()
        self.T_0 = _check_int("T_0", T_0, 1)
        self.T_mult = _check_int("T_mult", T_mult, 1)
        self.eta_min = _check_real("eta_min", eta_min, 0)

    def learning_rate(self, epoch, base_learning_rate):
        t, period = int(epoch), self.T_0
        while t >= period:
            t -= period
            period *= self.T_mult
        cosine = (1.0 + math.cos(math.pi * t / period)) / 2.0
        return self.eta_min + (base_learning_rate - self.eta_min) * cosine


class LinearWarmup(_Schedule):
    """Raise the learning rate linearly over the first epochs, then follow a schedule.

    During the first ``warmup_epochs`` epochs ``lr = learning_rate_init * (start_factor
    + (1 - start_factor) * epoch / warmup_epochs)``; afterwards ``after``'s learning
    rate for ``epoch - warmup_epochs`` (``learning_rate_init`` when ``after`` is None).

    Parameters
    ----------
    warmup_epochs : int
        Length of the warm-up.
    start_factor : float, default=0.1
        Fraction of ``learning_rate_init`` of the first epoch, in (0, 1].
    after : StepLR, ExponentialLR or CosineAnnealingWarmRestarts, default=None
        The schedule that follows the warm-up.

    Examples
    --------
    >>> from sknet.callbacks import ExponentialLR, LinearWarmup
    >>> s = LinearWarmup(4, start_factor=0.2, after=ExponentialLR(0.5))
    >>> [round(s.learning_rate(e, 1.0), 3) for e in range(6)]
    [0.2, 0.4, 0.6, 0.8, 1.0, 0.5]
    """

    def __init__(self, warmup_epochs, *, start_factor=0.1, after=None):
        super().__init__()
        self.warmup_epochs = _check_int("warmup_epochs", warmup_epochs, 1)
        self.start_factor = _check_real("start_factor", start_factor, 0, 1, low_open=True)
        if after is not None and not isinstance(
            after, (StepLR, ExponentialLR, CosineAnnealingWarmRestarts)
        ):
            raise ValueError(
                "after must be None, a StepLR, an ExponentialLR or a "
                f"CosineAnnealingWarmRestarts, got {type(after).__name__}."
            )
        self.after = after

    def learning_rate(self, epoch, base_learning_rate):
        if epoch < self.warmup_epochs:
            f = self.start_factor + (1.0 - self.start_factor) * epoch / self.warmup_epochs
            return base_learning_rate * f
        if self.after is None:
            return base_learning_rate
        return self.after.learning_rate(epoch - self.warmup_epochs, base_learning_rate)


class ReduceLROnPlateau(_Callback):
    """Divide the learning rate when the monitored value stops improving.

    After ``patience`` epochs without an improvement of more than ``tol`` the learning
    rate is multiplied by ``factor`` (not below ``min_lr``), from the next epoch on.
    The learning rate starts at ``learning_rate_init`` when the network is fresh and
    carries over to ``partial_fit`` calls and ``warm_start`` fits.

    Parameters
    ----------
    monitor : str, callable or None, default="loss"
        What to watch: ``"loss"`` (training loss), ``"validation_loss"``,
        ``"validation_score"`` (need ``early_stopping=True``) or a scikit-learn scorer
        (see :mod:`sknet.callbacks`).
    factor : float, default=0.1
        Multiplier of the learning rate, in (0, 1).
    patience : int, default=10
        Epochs without improvement before a reduction.
    tol : float, default=1e-4
        Minimum change counting as an improvement.
    min_lr : float, default=0.0
        Lower bound of the learning rate.
    validation_data : tuple, default=None
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)`` for a scorer.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sknet import MLPClassifier
    >>> from sknet.callbacks import ReduceLROnPlateau
    >>> X, y = load_iris(return_X_y=True)
    >>> plateau = ReduceLROnPlateau(patience=2, tol=0.5)
    >>> clf = MLPClassifier(max_iter=30, random_state=0).set_callbacks(plateau)
    >>> clf = clf.fit(X / 8, y)
    >>> plateau.current_learning_rate(clf) < clf.learning_rate_init
    True
    """

    def __init__(
        self, monitor="loss", *, factor=0.1, patience=10, tol=1e-4, min_lr=0.0, validation_data=None
    ):
        super().__init__()
        self.factor = _check_real("factor", factor, 0, 1, low_open=True, high_open=True)
        self.patience = _check_int("patience", patience, 1)
        self.tol = _check_real("tol", tol, 0)
        self.min_lr = _check_real("min_lr", min_lr, 0)
        self._monitor = _Monitor(monitor, validation_data, "ReduceLROnPlateau")
        self.monitor = monitor
        self.validation_data = validation_data

    def setup(self, estimator, context):
        _check_schedulable(estimator, "ReduceLROnPlateau")
        self._monitor.check(estimator)

    def on_fit_task_begin(self, estimator, context):
        if not _is_iteration(context):
            if not _continues(estimator) or not self._state(estimator):
                self._reset(
                    estimator, lr=float(estimator.learning_rate_init), best=-math.inf, wait=0
                )
            return
        estimator._set_learning_rate(self._state(estimator)["lr"])

    def on_fit_task_end(
        self, estimator, context, *, X=None, y=None, metadata=None, fitted_estimator=None
    ):
        if not _is_iteration(context) or fitted_estimator is None:
            return False
        state = self._state(estimator)
        value = self._monitor(estimator, X, y, metadata, fitted_estimator)
        if value > state["best"] + self.tol:
            state["best"], state["wait"] = value, 0
            return False
        if value > state["best"]:
            state["best"] = value
        state["wait"] += 1
        if state["wait"] >= self.patience:
            state["lr"] = max(state["lr"] * self.factor, self.min_lr)
            state["wait"] = 0
        return False

    def current_learning_rate(self, estimator):
        """The learning rate this callback gives ``estimator``'s next epoch.

        Parameters
        ----------
        estimator : sknet estimator
            An estimator trained with this callback.

        Returns
        -------
        learning_rate : float
        """
        return self._state(estimator)["lr"]


# ------------------------------------------------------------------ early stopping
class EarlyStopping(_Callback):
    """Stop training when a scikit-learn scorer stops improving; keep the best weights.

    After every epoch the monitored value is computed (a scorer on ``validation_data``
    by default); training stops after ``patience`` epochs without an improvement of
    more than ``tol``. With ``restore_best_weights`` the network ends with the weights
    (and batch-normalization statistics) of the best epoch, whose number is stored in
    the estimator's ``best_iteration_`` and marked by
    :class:`~sknet.TrainingHistoryDisplay`. The best value is the callback's
    ``best_score(estimator)``.

    This is :class:`~sklearn.neural_network.MLPClassifier`'s ``early_stopping`` with
    any scorer and any validation set; it works with L-BFGS iterations too. It is for
    ``fit``: ``partial_fit`` (one epoch per call) is refused.

    Parameters
    ----------
    monitor : str, callable or None, default=None
        A scikit-learn scorer (a name such as ``"f1_macro"`` or ``"neg_log_loss"``, a
        callable ``scorer(estimator, X, y)``, None for the estimator's ``score``), or
        ``"loss"``, ``"validation_loss"``, ``"validation_score"`` (see
        :mod:`sknet.callbacks`).
    validation_data : tuple, default=None
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``, scored with
        ``monitor``; None scores the training data.
    patience : int, default=10
        Epochs without improvement before stopping.
    tol : float, default=0.0
        Minimum change counting as an improvement.
    restore_best_weights : bool, default=True
        End with the weights of the best epoch rather than the last one.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import train_test_split
    >>> from sknet import MLPClassifier
    >>> from sknet.callbacks import EarlyStopping
    >>> X, y = load_iris(return_X_y=True)
    >>> X_tr, X_val, y_tr, y_val = train_test_split(X, y, random_state=0)
    >>> stop = EarlyStopping("f1_macro", validation_data=(X_val, y_val), patience=3)
    >>> clf = MLPClassifier(learning_rate_init=0.01, max_iter=200, random_state=0)
    >>> clf = clf.set_callbacks(stop).fit(X_tr, y_tr)
    >>> clf.best_iteration_ <= clf.n_iter_
    True
    """

    def __init__(
        self, monitor=None, *, validation_data=None, patience=10, tol=0.0, restore_best_weights=True
    ):
        super().__init__()
        self.patience = _check_int("patience", patience, 1)
        self.tol = _check_real("tol", tol, 0)
        if not isinstance(restore_best_weights, (bool, np.bool_)):
            raise ValueError(
                f"restore_best_weights must be True or False, got {restore_best_weights!r}."
            )
        self.restore_best_weights = bool(restore_best_weights)
        self._monitor = _Monitor(monitor, validation_data, "EarlyStopping")
        self.monitor = monitor
        self.validation_data = validation_data

    def setup(self, estimator, context):
        self._monitor.check(estimator)

    def on_fit_task_begin(self, estimator, context):
        if _is_iteration(context):
            return
        if estimator._fit_task.incremental:
            raise ValueError(
                "EarlyStopping is for fit; partial_fit trains one epoch per call and "
                "cannot stop or restore weights. Remove the callback (set_callbacks()) "
                "or call fit."
            )
        if not _continues(estimator) or not self._state(estimator):
            self._reset(estimator, best=-math.inf, wait=0, best_iteration=None, weights=None)

    def on_fit_task_end(
        self, estimator, context, *, X=None, y=None, metadata=None, fitted_estimator=None
    ):
        state = self._state(estimator)
        if not _is_iteration(context):  # the end of fit
            if self.restore_best_weights and state.get("weights") is not None:
                estimator._restore(*state["weights"])
                estimator.best_iteration_ = state["best_iteration"]
            return False
        if fitted_estimator is None:  # an iteration that did not run
            return False
        value = self._monitor(estimator, X, y, metadata, fitted_estimator)
        if value > state["best"] + self.tol or state["best_iteration"] is None:
            state["wait"] = 0
        else:
            state["wait"] += 1
        if value > state["best"] or state["best_iteration"] is None:
            state["best"] = value
            state["best_iteration"] = _epochs_done(estimator)
            if self.restore_best_weights:
                state["weights"] = estimator._snapshot()
        return state["wait"] >= self.patience

    def best_score(self, estimator):
        """The best monitored value of ``estimator``'s last fit (greater is better:
        ``"loss"`` and ``"validation_loss"`` are negated).

        Parameters
        ----------
        estimator : sknet estimator
            An estimator fitted with this callback.

        Returns
        -------
        score : float
        """
        return self._state(estimator)["best"]


# ------------------------------------------------------------------ checkpoints
class Checkpoint(_Callback):
    """Save the model during training, in sknet's safe format (:func:`sknet.save`).

    Saves every ``every`` epochs and/or whenever the monitored value improves
    (``save_best=True``). The file holds the optimiser's state (``training_state``):
    ``sknet.load(path).partial_fit(...)`` continues training exactly where the
    checkpoint was taken (Adam's moments, SGD's velocity, the epoch count), as if
    training had not stopped. (A ``warm_start`` fit restarts the optimiser, as in
    scikit-learn.) Each file's metadata (:func:`sknet.read_header`) records its
    ``epoch`` and, with ``save_best``, the monitored ``score``.

    Parameters
    ----------
    path : str or os.PathLike
        Where to save; ``{epoch}`` in it is replaced by the epoch number (1 for the
        first), e.g. ``"model-{epoch}.sknet"``; without it each save overwrites the
        last.
    every : int, default=None
        Save every ``every`` epochs.
    save_best : bool, default=False
        Save when the monitored value improves on the best so far.
    monitor : str, callable or None, default="validation_score"
        What ``save_best`` watches (see :mod:`sknet.callbacks`); the default is the
        estimator's early-stopping validation score (``early_stopping=True``).
    validation_data : tuple, default=None
        ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)`` for a scorer.
    training_state : bool, default=True
        Passed to :func:`sknet.save`: keep the optimiser's state for resuming.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> import sknet
    >>> from sknet.callbacks import Checkpoint
    >>> X, y = load_iris(return_X_y=True)
    >>> path = os.path.join(tempfile.mkdtemp(), "iris-{epoch}.sknet")
    >>> clf = sknet.MLPClassifier(max_iter=4, random_state=0)
    >>> _ = clf.set_callbacks(Checkpoint(path, every=2)).fit(X, y)
    >>> sorted(os.listdir(os.path.dirname(path)))
    ['iris-2.sknet', 'iris-4.sknet']
    """

    def __init__(
        self,
        path,
        *,
        every=None,
        save_best=False,
        monitor="validation_score",
        validation_data=None,
        training_state=True,
    ):
        super().__init__()
        self.path = str(path) if not hasattr(path, "__fspath__") else path.__fspath__()
        if every is not None:
            every = _check_int("every", every, 1)
        self.every = every
        self.save_best = bool(save_best)
        if self.every is None and not self.save_best:
            raise ValueError("Checkpoint saves nothing: pass every=k and/or save_best=True.")
        self.path.format(epoch=0)  # a bad format string fails here, not mid-fit
        self._monitor = _Monitor(monitor, validation_data, "Checkpoint")
        self.monitor = monitor
        self.validation_data = validation_data
        self.training_state = bool(training_state)

    def setup(self, estimator, context):
        if self.save_best:
            self._monitor.check(estimator)

    def on_fit_task_begin(self, estimator, context):
        if not _is_iteration(context) and (not _continues(estimator) or not self._state(estimator)):
            self._reset(estimator, best=-math.inf, saved=[])

    def on_fit_task_end(
        self, estimator, context, *, X=None, y=None, metadata=None, fitted_estimator=None
    ):
        if not _is_iteration(context) or fitted_estimator is None:
            return False
        from .persistence import save  # persistence sits above the estimators

        state = self._state(estimator)
        epoch = _epochs_done(estimator)
        meta = {"epoch": epoch}
        due = self.every is not None and epoch % self.every == 0
        if self.save_best:
            value = self._monitor(estimator, X, y, metadata, fitted_estimator)
            if value > state["best"]:
                state["best"] = value
                meta["score"] = value
                due = True
        if due:
            path = self.path.format(epoch=epoch)
            save(estimator, path, metadata=meta, training_state=self.training_state)
            state["saved"].append(path)
        return False

    def saved_paths(self, estimator):
        """The files written during ``estimator``'s training, in order.

        Parameters
        ----------
        estimator : sknet estimator
            An estimator fitted with this callback.

        Returns
        -------
        paths : list of str
        """
        return list(self._state(estimator).get("saved", []))
