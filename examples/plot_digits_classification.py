"""
===========================================================
Recognising hand-written digits: sknet next to scikit-learn
===========================================================

:class:`sknet.MLPClassifier` takes the same hyperparameters as
:class:`sklearn.neural_network.MLPClassifier`; only the import changes. Here both train the
same network (one hidden layer of 128 ReLU units, Adam, 50 epochs) on scikit-learn's 8x8
digits, and we compare their test accuracy, their fit time and their training losses.

The digits ship with scikit-learn, so this runs offline in well under a minute.
"""

# %%
# The data
# --------
# 1,797 grey-level images of 8x8 pixels, values 0-16. We scale them to [0, 1] and hold out
# a stratified quarter for testing.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

from sknet import MLPClassifier

digits = load_digits()
X = digits.data / 16.0
X_train, X_test, y_train, y_test, img_train, img_test = train_test_split(
    X, digits.target, digits.images, test_size=0.25, stratify=digits.target, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test digits, {X.shape[1]} pixels each")

# %%
# Compiling the kernels
# ---------------------
# sknet's forward and backward passes are numba kernels. The first fit in a fresh
# environment compiles them (a few seconds); the machine code is cached on disk, so later
# runs only load it. A one-epoch fit on a few digits does that here, so that the timings
# below measure training alone.
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    MLPClassifier(hidden_layer_sizes=(128,), max_iter=1).fit(X_train[:50], y_train[:50])
print(f"sknet kernels compiled or loaded from the cache in {time.perf_counter() - start:.1f} s")

# %%
# Training both
# -------------
# The same hyperparameters go to both classes. 50 epochs is a fixed budget chosen for
# this example, so the "not converged" warning both would raise is silenced.
params = dict(
    hidden_layer_sizes=(128,), solver="adam", learning_rate_init=3e-3, max_iter=50, random_state=0
)
models = {"sknet": MLPClassifier(**params), "scikit-learn": SklearnMLPClassifier(**params)}
for name, clf in models.items():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    print(
        f"{name:>12}: test accuracy {clf.score(X_test, y_test):.4f}, "
        f"fit time {fit_time:.2f} s ({clf.n_iter_} epochs)"
    )

y_pred = models["sknet"].predict(X_test)
agree = np.mean(y_pred == models["scikit-learn"].predict(X_test))
print(f"the two models agree on {agree:.1%} of the test digits")

# %%
# Training losses
# ---------------
# With the same seed, sknet draws the same initial weights and the same mini-batches as
# scikit-learn, so the two loss curves lie on top of each other: the differences are
# floating-point rounding.
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
for (name, clf), style in zip(models.items(), ["-", "--"]):
    ax.plot(np.arange(1, clf.n_iter_ + 1), clf.loss_curve_, style, label=name)
ax.set(
    xlabel="epoch",
    ylabel="training loss (log loss + L2 penalty)",
    yscale="log",
    title="Digits, one hidden layer of 128 units",
)
ax.legend()

# %%
# Predictions on test digits
# --------------------------
# Every test digit that sknet gets wrong (in red, with the true label in brackets),
# followed by correctly classified ones to fill the grid.
wrong = np.flatnonzero(y_pred != y_test)
shown = np.concatenate([wrong, np.flatnonzero(y_pred == y_test)])[:24]
fig, axes = plt.subplots(3, 8, figsize=(8, 3.8), layout="constrained")
for ax, i in zip(axes.ravel(), shown):
    ax.imshow(img_test[i], cmap="gray_r", interpolation="nearest")
    if y_pred[i] == y_test[i]:
        ax.set_title(f"{y_pred[i]}", fontsize=10)
    else:
        ax.set_title(f"{y_pred[i]} ({y_test[i]})", color="tab:red", fontsize=10)
    ax.set_axis_off()
fig.suptitle(f"sknet predictions: {len(wrong)} mistakes in {len(y_test)} test digits")
plt.show()
