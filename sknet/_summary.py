"""A table of an estimator's layers, output shapes and parameter counts.

Works for every sknet estimator through its documented interface: ``build_layers``
before fit; ``network_``, ``input_shape_``, ``first_trainable_layer_`` and
``n_outputs_`` after fit. Only the layer protocol (``output_shape``, ``param_specs``,
``state_specs``, ``get_config``) is read from the layers, so new layer types appear
without changes here; a layer with ``layers`` and ``shortcut_layers`` (a residual block)
is one row followed by indented rows for the layers of its branch and its shortcut.
A :class:`~sklearn.pipeline.Pipeline` is summarised step by step (:class:`PipelineSummary`)
and a meta-estimator wrapping a network (``FineTuner``, ``NetworkFeatures``) through the
estimator it holds. Imports nothing from sknet: ``BaseNetworkEstimator.summary`` calls it.
"""

import inspect

import numpy as np

__all__ = ["ModelSummary", "PipelineSummary", "summary"]

#: how an output dimension that depends on the number of outputs is printed
N_OUTPUTS = "n_outputs"


def _as_shape(input_shape):
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(
            f"input_shape must be an int or a tuple of ints, got {input_shape!r}."
        ) from None
    if not shape or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(
            f"input_shape must be a non-empty tuple of positive ints (the shape of one "
            f"sample, without the sample axis), got {input_shape!r}."
        )
    return tuple(int(s) for s in shape)


def _n_params(layer):
    return sum(int(np.prod(shape)) for _, shape, _ in layer.param_specs())


def _n_state(layer):
    """Non-trained fitted values (batch normalization's running statistics)."""
    specs = getattr(layer, "state_specs", None)
    return 0 if specs is None else sum(int(np.prod(shape)) for _, shape, _ in specs())


#: a description wider than this (with its indentation) makes the table print the short
#: descriptions, which leave out the settings of ``OMITTED_AT_DEFAULT`` at their defaults
MAX_LAYER_WIDTH = 88
OMITTED_AT_DEFAULT = (
    "stride",
    "padding",
    "dilation",
    "momentum",
    "eps",
    "shortcut",
    "shortcut_batchnorm",
)


def _defaults(layer):
    try:
        parameters = inspect.signature(type(layer)).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - a layer without a signature
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _describe(layer, config=None, short=False):
    config = layer.get_config() if config is None else config
    if _parts(layer):  # its layers are rows of their own
        config = {k: v for k, v in config.items() if k != "layers"}
    if short:
        defaults = _defaults(layer)
        config = {
            k: v
            for k, v in config.items()
            if not (k in OMITTED_AT_DEFAULT and k in defaults and v == defaults[k])
        }
    args = ", ".join(f"{k}={v}" if v == N_OUTPUTS else f"{k}={v!r}" for k, v in config.items())
    return f"{type(layer).__name__}({args})"


def _parts(layer):
    """``[("branch", layers), ("shortcut", layers)]`` of a residual block, else ``[]``."""
    shortcut = getattr(layer, "shortcut_layers", None)
    if shortcut is None or not isinstance(getattr(layer, "layers", None), list):
        return []
    return [("branch", layer.layers), ("shortcut", shortcut)]


def _symbolic(a, b):
    """Values of one quantity built with 1 and 2 outputs -> display value."""
    return a if a == b else N_OUTPUTS


