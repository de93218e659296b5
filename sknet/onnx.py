"""Export fitted sknet estimators to ONNX, for serving without Python or numba.

ONNX support is optional (``pip install 'sknet[onnx]'``: the packages ``onnx``, and
``onnxruntime`` and ``skl2onnx`` to run and to convert pipelines). This module imports
without them; its functions raise an ``ImportError`` naming the extra.

:func:`to_onnx` writes one estimator's inference graph as an ``onnx.ModelProto``;
:func:`register` teaches ``skl2onnx`` the sknet estimators, so that a scikit-learn
pipeline holding one (``make_pipeline(StandardScaler(), MLPClassifier())``) converts
with ``skl2onnx.to_onnx`` like any scikit-learn pipeline.

The exported graph's input ``X`` is a float32 tensor ``[N, ...]`` laid out as the
estimator's ``predict`` takes it (2-D rows, or the per-sample shape of the sample given
to :func:`to_onnx`); the first node reshapes it to the network's per-sample shape,
row-major, as ``predict`` does. The outputs follow ``skl2onnx``'s conventions:

* classifiers: ``label`` (``[N]``, int64 or string as ``classes_``; ``[N, n_labels]``
  0/1 int64 for multilabel targets) and ``probabilities`` (``[N, n_classes]`` float32,
  ``predict_proba``);
* regressors: ``variable`` (``[N, n_outputs]`` float32, ``predict``; one column for a
  single output);
* :class:`~sknet.NetworkFeatures`: ``variable``, the chosen layer's output flattened
  per sample (``transform``).

Each sknet layer becomes standard ONNX operators (the default domain, opset
:data:`DEFAULT_OPSET`, any opset from :data:`MIN_OPSET` on):

====================  ===============================================================
sknet layer           ONNX operators
====================  ===============================================================
``Dense``             ``Gemm``, then the activation (``Relu``, ``Tanh``, ``Sigmoid``)
``Conv1D/2D``         ``Conv`` (explicit ``pads``, ``strides``, ``dilations``), activation
``Max/AvgPool``       ``MaxPool`` / ``AveragePool`` (no padding)
``GlobalPool``        ``GlobalAveragePool`` / ``GlobalMaxPool``, ``Flatten``
``BatchNorm``         ``Mul`` and ``Add`` with the running statistics folded in
                      (inference mode)
``Dropout``           nothing (the identity at inference)
``Flatten``           ``Flatten``
``Activation``        the activation
``RNN/LSTM/GRU``      ``RNN`` / ``LSTM`` / ``GRU`` (gate blocks reordered to ONNX's
                      ``iofc`` and ``zrh``; the GRU with ``linear_before_reset=1``,
                      sknet's and PyTorch's formulation), between ``Transpose`` nodes
``Residual``          the branch, the shortcut, ``Add``, the activation
====================  ===============================================================

The output activation (softmax, logistic, exp) follows; a classifier's label is the
``ArgMax`` of the probabilities (multiclass) or ``p > 0.5`` (binary, multilabel), looked
up in ``classes_`` with ``Gather``. The weights are stored in float32, whatever the
network's dtype; outputs agree with a float32 network's ``predict`` within float32
rounding (the tests require 1e-5).
"""

import sys
from numbers import Integral

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import NotFittedError

from . import _composable, _convnet, _mlp, _rnn  # noqa: F401 - their classes are registered
from ._base import BaseNetworkEstimator
from ._layers.conv import conv_output_size
from .transfer import FineTuner, NetworkFeatures

__all__ = ["to_onnx", "register", "DEFAULT_OPSET", "MIN_OPSET"]

#: The ONNX opset :func:`to_onnx` targets by default.
DEFAULT_OPSET = 18
#: The oldest opset the graphs are written for (``Squeeze`` takes its axes as an input,
#: ``Softmax`` works on one axis).
MIN_OPSET = 13

_EXTRA = "pip install 'sknet[onnx]'"
_ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid"}
_FLOAT = np.float32


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            f"sknet.onnx needs the onnx package, an optional dependency: {_EXTRA}."
        ) from exc
    return onnx


def _import_skl2onnx():
    try:
        import skl2onnx
    except ImportError as exc:
        raise ImportError(
            f"sknet.onnx.register needs the skl2onnx package, an optional dependency: {_EXTRA}."
        ) from exc
    return skl2onnx


