"""One output per time step (``output='sequence'``): the masked per-step loss and its
gradient, padding that changes nothing, tagging and forecasting through the estimators,
scikit-learn's tools, bad input."""

import numba
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sknet import RNNClassifier, RNNRegressor
from sknet._layers import Dense
from sknet._layers.recurrent import Recurrent
from sknet._network import Network
from sknet._sequences import PaddedSequences, check_sequences, step_targets

from .gradcheck import assert_grad_close

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _tagging_task(n, seed=0, low=3, high=16, d=1):
    """Label of each step = sign of the running sum of the first feature up to it: it
    needs the state carried through every earlier step."""
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(rng.integers(low, high)), d)) for _ in range(n)]
    y = [(x[:, 0].cumsum() > 0).astype(int) for x in X]
    return X, y


def _fast(est_cls, **kw):
    params = dict(
        hidden_layer_sizes=(8,), output="sequence", max_iter=3, random_state=0, batch_size=16
    )
    params.update(kw)
    return est_cls(**params)


# --------------------------------------------------------------------------------------
# the network: masked per-step loss, its gradient, padding
# --------------------------------------------------------------------------------------
def _step_network(cell, loss, k, d=2, H=3, seed=0, bidirectional=False):
    layers = [
        Recurrent(cell, H, return_sequences=True, bidirectional=bidirectional),
        Dense(4, "tanh", per_step=True),
        Dense(k, "identity", per_step=True),
    ]
    net = Network(layers, loss).build((6, d), np.float64)
    net.init_params(np.random.RandomState(seed))
    return net


def _step_data(loss, k, d=2, lengths=(6, 2, 4, 1), seed=1):
    rng = np.random.default_rng(seed)
    X = check_sequences([rng.normal(size=(L, d)) for L in lengths])
    if loss == "log_loss":
        labels = [rng.integers(0, k, L) for L in lengths]
        Y = step_targets(labels, X.lengths).padded(np.eye(k)[np.concatenate(labels)])
    else:
        Y = step_targets([rng.normal(size=(L, k)) for L in lengths], X.lengths)
        Y = Y.padded(Y.values)
    sw = rng.uniform(0.5, 2.0, len(lengths))
    return X, Y, sw


def _reference_loss(net, X, Y, sw, alpha):
    """Each sequence alone through the network, the per-step losses written out, the
    weighted mean over real steps, plus (alpha / 2 sum(sw)) ||W||^2."""
    total, steps = 0.0, 0.0
    for i, L in enumerate(X.lengths):
        Z = net.forward(X.data[i : i + 1, :L])[0]  # (L, k), raw
        y = Y[i, :L]
        if net.loss == "log_loss":
            logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
            per_step = -(y * logp).sum(axis=1)
        else:
            per_step = 0.5 * ((Z - y) ** 2).mean(axis=1)
        total += sw[i] * per_step.sum()
        steps += sw[i] * L
    penalty = sum(
        (p**2).sum() for params in net.params for name, p in params.items() if name[0] == "W"
    )
    return total / steps + 0.5 * alpha * penalty / sw.sum()


@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", False), ("rnn", True)])
@pytest.mark.parametrize("loss, k", [("log_loss", 3), ("squared_error", 2)])
def test_loss_is_the_weighted_mean_over_real_steps_and_its_gradient(cell, bidirectional, loss, k):
    net = _step_network(cell, loss, k, bidirectional=bidirectional)
    X, Y, sw = _step_data(loss, k)
    alpha = 0.3
    loss_value = net.loss_and_grad(X, Y, sw, alpha)
    assert loss_value == pytest.approx(_reference_loss(net, X, Y, sw, alpha), rel=1e-12)
    analytic = net.grad.copy()
    assert_grad_close(lambda: net.loss_and_grad(X, Y, sw, alpha), net.theta, analytic, rtol=1e-6)


def test_padding_values_and_padded_targets_change_nothing():
    net = _step_network("lstm", "squared_error", 2)
    X, Y, sw = _step_data("squared_error", 2)
    loss = net.loss_and_grad(X, Y, sw, 0.1)
    grad = net.grad.copy()
    mask = np.arange(X.shape[1])[None, :] < X.lengths[:, None]
    data = X.data.copy()
    data[~mask] = np.nan  # the padding of X is never read
    Y2 = Y.copy()
    Y2[~mask] = 1e3  # targets at padding steps weigh exactly 0
    loss2 = net.loss_and_grad(PaddedSequences(data, X.lengths), Y2, sw, 0.1)
    assert loss2 == loss
    np.testing.assert_array_equal(net.grad, grad)
    # the same sequences padded to a longer length
    longer = np.zeros((4, 9, 2))
    longer[:, :6] = X.data
    Y3 = np.zeros((4, 9, 2))
    Y3[:, :6] = Y
    assert net.loss_and_grad(PaddedSequences(longer, X.lengths), Y3, sw, 0.1) == pytest.approx(
        loss, rel=1e-14
    )
    np.testing.assert_allclose(net.grad, grad, rtol=1e-12, atol=1e-15)


