"""Train the pretrained MNIST model shipped in ``sknet/pretrained/`` (the recipe).

Reads the real MNIST digits (the 10,000-image MNIST test set in its original gzipped IDX
format; nothing is downloaded), splits them 8,000 / 2,000 stratified with a fixed seed,
trains the network on the 8,000, reports the accuracy on the held-out 2,000 and saves
the model with :func:`sknet.save` (float32, safe format) together with that recipe in
the file's metadata.

Usage::

    python scripts/train_pretrained_mnist.py [--data DIR] [--model convnet|mlp] [--out FILE]

``--data`` defaults to ``$SKNET_MNIST_DIR`` or ``../shared/data/mnist`` next to the
repository. ``--model convnet`` needs :class:`sknet.ConvNetClassifier`.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

import sknet
from sknet.datasets import load_mnist

ROOT = Path(__file__).resolve().parents[1]
SEED = 0


def make_model(kind):
    if kind == "mlp":
        est = sknet.MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, batch_size=100,
                                  learning_rate_init=1e-3, max_iter=40, random_state=SEED)
        return est, lambda images: images.reshape(len(images), -1)
    if kind == "convnet":
        if not hasattr(sknet, "ConvNetClassifier"):
            raise SystemExit("sknet.ConvNetClassifier is not available in this version.")
        est = sknet.ConvNetClassifier(conv_filters=(8, 16, 32), kernel_size=3,
                                      hidden_layer_sizes=(64,), alpha=1e-4, batch_size=100,
                                      learning_rate_init=1e-3, max_iter=15,
                                      random_state=SEED)
        return est, lambda images: images[:, None, :, :]
    raise SystemExit(f"unknown model {kind!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("SKNET_MNIST_DIR", str(ROOT.parent / "shared/data/mnist"))
    parser.add_argument("--data", default=default_data)
    parser.add_argument("--model", default="convnet", choices=["mlp", "convnet"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    images, labels = load_mnist(args.data, flatten=False)  # float32 in [0, 1]
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=2000,
                                           stratify=labels, random_state=SEED)
    est, to_input = make_model(args.model)
    X = to_input(images)
    start = time.perf_counter()
    est.fit(X[idx_train], labels[idx_train])
    seconds = time.perf_counter() - start
    train_acc = float(est.score(X[idx_train], labels[idx_train]))
    test_acc = float(est.score(X[idx_test], labels[idx_test]))
    print(f"{type(est).__name__}: trained in {seconds:.1f} s, {est.n_iter_} epochs; "
          f"accuracy train {train_acc:.4f}, held-out {test_acc:.4f}")

    out = Path(args.out) if args.out else ROOT / f"sknet/pretrained/mnist_{args.model}.sknet"
    metadata = {
        "description": (f"{type(est).__name__} trained on real MNIST digits: 28x28 grey "
                        "levels / 255 as float32, input "
                        + ("784 flattened pixels" if args.model == "mlp" else
                           "(1, 28, 28) images")),
        "recipe": "scripts/train_pretrained_mnist.py --model " + args.model,
        "data": ("MNIST test set (t10k, 10,000 images), split 8,000 train / 2,000 held out, "
                 f"stratified, train_test_split(random_state={SEED})"),
        "params": {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in est.get_params().items()
                   if isinstance(v, (int, float, str, bool, tuple, type(None)))},
        "n_train": int(len(idx_train)),
        "n_test": int(len(idx_test)),
        "train_accuracy": round(train_acc, 4),
        "test_accuracy": round(test_acc, 4),
        "epochs": int(est.n_iter_),
        "input_scaling": "pixels / 255",
    }
    sknet.save(est, out, metadata=metadata, training_state=False)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