# ======================================================================================
# where the nodes go: a graph of our own, or skl2onnx's scope and container
# ======================================================================================
class _Graph:
    """Nodes and initializers of a graph being written, with unique names."""

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self._used = set()

    def name(self, hint):
        name, k = hint, 0
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name

    def const(self, value, hint):
        """An initializer holding ``value`` (ndarray); its name."""
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(_onnx_array(value), name))
        return name

    def node(self, op, inputs, hint=None, *, outputs=None, **attrs):
        """Add an ``op`` node; its output name (a list when it has several).

        ``outputs`` fixes the output names (a graph output, or several outputs, "" for
        an optional one not computed); otherwise the one output's name is made unique
        from ``hint`` (the op's name by default).
        """
        from onnx import helper

        if outputs is None:
            outputs = [self.name(hint or op.lower())]
        self.nodes.append(
            helper.make_node(op, list(inputs), list(outputs), name=self.name(op), **attrs)
        )
        return outputs[0] if len(outputs) == 1 else list(outputs)


class _Skl2OnnxGraph(_Graph):
    """The same interface writing into skl2onnx's ``scope`` and ``container``."""

    def __init__(self, scope, container):
        super().__init__()
        self.scope = scope
        self.container = container

    def name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def const(self, value, hint):
        from onnx import TensorProto, numpy_helper

        name = self.name(hint)
        value = _onnx_array(value)
        if value.dtype == object:  # string labels: skl2onnx copies only raw data
            self.container.add_initializer(
                name, TensorProto.STRING, list(value.shape), [s.encode() for s in value.ravel()]
            )
        else:
            tensor = numpy_helper.from_array(value, name)
            self.container.add_initializer(name, tensor.data_type, list(value.shape), tensor)
        return name

    def node(self, op, inputs, hint=None, *, outputs=None, **attrs):
        if outputs is None:
            outputs = [self.name(hint or op.lower())]
        self.container.add_node(
            op,
            list(inputs),
            list(outputs),
            op_version=MIN_OPSET,
            name=self.scope.get_unique_operator_name(op),
            **attrs,
        )
        return outputs[0] if len(outputs) == 1 else list(outputs)


def _onnx_array(value):
    value = np.asarray(value)
    if value.dtype.kind in "UO":
        return value.astype(object)
    return value


# ======================================================================================
# one row per layer kind: how a layer's inference pass is written in ONNX operators
# ======================================================================================
def _weights(array):
    return np.ascontiguousarray(array, dtype=_FLOAT)


def _activation(g, x, name):
    if name == "identity":
        return x
    return g.node(_ACTIVATION_OPS[name], [x])


def _dense(g, layer, params, state, x):
    W, b = g.const(_weights(params["W"]), "W"), g.const(_weights(params["b"]), "b")
    return _activation(g, g.node("Gemm", [x, W, b], "dense"), layer.activation)


def _conv(g, layer, params, state, x):
    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    extent = d * (k - 1) + 1
    before, after = [], []
    for n_in in layer.input_shape[1:]:
        out, top = conv_output_size(n_in, k, s, layer.padding, d)
        before.append(top)
        # with floor division, ONNX then gives sknet's output size: (out - 1) s + extent
        # inputs, the rows past them (a negative "after") being skipped as sknet does
        after.append(max((out - 1) * s + extent - n_in - top, 0))
    W, b = g.const(_weights(params["W"]), "W"), g.const(_weights(params["b"]), "b")
    y = g.node(
        "Conv",
        [x, W, b],
        "conv",
        kernel_shape=[k] * layer.ndim,
        strides=[s] * layer.ndim,
        dilations=[d] * layer.ndim,
        pads=before + after,
    )
    return _activation(g, y, layer.activation)


def _pool(g, layer, params, state, x):
    stride = layer.size if layer.stride is None else layer.stride
    op = "MaxPool" if layer.mode == "max" else "AveragePool"
    return g.node(op, [x], kernel_shape=[layer.size] * layer.ndim, strides=[stride] * layer.ndim)


def _global_pool(g, layer, params, state, x):
    op = "GlobalMaxPool" if layer.mode == "max" else "GlobalAveragePool"
    return g.node("Flatten", [g.node(op, [x])], axis=1)


