"""
=======================================
An MLP on real MNIST digits, in float32
=======================================

Trains :class:`sknet.MLPClassifier` on 8,000 of the 10,000 images of the MNIST test set
(``t10k``) and reports its accuracy on the other 2,000 (a stratified split) and the time
it took. The network works in float32 end to end: :func:`sknet.datasets.load_mnist`
returns float32 pixels in [0, 1], and sknet keeps the input's dtype.

sknet never downloads data. Bring the MNIST files (``t10k-images-idx3-ubyte.gz`` and
``t10k-labels-idx1-ubyte.gz``, gzipped or not) and run::

    python examples/mnist_mlp.py /path/to/mnist

or set the environment variable ``SKNET_MNIST_DIR`` to that directory.
(This script is not part of the gallery, which only runs on data that ships with
scikit-learn.)

Two figures: the training loss per epoch next to 32 of the hidden units' input weights
seen as 28x28 images (the patterns the first layer learned to respond to), and the
confusion matrix of the held-out digits. ``--no-plot`` prints the results only.
"""

import argparse
import os
import sys
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix
from sklearn.model_selection import train_test_split

from sknet import MLPClassifier
from sknet.datasets import load_mnist


def plot(clf, y_test, y_pred):
    fig = plt.figure(figsize=(11, 4.5), layout="constrained")
    sub_loss, sub_weights = fig.subfigures(1, 2, width_ratios=[1, 1.6])
    ax = sub_loss.subplots()
    ax.plot(np.arange(1, clf.n_iter_ + 1), clf.loss_curve_, "o-")
    ax.set(
        xlabel="epoch",
        ylabel="training loss",
        yscale="log",
        title="MLP (128 ReLU units) on 8,000 MNIST digits",
    )
    # each hidden unit's 784 input weights, shown as the image that excites it most
    W = clf.coefs_[0]
    axes = sub_weights.subplots(4, 8)
    for unit, ax in enumerate(axes.ravel()):
        w = W[:, unit].reshape(28, 28)
        lim = np.abs(w).max()
        ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_axis_off()
    sub_weights.suptitle("input weights of hidden units 0-31 (red positive, blue negative)")

    fig, ax = plt.subplots(figsize=(6, 5.5), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(y_test, y_pred, ax=ax, cmap="Blues", colorbar=False)
    ax.set_title(f"held-out accuracy {np.mean(y_pred == y_test):.2%}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Train sknet's MLPClassifier on 8,000 MNIST test-set digits and "
        "report its accuracy on the other 2,000."
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=os.environ.get("SKNET_MNIST_DIR"),
        help="directory with t10k-images-idx3-ubyte[.gz] and "
        "t10k-labels-idx1-ubyte[.gz] (default: $SKNET_MNIST_DIR)",
    )
    parser.add_argument(
        "--epochs", type=int, default=15, help="number of training epochs (default: 15)"
    )
    parser.add_argument("--no-plot", action="store_true", help="print the results only")
    args = parser.parse_args(argv)
    if not args.directory:
        parser.exit(
            2,
            "error: no MNIST directory: pass it as the first argument or set "
            "SKNET_MNIST_DIR. sknet never downloads data; the directory must "
            "hold t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz].\n",
        )
    try:
        X, y = load_mnist(args.directory, kind="t10k")
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(1, f"error: {exc}\n")
    print(f"loaded {X.shape[0]} images of {X.shape[1]} pixels ({X.dtype}) from {args.directory}")

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=2000, stratify=y, random_state=0
    )

    clf = MLPClassifier(
        hidden_layer_sizes=(128,),
        alpha=1e-3,
        batch_size=200,
        learning_rate_init=2e-3,
        max_iter=args.epochs,
        random_state=0,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        # a fixed budget of epochs
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    y_pred = clf.predict(X_test)
    predict_time = time.perf_counter() - start

    weights_dtype = clf.coefs_[0].dtype
    print(
        f"trained on {len(X_train)} digits for {clf.n_iter_} epochs in {fit_time:.1f} s, "
        f"weights in {weights_dtype} (the first run in a new environment also compiles "
        "the numba kernels)"
    )
    print(f"training accuracy: {clf.score(X_train, y_train):.4f}")
    print(
        f"held-out accuracy on {len(X_test)} digits: {np.mean(y_pred == y_test):.4f} "
        f"(predicted in {predict_time * 1000:.0f} ms)"
    )
    cm = confusion_matrix(y_test, y_pred)
    per_digit = cm.diagonal() / cm.sum(axis=1)
    print(
        "held-out accuracy per digit: "
        + "  ".join(f"{d}: {acc:.3f}" for d, acc in enumerate(per_digit))
    )
    if not args.no_plot:
        plot(clf, y_test, y_pred)
        plt.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
