"""Private names sknet borrows from scikit-learn, joblib and numba, in one place.

Each of these is an implementation detail of its library (an underscore in its module or
its name), stable in practice but not promised. Importing them here, and only here, means
that a release which moves one breaks this file and nothing else. The scikit-learn range
that ``pyproject.toml`` allows is the range tested: CI runs the test suite on the newest
release and again on the oldest one (the lower bound's ``.0`` release).

This is a leaf module: it imports no other sknet module.
"""

import contextlib

from sklearn.base import _fit_context
from sklearn.utils._optional_dependencies import check_matplotlib_support
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "SKLEARN_CALLBACKS",
    "CallbackSupportMixin",
    "callback_teardown",
    "HasMethods",
    "Interval",
    "Options",
    "StrOptions",
    "check_matplotlib_support",
    "check_partial_fit_first_call",
    "check_sample_weight",
    "dispatcher_cache_counts",
    "fit_context",
    "joblib_dask_backend",
    "skip_common_checks",
    "validate_params",
]

#: ``sklearn.base._fit_context``: validates parameters once per public fit call.
fit_context = _fit_context
#: ``sklearn.utils.validation._check_sample_weight``
check_sample_weight = _check_sample_weight
#: ``sklearn.utils.multiclass._check_partial_fit_first_call``
check_partial_fit_first_call = _check_partial_fit_first_call


def skip_common_checks(tags):
    """Mark ``tags`` so that ``check_estimator`` skips the estimator (a meta-estimator
    whose required parameter is a fitted network cannot be built with defaults)."""
    tags._skip_test = True
    return tags


def joblib_dask_backend():
    """joblib's Dask backend class (``joblib._dask.DaskDistributedBackend``), or None
    without the ``distributed`` package."""
    try:
        from joblib._dask import DaskDistributedBackend
    except ImportError:  # pragma: no cover - exercised only without distributed
        return None
    return DaskDistributedBackend


def dispatcher_cache_counts(dispatcher):
    """``(hits, misses)`` of a numba ``@njit`` function's on-disk cache in this process
    (numba's ``Dispatcher.stats``, not public API)."""
    stats = dispatcher.stats
    return sum(stats.cache_hits.values()), sum(stats.cache_misses.values())


# ---------------------------------------------------------------- callbacks
# scikit-learn 1.9 added a callback framework (``sklearn.callback``): an estimator
# gains ``set_callbacks`` through ``CallbackSupportMixin`` and reports its fit as a
# tree of tasks (``CallbackContext``); ``_fit_context`` tears the callbacks down after
# fit. With an older scikit-learn, sknet provides the same estimator-side protocol
# (``set_callbacks``, ``_init_callback_context``, contexts with ``subcontext`` and
# ``call_on_fit_task_begin`` / ``call_on_fit_task_end``) for sknet's own callbacks,
# and ``callback_teardown`` calls their ``teardown`` hooks.
try:
    from sklearn.callback import CallbackSupportMixin as _SklearnCallbackSupportMixin
except ImportError:  # scikit-learn < 1.9
    _SklearnCallbackSupportMixin = None

#: True when scikit-learn has ``sklearn.callback`` (1.9 and later)
SKLEARN_CALLBACKS = _SklearnCallbackSupportMixin is not None

_HOOK_ARGS = ("X", "y", "metadata", "fitted_estimator")


