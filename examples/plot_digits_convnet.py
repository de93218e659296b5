"""
==============================================
A convolutional network on hand-written digits
==============================================

:class:`sknet.ConvNetClassifier` reads the 8x8 digits that ship with scikit-learn as
images: two 3x3 convolutions (16 and 32 filters, ReLU, each followed by 2x2 max pooling),
then a dense layer of 128 units. We compare its test accuracy with
:class:`sknet.MLPClassifier`, which sees the same pixels as a flat vector, then look at
the filters the first convolution learned and at the confusion matrix.

The digits ship with scikit-learn, so this runs offline in well under a minute.
"""

# %%
# The data
# --------
# 1,797 grey-level images of 8x8 pixels, values 0-16, scaled to [0, 1]. A stratified
# quarter is held out for testing. The rows stay flat (64 pixels); ``input_shape`` tells
# the convolutional network how to read them as one-channel 8x8 images, so the same
# arrays go to both models (and would pass through a scikit-learn pipeline unchanged).
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split

from sknet import ConvNetClassifier, MLPClassifier

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)  # float32 end to end: sknet keeps the input's dtype
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
print(f"{len(X_train)} training and {len(X_test)} test digits")

# %%
# Compiling the kernels
# ---------------------
# The first fit in a fresh environment compiles sknet's numba kernels (cached on disk
# afterwards). A one-epoch fit on a few digits does it here, so that the timings below
# measure training alone.
start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    ConvNetClassifier(input_shape=(1, 8, 8), max_iter=1).fit(X_train[:50], y_train[:50])
    MLPClassifier(max_iter=1).fit(X_train[:50], y_train[:50])
print(f"kernels compiled or loaded from the cache in {time.perf_counter() - start:.1f} s")

# %%
# Training both
# -------------
# Both use Adam, mini-batches of 64, a small L2 penalty and a fixed budget of epochs (so
# the "not converged" warning is silenced). The MLP gets the same dense layer of 128
# units and more epochs, since each of its epochs is cheaper.
models = {
    "ConvNet": ConvNetClassifier(
        conv_filters=(16, 32),
        kernel_size=3,
        padding="same",
        pool_size=2,
        hidden_layer_sizes=(128,),
        input_shape=(1, 8, 8),
        alpha=1e-3,
        batch_size=64,
        learning_rate_init=2e-3,
        max_iter=30,
        random_state=0,
    ),
    "MLP": MLPClassifier(
        hidden_layer_sizes=(128,),
        alpha=1e-3,
        batch_size=64,
        learning_rate_init=2e-3,
        max_iter=60,
        random_state=0,
    ),
}
for name, clf in models.items():
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    print(
        f"{name:>8}: test accuracy {clf.score(X_test, y_test):.4f} "
        f"({np.sum(clf.predict(X_test) != y_test)} mistakes), "
        f"fit time {fit_time:.1f} s for {clf.n_iter_} epochs"
    )
convnet = models["ConvNet"]
print(convnet.summary())

# %%
# Other splits
# ------------
# 450 test digits make one split's accuracy move in steps of 0.22%; the same network on
# three other random splits shows how much of the difference is luck of the split.
for seed in (1, 2, 3):
    Xa, Xb, ya, yb = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = [m.__class__(**m.get_params()).fit(Xa, ya).score(Xb, yb) for m in models.values()]
    print(f"split {seed}: ConvNet {scores[0]:.4f}, MLP {scores[1]:.4f}")

# %%
# The learned filters
# -------------------
# The first convolution's weights have PyTorch's layout, (filters, channels, height,
# width). Each 3x3 filter is shown with its own colour scale, red positive and blue
# negative: many are small edge and stroke detectors.
W = convnet.network_.params[0]["W"][:, 0]  # (16, 3, 3)
fig, axes = plt.subplots(2, 8, figsize=(8, 2.6), layout="constrained")
for i, ax in enumerate(axes.ravel()):
    lim = np.abs(W[i]).max()
    ax.imshow(W[i], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_title(f"filter {i}", fontsize=8)
    ax.set_axis_off()
fig.suptitle("First-layer 3x3 filters of the ConvNet")

# %%
# What the filters see
# --------------------
# The first layer's output (after its ReLU) for one test digit: ``forward`` runs the
# network up to (and including) layer 0.
digit = X_test[:1].reshape(1, 1, 8, 8)
maps = convnet.forward(digit, stop=1)[0]
fig, axes = plt.subplots(2, 9, figsize=(9, 2.4), layout="constrained")
axes[0, 0].imshow(digit[0, 0], cmap="gray_r")
axes[0, 0].set_title(f"input ({y_test[0]})", fontsize=8)
axes[1, 0].set_visible(False)
for i, ax in enumerate(axes[:, 1:].ravel()):
    ax.imshow(maps[i], cmap="viridis", interpolation="nearest")
    ax.set_title(f"map {i}", fontsize=8)
for ax in axes.ravel():
    ax.set_axis_off()
fig.suptitle("Feature maps of the first convolution")

# %%
# Confusion matrix
# ----------------
# Rows are the true digits, columns the predicted ones; everything off the diagonal is a
# mistake.
disp = ConfusionMatrixDisplay.from_predictions(
    y_test, convnet.predict(X_test), cmap="Blues", colorbar=False
)
disp.ax_.set_title(
    f"ConvNet on {len(y_test)} test digits, accuracy {convnet.score(X_test, y_test):.1%}"
)
plt.show()
