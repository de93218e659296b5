"""Time-series tools: lagged windows for sequence models, recursive and direct forecasts.

A series of ``n_timesteps`` observations (1-D, or 2-D ``(n_timesteps, n_features)`` for a
multivariate series) becomes a supervised problem by cutting it into windows: each input
window holds ``window`` consecutive observations and its target the ``horizon``
observations that follow::

    series:   s_0  s_1  ...  s_{i}  ...  s_{i+window-1} | s_{i+window} ... s_{i+window+horizon-1}
                             \\_______ X[k] (window) ______/ \\________ y[k] (horizon) _________/

The windows are 3-D ``(n_windows, window, n_features)``, the input that
:class:`~sknet.RNNRegressor` and :class:`~sknet.RNNClassifier` expect; flatten them
(``X.reshape(len(X), -1)``) for a model of flat rows such as :class:`~sknet.MLPRegressor`.
A horizon above 1 gives a multi-output target, which a regressor forecasts *directly*
(all steps at once); :func:`forecast` also forecasts *recursively*, feeding each
prediction back as the newest observation.

Windowing changes the number of samples, which a :class:`~sklearn.pipeline.Pipeline` step
cannot do: window the series first, then fit the estimator (or a Pipeline of scalers and
the estimator) on the windows. Evaluate in time order, with
:class:`~sklearn.model_selection.TimeSeriesSplit` on the windows (``gap=horizon - 1``
keeps the last training targets out of the first test targets), or by splitting the
series itself and forecasting each test block from its history with :func:`forecast`.

Early stopping in time order: ``early_stopping=True`` alone holds out a random
``validation_fraction`` of the windows, which overlap the training windows around them,
so the validation score is optimistic. ``validation_split='last'`` (every sknet
estimator) holds out the most recent windows instead, the last ``validation_fraction``
of them in the order given; or pass a validation set of your own to ``fit``:
``est.fit(X[:-k], y[:-k], X_val=X[-k:], y_val=y[-k:])``. Either way, the last training
windows share observations with the first validation windows; drop
``window + horizon - 1`` windows between the two parts to keep them disjoint.
"""

from numbers import Integral

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import get_tags
from sklearn.utils.validation import check_array, check_is_fitted

from ._compat import Interval, StrOptions, fit_context, validate_params

__all__ = ["LagWindows", "forecast", "make_windows"]


def _check_series(series, name="series"):
    """A float array of shape (n_timesteps, n_features) and whether the input was 1-D."""
    if isinstance(series, (list, tuple)) and any(
        np.ndim(v) != np.ndim(series[0]) or np.shape(v) != np.shape(series[0]) for v in series
    ):
        raise ValueError(
            f"{name} must be rectangular: its observations have different shapes (ragged input)."
        )
    arr = check_array(
        series,
        ensure_2d=False,
        allow_nd=True,
        dtype=(np.float64, np.float32),
        ensure_all_finite=True,
        input_name=name,
    )
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (n_timesteps,) or 2-D (n_timesteps, n_features), "
            f"got a {arr.ndim}-D array of shape {arr.shape}."
        )
    univariate = arr.ndim == 1
    return (arr[:, None] if univariate else arr), univariate


def _n_windows(n_timesteps, span, stride):
    return (n_timesteps - span) // stride + 1 if n_timesteps >= span else 0


def _windows(arr, window, horizon, stride):
    """Windows of ``window + horizon`` steps (a copy), aligned to the end of ``arr``."""
    span = window + horizon
    n = _n_windows(arr.shape[0], span, stride)
    if n == 0:
        raise ValueError(
            f"The series has {arr.shape[0]} time steps; at least {span} (window={window}"
            + (f" + horizon={horizon}" if horizon else "")
            + ") are needed for one window."
        )
    first = arr.shape[0] - span - (n - 1) * stride  # align the last window with the end
    view = sliding_window_view(arr[first:], span, axis=0)[::stride]  # (n, d, span)
    return np.array(view.transpose(0, 2, 1), order="C")  # (n, span, d), always a copy


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    return int(value)


