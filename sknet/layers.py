"""Layer specifications: the building blocks of :class:`sknet.NetworkClassifier` and
:class:`sknet.NetworkRegressor`.

A specification is plain configuration, a small scikit-learn-style object with
``get_params`` / ``set_params``: it never holds weights. Each ``fit`` builds fresh
layers from the specifications, so ``clone``, ``GridSearchCV`` and ``check_estimator``
see the parameters unchanged, and one list of specifications can serve any number of
estimators.

The estimator takes ``layers``, a list of ``(name, spec)`` pairs as ``Pipeline`` takes
steps (or bare specs, named after their class), and appends the output layer (a dense
layer with one unit per class or target, after a flatten when needed). Shapes are per
sample, without the sample axis, channels first: ``(features,)`` for dense layers,
``(channels, length)`` for 1-D convolutions, ``(channels, height, width)`` for 2-D ones,
``(timesteps, features)`` for recurrent layers.

The ready-made time-series networks :func:`fcn` and :func:`resnet` return such lists.
"""

import re

from sklearn.base import BaseEstimator

from . import _layers as L

__all__ = [
    "LayerSpec",
    "Dense",
    "Conv1D",
    "Conv2D",
    "MaxPool1D",
    "MaxPool2D",
    "AvgPool1D",
    "AvgPool2D",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "BatchNorm",
    "Dropout",
    "Activation",
    "Flatten",
    "RNN",
    "LSTM",
    "GRU",
    "Residual",
    "fcn",
    "resnet",
]


class LayerSpec(BaseEstimator):
    """Base class of the layer specifications. Not for direct use.

    A subclass's constructor only stores its arguments (scikit-learn's convention);
    :meth:`build_layer` checks them and returns a fresh layer.

    Examples
    --------
    >>> from sknet.layers import Conv1D, LayerSpec
    >>> spec = Conv1D(16, 5)
    >>> isinstance(spec, LayerSpec), spec.get_params()["filters"]
    (True, 16)
    >>> spec.build_layer().get_config()["kernel_size"]
    5
    """

    #: how a 2-D input row is read when this is the first layer: "features" (as is),
    #: "channels1d" (a one-channel signal), "time" (a univariate sequence),
    #: "channels2d" (needs ``input_shape``), or None (decided by the next layer)
    _input_layout = "features"

    def build_layer(self):
        """A fresh, unbuilt network layer from this specification (the estimator builds
        it on the shape in front of it); raises ValueError for invalid settings."""
        raise NotImplementedError

    def __eq__(self, other):
        """Specifications are configuration: equal when of one class with equal parameters."""
        if type(other) is not type(self):
            return NotImplemented
        return self.get_params(deep=False) == other.get_params(deep=False)

    __hash__ = None  # mutable (``set_params``), compared by value


class Dense(LayerSpec):
    """Fully connected layer ``activation(X @ W + b)`` on (features,) samples.

    Parameters
    ----------
    units : int, default=100
        Output width.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation applied to the output.

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Dense
    >>> net = NetworkClassifier([Dense(64, activation="tanh"), Dense(32)])
    >>> [layer.output_shape for layer in net.build_layers((10,), n_outputs=2)]
    [(64,), (32,), (2,)]
    """

    def __init__(self, units=100, activation="relu"):
        self.units = units
        self.activation = activation

    def build_layer(self):
        return L.Dense(self.units, self.activation)


class _Conv(LayerSpec):
    _ndim = 1

    def __init__(
        self, filters=32, kernel_size=3, *, stride=1, padding="same", dilation=1, activation="relu"
    ):
        self.filters = filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.activation = activation

    def build_layer(self):
        extra = {} if self.dilation == 1 else {"dilation": self.dilation}
        return L.Conv(
            self.filters,
            self.kernel_size,
            self.stride,
            self.padding,
            self.activation,
            ndim=self._ndim,
            **extra,
        )


_CONV_DOC = """{kind} convolution (cross-correlation, PyTorch's weight layout), then
    ``activation``, on {shape} samples.

    Parameters
    ----------
    filters : int, default=32
        Output channels.
    kernel_size : int, default=3
        Kernel size (square in 2-D).
    stride : int, default=1
        Step between windows.
    padding : {{'same', 'valid'}} or int, default='same'
        'same' keeps the size at stride 1 (for even kernels the extra zero goes to the
        end, as PyTorch's ``padding='same'``), 'valid' pads nothing, an int pads that
        many zeros on every side.
    dilation : int, default=1
        Spacing between kernel taps (PyTorch's ``dilation``).
    activation : {{'relu', 'tanh', 'logistic', 'identity'}}, default='relu'
        Activation fused into the output; 'identity' before a :class:`BatchNorm`.
    """


