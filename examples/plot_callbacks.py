"""
==============================================================
Callbacks: a learning-rate schedule and early stopping on F1
==============================================================

sknet's estimators follow scikit-learn's callback protocol: ``set_callbacks`` attaches
objects that the training loop calls at every epoch. :mod:`sknet.callbacks` has the
ones skorch and Keras users look for first; here a warm-up followed by cosine annealing
with warm restarts sets the learning rate of every epoch, and early stopping watches
the macro-averaged F1 score on a validation set, stops once it has not improved for
ten epochs and puts back the weights of the best epoch.
"""

# %%
# The schedule
# ------------
# A schedule is a formula of the epoch, applied to ``learning_rate_init``; its
# ``learning_rate`` method evaluates it, so it can be plotted before training. Three
# epochs of linear warm-up lead into cycles of cosine annealing that double in length.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sknet import MLPClassifier, TrainingHistoryDisplay
from sknet.callbacks import CosineAnnealingWarmRestarts, EarlyStopping, LinearWarmup

schedule = LinearWarmup(
    3, start_factor=0.1, after=CosineAnnealingWarmRestarts(T_0=5, T_mult=2, eta_min=1e-4)
)
epochs = np.arange(60)
fig, ax = plt.subplots(figsize=(6, 2.5), layout="constrained")
ax.plot(epochs + 1, [schedule.learning_rate(e, 0.01) for e in epochs])
ax.set_xlabel("epoch")
ax.set_ylabel("learning rate")
ax.set_title("warm-up, then cosine annealing with warm restarts")
plt.show()

# %%
# Training with the callbacks
# ---------------------------
# The validation set is ours, not a random part of the training data, and the score is
# any scikit-learn scorer: here ``"f1_macro"``.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16, y, test_size=0.25, stratify=y, random_state=0
)
X_train, X_val, y_train, y_val = train_test_split(
    X_train, y_train, test_size=0.2, stratify=y_train, random_state=0
)
stop = EarlyStopping("f1_macro", validation_data=(X_val, y_val), patience=10)
clf = MLPClassifier(
    hidden_layer_sizes=(64,), learning_rate_init=0.01, max_iter=200, random_state=0
).set_callbacks(schedule, stop)
clf.fit(X_train, y_train)
print(
    f"stopped after {clf.n_iter_} epochs; kept the weights of epoch {clf.best_iteration_} "
    f"(validation F1 {stop.best_score(clf):.3f}); test accuracy {clf.score(X_test, y_test):.3f}"
)

# %%
# The history
# -----------
# :class:`~sknet.TrainingHistoryDisplay` marks the epoch whose weights the model kept
# (the F1 scores are the callback's, not a curve of the estimator, so only the
# training loss is drawn). On a log scale the schedule shows: the loss falls slowly at
# the end of each cycle, where the learning rate nears ``eta_min``, and faster again
# after each warm restart (at epochs 9 and 19).
disp = TrainingHistoryDisplay.from_estimator(clf)
disp.ax_.set_yscale("log")
plt.show()
