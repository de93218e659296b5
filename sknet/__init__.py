"""sknet: scikit-learn-compatible neural networks on numba kernels."""

import importlib as _importlib
import importlib.util as _importlib_util

from ._composable import NetworkClassifier, NetworkRegressor
from ._convnet import ConvNetClassifier, ConvNetRegressor
from ._display import TrainingHistoryDisplay
from ._mlp import MLPClassifier, MLPRegressor
from ._rnn import RNNClassifier, RNNRegressor
from ._summary import summary
from .parallel import get_num_threads, set_num_threads, threadpool_limits
from .persistence import load, save
from .transfer import FineTuner, NetworkFeatures

__version__ = "0.1.0"

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "RNNClassifier",
    "RNNRegressor",
    "ConvNetClassifier",
    "ConvNetRegressor",
    "NetworkClassifier",
    "NetworkRegressor",
    "TrainingHistoryDisplay",
    "summary",
    "__version__",
]
__all__ += ["FineTuner", "NetworkFeatures", "load", "save"]
__all__ += ["get_num_threads", "set_num_threads", "threadpool_limits"]

#: public submodules loaded on first attribute access (``sknet.timeseries``), as
#: scikit-learn does (PEP 562): ``import sknet`` stays fast and imports no optional
#: dependency (PyTorch, dask) until its submodule is used. A name whose module is not part
#: of this installation raises AttributeError.
_SUBMODULES = (
    "callbacks",
    "dask",
    "datasets",
    "layers",
    "onnx",
    "parallel",
    "persistence",
    "pretrained",
    "timeseries",
    "torch_interop",
    "transfer",
)


def _has_submodule(name):
    return _importlib_util.find_spec(f"{__name__}.{name}") is not None


def __getattr__(name):
    if name in _SUBMODULES:
        if _has_submodule(name):
            return _importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(
            f"module {__name__!r} has no attribute {name!r}: this installation of sknet "
            f"has no {__name__}.{name} submodule"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {n for n in _SUBMODULES if _has_submodule(n)})