def test_per_step_loss_and_gradient_match_pytorch():
    torch = pytest.importorskip("torch")
    d, H, k = 2, 3, 2
    layers = [Recurrent("lstm", H, return_sequences=True), Dense(k, "identity", per_step=True)]
    net = Network(layers, "squared_error").build((6, d), np.float64)
    net.init_params(np.random.RandomState(3))
    lengths = (5, 2, 6)
    X, Y, _ = _step_data("squared_error", k, d=d, lengths=lengths, seed=4)
    loss = net.loss_and_grad(X, Y, None, 0.0)

    lstm = torch.nn.LSTM(d, H, batch_first=True).double()
    lin = torch.nn.Linear(H, k).double()
    p, q = net.params
    with torch.no_grad():  # PyTorch's gate order (i, f, g, o), weights transposed
        lstm.weight_ih_l0.copy_(torch.from_numpy(p["W_x"].T))
        lstm.weight_hh_l0.copy_(torch.from_numpy(p["W_h"].T))
        lstm.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        lstm.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(q["W"].T))
        lin.bias.copy_(torch.from_numpy(q["b"]))
    Xt = torch.from_numpy(X.data)
    packed = torch.nn.utils.rnn.pack_padded_sequence(Xt, list(lengths), True, False)
    states, _ = lstm(packed)
    states, _ = torch.nn.utils.rnn.pad_packed_sequence(states, True, total_length=6)
    Z = lin(states)
    mask = torch.from_numpy(np.arange(6)[None, :] < np.array(lengths)[:, None])
    err = ((Z - torch.from_numpy(Y)) ** 2).mean(dim=2)  # over the k outputs
    torch_loss = 0.5 * err[mask].sum() / mask.sum()
    torch_loss.backward()
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    g_rec, g_out = net.grads
    np.testing.assert_allclose(g_rec["W_x"], lstm.weight_ih_l0.grad.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(g_rec["W_h"], lstm.weight_hh_l0.grad.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(g_rec["b"], lstm.bias_ih_l0.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(g_out["W"], lin.weight.grad.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(g_out["b"], lin.bias.grad.numpy(), rtol=1e-10)


# --------------------------------------------------------------------------------------
# the estimators
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [False, True])
def test_prediction_same_alone_and_in_a_padded_batch(bidirectional):
    X, y = _tagging_task(30, seed=2)
    clf = _fast(RNNClassifier, bidirectional=bidirectional, dense_layer_sizes=(4,)).fit(X, y)
    proba = clf.predict_proba(X)
    assert isinstance(proba, list) and len(proba) == 30
    for i in (0, 7, 19):
        alone = clf.predict_proba([X[i]])  # a list of one: the array path
        np.testing.assert_allclose(alone[0], proba[i], rtol=0, atol=1e-12)
        assert proba[i].shape == (len(X[i]), 2)
    np.testing.assert_allclose(np.concatenate(proba).sum(axis=1), 1.0, atol=1e-12)
    pred = clf.predict(X)
    for p, pr in zip(pred, proba):
        np.testing.assert_array_equal(p, clf.classes_[pr.argmax(axis=1)])


def test_tagging_learns_the_running_sum_sign():
    X, y = _tagging_task(300, seed=3)
    X_test, y_test = _tagging_task(100, seed=4)
    clf = RNNClassifier(
        hidden_layer_sizes=(12,),
        output="sequence",
        max_iter=25,
        learning_rate_init=0.02,
        random_state=0,
    ).fit(X, y)
    # chance is about 0.5 per step (the sign of a random walk)
    assert clf.score(X_test, y_test) > 0.9
    pred = clf.predict(X_test)
    flat_true, flat_pred = np.concatenate(y_test), np.concatenate(pred)
    assert clf.score(X_test, y_test) == pytest.approx(np.mean(flat_true == flat_pred))


def test_fixed_length_regression_shapes_and_forecasting():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 10))  # 2-D: univariate sequences
    y = X.cumsum(axis=1)
    reg = RNNRegressor(
        hidden_layer_sizes=(8,), output="sequence", solver="lbfgs", max_iter=150, random_state=0
    ).fit(X, y)
    assert reg.predict(X).shape == (120, 10)
    assert reg.score(X, y) > 0.95
    assert reg.n_features_in_ == 1 and reg.n_outputs_ == 1
    # several outputs per step: (n, T, k); and the model takes any length
    Y2 = np.stack([y, -y], axis=2)
    reg2 = _fast(RNNRegressor, dense_layer_sizes=(3,)).fit(X[:, :, None], Y2)
    assert reg2.predict(X[:, :, None]).shape == (120, 10, 2)
    assert reg2.predict(X[:5, :4, None]).shape == (5, 4, 2)
    np.testing.assert_allclose(reg2.predict(X[:5, :4, None]), reg2.predict(X[:5, :, None])[:, :4])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_fit_does_not_depend_on_thread_count():
    X, y = _tagging_task(40, seed=14)
    previous = numba.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            clf = _fast(RNNClassifier, dense_layer_sizes=(4,), max_iter=2).fit(X, y)
            results.append(np.concatenate(clf.predict_proba(X)))
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])