def _batchnorm(g, layer, params, state, x):
    # inference: gamma (x - mean) / sqrt(var + eps) + beta = x * scale + shift
    gamma = np.asarray(params["gamma"], np.float64)
    beta = np.asarray(params["beta"], np.float64)
    mean = np.asarray(state["running_mean"], np.float64)
    var = np.asarray(state["running_var"], np.float64)
    scale = gamma / np.sqrt(var + layer.eps)
    shift = beta - mean * scale
    shape = (-1,) + (1,) * (len(layer.input_shape) - 1)  # the channel axis, broadcast
    y = g.node("Mul", [x, g.const(_weights(scale).reshape(shape), "bn_scale")])
    return g.node("Add", [y, g.const(_weights(shift).reshape(shape), "bn_shift")], "batchnorm")


def _identity(g, layer, params, state, x):
    return x


def _flatten(g, layer, params, state, x):
    return g.node("Flatten", [x], axis=1)


def _activation_layer(g, layer, params, state, x):
    return _activation(g, x, layer.activation)


#: ONNX operator, and for ONNX's gate block k the sknet block it takes (ONNX orders the
#: LSTM's gates i, o, f, c and the GRU's z, r, h; sknet, as PyTorch, i, f, g, o and
#: r, z, n)
_CELL_OPS = {
    "rnn": ("RNN", (0,)),
    "lstm": ("LSTM", (0, 3, 1, 2)),
    "gru": ("GRU", (1, 0, 2)),
}


def _gates(a, order):
    """Gate blocks along axis 0 of ``a`` in ONNX's order."""
    blocks = np.split(np.asarray(a), len(order))
    return np.concatenate([blocks[k] for k in order])


def _recurrent(g, layer, params, state, x):
    op, order = _CELL_OPS[layer.cell]
    H = layer.units
    # one block per direction (sknet's ``W_x_reverse`` ... for the backward one), stacked
    # on ONNX's direction axis
    directions = ("", "_reverse") if getattr(layer, "bidirectional", False) else ("",)
    Ws, Rs, Bs = [], [], []
    for sfx in directions:
        Ws.append(_gates(params["W_x" + sfx].T, order))  # (G H, d)
        Rs.append(_gates(params["W_h" + sfx].T, order))  # (G H, H)
        if "b" + sfx in params:  # one bias (Elman, LSTM): the recurrence's bias is zero
            b_x, b_h = params["b" + sfx], np.zeros_like(params["b" + sfx])
        else:  # GRU: b_h stays inside r * (h W_hn + b_hn), as linear_before_reset=1 has it
            b_x, b_h = params["b_x" + sfx], params["b_h" + sfx]
        Bs.append(np.concatenate([_gates(b_x, order), _gates(b_h, order)]))  # (2 G H,)
    W, R, B = np.stack(Ws), np.stack(Rs), np.stack(Bs)
    n_dir = len(directions)
    attrs = {"hidden_size": H, "direction": "bidirectional" if n_dir == 2 else "forward"}
    if layer.cell == "rnn":
        attrs["activations"] = [_ACTIVATION_OPS[layer.activation]] * n_dir
    if layer.cell == "gru":
        attrs["linear_before_reset"] = 1
    # onnxruntime runs the recurrent operators time-major only (layout=0)
    xt = g.node("Transpose", [x], perm=[1, 0, 2])
    inputs = [xt, g.const(_weights(W), "W"), g.const(_weights(R), "R"), g.const(_weights(B), "B")]
    if layer.return_sequences:  # Y (T, D, N, H) -> (N, T, D H), forward direction first
        y = g.node(op, inputs, layer.cell, outputs=[g.name(layer.cell + "_Y")], **attrs)
        y = g.node("Transpose", [y], perm=[2, 0, 1, 3])
        return g.node("Reshape", [y, g.const(np.array([0, 0, -1], np.int64), "shape")])
    # Y_h (D, N, H) -> (N, D H): each direction's final state; Y is not computed
    y = g.node(op, inputs, layer.cell, outputs=["", g.name(layer.cell + "_Y_h")], **attrs)
    y = g.node("Transpose", [y[1]], perm=[1, 0, 2])
    return g.node("Reshape", [y, g.const(np.array([0, -1], np.int64), "shape")])


def _sub(views, prefix):
    return {name[len(prefix) :]: v for name, v in views.items() if name.startswith(prefix)}


