"""sknet: scikit-learn-compatible neural networks on numba kernels."""

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
