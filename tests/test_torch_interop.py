"""Weights to and from PyTorch: same outputs as PyTorch, exact round trips, clear errors.

Tests that need torch skip cleanly without it; importing a plain dict of NumPy arrays
needs no torch and always runs.
"""

import copy
import pickle

import numpy as np
import pytest

from sknet import MLPClassifier, MLPRegressor
from sknet.torch_interop import from_torch, to_torch

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# relative tolerance of imported networks against PyTorch, per dtype
RTOL = {np.float64: 1e-10, np.float32: 1e-5}
ACTIVATIONS = ["relu", "tanh", "logistic", "identity"]


def _rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _torch_mlp(torch, sizes, activation, dtype, seed=0, bias=True):
    nn = torch.nn
    torch.manual_seed(seed)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "identity": nn.Identity}
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            mods.append(act[activation]())
    module = nn.Sequential(*mods)
    return module.to(torch.float64 if dtype == np.float64 else torch.float32).eval()


def _torch_out(torch, module, X):
    with torch.no_grad():
        return module(torch.from_numpy(X)).numpy()


# ======================================================================================
# Linear / MLP
# ======================================================================================
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_imported_mlp_matches_torch(activation, dtype):
    torch = pytest.importorskip("torch")
    X = np.random.RandomState(0).randn(64, 7).astype(dtype)
    module = _torch_mlp(torch, [7, 16, 9, 4], activation, dtype)
    y = np.arange(64) % 4
    clf = from_torch(module, MLPClassifier((16, 9), activation=activation), X, y)
    assert clf.n_iter_ == 0 and clf.network_.dtype == dtype
    logits = _torch_out(torch, module, X)
    raw = clf.network_.predict(X, output_activation=False)
    assert raw.dtype == dtype
    assert _rel_err(raw, logits) <= RTOL[dtype]
    proba = torch.softmax(torch.from_numpy(logits.astype(np.float64)), dim=1).numpy()
    assert _rel_err(clf.predict_proba(X), proba) <= RTOL[dtype]
    np.testing.assert_array_equal(clf.predict(X), logits.argmax(1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regressor_binary_and_bias_free(dtype):
    torch = pytest.importorskip("torch")
    X = np.random.RandomState(1).randn(30, 5).astype(dtype)
    module = _torch_mlp(torch, [5, 8, 2], "tanh", dtype, bias=False)
    reg = from_torch(
        module, MLPRegressor(hidden_layer_sizes=(8,), activation="tanh"), X, np.zeros((30, 2))
    )
    assert _rel_err(reg.predict(X), _torch_out(torch, module, X)) <= RTOL[dtype]
    np.testing.assert_array_equal(reg.intercepts_[0], 0)
    binary = _torch_mlp(torch, [5, 8, 1], "relu", dtype, seed=3)
    clf = from_torch(binary, MLPClassifier((8,)), X, np.arange(30) % 2)
    p = torch.sigmoid(torch.from_numpy(_torch_out(torch, binary, X))).numpy().ravel()
    assert _rel_err(clf.predict_proba(X)[:, 1], p) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_export_matches_and_round_trips_exactly(activation, dtype):
    torch = pytest.importorskip("torch")
    X = np.random.RandomState(2).randn(50, 6).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0)
    clf = MLPClassifier(
        (10, 5), activation=activation, max_iter=20, dropout=0.1, random_state=0
    ).fit(X, y)
    theta = clf.network_.theta.copy()
    module = to_torch(clf, output_activation=True)
    assert not module.training
    assert next(module.parameters()).dtype == (
        torch.float64 if dtype == np.float64 else torch.float32
    )
    assert _rel_err(_torch_out(torch, module, X), clf.predict_proba(X)) <= RTOL[dtype]
    np.testing.assert_array_equal(clf.network_.theta, theta)  # not modified
    back = from_torch(to_torch(clf).state_dict(), clf)
    assert back is not clf
    np.testing.assert_array_equal(back.network_.theta, clf.network_.theta)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))


def test_poisson_output_activation():
    torch = pytest.importorskip("torch")
    X = np.random.RandomState(3).rand(40, 3)
    reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(
        X, X.sum(1)
    )
    module = to_torch(reg, output_activation=True)
    assert _rel_err(_torch_out(torch, module, X).ravel(), reg.predict(X)) <= 1e-10


