"""
============================================
Training history: loss and validation curves
============================================

A network trained with a stochastic solver ('adam' or 'sgd') records its training loss
after every epoch in ``loss_curve_``; with ``early_stopping=True`` it also records the
score and the loss on a held-out validation set. :class:`sknet.TrainingHistoryDisplay`
plots them.

We train the same small network on the digits with three learning rates and compare
their histories: too small a rate learns slowly, a moderate one learns quickly, and
too large a rate makes the loss noisy. Early stopping ends each run once the validation
score has stopped improving, and restores the weights of the best epoch.
"""

# %%
# The data and the network
# ------------------------
# Pixel intensities are scaled to [0, 1]. ``summary`` shows the layers before training:
# the output layer's size is the number of classes, given here as ``n_outputs``.
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sknet import MLPClassifier, TrainingHistoryDisplay

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16, y, test_size=0.25, stratify=y, random_state=0
)
print(MLPClassifier(hidden_layer_sizes=(64,)).summary(input_shape=(64,), n_outputs=10))

# %%
# Three learning rates
# --------------------
# Each run stops by itself once its validation accuracy has not improved for 8 epochs.
# (Pass ``verbose="progress"`` to follow a run: a progress bar in a terminal, one line per epoch
# in a log.)
rates = [1e-3, 1e-2, 1e-1]
models = {}
for rate in rates:
    clf = MLPClassifier(
        hidden_layer_sizes=(64,),
        learning_rate_init=rate,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=8,
        max_iter=150,
        random_state=0,
    )
    models[rate] = clf.fit(X_train, y_train)
    print(
        f"learning_rate_init={rate:g}: {clf.n_iter_} epochs, best validation "
        f"accuracy {clf.best_validation_score_:.3f}, test accuracy "
        f"{clf.score(X_test, y_test):.3f}"
    )

# %%
# The histories side by side
# --------------------------
# Each panel shows the training loss and the validation loss (left axis) and the
# validation accuracy (right axis) of one run.
fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True, layout="constrained")
for ax, rate in zip(axes, rates):
    disp = TrainingHistoryDisplay.from_estimator(
        models[rate], ax=ax, name=f"learning_rate_init={rate:g}"
    )
    disp.score_ax_.set_ylim(0.0, 1.02)
plt.show()

# %%
# With the smallest rate the losses fall slowly and the validation accuracy creeps up;
# early stopping ends the run while the network is still behind the others. The
# largest rate gets there in a handful of epochs, but its training loss drops far
# below its validation loss: it fits the training set more tightly than it
# generalises. The middle rate learns almost as fast, keeps the two losses closer and
# reaches the best validation accuracy: a sensible place to start a finer search.
