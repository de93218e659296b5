"""Private names sknet borrows from scikit-learn, joblib and numba, in one place.

Each of these is an implementation detail of its library (an underscore in its module or
its name), stable in practice but not promised. Importing them here, and only here, means
that a release which moves one breaks this file and nothing else. The scikit-learn range
that ``pyproject.toml`` allows is the range tested: CI runs the test suite on the newest
release and again on the oldest one (the lower bound's ``.0`` release).

This is a leaf module: it imports no other sknet module.
"""

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
