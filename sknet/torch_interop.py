"""Exchange weights with PyTorch: import from a module or ``state_dict``, export back.

PyTorch is optional (``pip install sknet[torch]``); it is imported only inside the
functions that need it, and :func:`from_torch` accepts a plain ``dict`` of NumPy arrays
too, so importing weights does not require torch at all.

How parameters correspond (sknet multiplies from the right, ``x @ W``)

=====================  ==============================  ========================================
sknet layer            PyTorch module                  conversion
=====================  ==============================  ========================================
``Dense``              ``nn.Linear``                   ``W = weight.T``, ``b = bias``
``Conv1D``/``Conv2D``  ``nn.Conv1d``/``nn.Conv2d``     ``W = weight`` ((F, C, k) / (F, C, kh,
                                                       kw)), ``b = bias``
Elman RNN              ``nn.RNN``                      ``W_x = weight_ih.T``, ``W_h =
                                                       weight_hh.T``, ``b = bias_ih + bias_hh``
LSTM (i, f, g, o)      ``nn.LSTM``                     same as the RNN, four gate blocks in
                                                       PyTorch's order
GRU (r, z, n)          ``nn.GRU``                      ``W_x``, ``W_h`` as above, ``b_x =
                                                       bias_ih``, ``b_h = bias_hh`` (kept
                                                       apart: ``b_hn`` sits inside ``r *
                                                       (...)``)
``BatchNorm``          ``nn.BatchNorm1d`` on (C,) and  ``gamma = weight``, ``beta = bias``; the
                       (C, L), ``nn.BatchNorm2d`` on   state ``running_mean``, ``running_var``
                       (C, H, W)                       = the buffers of the same names; same
                                                       ``momentum``, ``eps``
                                                       (``num_batches_tracked`` is ignored)
``GlobalPool``         ``nn.AdaptiveAvgPool1d(1)`` /   none; followed by ``nn.Flatten()``
                       ``AdaptiveMaxPool1d(1)`` (2d
                       on images)
``Activation``         ``nn.ReLU`` / ``nn.Tanh`` /     none (the identity: no module)
                       ``nn.Sigmoid``
``Residual``           ``ResidualModule``: a           the branch's and the shortcut's layers
                       ``branch`` and a ``shortcut``   as above, in that order
                       ``nn.Sequential``, then an
                       ``activation``
=====================  ==============================  ========================================

Layers without parameters (activations, dropout, flatten, pooling) have no entries in a
``state_dict``; sknet fuses activations into ``Dense`` and ``Conv``, so the architecture
(and the activations) must match the module's. Parameter groups are matched to sknet's
layers in order: each module that owns parameters (``fc1.weight``, ``fc1.bias``, ...)
feeds the next sknet layer that has parameters, the layers inside a residual block
(branch, then shortcut) counting one by one; a multi-layer ``nn.LSTM``
(``weight_ih_l0``, ``weight_ih_l1``, ...) feeds one sknet recurrent layer per level. A
batch normalization's group also carries its running statistics, which become the sknet
layer's state (a batch normalization without them, ``track_running_stats=False``, is
refused). A bidirectional ``nn.LSTM`` (``..._reverse`` parameters) feeds a recurrent
layer with ``bidirectional=True``, its ``_reverse`` parameters converted alike. Modules
with parameters or buffers sknet has no counterpart for (projections) are refused with a
``ValueError``.

A ``state_dict`` carries shapes only. Given a module, :func:`from_torch` also checks the
settings that shapes do not reveal (convolution stride, padding, dilation, groups,
padding mode; the Elman nonlinearity; batch normalization's ``eps`` and ``momentum``;
the module types) and, for an ``nn.Sequential``, its sequence of activations, batch
normalizations, pooling layers and residual blocks.

:func:`to_torch` returns an ``nn.Sequential`` that takes input in the network's
per-sample shape, sample axis first: ``(n, C, H, W)`` / ``(n, C, L)`` for convolutional
networks and ``(n, T, d)`` for recurrent ones.
"""

import copy
import re
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
from sklearn.base import clone

from ._base import BaseNetworkEstimator
from .kernels.recurrent import CELLS

__all__ = ["from_torch", "to_torch"]

_RNN_KEY = re.compile(r"^(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")
#: a batch normalization's buffers, named alike in PyTorch and in sknet's layer state
_BN_STATE = ("running_mean", "running_var")


class _TorchCell(NamedTuple):
    """How one recurrent cell of ``sknet.kernels.recurrent.CELLS`` maps onto PyTorch."""

    module: str  # the torch.nn class
    gate_order: tuple  # sknet's gate block k is PyTorch's block gate_order[k]
    nonlinearity: bool = False  # the module has an Elman ``nonlinearity`` (the activation)


