"""verbose levels: scikit-learn's lines (any true integer); verbose="progress": the tqdm
bar on a terminal, plain lines elsewhere."""

import io
import os
import re
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from sknet import MLPClassifier, MLPRegressor
from sknet._progress import MAX_LOG_LINES, ProgressReporter

from ._network_estimators import PLANNED, estimator_class, make_estimator, make_X, make_y

CONTROL = re.compile(r"[\r\x1b\x08]")  # carriage return, escape sequences, backspace


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X / X.max(axis=0), y


def _fit(X, y, **params):
    est = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def test_verbose_0_prints_nothing(iris, capsys):
    _fit(*iris, max_iter=3, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_1_prints_scikit_learn_lines(iris, capsys):
    est = _fit(*iris, max_iter=5, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    expected = [
        "Iteration %d, loss = %.8f" % (i + 1, loss) for i, loss in enumerate(est.loss_curve_)
    ]
    assert lines == expected


@pytest.mark.parametrize("verbose", [2, 3, np.int64(5)])
def test_verbose_above_1_prints_scikit_learn_lines_too(iris, capsys, verbose):
    est = _fit(*iris, max_iter=3, verbose=verbose)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Iteration %d, loss = %.8f" % (i + 1, loss) for i, loss in enumerate(est.loss_curve_)
    ]
    # on a terminal too: the bar is drawn only when asked for (verbose="progress")
    assert ProgressReporter(verbose, max_iter=3, file=FakeTTY()).mode == "lines"


def test_verbose_rejects_other_strings(iris):
    with pytest.raises(ValueError, match="verbose"):
        _fit(*iris, verbose="bar")


def test_verbose_1_with_early_stopping_prints_validation_scores(iris, capsys):
    est = _fit(*iris, max_iter=4, verbose=True, early_stopping=True, validation_fraction=0.2)
    lines = capsys.readouterr().out.splitlines()
    expected = []
    for i, (loss, score) in enumerate(zip(est.loss_curve_, est.validation_scores_)):
        expected += ["Iteration %d, loss = %.8f" % (i + 1, loss), "Validation score: %f" % score]
    assert lines[: len(expected)] == expected


def test_verbose_progress_non_tty_prints_plain_lines(iris, capsys):
    est = _fit(*iris, max_iter=6, verbose="progress")
    out = capsys.readouterr().out
    assert not CONTROL.search(out)
    lines = out.splitlines()
    assert len(lines) == est.n_iter_ == 6
    for i, (line, loss) in enumerate(zip(lines, est.loss_curve_), start=1):
        assert line.startswith("Epoch %d/6: loss = %.8f, " % (i, loss))
        assert line.endswith("s elapsed")


def test_verbose_progress_non_tty_with_validation(iris, capsys):
    est = _fit(*iris, max_iter=3, verbose="progress", early_stopping=True, validation_fraction=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert "validation score = %.6f" % est.validation_scores_[-1] in lines[-1]
    assert "validation loss = %.8f" % est.validation_loss_curve_[-1] in lines[-1]


def test_log_mode_prints_every_k_epochs_and_the_last():
    out = io.StringIO()
    rep = ProgressReporter("progress", max_iter=200, file=out)
    assert rep.mode == "log"
    assert rep.every == 200 // MAX_LOG_LINES == 4
    rep.start()
    for epoch in range(1, 102):  # stops early, at an epoch that is not a multiple of 4
        rep.epoch_end(epoch, 1.0 / epoch)
    rep.close()
    epochs = [int(m) for m in re.findall(r"^Epoch (\d+)/200", out.getvalue(), re.M)]
    assert epochs == [1] + list(range(4, 101, 4)) + [101]
    assert not CONTROL.search(out.getvalue())


def test_verbose_progress_on_a_terminal_draws_a_tqdm_bar(iris, monkeypatch):
    pytest.importorskip("tqdm")
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    # tol=1 stops after n_iter_no_change + 1 epochs with the solver's "Stopping." message
    est = _fit(*iris, max_iter=300, verbose="progress", tol=1.0, n_iter_no_change=2)
    assert sys.stdout is tty  # the redirection used during the bar is undone
    out = tty.getvalue()
    assert "\r" in out
    assert f"{est.n_iter_}/300" in out
    assert "loss=%.4g" % est.loss_curve_[-1] in out
    # the solver's message was printed through tqdm.write: on its own line, not inside a bar
    stop_lines = [line for line in out.replace("\r", "\n").splitlines() if "Stopping." in line]
    assert stop_lines == [
        "Training loss did not improve more than tol=1.000000 for 2 consecutive epochs. Stopping."
    ]


def test_bar_shows_validation_score(iris):
    pytest.importorskip("tqdm")
    tty = FakeTTY()
    rep = ProgressReporter("progress", max_iter=3, file=tty)
    assert rep.mode == "bar"
    rep.start()
    rep.epoch_end(1, 0.5, val_score=0.75, val_loss=0.4)
    rep.close()
    assert "val_score=0.7500" in tty.getvalue()
    assert "val_loss=0.4" in tty.getvalue()


def test_without_tqdm_a_terminal_gets_plain_lines(iris, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    monkeypatch.setitem(sys.modules, "tqdm.contrib", None)
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    _fit(*iris, max_iter=4, verbose="progress")
    out = tty.getvalue()
    assert not CONTROL.search(out)
    assert len(out.splitlines()) == 4


def test_partial_fit_never_draws_a_bar(iris, monkeypatch):
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    X, y = iris
    est = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, verbose="progress")
    for _ in range(3):
        est.partial_fit(X, y, classes=np.unique(y))
    out = tty.getvalue()
    assert not CONTROL.search(out)
    assert len(out.splitlines()) == 3


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on the way to divergence
def test_stdout_restored_when_training_diverges(monkeypatch):
    pytest.importorskip("tqdm")
    from sknet._base import DivergenceError

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3)) * 1e150
    y = X[:, 0] * 1e150
    reg = MLPRegressor(
        hidden_layer_sizes=(4,),
        solver="sgd",
        learning_rate_init=1.0,
        max_iter=5,
        verbose="progress",
        random_state=0,
    )
    with pytest.raises(DivergenceError):
        reg.fit(X, y)
    assert sys.stdout is tty


