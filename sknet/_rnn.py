"""Recurrent networks for sequences and time series: RNNRegressor and RNNClassifier."""

import warnings

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, is_classifier
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from . import layers as specs
from ._base import (
    BaseNetworkEstimator,
    NetworkClassifierMixin,
    NetworkRegressorMixin,
    _check_solver,
    as_rectangular,
    layer_sizes,
)
from ._compat import StrOptions, check_partial_fit_first_call, check_sample_weight
from ._layers import Dense
from ._sequences import (
    PaddedSequences,
    StepTargets,
    bucket_order,
    check_sequences,
    check_step_targets,
    is_ragged,
    step_targets,
)

_CELLS = {"lstm": specs.LSTM, "gru": specs.GRU}


class BaseRNN(BaseNetworkEstimator):
    """Stacked recurrent layers, optional dense layers, a linear output. Not for direct use.

    X is (n_samples, n_timesteps, n_features), or (n_samples, n_timesteps) read as a
    univariate sequence (so scikit-learn transformers and checks work on 2-D rows), or a
    list of (length_i, n_features) / (length_i,) arrays of different lengths: padded and
    masked inside (:mod:`sknet._sequences`), each sequence ending at its own length.
    """

    _parameter_constraints: dict = {
        **BaseNetworkEstimator._parameter_constraints,
        "cell": [StrOptions({"rnn", "lstm", "gru"})],
        "activation": [StrOptions({"tanh", "relu"})],
        "dense_layer_sizes": ["array-like"],
        "dense_activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "bidirectional": ["boolean"],
        "output": [StrOptions({"last", "sequence"})],
    }

    # -- validation ----------------------------------------------------------------
    def _as_3d(self, X):
        X = as_rectangular(
            X,
            "sequences: all sequences need the same number of time steps and features",
            "pad or window it first",
        )
        ndim = getattr(X, "ndim", None)
        if ndim is None:  # not array-like: scikit-learn's validation says why
            return X
        if ndim not in (2, 3):
            hint = " Reshape your data: one sample per row." if ndim == 1 else ""
            raise ValueError(
                f"{type(self).__name__} expects X of shape (n_samples, n_timesteps, "
                f"n_features) or (n_samples, n_timesteps), got a {ndim}-D array.{hint}"
            )
        if ndim == 3 and 0 in X.shape[1:]:
            raise ValueError(
                f"X has {X.shape[1]} time step(s) of {X.shape[2]} feature(s) per sample; "
                "at least one of each is required."
            )
        return X

    #: fitted state sknet.persistence saves besides the base's: how X was given at fit,
    #: 'array' (fixed length) or 'sequences' (a list of variable-length sequences)
    _saved_state = {"_fit_input": "str?"}

    def _fitted_on_sequences(self):
        return hasattr(self, "_network") and getattr(self, "_fit_input", "array") == "sequences"

    def _validate_input(self, X, y, reset):
        continuing = not reset and hasattr(self, "_network")
        if self.output == "sequence":
            return self._validate_step_input(X, y, reset, continuing)
        if is_ragged(X) or (continuing and self._fitted_on_sequences()):
            return self._validate_sequences(X, y, reset, continuing)
        X = self._as_3d(X)
        if continuing:
            self._check_step_shape(X)
        X, y = validate_data(
            self,
            X,
            y,
            allow_nd=True,
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
            y_numeric=not is_classifier(self),
        )
        if reset:
            self._fit_input = "array"
        return (X[:, :, None] if X.ndim == 2 else X), y

    def _validate_sequences(self, X, y, reset, continuing):
        """fit / partial_fit on variable-length sequences: X as PaddedSequences."""
        X = self._sequences(X)
        d = X.shape[2]
        if continuing:
            if not self._fitted_on_sequences():
                T = self._network.input_shape[0]
                raise ValueError(
                    f"{type(self).__name__} was fitted on arrays of {T} time steps; "
                    "continued training (partial_fit, warm_start) takes the same. Fit on a "
                    "list of sequences to train on variable lengths."
                )
            self._check_n_step_features(d)
        check_step_targets(y, X.lengths)
        if is_ragged(y):
            raise ValueError(
                f"y holds one target per time step, but {type(self).__name__} predicts one "
                "target per sequence (the state at its last step): pass y of shape "
                "(n_sequences,) or (n_sequences, n_outputs), or set output='sequence' "
                "for one output per time step."
            )
        y = validate_data(
            self,
            y=y,
            multi_output=True,
            y_numeric=not is_classifier(self),
            reset=reset,
        )
        check_consistent_length(X, y)
        if reset:
            self._fit_input = "sequences"
            self.n_features_in_ = d
        # the per-sample shape the network is built for: the longest training sequence at
        # fit, the network's own when training continues (its weights fit any length)
        self._fit_steps = self._network.input_shape[0] if continuing else X.shape[1]
        return X, y

    def _validate_step_input(self, X, y, reset, continuing):
        """fit / partial_fit with one output per time step: X as PaddedSequences (also
        when of fixed length: the model then takes any length), y as StepTargets."""
        X = self._sequences(X)
        d = X.shape[2]
        if continuing:
            self._check_n_step_features(d)
        y = step_targets(y, X.lengths)
        if is_classifier(self):
            if y.values.ndim == 2 and y.values.shape[1] > 1:
                raise ValueError(
                    f"y has {y.values.shape[1]} outputs per time step; with "
                    "output='sequence', RNNClassifier takes one label per step "
                    "(multilabel or multi-output per step is not supported)."
                )
            y.values = check_array(y.values.reshape(-1), ensure_2d=False, dtype=None)
        else:
            y.values = check_array(y.values, ensure_2d=False, dtype=np.float64)
        if reset:
            self._fit_input = "sequences"
            self.n_features_in_ = d
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        self._fit_steps = self._network.input_shape[0] if continuing else X.shape[1]
        return X, y

    def _input_shape(self, X):
        if isinstance(X, PaddedSequences):
            return (self._fit_steps, X.shape[2])
        return X.shape[1:]

    def _sequences(self, X):
        """A list of sequences, or an array of fixed-length ones, as PaddedSequences."""
        if isinstance(X, PaddedSequences):  # already validated (the fit's callbacks get it)
            return X
        if is_ragged(X):
            return check_sequences(X)
        X = check_array(self._as_3d(X), allow_nd=True, dtype=(np.float64, np.float32))
        return PaddedSequences.from_array(X[:, :, None] if X.ndim == 2 else X)

    def _check_n_step_features(self, d):
        d_fit = self._network.input_shape[1]
        if d != d_fit:
            raise ValueError(
                f"X has {d} feature(s) per time step, but {type(self).__name__} was fitted "
                f"on {d_fit}."
            )

    def _run_epoch(self, X, Y, sample_weight, sample_idx, batch_size, start, drop_rng):
        if not isinstance(X, PaddedSequences):
            return super()._run_epoch(X, Y, sample_weight, sample_idx, batch_size, start, drop_rng)
        # variable lengths: batches of similar lengths, so an epoch costs the real steps;
        # the shuffled order is kept within equal lengths and the batches are visited in
        # a random order (both from random_state)
        order = sample_idx if self.shuffle else np.arange(X.shape[0])
        order = bucket_order(
            X.lengths, order, batch_size, self._random_state if self.shuffle else None
        )
        X, Y = X[order], Y[order]
        sample_weight = None if sample_weight is None else sample_weight[order]
        idx = np.arange(X.shape[0])
        return super()._run_epoch(X, Y, sample_weight, idx, batch_size, start, drop_rng)

    def _check_step_shape(self, X):
        T, d = self._network.input_shape
        if X.ndim == 2:
            # read as univariate: validate_data compares n_timesteps with n_features_in_,
            # but only a model fitted on one feature per step can take it
            if d != 1:
                raise ValueError(
                    f"X is 2-D, read as {X.shape[1]} time steps of 1 feature per sample, "
                    f"but {type(self).__name__} was fitted on {T} time steps of {d} "
                    "features. Pass X of shape (n_samples, n_timesteps, n_features)."
                )
            return
        shape = X.shape[1:]
        if shape != (T, d):
            raise ValueError(
                f"X has {shape[0]} time steps of {shape[1]} feature(s) per sample, but "
                f"{type(self).__name__} was fitted on {T} time steps of {d} feature(s)."
            )

    def _validate_X_predict(self, X):
        if isinstance(X, PaddedSequences) or is_ragged(X) or self._fitted_on_sequences():
            X = self._sequences(X)
            self._check_n_step_features(X.shape[2])
            return X
        X = self._as_3d(X)
        self._check_step_shape(X)
        X = validate_data(self, X, allow_nd=True, dtype=(np.float64, np.float32), reset=False)
        return X[:, :, None] if X.ndim == 2 else X

    # -- architecture --------------------------------------------------------------
    def _count_layers(self):
        return len(self._hidden_layer_sizes()) + len(self.dense_layer_sizes) + 2

    def layer_specs(self, input_shape=None):
        """The hidden layers as specifications of :mod:`sknet.layers`.

        ``NetworkClassifier(layers=clf.layer_specs(shape), clip_norm=clf.clip_norm,
        ...)`` builds the same network as this estimator (the output layer is added
        by either), and ``fit`` builds its hidden layers from exactly these
        specifications.

        Parameters
        ----------
        input_shape : tuple of int or None, default=None
            Shape of one sample, ``(n_timesteps, n_features)``; the layers do not
            depend on it.

        Returns
        -------
        layers : list of (name, spec)
            The recurrent layers ``lstm1``, ``lstm2``, ... (``gru``/``rnn`` after
            ``cell``; all but the last with ``return_sequences=True``), then the dense
            layers ``dense1``, ...; each followed by a ``Dropout`` named after it
            (``dropout1``, ... counting all hidden layers) where its rate is > 0.
            With ``output='sequence'`` every recurrent layer returns sequences and
            ``fit`` applies the dense layers (and the output layer) at every step,
            which these specifications do not express: ``NetworkClassifier(layers=
            ...)`` rebuilds the estimator's network only with ``output='last'``.

        Examples
        --------
        >>> from sknet import RNNClassifier
        >>> RNNClassifier(cell="gru", hidden_layer_sizes=(8, 4),
        ...               dense_layer_sizes=(3,)).layer_specs((20, 2))
        [('gru1', GRU(return_sequences=True, units=8)), ('gru2', GRU(units=4)), \
('dense1', Dense(units=3))]
        """
        self._validate_params()
        return self._layer_specs()

    def _layer_specs(self):
        rec = layer_sizes("hidden_layer_sizes", self.hidden_layer_sizes, allow_empty=False)
        dense = layer_sizes("dense_layer_sizes", self.dense_layer_sizes)
        rates = self._dropout_rates(len(rec) + len(dense))
        out = []
        for i, units in enumerate(rec):
            # with output='sequence' every recurrent layer passes all its states on
            last = i == len(rec) - 1 and self.output == "last"
            # only when set, so that the specifications' reprs stay as they were
            extra = {"bidirectional": True} if self.bidirectional else {}
            if self.cell == "rnn":
                spec = specs.RNN(
                    units, activation=self.activation, return_sequences=not last, **extra
                )
            else:  # the LSTM and GRU cells have fixed activations
                spec = _CELLS[self.cell](units, return_sequences=not last, **extra)
            out.append((f"{self.cell}{i + 1}", spec))
        for j, units in enumerate(dense):
            out.append((f"dense{j + 1}", specs.Dense(units, self.dense_activation)))
        # a dropout after each hidden layer whose rate is > 0, named after its position
        with_dropout = []
        for k, (entry, rate) in enumerate(zip(out, rates), start=1):
            with_dropout.append(entry)
            if rate > 0:
                with_dropout.append((f"dropout{k}", specs.Dropout(rate)))
        return with_dropout

    def _build_layers(self, input_shape, n_outputs):
        if self.cell != "rnn" and self.activation != "tanh":
            # not an error: code that sets activation for every cell keeps running
            warnings.warn(
                f"activation={self.activation!r} has no effect with cell={self.cell!r}: "
                "the LSTM and GRU cells use their fixed gate activations (sigmoid and "
                "tanh); activation applies to cell='rnn' only. Leave it at 'tanh', or "
                "use dense_activation for the dense layers.",
                UserWarning,
                stacklevel=2,
            )
        per_step = self.output == "sequence"
        layers = []
        for _, spec in self._layer_specs():
            layer = spec.build_layer()
            if per_step and layer.kind == "dense":  # the same weights at every step
                layer = Dense(**layer.get_config(), per_step=True)
            layers.append(layer)
        layers.append(Dense(n_outputs, "identity", per_step=per_step))
        return layers

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


