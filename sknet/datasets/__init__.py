"""Loaders for data sets that users bring themselves (nothing is downloaded).

For small data that ships with scikit-learn, use :mod:`sklearn.datasets`
(``load_digits``, ``make_moons``, ...) directly. One small real time series ships inside
sknet itself: :func:`load_co2` (monthly Mauna Loa CO2, public domain), and one small
time-series classification set of the UCR archive, :func:`load_gunpoint`. Data sets of the
UCR/UEA archive in its ``.ts`` format load with :func:`load_ts`.
"""

from ._co2 import load_co2
from ._gunpoint import load_gunpoint
from ._mnist import load_mnist, load_mnist_idx
from ._ts import load_ts

__all__ = ["load_mnist", "load_mnist_idx"]
__all__ += ["load_co2"]
__all__ += ["load_ts", "load_gunpoint"]
