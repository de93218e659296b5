"""Callbacks: scikit-learn's protocol (ProgressBar, ScoringMonitor) on every estimator,
bare, in a Pipeline and under GridSearchCV; sknet's schedules, early stopping and
checkpoints; learning_rate_init changes between partial_fit calls."""

import math
import os
import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sknet
from sknet import MLPClassifier, MLPRegressor
from sknet._compat import SKLEARN_CALLBACKS
from sknet.callbacks import (
    Checkpoint,
    CosineAnnealingWarmRestarts,
    EarlyStopping,
    ExponentialLR,
    LinearWarmup,
    ReduceLROnPlateau,
    StepLR,
)
from sknet.persistence import read_header

from ._network_estimators import PLANNED, estimator_class, make_estimator, make_X, make_y

needs_sklearn_callbacks = pytest.mark.skipif(
    not SKLEARN_CALLBACKS, reason="sklearn.callback needs scikit-learn >= 1.9"
)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X / X.max(axis=0), y


class Recorder:
    """Records the hooks it sees as (hook, task_name, task_id, is_leaf); can stop."""

    def __init__(self, stop_at=None):
        self.calls = []
        self.stop_at = stop_at

    def setup(self, estimator, context):
        self.calls.append(("setup", context.task_name, context.task_id, False))

    def teardown(self, estimator, context):
        self.calls.append(("teardown", context.task_name, context.task_id, False))

    def on_fit_task_begin(self, estimator, context):
        self.calls.append(("begin", context.task_name, context.task_id, not context.max_subtasks))

    def on_fit_task_end(self, estimator, context, *, X=None, fitted_estimator=None):
        leaf = not context.max_subtasks
        self.calls.append(("end", context.task_name, context.task_id, leaf))
        if leaf and fitted_estimator is not None:
            self.scores = getattr(self, "scores", []) + [fitted_estimator.score(X, self.y)]
        return leaf and self.stop_at is not None and context.task_id + 1 == self.stop_at


#: a progress bar's description: "[Meta - task | ]Estimator - task[ #id]", indented
DESCRIPTION = re.compile(r"^(\s*(?:\S+ - \S+ \| )?\S+ - \S+(?: #\d+)?)")


def _theta(est):
    return est.network_.theta.copy()


# ------------------------------------------------------------------ the protocol
@pytest.mark.parametrize("name", PLANNED)
def test_every_estimator_reports_epochs_as_tasks(name):
    cls = estimator_class(name)
    X = make_X(cls, n=24)
    y = make_y(X, "binary" if "Classifier" in name else "regression")
    rec = Recorder()
    rec.y = y
    est = make_estimator(cls, max_iter=3, solver="adam").set_callbacks(rec).fit(X, y)
    hooks = [c[:2] for c in rec.calls]
    assert hooks[:2] == [("setup", "fit"), ("begin", "fit")]
    assert hooks[-2:] == [("end", "fit"), ("teardown", "fit")]
    epochs = [c for c in rec.calls if c[3]]
    assert [c[:3] for c in epochs] == [
        (hook, "epoch", i) for i in range(est.n_iter_) for hook in ("begin", "end")
    ]
    # each epoch's fitted_estimator predicts with that epoch's weights: the last one
    # is the fitted model
    assert rec.scores[-1] == est.score(X, y)


def test_callback_stops_training_and_lbfgs_iterations(iris):
    X, y = iris
    rec = Recorder(stop_at=2)
    rec.y = y
    est = MLPClassifier(max_iter=50, random_state=0).set_callbacks(rec).fit(X, y)
    assert est.n_iter_ == len(est.loss_curve_) == 2
    rec = Recorder(stop_at=4)
    rec.y = y
    est = MLPClassifier(solver="lbfgs", max_iter=50, random_state=0).set_callbacks(rec)
    est.fit(X, y)
    assert est.n_iter_ == 4
    names = {c[1] for c in rec.calls if c[3]}
    assert names == {"lbfgs-iter"}
    # every begin has its end; the task after scipy's last callback is empty
    begins = [c[2] for c in rec.calls if c[0] == "begin" and c[3]]
    ends = [c[2] for c in rec.calls if c[0] == "end" and c[3]]
    assert begins == ends == list(range(5))
    assert len(rec.scores) == 4  # the empty task gets no fitted estimator
    # stopped after iteration 4 == trained for 4 iterations
    ref = MLPClassifier(solver="lbfgs", max_iter=4, random_state=0).fit(X, y)
    np.testing.assert_array_equal(_theta(est), _theta(ref))