_RNN_PARAMS = """
    cell : {'rnn', 'lstm', 'gru'}, default='lstm'
        The recurrent cell: Elman RNN, LSTM (gates i, f, g, o) or GRU (r, z, n).

    hidden_layer_sizes : array-like of int, default=(32,)
        Units of each stacked *recurrent* layer (unlike the MLPs and ConvNets, where
        it sizes dense layers; here those are ``dense_layer_sizes``). Every layer but
        the last passes its whole sequence of hidden states on; the last passes its
        final state.

    dense_layer_sizes : array-like of int, default=()
        Units of each dense hidden layer between the last recurrent state and the
        output layer (none by default).

    activation : {'tanh', 'relu'}, default='tanh'
        Activation of the Elman cell (``cell='rnn'``). The LSTM and GRU cells use their
        fixed gate activations; setting another value with them has no effect and
        warns.

    dense_activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the dense hidden layers of ``dense_layer_sizes``.

    bidirectional : bool, default=False
        Make every recurrent layer bidirectional: a second set of weights reads each
        sequence backwards from its own last step, and the two directions' states are
        concatenated (``2 * units`` features; the last layer passes on both final
        states), as PyTorch's ``bidirectional=True``.

    output : {'last', 'sequence'}, default='last'
        What the network predicts. 'last': one output per sequence, from the state at
        its last step (sequence-to-one). 'sequence': one output per time step
        (sequence-to-sequence: tagging every step, or a forecast at every step); the
        last recurrent layer passes every state on, the dense and output layers apply
        at every step with the same weights, ``y`` is given per step (an array
        ``(n_samples, n_timesteps[, n_outputs])`` for array X, a list of arrays of
        ``n_steps_i`` rows for a list X), and the loss is the mean over all real
        steps of all sequences (``sample_weight`` weighs each sequence's steps;
        padding steps count for nothing). ``predict`` then returns per-step outputs
        in the form of X, and ``score`` is the accuracy / R^2 over all real steps.
        Such a model takes sequences of any length. Not supported with it:
        ``class_weight``, multilabel per step.

    solver, alpha, batch_size, learning_rate, learning_rate_init, power_t, max_iter, \
shuffle, random_state, tol, verbose, warm_start, momentum, nesterovs_momentum, \
early_stopping, validation_fraction, validation_split, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun
        As for :class:`MLPClassifier` (the same solvers, schedules and stopping rules).

    dropout : float, sequence of float or None, default=None
        Drop rate after each hidden layer (recurrent and dense), between layers.

    clip_norm : float or None, default=None
        Rescale the gradient (of all parameters together) to at most this L2 norm
        before each update of the stochastic solvers (tames exploding gradients
        through time, mostly needed with ``solver='sgd'``); ignored by 'lbfgs'. None
        turns clipping off. The same parameter and default as the MLPs' and ConvNets'
        (and PyTorch's and Keras's: no clipping unless asked). With Adam, a burst of
        large gradients already shrinks the following steps through the second-moment
        estimate; clipping the gradient first hides the burst from it, so Adam keeps
        taking full steps along a gradient cliff (measured in sknet 0.1, whose default
        was 5.0: on scikit-learn's sample-weight equivalence check, runs that agreed to
        1e-16 for 80 epochs then drifted apart by a factor 1.5 per epoch).
"""

