"""
=====================================================
Fine-tuning the shipped MNIST ConvNet on a few digits
=====================================================

:class:`sknet.FineTuner` starts a new network from a fitted one's weights, puts a new
output layer on top and trains it with the first layers frozen -- or with everything
trainable. Here the pretrained model is ``mnist_convnet`` (shipped in
:mod:`sknet.pretrained`, trained on real MNIST digits) and the new task is scikit-learn's
8x8 digits, brought to MNIST's 28x28 format, with only 20 labelled images per class.

Four ways of training the same architecture on those 200 images are compared, epoch by
epoch:

* **last layer only** -- the convolutions and the dense layer stay exactly as trained
  on MNIST; only a new output layer is learned ("retrain the classifier at the end");
* **whole network, lower learning rate** -- every weight starts from MNIST (the output
  layer is new) and is trained, at a learning rate three times below the default, so
  that the pretrained features are adjusted rather than overwritten;
* **last layer, then whole network** -- the two in sequence: a few epochs on the output
  layer alone, then everything at the lower learning rate;
* **from scratch** -- the same network, randomly initialised, default learning rate.
"""

# %%
# The data, in MNIST's format
# ---------------------------
# MNIST's digits were size-normalised to fit 20x20 pixels and centred by their centre
# of mass in 28x28 images; the 8x8 digits are upsampled and placed the same way (as in
# the example "Pretrained MNIST features for a few labelled digits").
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from sknet import ConvNetClassifier, FineTuner, pretrained

start = time.perf_counter()
warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch per call, on purpose


def to_mnist_format(images):
    """8x8 grey levels 0-16 -> (n, 1, 28, 28) float32 in [0, 1], placed like MNIST."""
    out = np.zeros((len(images), 1, 28, 28), dtype=np.float32)
    for i, img in enumerate(images / 16.0):
        big = np.clip(ndimage.zoom(img, 4, order=3), 0, 1)  # 32x32
        rows = np.flatnonzero(big.max(axis=1) > 0.05)
        cols = np.flatnonzero(big.max(axis=0) > 0.05)
        box = big[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        box = np.clip(ndimage.zoom(box, 20.0 / max(box.shape), order=1), 0, 1)
        h, w = box.shape
        canvas = np.zeros((28, 28), dtype=np.float32)
        canvas[(28 - h) // 2 : (28 - h) // 2 + h, (28 - w) // 2 : (28 - w) // 2 + w] = box
        cy, cx = ndimage.center_of_mass(canvas)
        out[i, 0] = ndimage.shift(canvas, (13.5 - cy, 13.5 - cx), order=1)
    return out


digits = load_digits()
X, y = to_mnist_format(digits.images), digits.target
labels_per_class = 20
n_draws = 3


def draw_labelled(draw):
    """Indices of ``labels_per_class`` random images per class, and of all the others."""
    rng = np.random.RandomState(draw)
    train = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), labels_per_class, replace=False) for c in range(10)]
    )
    return train, np.setdiff1d(np.arange(len(y)), train)


source = pretrained.load("mnist_convnet")
print(
    f"pretrained: mnist_convnet, held-out MNIST accuracy "
    f"{pretrained.info('mnist_convnet')['test_accuracy']:.4f}; on all the 8x8 digits "
    f"as it is: {source.score(X, y):.3f}"
)
print(
    f"{labels_per_class} labelled images per class ({10 * labels_per_class} in all), "
    f"the other {len(y) - 10 * labels_per_class} for testing; {n_draws} random draws"
)

# %%
# Four strategies, one epoch at a time
# ------------------------------------
# ``FineTuner`` takes the pretrained model (here by its name, or a fitted estimator) and
# an unfitted estimator for the new task that carries the architecture -- identical
# below the output layer -- and the training hyperparameters. Every estimator below is
# fitted for one epoch (``max_iter=1``) and continued with ``partial_fit``, which keeps
# frozen layers frozen, so that the test accuracy can be recorded along the way. A
# strategy is a list of stages; the two-stage one fine-tunes the result of the first
# stage (``replace_output=False`` keeps its trained output layer).
#
# The seeds differ from the pretrained model's ``random_state=0``: with the same seed,
# the new output layer would start from the very weights the MNIST model started from,
# which its features were trained against -- a head start no real new task gets.
architecture = {
    k: v
    for k, v in source.get_params().items()
    if k
    in (
        "conv_filters",
        "kernel_size",
        "padding",
        "strides",
        "activation",
        "pool",
        "pool_size",
        "hidden_layer_sizes",
        "alpha",
    )
}


