"""
============================================
A LeNet-like ConvNet on real MNIST, float32
============================================

Trains :class:`sknet.ConvNetClassifier` on 8,000 of the 10,000 images of the MNIST test
set (``t10k``) and reports its accuracy on the other 2,000 (a stratified split) and the
time it took. The network is LeNet-like: a 5x5 convolution with 16 filters, ReLU and 2x2
max pooling, a 5x5 convolution with 32 filters, ReLU and 2x2 max pooling (no padding:
28 -> 24 -> 12 -> 8 -> 4), a dense layer of 128 ReLU units and a softmax over the 10
digits. It works in float32 end to end: :func:`sknet.datasets.load_mnist` returns
float32 pixels in [0, 1] and sknet keeps the input's dtype. It trains with Adam
(mini-batches of 128, learning rate 2e-3) for 12 epochs, a budget chosen on a validation
split of the 8,000 training images, never on the 2,000 held out. The held-out accuracy
moves by a few tenths of a percent with ``random_state`` (each of the 2,000 digits is
0.05%).

Two figures: the training loss per epoch, and the confusion matrix of the held-out
digits next to the digits the network got wrong.

sknet never downloads data. Bring the MNIST files (``t10k-images-idx3-ubyte.gz`` and
``t10k-labels-idx1-ubyte.gz``, gzipped or not) and run::

    python examples/mnist_convnet.py /path/to/mnist

or set the environment variable ``SKNET_MNIST_DIR`` to that directory.
(This script is not part of the gallery, which only runs on data that ships with
scikit-learn.)
"""

import argparse
import os
import sys
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split

from sknet import ConvNetClassifier
from sknet.datasets import load_mnist


def lenet(epochs):
    return ConvNetClassifier(
        conv_filters=(16, 32),
        kernel_size=5,
        padding="valid",
        pool="max",
        pool_size=2,
        hidden_layer_sizes=(128,),
        input_shape=(1, 28, 28),
        batch_size=128,
        learning_rate_init=2e-3,
        max_iter=epochs,
        random_state=0,
    )


def plot(clf, X_test, y_test, y_pred, accuracy):
    fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    ax.plot(np.arange(1, clf.n_iter_ + 1), clf.loss_curve_, "o-")
    ax.set(
        xlabel="epoch",
        ylabel="training loss",
        yscale="log",
        title="LeNet-like ConvNet on 8,000 MNIST digits",
    )

    fig = plt.figure(figsize=(11, 5), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.2])
    ax_cm = left.subplots()
    ConfusionMatrixDisplay.from_predictions(y_test, y_pred, ax=ax_cm, cmap="Blues", colorbar=False)
    ax_cm.set_title(f"held-out accuracy {accuracy:.2%}")
    # the mistakes, predicted label over the true one in brackets
    wrong = np.flatnonzero(y_pred != y_test)[:40]
    right.suptitle(f"{np.sum(y_pred != y_test)} mistakes (first {len(wrong)}): predicted (true)")
    for ax in right.subplots(5, 8).ravel():
        ax.set_axis_off()
    for ax, i in zip(right.axes, wrong):
        ax.imshow(X_test[i].reshape(28, 28), cmap="gray_r")
        ax.set_title(f"{y_pred[i]} ({y_test[i]})", fontsize=8, color="tab:red")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Train sknet's ConvNetClassifier (LeNet-like) on 8,000 MNIST test-set "
        "digits and report its accuracy on the other 2,000."
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=os.environ.get("SKNET_MNIST_DIR"),
        help="directory with t10k-images-idx3-ubyte[.gz] and "
        "t10k-labels-idx1-ubyte[.gz] (default: $SKNET_MNIST_DIR)",
    )
    parser.add_argument(
        "--epochs", type=int, default=12, help="number of training epochs (default: 12)"
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
    # flat rows of 784 pixels; input_shape=(1, 28, 28) reads them as images
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=2000, stratify=y, random_state=0
    )

    # compile the kernels (or load them from numba's on-disk cache) outside the timing
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lenet(1).fit(X_train[:256], y_train[:256])
    print(f"kernels compiled or loaded from the cache in {time.perf_counter() - start:.1f} s")

    clf = lenet(args.epochs)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # a fixed budget of epochs
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    y_pred = clf.predict(X_test)
    predict_time = time.perf_counter() - start
    accuracy = float(np.mean(y_pred == y_test))

    print(
        f"trained on {len(X_train)} digits for {clf.n_iter_} epochs in {fit_time:.1f} s "
        f"({fit_time / clf.n_iter_:.1f} s per epoch), weights in "
        f"{clf.network_.theta.dtype}"
    )
    print(f"training accuracy: {clf.score(X_train, y_train):.4f}")
    print(
        f"held-out accuracy on {len(X_test)} digits: {accuracy:.4f} "
        f"(predicted in {predict_time * 1000:.0f} ms)"
    )
    if not args.no_plot:
        plot(clf, X_test, y_test, y_pred, accuracy)
        plt.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
