"""sknet.timeseries (windows, forecasts, TimeSeriesSplit) and the shipped CO2 series."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import TimeSeriesSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknet import MLPRegressor, RNNRegressor
from sknet.datasets import load_co2
from sknet.timeseries import LagWindows, forecast, make_windows

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# --------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------
def slow_windows(series, window, horizon, stride):
    """Loop version: windows aligned so the last target ends with the series."""
    s = np.asarray(series, dtype=float)
    s2 = s[:, None] if s.ndim == 1 else s
    X, Y = [], []
    end = len(s2)
    while end - window - horizon >= 0:
        X.append(s2[end - window - horizon : end - horizon])
        Y.append(s2[end - horizon : end])
        end -= stride
    X, Y = np.array(X[::-1]), np.array(Y[::-1])
    if s.ndim == 1:
        Y = Y[:, 0, 0] if horizon == 1 else Y[:, :, 0]
    return X, Y


@pytest.mark.parametrize(
    "n, window, horizon, stride",
    [(10, 3, 1, 1), (11, 4, 2, 3), (9, 8, 1, 1), (30, 5, 5, 4), (7, 1, 6, 2)],
)
def test_make_windows_matches_a_loop(n, window, horizon, stride, rng):
    for series in (rng.normal(size=n), rng.normal(size=(n, 3))):
        X, y = make_windows(series, window, horizon, stride)
        Xs, ys = slow_windows(series, window, horizon, stride)
        assert X.shape == (len(Xs), window, 1 if series.ndim == 1 else 3)
        assert y.shape == ys.shape
        assert_array_equal(X, Xs)
        assert_array_equal(y, ys)
        assert len(X) == (n - window - horizon) // stride + 1
        assert X.flags.c_contiguous and y.flags.c_contiguous
        # new arrays, not views of the input
        assert not np.shares_memory(X, series) and not np.shares_memory(y, series)


def test_make_windows_keeps_float32_and_reads_lists():
    X, y = make_windows(np.arange(6, dtype=np.float32), 2)
    assert X.dtype == y.dtype == np.float32
    X, y = make_windows([1, 2, 3, 4], window=2)
    assert X.dtype == np.float64
    assert_array_equal(X[:, :, 0], [[1, 2], [2, 3]])
    assert_array_equal(y, [3, 4])  # 1-D: one step ahead of a univariate series
    assert make_windows([[1.0], [2.0], [3.0]], window=2)[1].shape == (1, 1, 1)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 2, 2)), "1-D .* or 2-D"),
        ([[1.0, 2.0], [3.0]], "ragged"),
        (np.array([1.0, np.nan, 2.0, 3.0]), "NaN"),
        (np.arange(4.0), "at least 5 \\(window=3 \\+ horizon=2\\)"),
    ],
)
def test_make_windows_bad_series(bad, match):
    with pytest.raises(ValueError, match=match):
        make_windows(bad, window=3, horizon=2)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(window=0),
        dict(window=2, horizon=0),
        dict(window=2, stride=0),
        dict(window=2.5),
        dict(window=True),
    ],
)
def test_make_windows_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be an int >= 1"):
        make_windows(np.arange(10.0), **kwargs)


def test_lag_windows_transformer(rng):
    series = rng.normal(size=(50, 2))
    lags = LagWindows(window=6, horizon=2, stride=3).fit(series)
    assert lags.n_features_in_ == 2
    X, y = lags.make_xy(series)
    assert_array_equal(X, make_windows(series, 6, 2, 3)[0])
    assert_array_equal(y, make_windows(series, 6, 2, 3)[1])
    W = lags.transform(series)
    # every input window, the last one ending with the last observation
    assert W.shape == ((50 - 6) // 3 + 1, 6, 2)
    assert_array_equal(W[-1], series[-6:])
    assert_array_equal(W[-2], series[-9:-3])
    assert_array_equal(lags.fit_transform(series), W)
    with pytest.raises(ValueError, match="fitted on 2"):
        lags.transform(series[:, 0])
    with pytest.raises(ValueError, match="window"):
        LagWindows(window=0).fit(series)
    with pytest.raises(ValueError, match="not fitted"):
        LagWindows().transform(series)
    assert clone(lags).get_params() == {"window": 6, "horizon": 2, "stride": 3}


# --------------------------------------------------------------------------------------
# forecasts
# --------------------------------------------------------------------------------------
class Shift:
    """A fake 'model' predicting the next k values as last value + 1, + 2, ..., k; it
    records what it was given."""

    def __init__(self, k=1, three_d=False):
        self.k, self.three_d, self.seen = k, three_d, []

    def predict(self, X):
        self.seen.append(np.array(X))
        last = X[:, -1, 0] if X.ndim == 3 else X[:, -1]
        return last[:, None] + np.arange(1, self.k + 1)

    def __sklearn_tags__(self):
        from sklearn.utils import Tags

        tags = Tags(
            estimator_type="regressor", target_tags=None, transformer_tags=None, regressor_tags=None
        )
        tags.input_tags.three_d_array = self.three_d
        return tags


def test_recursive_forecast_feeds_predictions_back():
    history = np.arange(10.0)
    model = Shift(k=1)
    fc = forecast(model, history, steps=4, window=3)
    assert_array_equal(fc, [10, 11, 12, 13])
    # each call saw the latest window, predictions included, flattened (no 3-D tag)
    assert_array_equal(
        np.concatenate(model.seen), [[7, 8, 9], [8, 9, 10], [9, 10, 11], [10, 11, 12]]
    )
    # a 3-step model advances 3 steps per call
    model = Shift(k=3, three_d=True)
    assert_array_equal(forecast(model, history, steps=5, window=2), [10, 11, 12, 13, 14])
    assert [s.shape for s in model.seen] == [(1, 2, 1), (1, 2, 1)]
    assert_array_equal(history, np.arange(10.0))  # not modified


def test_direct_forecast():
    model = Shift(k=4)
    assert_array_equal(forecast(model, np.arange(5.0), 3, window=2, method="direct"), [5, 6, 7])
    assert len(model.seen) == 1
    with pytest.raises(ValueError, match="at least steps=5 observations at once"):
        forecast(model, np.arange(5.0), 5, window=2, method="direct")
    with pytest.raises(ValueError, match="method"):
        forecast(model, np.arange(5.0), 2, window=2, method="magic")
    with pytest.raises(ValueError, match="fewer than window=6"):
        forecast(model, np.arange(5.0), 2, window=6)


def test_forecast_reads_the_window_from_the_model(rng):
    series = np.sin(np.arange(120) * 0.3)
    X, y = make_windows(series, window=7)
    lin = LinearRegression().fit(X.reshape(len(X), -1), y)
    fc = forecast(lin, series, steps=5)  # window = n_features_in_ = 7
    assert fc.shape == (5,)
    assert_allclose(fc, np.sin(np.arange(120, 125) * 0.3), atol=1e-8)
    # multivariate: both variables forecast, model inputs flattened (window * 2)
    both = np.c_[series, np.cos(np.arange(120) * 0.3)]
    X2, y2 = make_windows(both, window=5)
    lin2 = LinearRegression().fit(X2.reshape(len(X2), -1), y2.reshape(len(y2), -1))
    fc2 = forecast(lin2, both, steps=6)
    assert fc2.shape == (6, 2)
    t = np.arange(120, 126) * 0.3
    assert_allclose(fc2, np.c_[np.sin(t), np.cos(t)], atol=1e-8)
    with pytest.raises(ValueError, match="not a multiple"):
        forecast(lin, both, steps=2)


def test_recursive_and_direct_forecasts_with_an_rnn():
    t = np.arange(260)
    series = np.sin(2 * np.pi * t / 16)
    X1, y1 = make_windows(series[:200], window=16)
    one = RNNRegressor(
        cell="lstm", hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01, random_state=0
    ).fit(X1, y1)
    X8, y8 = make_windows(series[:200], window=16, horizon=8)
    eight = RNNRegressor(
        cell="lstm", hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01, random_state=0
    ).fit(X8, y8)
    truth = series[200:208]
    rec = forecast(one, series[:200], steps=8)  # window read from n_features_in_ (16)
    direct = forecast(eight, series[:200], steps=8, method="direct")
    naive = np.full(8, series[199])
    rmse = {
        k: np.sqrt(np.mean((v - truth) ** 2))
        for k, v in [("rec", rec), ("direct", direct), ("naive", naive)]
    }
    assert rmse["rec"] < 0.3 * rmse["naive"], rmse
    assert rmse["direct"] < 0.3 * rmse["naive"], rmse


def test_time_series_split_on_windows_and_on_the_series():
    """Both ways of evaluating in time order with TimeSeriesSplit."""
    t = np.arange(300)
    series = np.sin(2 * np.pi * t / 12) + 0.01 * t
    # (1) windows as samples; gap = horizon - 1 keeps training targets out of test targets
    horizon = 3
    X, y = make_windows(series, window=12, horizon=horizon)
    cv = TimeSeriesSplit(n_splits=3, gap=horizon - 1)
    for train, test in cv.split(X):
        last_train_target = train[-1] + 12 + horizon - 1  # series index
        first_test_target = test[0] + 12
        assert last_train_target < first_test_target
    pipe = make_pipeline(
        StandardScaler(),
        MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300, random_state=0),
    )
    scores = cross_val_score(pipe, X.reshape(len(X), -1), y, cv=cv)
    assert scores.shape == (3,) and np.all(scores > 0.5), scores
    # (2) the series split by time; each test block forecast from its own history
    errors = []
    for train, test in TimeSeriesSplit(n_splits=3, test_size=12).split(series):
        assert train[-1] + 1 == test[0]
        Xtr, ytr = make_windows(series[train], window=12)
        model = Ridge(alpha=1e-3).fit(Xtr[:, :, 0], ytr)
        pred = forecast(model, series[train], steps=len(test))
        errors.append(np.sqrt(np.mean((pred - series[test]) ** 2)))
        naive = np.sqrt(np.mean((series[train][-1] - series[test]) ** 2))
        assert errors[-1] < 0.2 * naive
    assert len(errors) == 3


# --------------------------------------------------------------------------------------
# the shipped series
# --------------------------------------------------------------------------------------
def test_load_co2():
    data = load_co2()
    assert data.co2.shape == data.months.shape == data.n_weeks.shape == (526,)
    assert data.co2.dtype == np.float64 and data.months.dtype == np.dtype("datetime64[M]")
    assert str(data.months[0]) == "1958-03" and str(data.months[-1]) == "2001-12"
    assert np.all(np.diff(data.months) == np.timedelta64(1, "M"))  # consecutive
    assert np.isfinite(data.co2).all()
    assert 310 < data.co2.min() and data.co2.max() < 375
    # five interpolated months, where no weekly value exists
    gaps = [str(m) for m in data.months[data.n_weeks == 0]]
    assert gaps == ["1958-06", "1958-10", "1964-02", "1964-03", "1964-04"]
    assert data.n_weeks.sum() == 2225  # every weekly value of the source, once
    for name in ("Scripps", "CDIAC", "public domain", "statsmodels", "resample"):
        assert name in data.DESCR
    months, co2 = load_co2(return_X_y=True)
    assert_array_equal(co2, data.co2)
    assert_array_equal(months, data.months)


def test_co2_matches_its_documented_derivation():
    """Recompute the monthly means from statsmodels' weekly data, as the CSV says."""
    sm_co2 = pytest.importorskip("statsmodels.datasets.co2")
    weekly = sm_co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate(method="linear")
    counts = weekly.resample("MS").count()
    data = load_co2()
    assert_allclose(data.co2, monthly.to_numpy(), atol=5e-4)
    assert_array_equal(data.n_weeks, counts.to_numpy())
    assert_array_equal(data.months, monthly.index.to_numpy().astype("datetime64[M]"))