def _residual(g, layer, params, state, x):
    out = x
    for i, child in enumerate(layer.layers):
        out = _emit_layer(g, child, _sub(params, f"{i}."), _sub(state, f"{i}."), out)
    short = x
    for i, child in enumerate(layer.shortcut_layers):
        prefix = f"shortcut{i}."
        short = _emit_layer(g, child, _sub(params, prefix), _sub(state, prefix), short)
    return _activation(g, g.node("Add", [out, short], "residual"), layer.activation)


#: ``layer.kind`` -> writer ``(graph, layer, params, state, input name) -> output name``
LAYER_WRITERS = {
    "dense": _dense,
    "conv": _conv,
    "pool": _pool,
    "global_pool": _global_pool,
    "batchnorm": _batchnorm,
    "dropout": _identity,
    "flatten": _flatten,
    "activation": _activation_layer,
    "recurrent": _recurrent,
    "residual": _residual,
}


def _emit_layer(g, layer, params, state, x):
    writer = LAYER_WRITERS.get(layer.kind)
    if writer is None:
        raise ValueError(
            f"sknet.onnx cannot export a {type(layer).__name__} layer (kind {layer.kind!r}); "
            f"it exports {sorted(LAYER_WRITERS)}."
        )
    return writer(g, layer, params, state, x)


# ======================================================================================
# estimators: input reshape, layers, output head
# ======================================================================================
def _network_estimator(estimator):
    """``(sknet estimator, stop or None)`` of what is exported; NotFittedError if not fitted."""
    if isinstance(estimator, FineTuner):
        if not hasattr(estimator, "estimator_"):
            raise NotFittedError("This FineTuner instance is not fitted yet: call fit first.")
        return estimator.estimator_, None
    if isinstance(estimator, NetworkFeatures):
        est = estimator.estimator
        if type(est).__name__ == "FrozenEstimator":
            est = est.estimator
        if not isinstance(est, BaseNetworkEstimator):
            raise TypeError(
                f"NetworkFeatures wraps a {type(est).__name__}, not an sknet estimator."
            )
        net = est.network_  # NotFittedError if the wrapped network is not fitted
        n = len(net.layers)
        if estimator.layer is None:
            if est.last_hidden_layer_ < 0:
                raise ValueError("The network has no hidden layer; pass layer= explicitly.")
            return est, est.last_hidden_layer_ + 1
        return est, int(estimator.layer) % n + 1
    if not isinstance(estimator, BaseNetworkEstimator):
        raise TypeError(
            "to_onnx exports sknet estimators (MLP, RNN, ConvNet, Network, FineTuner, "
            f"NetworkFeatures), got {type(estimator).__name__}."
        )
    estimator.network_  # noqa: B018 - NotFittedError if not fitted
    return estimator, None


def _kind(est, stop):
    """'classifier', 'regressor' or 'features' (the graph's head)."""
    if stop is not None:
        return "features"
    return "classifier" if is_classifier(est) else "regressor"


def _class_labels(est):
    """``classes_`` as an int64 or string array (``multilabel``: the column indices)."""
    classes = np.asarray(est.classes_)
    if classes.dtype.kind in "iub":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f" and np.all(classes == np.round(classes)):
        return classes.astype(np.int64)  # integral floats, as scikit-learn's int labels
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes):
        return classes.astype(object)
    raise ValueError(
        "ONNX labels are int64 or strings: classes_ must hold integers or strings, got "
        f"{classes.dtype} values {classes[:5].tolist()}."
    )


def _is_multilabel(est):
    return est.network_.out_activation == "logistic" and est.n_outputs_ > 1


def _write_estimator(g, est, stop, x, outputs):
    """The whole graph from input name ``x`` to the given output names."""
    if getattr(est, "output", "last") != "last":
        raise ValueError(
            f"sknet.onnx does not export models with one output per time step "
            f"(output={est.output!r}) yet; only output='last'."
        )
    net = est.network_
    shape = g.const(np.array((-1,) + tuple(net.input_shape), np.int64), "input_shape")
    z = g.node("Reshape", [x, shape], "X_sample")
    n_layers = len(net.layers) if stop is None else stop
    for layer, params, state in zip(net.layers[:n_layers], net.params, net.states):
        z = _emit_layer(g, layer, params, state, z)
    kind = _kind(est, stop)
    if kind == "features":
        g.node("Flatten", [z], axis=1, outputs=outputs)
    elif kind == "regressor":
        if net.out_activation == "exp":  # the Poisson loss's log link
            g.node("Exp", [z], outputs=outputs)
        else:
            g.node("Identity", [z], outputs=outputs)
    else:
        _write_classifier_head(g, est, z, *outputs)