# One row per recurrent cell. The biases follow the cell's parameters: one bias ``b`` is
# ``bias_ih + bias_hh``; two biases ``b_x``, ``b_h`` are ``bias_ih``, ``bias_hh``.
_TORCH_CELLS = {
    "rnn": _TorchCell("RNN", (0,), nonlinearity=True),
    "lstm": _TorchCell("LSTM", (0, 1, 2, 3)),
    "gru": _TorchCell("GRU", (0, 1, 2)),
}


def _import_torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "This function needs PyTorch: pip install 'sknet[torch]' (torch==2.13.0)."
        ) from exc
    return torch


# ======================================================================================
# reading a state_dict into ordered parameter groups
# ======================================================================================
def _to_numpy(value, key):
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor
        return value.detach().cpu().numpy()
    raise TypeError(
        f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor or an ndarray."
    )


def _groups(state_dict):
    """Ordered ``(display name, module path, {param: ndarray})``, one per parameterised
    module (one per level of a multi-layer RNN)."""
    groups = OrderedDict()
    for key, value in state_dict.items():
        prefix, _, name = key.rpartition(".")
        m = _RNN_KEY.match(name)
        if m:
            gkey = (prefix, int(m.group(3)))
            pname = f"{m.group(1)}_{m.group(2)}{m.group(4) or ''}"  # ..._reverse: bidirectional
        elif name == "num_batches_tracked":  # PyTorch's counter, for momentum=None only
            continue
        elif name in ("weight", "bias") + _BN_STATE:
            gkey = (prefix, None)
            pname = name
        else:
            raise ValueError(
                f"state_dict entry {key!r} has no sknet counterpart (only weight/bias of "
                "Linear/Conv, weight_ih/hh, bias_ih/hh of RNN/LSTM/GRU and weight/bias/"
                "running_mean/running_var of BatchNorm are supported)."
            )
        groups.setdefault(gkey, {})[pname] = _to_numpy(value, key)
    out = []
    for (prefix, level), params in groups.items():
        name = prefix or "<root>"
        if level is not None:
            name = f"{name} (level {level})"
        out.append((name, prefix, params))
    return out


def _state_dict(source):
    if hasattr(source, "state_dict") and callable(source.state_dict):
        return source.state_dict()
    if hasattr(source, "items"):
        return source
    raise TypeError(
        f"source must be a torch.nn.Module or a state_dict mapping, got {type(source).__name__}."
    )


# ======================================================================================
# per-layer conversion, decided by the sknet layer's parameter names and shapes
# ======================================================================================
def _expect(arr, shape, what):
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(arr.shape)}, expected {tuple(shape)}.")


def _gates_to_sknet(a, gate_order):
    """PyTorch's gate blocks (axis 0 of ``a``) in sknet's order."""
    blocks = np.split(np.asarray(a), len(gate_order))
    return np.concatenate([blocks[k] for k in gate_order])


def _gates_to_torch(a, gate_order):
    """sknet's gate blocks (axis 0 of ``a``) in PyTorch's order."""
    return _gates_to_sknet(a, tuple(np.argsort(gate_order)))


def _recurrent_to_sknet(cell, params, group, where):
    """Values for a recurrent layer's ``params`` (views, by name) from the torch group
    ``weight_ih``, ``weight_hh`` and optional ``bias_ih``, ``bias_hh``."""
    order = _TORCH_CELLS[cell].gate_order
    for key in ("weight_ih", "weight_hh"):
        if key not in group:
            raise ValueError(f"{where}: missing {key}.")
    _expect(group["weight_ih"], params["W_x"].shape[::-1], f"{where}: weight_ih")
    _expect(group["weight_hh"], params["W_h"].shape[::-1], f"{where}: weight_hh")
    values = {
        "W_x": _gates_to_sknet(group["weight_ih"], order).T,
        "W_h": _gates_to_sknet(group["weight_hh"], order).T,
    }
    zeros = np.zeros(params["W_h"].shape[1])
    b_ih = group.get("bias_ih", zeros)
    b_hh = group.get("bias_hh", zeros)
    _expect(b_ih, zeros.shape, f"{where}: bias_ih")
    _expect(b_hh, zeros.shape, f"{where}: bias_hh")
    b_ih, b_hh = _gates_to_sknet(b_ih, order), _gates_to_sknet(b_hh, order)
    biases = CELLS[cell].param_names[2:]
    if len(biases) == 1:  # Elman / LSTM: the two biases add up
        values[biases[0]] = b_ih.astype(np.float64) + b_hh.astype(np.float64)
    else:  # GRU: kept apart
        values[biases[0]], values[biases[1]] = b_ih, b_hh
    return values


_REVERSE = "_reverse"


