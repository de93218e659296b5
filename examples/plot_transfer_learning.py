"""
===========================================================
Pretrained MNIST features for a few labelled digits
===========================================================

sknet ships a convolutional network trained on real MNIST digits, ``mnist_convnet`` in
:mod:`sknet.pretrained`. Here it is used as a *frozen feature extractor* for another
digit data set, scikit-learn's 8x8 digits, of which we pretend to have only a few
labelled images per class. A logistic regression is trained on the network's last hidden
layer (:class:`sknet.NetworkFeatures` in a pipeline) and compared with training the same
network architecture from scratch on the same few labels, and with a logistic regression
on the raw pixels.

The 8x8 images are brought to MNIST's format first: upsampled, the digit's bounding box
scaled to fit 20x20 pixels and its centre of mass placed at the centre of a 28x28 image,
which is how MNIST's digits were prepared.
"""

# %%
# The data, in MNIST's format
# ---------------------------
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sknet import NetworkFeatures, pretrained

start = time.perf_counter()


def to_mnist_format(images):
    """8x8 grey levels 0-16 -> 28x28 float32 in [0, 1], normalised like MNIST."""
    out = np.zeros((len(images), 28, 28), dtype=np.float32)
    for i, img in enumerate(images / 16.0):
        big = np.clip(ndimage.zoom(img, 4, order=3), 0, 1)  # 32x32, the digits' original size
        rows = np.flatnonzero(big.max(axis=1) > 0.05)
        cols = np.flatnonzero(big.max(axis=0) > 0.05)
        box = big[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        box = np.clip(ndimage.zoom(box, 20.0 / max(box.shape), order=1), 0, 1)
        h, w = box.shape
        canvas = np.zeros((28, 28), dtype=np.float32)
        canvas[(28 - h) // 2 : (28 - h) // 2 + h, (28 - w) // 2 : (28 - w) // 2 + w] = box
        cy, cx = ndimage.center_of_mass(canvas)
        out[i] = ndimage.shift(canvas, (13.5 - cy, 13.5 - cx), order=1)
    return out


digits = load_digits()
images28 = to_mnist_format(digits.images)
y = digits.target

name = "mnist_convnet"
model = pretrained.load(name)
info = pretrained.info(name)
print(
    f"pretrained model: {name}, {info['class']}, held-out MNIST accuracy "
    f"{info['test_accuracy']:.4f}"
)
X = images28.reshape(len(images28), *model.input_shape_)
print(f"zero-shot accuracy of the MNIST model on the 8x8 digits: {model.score(X, y):.3f}")

fig, axes = plt.subplots(2, 6, figsize=(7, 2.6))
for k, ax in enumerate(axes.T):
    ax[0].imshow(digits.images[k], cmap="gray_r")
    ax[1].imshow(images28[k], cmap="gray_r")
    for a in ax:
        a.set_axis_off()
axes[0, 0].set_title("8x8", loc="left", fontsize=9)
axes[1, 0].set_title("MNIST format", loc="left", fontsize=9)
fig.tight_layout()

# %%
# Few labels: pretrained features against training from scratch
# --------------------------------------------------------------
# For each number of labels per class, three random draws of the labelled images; every
# other image is the test set. "from scratch" is the same architecture and
# hyperparameters as the pretrained model, trained on the few labels only, with more
# epochs as there are few images (100: it fits its training images perfectly well
# before that; letting it run until its loss stops improving, 120 to 160 epochs here,
# changes its test accuracy by at most 0.005, measured at 10, 20 and 50 per class).
labels_per_class = [5, 10, 20]
n_draws = 3
# The network is frozen, so the features it gives each image do not depend on the draw:
# they are computed once for all images, which is what the pipeline
# ``make_pipeline(NetworkFeatures(model), LogisticRegression())`` computes inside each of
# its fits and scores (checked below on one draw). The pixel baseline reads the 28x28
# images' 784 pixels (on the original 8x8 grey levels it scored 2 to 3 points lower
# at 10, 20 and 50 labels per class).
features = NetworkFeatures(model).fit(X).transform(X)
pixels = X.reshape(len(X), -1)
methods = {
    "pretrained features + logistic regression": (
        features,
        lambda: LogisticRegression(max_iter=3000),
    ),
    "same network from scratch": (X, lambda: clone(model).set_params(max_iter=100)),
    "logistic regression on pixels": (pixels, lambda: LogisticRegression(max_iter=3000)),
}
scores = {m: np.zeros((len(labels_per_class), n_draws)) for m in methods}
draws = {}
for i, per_class in enumerate(labels_per_class):
    for draw in range(n_draws):
        rng = np.random.RandomState(draw)
        train = np.concatenate(
            [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
        )
        test = np.setdiff1d(np.arange(len(y)), train)
        draws[per_class, draw] = train, test
        for method, (Xin, make) in methods.items():
            est = make()
            if "random_state" in est.get_params():
                est.set_params(random_state=draw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                # 50 images (5 per class) are fewer than the model's batch_size, 100:
                # one batch of all of them per epoch, as with 100 images
                warnings.filterwarnings("ignore", message="Got `batch_size`")
                est.fit(Xin[train], y[train])
            scores[method][i, draw] = est.score(Xin[test], y[test])

# the pipeline on the images themselves, for the first draw of 10 labels per class
train, test = draws[labels_per_class[0], 0]
pipe = make_pipeline(NetworkFeatures(model), LogisticRegression(max_iter=3000))
pipe.fit(X[train], y[train])
print(
    f"pipeline on the images: {pipe.score(X[test], y[test]):.3f}, precomputed features: "
    f"{scores['pretrained features + logistic regression'][0, 0]:.3f}"
)

for i, per_class in enumerate(labels_per_class):
    print(f"\n{per_class} labels per class (mean of {n_draws} draws, test accuracy):")
    for method in methods:
        s = scores[method][i]
        print(f"  {method:45s} {s.mean():.3f} +- {s.std():.3f}")

# %%
# The figure shows the mean test accuracy and its spread over the draws.
# sphinx_gallery_thumbnail_number = 2
fig, ax = plt.subplots(figsize=(6, 4))
for method, marker in zip(methods, "osd"):
    s = scores[method]
    ax.errorbar(labels_per_class, s.mean(1), yerr=s.std(1), marker=marker, capsize=3, label=method)
ax.set_xscale("log")
ax.minorticks_off()
ax.set_xticks(labels_per_class, [str(n) for n in labels_per_class])
ax.set_xlabel("labelled images per class")
ax.set_ylabel("test accuracy")
ax.set_title(f"8x8 digits with few labels, features from {name}")
ax.legend(fontsize=8)
fig.tight_layout()
print(f"\nran in {time.perf_counter() - start:.0f} s")

# %%
# What the figure says
# --------------------
# With 5, 10 or 20 labelled images per class, a logistic regression on the frozen
# features of the MNIST convnet beats the same convnet trained from scratch on those
# images, and a logistic regression on the raw pixels; the gap is largest with the
# fewest labels (about eight points over training from scratch and five over the pixels
# at 5 per class, four and two at 20) and shrinks as labels are added, as the network
# trained from scratch has more images to learn its own features from. The
# convolution blocks learned on MNIST are local stroke detectors pooled over positions;
# they carry over to differently drawn and resized digits, and only a linear classifier
# has to be learned from the few labels. The network as it is, MNIST's own output layer
# included, already classifies about 80% of the resized 8x8 digits correctly; the few
# labels fix the rest. The example "Fine-tuning the shipped MNIST ConvNet on a few
# digits" trains the network's layers themselves on the few labels, with
# :class:`sknet.FineTuner`.
plt.show()
