"""Pretrained sknet models shipped with the package, loadable offline by name.

Every ``<name>.sknet`` file in this directory is a model saved with :func:`sknet.save`
(the safe format: arrays and JSON, no pickle). Its header's ``metadata`` records how it
was trained (the recipe script, data, split and held-out accuracy); :func:`info`
returns it. Nothing is ever downloaded.

Models
------
``mnist_mlp``
    :class:`~sknet.MLPClassifier` on real MNIST digits (28x28 grey levels scaled to
    [0, 1] and flattened, 784 features), trained on 8,000 of the 10,000 MNIST test
    images; accuracy on the other 2,000 is in ``info("mnist_mlp")["test_accuracy"]``.
    Recipe: ``scripts/train_pretrained_mnist.py --model mlp``.
``mnist_convnet``
    :class:`~sknet.ConvNetClassifier` (3x3 convolutions of 8, 16 and 32 filters, each
    followed by 2x2 max pooling, then a dense layer of 64) on the same images as
    (1, 28, 28) arrays, same split; held-out accuracy in
    ``info("mnist_convnet")["test_accuracy"]``. Its convolution blocks are the reusable
    part for transfer learning. Recipe: ``scripts/train_pretrained_mnist.py``.

Examples
--------
>>> from sknet import pretrained
>>> "mnist_mlp" in pretrained.available()
True
>>> clf = pretrained.load("mnist_mlp")
>>> clf.n_features_in_
784
"""

import re
from importlib import resources

from ..persistence import load as _load_file
from ..persistence import read_header

__all__ = ["available", "info", "load"]

_SUFFIX = ".sknet"
_NAME = re.compile(r"^[a-z0-9_]+$")


def _files():
    return {
        entry.name[: -len(_SUFFIX)]: entry
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(_SUFFIX) and _NAME.match(entry.name[: -len(_SUFFIX)])
    }


def available():
    """Names of the shipped pretrained models.

    Returns
    -------
    names : list of str
        Sorted names accepted by :func:`load` and :func:`info`.

    Examples
    --------
    >>> from sknet import pretrained
    >>> pretrained.available()
    ['mnist_convnet', 'mnist_mlp']
    """
    return sorted(_files())


def _entry(name):
    files = _files()
    if not isinstance(name, str) or name not in files:
        raise ValueError(f"Unknown pretrained model {name!r}; available: {sorted(files)}.")
    return files[name]


def load(name):
    """Load a shipped pretrained model by name.

    Parameters
    ----------
    name : str
        One of :func:`available`.

    Returns
    -------
    estimator : sknet estimator
        A fitted estimator, a new object at every call.

    Raises
    ------
    ValueError
        If ``name`` is not a shipped model, or its file does not load (see
        :func:`sknet.load`).

    Examples
    --------
    >>> import numpy as np
    >>> from sknet import pretrained
    >>> clf = pretrained.load("mnist_mlp")
    >>> blank = np.zeros((1, 784), dtype=np.float32)
    >>> clf.predict_proba(blank).shape
    (1, 10)
    """
    with resources.as_file(_entry(name)) as path:
        return _load_file(path)


def info(name):
    """How a shipped model was made: its metadata, class and format versions.

    Parameters
    ----------
    name : str
        One of :func:`available`.

    Returns
    -------
    info : dict
        The model's ``metadata`` (description, recipe, data, scores) plus ``class``
        and the ``versions`` it was saved with.

    Examples
    --------
    >>> from sknet import pretrained
    >>> meta = pretrained.info("mnist_mlp")
    >>> meta["class"], meta["n_train"], meta["n_test"]
    ('MLPClassifier', 8000, 2000)
    """
    with resources.as_file(_entry(name)) as path:
        header = read_header(path)
    return {**header["metadata"], "class": header["class"], "versions": header["versions"]}