def _bidirectional_to_sknet(cell, params, group, where):
    """``_recurrent_to_sknet`` per direction: a bidirectional layer's ``..._reverse``
    parameters from the group's ``..._reverse`` entries (PyTorch's names)."""
    directions = ("", _REVERSE) if any(k.endswith(_REVERSE) for k in params) else ("",)
    has_reverse = any(k.endswith(_REVERSE) for k in group)
    if has_reverse != (len(directions) == 2):
        raise ValueError(
            f"{where}: the torch module is {'' if has_reverse else 'not '}bidirectional, the "
            f"sknet layer is {'' if len(directions) == 2 else 'not '}(set bidirectional="
            f"{has_reverse})."
        )
    values = {}
    for sfx in directions:
        mine = {k[: len(k) - len(sfx)]: v for k, v in params.items() if k.endswith(sfx)}
        mine = {k: v for k, v in mine.items() if not k.endswith(_REVERSE)}
        theirs = {k[: len(k) - len(sfx)]: v for k, v in group.items() if k.endswith(sfx)}
        theirs = {k: v for k, v in theirs.items() if not k.endswith(_REVERSE)}
        for name, v in _recurrent_to_sknet(cell, mine, theirs, f"{where}{sfx}").items():
            values[name + sfx] = v
    return values


def _recurrent_to_torch(cell, params):
    """torch-layout arrays (``weight_ih_l0`` ..., and ``weight_ih_l0_reverse`` ... for a
    bidirectional layer) for a recurrent layer's ``params``."""
    order = _TORCH_CELLS[cell].gate_order
    out = {}
    bidirectional = any(k.endswith(_REVERSE) for k in params)
    for sfx in ("", _REVERSE) if bidirectional else ("",):
        biases = [params[name + sfx] for name in CELLS[cell].param_names[2:]]
        if len(biases) == 1:
            biases.append(np.zeros_like(biases[0]))
        out["weight_ih_l0" + sfx] = _gates_to_torch(params["W_x" + sfx].T, order)
        out["weight_hh_l0" + sfx] = _gates_to_torch(params["W_h" + sfx].T, order)
        out["bias_ih_l0" + sfx] = _gates_to_torch(biases[0], order)
        out["bias_hh_l0" + sfx] = _gates_to_torch(biases[1], order)
    return out


def _batchnorm_to_sknet(params, group, where):
    """gamma, beta and the running statistics of a BatchNorm from a torch group."""
    extra = set(group) - {"weight", "bias", *_BN_STATE}
    if extra:
        raise ValueError(f"{where}: unexpected entries {sorted(extra)} for a batch normalization.")
    missing = [key for key in _BN_STATE if key not in group]
    if missing:
        raise ValueError(
            f"{where}: no {' / '.join(missing)} in the source; sknet's batch normalization "
            "predicts with running statistics (a torch BatchNorm built with "
            "track_running_stats=False has none)."
        )
    shape = params["gamma"].shape
    values = {}
    # affine=False: no weight or bias, that is gamma = 1 and beta = 0
    for name, key, default in (("gamma", "weight", 1.0), ("beta", "bias", 0.0)):
        values[name] = group.get(key, np.full(shape, default))
    for key in ("weight", "bias", *_BN_STATE):
        if key in group:
            _expect(group[key], shape, f"{where}: {key}")
    for key in _BN_STATE:
        values[key] = group[key]
    if (np.asarray(group["running_var"]) < 0).any():
        raise ValueError(f"{where}: running_var has negative entries.")
    return values


def _torch_to_sknet(params, group, where, layer=None):
    """Values for ``params`` (the sknet layer's views) from a torch parameter group."""
    names = set(params)
    values = {}
    if names == {"W", "b"} and "weight" in group:
        W = params["W"]
        weight = group["weight"]
        if set(group) - {"weight", "bias"}:
            raise ValueError(f"{where}: unexpected entries {sorted(group)}.")
        if W.ndim == 2:  # Dense <- Linear: x @ W == x @ weight.T
            _expect(weight, W.shape[::-1], f"{where}: weight")
            values["W"] = weight.T
        else:  # Conv <- ConvNd: same (F, C, *kernel) layout
            _expect(weight, W.shape, f"{where}: weight")
            values["W"] = weight
        bias = group.get("bias")
        if bias is None:
            values["b"] = np.zeros(params["b"].shape)
        else:
            _expect(bias, params["b"].shape, f"{where}: bias")
            values["b"] = bias
        return values
    if names == {"gamma", "beta"}:  # BatchNorm: parameters and running statistics
        return _batchnorm_to_sknet(params, group, where)
    cell = getattr(layer, "cell", None)
    if cell in _TORCH_CELLS and "weight_ih" in group:
        return _bidirectional_to_sknet(cell, params, group, where)
    raise ValueError(
        f"{where}: cannot map torch parameters {sorted(group)} onto sknet parameters "
        f"{sorted(names)}; the architectures differ."
    )


