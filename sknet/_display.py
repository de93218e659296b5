"""Plots of a fitted network's training history, in scikit-learn's Display style."""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from ._compat import check_matplotlib_support

__all__ = ["TrainingHistoryDisplay"]


def _as_curve(values, name):
    if values is None:
        return None
    curve = np.asarray(values, dtype=float)
    if curve.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per epoch), got shape {curve.shape}.")
    return curve


def _kept_epoch(estimator):
    """The epoch whose weights the fitted estimator holds when it is not the last one:
    ``best_iteration_`` (sknet), else, for scikit-learn's MLP with early stopping
    (which restores the best validation score's weights), that epoch."""
    best = getattr(estimator, "best_iteration_", None)
    if best is not None:
        return int(best)
    scores = getattr(estimator, "validation_scores_", None)
    if getattr(estimator, "early_stopping", False) is True and scores:
        return int(np.nanargmax(scores)) + 1 if np.isfinite(scores).any() else None
    return None


class TrainingHistoryDisplay:
    """Training history visualization: loss per epoch, and validation curves.

    The training loss is drawn on the left axis together with the validation loss
    when there is one; the validation score (accuracy or R^2) has its own axis on
    the right, since it lives on another scale. Create it with
    :meth:`from_estimator`, or from stored curves with the constructor and then
    :meth:`plot`. All parameters are stored as attributes.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss at the end of each epoch (an estimator's ``loss_curve_``).
    validation_loss_curve : array-like of shape (n_epochs,), default=None
        Validation loss per epoch (``validation_loss_curve_``).
    validation_scores : array-like of shape (n_epochs,), default=None
        Validation score per epoch (``validation_scores_``).
    estimator_name : str, default=None
        Name used in the title; no title when None.
    score_name : str, default=None
        Name of the validation score for its axis label (for example
        ``'accuracy'``); ``'score'`` when None.
    best_iteration : int, default=None
        The epoch (1 for the first) whose weights the model kept, marked by a
        vertical line: the best validation epoch when early stopping restored the
        weights (an estimator's ``best_iteration_``). None: no mark (the model holds
        the last epoch's weights).

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the loss curves.
    score_ax_ : matplotlib Axes or None
        Twin axes (sharing the epoch axis) with the validation score, None when
        there are no validation scores.
    figure_ : matplotlib Figure
        Figure containing the curves.
    loss_line_ : matplotlib Line2D
        Training loss.
    validation_loss_line_ : matplotlib Line2D or None
        Validation loss, None when not available.
    validation_score_line_ : matplotlib Line2D or None
        Validation score, None when not available.
    best_iteration_line_ : matplotlib Line2D or None
        Vertical line at ``best_iteration``, None without one.

    See Also
    --------
    summary : The layers, output shapes and parameter counts of a network.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from sknet import MLPClassifier, TrainingHistoryDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01,
    ...                     early_stopping=True, validation_fraction=0.2,
    ...                     max_iter=40, random_state=0).fit(X, y)
    >>> disp = TrainingHistoryDisplay.from_estimator(clf)
    >>> len(disp.loss_line_.get_xdata()) == clf.n_iter_
    True
    >>> disp.score_ax_.get_ylabel()
    'validation accuracy'
    >>> disp.best_iteration_line_.get_xdata()[0] == clf.best_iteration_
    True
    """

    def __init__(
        self,
        *,
        loss_curve,
        validation_loss_curve=None,
        validation_scores=None,
        estimator_name=None,
        score_name=None,
        best_iteration=None,
    ):
        self.loss_curve = loss_curve
        self.validation_loss_curve = validation_loss_curve
        self.validation_scores = validation_scores
        self.estimator_name = estimator_name
        self.score_name = score_name
        self.best_iteration = best_iteration

    def plot(
        self,
        ax=None,
        *,
        name=None,
        loss_kw=None,
        validation_loss_kw=None,
        validation_score_kw=None,
        best_iteration_kw=None,
    ):
        """Plot the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; a new figure and axes are created when None.
        name : str, default=None
            Title of the plot; ``estimator_name`` when None.
        loss_kw : dict, default=None
            Keyword arguments for ``ax.plot`` of the training loss.
        validation_loss_kw : dict, default=None
            Keyword arguments for ``ax.plot`` of the validation loss.
        validation_score_kw : dict, default=None
            Keyword arguments for ``plot`` of the validation score.
        best_iteration_kw : dict, default=None
            Keyword arguments for ``ax.axvline`` marking ``best_iteration``.

        Returns
        -------
        display : TrainingHistoryDisplay
            Object that stores the computed values.
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        loss = _as_curve(self.loss_curve, "loss_curve")
        val_loss = _as_curve(self.validation_loss_curve, "validation_loss_curve")
        val_score = _as_curve(self.validation_scores, "validation_scores")
        if loss is None or loss.size == 0:
            raise ValueError("loss_curve is empty: there is no training history to plot.")
        for curve, curve_name in (
            (val_loss, "validation_loss_curve"),
            (val_score, "validation_scores"),
        ):
            if curve is not None and curve.shape != loss.shape:
                raise ValueError(
                    f"{curve_name} has {curve.size} values but loss_curve has {loss.size}; "
                    "both must have one value per epoch."
                )
        best = self.best_iteration
        if best is not None and (
            isinstance(best, (bool, np.bool_))
            or not isinstance(best, (int, np.integer))
            or not 0 <= best <= loss.size
        ):
            raise ValueError(
                f"best_iteration must be None or an epoch number in [0, {loss.size}] (0: "
                f"the initial weights), got {best!r}."
            )
        if ax is None:
            _, ax = plt.subplots()
        epochs = np.arange(1, loss.size + 1)
        lines = []
        self.loss_line_ = ax.plot(epochs, loss, **{"label": "training loss", **(loss_kw or {})})[0]
        lines.append(self.loss_line_)
        self.validation_loss_line_ = None
        if val_loss is not None:
            self.validation_loss_line_ = ax.plot(
                epochs,
                val_loss,
                **{"label": "validation loss", "linestyle": "--", **(validation_loss_kw or {})},
            )[0]
            lines.append(self.validation_loss_line_)
        self.best_iteration_line_ = None
        if best is not None:
            self.best_iteration_line_ = ax.axvline(
                int(best),
                **{
                    "label": f"weights kept (epoch {int(best)})",
                    "color": "0.4",
                    "linestyle": ":",
                    **(best_iteration_kw or {}),
                },
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        self.score_ax_ = None
        self.validation_score_line_ = None
        if val_score is not None:
            score_label = "validation " + (self.score_name or "score")
            self.score_ax_ = ax.twinx()
            self.validation_score_line_ = self.score_ax_.plot(
                epochs,
                val_score,
                **{"label": score_label, "color": "C2", **(validation_score_kw or {})},
            )[0]
            self.score_ax_.set_ylabel(score_label)
            lines.append(self.validation_score_line_)
        if self.best_iteration_line_ is not None:
            lines.append(self.best_iteration_line_)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # the legend goes on the top-most axes so that no curve is drawn over it; with a
        # score axis, "best" would only avoid the score curve: losses fall and scores
        # rise, so the right-hand middle is usually free
        if self.score_ax_ is not None:
            legend_ax, loc = self.score_ax_, "center right"
        else:
            legend_ax, loc = ax, "best"
        legend_ax.legend(lines, [line.get_label() for line in lines], loc=loc)
        title = name if name is not None else self.estimator_name
        if title is not None:
            ax.set_title(title)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, name=None, **kwargs):
        """Plot the training history of a fitted estimator.

        Parameters
        ----------
        estimator : estimator or Pipeline
            A fitted network trained with a stochastic solver ('sgd' or 'adam'),
            which records ``loss_curve_`` (and, with ``early_stopping=True``,
            ``validation_scores_`` and ``validation_loss_curve_``); the epoch whose
            weights early stopping kept (``best_iteration_``, with
            ``early_stopping=True`` or :class:`sknet.callbacks.EarlyStopping`) is
            marked. A fitted
            :class:`~sklearn.pipeline.Pipeline` ending in such a network works too.
        ax : matplotlib Axes, default=None
            Axes to plot on; a new figure and axes are created when None.
        name : str, default=None
            Title of the plot; the estimator's class name when None.
        **kwargs : dict
            Passed to :meth:`plot` (``loss_kw``, ``validation_loss_kw``,
            ``validation_score_kw``, ``best_iteration_kw``).

        Returns
        -------
        display : TrainingHistoryDisplay
            Object that stores the computed values.
        """
        check_matplotlib_support(f"{cls.__name__}.from_estimator")
        if hasattr(estimator, "steps"):  # a Pipeline: the network is the last step
            estimator = estimator[-1]
        check_is_fitted(estimator)
        loss_curve = getattr(estimator, "loss_curve_", None)
        if loss_curve is None:
            raise ValueError(
                f"{type(estimator).__name__} has no loss_curve_: only the stochastic "
                "solvers ('adam', 'sgd') record a loss per epoch; L-BFGS does not."
            )
        disp = cls(
            loss_curve=loss_curve,
            validation_loss_curve=getattr(estimator, "validation_loss_curve_", None),
            validation_scores=getattr(estimator, "validation_scores_", None),
            estimator_name=type(estimator).__name__,
            score_name="accuracy" if is_classifier(estimator) else "R^2",
            best_iteration=_kept_epoch(estimator),
        )
        return disp.plot(ax=ax, name=name, **kwargs)
