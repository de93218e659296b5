"""
========================================================
Forecasting atmospheric CO2 with LSTM, GRU and Elman RNN
========================================================

Monthly mean CO2 at Mauna Loa, March 1958 to December 2001, ships with sknet
(:func:`sknet.datasets.load_co2`, public domain, from the Scripps CO2 program via
CDIAC and statsmodels). The series has a rising trend and a yearly cycle of a few ppmv.

We hold out the last ten years, train on the rest and forecast the held-out months.
Three recurrent networks (:class:`sknet.RNNRegressor` with ``cell='lstm'``, ``'gru'``
and ``'rnn'``) are compared with an MLP (:class:`sknet.MLPRegressor`) that sees the same
windows flattened, with the naive forecast "next month = this month", and with a
seasonal naive forecast "this month's change = the same month's change a year ago".
"""

# %%
# The series and the held-out tail
# --------------------------------
# Networks learn the *changes* from one month to the next better than the levels: the
# levels keep rising beyond anything seen in training, while the changes repeat a yearly
# pattern. We difference the series, scale the changes by their training standard
# deviation, and cut them into windows of 24 months, each labelled with the next change.
import time

import matplotlib.pyplot as plt
import numpy as np

from sknet import MLPRegressor, RNNRegressor
from sknet.datasets import load_co2
from sknet.timeseries import forecast, make_windows

data = load_co2()
co2, months = data.co2, data.months
n_test = 120  # the last ten years
split = len(co2) - n_test  # co2[:split] is the training history
print(f"{len(co2)} months, {months[0]} to {months[-1]}; test from {months[split]}")

window = 24
changes = np.diff(co2)  # changes[i] = co2[i + 1] - co2[i]
scale = changes[: split - 1].std()
X, y = make_windows(changes / scale, window)  # y[k] = changes[k + window] / scale
target = np.arange(len(y)) + window + 1  # the index in co2 of the month each y ends at
train, test = target < split, target >= split
print(f"windows: {X.shape}, {train.sum()} for training, {test.sum()} for testing")

# %%
# Five forecasters
# ----------------
# Every network forecasts the next change from the 24 changes before it; a forecast of
# the level is the last observed level plus the predicted change. Early stopping holds
# out the most recent 15% of the training windows (``validation_split='last'``: a
# random 15% would sit between training windows that overlap them, and score
# optimistically) and keeps the best epoch.
settings = dict(
    hidden_layer_sizes=(32,),
    learning_rate_init=0.005,
    max_iter=150,
    early_stopping=True,
    validation_fraction=0.15,
    validation_split="last",
    n_iter_no_change=15,
    random_state=0,
)
models = {
    "LSTM": RNNRegressor(cell="lstm", **settings),
    "GRU": RNNRegressor(cell="gru", **settings),
    "Elman RNN": RNNRegressor(cell="rnn", **settings),
    "MLP": MLPRegressor(**settings),
}

last = co2[target[test] - 1]  # the level the month before each test month
truth = co2[target[test]]
one_step = {
    "naive (last value)": last,
    "seasonal naive": last + changes[target[test] - 13],
}
for name, model in models.items():
    inputs = X if name != "MLP" else X[:, :, 0]  # the MLP sees the window as a flat row
    start = time.perf_counter()
    model.fit(inputs[train], y[train])
    one_step[name] = last + scale * model.predict(inputs[test])
    print(f"{name:10s} {model.n_iter_:4d} epochs, {time.perf_counter() - start:5.1f} s")


def rmse(pred):
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


# %%
# One-step-ahead errors on the held-out tail
# ------------------------------------------
# Each test month is forecast from the observed months before it.
print("\n| model | RMSE one month ahead (ppmv) |\n|---|---|")
for name, pred in one_step.items():
    print(f"| {name} | {rmse(pred):.3f} |")
best = min(("LSTM", "GRU", "Elman RNN"), key=lambda k: rmse(one_step[k]))
print(
    f"\nbest recurrent model: {best}, {rmse(one_step[best]):.3f} ppmv, against "
    f"{rmse(one_step['naive (last value)']):.3f} for the naive forecast"
)

# %%
# Ten years ahead, recursively
# ----------------------------
# :func:`sknet.timeseries.forecast` feeds each predicted change back as if observed, so
# the best recurrent model forecasts all 120 test months from the training history
# alone. Errors compound over such a horizon; the naive forecast is now a flat line.
history = changes[: split - 1] / scale
path = co2[split - 1] + scale * np.cumsum(forecast(models[best], history, steps=n_test))
flat = np.full(n_test, co2[split - 1])
print(
    f"recursive, 1-120 months ahead: {best} RMSE {rmse(path):.2f} ppmv, naive {rmse(flat):.2f} ppmv"
)

# %%
# Forecasts against the truth
# ---------------------------
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), layout="constrained")
t = months.astype("datetime64[D]")
ax1.plot(t[:split], co2[:split], color="0.6", lw=1, label="training history")
ax1.plot(t[split:], co2[split:], color="k", lw=1.2, label="held-out truth")
ax1.plot(t[split:], path, color="C3", lw=1.5, label=f"{best}, recursive from {months[split]}")
ax1.plot(t[split:], flat, color="C0", ls="--", lw=1, label="naive (last value)")
ax1.set_ylabel("CO2 (ppmv)")
ax1.set_title("Monthly mean CO2 at Mauna Loa")
ax1.legend(loc="upper left")

ax2.plot(t[split:], truth, color="k", lw=1.5, label="truth")
for name, color in [
    ("LSTM", "C3"),
    ("GRU", "C2"),
    ("Elman RNN", "C1"),
    ("MLP", "C4"),
    ("naive (last value)", "C0"),
]:
    ax2.plot(
        t[split:],
        one_step[name],
        color=color,
        lw=1,
        ls="--" if name.startswith("naive") else "-",
        label=f"{name} (RMSE {rmse(one_step[name]):.2f})",
    )
ax2.set_ylabel("CO2 (ppmv)")
ax2.set_title("One month ahead on the held-out tail")
ax2.legend(loc="upper left", fontsize=8)
plt.show()