def test_callbacks_do_not_change_training(iris):
    X, y = iris
    rec = Recorder()
    rec.y = y
    a = MLPClassifier(max_iter=6, random_state=0, early_stopping=True).fit(X, y)
    b = clone(a).set_callbacks(rec).fit(X, y)
    np.testing.assert_array_equal(_theta(a), _theta(b))
    assert a.validation_scores_ == b.validation_scores_


def test_set_callbacks_validates_and_clone_keeps_them():
    est = MLPClassifier()
    with pytest.raises(TypeError, match="FitCallback protocol"):
        est.set_callbacks(object())
    with pytest.raises(TypeError, match="FitCallback protocol"):
        est.set_callbacks(Recorder)  # a class, not an instance
    rec = Recorder()
    assert clone(est.set_callbacks(rec))._skl_callbacks == [rec]
    assert not hasattr(est.set_callbacks(), "_skl_callbacks")


def _logs(est, X, y):
    from sklearn.callback import ScoringMonitor

    monitor = ScoringMonitor(scoring="accuracy")
    last = est[-1] if hasattr(est, "steps") else est
    if hasattr(est, "param_grid"):
        last = est.estimator
    last.set_callbacks(monitor)
    est.fit(X, y)
    return monitor.get_logs().data


def _shape(rows):
    """The structure of a ScoringMonitor log: (depth, task_name, parent depth) rows with
    the estimator name dropped, and the columns."""
    return [(len(r["task_id_path"]), r["task_name"]) for r in rows], sorted(rows[0])


@needs_sklearn_callbacks
@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_scoring_monitor_matches_logistic_regression(iris, solver):
    X, y = iris
    ours = _logs(MLPClassifier(solver=solver, max_iter=4, random_state=0), X, y)
    theirs = _logs(LogisticRegression(max_iter=4), X, y)
    (ours_rows, ours_cols), (their_rows, their_cols) = _shape(ours), _shape(theirs)
    assert ours_cols == their_cols
    assert ours_rows[0] == their_rows[0] == (1, "fit")
    task = "lbfgs-iter" if solver == "lbfgs" else "epoch"
    assert ours_rows[1:] == [(2, task)] * 4
    if solver == "lbfgs":
        assert ours_rows == their_rows
    # the last epoch's score is the fitted model's
    assert ours[-1]["accuracy"] == ours[0]["accuracy"]


@needs_sklearn_callbacks
def test_scoring_monitor_in_pipeline_and_grid_search(iris):
    X, y = iris

    def pipe(est):
        return make_pipeline(StandardScaler(), est)

    def grid(est):
        return GridSearchCV(est, {"tol": [1e-4, 1e-3]}, cv=2)

    for wrap in (pipe, grid):
        ours = _logs(wrap(MLPClassifier(solver="lbfgs", max_iter=3, random_state=0)), X, y)
        theirs = _logs(wrap(LogisticRegression(max_iter=3)), X, y)
        assert len(ours) == len(theirs)
        assert [r["task_id_path"] for r in ours] == [r["task_id_path"] for r in theirs]
        assert [r["task_name"] for r in ours] == [r["task_name"] for r in theirs]
        assert {r["estimator_name"] for r in ours} == {"MLPClassifier"}