def test_import_into_fitted_estimator_leaves_it_untouched():
    torch = pytest.importorskip("torch")
    X = np.random.RandomState(4).randn(20, 3)
    clf = MLPClassifier((4,), max_iter=5, random_state=0).fit(X, np.arange(20) % 3)
    before = clf.network_.theta.copy()
    module = _torch_mlp(torch, [3, 4, 3], "relu", np.float64, seed=7)
    new = from_torch(module, clf)
    np.testing.assert_array_equal(clf.network_.theta, before)
    assert (
        _rel_err(new.network_.predict(X, output_activation=False), _torch_out(torch, module, X))
        <= 1e-10
    )
    # the imported model trains on from there
    new.partial_fit(X, np.arange(20) % 3)


def test_unknown_torch_modules_are_refused():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    X = np.random.RandomState(0).randn(10, 4)
    y = np.arange(10) % 2
    # a batch normalization the sknet network does not have: one group too many
    with_bn = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 1))
    with pytest.raises(ValueError, match="3 modules with parameters.*2 layers"):
        from_torch(with_bn, MLPClassifier((5,)), X, y)
    with pytest.raises(ValueError, match="no sknet counterpart"):
        from_torch({"a.weight_xx": np.zeros(3)}, MLPClassifier((5,)), X, y)
    bi = nn.LSTM(4, 3, bidirectional=True)
    with pytest.raises(ValueError, match="1 modules with parameters"):
        from_torch(bi, MLPClassifier((5,)), X, y)


# ======================================================================================
# plain dicts of arrays: no torch needed
# ======================================================================================
def test_numpy_state_dict_without_torch():
    rng = np.random.RandomState(0)
    sd = {
        "fc1.weight": rng.randn(6, 3),
        "fc1.bias": rng.randn(6),
        "out.weight": rng.randn(1, 6),
        "out.bias": rng.randn(1),
    }
    X = rng.randn(15, 3)
    reg = from_torch(sd, MLPRegressor(hidden_layer_sizes=(6,)), X, np.zeros(15))
    expected = (
        np.maximum(X @ sd["fc1.weight"].T + sd["fc1.bias"], 0) @ sd["out.weight"].T + sd["out.bias"]
    )
    np.testing.assert_allclose(reg.predict(X), expected.ravel(), rtol=1e-12)
    np.testing.assert_array_equal(reg.coefs_[0], sd["fc1.weight"].T)


def test_mismatches_have_clear_errors():
    rng = np.random.RandomState(0)
    X = rng.randn(15, 3)
    y = np.zeros(15)
    good = {
        "a.weight": rng.randn(6, 3),
        "a.bias": rng.randn(6),
        "b.weight": rng.randn(1, 6),
        "b.bias": rng.randn(1),
    }
    est = MLPRegressor(hidden_layer_sizes=(6,))
    with pytest.raises(ValueError, match="2 modules with parameters.*3 layers"):
        from_torch(good, MLPRegressor(hidden_layer_sizes=(6, 6)), X, y)
    bad = dict(good, **{"a.weight": rng.randn(3, 6)})
    with pytest.raises(ValueError, match="'a'.*weight has shape \\(3, 6\\), expected \\(6, 3\\)"):
        from_torch(bad, est, X, y)
    bad = dict(good, **{"b.bias": rng.randn(2)})
    with pytest.raises(ValueError, match="bias has shape"):
        from_torch(bad, est, X, y)
    bad = dict(good, **{"a.running_mean": rng.randn(6)})
    with pytest.raises(ValueError, match="'a'.*unexpected entries"):
        from_torch(bad, est, X, y)
    bad = dict(good, **{"a.weight": np.full((6, 3), np.nan)})
    with pytest.raises(ValueError, match="NaN"):
        from_torch(bad, est, X, y)
    with pytest.raises(ValueError, match="pass sample data"):
        from_torch(good, est)
    with pytest.raises(TypeError, match="state_dict"):
        from_torch([1, 2], est, X, y)
    with pytest.raises(TypeError, match="sknet estimator"):
        from_torch(good, object(), X, y)


# ======================================================================================
# convolutional and recurrent networks
# ======================================================================================
def _estimator(name):
    import sknet

    cls = getattr(sknet, name, None)
    if cls is None:
        pytest.skip(f"sknet.{name} does not exist yet")
    return cls


