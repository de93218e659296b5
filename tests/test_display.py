"""TrainingHistoryDisplay: the curves drawn are the estimator's recorded history."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknet import MLPClassifier, MLPRegressor, TrainingHistoryDisplay

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X / X.max(axis=0), y


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def test_loss_curve_without_validation(iris):
    clf = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=7, random_state=0), *iris)
    disp = TrainingHistoryDisplay.from_estimator(clf)
    assert_allclose(disp.loss_line_.get_ydata(), clf.loss_curve_)
    assert_allclose(disp.loss_line_.get_xdata(), np.arange(1, 8))
    assert disp.validation_loss_line_ is None
    assert disp.validation_score_line_ is None
    assert disp.score_ax_ is None
    assert disp.figure_ is disp.ax_.figure
    assert disp.ax_.get_title() == "MLPClassifier"
    assert disp.ax_.get_xlabel() == "epoch" and disp.ax_.get_ylabel() == "loss"
    assert [t.get_text() for t in disp.ax_.get_legend().get_texts()] == ["training loss"]


def test_validation_curves(iris):
    clf = _fit(
        MLPClassifier(
            hidden_layer_sizes=(8,),
            max_iter=6,
            early_stopping=True,
            validation_fraction=0.2,
            random_state=0,
        ),
        *iris,
    )
    disp = TrainingHistoryDisplay.from_estimator(clf, name="iris")
    assert_allclose(disp.validation_loss_line_.get_ydata(), clf.validation_loss_curve_)
    assert_allclose(disp.validation_score_line_.get_ydata(), clf.validation_scores_)
    assert disp.validation_score_line_.axes is disp.score_ax_
    assert disp.score_ax_.get_ylabel() == "validation accuracy"
    assert disp.ax_.get_title() == "iris"
    legend = disp.score_ax_.get_legend()
    best = clf.best_iteration_
    assert best == int(np.argmax(clf.validation_scores_)) + 1
    assert [t.get_text() for t in legend.get_texts()] == [
        "training loss",
        "validation loss",
        "validation accuracy",
        f"weights kept (epoch {best})",
    ]
    assert disp.best_iteration_line_.get_xdata()[0] == best


def test_marks_the_epoch_an_early_stopping_callback_kept(iris):
    from sknet.callbacks import EarlyStopping

    X, y = iris
    # scored on flipped labels: the better the fit, the worse the score
    stop = EarlyStopping("accuracy", validation_data=(X, 2 - y), patience=3)
    clf = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0), X, y)
    clf = _fit(clf.set_callbacks(stop), X, y)
    disp = TrainingHistoryDisplay.from_estimator(clf, best_iteration_kw={"color": "red"})
    assert disp.best_iteration_line_.get_xdata()[0] == clf.best_iteration_ < clf.n_iter_
    assert disp.best_iteration_line_.get_color() == "red"
    # without early stopping the weights are the last epoch's: no mark
    plain = _fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0), X, y)
    assert TrainingHistoryDisplay.from_estimator(plain).best_iteration_line_ is None
    with pytest.raises(ValueError, match="best_iteration"):
        TrainingHistoryDisplay(loss_curve=[1.0, 0.5], best_iteration=3).plot()


def test_regressor_score_label_and_given_axes():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -2.0, 0.5]
    reg = _fit(
        MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, early_stopping=True, random_state=0), X, y
    )
    fig, ax = plt.subplots()
    disp = TrainingHistoryDisplay.from_estimator(reg, ax=ax, loss_kw={"color": "black"})
    assert disp.ax_ is ax and disp.figure_ is fig
    assert disp.score_ax_.get_ylabel() == "validation R^2"
    assert disp.loss_line_.get_color() == "black"


def test_pipeline_and_scikit_learn_mlp(iris):
    pipe = _fit(
        make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
        ),
        *iris,
    )
    disp = TrainingHistoryDisplay.from_estimator(pipe)
    assert_allclose(disp.loss_line_.get_ydata(), pipe[-1].loss_curve_)
    # any estimator that records loss_curve_ works, scikit-learn's MLP included
    sk = _fit(
        SkMLPClassifier(hidden_layer_sizes=(4,), max_iter=3, early_stopping=True, random_state=0),
        *iris,
    )
    disp = TrainingHistoryDisplay.from_estimator(sk)
    assert_allclose(disp.validation_score_line_.get_ydata(), sk.validation_scores_)
    # scikit-learn's MLP kept its best validation epoch's weights too
    assert disp.best_iteration_line_.get_xdata()[0] == np.argmax(sk.validation_scores_) + 1
    assert disp.validation_loss_line_ is None


def test_lbfgs_has_no_history(iris):
    clf = _fit(MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=5), *iris)
    with pytest.raises(ValueError, match="only the stochastic solvers"):
        TrainingHistoryDisplay.from_estimator(clf)


def test_unfitted_estimator():
    with pytest.raises(NotFittedError):
        TrainingHistoryDisplay.from_estimator(MLPClassifier())


def test_plot_from_stored_curves():
    disp = TrainingHistoryDisplay(
        loss_curve=[3.0, 2.0, 1.0], validation_scores=[0.1, 0.5, 0.6], score_name="accuracy"
    ).plot()
    assert_allclose(disp.validation_score_line_.get_ydata(), [0.1, 0.5, 0.6])
    assert disp.ax_.get_title() == ""
    assert disp.validation_loss_line_ is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"loss_curve": []}, "empty"),
        ({"loss_curve": [1.0, 0.5], "validation_scores": [0.2]}, "one value per epoch"),
        ({"loss_curve": [1.0, 0.5], "validation_loss_curve": [1, 2, 3]}, "one value per epoch"),
        ({"loss_curve": [[1.0, 0.5]]}, "1-D"),
    ],
)
def test_invalid_curves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainingHistoryDisplay(**kwargs).plot()


@pytest.mark.parametrize(
    "name", ["RNNClassifier", "RNNRegressor", "ConvNetClassifier", "ConvNetRegressor"]
)
def test_recurrent_and_convolutional_histories(name):
    # the same training loop records the same curves for every family
    import sknet

    from ._network_estimators import make_estimator, make_X, make_y

    cls = getattr(sknet, name)
    X = make_X(cls, n=40)
    y = make_y(X, "multiclass" if name.endswith("Classifier") else "regression")
    est = _fit(
        make_estimator(
            cls, max_iter=5, early_stopping=True, validation_fraction=0.25, n_iter_no_change=50
        ),
        X,
        y,
    )
    disp = TrainingHistoryDisplay.from_estimator(est)
    assert_allclose(disp.loss_line_.get_ydata(), est.loss_curve_)
    assert_allclose(disp.validation_loss_line_.get_ydata(), est.validation_loss_curve_)
    assert_allclose(disp.validation_score_line_.get_ydata(), est.validation_scores_)
    assert len(est.loss_curve_) == 5
    assert disp.ax_.get_title() == name
    expected = "validation accuracy" if name.endswith("Classifier") else "validation R^2"
    assert disp.score_ax_.get_ylabel() == expected