@needs_sklearn_callbacks
def test_progress_bar_output_matches_logistic_regression(iris, capsys):
    pytest.importorskip("rich")
    from sklearn.callback import ProgressBar

    X, y = iris

    def bars(est):
        est.set_callbacks(ProgressBar())
        est.fit(X, y)
        out = capsys.readouterr().out
        # the task descriptions, without the bar and timing columns (their width
        # depends on the terminal's)
        return [m.group(1) for m in map(DESCRIPTION.match, out.splitlines()) if m is not None]

    for wrap in (
        lambda est: est,
        lambda est: make_pipeline(StandardScaler(), est),
        lambda est: GridSearchCV(est, {"tol": [1e-4, 1e-3]}, cv=2),
    ):
        ours = bars(wrap(MLPClassifier(solver="lbfgs", max_iter=3, random_state=0)))
        theirs = bars(wrap(LogisticRegression(max_iter=3)))
        assert ours, "no progress bar was drawn"
        assert ours == [line.replace("LogisticRegression", "MLPClassifier") for line in theirs]


# ------------------------------------------------------------------ learning rates
def _sgd(**params):
    base = dict(solver="sgd", momentum=0.0, shuffle=False, hidden_layer_sizes=(6,), random_state=0)
    return MLPClassifier(**{**base, **params})


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_learning_rate_init_change_between_partial_fit_calls_takes_effect(iris, solver):
    X, y = iris
    classes = np.unique(y)
    rates = [0.1, 0.05, 0.02]
    a = _sgd(solver=solver, learning_rate_init=rates[0])
    for lr in rates:
        a.set_params(learning_rate_init=lr).partial_fit(X, y, classes=classes)
    assert a._optimizer.learning_rate_init == rates[-1]
    # the same per-epoch rates from a schedule, in one fit
    sched = StepLR(1, gamma=0.5)
    b = _sgd(solver=solver, learning_rate_init=0.1, max_iter=3)
    b.set_callbacks(ExponentialLR(1.0))  # constant: the plain fit
    c = _sgd(solver=solver, learning_rate_init=0.1, max_iter=3)
    c.fit(X, y)
    np.testing.assert_array_equal(_theta(b.fit(X, y)), _theta(c))
    # partial_fit with rates 0.1, 0.05, 0.025 == fit with StepLR(1, 0.5)
    d = _sgd(solver=solver, learning_rate_init=0.1)
    for lr in (0.1, 0.05, 0.025):
        d.set_params(learning_rate_init=lr).partial_fit(X, y, classes=classes)
    e = _sgd(solver=solver, learning_rate_init=0.1, max_iter=3).set_callbacks(sched).fit(X, y)
    np.testing.assert_array_equal(_theta(d), _theta(e))
    # and unchanged rates reproduce the plain fit
    f = _sgd(solver=solver, learning_rate_init=0.1)
    for _ in range(3):
        f.partial_fit(X, y, classes=classes)
    np.testing.assert_array_equal(_theta(f), _theta(c))
    assert not np.array_equal(_theta(d), _theta(f))


def test_learning_rate_init_change_with_warm_start(iris):
    X, y = iris
    est = _sgd(learning_rate_init=0.1, max_iter=2, warm_start=True).fit(X, y)
    est.set_params(learning_rate_init=0.01).fit(X, y)
    assert est._optimizer.learning_rate == 0.01


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (StepLR(2, gamma=0.5), [1, 1, 0.5, 0.5, 0.25, 0.25]),
        (ExponentialLR(0.5), [1, 0.5, 0.25, 0.125, 0.0625, 0.03125]),
        (
            CosineAnnealingWarmRestarts(3, eta_min=0.1),
            [1, 0.1 + 0.9 * 0.75, 0.1 + 0.9 * 0.25, 1, 0.1 + 0.9 * 0.75, 0.1 + 0.9 * 0.25],
        ),
        (
            CosineAnnealingWarmRestarts(1, T_mult=2),
            [
                1,
                1,
                0.5,
                1,
                (1 + math.cos(0.25 * math.pi)) / 2,
                0.5,
                (1 - math.cos(0.25 * math.pi)) / 2,
            ],
        ),
        (LinearWarmup(2, after=ExponentialLR(0.5)), [0.1, 0.55, 1, 0.5, 0.25]),
        (LinearWarmup(2, start_factor=0.5), [0.5, 0.75, 1, 1, 1, 1]),
    ],
)
def test_schedule_formulas(schedule, expected):
    got = [schedule.learning_rate(e, 1.0) for e in range(len(expected))]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_schedule_sets_the_optimizer_rate_each_epoch(iris, solver):
    X, y = iris
    seen = []

    class Spy(Recorder):
        def on_fit_task_end(self, estimator, context):
            if not context.max_subtasks:
                seen.append(estimator._optimizer.learning_rate_init)

    est = _sgd(solver=solver, learning_rate_init=0.1, max_iter=5)
    est.set_callbacks(StepLR(2, gamma=0.1), Spy()).fit(X, y)
    np.testing.assert_allclose(seen, [0.1, 0.1, 0.01, 0.01, 0.001])
    assert est.learning_rate_init == 0.1  # the hyperparameter is unchanged
    # the schedule continues over partial_fit calls
    est.partial_fit(X, y)
    np.testing.assert_allclose(seen[-1], 0.001)
    est.partial_fit(X, y)
    np.testing.assert_allclose(seen[-1], 0.0001)


