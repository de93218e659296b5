"""Progress reporting for the stochastic training loop.

``BaseNetworkEstimator._fit_stochastic`` hands every finished epoch to a
:class:`ProgressReporter`, which decides what the user sees from ``verbose``:

* ``verbose=0`` (or ``False``): nothing.
* ``verbose=1`` (or ``True``, or any larger integer, as in scikit-learn): scikit-learn's
  lines, one per epoch, ``Iteration 3, loss = 0.12345678`` and, with early stopping,
  ``Validation score: 0.950000``.
* ``verbose="progress"`` (asked for explicitly): a tqdm progress bar over the epochs,
  with the loss and the validation score in its postfix, when the output stream is a
  terminal and tqdm is installed; otherwise (a log file, a pipe, a notebook, no tqdm)
  one plain line every ``k`` epochs, ``k = ceil(max_iter / 50)``, plus the last epoch.
  The plain lines never contain carriage returns or other control characters.
  (earlier sknet drew this for ``verbose >= 2``; scikit-learn prints its lines for any
  true ``verbose``, which sknet now does too.)

tqdm is optional: it is imported only when a bar is to be drawn.
"""

import contextlib
import math
import sys
import time

__all__ = ["ProgressReporter"]

#: the ``verbose`` value that asks for the progress bar
PROGRESS = "progress"

#: the plain log prints at most about this many lines per fit (plus the last epoch)
MAX_LOG_LINES = 50


def _import_tqdm():
    """``(tqdm, DummyTqdmFile)``, or ``(None, None)`` when tqdm is not installed."""
    try:
        from tqdm import tqdm
        from tqdm.contrib import DummyTqdmFile
    except ImportError:
        return None, None
    return tqdm, DummyTqdmFile


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressReporter:
    """Report training progress epoch by epoch.

    Parameters
    ----------
    verbose : bool, int or "progress"
        0 silent, 1 or more scikit-learn's per-epoch lines, "progress" a progress bar
        on a terminal and condensed plain lines elsewhere.
    max_iter : int
        Maximum number of epochs (the length of the bar).
    incremental : bool, default=False
        True for ``partial_fit``: one epoch per call, so no bar is drawn.
    file : file-like, default=None
        Where to write; ``None`` means ``sys.stdout`` as it is when the reporter is
        created (so redirections made by the caller are honoured).

    Attributes
    ----------
    mode : {'silent', 'lines', 'bar', 'log'}
        What the reporter does, resolved from the parameters and the stream.
    every : int
        In 'log' mode, the epoch stride between printed lines.
    """

    def __init__(self, verbose, max_iter, *, incremental=False, file=None):
        self.verbose = verbose if isinstance(verbose, str) else int(verbose)
        self.max_iter = int(max_iter)
        self.file = sys.stdout if file is None else file
        self.every = 1
        self._bar = None
        self._redirect = None
        self._stdout_proxy = None
        self._last = None
        self._last_printed = 0
        if self.verbose != PROGRESS:
            self.mode = "silent" if self.verbose <= 0 else "lines"
        elif not incremental and _isatty(self.file) and _import_tqdm()[0] is not None:
            self.mode = "bar"
        else:
            self.mode = "log"
            if not incremental:
                self.every = max(1, math.ceil(self.max_iter / MAX_LOG_LINES))

    def start(self):
        """Open the bar (in 'bar' mode) and start the clock."""
        self._t0 = time.perf_counter()
        if self.mode != "bar":
            return
        tqdm, DummyTqdmFile = _import_tqdm()
        self._bar = tqdm(
            total=self.max_iter, file=self.file, unit="epoch", dynamic_ncols=True, leave=True
        )
        if self.file is sys.stdout:
            # other messages printed during the fit (a solver's "Stopping.") go through
            # tqdm.write, so they appear above the bar instead of inside it
            self._stdout_proxy = DummyTqdmFile(self.file)
            self._redirect = contextlib.redirect_stdout(self._stdout_proxy)
            self._redirect.__enter__()

    def epoch_end(self, n_iter, loss, val_score=None, val_loss=None):
        """Report a finished epoch.

        Parameters
        ----------
        n_iter : int
            Number of epochs finished (1 after the first).
        loss : float
            Mean training loss of the epoch.
        val_score : float, default=None
            Validation score after the epoch (early stopping only).
        val_loss : float, default=None
            Validation loss after the epoch (early stopping only).
        """
        self._last = (n_iter, loss, val_score, val_loss)
        if self.mode == "lines":
            self._write("Iteration %d, loss = %.8f\n" % (n_iter, loss))
            if val_score is not None:
                self._write("Validation score: %f\n" % val_score)
        elif self.mode == "log":
            if n_iter == 1 or n_iter % self.every == 0:
                self._log_line(*self._last)
        elif self.mode == "bar":
            postfix = {"loss": f"{loss:.4g}"}
            if val_score is not None:
                postfix["val_score"] = f"{val_score:.4f}"
            if val_loss is not None:
                postfix["val_loss"] = f"{val_loss:.4g}"
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(1)

    def close(self):
        """Close the bar and restore stdout; in 'log' mode print the last epoch."""
        if self.mode == "log" and self._last is not None and self._last_printed != self._last[0]:
            self._log_line(*self._last)
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
            pending = "".join(self._stdout_proxy._buf)
            self._stdout_proxy._buf = []
            if pending:
                self._bar.write(pending, file=self.file)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _log_line(self, n_iter, loss, val_score, val_loss):
        parts = ["Epoch %d/%d: loss = %.8f" % (n_iter, self.max_iter, loss)]
        if val_score is not None:
            parts.append("validation score = %.6f" % val_score)
        if val_loss is not None:
            parts.append("validation loss = %.8f" % val_loss)
        parts.append("%.1fs elapsed" % (time.perf_counter() - self._t0))
        self._write(", ".join(parts) + "\n")
        self._last_printed = n_iter

    def _write(self, text):
        self.file.write(text)
        self.file.flush()