def _torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_imported_conv2d_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    ConvNetClassifier = _estimator("ConvNetClassifier")
    torch.manual_seed(0)
    module = (
        nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 5),
            nn.ReLU(),
            nn.Linear(5, 3),
        )
        .to(_torch_dtype(torch, dtype))
        .eval()
    )
    X = np.random.RandomState(0).randn(25, 1, 9, 9).astype(dtype)
    template = ConvNetClassifier(conv_filters=(3, 4), kernel_size=3, hidden_layer_sizes=(5,))
    clf = from_torch(module, template, X, np.arange(25) % 3)
    assert [type(layer).__name__ for layer in clf.network_.layers] == [
        "Conv",
        "Pool",
        "Conv",
        "Pool",
        "Flatten",
        "Dense",
        "Dense",
    ]
    raw = clf.network_.predict(X, output_activation=False)
    assert _rel_err(raw, _torch_out(torch, module, X)) <= RTOL[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_imported_conv1d_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    ConvNetRegressor = _estimator("ConvNetRegressor")
    torch.manual_seed(1)
    module = (
        nn.Sequential(
            nn.Conv1d(2, 3, 5),
            nn.Tanh(),
            nn.AvgPool1d(2),
            nn.Flatten(),
            nn.Linear(3 * 4, 4),
            nn.Tanh(),
            nn.Linear(4, 2),
        )
        .to(_torch_dtype(torch, dtype))
        .eval()
    )
    X = np.random.RandomState(1).randn(20, 2, 12).astype(dtype)
    template = ConvNetRegressor(
        conv_filters=(3,),
        kernel_size=5,
        padding="valid",
        pool="avg",
        activation="tanh",
        hidden_layer_sizes=(4,),
        input_shape=(2, 12),
    )
    reg = from_torch(module, template, X, np.zeros((20, 2)))
    assert _rel_err(reg.predict(X), _torch_out(torch, module, X)) <= RTOL[dtype]


def _torch_seq_model(torch, cell, n_layers, nonlinearity="tanh"):
    nn = torch.nn

    class SeqModel(nn.Module):
        def __init__(self):
            super().__init__()
            kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
            rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.rnn = rnn_cls(3, 5, num_layers=n_layers, batch_first=True, **kwargs)
            self.head = nn.Linear(5, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    return SeqModel()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize(
    "cell, nonlinearity", [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
)
def test_imported_recurrent_matches_torch(cell, nonlinearity, n_layers, dtype):
    """Gate orders (LSTM i,f,g,o; GRU r,z,n) and both biases map exactly."""
    torch = pytest.importorskip("torch")
    RNNRegressor = _estimator("RNNRegressor")
    torch.manual_seed(2)
    module = _torch_seq_model(torch, cell, n_layers, nonlinearity or "tanh")
    with torch.no_grad():  # make every bias matter (PyTorch draws them non-zero already)
        for name, p in module.rnn.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    module = module.to(_torch_dtype(torch, dtype)).eval()
    X = np.random.RandomState(2).randn(16, 7, 3).astype(dtype)
    template = RNNRegressor(
        cell=cell, hidden_layer_sizes=(5,) * n_layers, activation=nonlinearity or "tanh"
    )
    reg = from_torch(module, template, X, np.zeros((16, 2)))
    assert _rel_err(reg.predict(X), _torch_out(torch, module, X)) <= RTOL[dtype]


CONV_VARIANTS = [
    {},
    {"padding": "valid"},
    {"strides": 2},
    {"pool": "avg"},
    {"padding": 1},
    {"kernel_size": 4},
    {"dropout": 0.2, "activation": "tanh"},
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", CONV_VARIANTS, ids=str)
def test_convnet_export_matches_and_round_trips(variant, dtype):
    torch = pytest.importorskip("torch")
    ConvNetClassifier = _estimator("ConvNetClassifier")
    X = np.random.RandomState(3).randn(30, 1, 9, 9).astype(dtype)
    y = np.arange(30) % 3
    params = {
        "conv_filters": (2, 3),
        "hidden_layer_sizes": (4,),
        "max_iter": 2,
        "random_state": 0,
        **variant,
    }
    clf = ConvNetClassifier(**params).fit(X, y)
    module = to_torch(clf, output_activation=True)
    assert _rel_err(_torch_out(torch, module, X), clf.predict_proba(X)) <= RTOL[dtype]
    back = from_torch(to_torch(clf).state_dict(), clf)
    np.testing.assert_array_equal(back.network_.theta, clf.network_.theta)
    np.testing.assert_array_equal(from_torch(module, clf).network_.theta, clf.network_.theta)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_export_matches_and_round_trips(cell, dtype):
    torch = pytest.importorskip("torch")
    RNNClassifier = _estimator("RNNClassifier")
    X = np.random.RandomState(4).randn(30, 6, 3).astype(dtype)
    y = (X[:, -1, 0] > 0).astype(int)
    clf = RNNClassifier(
        cell=cell,
        hidden_layer_sizes=(5, 4),
        dense_layer_sizes=(3,),
        dropout=0.1,
        max_iter=2,
        random_state=0,
    ).fit(X, y)
    module = to_torch(clf, output_activation=True)
    p = _torch_out(torch, module, X).ravel()
    assert _rel_err(p, clf.predict_proba(X)[:, 1]) <= RTOL[dtype]
    back = from_torch(module.state_dict(), clf)
    np.testing.assert_array_equal(back.network_.theta, clf.network_.theta)
    # from the module itself too: its settings and layer sequence pass the checks
    np.testing.assert_array_equal(from_torch(module, clf).network_.theta, clf.network_.theta)
    # the exported module pickles with torch.save (its classes are importable)
    import io

    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    reloaded = torch.load(buf, weights_only=False)
    np.testing.assert_array_equal(_torch_out(torch, reloaded, X), _torch_out(torch, module, X))


CONV1D_VARIANTS = [
    {},
    {"kernel_size": 4},
    {"padding": 1, "pool": "avg"},
    {"strides": 2, "padding": "valid"},
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", CONV1D_VARIANTS, ids=str)
def test_conv1d_export_matches_and_round_trips(variant, dtype):
    """1-D signals, including 'same' padding with an even kernel (asymmetric)."""
    torch = pytest.importorskip("torch")
    ConvNetRegressor = _estimator("ConvNetRegressor")
    rng = np.random.RandomState(5)
    X = rng.randn(30, 2, 13).astype(dtype)
    y = np.column_stack([X[:, 0, :3].sum(1), X[:, 1, -3:].sum(1)])
    params = {
        "conv_filters": (3, 2),
        "kernel_size": 3,
        "hidden_layer_sizes": (4,),
        "input_shape": (2, 13),
        "max_iter": 3,
        "random_state": 0,
        **variant,
    }
    reg = ConvNetRegressor(**params).fit(X, y)
    module = to_torch(reg)
    assert _rel_err(_torch_out(torch, module, X), reg.predict(X)) <= RTOL[dtype]
    # back into an unfitted estimator of the same architecture, from the module itself
    back = from_torch(module, ConvNetRegressor(**params), X, y)
    assert back.n_iter_ == 0
    np.testing.assert_array_equal(back.network_.theta, reg.network_.theta)
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_elman_regressor_export_and_round_trip(activation, dtype):
    torch = pytest.importorskip("torch")
    RNNRegressor = _estimator("RNNRegressor")
    X = np.random.RandomState(6).randn(25, 6, 2).astype(dtype)
    y = np.column_stack([X[:, -1, 0], X[:, :, 1].mean(1)])
    params = {
        "cell": "rnn",
        "activation": activation,
        "hidden_layer_sizes": (5, 3),
        "max_iter": 3,
        "random_state": 0,
    }
    reg = RNNRegressor(**params).fit(X, y)
    module = to_torch(reg)
    assert [type(m).__name__ for m in module] == ["RecurrentModule", "RecurrentModule", "Linear"]
    assert module[0].rnn.nonlinearity == activation
    assert _rel_err(_torch_out(torch, module, X), reg.predict(X)) <= RTOL[dtype]
    back = from_torch(module, RNNRegressor(**params), X, y)
    np.testing.assert_array_equal(back.network_.theta, reg.network_.theta)


def test_module_with_output_activation_imports_back():
    torch = pytest.importorskip("torch")
    ConvNetClassifier = _estimator("ConvNetClassifier")
    X = np.random.RandomState(7).randn(20, 1, 8, 8)
    y = np.arange(20) % 3
    clf = ConvNetClassifier(
        conv_filters=(2,), hidden_layer_sizes=(4,), max_iter=2, random_state=0
    ).fit(X, y)
    module = to_torch(clf, output_activation=True)
    assert type(module[-1]).__name__ == "Softmax"
    assert _rel_err(_torch_out(torch, module, X), clf.predict_proba(X)) <= 1e-10
    back = from_torch(module, clf)  # the final softmax passes the Sequential check
    np.testing.assert_array_equal(back.network_.theta, clf.network_.theta)


# ======================================================================================
# architecture mismatches that weight shapes alone would not reveal
# ======================================================================================
def _conv_template():
    return _estimator("ConvNetClassifier")(
        conv_filters=(3,), kernel_size=3, hidden_layer_sizes=(5,)
    )


def _conv_module(nn, conv=None, act=None, pool=None):
    conv = conv if conv is not None else nn.Conv2d(1, 3, 3, padding=1)
    return nn.Sequential(
        conv,
        act if act is not None else nn.ReLU(),
        pool if pool is not None else nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).double()


def test_conv_hyperparameter_mismatches_are_refused():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    X = np.random.RandomState(0).randn(12, 1, 8, 8)
    y = np.arange(12) % 3
    template = _conv_template()
    torch.manual_seed(0)
    module = _conv_module(nn).eval()
    ok = from_torch(module, template, X, y)
    assert (
        _rel_err(ok.network_.predict(X, output_activation=False), _torch_out(torch, module, X))
        <= 1e-10
    )
    same = from_torch(_conv_module(nn, conv=nn.Conv2d(1, 3, 3, padding="same")), template, X, y)
    assert same.n_iter_ == 0
    cases = [
        (nn.Conv2d(1, 3, 3, padding=1, dilation=2), "dilation"),
        (nn.Conv2d(1, 3, 3, padding=1, padding_mode="reflect"), "padding_mode"),
        (nn.Conv2d(1, 3, 3, padding=2), "padding \\(2, 2\\) where sknet pads"),
    ]
    for conv, match in cases:
        with pytest.raises(ValueError, match=f"torch module '0' -> sknet layer 0.*{match}"):
            from_torch(_conv_module(nn, conv=conv), template, X, y)
    strided = _estimator("ConvNetClassifier")(
        conv_filters=(3,), strides=2, pool_size=None, hidden_layer_sizes=(5,)
    )
    module = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    ).double()
    with pytest.raises(ValueError, match="stride \\(1, 1\\) instead of 2"):
        from_torch(module, strided, X, y)
    with pytest.raises(ValueError, match="differ at step 1"):
        from_torch(_conv_module(nn, act=nn.Tanh()), template, X, y)
    with pytest.raises(ValueError, match="avgpool2d\\(2\\)"):
        from_torch(_conv_module(nn, pool=nn.AvgPool2d(2)), template, X, y)
    # a stride other than sknet's (here the window size) is named
    with pytest.raises(ValueError, match="maxpool2d\\(2, 1\\)"):
        from_torch(_conv_module(nn, pool=nn.MaxPool2d(2, stride=1)), template, X, y)
    with pytest.raises(ValueError, match="MaxPool2d\\(other\\)"):
        from_torch(_conv_module(nn, pool=nn.MaxPool2d(2, padding=1)), template, X, y)
    # a transposed convolution's weights can have a convolution's shape
    with pytest.raises(ValueError, match="it is an nn.ConvTranspose2d, not an nn.Conv2d"):
        from_torch(
            nn.Sequential(
                nn.ConvTranspose2d(1, 1, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(16, 5),
                nn.ReLU(),
                nn.Linear(5, 3),
            ),
            _estimator("ConvNetClassifier")(conv_filters=(1,), hidden_layer_sizes=(5,)),
            X,
            y,
        )
    # a state_dict alone carries no hyperparameters: only shapes can be checked
    dilated = _conv_module(nn, conv=nn.Conv2d(1, 3, 3, padding=1, dilation=2))
    assert from_torch(dilated.state_dict(), template, X, y).n_iter_ == 0
    with pytest.raises(
        ValueError, match="weight has shape \\(3, 1, 5, 5\\), expected \\(3, 1, 3, 3\\)"
    ):
        from_torch(_conv_module(nn, conv=nn.Conv2d(1, 3, 5, padding=2)), template, X, y)
    with pytest.raises(ValueError, match="3 modules with parameters.*4 layers"):
        from_torch(
            _conv_module(nn),
            _estimator("ConvNetClassifier")(conv_filters=(3, 3), hidden_layer_sizes=(5,)),
            X,
            y,
        )


def test_recurrent_mismatches_are_refused():
    torch = pytest.importorskip("torch")
    RNNRegressor = _estimator("RNNRegressor")
    X = np.random.RandomState(0).randn(10, 7, 3)
    y = np.zeros((10, 2))
    relu = _torch_seq_model(torch, "rnn", 1, "relu").double()
    with pytest.raises(ValueError, match="nonlinearity='relu' instead of 'tanh'"):
        from_torch(relu, RNNRegressor(cell="rnn", hidden_layer_sizes=(5,)), X, y)
    # LSTM weights (4 gate blocks) cannot go into a GRU (3) or the other way round
    lstm = _torch_seq_model(torch, "lstm", 1).double()
    with pytest.raises(ValueError, match="weight_ih has shape \\(20, 3\\), expected \\(15, 3\\)"):
        from_torch(lstm, RNNRegressor(cell="gru", hidden_layer_sizes=(5,)), X, y)
    gru = _torch_seq_model(torch, "gru", 2).double()
    with pytest.raises(ValueError, match="3 modules with parameters.*2 layers"):
        from_torch(gru, RNNRegressor(cell="gru", hidden_layer_sizes=(5,)), X, y)
    with pytest.raises(ValueError, match="weight_ih has shape \\(15, 3\\), expected"):
        from_torch(gru.state_dict(), RNNRegressor(cell="lstm", hidden_layer_sizes=(5, 5)), X, y)
    with pytest.raises(ValueError, match="cannot map torch parameters \\['bias', 'weight'\\]"):
        from_torch(
            torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)),
            RNNRegressor(cell="rnn", hidden_layer_sizes=(5,)),
            X,
            y,
        )


# (ndim, kernel_size, stride, padding, dilation, input length / side)
DILATED_CONVS = [
    pytest.param(1, 3, 1, "same", 2, 11, id="1d-k3-d2-same"),
    pytest.param(1, 2, 1, "same", 3, 10, id="1d-k2-d3-same-asymmetric"),
    pytest.param(1, 3, 2, "valid", 2, 12, id="1d-k3-s2-d2-valid"),
    pytest.param(1, 3, 2, "same", 2, 10, id="1d-k3-s2-d2-same-asymmetric"),
    pytest.param(2, 3, 1, 1, 2, 7, id="2d-k3-d2-pad1"),
    pytest.param(2, 2, 1, "same", 3, 6, id="2d-k2-d3-same-asymmetric"),
]


def _dilated_estimator(ndim, kernel_size, stride, padding, dilation):
    """A ConvNetRegressor whose network is Conv(4, ..., dilation) -> Flatten -> Dense.

    The estimators have no ``dilation`` hyperparameter (yet): the family's
    ``_build_layers`` hook builds the dilated layer instead."""
    from sknet._layers import Conv, Dense, Flatten

    class DilatedConvNetRegressor(_estimator("ConvNetRegressor")):
        def _build_layers(self, input_shape, n_outputs):
            conv = Conv(4, kernel_size, stride, padding, "relu", ndim=ndim, dilation=dilation)
            return [conv, Flatten(), Dense(n_outputs, "identity")]

    return DilatedConvNetRegressor


# PyTorch warns that it copies the input to pad an even dilated kernel 'same'
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("ndim, kernel_size, stride, padding, dilation, n", DILATED_CONVS)
def test_dilated_conv_exchange_both_ways(ndim, kernel_size, stride, padding, dilation, n):
    torch = pytest.importorskip("torch")
    cls = _dilated_estimator(ndim, kernel_size, stride, padding, dilation)
    rng = np.random.RandomState(7)
    shape = (2,) + (n,) * ndim
    X = rng.randn(16, *shape)
    y = rng.randn(16, 2)
    # sknet -> torch: the ConvNd carries the dilation, the outputs agree
    est = cls(input_shape=shape, max_iter=2, random_state=0).fit(X, y)
    assert est.network_.layers[0].dilation == dilation
    module = to_torch(est)
    conv = next(m for m in module if type(m).__name__ == f"Conv{ndim}d")
    assert conv.dilation == (dilation,) * ndim
    assert _rel_err(_torch_out(torch, module, X), est.predict(X)) <= RTOL[np.float64]
    # torch -> sknet, from the module: the same weights, the same predictions
    back = from_torch(module, cls(input_shape=shape), X, y)
    np.testing.assert_array_equal(back.network_.theta, est.network_.theta)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    if padding == "same" and stride > 1:
        return  # PyTorch's padding='same' needs stride 1
    # a torch module built by hand, with PyTorch's own padding
    torch.manual_seed(0)
    nn = torch.nn
    conv_cls = nn.Conv2d if ndim == 2 else nn.Conv1d
    hand = nn.Sequential(
        conv_cls(2, 4, kernel_size, stride=stride, padding=padding, dilation=dilation),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(est.network_.layers[1].output_shape[0], 2),
    ).double()
    imported = from_torch(hand, cls(input_shape=shape), X, y)
    assert _rel_err(imported.predict(X), _torch_out(torch, hand, X)) <= RTOL[np.float64]
    # a module with another dilation is refused (its weights have the same shape)
    undilated = copy.deepcopy(hand)
    undilated[0].dilation = (1,) * ndim
    with pytest.raises(ValueError, match=f"dilation \\(1,.*\\) instead of {dilation}"):
        from_torch(undilated, cls(input_shape=shape), X, y)


# ======================================================================================
# batch normalization, global pooling, stand-alone activations, residual blocks
# ======================================================================================
def _series(n=24, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(n, 1, 30), np.arange(n) % 3


def _torch_running_stats(module):
    """Every running_mean / running_var buffer, in state_dict order, concatenated."""
    bufs = [
        v.numpy().ravel()
        for k, v in module.state_dict().items()
        if k.endswith(("running_mean", "running_var"))
    ]
    return np.concatenate(bufs)


@pytest.mark.parametrize("factory", ["fcn", "resnet"])
def test_fcn_and_resnet_export_and_round_trip(factory):
    torch = pytest.importorskip("torch")
    from sknet import NetworkClassifier
    from sknet.layers import fcn, resnet

    layers = fcn((4, 8, 4)) if factory == "fcn" else resnet((4, 8, 8))
    X, y = _series()
    clf = NetworkClassifier(layers, max_iter=2, batch_size=8, random_state=0).fit(X, y)
    net = clf.network_
    assert net.state.size and not np.array_equal(net.state[: net.state.size // 2], 0)
    theta, state = net.theta.copy(), net.state.copy()
    module = to_torch(clf)
    assert not module.training
    raw = net.predict(X, output_activation=False)
    assert _rel_err(_torch_out(torch, module, X), raw) <= 1e-10
    # the running statistics are the torch buffers, in the same order
    np.testing.assert_array_equal(_torch_running_stats(module), net.state)
    np.testing.assert_array_equal(net.theta, theta)  # not modified
    np.testing.assert_array_equal(net.state, state)
    # the lazily defined module classes pickle (torch.save of a whole module)
    restored = pickle.loads(pickle.dumps(module))
    np.testing.assert_array_equal(_torch_out(torch, restored, X), _torch_out(torch, module, X))
    # back: from the module (into the fitted estimator) and from a bare state_dict
    # (num_batches_tracked included) into an unfitted template
    sd = module.state_dict()
    assert any(k.endswith("num_batches_tracked") for k in sd)
    for back in (
        from_torch(module, clf),
        from_torch(sd, NetworkClassifier(layers), X, y),
    ):
        np.testing.assert_array_equal(back.network_.theta, theta)
        np.testing.assert_array_equal(back.network_.state, state)
        np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    # training mode: one batch moves the running statistics alike in both
    module.train()
    Xb = X[:10]
    with torch.no_grad():
        out = module(torch.from_numpy(Xb)).numpy()
    copy_net = copy.deepcopy(net)
    Z = copy_net.forward(Xb, training=True, rng=np.random.default_rng(0))
    assert _rel_err(out, Z) <= 1e-10
    np.testing.assert_allclose(_torch_running_stats(module), copy_net.state, rtol=1e-12)
    assert not np.allclose(copy_net.state, state)


def _bn_template(dtype_name="2d"):
    from sknet import NetworkClassifier
    from sknet.layers import Activation, BatchNorm, Conv2D, Dense, Flatten, MaxPool2D

    return NetworkClassifier(
        [
            ("conv", Conv2D(3, 3, activation="identity")),
            ("bn1", BatchNorm(momentum=0.2, eps=1e-3)),
            ("relu", Activation("relu")),
            ("pool", MaxPool2D(2)),
            ("flat", Flatten()),
            ("dense", Dense(5, "identity")),
            ("bn2", BatchNorm()),
            ("tanh", Activation("tanh")),
        ],
        max_iter=2,
        batch_size=10,
        random_state=0,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_on_images_and_dense_features_round_trip(dtype):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    rng = np.random.RandomState(1)
    X = (rng.randn(30, 2, 6, 6) + 0.5).astype(dtype)
    y = np.arange(30) % 2
    clf = _bn_template().fit(X, y)
    module = to_torch(clf, output_activation=True)
    kinds = [type(m).__name__ for m in module]
    assert kinds == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "Tanh",
        "Linear",
        "Sigmoid",
    ]
    assert (module[1].momentum, module[1].eps) == (0.2, 1e-3)
    assert (module[6].momentum, module[6].eps) == (0.1, 1e-5)
    assert _rel_err(_torch_out(torch, module, X)[:, 0], clf.predict_proba(X)[:, 1]) <= RTOL[dtype]
    np.testing.assert_array_equal(_torch_running_stats(module), clf.network_.state)
    back = from_torch(module, _bn_template(), X, y)
    np.testing.assert_array_equal(back.network_.state, clf.network_.state)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    # a torch model built by hand with affine=False batch normalizations: gamma 1, beta 0
    torch.manual_seed(0)
    hand = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3, momentum=0.2, eps=1e-3, affine=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(27, 5),
        nn.BatchNorm1d(5, affine=False),
        nn.Tanh(),
        nn.Linear(5, 1),
    ).to(_torch_dtype(torch, dtype))
    hand.train()
    with torch.no_grad():  # some running statistics
        hand(torch.from_numpy(X))
    hand.eval()
    imported = from_torch(hand, _bn_template(), X, y)
    expected = torch.sigmoid(torch.from_numpy(_torch_out(torch, hand, X))).numpy()[:, 0]
    assert _rel_err(imported.predict_proba(X)[:, 1], expected) <= RTOL[dtype]
    bn_params = [p for p in imported.network_.params if "gamma" in p]
    assert all((p["gamma"] == 1).all() and (p["beta"] == 0).all() for p in bn_params)


def test_batchnorm_and_residual_mismatches_are_refused():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from sknet import NetworkClassifier
    from sknet.layers import BatchNorm, Conv1D, GlobalAveragePool, GlobalMaxPool, Residual

    X, y = _series(12)

    def template(pool=GlobalAveragePool, momentum=0.1):
        return NetworkClassifier(
            [
                ("conv", Conv1D(4, 3, activation="identity")),
                ("bn", BatchNorm(momentum=momentum)),
                ("gap", pool()),
            ]
        )

    def module(bn=None, pool=None):
        return nn.Sequential(
            nn.Conv1d(1, 4, 3, padding=1),
            nn.BatchNorm1d(4) if bn is None else bn,
            nn.AdaptiveAvgPool1d(1) if pool is None else pool,
            nn.Flatten(),
            nn.Linear(4, 3),
        ).double()

    assert from_torch(module(), template(), X, y).network_.state.size == 8
    cases = [
        (module(bn=nn.BatchNorm1d(4, eps=1e-3)), template(), "eps=0.001 instead of 1e-05"),
        (module(bn=nn.BatchNorm1d(4, momentum=0.3)), template(), "momentum=0.3 instead of 0.1"),
        (module(bn=nn.BatchNorm1d(4, momentum=None)), template(), "momentum=None"),
        (module(bn=nn.BatchNorm2d(4)), template(), "nn.BatchNorm2d.*nn.BatchNorm1d"),
        (module(bn=nn.BatchNorm1d(4, track_running_stats=False)), template(), "running_mean"),
        (module(pool=nn.AdaptiveMaxPool1d(1)), template(), "globalmaxpool"),
        (module(pool=nn.AdaptiveAvgPool1d(2)), template(), "AdaptiveAvgPool1d\\(other\\)"),
        (module(), template(GlobalMaxPool), "globalavgpool"),
    ]
    for source, est, match in cases:
        with pytest.raises(ValueError, match=match):
            from_torch(source, est, X, y)
    # a bare state_dict: running_var missing, wrong shape
    sd = {k: v.numpy() for k, v in module().state_dict().items()}
    with pytest.raises(ValueError, match="no running_var in the source"):
        from_torch({k: v for k, v in sd.items() if k != "1.running_var"}, template(), X, y)
    with pytest.raises(ValueError, match="running_mean has shape \\(5,\\), expected \\(4,\\)"):
        from_torch(dict(sd, **{"1.running_mean": np.zeros(5)}), template(), X, y)
    with pytest.raises(ValueError, match="running_var has negative entries"):
        from_torch(dict(sd, **{"1.running_var": -np.ones(4)}), template(), X, y)
    # a residual block whose activation or shortcut differs
    block = NetworkClassifier(
        [
            ("block", Residual([("conv", Conv1D(4, 3, activation="identity"))])),
            ("gap", GlobalAveragePool()),
        ],
        max_iter=1,
        random_state=0,
    ).fit(X, y)
    exported = to_torch(block)
    assert type(exported[0]).__name__ == "ResidualModule"
    assert isinstance(exported[0].activation, nn.ReLU) and len(exported[0].shortcut) == 1
    np.testing.assert_array_equal(from_torch(exported, block).predict(X), block.predict(X))
    exported[0].activation = nn.Tanh()
    with pytest.raises(ValueError, match="residual"):
        from_torch(exported, block)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_bidirectional_export_import_round_trip(cell):
    """A bidirectional RNNClassifier exports to nn.RNN/LSTM/GRU(bidirectional=True) with
    the same outputs, and imports back; a direction mismatch is refused."""
    torch = pytest.importorskip("torch")
    RNNClassifier = _estimator("RNNClassifier")
    X = np.random.RandomState(5).randn(20, 6, 3)
    y = (X[:, 0, 0] > 0).astype(int)
    clf = RNNClassifier(
        cell=cell, hidden_layer_sizes=(4, 3), bidirectional=True, max_iter=2, random_state=0
    ).fit(X, y)
    assert clf.transform(X).shape == (20, 6)  # both directions' final states
    module = to_torch(clf, output_activation=True)
    assert _rel_err(_torch_out(torch, module, X).ravel(), clf.predict_proba(X)[:, 1]) <= 1e-10
    np.testing.assert_array_equal(from_torch(module, clf).network_.theta, clf.network_.theta)
    one_way = RNNClassifier(cell=cell, hidden_layer_sizes=(4, 3))
    with pytest.raises(ValueError, match="torch module is bidirectional, the sknet layer is not"):
        from_torch(module, one_way, X, y)
    with pytest.raises(ValueError, match="torch module is bidirectional"):
        from_torch(module.state_dict(), one_way, X, y)