def _sknet_to_torch(params, layer):
    """torch-layout arrays (name -> ndarray) for one sknet layer's parameters."""
    names = set(params)
    if names == {"W", "b"}:
        W = params["W"]
        return {"weight": W.T if W.ndim == 2 else W, "bias": params["b"]}
    if names == {"gamma", "beta"}:
        return {"weight": params["gamma"], "bias": params["beta"]}
    if getattr(layer, "cell", None) in _TORCH_CELLS:
        return _recurrent_to_torch(layer.cell, params)
    raise ValueError(f"No PyTorch layout for {type(layer).__name__} parameters {sorted(names)}.")


# ======================================================================================
# architecture checks on a torch module (a state_dict alone carries no hyperparameters)
# ======================================================================================
def _conv_pads(layer):
    """``(before, after)`` zero padding per spatial axis of an sknet ``Conv`` layer."""
    from ._layers.conv import conv_output_size

    k, s, d = layer.kernel_size, layer.stride, layer.dilation
    extent = d * (k - 1) + 1  # the dilated kernel's span
    pads = []
    for n_in in layer.input_shape[1:]:
        out, before = conv_output_size(n_in, k, s, layer.padding, d)
        pads.append((before, max((out - 1) * s + extent - n_in - before, 0)))
    return pads


def _batchnorm_class(layer):
    """PyTorch's batch normalization for an sknet ``BatchNorm`` layer's input."""
    return "BatchNorm2d" if len(layer.input_shape) == 3 else "BatchNorm1d"


def _leaves(layers, params, states, paths):
    """``(path, layer, param views, state views)`` of every layer with parameters, in
    ``theta`` order; a residual block contributes the layers inside it, branch then
    shortcut (its views ``"<i>.<name>"`` / ``"shortcut<i>.<name>"``), with paths such as
    ``"3.shortcut0"``."""
    out = []
    for path, layer, p, st in zip(paths, layers, params, states):
        if type(layer).__name__ == "Residual":
            inner = [(f"{i}.", child) for i, child in enumerate(layer.layers)]
            inner += [(f"shortcut{i}.", child) for i, child in enumerate(layer.shortcut_layers)]
            out += _leaves(
                [child for _, child in inner],
                [_split(p, pre) for pre, _ in inner],
                [_split(st, pre) for pre, _ in inner],
                [f"{path}.{pre[:-1]}" for pre, _ in inner],
            )
        elif p:
            out.append((path, layer, p, st))
    return out


def _split(views, prefix):
    """The views whose names start with ``prefix``, without it."""
    return {name[len(prefix) :]: v for name, v in views.items() if name.startswith(prefix)}