def test_schedules_refuse_lbfgs_and_sgd_schedules(iris):
    X, y = iris
    with pytest.raises(ValueError, match="solver='sgd' or 'adam'"):
        MLPClassifier(solver="lbfgs").set_callbacks(StepLR(2)).fit(X, y)
    with pytest.raises(ValueError, match="learning_rate='constant'"):
        MLPClassifier(solver="sgd", learning_rate="adaptive").set_callbacks(StepLR(2)).fit(X, y)
    with pytest.raises(ValueError, match="gamma"):
        StepLR(2, gamma=0)
    with pytest.raises(ValueError, match="T_0"):
        CosineAnnealingWarmRestarts(0)
    with pytest.raises(ValueError, match="after"):
        LinearWarmup(2, after=ReduceLROnPlateau())


def test_reduce_on_plateau(iris):
    X, y = iris
    plateau = ReduceLROnPlateau(patience=2, tol=10.0, factor=0.5)  # never improves enough
    est = _sgd(learning_rate_init=0.1, max_iter=6).set_callbacks(plateau).fit(X, y)
    # epochs 1-2: first value is an improvement over -inf; reductions after 3 and 5
    assert plateau.current_learning_rate(est) == 0.1 * 0.5**2
    assert est._optimizer.learning_rate_init == 0.1 * 0.5**2
    # on a validation score
    plateau = ReduceLROnPlateau("validation_score", patience=1, tol=1.0)
    est = _sgd(max_iter=3, early_stopping=True, validation_fraction=0.2).set_callbacks(plateau)
    est.fit(X, y)
    assert plateau.current_learning_rate(est) < est.learning_rate_init
    with pytest.raises(ValueError, match="early_stopping=True"):
        _sgd().set_callbacks(ReduceLROnPlateau("validation_loss")).fit(X, y)
    with pytest.raises(ValueError, match="scorer name"):
        ReduceLROnPlateau("no_such_scorer")


# ------------------------------------------------------------------ early stopping
@pytest.mark.parametrize("monitor", [None, "neg_log_loss", "f1_macro"])
def test_early_stopping_restores_best_weights(iris, monitor):
    X, y = iris
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, random_state=0, stratify=y)
    # n_iter_no_change: no stop on the training loss, the callback decides
    params = dict(
        hidden_layer_sizes=(8,), learning_rate_init=0.05, n_iter_no_change=1000, random_state=0
    )
    # the validation log-loss falls slowly for long: count only falls of 1e-3
    tol = 1e-3 if monitor == "neg_log_loss" else 0.0
    stop = EarlyStopping(monitor, validation_data=(X_val, y_val), patience=3, tol=tol)
    est = MLPClassifier(max_iter=300, **params).set_callbacks(stop).fit(X_tr, y_tr)
    assert est.n_iter_ < 300
    if tol:  # the best epoch is one of the last 3, since the last significant gain
        assert est.n_iter_ - 3 <= est.best_iteration_ <= est.n_iter_
    else:
        assert est.best_iteration_ == est.n_iter_ - 3
    # the kept weights are exactly those after best_iteration_ epochs
    ref = MLPClassifier(max_iter=est.best_iteration_, **params).fit(X_tr, y_tr)
    np.testing.assert_array_equal(_theta(est), _theta(ref))
    # and the best score is theirs
    if monitor is None:
        assert stop.best_score(est) == ref.score(X_val, y_val)