def make_windows(series, window, horizon=1, stride=1):
    """Cut a series into input windows and the values that follow them.

    Window ``k`` holds ``window`` consecutive observations and its target the ``horizon``
    observations right after them; consecutive windows start ``stride`` steps apart. The
    windows are aligned to the end of the series: the last target ends with the last
    observation (with ``stride > 1``, up to ``stride - 1`` leading observations are
    unused).

    Parameters
    ----------
    series : array-like of shape (n_timesteps,) or (n_timesteps, n_features)
        A univariate or multivariate series, oldest observation first. Must be finite.
    window : int
        Number of observations per input window (the sequence length), >= 1.
    horizon : int, default=1
        Number of following observations per target, >= 1.
    stride : int, default=1
        Steps between the starts of consecutive windows, >= 1.

    Returns
    -------
    X : ndarray of shape (n_windows, window, n_features)
        Input windows (``n_features`` is 1 for a 1-D series). A new array.
    y : ndarray of shape (n_windows,), (n_windows, horizon) or (n_windows, horizon, n_features)
        Targets. For a 1-D series: 1-D with ``horizon=1`` (the usual single target),
        else 2-D, one column per step ahead. For a 2-D series: 3-D (reshape it to
        ``(n_windows, horizon * n_features)`` for a multi-output regressor).

    See Also
    --------
    LagWindows : The same as a fitted transformer, with windows for forecasting.
    forecast : Forecast the values after a series with a model fitted on windows.

    Examples
    --------
    >>> import numpy as np
    >>> from sknet.timeseries import make_windows
    >>> X, y = make_windows(np.arange(8.0), window=3, horizon=2, stride=2)
    >>> X[:, :, 0]
    array([[1., 2., 3.],
           [3., 4., 5.]])
    >>> y
    array([[4., 5.],
           [6., 7.]])
    """
    window = _check_int(window, "window", 1)
    horizon = _check_int(horizon, "horizon", 1)
    stride = _check_int(stride, "stride", 1)
    arr, univariate = _check_series(series)
    both = _windows(arr, window, horizon, stride)
    X, y = both[:, :window], both[:, window:]
    if univariate:
        y = y[:, 0, 0] if horizon == 1 else y[:, :, 0]
    return np.ascontiguousarray(X), np.ascontiguousarray(y)


class LagWindows(TransformerMixin, BaseEstimator):
    """Turn a series into lagged windows for a sequence model (transformer-like).

    ``transform`` returns every input window of ``window`` observations (the last one
    ends with the last observation, so it is the input for forecasting what comes next);
    ``make_xy`` returns the training pairs of :func:`make_windows`. Use it *before* an
    estimator or a :class:`~sklearn.pipeline.Pipeline`, not as a step inside one: windowing
    changes the number of samples.

    Parameters
    ----------
    window : int, default=12
        Observations per input window (the sequence length).
    horizon : int, default=1
        Observations per target in ``make_xy`` (several give multi-step targets).
    stride : int, default=1
        Steps between the starts of consecutive windows.

    Attributes
    ----------
    n_features_in_ : int
        Number of variables of the series seen in ``fit`` (1 for a 1-D series).

    See Also
    --------
    make_windows : The function behind ``make_xy``.
    forecast : Recursive or direct forecasts from the end of a series.

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import RNNRegressor
    >>> from sknet.timeseries import LagWindows
    >>> series = np.sin(np.arange(300) * 0.2)
    >>> lags = LagWindows(window=16, horizon=3).fit(series)
    >>> X, y = lags.make_xy(series)
    >>> X.shape, y.shape
    ((282, 16, 1), (282, 3))
    >>> reg = RNNRegressor(cell="gru", hidden_layer_sizes=(16,), max_iter=40,
    ...                    learning_rate_init=0.01, random_state=0).fit(X, y)
    >>> next3 = reg.predict(lags.transform(series)[-1:])   # the 3 values after the series
    >>> bool(np.abs(next3 - np.sin(np.arange(300, 303) * 0.2)).max() < 0.1)
    True
    """

    _parameter_constraints: dict = {
        "window": [Interval(Integral, 1, None, closed="left")],
        "horizon": [Interval(Integral, 1, None, closed="left")],
        "stride": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, window=12, horizon=1, stride=1):
        self.window = window
        self.horizon = horizon
        self.stride = stride

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, series, y=None):
        """Check the series and record its number of variables.

        Parameters
        ----------
        series : array-like of shape (n_timesteps,) or (n_timesteps, n_features)
            The series, oldest observation first.
        y : None
            Ignored.

        Returns
        -------
        self : object
            This transformer.
        """
        arr, _ = _check_series(series)
        self.n_features_in_ = arr.shape[1]
        return self

    def _check(self, series):
        check_is_fitted(self, "n_features_in_")
        arr, _ = _check_series(series)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"The series has {arr.shape[1]} variable(s), but LagWindows was "
                f"fitted on {self.n_features_in_}."
            )
        return arr

    def transform(self, series):
        """Every input window of the series, the last one ending with its last observation.

        Parameters
        ----------
        series : array-like of shape (n_timesteps,) or (n_timesteps, n_features)
            The series, oldest observation first; at least ``window`` steps.

        Returns
        -------
        X : ndarray of shape (n_windows, window, n_features)
            ``n_windows = (n_timesteps - window) // stride + 1``.
        """
        arr = self._check(series)
        return _windows(arr, self.window, 0, self.stride)

    def make_xy(self, series):
        """Training pairs: input windows and the ``horizon`` observations after each.

        Parameters
        ----------
        series : array-like of shape (n_timesteps,) or (n_timesteps, n_features)
            The series, oldest observation first.

        Returns
        -------
        X : ndarray of shape (n_windows, window, n_features)
        y : ndarray of shape (n_windows,), (n_windows, horizon) or \
(n_windows, horizon, n_features)
            As returned by :func:`make_windows`.
        """
        self._check(series)
        return make_windows(series, self.window, self.horizon, self.stride)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.requires_fit = True
        return tags