def _as_tuple(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _check_module(mod, layer, where):
    """ValueError if a parameterised torch module computes something else than ``layer``
    with the same weights (stride, dilation, groups, padding, Elman nonlinearity)."""
    kind, cls = type(layer).__name__, type(mod).__name__
    problems = []
    if kind == "Conv":
        nd = layer.ndim
        if cls != f"Conv{nd}d":
            problems.append(f"it is an nn.{cls}, not an nn.Conv{nd}d")
        else:
            if _as_tuple(mod.stride, nd) != (layer.stride,) * nd:
                problems.append(f"stride {mod.stride} instead of {layer.stride}")
            if _as_tuple(mod.dilation, nd) != (layer.dilation,) * nd:
                problems.append(f"dilation {mod.dilation} instead of {layer.dilation}")
            if mod.groups != 1:
                problems.append(f"groups={mod.groups} (sknet has none)")
            if mod.padding_mode != "zeros":
                problems.append(f"padding_mode={mod.padding_mode!r} (sknet pads with zeros)")
            pads = _conv_pads(layer)
            if mod.padding == "same":  # torch: stride 1, the extra pixel after
                total = _as_tuple(mod.dilation, nd)[0] * (layer.kernel_size - 1)
                if pads != [(total // 2, total - total // 2)] * nd:
                    problems.append(
                        f"padding='same' where sknet pads {pads} (before, after) per axis"
                    )
            elif mod.padding != "valid":
                torch_pads = _as_tuple(mod.padding, nd)
                # no padding in the conv: it may come from a padding module before it
                if any(torch_pads) and [(p, p) for p in torch_pads] != pads:
                    problems.append(
                        f"padding {mod.padding} where sknet pads {pads} (before, after) per axis"
                    )
    elif kind == "Recurrent":
        row = _TORCH_CELLS[layer.cell]
        if cls != row.module:
            problems.append(
                f"it is an nn.{cls}, the sknet layer an {layer.cell!r} cell (nn.{row.module})"
            )
        elif row.nonlinearity and mod.nonlinearity != layer.activation:
            problems.append(f"nonlinearity={mod.nonlinearity!r} instead of {layer.activation!r}")
        if cls == row.module and bool(mod.bidirectional) != layer.bidirectional:
            problems.append(f"bidirectional={mod.bidirectional} instead of {layer.bidirectional}")
    elif kind == "Dense" and cls != "Linear":
        problems.append(f"it is an nn.{cls}, not an nn.Linear")
    elif kind == "BatchNorm":
        expected = _batchnorm_class(layer)
        if cls != expected:
            problems.append(
                f"it is an nn.{cls}, where samples of shape {layer.input_shape} take an "
                f"nn.{expected}"
            )
        else:
            if not mod.track_running_stats:
                problems.append("track_running_stats=False (sknet predicts with running stats)")
            if mod.eps != layer.eps:
                problems.append(f"eps={mod.eps} instead of {layer.eps}")
            if mod.momentum is None:
                problems.append("momentum=None (a cumulative average; sknet has none)")
            elif mod.momentum != layer.momentum:
                problems.append(f"momentum={mod.momentum} instead of {layer.momentum}")
    if problems:
        raise ValueError(
            f"{where}: the module differs from the sknet layer: {'; '.join(problems)}."
        )


_IGNORED = {
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Flatten",
    "Identity",
    "ZeroPad2d",
    "ConstantPad1d",
    "ZeroPad1d",
}
_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "logistic"}
_GLOBAL_POOLS = {
    "AdaptiveAvgPool1d": "avg",
    "AdaptiveAvgPool2d": "avg",
    "AdaptiveMaxPool1d": "max",
    "AdaptiveMaxPool2d": "max",
}
_WEIGHTED = {"Linear", "Conv1d", "Conv2d", "RecurrentModule"} | {
    row.module for row in _TORCH_CELLS.values()
}


def _pool_step(mode, nd, size, stride):
    return f"{mode}pool{nd}d({size})" if stride == size else f"{mode}pool{nd}d({size}, {stride})"


def _torch_steps(module):
    """What a ``Sequential`` computes, as comparable steps; ``None`` if it holds a module
    whose computation is not known here (then only the weights are checked)."""
    steps = []
    for child in module.children():
        cls = type(child).__name__
        if cls == "Sequential":
            inner = _torch_steps(child)
            if inner is None:
                return None
            steps += inner
        elif cls in _WEIGHTED:
            steps.append("weights")
        elif cls in _ACTIVATIONS:
            steps.append(_ACTIVATIONS[cls])
        elif cls in ("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d"):
            nd = int(cls[-2])
            size = _as_tuple(child.kernel_size, nd)
            stride = _as_tuple(child.stride, nd)
            plain = (
                len(set(size)) == 1
                and len(set(stride)) == 1
                and not any(_as_tuple(child.padding, nd))
                and not child.ceil_mode
                and _as_tuple(getattr(child, "dilation", 1), nd) == (1,) * nd
            )
            mode = "max" if cls.startswith("Max") else "avg"
            steps.append(_pool_step(mode, nd, size[0], stride[0]) if plain else f"{cls}(other)")
        elif cls in ("Softmax", "LogSoftmax", "Exp"):
            steps.append(cls.lower())
        elif cls in ("BatchNorm1d", "BatchNorm2d"):
            steps.append("batchnorm")
        elif cls in _GLOBAL_POOLS:
            size = _as_tuple(child.output_size, int(cls[-2]))
            ok = all(s == 1 for s in size)
            steps.append(f"global{_GLOBAL_POOLS[cls]}pool" if ok else f"{cls}(other)")
        elif cls == "ResidualModule":
            branch, shortcut = _torch_steps(child.branch), _torch_steps(child.shortcut)
            act = type(child.activation).__name__
            if branch is None or shortcut is None:
                return None
            act = "identity" if act == "Identity" else _ACTIVATIONS.get(act, act)
            steps.append(("residual", tuple(branch), tuple(shortcut), act))
        elif cls in _IGNORED:
            if cls == "ConstantPad1d" and child.value != 0:
                return None
        else:
            return None
    return steps


def _sknet_steps(layers):
    steps = []
    for layer in layers:
        kind = type(layer).__name__
        if kind in ("Dense", "Conv", "Recurrent"):
            steps.append("weights")
        if kind == "Pool":
            stride = layer.size if layer.stride is None else layer.stride
            steps.append(_pool_step(layer.mode, layer.ndim, layer.size, stride))
        if kind == "BatchNorm":
            steps.append("batchnorm")
        if kind == "GlobalPool":
            steps.append(f"global{layer.mode}pool")
        if kind == "Residual":
            branch, shortcut = _sknet_steps(layer.layers), _sknet_steps(layer.shortcut_layers)
            steps.append(("residual", tuple(branch), tuple(shortcut), layer.activation))
            continue
        act = getattr(layer, "activation", "identity")
        if kind in ("Dense", "Conv", "Activation") and act != "identity":
            steps.append(act)
    return steps


def _check_sequential(module, net):
    """ValueError if an ``nn.Sequential``'s activations or pooling differ from sknet's."""
    steps = _torch_steps(module)
    if steps is None:
        return
    # an output activation at the end (as ``to_torch(..., output_activation=True)``)
    final = {"softmax": ("softmax", "logsoftmax"), "logistic": ("logistic",), "exp": ("exp",)}.get(
        net.out_activation, ()
    )
    if steps and steps[-1] in final:
        steps = steps[:-1]
    expected = _sknet_steps(net.layers)
    if steps != expected:
        k = next(
            (i for i, (a, b) in enumerate(zip(steps, expected)) if a != b),
            min(len(steps), len(expected)),
        )
        raise ValueError(
            f"The torch Sequential computes {steps} where the sknet network computes "
            f"{expected} (parameterised layers, activations, pooling); they differ at "
            f"step {k}. Adjust the sknet estimator (activation, pool, pool_size, layers, ...)."
        )


# ======================================================================================
# public API
# ======================================================================================
def from_torch(source, estimator, X=None, y=None):
    """An sknet estimator carrying the weights of a PyTorch module or ``state_dict``.

    Parameters
    ----------
    source : torch.nn.Module or mapping of str to tensor or ndarray
        The module (its ``state_dict()`` is read) or a ``state_dict``. Its parameterised
        modules must match, in order, the sknet network's layers with parameters.

    estimator : sknet estimator
        Defines the architecture. A fitted estimator is copied and its weights replaced.
        An unfitted one is cloned and its network built for ``(X, y)`` without training.

    X : array-like, default=None
        Sample input fixing the input shape and dtype (the network's dtype follows it:
        pass float32 data for a float32 network). Required if ``estimator`` is unfitted.

    y : array-like, default=None
        Sample targets fixing the classes or the number of outputs, as for ``fit``.
        Required if ``estimator`` is unfitted.

    Returns
    -------
    estimator : sknet estimator
        A new, ready-to-predict estimator (``n_iter_ == 0`` when built from ``X, y``).
        ``estimator`` itself is not modified.

    Raises
    ------
    ValueError
        If the parameter groups do not match the network's layers in number, kind or
        shape, or (when ``source`` is a module) if a module's settings -- convolution
        stride, padding, dilation, groups, Elman nonlinearity -- or an
        ``nn.Sequential``'s activations and pooling differ from the sknet network's.

    See Also
    --------
    to_torch : The reverse direction.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sknet import MLPRegressor
    >>> from sknet.torch_interop import from_torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> module = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(),
    ...                              torch.nn.Linear(8, 1)).double()
    >>> X = np.random.RandomState(0).randn(20, 3)
    >>> template = MLPRegressor(hidden_layer_sizes=(8,), activation="tanh")
    >>> reg = from_torch(module, template, X, np.zeros(20))
    >>> expected = module(torch.from_numpy(X)).detach().numpy().ravel()
    >>> bool(np.allclose(reg.predict(X), expected, rtol=1e-12))
    True
    """
    if not isinstance(estimator, BaseNetworkEstimator):
        raise TypeError(f"estimator must be an sknet estimator, got {type(estimator).__name__}.")
    if hasattr(estimator, "network_") and X is None:
        est = copy.deepcopy(estimator)
    elif X is None or y is None:
        raise ValueError(
            "estimator is not fitted: pass sample data X and y so that the network can be "
            "built (input shape, dtype, classes or outputs); nothing is trained."
        )
    else:
        est = clone(estimator).initialize(X, y)  # built for (X, y), not trained
    net = est.network_
    groups = _groups(_state_dict(source))
    n_layers = len(net.layers)
    targets = _leaves(net.layers, net.params, net.states, [str(i) for i in range(n_layers)])
    if len(groups) != len(targets):
        raise ValueError(
            f"The source has {len(groups)} modules with parameters "
            f"({[g[0] for g in groups]}), the sknet network {len(targets)} layers with "
            f"parameters ({[type(t[1]).__name__ for t in targets]})."
        )
    # a module (not a bare state_dict) also tells strides, padding, nonlinearities ...
    modules = (
        dict(source.named_modules()) if callable(getattr(source, "named_modules", None)) else {}
    )
    if type(source).__name__ == "Sequential" and modules:
        _check_sequential(source, net)
    # est is a fresh copy: its views of theta and state are written in place
    for (module, prefix, group), (path, layer, params, state) in zip(groups, targets):
        where = f"torch module {module!r} -> sknet layer {path} ({type(layer).__name__})"
        values = _torch_to_sknet(params, group, where, layer)
        if prefix in modules:
            _check_module(modules[prefix], layer, where)
        for views in (params, state):
            for name, view in views.items():
                view[...] = np.asarray(values[name]).astype(net.dtype).reshape(view.shape)
    new_theta = net.theta.copy()
    if not np.isfinite(new_theta).all() or not np.isfinite(net.state).all():
        raise ValueError("The source weights contain NaN or infinity.")
    # also resets what belonged to the old weights (optimiser moments, best weights and
    # state, the running statistics just imported)
    return est.set_weights(new_theta)


def _activation_module(nn, name):
    if name == "identity":
        return None
    table = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid}
    if name not in table:
        raise ValueError(f"No PyTorch module for activation {name!r}.")
    return table[name]()


# torch.nn.Module subclasses, defined on first use so that torch stays optional; the
# module-level __getattr__ below lets pickle find them (torch.save of a whole module).
_TORCH_CLASSES = {}


def _torch_classes():
    if _TORCH_CLASSES:
        return _TORCH_CLASSES
    torch = _import_torch()
    nn = torch.nn

    class RecurrentModule(nn.Module):
        """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (batch first) returning every hidden
        state (``return_sequences``) or the last one, like sknet's ``Recurrent``."""

        def __init__(
            self,
            cell,
            input_size,
            hidden_size,
            return_sequences=False,
            nonlinearity="tanh",
            bidirectional=False,
        ):
            super().__init__()
            row = _TORCH_CELLS[cell]
            options = {"nonlinearity": nonlinearity} if row.nonlinearity else {}
            self.rnn = getattr(nn, row.module)(
                input_size, hidden_size, batch_first=True, bidirectional=bidirectional, **options
            )
            self.return_sequences = return_sequences
            self.hidden_size = hidden_size

        def forward(self, x):
            out = self.rnn(x)[0]
            if self.return_sequences:
                return out
            if not self.rnn.bidirectional:
                return out[:, -1]
            # each direction's final state: the forward one's at the last step, the
            # reverse one's at the first (PyTorch's h_n)
            H = self.hidden_size
            return torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=1)

    class Exp(nn.Module):
        """``exp`` of the input (the Poisson loss's output activation)."""

        def forward(self, x):
            return x.exp()

    class ResidualModule(nn.Module):
        """``activation(branch(x) + shortcut(x))``, like sknet's ``Residual``; an empty
        ``shortcut`` is the identity."""

        def __init__(self, branch, shortcut, activation=None):
            super().__init__()
            self.branch = branch
            self.shortcut = shortcut
            self.activation = nn.Identity() if activation is None else activation

        def forward(self, x):
            return self.activation(self.branch(x) + self.shortcut(x))

    for cls in (RecurrentModule, Exp, ResidualModule):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        _TORCH_CLASSES[cls.__name__] = cls
    return _TORCH_CLASSES