def _write_classifier_head(g, est, z, label, proba):
    from onnx import TensorProto

    act = est.network_.out_activation
    if act == "softmax":
        classes = g.const(_class_labels(est), "classes")
        p = g.node("Softmax", [z], axis=1, outputs=[proba])
        idx = g.node("ArgMax", [p], axis=1, keepdims=0)
        g.node("Gather", [classes, idx], axis=0, outputs=[label])
        return
    p = g.node("Sigmoid", [z])
    # predict: p > 0.5, LabelBinarizer's threshold
    positive = g.node("Greater", [p, g.const(np.array(0.5, _FLOAT), "threshold")])
    if _is_multilabel(est):
        g.node("Identity", [p], outputs=[proba])
        g.node("Cast", [positive], to=TensorProto.INT64, outputs=[label])
        return
    classes = g.const(_class_labels(est), "classes")
    if len(est.classes_) == 1:
        # y had one class: one column of ones and that class, as predict_proba/predict
        zero = g.const(np.array(0.0, _FLOAT), "zero")
        g.node(
            "Add",
            [g.node("Mul", [p, zero]), g.const(np.array(1.0, _FLOAT), "one")],
            outputs=[proba],
        )
        positive = g.node("Less", [p, zero])  # never: index 0
    else:
        one_minus = g.node("Sub", [g.const(np.array(1.0, _FLOAT), "one"), p])
        g.node("Concat", [one_minus, p], axis=1, outputs=[proba])
    idx = g.node("Cast", [positive], to=TensorProto.INT64)
    idx = g.node("Reshape", [idx, g.const(np.array([-1], np.int64), "flat")])
    g.node("Gather", [classes, idx], axis=0, outputs=[label])


def _check_opset(target_opset, max_opset):
    if target_opset is None:
        return min(DEFAULT_OPSET, max_opset)
    if (
        isinstance(target_opset, bool)
        or not isinstance(target_opset, Integral)
        or not MIN_OPSET <= target_opset <= max_opset
    ):
        raise ValueError(
            f"target_opset must be an int from {MIN_OPSET} to {max_opset} (the installed "
            f"onnx's newest), got {target_opset!r}."
        )
    return int(target_opset)


def _sample(est, X):
    """The ONNX input's per-sample shape, checked against the estimator."""
    if isinstance(X, Integral) and not isinstance(X, bool):
        if X < 1:
            raise ValueError(f"X (the number of features) must be >= 1, got {X}.")
        sample = np.zeros((1, int(X)), _FLOAT)
    else:
        sample = np.asarray(X)
        if sample.ndim < 2 or sample.shape[0] < 1:
            raise ValueError(
                "X must be sample data (at least one row, of shape (n_samples, ...)) or the "
                f"number of features, got an array of shape {sample.shape}."
            )
        sample = sample[:1]
    # validated as predict validates it (a ValueError naming the mismatch)
    est.forward(sample, stop=0)
    return tuple(int(s) for s in sample.shape[1:])


