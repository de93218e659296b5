"""Optimisers over the flat parameter vector, and L-BFGS through scipy.

Stochastic optimisers are small state holders with scikit-learn's protocol
(``update_params``, ``iteration_ends``, ``trigger_stopping``); their arithmetic is
the in-place kernels in ``kernels.optim``. They update ``theta[start:]`` only, so the
first layers of a network can be frozen by starting later.
"""

import numpy as np
import scipy.optimize

from .kernels.optim import (
    PARALLEL_MIN,
    adam_update,
    adam_update_l2,
    adam_update_l2_parallel,
    adam_update_parallel,
    sgd_update,
    sgd_update_l2,
    sgd_update_l2_parallel,
    sgd_update_parallel,
)


class _BaseOptimizer:
    def __init__(self, learning_rate_init):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)

    def __setstate__(self, state):
        # state arrays loaded read-only (joblib.load(..., mmap_mode="r")) are copied:
        # the update kernels write to them
        self.__dict__.update(
            {
                k: np.array(v) if isinstance(v, np.ndarray) and not v.flags.writeable else v
                for k, v in state.items()
            }
        )

    def iteration_ends(self, time_step):
        """Called after each epoch with the number of samples seen so far."""

    def set_learning_rate(self, learning_rate, time_step):
        """Make ``learning_rate`` the base rate from the next update on.

        The base rate is ``learning_rate_init``'s role: Adam's bias correction and
        SGD's 'invscaling' decay (at ``time_step`` samples seen) apply on top of it.
        Used when ``learning_rate_init`` changes between ``partial_fit`` calls and by
        the schedules of :mod:`sknet.callbacks`.
        """
        self.learning_rate_init = float(learning_rate)
        self.learning_rate = float(learning_rate)

    #: (serial, parallel, serial with L2, parallel with L2) update kernels
    _kernels = ()

    def _step(self, args, l2):
        """Run the update kernel on ``args = (theta, grad, state..., scalars...)``; with
        ``l2 = (c, blocks)`` the fused-penalty twin, returning the penalised weights'
        sum of squares before the step (None without ``l2``)."""
        theta = args[0]
        serial, parallel, serial_l2, parallel_l2 = self._kernels
        big = theta.shape[0] >= PARALLEL_MIN
        if l2 is None:
            (parallel if big else serial)(*args)
            return None
        c, blocks = l2
        sumsq = np.empty(blocks.shape[0], dtype=np.float64)
        (parallel_l2 if big else serial_l2)(*args, theta.dtype.type(c), blocks, sumsq)
        return float(sumsq.sum())

    def trigger_stopping(self, msg, verbose):
        """Return True to stop training (scikit-learn's convention)."""
        if verbose:
            print(msg + " Stopping.")
        return True


class SGDOptimizer(_BaseOptimizer):
    """SGD with momentum/Nesterov and 'constant' / 'invscaling' / 'adaptive' schedules.

    invscaling: lr = learning_rate_init / (t + 1) ** power_t, t = samples seen.
    adaptive: divide lr by 5 whenever progress stalls, stop below 1e-6.
    """

    _kernels = (sgd_update, sgd_update_parallel, sgd_update_l2, sgd_update_l2_parallel)

    def __init__(
        self,
        size,
        dtype,
        learning_rate_init=0.1,
        lr_schedule="constant",
        momentum=0.9,
        nesterov=True,
        power_t=0.5,
    ):
        super().__init__(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocity = np.zeros(size, dtype=dtype)

    def update_params(self, theta, grad, l2=None):
        """One step in place. With ``l2 = (c, blocks)`` (see ``kernels.optim.l2_blocks``)
        the penalty gradient ``c * theta`` of the penalised blocks is added to ``grad``
        first, in the same pass, and the penalised weights' sum of squares (before the
        step) is returned; otherwise returns None."""
        t = theta.dtype.type
        return self._step(
            (
                theta,
                grad,
                self.velocity,
                t(self.learning_rate),
                t(self.momentum),
                bool(self.nesterov),
            ),
            l2,
        )

    def set_learning_rate(self, learning_rate, time_step):
        super().set_learning_rate(learning_rate, time_step)
        if self.lr_schedule == "invscaling":
            self.iteration_ends(time_step)

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            return super().trigger_stopping(msg, verbose)
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False


class AdamOptimizer(_BaseOptimizer):
    """Adam with scikit-learn's bias-corrected step (``learning_rate`` is the last lr_t)."""

    _kernels = (adam_update, adam_update_parallel, adam_update_l2, adam_update_l2_parallel)

    def __init__(
        self, size, dtype, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8
    ):
        super().__init__(learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.m = np.zeros(size, dtype=dtype)
        self.v = np.zeros(size, dtype=dtype)

    def update_params(self, theta, grad, l2=None):
        """One step in place; ``l2`` as for :meth:`SGDOptimizer.update_params`."""
        self.t += 1
        self.learning_rate = (
            self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t) / (1 - self.beta_1**self.t)
        )
        t = theta.dtype.type
        return self._step(
            (
                theta,
                grad,
                self.m,
                self.v,
                t(self.learning_rate),
                t(self.beta_1),
                t(1.0 - self.beta_1),
                t(self.beta_2),
                t(1.0 - self.beta_2),
                t(self.epsilon),
            ),
            l2,
        )


def minimize_lbfgs(fun, x0, max_iter, max_fun, tol, verbose, on_iteration=None):
    """scipy's L-BFGS-B on ``fun(x) -> (loss, grad)`` with float64 vectors, as scikit-learn.

    With ``verbose``, prints one line per iteration through a callback.
    ``on_iteration(x, loss)`` is called after every iteration with the iterate; when
    it returns True the minimisation stops there (scipy's ``StopIteration``).
    """

    def callback(intermediate_result):
        callback.k += 1
        if verbose:
            print("Iteration %d, loss = %.8f" % (callback.k, intermediate_result.fun))
        result = intermediate_result
        if on_iteration is not None and on_iteration(result.x, result.fun):
            raise StopIteration

    callback.k = 0
    return scipy.optimize.minimize(
        fun,
        x0,
        method="L-BFGS-B",
        jac=True,
        callback=callback if verbose or on_iteration is not None else None,
        options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
    )