class _LocalCallbackContext:
    """A task of a fit, for sknet's callbacks when scikit-learn has no callback
    framework: the subset of ``sklearn.callback.CallbackContext`` that sknet's
    estimators and callbacks use (no meta-estimator propagation)."""

    def __init__(self, callbacks, estimator_name, task_name, task_id, max_subtasks, parent):
        self._callbacks = callbacks
        self.estimator_name = estimator_name
        self.task_name = task_name
        self.task_id = task_id
        self.max_subtasks = max_subtasks
        self.sequential_subtasks = True
        self.parent = parent
        self.source_estimator_name = None
        self.source_task_name = None
        self._n_children = 0

    def subcontext(self, task_name="", task_id=None, max_subtasks=0, sequential_subtasks=True):
        if self.max_subtasks is not None and self._n_children >= self.max_subtasks:
            raise ValueError(
                f"Callback context {self.task_name} of estimator {self.estimator_name} "
                f"already has its maximum number of children ({self.max_subtasks})."
            )
        child = _LocalCallbackContext(
            self._callbacks, self.estimator_name, task_name, self._n_children, max_subtasks, self
        )
        self._n_children += 1
        return child

    def _call(self, hook, estimator, kwargs):
        import copy
        import inspect

        stop = False
        evaluated = {}
        for callback in self._callbacks:
            method = getattr(callback, hook)
            wanted = [
                p.name
                for p in inspect.signature(method).parameters.values()
                if p.kind == p.KEYWORD_ONLY
            ]
            if set(wanted) - set(_HOOK_ARGS):
                raise TypeError(
                    f"Hook {hook} of the callback {type(callback).__name__} has parameters "
                    f"that are not valid: {sorted(set(wanted) - set(_HOOK_ARGS))}. The valid "
                    f"parameters are: {list(_HOOK_ARGS)}."
                )
            for name in wanted:
                if name in evaluated:
                    continue
                if name == "fitted_estimator":
                    attrs = kwargs.get("reconstruction_attributes")
                    attrs = attrs() if callable(attrs) else attrs
                    fitted = None
                    if attrs is not None:
                        fitted = copy.copy(estimator)
                        for key, value in attrs.items():
                            setattr(fitted, key, value)
                    evaluated[name] = fitted
                else:
                    value = kwargs.get(name)
                    evaluated[name] = value() if callable(value) else value
            stop |= bool(method(estimator, self, **{k: evaluated[k] for k in wanted}))
        return stop

    def call_on_fit_task_begin(self, *, estimator, **kwargs):
        self._call("on_fit_task_begin", estimator, kwargs)
        return self

    def call_on_fit_task_end(self, *, estimator, **kwargs):
        return self._call("on_fit_task_end", estimator, kwargs)


class _LocalCallbackSupportMixin:
    """``set_callbacks`` for scikit-learn < 1.9 (sknet's callbacks only); the
    callbacks follow the estimator through ``clone`` as they do in scikit-learn 1.9."""

    def set_callbacks(self, *callbacks):
        """Set callbacks for the estimator.

        Parameters
        ----------
        *callbacks : callback instances
            The callbacks to set (with scikit-learn < 1.9, sknet's callbacks from
            :mod:`sknet.callbacks`).

        Returns
        -------
        self : estimator instance
            The estimator instance itself.
        """
        hooks = ("setup", "on_fit_task_begin", "on_fit_task_end", "teardown")
        if not all(
            not isinstance(cb, type) and all(callable(getattr(cb, h, None)) for h in hooks)
            for cb in callbacks
        ):
            raise TypeError("callbacks must be instances following the FitCallback protocol.")
        if callbacks:
            self._skl_callbacks = list(callbacks)
        else:
            self.__dict__.pop("_skl_callbacks", None)
        return self

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        if hasattr(self, "_skl_callbacks"):
            new._skl_callbacks = self._skl_callbacks
        return new

    def _init_callback_context(
        self, task_name="fit", task_id=0, max_subtasks=0, sequential_subtasks=True
    ):
        callbacks = getattr(self, "_skl_callbacks", [])
        self._callback_fit_ctx = _LocalCallbackContext(
            callbacks, type(self).__name__, task_name, task_id, max_subtasks, None
        )
        self._skl_callbacks_to_teardown = list(callbacks)
        for callback in callbacks:
            callback.setup(estimator=self, context=self._callback_fit_ctx)
        return self._callback_fit_ctx


#: the estimator-side callback protocol: scikit-learn's mixin, or sknet's stand-in
CallbackSupportMixin = (
    _SklearnCallbackSupportMixin if SKLEARN_CALLBACKS else _LocalCallbackSupportMixin
)


@contextlib.contextmanager
def callback_teardown(estimator):
    """Call the ``teardown`` hook of the callbacks set up by the fit this wraps.

    With scikit-learn >= 1.9 ``fit_context`` does this (so this does nothing), with
    an older one this is its stand-in: teardown runs whether the fit succeeded or not.
    """
    if SKLEARN_CALLBACKS:
        yield
        return
    try:
        yield
    finally:
        if hasattr(estimator, "_callback_fit_ctx"):
            callbacks = estimator.__dict__.pop("_skl_callbacks_to_teardown", [])
            context = estimator.__dict__.pop("_callback_fit_ctx")
            for callback in callbacks:
                callback.teardown(estimator=estimator, context=context)