class Conv1D(_Conv):
    __doc__ = _CONV_DOC.format(kind="1-D", shape="(channels, length)")
    _ndim = 1
    _input_layout = "channels1d"


class Conv2D(_Conv):
    __doc__ = _CONV_DOC.format(kind="2-D", shape="(channels, height, width)")
    _ndim = 2
    _input_layout = "channels2d"


class _Pool(LayerSpec):
    _ndim = 1
    _mode = "max"

    def __init__(self, pool_size=2, stride=None):
        self.pool_size = pool_size
        self.stride = stride

    def build_layer(self):
        return L.Pool(self._mode, self.pool_size, ndim=self._ndim, stride=self.stride)


_POOL_DOC = """{mode} pooling over {what} windows of {shape} samples.

    Output size per axis: ``(n_in - pool_size) // stride + 1`` (no padding).

    Parameters
    ----------
    pool_size : int, default=2
        Window size (square in 2-D).
    stride : int or None, default=None
        Step between windows; None uses ``pool_size`` (no overlap).
    """


class MaxPool1D(_Pool):
    __doc__ = _POOL_DOC.format(mode="Max", what="1-D", shape="(channels, length)")
    _input_layout = "channels1d"


class AvgPool1D(_Pool):
    __doc__ = _POOL_DOC.format(mode="Average", what="1-D", shape="(channels, length)")
    _mode = "avg"
    _input_layout = "channels1d"


class MaxPool2D(_Pool):
    __doc__ = _POOL_DOC.format(mode="Max", what="2-D", shape="(channels, height, width)")
    _ndim = 2
    _input_layout = "channels2d"


class AvgPool2D(_Pool):
    __doc__ = _POOL_DOC.format(mode="Average", what="2-D", shape="(channels, height, width)")
    _mode = "avg"
    _ndim = 2
    _input_layout = "channels2d"


class GlobalAveragePool(LayerSpec):
    """Mean of each channel over all positions: (channels, ...) -> (channels,).

    The classification head of the FCN and ResNet time-series networks: the weights of
    a network of convolutions and global pooling do not depend on the input length
    (a fitted estimator still takes the length it was fitted on).

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv1D, GlobalAveragePool
    >>> net = NetworkClassifier([Conv1D(16), GlobalAveragePool()])
    >>> [layer.output_shape for layer in net.build_layers((3, 100), n_outputs=2)]
    [(16, 100), (16,), (2,)]
    """

    _input_layout = "channels1d"

    def build_layer(self):
        return L.GlobalPool("avg")


class GlobalMaxPool(LayerSpec):
    """Maximum of each channel over all positions: (channels, ...) -> (channels,).

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv1D, GlobalMaxPool
    >>> net = NetworkClassifier([Conv1D(16), GlobalMaxPool()])
    >>> [layer.output_shape for layer in net.build_layers((3, 100), n_outputs=2)]
    [(16, 100), (16,), (2,)]
    """

    _input_layout = "channels1d"

    def build_layer(self):
        return L.GlobalPool("max")


class BatchNorm(LayerSpec):
    """Batch normalization over the channel axis (the first axis of a sample).

    Dense features (C,), signals (C, L) and images (C, H, W) are normalized per channel:
    with the batch's statistics while training, with running statistics when
    predicting. PyTorch's convention (``BatchNorm1d`` / ``BatchNorm2d``)::

        y = gamma * (x - mean) / sqrt(var + eps) + beta
        running_mean = (1 - momentum) * running_mean + momentum * batch_mean
        running_var  = (1 - momentum) * running_var + momentum * unbiased_batch_var

    ``gamma`` and ``beta`` are trained (not penalized by ``alpha``); the running
    statistics are fitted state, saved by :func:`sknet.save` and exchanged with
    PyTorch by :mod:`sknet.torch_interop`. In layers frozen by transfer learning the
    running statistics are used and kept, as in Keras. A training batch needs at least
    two values per channel.

    Parameters
    ----------
    momentum : float in [0, 1], default=0.1
        Weight of the new batch statistic in the running statistics.
    eps : float > 0, default=1e-5
        Added to the variance.

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Activation, BatchNorm, Conv1D
    >>> net = NetworkClassifier([Conv1D(8, activation="identity"), BatchNorm(), Activation("relu")])
    >>> [layer.output_shape for layer in net.build_layers((1, 50), n_outputs=2)]
    [(8, 50), (8, 50), (8, 50), (400,), (2,)]
    """

    _input_layout = None

    def __init__(self, momentum=0.1, eps=1e-5):
        self.momentum = momentum
        self.eps = eps

    def build_layer(self):
        return L.BatchNorm(self.momentum, self.eps)


