"""Loaders for data sets that users bring themselves (nothing is downloaded).

For small data that ships with scikit-learn, use :mod:`sklearn.datasets`
(``load_digits``, ``make_moons``, ...) directly.
"""

from ._mnist import load_mnist, load_mnist_idx

__all__ = ["load_mnist", "load_mnist_idx"]