def test_early_stopping_on_the_validation_loss_curve(iris):
    X, y = iris
    stop = EarlyStopping("validation_loss", patience=3)
    est = MLPClassifier(
        max_iter=300,
        learning_rate_init=0.05,
        early_stopping=True,
        n_iter_no_change=1000,
        random_state=0,
    ).set_callbacks(stop)
    est.fit(X, y)
    # the callback's restore (lowest validation loss) wins over the built-in one
    # (highest validation score)
    assert est.best_iteration_ == int(np.argmin(est.validation_loss_curve_)) + 1
    assert stop.best_score(est) == -min(est.validation_loss_curve_)


def test_early_stopping_without_restore_and_with_lbfgs(iris):
    X, y = iris
    stop = EarlyStopping(patience=2, restore_best_weights=False, tol=0.5)
    est = MLPClassifier(max_iter=50, random_state=0).set_callbacks(stop).fit(X, y)
    assert est.n_iter_ == 3 and not hasattr(est, "best_iteration_")
    ref = MLPClassifier(max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(_theta(est), _theta(ref))
    stop = EarlyStopping("neg_log_loss", patience=2, tol=0.05)
    est = MLPClassifier(solver="lbfgs", max_iter=500, random_state=0).set_callbacks(stop)
    est.fit(X, y)
    assert est.n_iter_ < 500
    ref = MLPClassifier(solver="lbfgs", max_iter=est.best_iteration_, random_state=0).fit(X, y)
    np.testing.assert_array_equal(_theta(est), _theta(ref))


def test_early_stopping_restores_batchnorm_state():
    cls = estimator_class("NetworkClassifier")  # its toy layers hold batch normalization
    X = make_X(cls, n=30)
    y = make_y(X, "binary")
    # scored against the flipped labels: the better the fit, the worse the score, so
    # an early epoch is the best one
    stop = EarlyStopping("neg_log_loss", validation_data=(X, 1 - y), patience=2)
    est = make_estimator(cls, max_iter=20, learning_rate_init=0.05).set_callbacks(stop).fit(X, y)
    assert est.network_.state.size and est.best_iteration_ == est.n_iter_ - 2 < 18
    ref = make_estimator(cls, max_iter=est.best_iteration_, learning_rate_init=0.05).fit(X, y)
    np.testing.assert_array_equal(est.network_.state, ref.network_.state)
    np.testing.assert_array_equal(_theta(est), _theta(ref))


def test_early_stopping_refuses_partial_fit_and_bad_input(iris):
    X, y = iris
    est = MLPClassifier().set_callbacks(EarlyStopping())
    with pytest.raises(ValueError, match="partial_fit"):
        est.partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="validation_data"):
        EarlyStopping(validation_data=X)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_every_and_best(iris, tmp_path):
    X, y = iris
    ck = Checkpoint(tmp_path / "m-{epoch}.sknet", every=2)
    est = MLPClassifier(max_iter=5, random_state=0).set_callbacks(ck).fit(X, y)
    assert [os.path.basename(p) for p in ck.saved_paths(est)] == ["m-2.sknet", "m-4.sknet"]
    assert read_header(ck.saved_paths(est)[0])["metadata"] == {"epoch": 2}
    four = sknet.load(ck.saved_paths(est)[1])
    assert four.n_iter_ == 4 and len(four.loss_curve_) == 4
    # on the best validation score: saved at each improvement, the file is the best
    ck = Checkpoint(tmp_path / "best.sknet", save_best=True)
    est = MLPClassifier(
        max_iter=8, early_stopping=True, learning_rate_init=0.05, random_state=0
    ).set_callbacks(ck)
    est.fit(X, y)
    best = sknet.load(tmp_path / "best.sknet")
    header = read_header(tmp_path / "best.sknet")["metadata"]
    assert header["score"] == max(est.validation_scores_)
    assert header["epoch"] == int(np.argmax(est.validation_scores_)) + 1 == est.best_iteration_
    np.testing.assert_array_equal(_theta(best), _theta(est))  # early stopping kept the best
    with pytest.raises(ValueError, match="saves nothing"):
        Checkpoint(tmp_path / "x.sknet")


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_checkpoint_resume_is_bit_identical(iris, tmp_path, solver):
    """10 epochs straight == 5 epochs, checkpoint, load, 5 more (partial_fit)."""
    X, y = iris
    classes = np.unique(y)
    straight = MLPClassifier(solver=solver, random_state=0)
    for _ in range(10):
        straight.partial_fit(X, y, classes=classes)
    ck = Checkpoint(tmp_path / "ck-{epoch}.sknet", every=5)
    first = MLPClassifier(solver=solver, random_state=0).set_callbacks(ck)
    for _ in range(5):
        first.partial_fit(X, y, classes=classes)
    resumed = sknet.load(tmp_path / "ck-5.sknet")
    for _ in range(5):
        resumed.partial_fit(X, y)
    np.testing.assert_array_equal(_theta(resumed), _theta(straight))
    assert resumed.loss_curve_ == straight.loss_curve_
    assert resumed.t_ == straight.t_