_RNN_ATTRS = """
    loss_, best_loss_, loss_curve_, validation_scores_, validation_loss_curve_, \
best_validation_score_, t_, n_iter_, n_layers_, n_outputs_, out_activation_
        As for :class:`MLPClassifier`.

    n_features_in_ : int
        Number of time steps seen during fit (the second axis of X); for a model fitted
        on a list of variable-length sequences, the number of features per step.

    input_shape_ : tuple of int
        Shape of one sample, ``(n_timesteps, n_features)`` (2-D X has one feature); for
        a model fitted on variable-length sequences, ``n_timesteps`` is the longest
        training sequence's length, and the model takes any length.
"""


class _StepOutputMixin:
    """``output='sequence'``: targets, predictions and scores per time step.

    Listed first in the estimators' bases, so that it wraps the classifier's and the
    regressor's target handling (``NetworkClassifierMixin``, ``NetworkRegressorMixin``):
    the targets of all real steps are encoded together as one flat column, then laid
    out (n, T, k) with zeros at the padding steps, which the network's loss weighs 0.
    With ``output='last'`` every method defers to those mixins unchanged.
    """

    def _per_step(self):
        """Whether the fitted network has one output per time step."""
        check_is_fitted(self, "_network")
        return len(self._network.output_shape) == 2

    # -- fitting -------------------------------------------------------------------
    def _encode_targets(self, y, incremental, first_pass):
        if not isinstance(y, StepTargets):
            return super()._encode_targets(y, incremental, first_pass)
        encoded = super()._encode_targets(y.values, incremental, first_pass)
        return y.padded(encoded.reshape(encoded.shape[0], -1))

    def _apply_class_weight(self, y, sample_weight, incremental, dtype):
        if isinstance(y, StepTargets):
            if getattr(self, "class_weight", None) is not None:
                raise ValueError(
                    "class_weight is not supported with output='sequence': weights are "
                    "per sequence (sample_weight), and class weights would weigh steps. "
                    "Set class_weight=None."
                )
            return sample_weight
        return super()._apply_class_weight(y, sample_weight, incremental, dtype)

    def _split_validation(self, X, Y, sample_weight):
        if Y.ndim != 3:
            return super()._split_validation(X, Y, sample_weight)
        # whole sequences go to one side, not stratified (labels are per step)
        arrays = (X, Y) if sample_weight is None else (X, Y, sample_weight)
        parts = train_test_split(
            *arrays, random_state=self._random_state, test_size=self.validation_fraction
        )
        if parts[1].shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the "
                "size of your dataset."
            )
        X_tr, X_val, Y_tr, Y_val = parts[:4]
        sw_tr, sw_val = parts[4:] if sample_weight is not None else (None, None)
        return X_tr, X_val, Y_tr, Y_val, sw_tr, sw_val

    def _validation_set(self, X_val, y_val, sample_weight_val):
        if X_val is None or self.output != "sequence":
            return super()._validation_set(X_val, y_val, sample_weight_val)
        net = self._network
        X_val = self._validate_X_predict(X_val).astype(net.dtype, copy=False)
        targets = step_targets(y_val, X_val.lengths, name="y_val")
        values = targets.values
        if is_classifier(self):
            values = values.reshape(-1)
        encoded = self._encode_validation_targets(values).astype(net.dtype, copy=False)
        Y_val = targets.padded(encoded.reshape(encoded.shape[0], -1))
        if Y_val.shape[-1] != self.n_outputs_:
            raise ValueError(f"y_val has {Y_val.shape[-1]} outputs, the network {self.n_outputs_}.")
        if sample_weight_val is not None:
            sample_weight_val = check_sample_weight(
                sample_weight_val, np.empty(X_val.shape[0]), dtype=net.dtype
            )
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small: X_val needs at least 2 samples.")
        return X_val, Y_val, sample_weight_val

    def _score_encoded(self, X, Y, sample_weight):
        if Y.ndim != 3:
            return super()._score_encoded(X, Y, sample_weight)
        out = self._network.predict(X)
        if not np.isfinite(out).all():
            return np.nan
        mask = np.arange(out.shape[1])[None, :] < X.lengths[:, None]
        sw = None if sample_weight is None else np.repeat(sample_weight, X.lengths)
        return self._score_from_output(out[mask], Y[:, : out.shape[1]][mask], sw)

    # -- prediction ----------------------------------------------------------------
    def _step_outputs(self, X):
        """Network outputs (with the output activation) of every real step, one row per
        step (n_steps_total, k), the lengths, and whether X was a list."""
        as_list = is_ragged(X)
        X = self._validate_X_predict(X)
        # padded sequences of the fit (its callbacks): a list unless all of one length
        as_list = as_list or bool(np.any(X.lengths != X.lengths[0]))
        out = self.forward(X, output_activation=True)
        mask = np.arange(out.shape[1])[None, :] < X.lengths[:, None]
        return out[mask], X.lengths, as_list

    @staticmethod
    def _per_sequence(rows, lengths, as_list):
        """Rows of all real steps as a list of per-sequence arrays (a list X), or an
        array (n, T, ...) (fixed-length X)."""
        if as_list:
            return np.split(rows, np.cumsum(lengths)[:-1])
        return rows.reshape((len(lengths), int(lengths[0])) + rows.shape[1:])

    def predict(self, X):
        if not self._per_step():
            return super().predict(X)
        rows, lengths, as_list = self._step_outputs(X)
        if is_classifier(self):
            rows = self._label_binarizer.inverse_transform(
                rows.ravel() if self.n_outputs_ == 1 else rows
            )
        elif rows.shape[1] == 1:
            rows = rows.ravel()
        return self._per_sequence(rows, lengths, as_list)

    predict.__doc__ = """Predict using the trained network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or list of arrays
            The input sequences.

        Returns
        -------
        y : ndarray or list of ndarray
            With ``output='last'``: one target per sequence, shape (n_samples,) or
            (n_samples, n_outputs). With ``output='sequence'``: one per time step,
            an array (n_samples, n_timesteps[, n_outputs]) for an array X, a list of
            (n_steps_i[, n_outputs]) arrays for a list X.
        """

    def score(self, X, y, sample_weight=None):
        """Accuracy (classifier) or R^2 (regressor) of ``predict(X)`` against ``y``.

        With ``output='sequence'`` the score runs over all real time steps of all
        sequences together (each step weighs its sequence's ``sample_weight``).

        Parameters
        ----------
        X : array-like or list of arrays
            The input sequences.
        y : array-like or list of arrays
            The true targets, per sequence or per time step as at fit.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the sequences.

        Returns
        -------
        score : float
        """
        if not self._per_step():
            return super().score(X, y, sample_weight=sample_weight)
        rows, lengths, _ = self._step_outputs(X)
        targets = step_targets(y, lengths)
        sw = None
        if sample_weight is not None:
            sw = np.repeat(check_sample_weight(sample_weight, np.empty(len(lengths))), lengths)
        if is_classifier(self):
            pred = self._label_binarizer.inverse_transform(
                rows.ravel() if self.n_outputs_ == 1 else rows
            )
            return float(accuracy_score(targets.values.reshape(-1), pred, sample_weight=sw))
        true = targets.values.reshape(rows.shape[0], -1)
        return float(r2_score(true, rows, sample_weight=sw))


