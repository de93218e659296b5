"""Variable-length sequences in the recurrent estimators: a list of (length_i, d) arrays
in fit, partial_fit, predict, score and transform, and inside scikit-learn's tools."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sknet import RNNClassifier, RNNRegressor
from sknet._sequences import PaddedSequences, bucket_order, check_sequences


def _sign_task(n, seed=0, low=3, high=25, d=2):
    """Class = sign of the sum of the first feature over the whole sequence: it needs
    every real step, and padding would change it if it counted."""
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(rng.integers(low, high)), d)) for _ in range(n)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    return X, y


def _fast(est_cls, **kw):
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0, batch_size=16)
    params.update(kw)
    return est_cls(**params)


# --------------------------------------------------------------------------------------
# padding never changes a result
# --------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_prediction_same_alone_among_short_and_beside_long(cell):
    X, y = _sign_task(40, seed=1)
    reg = _fast(RNNRegressor, cell=cell, hidden_layer_sizes=(6, 5)).fit(X, y.astype(float))
    rng = np.random.default_rng(2)
    x = X[0]
    alone = reg.predict([x])
    shorts = [x] + [rng.normal(size=(int(rng.integers(1, 5)), 2)) for _ in range(20)]
    longs = shorts + [rng.normal(size=(600, 2))]
    np.testing.assert_allclose(reg.predict(shorts)[0], alone[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(reg.predict(longs)[0], alone[0], rtol=0, atol=1e-12)
    # and transform (the last hidden state) likewise
    np.testing.assert_allclose(reg.transform(longs)[:1], reg.transform([x]), rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_training_ignores_padding_lengths_of_other_batches():
    """Fitting on a list equals fitting on the same list with one sequence much longer
    appended and weighted zero: the padding the long one brings changes nothing."""
    X, y = _sign_task(32, seed=3)
    kw = dict(cell="gru", batch_size="auto", shuffle=False)
    a = _fast(RNNRegressor, **kw).fit(X, y.astype(float))
    long = np.random.default_rng(4).normal(size=(300, 2))
    sw = np.r_[np.ones(32), 0.0]
    b = _fast(RNNRegressor, **kw).fit(X + [long], np.r_[y, 1.0], sample_weight=sw)
    np.testing.assert_allclose(b.predict(X), a.predict(X), rtol=0, atol=1e-12)


def test_list_of_equal_lengths_is_the_array_path():
    X, y = _sign_task(30, seed=5, low=10, high=11)
    a = _fast(RNNClassifier).fit(X, y)
    b = _fast(RNNClassifier).fit(np.stack(X), y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(np.stack(X)))
    assert a.n_features_in_ == 10  # time steps, as for arrays


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fitted_on_lists_takes_arrays_of_any_length():
    X, y = _sign_task(30, seed=6)
    clf = _fast(RNNClassifier).fit(X, y)
    assert clf.n_features_in_ == 2  # features per step
    Z = np.random.default_rng(7).normal(size=(5, 40, 2))
    np.testing.assert_allclose(clf.predict_proba(Z), clf.predict_proba(list(Z)), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="3 feature"):
        clf.predict(np.zeros((2, 5, 3)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_univariate_1d_sequences_and_float32():
    rng = np.random.default_rng(8)
    X = [rng.normal(size=int(L)).astype(np.float32) for L in rng.integers(2, 20, size=30)]
    y = np.array([x.sum() for x in X])
    reg = _fast(RNNRegressor).fit(X, y)
    assert reg.network_.dtype == np.float32
    assert reg.predict(X).dtype == np.float32
    assert reg.input_shape_[1] == 1
    X2 = [x[:, None] for x in X]
    np.testing.assert_array_equal(reg.predict(X2), reg.predict(X))


# --------------------------------------------------------------------------------------
# learning, determinism, partial_fit, early stopping, persistence
# --------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_learns_a_task_that_needs_every_real_step():
    X, y = _sign_task(400, seed=9, low=2, high=40)
    X_test, y_test = _sign_task(200, seed=10, low=2, high=40)
    clf = RNNClassifier(
        cell="gru",
        hidden_layer_sizes=(16,),
        max_iter=25,
        learning_rate_init=0.02,
        batch_size=32,
        random_state=0,
    ).fit(X, y)
    assert clf.score(X_test, y_test) > 0.9


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_same_seed_same_model_and_partial_fit():
    X, y = _sign_task(50, seed=11)
    a = _fast(RNNClassifier, cell="lstm").fit(X, y)
    b = _fast(RNNClassifier, cell="lstm").fit(X, y)
    np.testing.assert_array_equal(a.network_.theta, b.network_.theta)
    theta = a.network_.theta.copy()
    a.partial_fit(X[:20], y[:20])
    assert not np.array_equal(a.network_.theta, theta)
    a.partial_fit(np.random.default_rng(0).normal(size=(4, 7, 2)), [0, 1, 0, 1])  # arrays too
    c = _fast(RNNClassifier).partial_fit(X, y, classes=[0, 1])
    assert c.n_features_in_ == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_and_given_validation_set():
    X, y = _sign_task(60, seed=12)
    clf = _fast(RNNClassifier, early_stopping=True, max_iter=4).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    Xv, yv = _sign_task(20, seed=13)
    clf = _fast(RNNClassifier, early_stopping=True, max_iter=4).fit(X, y, X_val=Xv, y_val=yv)
    assert len(clf.validation_scores_) == clf.n_iter_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("bidirectional", [False, True])
def test_persistence_round_trip(tmp_path, bidirectional):
    from sknet import persistence

    X, y = _sign_task(30, seed=14)
    clf = _fast(RNNClassifier, bidirectional=bidirectional).fit(X, y)
    path = tmp_path / "m.sknet"
    persistence.save(clf, path)
    loaded = persistence.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.partial_fit(X, y)  # still a model of variable-length sequences


# --------------------------------------------------------------------------------------
# scikit-learn's tools index the list of sequences
# --------------------------------------------------------------------------------------
def _double(seqs):
    return [2.0 * s for s in seqs]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_grid_search_cross_val_score():
    X, y = _sign_task(48, seed=15)
    pipe = make_pipeline(FunctionTransformer(_double), _fast(RNNClassifier))
    pipe.fit(X, y)
    assert pipe.predict(X).shape == (48,)
    grid = GridSearchCV(_fast(RNNClassifier), {"hidden_layer_sizes": [(4,), (6,)]}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_["hidden_layer_sizes"] in [(4,), (6,)]
    assert grid.predict(X).shape == (48,)
    scores = cross_val_score(_fast(RNNRegressor), X, y.astype(float), cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


# --------------------------------------------------------------------------------------
# bucketing: batches of similar lengths, deterministic
# --------------------------------------------------------------------------------------
def test_bucket_order_groups_similar_lengths():
    rng = np.random.default_rng(16)
    lengths = rng.integers(10, 501, size=1000)
    shuffled = rng.permutation(1000)
    order = bucket_order(lengths, shuffled, 32, np.random.RandomState(0))
    assert sorted(order.tolist()) == list(range(1000))
    np.testing.assert_array_equal(
        order, bucket_order(lengths, shuffled, 32, np.random.RandomState(0))
    )
    padded = sum(
        lengths[order[i : i + 32]].max() * len(order[i : i + 32]) for i in range(0, 1000, 32)
    )
    naive = sum(
        lengths[shuffled[i : i + 32]].max() * len(shuffled[i : i + 32]) for i in range(0, 1000, 32)
    )
    # padded steps computed: close to the real ones, far below a shuffled batching
    assert padded < 1.05 * lengths.sum() < 0.7 * naive
    # the partial last batch stays last
    assert set(order[-(1000 % 32) :]) == set(bucket_order(lengths, shuffled, 32)[-(1000 % 32) :])


def test_padded_sequences_indexing():
    seqs = check_sequences([np.ones((3, 2)), np.ones((5, 2)), np.ones((1, 2))])
    assert seqs.shape == (3, 5, 2) and seqs.lengths.tolist() == [3, 5, 1]
    sub = seqs[[0, 2]]
    assert sub.shape == (2, 3, 2)  # trimmed to the longest selected
    assert seqs[np.array([False, True, False])].lengths.tolist() == [5]
    assert seqs[1:].shape == (2, 5, 2)
    assert seqs[[2], ...].shape == (1, 1, 2)
    assert isinstance(seqs.astype(np.float32), PaddedSequences)


# --------------------------------------------------------------------------------------
# bad input: a ValueError naming the sequence and the lengths
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "X, match",
    [
        (
            [np.ones((3, 2)), np.ones((0, 2)), np.ones((4, 2))],
            r"X\[1\] is an empty sequence \(length 0",
        ),
        (
            [np.ones((3, 2)), np.ones((4, 3))],
            r"X\[1\] has 3 feature\(s\) per step \(shape \(4, 3\)\), but X\[0\] has 2",
        ),
        (
            [np.ones((3, 2)), np.ones(4)],
            r"mixes 1-D and 2-D sequences: X\[0\] has shape \(3, 2\).*X\[1\] has shape \(4,\)",
        ),
        ([np.ones((3, 2)), np.ones((2, 2, 2))], r"X\[1\] has 3 dimension"),
        ([np.ones((3, 2)), np.array([[1.0, np.nan]])], r"X\[1\] contains NaN"),
        ([np.ones((3, 2)), np.array([["a", "b"]])], r"X\[1\] has dtype"),
    ],
)
def test_bad_sequences(X, match):
    with pytest.raises(ValueError, match=match):
        RNNClassifier(max_iter=1).fit(X, [0, 1, 0][: len(X)])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bad_sequences_at_predict_and_per_step_targets():
    X, y = _sign_task(20, seed=17)
    clf = _fast(RNNClassifier, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"X\[1\] is an empty sequence"):
        clf.predict([np.ones((3, 2)), np.ones((0, 2))])
    with pytest.raises(ValueError, match="3 feature"):
        clf.predict([np.ones((3, 3)), np.ones((2, 3))])
    y_steps = [np.zeros(len(x)) for x in X]
    y_steps[4] = np.zeros(len(X[4]) + 1)
    with pytest.raises(
        ValueError, match=rf"y\[4\] has {len(X[4]) + 1} step\(s\) but X\[4\] has {len(X[4])}"
    ):
        RNNRegressor(max_iter=1).fit(X, y_steps)
    with pytest.raises(ValueError, match="same number of|inconsistent numbers of samples"):
        RNNClassifier(max_iter=1).fit(X, y[:-1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_array_fitted_model_refuses_ragged_continued_training():
    X, y = _sign_task(20, seed=18, low=6, high=7)
    clf = _fast(RNNClassifier, max_iter=1).fit(np.stack(X), y)
    ragged, yr = _sign_task(10, seed=19)
    # prediction on any lengths is well defined ...
    assert clf.predict(ragged).shape == (10,)
    # ... continued training keeps the fixed-length contract
    with pytest.raises(ValueError, match="fitted on arrays of 6 time steps"):
        clf.partial_fit(ragged, yr)


# --------------------------------------------------------------------------------------
# bidirectional layers on variable lengths
# --------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_prediction_same_alone_and_beside_long(cell):
    X, y = _sign_task(30, seed=20)
    reg = _fast(RNNRegressor, cell=cell, hidden_layer_sizes=(4, 3), bidirectional=True)
    reg.fit(X, y.astype(float))
    assert reg.transform(X).shape == (30, 6)
    rng = np.random.default_rng(21)
    x = X[3]
    batch = [x] + [rng.normal(size=(int(rng.integers(1, 6)), 2)) for _ in range(9)]
    batch.append(rng.normal(size=(400, 2)))
    np.testing.assert_allclose(reg.predict(batch)[0], reg.predict([x])[0], rtol=0, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bidirectional_reads_the_first_step_last():
    """The class is the sign of each sequence's *first* value: the backward direction
    reads it last, whatever the length, and the model learns it."""
    rng = np.random.default_rng(22)

    def task(n):
        X = [rng.normal(size=(int(rng.integers(5, 60)), 1)) for _ in range(n)]
        return X, np.array([int(x[0, 0] > 0) for x in X])

    X, y = task(300)
    X_test, y_test = task(200)
    clf = RNNClassifier(
        cell="gru",
        hidden_layer_sizes=(8,),
        bidirectional=True,
        max_iter=15,
        learning_rate_init=0.02,
        batch_size=32,
        random_state=0,
    ).fit(X, y)
    assert clf.score(X_test, y_test) > 0.9


def test_per_step_targets_of_matching_lengths_are_refused_clearly():
    X, _ = _sign_task(10, seed=23)
    with pytest.raises(ValueError, match="one target per time step.*one target per sequence"):
        RNNRegressor(max_iter=1).fit(X, [np.zeros(len(x)) for x in X])