def _row(one, two, trainable, part=None):
    """The row of a layer built with 1 and 2 outputs (the same layer after fit)."""
    cfg1, cfg2 = one.get_config(), two.get_config()
    config = {k: _symbolic(v, cfg2.get(k)) for k, v in cfg1.items()}
    p1, p2 = _n_params(one), _n_params(two)
    row = {
        "layer": _describe(one, config),
        "layer_short": _describe(one, config, short=True),
        "output_shape": tuple(_symbolic(a, b) for a, b in zip(one.output_shape, two.output_shape)),
        "params": p1,
        "params_per_output": p2 - p1,
        "state": _n_state(one),
        "trainable": trainable,
        "sublayers": [],
    }
    if part is not None:
        row["part"] = part
    for (name, layers1), (_, layers2) in zip(_parts(one), _parts(two)):
        row["sublayers"] += [_row(a, b, trainable, name) for a, b in zip(layers1, layers2)]
        if name == "shortcut" and not layers1:  # the identity
            row["sublayers"].append(
                {
                    "layer": "identity",
                    "layer_short": "identity",
                    "output_shape": row["output_shape"],
                    "params": 0,
                    "params_per_output": 0,
                    "state": 0,
                    "trainable": trainable,
                    "sublayers": [],
                    "part": name,
                }
            )
    return row


def _flat(rows, depth=0):
    """(depth, row) of the rows and, after each, its sublayers."""
    for row in rows:
        yield depth, row
        yield from _flat(row.get("sublayers", ()), depth + 1)


def _label(row, depth, short):
    name = row.get("layer_short", row["layer"]) if short else row["layer"]
    if depth == 0:
        return name
    prefix = "shortcut: " if row.get("part") == "shortcut" else ""
    return "  " * depth + prefix + name


class ModelSummary:
    """The layer table returned by :func:`sknet.summary`; print it or read its rows.

    Parameters
    ----------
    title : str
        First line of the table.
    input_shape : tuple of int
        Shape of one sample.
    rows : list of dict
        One dict per layer with keys ``'layer'`` (str, the layer's class and
        settings), ``'output_shape'`` (tuple, sample axis excluded; ``'n_outputs'``
        where a dimension is the number of outputs), ``'params'`` (int, the count
        for one output when it depends on the number of outputs),
        ``'params_per_output'`` (int, 0 when the count does not depend on it) and
        ``'trainable'`` (bool); optionally ``'layer_short'`` (str, ``'layer'``
        without the settings at their defaults), ``'state'`` (int, values fitted
        but not trained: batch normalization's running statistics) and
        ``'sublayers'`` (list of such dicts, each with a ``'part'`` key,
        ``'branch'`` or ``'shortcut'``: the layers inside a residual block, whose
        ``'params'`` and ``'state'`` count theirs).
    footer : list of str
        Extra lines (output activation, loss).

    Attributes
    ----------
    total_params : int or None
        Number of parameters, or None when it depends on the number of outputs.
    trainable_params : int or None
        Parameters the solver updates (layers not frozen).
    non_trainable_params : int or None
        Parameters of frozen layers.
    state_size : int
        Fitted values that are not parameters: the running statistics of batch
        normalization (Keras counts them among its non-trainable parameters,
        PyTorch as buffers). Not in ``total_params``.
    """

    def __init__(self, title, input_shape, rows, footer=()):
        self.title = title
        self.input_shape = tuple(input_shape)
        self.rows = list(rows)
        self.footer = list(footer)
        symbolic = any(r["params_per_output"] for r in self.rows)
        train = sum(r["params"] for r in self.rows if r["trainable"])
        frozen = sum(r["params"] for r in self.rows if not r["trainable"])
        self.trainable_params = None if symbolic else train
        self.non_trainable_params = (
            frozen if all(r["trainable"] or not r["params_per_output"] for r in self.rows) else None
        )
        self.total_params = None if symbolic else train + frozen
        self.state_size = sum(r.get("state", 0) for r in self.rows)

    @staticmethod
    def _fmt_params(const, per_output):
        if not per_output:
            return f"{const:,}"
        term = f"{per_output:,}*{N_OUTPUTS}"
        return term if const == 0 else f"{const:,} + {term}"

    def _fmt_total(self, trainable):
        rows = [r for r in self.rows if trainable is None or r["trainable"] == trainable]
        per_output = sum(r["params_per_output"] for r in rows)
        const = sum(r["params"] for r in rows) - per_output
        return self._fmt_params(const, per_output)

    def __str__(self):
        header = ("#", "Layer", "Output shape", "Params")
        flat = list(_flat(self.rows))
        # long descriptions (a dilated convolution inside a block) make every row short
        short = any(len(_label(row, depth, False)) > MAX_LAYER_WIDTH for depth, row in flat)
        lines = [("", "Input", _fmt_shape(self.input_shape), "0")]
        number = 0
        for depth, r in flat:
            name = _label(r, depth, short)
            if depth == 0:
                number += 1
                if not r["trainable"]:
                    name += " [frozen]"
            const = r["params"] - r["params_per_output"]
            lines.append(
                (
                    str(number) if depth == 0 else "",
                    name,
                    _fmt_shape(r["output_shape"]),
                    self._fmt_params(const, r["params_per_output"]),
                )
            )
        widths = [max(len(row[j]) for row in [header] + lines) for j in range(4)]

        def fmt(row):
            return "  ".join(
                [
                    row[0].rjust(widths[0]),
                    row[1].ljust(widths[1]),
                    row[2].ljust(widths[2]),
                    row[3].rjust(widths[3]),
                ]
            ).rstrip()

        rule_len = sum(widths) + 6
        out = [self.title, "=" * rule_len, fmt(header), "-" * rule_len]
        out += [fmt(row) for row in lines]
        out.append("=" * rule_len)
        out.append(f"Total params: {self._fmt_total(None)}")
        out.append(f"Trainable params: {self._fmt_total(True)}")
        out.append(f"Non-trainable params: {self._fmt_total(False)}")
        if self.state_size:
            out.append(f"Running statistics: {self.state_size:,} (fitted, not trained)")
        out += self.footer
        return "\n".join(out)

    def __repr__(self):
        return str(self)