class Dropout(LayerSpec):
    """Inverted dropout: zero each value with probability ``rate`` while training.

    Parameters
    ----------
    rate : float in [0, 1), default=0.5
        Drop probability.

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Dense, Dropout
    >>> net = NetworkClassifier([Dense(64), Dropout(0.2)])
    >>> [layer.output_shape for layer in net.build_layers((10,), n_outputs=2)]
    [(64,), (64,), (2,)]
    """

    _input_layout = None

    def __init__(self, rate=0.5):
        self.rate = rate

    def build_layer(self):
        return L.Dropout(self.rate)


class Activation(LayerSpec):
    """An element-wise activation on its own (after a :class:`BatchNorm`, say).

    Parameters
    ----------
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        The function applied element-wise.

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Activation, Dense
    >>> net = NetworkClassifier([Dense(8, activation="identity"), Activation("tanh")])
    >>> [layer.output_shape for layer in net.build_layers((10,), n_outputs=2)]
    [(8,), (8,), (2,)]
    """

    _input_layout = None

    def __init__(self, activation="relu"):
        self.activation = activation

    def build_layer(self):
        return L.Activation(self.activation)


class Flatten(LayerSpec):
    """Reshape each sample to one axis: (..., ) -> (prod,).

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv1D, Dense, Flatten
    >>> net = NetworkClassifier([Conv1D(4), Flatten(), Dense(16)])
    >>> [layer.output_shape for layer in net.build_layers((2, 10), n_outputs=2)]
    [(4, 10), (40,), (16,), (2,)]
    """

    _input_layout = None

    def build_layer(self):
        return L.Flatten()


class _Recurrent(LayerSpec):
    _cell = "lstm"
    _input_layout = "time"

    def __init__(self, units=32, *, return_sequences=False, bidirectional=False):
        self.units = units
        self.return_sequences = return_sequences
        self.bidirectional = bidirectional

    def build_layer(self):
        return L.Recurrent(
            self._cell, self.units, self.return_sequences, bidirectional=self.bidirectional
        )


_RNN_DOC = """{what} layer over (timesteps, features) samples.

    Parameters
    ----------
    units : int, default=32
        Hidden units.{extra}
    return_sequences : bool, default=False
        Output every step's hidden state (timesteps, units), to stack another recurrent
        layer; otherwise only the last one (units,).
    bidirectional : bool, default=False
        Also run the cell (with its own weights) over each sequence reversed within its
        length, and concatenate the two directions' outputs, forward first (PyTorch's
        layout): ``2 * units`` features per step, or the two final states.
    """


class LSTM(_Recurrent):
    __doc__ = _RNN_DOC.format(what="Long short-term memory (PyTorch's gates i, f, g, o)", extra="")
    _cell = "lstm"


class GRU(_Recurrent):
    __doc__ = _RNN_DOC.format(what="Gated recurrent unit (PyTorch's gates r, z, n)", extra="")
    _cell = "gru"


class RNN(_Recurrent):
    __doc__ = _RNN_DOC.format(
        what="Elman recurrent",
        extra="""
    activation : {'tanh', 'relu'}, default='tanh'
        Nonlinearity of the recurrence.""",
    )
    _cell = "rnn"

    def __init__(self, units=32, *, activation="tanh", return_sequences=False, bidirectional=False):
        self.units = units
        self.activation = activation
        self.return_sequences = return_sequences
        self.bidirectional = bidirectional

    def build_layer(self):
        return L.Recurrent(
            "rnn", self.units, self.return_sequences, self.activation, self.bidirectional
        )


