"""
======================================================
Classifying waveforms by shape with recurrent networks
======================================================

Each sample is a noisy sequence of 40 steps drawn from one of four wave shapes (sine,
square, triangle, sawtooth) with a random period, phase, amplitude and offset. The
label is the shape. A recurrent network reads the sequence step by step; we compare the
three cells of :class:`sknet.RNNClassifier` (Elman RNN, LSTM, GRU) with an MLP that sees
the 40 values as one flat row.
"""

# %%
# The data
# --------
# Sequences of shape ``(n_samples, n_timesteps)`` are read by the recurrent estimators as
# univariate sequences; ``(n_samples, n_timesteps, n_features)`` works the same way for
# several features per step.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknet import MLPClassifier, RNNClassifier

SHAPES = ["sine", "square", "triangle", "sawtooth"]


def make_waves(n, n_steps=40, noise=0.2, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(SHAPES), n)
    period = rng.uniform(8, 20, (n, 1))
    phase = rng.uniform(0, 1, (n, 1))
    cycles = np.arange(n_steps) / period + phase  # position in the cycle
    frac = cycles % 1.0
    waves = np.stack(
        [
            np.sin(2 * np.pi * cycles),  # sine
            np.where(frac < 0.5, 1.0, -1.0),  # square
            4 * np.abs(frac - 0.5) - 1,  # triangle
            2 * frac - 1,  # sawtooth
        ]
    )
    X = waves[y, np.arange(n)] + rng.normal(0, noise, (n, n_steps))
    return X * rng.uniform(0.5, 2.0, (n, 1)) + rng.normal(0, 0.5, (n, 1)), y


X, y = make_waves(2000)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
print(f"train {X_train.shape}, test {X_test.shape}")

# %%
# Four classifiers
# ----------------
# Each sequence is standardised on its own (amplitude and offset say nothing about the
# shape), then the networks train with Adam and early stopping.
X_train = (X_train - X_train.mean(1, keepdims=True)) / X_train.std(1, keepdims=True)
X_test = (X_test - X_test.mean(1, keepdims=True)) / X_test.std(1, keepdims=True)
settings = dict(
    learning_rate_init=0.01, max_iter=60, early_stopping=True, n_iter_no_change=8, random_state=0
)
models = {
    "Elman RNN": RNNClassifier(cell="rnn", hidden_layer_sizes=(24,), **settings),
    "LSTM": RNNClassifier(cell="lstm", hidden_layer_sizes=(24,), **settings),
    "GRU": RNNClassifier(cell="gru", hidden_layer_sizes=(24,), **settings),
    "MLP": make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), **settings)),
}
accuracy = {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    accuracy[name] = model.score(X_test, y_test)
    epochs = (model[-1] if name == "MLP" else model).n_iter_
    print(
        f"{name:10s} test accuracy {accuracy[name]:.3f}  ({epochs} epochs, "
        f"{time.perf_counter() - start:.1f} s)"
    )

# %%
# Examples, accuracies and the best model's confusions
# ----------------------------------------------------
best = max(("Elman RNN", "LSTM", "GRU"), key=accuracy.get)
fig = plt.figure(figsize=(12, 7), layout="constrained")
top = fig.subfigures(2, 1)
axes = top[0].subplots(1, 4, sharey=True)
for k, ax in enumerate(axes):
    for row in X_test[y_test == k][:3]:
        ax.plot(row, lw=1)
    ax.set_title(SHAPES[k])
    ax.set_xlabel("time step")
axes[0].set_ylabel("standardised value")
ax_bar, ax_cm = top[1].subplots(1, 2)
names = list(accuracy)
ax_bar.barh(names, [accuracy[n] for n in names], color=["C1", "C3", "C2", "C4"])
for i, n in enumerate(names):
    ax_bar.text(accuracy[n] - 0.01, i, f"{accuracy[n]:.3f}", va="center", ha="right", color="w")
ax_bar.set_xlim(0, 1)
ax_bar.set_xlabel("test accuracy")
ConfusionMatrixDisplay.from_estimator(
    models[best], X_test, y_test, display_labels=SHAPES, ax=ax_cm, colorbar=False
)
ax_cm.set_title(f"{best}: confusions on the test set")
plt.show()