def _fmt_shape(shape):
    return "(" + ", ".join(["n"] + [str(s) for s in shape]) + ")"


def summary(estimator, input_shape=None, *, n_outputs=None):
    """Summarise an sknet estimator's network: layers, output shapes, parameter counts.

    Before ``fit`` the network is built from the hyperparameters for the given (or,
    when the estimator has an ``input_shape`` hyperparameter, inferred) shape of one
    sample; after ``fit`` the fitted network is described. Nothing is trained and
    the estimator is not modified.

    Parameters
    ----------
    estimator : sknet estimator, FineTuner, NetworkFeatures or Pipeline
        Fitted or not.
    input_shape : int or tuple of int, default=None
        Shape of one sample, without the sample axis: ``(n_features,)`` for an MLP,
        ``(n_timesteps, n_features)`` for a recurrent network, ``(C, H, W)`` for a
        convolutional one. Required before fit unless the estimator has an
        ``input_shape`` hyperparameter; after fit it must match the data seen.
    n_outputs : int, default=None
        Number of network outputs: 1 for one regression target or a binary
        classifier, the number of classes for a multiclass classifier, the number
        of targets or labels otherwise. Before fit and when None, the output layer
        is shown in terms of ``n_outputs``; after fit it is known.

    Returns
    -------
    summary : ModelSummary or PipelineSummary
        For a :class:`~sklearn.pipeline.Pipeline`, a :class:`PipelineSummary`: one line
        per step, and the layer table of each sknet step (``input_shape`` and
        ``n_outputs`` then describe the data that reaches the sknet steps). For a
        ``FineTuner`` or ``NetworkFeatures``, the table of the network it holds (after
        fit, the fine-tuned one, its frozen layers marked). Otherwise a
        :class:`ModelSummary`, which prints as a table; its ``rows``,
        ``total_params``, ``trainable_params``, ``non_trainable_params`` and
        ``state_size`` (running statistics, not parameters) attributes hold the
        numbers. A residual block is one row
        followed by indented rows for its branch and its shortcut.

    See Also
    --------
    TrainingHistoryDisplay : Plot of the loss and validation curves after fit.

    Examples
    --------
    >>> from sknet import MLPClassifier, summary
    >>> clf = MLPClassifier(hidden_layer_sizes=(32, 16))
    >>> print(summary(clf, input_shape=(64,), n_outputs=10))
    MLPClassifier (not fitted)
    ===============================================================
    #  Layer                                   Output shape  Params
    ---------------------------------------------------------------
       Input                                   (n, 64)            0
    1  Dense(units=32, activation='relu')      (n, 32)        2,080
    2  Dense(units=16, activation='relu')      (n, 16)          528
    3  Dense(units=10, activation='identity')  (n, 10)          170
    ===============================================================
    Total params: 2,778
    Trainable params: 2,778
    Non-trainable params: 0
    """
    if isinstance(getattr(estimator, "steps", None), list):
        return _summary_pipeline(estimator, input_shape, n_outputs)
    if not hasattr(estimator, "build_layers"):
        inner, role = _wrapped_network(estimator)
        if inner is None:
            raise TypeError(
                "summary() needs an sknet estimator, a meta-estimator holding one "
                "(FineTuner, NetworkFeatures) or a Pipeline, got "
                f"{type(estimator).__name__}."
            )
        if input_shape is None and not hasattr(inner, "network_"):
            # a FineTuner's new network takes the pretrained network's input
            source = getattr(estimator, "pretrained", None)
            source = getattr(source, "estimator", source)  # a FrozenEstimator
            input_shape = getattr(source, "input_shape_", None)
        out = summary(inner, input_shape, n_outputs=n_outputs)
        out.title = f"{type(estimator).__name__} ({role}): {out.title}"
        return out
    name = type(estimator).__name__
    if n_outputs is not None and (
        isinstance(n_outputs, bool) or not isinstance(n_outputs, (int, np.integer)) or n_outputs < 1
    ):
        raise ValueError(f"n_outputs must be a positive int, got {n_outputs!r}.")
    if hasattr(estimator, "network_"):
        return _summary_fitted(estimator, name, input_shape, n_outputs)

    if input_shape is None:
        input_shape = estimator.get_params(deep=False).get("input_shape")
        if input_shape is None:
            raise ValueError(
                f"summary() of an unfitted {name} needs input_shape, the shape of one "
                "sample without the sample axis (e.g. (n_features,) for an MLP); or "
                "fit the estimator first."
            )
    input_shape = _as_shape(input_shape)
    # build_layers also validates the hyperparameters, with clear errors
    if n_outputs is not None:
        layers = estimator.build_layers(input_shape, int(n_outputs))
        pairs = [(layer, layer) for layer in layers]
    else:
        pairs = list(
            zip(estimator.build_layers(input_shape, 1), estimator.build_layers(input_shape, 2))
        )
    # layers are frozen only by fitting (``fit_from``)
    rows = [_row(one, two, True) for one, two in pairs]
    return ModelSummary(f"{name} (not fitted)", input_shape, rows)