# doctest examples of the templated classes
Conv1D.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv1D
    >>> net = NetworkClassifier([Conv1D(8, 5, stride=2)])
    >>> [layer.output_shape for layer in net.build_layers((1, 40), n_outputs=2)]
    [(8, 20), (160,), (2,)]
    """
Conv2D.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv2D
    >>> net = NetworkClassifier([Conv2D(4, 3, padding="valid")])
    >>> [layer.output_shape for layer in net.build_layers((1, 8, 8), n_outputs=2)]
    [(4, 6, 6), (144,), (2,)]
    """
MaxPool1D.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv1D, MaxPool1D
    >>> net = NetworkClassifier([Conv1D(4), MaxPool1D(3, stride=2)])
    >>> [layer.output_shape for layer in net.build_layers((1, 40), n_outputs=2)]
    [(4, 40), (4, 19), (76,), (2,)]
    """
AvgPool1D.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv1D, AvgPool1D
    >>> net = NetworkClassifier([Conv1D(4), AvgPool1D(2)])
    >>> [layer.output_shape for layer in net.build_layers((1, 40), n_outputs=2)]
    [(4, 40), (4, 20), (80,), (2,)]
    """
MaxPool2D.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv2D, MaxPool2D
    >>> net = NetworkClassifier([Conv2D(4), MaxPool2D(2)])
    >>> [layer.output_shape for layer in net.build_layers((1, 8, 8), n_outputs=2)]
    [(4, 8, 8), (4, 4, 4), (64,), (2,)]
    """
AvgPool2D.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import Conv2D, AvgPool2D
    >>> net = NetworkClassifier([Conv2D(4), AvgPool2D(2)])
    >>> [layer.output_shape for layer in net.build_layers((1, 8, 8), n_outputs=2)]
    [(4, 8, 8), (4, 4, 4), (64,), (2,)]
    """
LSTM.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import LSTM
    >>> net = NetworkClassifier([LSTM(16, return_sequences=True), LSTM(8)])
    >>> [layer.output_shape for layer in net.build_layers((20, 3), n_outputs=2)]
    [(20, 16), (8,), (2,)]
    """
GRU.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import GRU
    >>> net = NetworkClassifier([GRU(16)])
    >>> [layer.output_shape for layer in net.build_layers((20, 3), n_outputs=2)]
    [(16,), (2,)]
    """
RNN.__doc__ += """
    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import RNN
    >>> net = NetworkClassifier([RNN(8, activation="relu")])
    >>> [layer.output_shape for layer in net.build_layers((20, 3), n_outputs=2)]
    [(8,), (2,)]
    """


# ======================================================================================
# lists of named specifications (the estimators' ``layers`` and Residual's)
# ======================================================================================
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class _InvalidLayers(ValueError, TypeError):
    """A layer list that is not one: both a ValueError (a bad parameter value, as
    scikit-learn's ``InvalidParameterError``) and a TypeError (of the wrong type)."""


def named_layers(layers, where="layers"):
    """``[(name, spec), ...]`` from a list of pairs or bare specs, checked.

    Bare specs are named after their class in lower case, numbered when repeated
    (``conv1d-1``, ``conv1d-2``), as :func:`sklearn.pipeline.make_pipeline` names steps.
    """
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise _InvalidLayers(
            f"{where} must be a list of (name, layer) pairs or layers, got {type(layers).__name__}."
        )
    layers = list(layers)
    if not layers:
        raise ValueError(f"{where} must hold at least one layer.")
    bare = [type(e).__name__.lower() for e in layers if isinstance(e, LayerSpec)]
    counts = {name: bare.count(name) for name in bare}
    seen = {}
    out = []
    for i, entry in enumerate(layers):
        if isinstance(entry, LayerSpec):
            base = type(entry).__name__.lower()
            seen[base] = seen.get(base, 0) + 1
            name = base if counts[base] == 1 else f"{base}-{seen[base]}"
            spec = entry
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            name, spec = entry
        else:
            raise _InvalidLayers(
                f"{where}[{i}] must be a (name, layer) pair or a layer of sknet.layers, "
                f"got {entry!r:.100}."
            )
        if not isinstance(name, str) or not _NAME.match(name) or "__" in name:
            raise ValueError(
                f"{where}[{i}] has name {name!r}; names are non-empty strings of letters, "
                "digits, '_', '-' and '.' without '__'."
            )
        if not isinstance(spec, LayerSpec):
            raise _InvalidLayers(
                f"{where}[{i}] ({name!r}) must be a layer of sknet.layers (Dense, "
                f"Conv1D, ...), got {type(spec).__name__}."
            )
        out.append((name, spec))
    names = [name for name, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where} has repeated names {dup}; each layer needs its own name.")
    return out


