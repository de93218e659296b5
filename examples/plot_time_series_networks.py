"""
=========================================================================
Time-series classification: FCN, ResNet, a ConvNet and an MLP on GunPoint
=========================================================================

GunPoint is a two-class data set of the UCR time-series archive, shipped with sknet
(:func:`sknet.datasets.load_gunpoint`): the horizontal position of an actor's hand over
150 frames while drawing a replica gun or pointing a finger, 50 training and 150 test
series in the archive's own split. We fit four networks to the training series and
score them on the test series:

* the Fully Convolutional Network (FCN) and the residual network (ResNet) of Wang, Yan &
  Oates (2017), the two strongest networks of Fawaz et al.'s review of deep learning for
  time-series classification (2019), built with :func:`sknet.layers.fcn` and
  :func:`sknet.layers.resnet` and given to :class:`sknet.NetworkClassifier`;
* :class:`sknet.ConvNetClassifier`, sknet's plain convolution, pooling and dense stack;
* :class:`sknet.MLPClassifier`, which sees the 150 values as one flat row.

To run in seconds here, FCN and ResNet have a quarter of their published filters and
train for at most 100 epochs; the full-size networks with the published training
protocol are measured by ``benchmarks/ucr_accuracy.py`` (figures at the end).
"""

# %%
# The data
# --------
# :func:`~sknet.datasets.load_gunpoint` returns arrays of shape ``(n_series, 1, 150)``:
# one channel, channels first, as the convolutional estimators take them. The archive
# has already z-normalised each series (zero mean, unit variance).
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sknet import ConvNetClassifier, MLPClassifier, NetworkClassifier
from sknet.datasets import load_gunpoint
from sknet.layers import fcn, resnet

X_train, y_train = load_gunpoint(split="train", return_X_y=True)
X_test, y_test = load_gunpoint(split="test", return_X_y=True)
print(f"train {X_train.shape}, test {X_test.shape}, classes {np.unique(y_train)}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, label in zip(axes, ["1", "2"]):
    ax.plot(X_train[y_train == label, 0][:8].T, color="tab:blue", alpha=0.6)
    ax.set_title(f"class {label!r}: 8 training series")
    ax.set_xlabel("frame")
axes[0].set_ylabel("hand position (z-normalised)")
fig.tight_layout()

# %%
# Four classifiers
# ----------------
# One training protocol for all four: Adam at its default learning rate (1e-3) on
# mini-batches of 16 series for 60 epochs. An ``n_iter_no_change`` above the number of
# epochs of both fits below turns off the stop on a training-loss plateau (the noisy
# loss of small mini-batches triggers it early, and a warm start keeps counting).
#
# Then 20 more epochs at a tenth of the rate. sknet's Adam, like scikit-learn's, has no
# learning-rate schedule; Fawaz et al. halve the rate on plateaus down to 1e-4. Without
# that, the running statistics of batch normalization (which the fitted network
# predicts with) lag behind weights that still move, and the accuracy of FCN and ResNet
# swings from one epoch to the next. A second ``fit`` with ``warm_start=True`` continues
# from the fitted weights with a new learning rate.
#
# The MLP takes 2-D rows, so it gets ``X[:, 0]``; the others take the 3-D arrays (2-D
# rows would work too: a network that starts with a 1-D convolution reads them as
# one-channel signals).
settings = dict(batch_size=16, max_iter=60, n_iter_no_change=100, random_state=0)
models = {
    "FCN": NetworkClassifier(fcn(filters=(32, 64, 32)), **settings),
    "ResNet": NetworkClassifier(resnet(filters=(16, 32, 32)), **settings),
    "ConvNet": ConvNetClassifier(conv_filters=(16, 32), kernel_size=5, **settings),
    "MLP": MLPClassifier(hidden_layer_sizes=(100,), **settings),
}
warnings.filterwarnings("ignore", category=ConvergenceWarning)  # short fits, on purpose
accuracy, curves, phase_one = {}, {}, {}
for name, model in models.items():
    Xtr, Xte = (X_train[:, 0], X_test[:, 0]) if name == "MLP" else (X_train, X_test)
    start = time.perf_counter()
    model.fit(Xtr, y_train)
    phase_one[name] = model.n_iter_
    model.set_params(warm_start=True, learning_rate_init=1e-4, max_iter=20)
    model.fit(Xtr, y_train)
    accuracy[name] = model.score(Xte, y_test)
    curves[name] = model.loss_curve_  # both fits: warm starts extend the curve
    print(
        f"{name:8s} test accuracy {accuracy[name]:.3f}  ({phase_one[name]} + "
        f"{model.n_iter_} epochs, {time.perf_counter() - start:.1f} s)"
    )

# %%
# Test accuracy and training loss
# -------------------------------
# The convolutional networks pick up the shape of the movement wherever it happens in
# the series; the MLP weighs each frame on its own. The dots mark where the rate drops.
fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
names = list(models)
bars = ax_acc.bar(names, [100 * accuracy[n] for n in names], color="tab:blue")
ax_acc.bar_label(bars, fmt="%.1f")
ax_acc.set_ylim(50, 105)
ax_acc.set_ylabel("test accuracy (%)")
ax_acc.set_title("GunPoint, 150 test series")
for name in names:
    (line,) = ax_loss.plot(np.arange(1, len(curves[name]) + 1), curves[name], label=name)
    ax_loss.plot(phase_one[name], curves[name][phase_one[name] - 1], "o", color=line.get_color())
ax_loss.set_yscale("log")
ax_loss.set_xlabel("epoch")
ax_loss.set_ylabel("training loss")
ax_loss.set_title("training loss per epoch")
ax_loss.legend()
fig.tight_layout()
plt.show()

# %%
# The full-size networks
# ----------------------
# ``benchmarks/ucr_accuracy.py`` fits the full FCN (128/256/128 filters) and ResNet
# (64/128/128 filters) to z-normalised series of three data sets of the archive, with
# the training protocol of Fawaz et al. where sknet allows it: Adam, mini-batches of
# ``min(n_train / 10, 16)`` series, up to 100 epochs at 1e-3 then 30 at 1e-4 (they train
# for 2000 and 1500 epochs, halving the rate on plateaus down to 1e-4). Mean test
# accuracy (%) over three seeds, with the published means (Fawaz et al. 2019) in
# brackets; the archive's data sets are not in this package, so the script reads them
# from ``.ts`` files with :func:`sknet.datasets.load_ts`:
#
# =========================  ==============  ==============
# data set                   FCN             ResNet
# =========================  ==============  ==============
# GunPoint                   99.6 (100.0)    98.4 (99.1)
# ItalyPowerDemand           96.4 (96.1)     95.9 (96.3)
# BasicMotions (6 channels)  100.0           100.0
# =========================  ==============  ==============