def test_float32_stays_float32():
    X, y = _tagging_task(20, seed=15)
    X32 = [x.astype(np.float32) for x in X]
    reg = _fast(RNNRegressor, max_iter=2).fit(X32, [t.astype(np.float32) for t in y])
    pred = reg.predict(X32)
    assert reg.network_.dtype == np.float32 and all(p.dtype == np.float32 for p in pred)
    assert [p.shape for p in pred] == [t.shape for t in y]


def test_default_output_last_is_unchanged():
    X, y = _tagging_task(20, seed=6)
    y_last = np.array([t[-1] for t in y])
    a = RNNClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y_last)
    b = RNNClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, output="last")
    np.testing.assert_array_equal(a.predict_proba(X), b.fit(X, y_last).predict_proba(X))
    assert a.predict(X).shape == (20,)


def test_sample_weight_weighs_each_sequences_steps():
    X, y = _tagging_task(40, seed=7)
    # the data loss is normalised by the weight of all real steps: doubling every
    # weight changes nothing (exactly, a power of two; without the L2 penalty, which is
    # alpha / 2 sum(sw) ||W||^2 as in scikit-learn)
    a = _fast(RNNClassifier, max_iter=2, alpha=0.0).fit(X, y)
    b = _fast(RNNClassifier, max_iter=2, alpha=0.0)
    b.fit(X, y, sample_weight=np.full(40, 2.0))
    for pa, pb in zip(a.predict_proba(X), b.predict_proba(X)):
        np.testing.assert_array_equal(pa, pb)
    # weights change the fit, and the score weighs every step of a sequence by its weight
    sw = np.ones(40)
    sw[::2] = 0.0
    c = _fast(RNNClassifier, max_iter=2, alpha=0.0).fit(X, y, sample_weight=sw)
    assert not np.array_equal(
        np.concatenate(c.predict_proba(X)), np.concatenate(a.predict_proba(X))
    )
    keep = [i for i in range(40) if i % 2]
    weighted = c.score(X, y, sample_weight=sw)
    assert weighted == pytest.approx(c.score([X[i] for i in keep], [y[i] for i in keep]))


def test_classifier_partial_fit_with_classes():
    X, y = _tagging_task(30, seed=13)
    y = [np.where(t == 1, "up", "down") for t in y]
    clf = _fast(RNNClassifier)
    clf.partial_fit(X[:15], y[:15], classes=["down", "up"])
    clf.partial_fit(X[15:], y[15:])
    assert list(clf.classes_) == ["down", "up"] and clf.n_iter_ == 1
    assert set(np.concatenate(clf.predict(X))) <= {"down", "up"}
    # 0/1 labels in an (n, T) array: labels per step, not multilabel indicators
    rng = np.random.default_rng(16)
    X2 = rng.normal(size=(30, 6, 1))
    y2 = (X2[..., 0].cumsum(axis=1) > 0).astype(int)
    clf2 = _fast(RNNClassifier).partial_fit(X2, y2, classes=[0, 1])
    assert clf2.n_outputs_ == 1 and clf2.predict(X2).shape == (30, 6)
    assert clf2.predict_proba(X2).shape == (30, 6, 2)