def _is_network(est):
    return hasattr(est, "build_layers")


def _wrapped_network(est):
    """``(network estimator, role)`` a meta-estimator holds, or ``(None, None)``.

    Read through public attributes only: the fitted ``estimator_`` (FineTuner after fit),
    then the ``estimator`` parameter (NetworkFeatures, a FineTuner's new network, a
    FrozenEstimator), then a FineTuner's ``pretrained`` estimator.
    """
    fitted = getattr(est, "estimator_", None)
    if _is_network(fitted):
        return fitted, "estimator_"
    for attr in ("estimator", "pretrained"):
        inner = getattr(est, attr, None)
        if inner is not None and not _is_network(inner):
            inner = getattr(inner, "estimator", None)  # a FrozenEstimator
        if _is_network(inner):
            return inner, attr
    if isinstance(getattr(est, "pretrained", None), (str, bytes)) or hasattr(
        getattr(est, "pretrained", None), "__fspath__"
    ):
        raise TypeError(
            f"summary() of an unfitted {type(est).__name__} whose pretrained model is a "
            "name or a path: load it (sknet.load, sknet.pretrained.load) and summarise "
            "that, or fit the meta-estimator first."
        )
    return None, None


class PipelineSummary:
    """What :func:`sknet.summary` returns for a :class:`~sklearn.pipeline.Pipeline`.

    Parameters
    ----------
    title : str
        First line.
    steps : list of (str, str, ModelSummary or None)
        Each step's name, its one-line description and, for an sknet step (or a
        meta-estimator holding one), its layer table.

    Attributes
    ----------
    network_summaries : dict of str to ModelSummary
        The layer tables of the sknet steps, by step name.
    total_params : int or None
        Parameters of all sknet steps together (None when a count depends on the
        number of outputs).
    """

    def __init__(self, title, steps):
        self.title = title
        self.steps = list(steps)
        self.network_summaries = {name: s for name, _, s in self.steps if s is not None}
        totals = [s.total_params for s in self.network_summaries.values()]
        self.total_params = None if None in totals else sum(totals)

    def __str__(self):
        out = [self.title]
        for i, (name, text, table) in enumerate(self.steps, start=1):
            out.append(f"[{i}] {name}: {text}")
            if table is not None:
                out += ["    " + line if line else line for line in str(table).splitlines()]
        return "\n".join(out)

    def __repr__(self):
        return str(self)