def to_onnx(estimator, X, *, target_opset=None):
    """The ONNX model of a fitted sknet estimator's inference pass.

    Parameters
    ----------
    estimator : fitted sknet estimator
        An MLP, RNN, ConvNet or Network classifier or regressor, a fitted
        :class:`~sknet.FineTuner` (its ``estimator_``) or a
        :class:`~sknet.NetworkFeatures` on a fitted network (its ``transform``).
        It is not modified.

    X : array-like or int
        Sample input (only its first row's shape is used) or the number of features of
        a 2-D row. The model's input ``X`` is float32 of shape ``[N, *X.shape[1:]]``
        (``[N, X]`` for an int), which must be an input the estimator's ``predict``
        accepts.

    target_opset : int, default=None
        The ONNX opset, from :data:`MIN_OPSET` to the installed onnx's newest;
        None means :data:`DEFAULT_OPSET`.

    Returns
    -------
    model : onnx.ModelProto
        Checked with ``onnx.checker``. Input ``X`` (float32); outputs ``label`` and
        ``probabilities`` for a classifier, ``variable`` otherwise (see the module's
        description).

    Raises
    ------
    ImportError
        If onnx is not installed (``pip install 'sknet[onnx]'``).
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.
    ValueError
        If ``X`` does not fit the estimator, if the class labels are neither integers
        nor strings, or if a layer has no ONNX form.

    See Also
    --------
    register : Convert pipelines holding sknet estimators with ``skl2onnx``.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from sknet import MLPClassifier
    >>> from sknet.onnx import to_onnx
    >>> X = np.random.RandomState(0).randn(60, 4).astype(np.float32)
    >>> y = np.where(X[:, 0] > 0, "yes", "no")
    >>> clf = MLPClassifier((8,), max_iter=50, random_state=0).fit(X, y)
    >>> model = to_onnx(clf, X)
    >>> sess = ort.InferenceSession(model.SerializeToString(),
    ...                             providers=["CPUExecutionProvider"])
    >>> label, proba = sess.run(None, {"X": X})
    >>> bool((label == clf.predict(X)).all())
    True
    >>> bool(np.allclose(proba, clf.predict_proba(X), atol=1e-5))
    True
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper

    opset = _check_opset(target_opset, onnx.defs.onnx_opset_version())
    est, stop = _network_estimator(estimator)
    sample_shape = _sample(est, X)
    g = _Graph()
    g.name("X")
    kind = _kind(est, stop)
    if kind == "classifier":
        outputs = [g.name("label"), g.name("probabilities")]
    else:
        outputs = [g.name("variable")]
    _write_estimator(g, est, stop, "X", outputs)

    net = est.network_
    n_out = int(np.prod(net.output_shape if stop is None else net.layers[stop - 1].output_shape))
    values = []
    if kind == "classifier":
        labels = _class_labels(est)
        label_type = TensorProto.STRING if labels.dtype == object else TensorProto.INT64
        label_shape = ["N", est.n_outputs_] if _is_multilabel(est) else ["N"]
        values.append(helper.make_tensor_value_info(outputs[0], label_type, label_shape))
        n_proba = labels.shape[0] if _is_multilabel(est) or net.out_activation == "softmax" else 2
        values.append(helper.make_tensor_value_info(outputs[1], TensorProto.FLOAT, ["N", n_proba]))
    else:
        values.append(helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, ["N", n_out]))
    graph = helper.make_graph(
        g.nodes,
        f"sknet_{type(estimator).__name__}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", *sample_shape])],
        values,
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="sknet",
        producer_version=sys.modules["sknet"].__version__,
    )
    # the oldest IR version that carries this opset, so that older runtimes load it
    model.ir_version = _ir_version(opset, model.ir_version)
    onnx.checker.check_model(model)
    return model


def _ir_version(opset, default):
    from onnx import helper

    try:
        return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    except (AttributeError, ValueError, KeyError):  # pragma: no cover - onnx's own tables
        return default


# ======================================================================================
# skl2onnx: shape calculators and converters for every sknet estimator class
# ======================================================================================
def _check_float_input(operator):
    from skl2onnx.common.data_types import FloatTensorType

    type_ = operator.inputs[0].type
    if not isinstance(type_, FloatTensorType):
        raise TypeError(
            f"sknet's ONNX converter takes float tensors, got {type(type_).__name__} for "
            f"{type(operator.raw_operator).__name__}: declare the input as FloatTensorType "
            "(or pass float32 data to skl2onnx.to_onnx)."
        )


def _shape_calculator(operator):
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    _check_float_input(operator)
    est, stop = _network_estimator(operator.raw_operator)
    N = operator.inputs[0].get_first_dimension()
    net = est.network_
    kind = _kind(est, stop)
    if kind == "classifier":
        labels = _class_labels(est)
        label_cls = StringTensorType if labels.dtype == object else Int64TensorType
        multilabel = _is_multilabel(est)
        operator.outputs[0].set_type(label_cls([N, est.n_outputs_] if multilabel else [N]))
        n_proba = labels.shape[0] if multilabel or net.out_activation == "softmax" else 2
        operator.outputs[1].set_type(FloatTensorType([N, n_proba]))
    else:
        shape = net.output_shape if stop is None else net.layers[stop - 1].output_shape
        operator.outputs[0].set_type(FloatTensorType([N, int(np.prod(shape))]))


def _converter(scope, operator, container):
    _check_float_input(operator)
    est, stop = _network_estimator(operator.raw_operator)
    if is_classifier(est) and container.get_options(est, dict(nocl=False))["nocl"]:
        raise ValueError(
            "sknet's ONNX converter writes the class labels: option nocl=True is not supported."
        )
    g = _Skl2OnnxGraph(scope, container)
    if container.target_opset is not None and container.target_opset < MIN_OPSET:
        raise ValueError(
            f"sknet's ONNX converter needs target_opset >= {MIN_OPSET}, got "
            f"{container.target_opset}."
        )
    _write_estimator(
        g,
        est,
        stop,
        operator.inputs[0].full_name,
        [out.full_name for out in operator.outputs],
    )


def _estimator_classes():
    """sknet's classifiers and regressors (every concrete family, found as subclasses of
    the estimator base), FineTuner and NetworkFeatures."""

    def walk(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    found = {
        cls
        for cls in walk(BaseNetworkEstimator)
        if cls.__module__.startswith("sknet.")
        and issubclass(cls, (ClassifierMixin, RegressorMixin))
    }
    return [FineTuner, NetworkFeatures] + sorted(found, key=lambda cls: cls.__name__)


def register():
    """Register every sknet estimator with ``skl2onnx``.

    After this call, ``skl2onnx.to_onnx`` converts scikit-learn pipelines holding sknet
    estimators (and sknet estimators alone) with the converters of :func:`to_onnx`:
    classifiers give ``label`` and ``probabilities`` (a ZipMap of them unless
    ``options={"zipmap": False}``, as for scikit-learn's classifiers), regressors and
    :class:`~sknet.NetworkFeatures` a float tensor. Calling it again does nothing new.
    Only float32 (``FloatTensorType``) inputs are supported.

    Registration changes ``skl2onnx``'s global table of converters, which is why it is
    a function to call rather than a side effect of importing this module.

    Returns
    -------
    classes : list of type
        The registered estimator classes.

    Raises
    ------
    ImportError
        If skl2onnx (or onnx) is not installed (``pip install 'sknet[onnx]'``).

    See Also
    --------
    to_onnx : Export one estimator without skl2onnx.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> import skl2onnx
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sknet import MLPRegressor
    >>> from sknet.onnx import register
    >>> classes = register()
    >>> X = np.random.RandomState(0).randn(60, 3).astype(np.float32)
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    >>> pipe = make_pipeline(StandardScaler(), reg).fit(X, y)
    >>> model = skl2onnx.to_onnx(pipe, X[:1])
    >>> sess = ort.InferenceSession(model.SerializeToString(),
    ...                             providers=["CPUExecutionProvider"])
    >>> pred = sess.run(None, {"X": X})[0]
    >>> bool(np.allclose(pred.ravel(), pipe.predict(X), atol=1e-4))
    True
    """
    _import_onnx()
    skl2onnx = _import_skl2onnx()
    classes = _estimator_classes()
    for cls in classes:
        if cls is FineTuner:
            # parsed as its estimator_ (a classifier or a regressor, known once fitted)
            skl2onnx.update_registered_converter(
                cls,
                "SknetFineTuner",
                _shape_calculator,
                _converter,
                parser=_parse_fine_tuner,
                options=_CLASSIFIER_OPTIONS,
            )
            continue
        classifier = issubclass(cls, ClassifierMixin)
        skl2onnx.update_registered_converter(
            cls,
            f"Sknet{cls.__name__}",
            _shape_calculator,
            _converter,
            # the option skl2onnx's classifier parser reads (a ZipMap after the outputs)
            options=_CLASSIFIER_OPTIONS if classifier else None,
        )
    return classes


#: the options skl2onnx's classifier parser reads: a ZipMap after the outputs, and in
#: it "nocl" (only nocl=False, the real class labels, is written)
_CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [False, True]}


def _parse_fine_tuner(scope, model, inputs, custom_parsers=None):
    """skl2onnx parser of a FineTuner: that of its fitted ``estimator_``, which also
    takes the options given for the FineTuner."""
    from skl2onnx._parse import _parse_sklearn  # the dispatch skl2onnx applies to a step

    if not hasattr(model, "estimator_"):
        raise NotFittedError("This FineTuner instance is not fitted yet: call fit first.")
    options = scope.get_options(model, {})
    if options:
        if scope.options is None:
            scope.options = {}
        scope.options.setdefault(id(model.estimator_), {}).update(options)
    return _parse_sklearn(scope, model.estimator_, inputs, custom_parsers=custom_parsers)
