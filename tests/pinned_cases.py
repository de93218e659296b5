"""Fixed training runs of all six estimators whose outputs are pinned in
``tests/data/pinned_predictions.npz`` (see ``test_pinned_predictions.py``).

Regenerate the file only when a change is meant to alter results:
``python -m tests.pinned_cases``. The file records the BLAS build and CPU it was made
on; elsewhere the test compares to a tolerance instead of bit for bit.
"""

import platform

import numpy as np

import sknet

CASES = {
    # name: (class name, constructor parameters, data family, target kind)
    "mlp_clf_adam": (
        "MLPClassifier",
        dict(hidden_layer_sizes=(7, 5), max_iter=15),
        "flat",
        "multi",
    ),
    "mlp_clf_sgd_drop": (
        "MLPClassifier",
        dict(hidden_layer_sizes=(6,), solver="sgd", dropout=0.2, max_iter=10),
        "flat",
        "binary",
    ),
    "mlp_clf_lbfgs": (
        "MLPClassifier",
        dict(hidden_layer_sizes=(5,), solver="lbfgs", activation="tanh", max_iter=20),
        "flat",
        "multi",
    ),
    "mlp_reg_adam_es": (
        "MLPRegressor",
        dict(hidden_layer_sizes=(8,), early_stopping=True, max_iter=12),
        "flat",
        "reg",
    ),
    "mlp_reg_lbfgs": (
        "MLPRegressor",
        dict(hidden_layer_sizes=(4, 4), solver="lbfgs", max_iter=20),
        "flat",
        "reg2",
    ),
    "rnn_clf_lstm": (
        "RNNClassifier",
        dict(cell="lstm", hidden_layer_sizes=(5, 4), dense_layer_sizes=(3,), max_iter=8),
        "seq",
        "multi",
    ),
    "rnn_clf_gru_drop": (
        "RNNClassifier",
        dict(cell="gru", hidden_layer_sizes=(6,), dropout=0.1, max_iter=8),
        "seq",
        "binary",
    ),
    "rnn_reg_elman": (
        "RNNRegressor",
        dict(cell="rnn", hidden_layer_sizes=(6,), max_iter=8),
        "seq",
        "reg",
    ),
    "rnn_reg_gru_lbfgs": (
        "RNNRegressor",
        dict(cell="gru", hidden_layer_sizes=(4,), solver="lbfgs", max_iter=10),
        "seq",
        "reg2",
    ),
    "conv_clf_2d": (
        "ConvNetClassifier",
        dict(conv_filters=(3, 4), kernel_size=3, hidden_layer_sizes=(6,), max_iter=6),
        "img",
        "multi",
    ),
    "conv_clf_1d_avg": (
        "ConvNetClassifier",
        dict(
            conv_filters=(3,),
            kernel_size=3,
            pool="avg",
            input_shape=(2, 16),
            padding="valid",
            hidden_layer_sizes=(5,),
            max_iter=6,
        ),
        "sig",
        "binary",
    ),
    "conv_reg_2d_sgd": (
        "ConvNetRegressor",
        dict(
            conv_filters=(2,),
            kernel_size=3,
            strides=1,
            solver="sgd",
            hidden_layer_sizes=(4,),
            max_iter=6,
        ),
        "img",
        "reg",
    ),
}

DTYPES = ("float64", "float32")


def make_data(family, kind, n=48, seed=0):
    rng = np.random.RandomState(seed)
    shape = {"flat": (n, 6), "seq": (n, 7, 3), "img": (n, 1, 8, 8), "sig": (n, 2, 16)}[family]
    X = rng.randn(*shape)
    s = X.reshape(n, -1)
    a, b = s[:, 0] + s[:, 3], s[:, 1] - s[:, 5]
    if kind == "binary":
        y = (a > 0).astype(int)
    elif kind == "multi":
        y = (a > 0).astype(int) + 2 * (b > 0).astype(int)
    elif kind == "reg":
        y = a - 0.5 * b + 0.1 * rng.randn(n)
    else:  # two regression outputs
        y = np.column_stack([a, b * a])
    return X, y


def run_case(name, dtype):
    """Fit the case's estimator; return its outputs as a dict of arrays."""
    cls_name, params, family, kind = CASES[name]
    X, y = make_data(family, kind)
    X = X.astype(dtype)
    est = getattr(sknet, cls_name)(random_state=0, **params).fit(X, y)
    Xt = make_data(family, kind, n=20, seed=1)[0].astype(dtype)
    out = {"predict": np.asarray(est.predict(Xt)), "transform": est.transform(Xt)}
    if hasattr(est, "predict_proba"):
        out["predict_proba"] = est.predict_proba(Xt)
    return out


def environment():
    """What the pinned bits depend on besides sknet: the BLAS kernel and the CPU (its
    kind as LLVM names it: numba compiles the kernels for it, and the vector width it
    picks sets the order of the sums the conv products reassociate)."""
    from llvmlite import binding
    from threadpoolctl import threadpool_info

    blas = sorted(
        f"{i.get('internal_api')}:{i.get('architecture')}:{i.get('version')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    )
    return ";".join([platform.machine(), binding.get_host_cpu_name(), np.__version__] + blas)


def main(path="tests/data/pinned_predictions.npz"):
    import scipy.linalg  # noqa: F401  (load the BLAS numba calls before reading its kind)

    arrays = {"__environment__": np.array(environment())}
    for name in CASES:
        for dtype in DTYPES:
            for key, value in run_case(name, dtype).items():
                arrays[f"{name}/{dtype}/{key}"] = value
    np.savez(path, **arrays)
    print(f"wrote {len(arrays) - 1} arrays to {path}")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    main()