class RNNRegressor(_StepOutputMixin, NetworkRegressorMixin, RegressorMixin, BaseRNN):
    __doc__ = f"""Recurrent network regressor (Elman RNN, LSTM or GRU) for sequences.

    Sequence-to-one: the last hidden state feeds a linear output; several outputs give
    multi-step forecasts (see :class:`sknet.timeseries.LagWindows`). X may be a list of
    sequences of different lengths, each read up to its own last step. With
    ``output='sequence'``, sequence-to-sequence: an output at every time step.

    Parameters
    ----------
    loss : {{'squared_error', 'poisson'}}, default='squared_error'
        Loss of the output, as for :class:`MLPRegressor`.
    {_RNN_PARAMS}
    Attributes
    ----------{_RNN_ATTRS}
    Examples
    --------
    >>> import numpy as np
    >>> from sknet import RNNRegressor
    >>> t = np.arange(600) * 0.1
    >>> X = np.stack([np.sin(t[i:i + 20]) for i in range(500)])   # windows
    >>> y = np.sin(t[20:520])                                      # next value
    >>> reg = RNNRegressor(cell="gru", hidden_layer_sizes=(16,), max_iter=30,
    ...                    learning_rate_init=0.01, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.95
    True
    """

    _parameter_constraints: dict = {
        **BaseRNN._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        cell="lstm",
        hidden_layer_sizes=(32,),
        *,
        loss="squared_error",
        dense_layer_sizes=(),
        activation="tanh",
        dense_activation="relu",
        bidirectional=False,
        output="last",
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="random",
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=None,
        clip_norm=None,
    ):
        self.cell = cell
        self.hidden_layer_sizes = hidden_layer_sizes
        self.loss = loss
        self.dense_layer_sizes = dense_layer_sizes
        self.activation = activation
        self.dense_activation = dense_activation
        self.bidirectional = bidirectional
        self.output = output
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.clip_norm = clip_norm