def test_early_stopping_partial_fit_and_persistence(tmp_path):
    from sknet import persistence

    X, y = _tagging_task(60, seed=8)
    clf = _fast(RNNClassifier, early_stopping=True, max_iter=4).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert all(0.0 <= s <= 1.0 for s in clf.validation_scores_)
    clf2 = _fast(RNNClassifier, early_stopping=True, max_iter=3)
    clf2.fit(X[:40], y[:40], X_val=X[40:], y_val=y[40:])
    assert len(clf2.validation_loss_curve_) == clf2.n_iter_
    reg = _fast(RNNRegressor)
    yr = [x[:, 0].cumsum() for x in X]
    reg.partial_fit(X, yr)
    reg.partial_fit(X, yr)
    assert reg.n_iter_ == 1 and reg.t_ == 120
    path = tmp_path / "m.sknet"
    persistence.save(clf, path)
    loaded = persistence.load(path)
    for a, b in zip(loaded.predict_proba(X), clf.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def _double(seqs):
    return [2.0 * s for s in seqs]


def test_pipeline_and_cross_val_score_with_per_step_targets():
    X, y = _tagging_task(36, seed=9)
    pipe = make_pipeline(FunctionTransformer(_double), _fast(RNNClassifier))
    pipe.fit(X, y)
    assert [p.shape for p in pipe.predict(X)] == [t.shape for t in y]
    scores = cross_val_score(_fast(RNNClassifier), X, y, cv=KFold(3))
    assert scores.shape == (3,) and ((0 <= scores) & (scores <= 1)).all()
    yr = [x[:, 0].cumsum() for x in X]
    scores = cross_val_score(_fast(RNNRegressor), X, yr, cv=KFold(3))
    assert scores.shape == (3,) and np.isfinite(scores).all()


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------
def test_per_step_targets_of_other_lengths_name_the_sequence():
    X, y = _tagging_task(10, seed=10)
    y = list(y)
    y[3] = np.zeros(len(X[3]) + 2, dtype=int)
    msg = rf"y\[3\] has {len(X[3]) + 2} step\(s\) but X\[3\] has {len(X[3])}"
    with pytest.raises(ValueError, match=msg):
        _fast(RNNClassifier).fit(X, y)
    clf = _fast(RNNClassifier).fit(X[:3], y[:3])
    with pytest.raises(ValueError, match=msg):
        clf.score(X, y)
    with pytest.raises(ValueError, match=r"y_val\[3\] has"):
        _fast(RNNClassifier, early_stopping=True).fit(X[:3], y[:3], X_val=X, y_val=y)


def test_bad_per_step_targets():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(8, 5, 2))
    with pytest.raises(ValueError, match="one target per\ntime step|one target per time step"):
        _fast(RNNRegressor).fit(X, np.zeros(8))
    with pytest.raises(ValueError, match=r"y\[0\] has 4 step\(s\) but X\[0\] has 5"):
        _fast(RNNRegressor).fit(X, np.zeros((8, 4)))
    with pytest.raises(ValueError, match="7 target sequences, but X has 8"):
        _fast(RNNRegressor).fit(X, np.zeros((7, 5)))
    with pytest.raises(ValueError, match="multilabel or multi-output per step"):
        _fast(RNNClassifier).fit(X, np.zeros((8, 5, 2), dtype=int))
    with pytest.raises(ValueError, match="class_weight is not supported with output='sequence'"):
        _fast(RNNClassifier, class_weight="balanced").fit(X, rng.integers(0, 2, (8, 5)))
    with pytest.raises(ValueError, match="output"):
        _fast(RNNRegressor, output="steps").fit(X, np.zeros((8, 5)))
    with pytest.raises(ValueError, match=r"y\[1\] has shape \(\)"):
        _fast(RNNRegressor).fit(X, [np.zeros(5), 0.0] + [np.zeros(5)] * 6)
    X_list = [np.ones((3, 2)), np.ones((4, 2))]
    with pytest.raises(ValueError, match="set output='sequence'"):
        RNNRegressor(max_iter=1).fit(X_list, [np.zeros(3), np.zeros(4)])
    y_in = [np.zeros(3), np.zeros(4)]
    _fast(RNNRegressor, max_iter=1).fit(X_list, y_in)
    assert [a.shape for a in y_in] == [(3,), (4,)]  # the user's targets are not modified


def test_convergence_warning_still_raised():
    X, y = _tagging_task(10, seed=12)
    with pytest.warns(ConvergenceWarning):
        _fast(RNNClassifier, max_iter=1).fit(X, y)


def test_one_class_per_step_is_certain():
    """Every step of one class: one probability column of ones, as classes_ (the same
    rule as the sequence-to-one classifiers)."""
    X, y = _tagging_task(20, seed=5)
    y = [np.full(len(t), 7) for t in y]
    clf = _fast(RNNClassifier).fit(X, y)
    assert clf.classes_.tolist() == [7]
    proba = clf.predict_proba(X)
    assert all(p.shape == (len(x), 1) and np.all(p == 1) for p, x in zip(proba, X))
    assert all(np.all(p == 7) for p in clf.predict(X))