@validate_params(
    {
        "estimator": [object],
        "history": ["array-like"],
        "steps": [Interval(Integral, 1, None, closed="left")],
        "window": [None, Interval(Integral, 1, None, closed="left")],
        "method": [StrOptions({"recursive", "direct"})],
        "flatten": ["boolean", None],
    },
    prefer_skip_nested_validation=True,
)
def forecast(estimator, history, steps, *, window=None, method="recursive", flatten=None):
    """Forecast the ``steps`` observations that follow ``history``.

    The estimator must be fitted on windows of ``history``'s kind (from
    :func:`make_windows` or :class:`LagWindows`) to predict the next ``k >= 1``
    observations (``k`` = its number of outputs / ``n_features``). Its input is the last
    ``window`` observations of ``history``:

    * ``method='direct'``: one prediction gives all ``steps`` values at once (a
      multi-output model trained with ``horizon >= steps``);
    * ``method='recursive'``: each prediction is appended to the history as if observed
      and the window slides forward, until ``steps`` values are forecast (a one-step
      model, ``k = 1``, is the classic case; a ``k``-step model advances ``k`` steps per
      call).

    Parameters
    ----------
    estimator : fitted regressor (or Pipeline)
        Fitted on windows. Models that take 3-D input (sknet's RNN estimators) get
        ``(1, window, n_features)``; others get the window flattened to
        ``(1, window * n_features)``.
    history : array-like of shape (n_timesteps,) or (n_timesteps, n_features)
        The observed series, oldest first; at least ``window`` steps. Not modified.
    steps : int
        How many future observations to forecast.
    window : int, default=None
        Window length the estimator was fitted with. None reads it from the fitted
        estimator's ``n_features_in_`` (time steps for 3-D models, divided by
        ``n_features`` for flat ones).
    method : {'recursive', 'direct'}, default='recursive'
        How to forecast more than one step (see above).
    flatten : bool, default=None
        Force flat (True) or 3-D (False) windows; None decides from the estimator's
        ``three_d_array`` input tag.

    Returns
    -------
    y_forecast : ndarray of shape (steps,) or (steps, n_features)
        The forecast, 1-D for a 1-D history.

    Examples
    --------
    Rolling-origin evaluation with :class:`~sklearn.model_selection.TimeSeriesSplit`:
    fit on each training block's windows, forecast the test block from its history.

    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.model_selection import TimeSeriesSplit
    >>> from sknet.timeseries import forecast, make_windows
    >>> series = np.sin(np.arange(240) * 2 * np.pi / 12)   # a period of 12 steps
    >>> errors = []
    >>> for train, test in TimeSeriesSplit(n_splits=3, test_size=24).split(series):
    ...     X, y = make_windows(series[train], window=12)
    ...     model = Ridge(alpha=1e-6).fit(X.reshape(len(X), -1), y)
    ...     pred = forecast(model, series[train], steps=len(test), window=12)
    ...     errors.append(np.sqrt(np.mean((pred - series[test]) ** 2)))
    >>> bool(max(errors) < 1e-3)
    True
    """
    hist, univariate = _check_series(history, name="history")
    d = hist.shape[1]
    if flatten is None:
        try:
            flatten = not get_tags(estimator).input_tags.three_d_array
        except (AttributeError, TypeError):  # pragma: no cover - pre-tags estimators
            flatten = True
    if window is None:
        n_in = getattr(estimator, "n_features_in_", None)
        if n_in is None:
            raise ValueError(
                "window=None needs a fitted estimator with n_features_in_; pass window explicitly."
            )
        if flatten and n_in % d:
            raise ValueError(
                f"The estimator has {n_in} input features, not a multiple of "
                f"the series' {d} variables; pass window explicitly."
            )
        window = n_in // d if flatten else n_in
    if hist.shape[0] < window:
        raise ValueError(f"history has {hist.shape[0]} time steps, fewer than window={window}.")
    buf = np.empty((window + steps, d), dtype=hist.dtype)
    buf[:window] = hist[-window:]
    done = 0
    while done < steps:
        x = buf[None, done : done + window]  # (1, window, d)
        pred = np.asarray(estimator.predict(x.reshape(1, -1) if flatten else x))
        if pred.size % d:
            raise ValueError(
                f"The estimator predicts {pred.size} values per window, not a "
                f"multiple of the series' {d} variables."
            )
        pred = pred.reshape(-1, d)  # (k, d): the next k observations
        k = pred.shape[0]
        if method == "direct":
            if k < steps:
                raise ValueError(
                    f"method='direct' needs a model that predicts at least steps={steps} "
                    f"observations at once; this one predicts {k}. Fit it with "
                    f"horizon >= {steps}, or use method='recursive'."
                )
            buf[window:] = pred[:steps]
            break
        take = min(k, steps - done)
        buf[window + done : window + done + take] = pred[:take]
        done += take
    out = buf[window:]
    return out[:, 0].copy() if univariate else out.copy()