def new_network(learning_rate, seed):
    """The architecture, small batches (few images), a fresh shuffle at every epoch."""
    return ConvNetClassifier(
        **architecture,
        learning_rate_init=learning_rate,
        batch_size=20,
        max_iter=1,
        random_state=np.random.RandomState(seed),
    )


def last_layer(previous, seed):
    # a new output layer on fixed features: a large step is safe
    return FineTuner("mnist_convnet", new_network(1e-2, seed), trainable_layers=1)


def whole_network(previous, seed):
    return FineTuner("mnist_convnet", new_network(3e-4, seed), trainable_layers="all")


def then_whole_network(previous, seed):
    return FineTuner(
        previous, new_network(3e-4, seed), trainable_layers="all", replace_output=False
    )


def from_scratch(previous, seed):
    return new_network(1e-3, seed)


epochs, warmup = 50, 5
strategies = {
    "last layer only": [(epochs, last_layer)],
    "whole network, lr 3e-4": [(epochs, whole_network)],
    f"last layer ({warmup} epochs), then whole": [
        (warmup, last_layer),
        (epochs - warmup, then_whole_network),
    ],
    "from scratch, lr 1e-3": [(epochs, from_scratch)],
}
checkpoints = [1, 2, 3, 5, 8, 12, 20, 30, 50]
curves = {name: np.zeros((n_draws, len(checkpoints))) for name in strategies}
seconds = dict.fromkeys(strategies, 0.0)
for draw in range(n_draws):
    train, test = draw_labelled(draw)
    seed = draw + 1
    fitted = {}  # strategy -> last FineTuner (or estimator) fitted, for the next section
    for name, stages in strategies.items():
        model, epoch = None, 0
        tic = time.perf_counter()
        for n_epochs, make in stages:
            for k in range(n_epochs):
                epoch += 1
                if k == 0:  # a new stage starts from the previous stage's model
                    fitted[name] = make(model, seed).fit(X[train], y[train])
                    model = getattr(fitted[name], "estimator_", fitted[name])
                else:
                    model.partial_fit(X[train], y[train])
                if epoch in checkpoints:
                    seconds[name] += time.perf_counter() - tic  # training time only
                    curves[name][draw, checkpoints.index(epoch)] = model.score(X[test], y[test])
                    tic = time.perf_counter()
        seconds[name] += time.perf_counter() - tic

print(
    f"\nmean test accuracy over {n_draws} draws after 5, 20 and {epochs} epochs "
    f"(training time, rough):"
)
columns = [checkpoints.index(e) for e in (5, 20, epochs)]
for name, acc in curves.items():
    mean, std = acc.mean(0), acc.std(0)
    print(
        f"  {name:34s} "
        + "   ".join(f"{mean[c]:.3f} +- {std[c]:.3f}" for c in columns)
        + f"   ({seconds[name]:.1f} s)"
    )

# %%
# Frozen means frozen
# -------------------
# In the networks of the last draw, the layers below ``first_trainable_layer_`` are
# bit-identical to the pretrained ones after all epochs; with everything trainable at a
# low learning rate the weights move, but stay close to where they started.
names = [type(layer).__name__ for layer in source.network_.layers]
weighted = source.network_.parametrized_layers()
change = {}
for name in list(strategies)[:3]:
    tuned = fitted[name].estimator_
    first = fitted[name].first_trainable_layer_
    frozen = [i for i in weighted if i < first]
    same = all(
        np.array_equal(tuned.network_.params[i][k], source.network_.params[i][k])
        for i in frozen
        for k in source.network_.params[i]
    )
    print(
        f"{name:34s} trained layers {first} to {len(names) - 1}; "
        + (f"frozen layers {frozen} bit-identical: {same}" if frozen else "nothing frozen")
    )
    change[name] = [
        np.linalg.norm(tuned.network_.params[i]["W"] - source.network_.params[i]["W"])
        / np.linalg.norm(source.network_.params[i]["W"])
        for i in weighted[:-1]
    ]