def _one_line(est):
    if est is None or isinstance(est, str):  # 'passthrough', None
        return repr(est)
    params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    changed = []
    try:
        defaults = _defaults(est)
    except Exception:  # pragma: no cover - a step without an inspectable signature
        defaults = {}
    for key, value in params.items():
        default = defaults.get(key, inspect.Parameter.empty)
        try:
            same = default is not inspect.Parameter.empty and bool(value == default)
        except Exception:  # arrays and the like compare elementwise
            same = False
        if not same:
            text = type(value).__name__ if hasattr(value, "get_params") else repr(value)
            changed.append(f"{key}={text}")
    line = f"{type(est).__name__}({', '.join(changed)})"
    return line if len(line) <= MAX_LAYER_WIDTH else f"{type(est).__name__}(...)"


def _summary_pipeline(pipe, input_shape, n_outputs):
    steps = []
    for name, est in pipe.steps:
        table = None
        if _is_network(est) or (
            est is not None and not isinstance(est, str) and _wrapped_network(est)[0]
        ):
            table = summary(est, input_shape, n_outputs=n_outputs)
        steps.append((name, _one_line(est), table))
    n = len(steps)
    return PipelineSummary(f"{type(pipe).__name__} ({n} step{'s' if n != 1 else ''})", steps)


def _summary_fitted(estimator, name, input_shape, n_outputs):
    net = estimator.network_
    first_trainable = estimator.first_trainable_layer_
    if input_shape is not None and _as_shape(input_shape) != estimator.input_shape_:
        raise ValueError(
            f"input_shape={tuple(input_shape)} does not match the fitted network's "
            f"input shape {estimator.input_shape_}; omit input_shape after fit."
        )
    fitted_outputs = estimator.n_outputs_
    if n_outputs is not None and n_outputs != fitted_outputs:
        raise ValueError(
            f"n_outputs={n_outputs} does not match the fitted network's {fitted_outputs} "
            "outputs; omit n_outputs after fit."
        )
    rows = [_row(layer, layer, i >= first_trainable) for i, layer in enumerate(net.layers)]
    nbytes = net.n_params * net.dtype.itemsize
    footer = [
        f"Parameter memory: {_fmt_bytes(nbytes)} ({net.dtype.name})",
        f"Output activation: {net.out_activation}, loss: {net.loss}",
    ]
    return ModelSummary(f"{name} (fitted)", estimator.input_shape_, rows, footer)


def _fmt_bytes(n):
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