def test_sknet_callbacks_under_grid_search(iris, tmp_path):
    X, y = iris
    stop = EarlyStopping(patience=2, tol=0.5)
    grid = GridSearchCV(
        MLPClassifier(max_iter=50, random_state=0).set_callbacks(stop),
        {"alpha": [1e-4, 1e-2]},
        cv=2,
    ).fit(X, y)
    assert grid.best_estimator_.n_iter_ < 50
    assert grid.best_estimator_._skl_callbacks == [stop]


def test_regressor_with_schedule_and_early_stopping():
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    y = X @ [1.0, -2.0, 0.5]
    est = MLPRegressor(max_iter=40, learning_rate_init=0.01, random_state=0).set_callbacks(
        CosineAnnealingWarmRestarts(5), EarlyStopping("r2", validation_data=(X, y), patience=5)
    )
    est.fit(X, y)
    assert est.score(X, y) > 0.5


def test_best_iteration_is_saved_and_reset(iris, tmp_path):
    X, y = iris
    est = MLPClassifier(max_iter=6, early_stopping=True, random_state=0).fit(X, y)
    sknet.save(est, tmp_path / "m.sknet")
    assert sknet.load(tmp_path / "m.sknet").best_iteration_ == est.best_iteration_
    # training on without early stopping: the weights are the last epoch's again
    est.set_params(early_stopping=False, warm_start=True).fit(X, y)
    assert not hasattr(est, "best_iteration_")
    est.set_params(early_stopping=True, warm_start=False).fit(X, y)
    est.set_weights(est.network_.theta)
    assert not hasattr(est, "best_iteration_")


def test_scoring_monitor_on_variable_length_sequences():
    """The hooks receive the fit's validated X: a list of sequences arrives padded, and
    the estimator scores it as it scores the list itself."""
    callback = pytest.importorskip("sklearn.callback")
    from sknet import RNNClassifier

    rng = np.random.RandomState(0)
    X = [rng.randn(rng.randint(3, 12), 2) for _ in range(40)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    monitor = callback.ScoringMonitor(scoring="accuracy")
    est = RNNClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.05, max_iter=12)
    est.set_params(random_state=0).set_callbacks(monitor).fit(X, y)
    rows = monitor.get_logs().data
    epochs = [r["accuracy"] for r in rows if r["task_name"] == "epoch"]
    assert len(epochs) == est.n_iter_
    assert epochs[-1] == est.score(X, y) > 0.7