def test_keyboard_interrupt_closes_the_bar(iris, monkeypatch):
    pytest.importorskip("tqdm")
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, verbose="progress", random_state=0)
    calls = []
    original = type(est)._run_epoch

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(type(est), "_run_epoch", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(*iris)
    assert sys.stdout is tty
    assert est.n_iter_ == 2
    assert tty.getvalue().endswith("\n")  # the bar was closed (tqdm ends it with a newline)


# -- every family: the same reporting, through the shared training loop ------------------


def _family_fit(name, **params):
    cls = estimator_class(name)
    X = make_X(cls, n=30)
    kind = "multiclass" if name.endswith("Classifier") else "regression"
    est = make_estimator(cls, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, make_y(X, kind))


@pytest.mark.parametrize("name", PLANNED)
def test_verbose_1_lines_for_every_family(name, capsys):
    est = _family_fit(name, max_iter=4, verbose=True, early_stopping=True, validation_fraction=0.3)
    lines = capsys.readouterr().out.splitlines()
    expected = []
    for i, (loss, score) in enumerate(zip(est.loss_curve_, est.validation_scores_)):
        expected += ["Iteration %d, loss = %.8f" % (i + 1, loss), "Validation score: %f" % score]
    assert len(est.loss_curve_) == 4
    assert lines[: len(expected)] == expected


@pytest.mark.parametrize("name", PLANNED)
def test_verbose_progress_in_a_log_file_for_every_family(name, tmp_path, monkeypatch):
    # a real file, as when a job's output is redirected: plain lines, never a bar
    # (whether tqdm is installed or not)
    log = tmp_path / "fit.log"
    with open(log, "w") as fh:
        monkeypatch.setattr(sys, "stdout", fh)
        est = _family_fit(name, max_iter=3, verbose="progress")
        monkeypatch.undo()
    text = log.read_text()
    assert not CONTROL.search(text)
    lines = text.splitlines()
    assert len(lines) == est.n_iter_ == 3
    for i, (line, loss) in enumerate(zip(lines, est.loss_curve_), start=1):
        assert line.startswith("Epoch %d/3: loss = %.8f, " % (i, loss))


@pytest.mark.parametrize("name", ["RNNRegressor", "ConvNetClassifier"])
def test_verbose_progress_on_a_real_terminal_draws_a_bar(name, monkeypatch):
    # a pseudo-terminal: isatty() is true for the real reason, and tqdm redraws with \r
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")  # POSIX only
    import fcntl
    import struct
    import termios
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)  # no newline translation: every \r seen below is tqdm's
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        with open(slave, "w", closefd=False) as term:
            monkeypatch.setattr(sys, "stdout", term)
            est = _family_fit(name, max_iter=4, verbose="progress")
            term.flush()
            monkeypatch.undo()
        chunks = []
        os.set_blocking(master, False)
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(slave)
        os.close(master)
    out = b"".join(chunks).decode()
    assert "\r" in out
    assert "4/4" in out
    assert "loss=%.4g" % est.loss_curve_[-1] in out
    assert "Epoch " not in out  # the bar, not the plain log
