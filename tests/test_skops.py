"""skops.io and pickle: sknet estimators are pickled as their saved form (builtins and
NumPy arrays), so skops trusts everything in them but the estimator classes themselves."""

import copy
import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknet import ConvNetRegressor, MLPClassifier, MLPRegressor, NetworkClassifier, RNNClassifier
from sknet import layers as L
from sknet.transfer import FineTuner, NetworkFeatures

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)


def _sio():
    return pytest.importorskip("skops.io")


def test_pipeline_round_trip_trusts_only_the_sknet_class(tmp_path):
    sio = _sio()
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=20, random_state=0))
    pipe.fit(X, y)
    path = tmp_path / "pipe.skops"
    sio.dump(pipe, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert untrusted == ["sknet._mlp.MLPClassifier"]
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.load(path)
    loaded = sio.load(path, trusted=untrusted)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    assert loaded[-1].get_params() == pipe[-1].get_params()
    assert loaded[-1].loss_curve_ == pipe[-1].loss_curve_


@pytest.mark.parametrize(
    "est, X_shape",
    [
        (NetworkClassifier(layers=[L.Conv1D(2, 3), L.Flatten(), L.Dense(4)], max_iter=3), (30, 8)),
        (RNNClassifier(hidden_layer_sizes=(3,), max_iter=3), (30, 5, 2)),
        (ConvNetRegressor(conv_filters=(2,), hidden_layer_sizes=(3,), max_iter=3), (30, 1, 6, 6)),
    ],
    ids=["NetworkClassifier", "RNNClassifier", "ConvNetRegressor"],
)
def test_other_families_and_unfitted_estimators(est, X_shape):
    sio = _sio()
    rng = np.random.default_rng(0)
    X = rng.normal(size=X_shape)
    y = np.arange(len(X)) % 2
    path = f"{type(est).__module__}.{type(est).__name__}"
    unfitted = sio.loads(sio.dumps(est), trusted=[path])
    assert unfitted.get_params().keys() == est.get_params().keys()
    assert repr(unfitted) == repr(est)
    est = est.set_params(random_state=0).fit(X, y)
    data = sio.dumps(est)
    assert sio.get_untrusted_types(data=data) == [path]
    np.testing.assert_array_equal(sio.loads(data, trusted=[path]).predict(X), est.predict(X))


def test_meta_estimators_need_only_public_sknet_classes():
    sio = _sio()
    X, y = _data()
    base = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    ft = FineTuner(base, MLPClassifier((4,), max_iter=5, random_state=1)).fit(X, y)
    feats = make_pipeline(NetworkFeatures(base), LogisticRegression()).fit(X, y)
    for est, cls in [(ft, "sknet.transfer.FineTuner"), (feats, "sknet.transfer.NetworkFeatures")]:
        data = sio.dumps(est)
        untrusted = sio.get_untrusted_types(data=data)
        assert untrusted == sorted(["sknet._mlp.MLPClassifier", cls])
        np.testing.assert_array_equal(sio.loads(data, trusted=untrusted).predict(X), est.predict(X))


def test_pickle_and_deepcopy_keep_training_identical():
    """The random generator that continued training draws from travels with the state:
    a copy trains on exactly as the original does."""
    X, y = _data()
    est = MLPClassifier((5,), max_iter=3, batch_size=8, random_state=0).fit(X, y)
    state = est.__getstate__()
    assert set(state) == {"_sknet_portable"}  # the saved form, not the attributes
    for twin in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
        assert twin._random_state is not est._random_state
        twin.partial_fit(X, y)
    est.partial_fit(X, y)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
    assert twin.loss_curve_ == est.loss_curve_


def test_a_changed_learning_rate_survives_the_copy():
    """learning_rate_init changed after a schedule moved the optimiser's rate: a copy
    still knows which rate the optimiser last took, and trains on as the original."""
    from sknet.callbacks import StepLR

    X, y = _data()
    est = MLPClassifier((5,), max_iter=4, batch_size=8, random_state=0)
    est.set_callbacks(StepLR(step_size=1, gamma=0.5)).fit(X, y)
    est.set_callbacks()  # no schedule from here on
    twin = pickle.loads(pickle.dumps(est))
    assert twin._learning_rate_init_used == est._learning_rate_init_used
    for model in (est, twin):
        model.partial_fit(X, y)
    np.testing.assert_array_equal(twin.network_.theta, est.network_.theta)


def test_what_the_saved_form_cannot_hold_is_pickled_as_attributes():
    X, y = _data()
    shared = MLPClassifier((4,), max_iter=3, random_state=np.random.RandomState(0)).fit(X, y)
    assert "_sknet_portable" not in shared.__getstate__()
    twin = pickle.loads(pickle.dumps(shared))
    np.testing.assert_array_equal(twin.predict_proba(X), shared.predict_proba(X))

    class Mine(MLPClassifier):  # a user's subclass is not a class the format names
        pass

    mine = Mine((4,), max_iter=3, random_state=0).fit(X, y)
    assert "_sknet_portable" not in mine.__getstate__()
    invalid = MLPClassifier(alpha=-1.0)  # refused at fit, not at pickling
    assert "_sknet_portable" not in invalid.__getstate__()
    assert pickle.loads(pickle.dumps(invalid)).alpha == -1.0
    extra = MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    extra._my_note = "kept"  # an undeclared attribute is not dropped silently
    assert pickle.loads(pickle.dumps(extra))._my_note == "kept"


def test_a_tampered_state_is_refused_with_load_checks():
    X, y = _data()
    est = MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    state = copy.deepcopy(est.__getstate__())
    arrays = state["_sknet_portable"]["arrays"]
    key = next(k for k, a in arrays.items() if a.ndim == 1 and a.size > 4)
    arrays[key] = arrays[key][:-1]  # one weight short
    with pytest.raises(ValueError, match="Cannot load sknet model"):
        MLPClassifier.__new__(MLPClassifier).__setstate__(state)
    state = copy.deepcopy(est.__getstate__())
    with pytest.raises(ValueError, match="describes a 'MLPClassifier'.* not a MLPRegressor"):
        MLPRegressor.__new__(MLPRegressor).__setstate__(state)


def test_sknet_save_refuses_a_pipeline_and_points_to_skops(tmp_path):
    import sknet

    X, y = _data()
    pipe = make_pipeline(StandardScaler(), MLPClassifier((4,), max_iter=3, random_state=0))
    pipe.fit(X, y)
    with pytest.raises(TypeError, match=r"got a Pipeline.*skops\.io\.dump.*pipe\[-1\]"):
        sknet.save(pipe, tmp_path / "pipe.sknet")
    assert not (tmp_path / "pipe.sknet").exists()
    sknet.save(pipe[-1], tmp_path / "step.sknet")  # the sknet step alone saves
    np.testing.assert_array_equal(
        sknet.load(tmp_path / "step.sknet").predict(pipe[0].transform(X)), pipe.predict(X)
    )