def __getattr__(name):
    if name in ("RecurrentModule", "Exp", "ResidualModule"):
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _conv_modules(nn, layer, params):
    """Padding (when asymmetric) + ConvNd + activation, as sknet's ``Conv``."""
    F, C = params["W"].shape[:2]
    k, s, d, nd = layer.kernel_size, layer.stride, layer.dilation, layer.ndim
    pads = _conv_pads(layer)  # (before, after) per spatial axis
    conv_cls = nn.Conv2d if nd == 2 else nn.Conv1d
    mods = []
    if all(b == a for b, a in pads):
        conv = conv_cls(
            C,
            F,
            k,
            stride=s,
            padding=pads[0][0] if nd == 1 else tuple(b for b, _ in pads),
            dilation=d,
        )
    else:
        flat = []
        for before, after in reversed(pads):  # torch pads the last axis first
            flat += [before, after]
        mods.append(
            (nn.ZeroPad2d if nd == 2 else nn.ConstantPad1d)(
                tuple(flat), *(() if nd == 2 else (0.0,))
            )
        )
        conv = conv_cls(C, F, k, stride=s, padding=0, dilation=d)
    mods.append(conv)
    act = _activation_module(nn, layer.activation)
    return mods + ([act] if act is not None else []), conv


def _torch_modules(nn, layer, params, state):
    """PyTorch modules computing the same as one sknet layer, and the ``(module, layer,
    params, state)`` whose values the modules take (empty for a layer without
    parameters; one per layer inside a residual block)."""
    kind = type(layer).__name__
    if kind == "Dense":
        d, units = params["W"].shape
        linear = nn.Linear(d, units)
        act = _activation_module(nn, layer.activation)
        return [linear] + ([act] if act is not None else []), [(linear, layer, params, state)]
    if kind == "Conv":
        mods, conv = _conv_modules(nn, layer, params)
        return mods, [(conv, layer, params, state)]
    if kind == "BatchNorm":
        cls = getattr(nn, _batchnorm_class(layer))
        bn = cls(layer.input_shape[0], eps=layer.eps, momentum=layer.momentum)
        return [bn], [(bn, layer, params, state)]
    if kind == "Pool":
        table = {
            ("max", 2): nn.MaxPool2d,
            ("max", 1): nn.MaxPool1d,
            ("avg", 2): nn.AvgPool2d,
            ("avg", 1): nn.AvgPool1d,
        }
        return [table[layer.mode, layer.ndim](layer.size, layer.stride)], []
    if kind == "GlobalPool":
        nd = len(layer.input_shape) - 1
        name = f"Adaptive{layer.mode.capitalize()}Pool{nd}d"
        return [getattr(nn, name)(1), nn.Flatten()], []
    if kind == "Recurrent":
        cls = _torch_classes()["RecurrentModule"]
        mod = cls(
            layer.cell,
            layer.input_shape[1],
            layer.units,
            layer.return_sequences,
            layer.activation,
            layer.bidirectional,
        )
        return [mod], [(mod.rnn, layer, params, state)]
    if kind == "Dropout":
        return [nn.Dropout(layer.rate)], []
    if kind == "Flatten":
        return [nn.Flatten()], []
    if kind == "Activation":
        act = _activation_module(nn, layer.activation)
        return ([act] if act is not None else []), []
    if kind == "Residual":
        inner = [(f"{i}.", child) for i, child in enumerate(layer.layers)]
        n_branch = len(inner)
        inner += [(f"shortcut{i}.", child) for i, child in enumerate(layer.shortcut_layers)]
        seqs, targets = ([], []), []
        for k, (prefix, child) in enumerate(inner):
            mods, tgt = _torch_modules(nn, child, _split(params, prefix), _split(state, prefix))
            seqs[k >= n_branch].extend(mods)
            targets += tgt
        cls = _torch_classes()["ResidualModule"]
        mod = cls(
            nn.Sequential(*seqs[0]),
            nn.Sequential(*seqs[1]),
            _activation_module(nn, layer.activation),
        )
        return [mod], targets
    raise ValueError(
        f"to_torch does not know how to express a {kind} layer; from_torch can still "
        "import weights into it."
    )