def layer_list_params(layers, prefix, deep):
    """``get_params`` entries of a layer list: ``prefix__name`` and, deep, its params."""
    out = {}
    if not deep or layers is None:
        return out
    try:
        pairs = named_layers(layers, prefix)
    except (TypeError, ValueError):
        return out  # reported at fit, where the list is used
    for name, spec in pairs:
        out[f"{prefix}__{name}"] = spec
        for key, value in spec.get_params(deep=True).items():
            out[f"{prefix}__{name}__{key}"] = value
    return out


def set_layer_list_params(owner, attr, params):
    """Apply the ``attr__...`` entries of ``params`` to ``owner.attr``; return the rest.

    ``attr__name`` replaces that layer (in a new list, the user's is not modified);
    ``attr__name__param`` sets a parameter of the layer, as ``Pipeline`` does.
    """
    rest = {}
    replace = {}
    nested = {}
    lead = attr + "__"
    for key, value in params.items():
        if not key.startswith(lead):
            rest[key] = value
            continue
        name, _, sub = key[len(lead) :].partition("__")
        if sub:
            nested.setdefault(name, {})[sub] = value
        else:
            replace[name] = value
    if not replace and not nested:
        return rest
    layers = getattr(owner, attr)
    if layers is None:
        raise ValueError(
            f"Invalid parameter {next(iter({**replace, **nested}))!r} under {attr}: "
            f"{type(owner).__name__}.{attr} is None (the default layers); pass a list."
        )
    pairs = named_layers(layers, attr)
    names = [name for name, _ in pairs]
    for name in list(replace) + list(nested):
        if name not in names:
            raise ValueError(
                f"Invalid parameter {attr}__{name}: {type(owner).__name__}.{attr} has no "
                f"layer named {name!r} (names: {names})."
            )
    if replace:
        pairs = [(name, replace.get(name, spec)) for name, spec in pairs]
        setattr(owner, attr, pairs)
    for name, sub in nested.items():
        dict(pairs)[name].set_params(**sub)
    return rest


class Residual(LayerSpec):
    """A residual block: ``activation(branch(x) + shortcut(x))``.

    The branch runs ``layers`` in order. The shortcut is the identity when the branch
    keeps the sample shape; when it changes it (more channels, a stride), a projection
    joins the two: a 1x1 convolution (signals, images) or a dense layer without
    activation (features), whose weights are trained with the rest.

    Parameters
    ----------
    layers : list of (name, spec) pairs or specs
        The branch. Its layers' parameters are exposed as
        ``layers__<name>__<param>`` (and, inside an estimator,
        ``layers__<block>__layers__<name>__<param>``).
    shortcut : {'auto', 'identity', 'projection'}, default='auto'
        'auto': the identity when the shapes match, else a projection; 'identity'
        refuses a branch that changes the shape; 'projection' always projects.
    shortcut_batchnorm : bool, default=False
        Batch-normalize the shortcut (the published time-series ResNet does).
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Applied after the sum.

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import BatchNorm, Conv1D, Residual
    >>> net = NetworkClassifier([Residual([("conv", Conv1D(8)), ("bn", BatchNorm())])])
    >>> [layer.output_shape for layer in net.build_layers((1, 30), n_outputs=2)]
    [(8, 30), (240,), (2,)]
    """

    def __init__(self, layers, *, shortcut="auto", shortcut_batchnorm=False, activation="relu"):
        self.layers = layers
        self.shortcut = shortcut
        self.shortcut_batchnorm = shortcut_batchnorm
        self.activation = activation

    @property
    def _input_layout(self):
        for _, spec in named_layers(self.layers, "Residual.layers"):
            if spec._input_layout is not None:
                return spec._input_layout
        return None

    def get_params(self, deep=True):
        out = super().get_params(deep=False)
        out.update(layer_list_params(self.layers, "layers", deep))
        return out

    def set_params(self, **params):
        rest = set_layer_list_params(self, "layers", params)
        return super().set_params(**rest) if rest else self

    def build_layer(self):
        built = []
        for name, spec in named_layers(self.layers, "Residual.layers"):
            try:
                built.append(spec.build_layer())
            except (TypeError, ValueError) as exc:
                raise ValueError(f"Residual layer {name!r}: {exc}") from None
        return L.Residual(built, self.shortcut, self.shortcut_batchnorm, self.activation)