# %%
# Learning curves
# ---------------
# Test accuracy after each number of epochs (mean and spread over the draws), all of
# them on the left, the last ones enlarged on the right. The dotted line marks the end
# of the two-stage strategy's first stage.
styles = {
    "last layer only": ("o", "-"),
    "whole network, lr 3e-4": ("s", "-"),
    f"last layer ({warmup} epochs), then whole": ("d", "--"),
    "from scratch, lr 1e-3": ("^", "-"),
}
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, first in zip(axes, (0, checkpoints.index(8))):
    for name, acc in curves.items():
        marker, ls = styles[name]
        ax.errorbar(
            checkpoints[first:],
            acc.mean(0)[first:],
            yerr=acc.std(0)[first:],
            marker=marker,
            ls=ls,
            markersize=4,
            capsize=2,
            label=name,
        )
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xlabel("epochs")
    ax.grid(alpha=0.3)
axes[0].axvline(warmup + 0.5, color="grey", lw=0.8, ls=":")
axes[0].set_xticks([1, 2, 5, 10, 20, 50], ["1", "2", "5", "10", "20", "50"])
axes[0].set_ylim(0.0, 1.0)
axes[0].set_ylabel("test accuracy")
axes[0].set_title(f"{labels_per_class} labels per class, mean of {n_draws} draws")
axes[0].legend(fontsize=8, loc="lower right")
axes[1].set_xticks([8, 12, 20, 30, 50], ["8", "12", "20", "30", "50"])
axes[1].set_xlim(7, 57)
axes[1].set_ylim(0.85, 0.98)
axes[1].set_title("the last epochs, enlarged")
fig.tight_layout()

# %%
# How far the pretrained weights moved: the norm of the change of each layer's weight
# tensor relative to its pretrained norm, in the last draw's networks. Layers trained
# with the lower learning rate move, the dense layer the most; frozen ones not at all.
fig, ax = plt.subplots(figsize=(6, 3.5))
labels = [f"{names[i]} (layer {i})" for i in weighted[:-1]]
pos = np.arange(len(labels))
for k, (name, values) in enumerate(change.items()):
    bars = ax.bar(pos + (k - 1) * 0.27, values, width=0.27, label=name)
    ax.bar_label(
        bars,
        labels=["frozen" if v == 0 else "" for v in values],
        fontsize=7,
        rotation=90,
        padding=2,
    )
ax.set_xticks(pos, labels, fontsize=8)
ax.set_ylabel(r"$\|W - W_0\| \,/\, \|W_0\|$")
ax.set_title("relative change of the pretrained weights")
ax.legend(fontsize=8)
fig.tight_layout()
print(f"\nran in {time.perf_counter() - start:.0f} s")

# %%
# What the figures say
# --------------------
# With 20 labels per class, every strategy that starts from the MNIST weights ends
# above the network trained from scratch, and the order is the usual one:
#
# * Retraining the **last layer only** is the fastest by far -- within five epochs it
#   is where training from scratch gets after about fifteen -- and the cheapest per
#   epoch, since no gradient flows into the frozen layers. Its features are fixed, so
#   it levels off early.
# * Training the **whole network** at a lower learning rate from a new, random output
#   layer starts *slower than training from scratch*: at that learning rate the new
#   output layer takes many epochs to become useful, and until it is, its random
#   gradients push the pretrained features around. It passes training from scratch
#   only after twenty to thirty epochs and ends about level with the last-layer-only
#   model, having moved the convolutions by roughly a tenth and the dense layer by
#   roughly a third of their norms.
# * Training the output layer **first** and then everything at the lower learning
#   rate combines the two: the fast start of the first, and the adapted features of the
#   second; it ends highest. ``FineTuner`` does this in two calls, the second taking
#   the first stage's fitted estimator as ``pretrained`` with ``replace_output=False``.
#
# The differences between the three fine-tuned variants at the end (about 0.01) are
# about the size of the spread over draws; their gap to training from scratch is not.
# The example "Pretrained MNIST features for a few labelled digits" compares frozen
# features with training from scratch for 5, 10 and 20 labels per class.
plt.show()