def to_torch(estimator, *, output_activation=False):
    """A PyTorch module computing the same function as a fitted sknet network.

    Parameters
    ----------
    estimator : fitted sknet estimator
        The network to export; it is not modified.

    output_activation : bool, default=False
        Append the output activation (softmax, sigmoid or exp). By default the module
        returns the raw outputs (logits), as PyTorch's losses expect.

    Returns
    -------
    module : torch.nn.Sequential
        In the network's dtype (float32 or float64), in evaluation mode. Its
        ``state_dict()`` is the PyTorch form of the weights, and :func:`from_torch`
        reads it back exactly.

    See Also
    --------
    from_torch : The reverse direction.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from sknet import MLPClassifier
    >>> from sknet.torch_interop import to_torch
    >>> X = np.random.RandomState(0).randn(40, 4)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = MLPClassifier((6,), max_iter=20, random_state=0).fit(X, y)
    >>> module = to_torch(clf, output_activation=True)
    >>> p = module(torch.from_numpy(X)).detach().numpy().ravel()
    >>> bool(np.allclose(p, clf.predict_proba(X)[:, 1], rtol=1e-12))
    True
    """
    torch = _import_torch()
    nn = torch.nn
    if not isinstance(estimator, BaseNetworkEstimator) or not hasattr(estimator, "network_"):
        raise ValueError("to_torch needs a fitted sknet estimator.")
    net = estimator.network_
    dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    modules, weighted = [], []
    for layer, params, state in zip(net.layers, net.params, net.states):
        mods, targets = _torch_modules(nn, layer, params, state)
        weighted += targets
        modules.extend(mods)
    if output_activation:
        act = net.out_activation
        if act == "softmax":
            modules.append(nn.Softmax(dim=-1))
        elif act == "logistic":
            modules.append(nn.Sigmoid())
        elif act == "exp":
            modules.append(_torch_classes()["Exp"]())
    module = nn.Sequential(*modules).to(dtype)  # converts the parameters in place
    with torch.no_grad():
        for target, layer, params, state in weighted:
            values = _sknet_to_torch(params, layer)
            values.update(state)  # a batch normalization's running statistics
            for name, value in values.items():
                getattr(target, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module.eval()