# ======================================================================================
# the time-series networks of Wang, Yan & Oates (2017)
# ======================================================================================
def fcn(filters=(128, 256, 128), kernel_sizes=(8, 5, 3)):
    """The Fully Convolutional Network for time-series classification.

    Three blocks of convolution ('same' padding), batch normalization and ReLU, then
    global average pooling, as published by Wang, Yan & Oates (2017) and benchmarked by
    Fawaz et al. (2019); the estimator adds the output layer (softmax for a
    classifier). Give it to :class:`sknet.NetworkClassifier` as ``layers=fcn()``; it
    takes ``(n_samples, n_channels, length)`` or 2-D univariate rows.

    Parameters
    ----------
    filters : sequence of int, default=(128, 256, 128)
        Filters of each block.
    kernel_sizes : sequence of int, default=(8, 5, 3)
        Kernel size of each block.

    Returns
    -------
    layers : list of (name, spec)
        Names ``conv1``, ``bn1``, ``relu1``, ``conv2``, ... and ``gap``.

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import fcn
    >>> clf = NetworkClassifier(fcn())
    >>> [name for name, _ in clf.layers]
    ['conv1', 'bn1', 'relu1', 'conv2', 'bn2', 'relu2', 'conv3', 'bn3', 'relu3', 'gap']
    >>> clf.build_layers((1, 150), n_outputs=2)[-2].output_shape
    (128,)
    >>> clf.set_params(layers__conv2__filters=64).get_params()["layers__conv2__filters"]
    64
    """
    if len(filters) != len(kernel_sizes):
        raise ValueError(
            f"fcn: filters and kernel_sizes differ in length ({len(filters)} and "
            f"{len(kernel_sizes)})."
        )
    layers = []
    for i, (f, k) in enumerate(zip(filters, kernel_sizes), start=1):
        layers += [
            (f"conv{i}", Conv1D(f, k, activation="identity")),
            (f"bn{i}", BatchNorm()),
            (f"relu{i}", Activation("relu")),
        ]
    return layers + [("gap", GlobalAveragePool())]


def resnet(filters=(64, 128, 128), kernel_sizes=(8, 5, 3)):
    """The residual network for time-series classification.

    Three residual blocks; each runs three convolutions of kernel sizes
    ``kernel_sizes`` ('same' padding), each followed by batch normalization and (but
    the last) ReLU; the shortcut is a 1x1 convolution when the number of channels
    changes, followed by batch normalization; ReLU after the sum. Then global average
    pooling. As published by Wang, Yan & Oates (2017), in the form benchmarked by
    Fawaz et al. (2019).

    Parameters
    ----------
    filters : sequence of int, default=(64, 128, 128)
        Filters of the convolutions of each block.
    kernel_sizes : sequence of int, default=(8, 5, 3)
        Kernel sizes of the three convolutions inside every block.

    Returns
    -------
    layers : list of (name, spec)
        Names ``block1``, ``block2``, ... and ``gap``; inside a block ``conv1``,
        ``bn1``, ``relu1``, ..., ``conv3``, ``bn3``.

    Examples
    --------
    >>> from sknet import NetworkClassifier
    >>> from sknet.layers import resnet
    >>> clf = NetworkClassifier(resnet())
    >>> [layer.output_shape for layer in clf.build_layers((1, 150), n_outputs=3)]
    [(64, 150), (128, 150), (128, 150), (128,), (3,)]
    >>> clf.get_params()["layers__block2__layers__conv1__kernel_size"]
    8
    """
    layers = []
    n_conv = len(kernel_sizes)
    for b, f in enumerate(filters, start=1):
        branch = []
        for i, k in enumerate(kernel_sizes, start=1):
            branch += [(f"conv{i}", Conv1D(f, k, activation="identity")), (f"bn{i}", BatchNorm())]
            if i < n_conv:
                branch.append((f"relu{i}", Activation("relu")))
        layers.append((f"block{b}", Residual(branch, shortcut_batchnorm=True)))
    return layers + [("gap", GlobalAveragePool())]