class RNNClassifier(_StepOutputMixin, NetworkClassifierMixin, ClassifierMixin, BaseRNN):
    __doc__ = f"""Recurrent network classifier (Elman RNN, LSTM or GRU) for sequences.

    Sequence-to-one classification: the last hidden state feeds a softmax (multi-class)
    or logistic (binary, multilabel) output. X may be a list of sequences of different
    lengths, each read up to its own last step. With ``output='sequence'``, a label at
    every time step (tagging).

    Parameters
    ----------{_RNN_PARAMS}
    class_weight : dict, 'balanced' or None, default=None
        Weights per class multiplied into ``sample_weight``, as for
        :class:`MLPClassifier`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    {_RNN_ATTRS}
    Examples
    --------
    >>> import numpy as np
    >>> from sknet import RNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 15))
    >>> y = (X.cumsum(axis=1)[:, -1] > 0).astype(int)   # sign of the running sum
    >>> clf = RNNClassifier(cell="lstm", hidden_layer_sizes=(16,), max_iter=40,
    ...                     learning_rate_init=0.01, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **BaseRNN._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or list of arrays
            The input sequences.

        Returns
        -------
        y_prob : ndarray or list of ndarray
            The probability of each class, classes ordered as in ``classes_``: shape
            (n_samples, n_classes) with ``output='last'``; with ``output='sequence'``,
            per time step, (n_samples, n_timesteps, n_classes) for an array X, a list
            of (n_steps_i, n_classes) arrays for a list X.
        """
        if not self._per_step():
            return super().predict_proba(X)
        rows, lengths, as_list = self._step_outputs(X)
        if self.n_outputs_ == 1:  # binary: the logistic output is P(classes_[1])
            rows = self._proba_columns(rows.ravel())
        return self._per_sequence(rows, lengths, as_list)

    @available_if(_check_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with a single iteration over the given data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or list of arrays
            The input sequences.
        y : array-like or list of arrays
            The labels: one per sequence, or per time step with ``output='sequence'``.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the sequences.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit; required on the first call.

        Returns
        -------
        self : object
            Trained model.
        """
        if self.output == "sequence" and check_partial_fit_first_call(self, classes):
            # labels per step: the classes define the encoding (per-step y could read
            # as multilabel indicators, as the sequence-to-one path would take it)
            self._label_binarizer = LabelBinarizer().fit(classes)
        return super().partial_fit(X, y, sample_weight=sample_weight, classes=classes)

    def predict_log_proba(self, X):
        """Log of probability estimates, ``log(predict_proba(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps, n_features) or list of arrays
            The input sequences.

        Returns
        -------
        log_y_prob : ndarray or list of ndarray
            As :meth:`predict_proba`, in logarithms.
        """
        proba = self.predict_proba(X)
        if isinstance(proba, list):
            return [np.log(p) for p in proba]
        return np.log(proba, out=proba)

    def __init__(
        self,
        cell="lstm",
        hidden_layer_sizes=(32,),
        *,
        dense_layer_sizes=(),
        activation="tanh",
        dense_activation="relu",
        bidirectional=False,
        output="last",
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        validation_split="random",
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=None,
        clip_norm=None,
        class_weight=None,
    ):
        self.cell = cell
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dense_layer_sizes = dense_layer_sizes
        self.activation = activation
        self.dense_activation = dense_activation
        self.bidirectional = bidirectional
        self.output = output
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.validation_split = validation_split
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.clip_norm = clip_norm
        self.class_weight = class_weight
