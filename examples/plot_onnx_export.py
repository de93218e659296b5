"""
=====================================================
Serving a pipeline with ONNX Runtime, without sknet
=====================================================

A fitted scikit-learn pipeline, a :class:`~sklearn.preprocessing.StandardScaler`
followed by a :class:`sknet.ConvNetClassifier`, is exported to ONNX with
``skl2onnx.to_onnx`` once :func:`sknet.onnx.register` has told ``skl2onnx`` about
sknet's estimators. The ONNX file runs in ONNX Runtime, which needs neither Python's
scientific stack nor numba (it has C, C++, C#, Java and JavaScript APIs too). We check
that it predicts what the pipeline predicts and compare prediction latency by batch size.

Needs the optional dependencies ``pip install 'sknet[onnx]'`` (onnx, onnxruntime and
skl2onnx). The digits ship with scikit-learn, so this runs offline in a few seconds.
"""

# %%
# A pipeline on the digits
# ------------------------
# The 8x8 digits as flat rows of 64 pixels, in float32 (sknet then trains in float32,
# the precision of the exported graph). ``input_shape`` reads each row as a one-channel
# image, after the scaler.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime as ort
import skl2onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sknet.onnx
from sknet import ConvNetClassifier

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
pipe = make_pipeline(
    StandardScaler(),
    ConvNetClassifier(
        conv_filters=(8, 16),
        hidden_layer_sizes=(64,),
        input_shape=(1, 8, 8),
        batch_size=64,
        max_iter=15,
        random_state=0,
    ),
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget of epochs
    pipe.fit(X_train, y_train)
print(f"test accuracy of the pipeline: {pipe.score(X_test, y_test):.3f}")

# %%
# Export
# ------
# After :func:`sknet.onnx.register`, ``skl2onnx`` converts the pipeline as it converts
# scikit-learn's own: the scaler's nodes, then the network's (convolutions, pooling,
# dense layers, softmax). ``zipmap=False`` keeps the probabilities a plain
# ``[n, 10]`` tensor instead of a list of dictionaries.
sknet.onnx.register()
model = skl2onnx.to_onnx(pipe, X_train[:1], options={"zipmap": False})
onnx_bytes = model.SerializeToString()
ops = sorted({node.op_type for node in model.graph.node})
print(f"ONNX model: {len(onnx_bytes) / 1024:.0f} KiB, opset {model.opset_import[0].version}")
print("operators:", ", ".join(ops))

# %%
# Serving
# -------
# ONNX Runtime loads the bytes (or a ``.onnx`` file) and returns the ``label`` and
# ``probabilities`` outputs.
session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
label, proba = session.run(None, {"X": X_test})
expected = pipe.predict_proba(X_test)
gap = np.abs(proba - expected)
print(f"labels identical to pipe.predict: {np.array_equal(label, pipe.predict(X_test))}")
print(f"largest probability difference: {gap.max():.1e} (mean {gap.mean():.1e})")

# %%
# Latency by batch size
# ---------------------
# The median time of a prediction call per batch size, for the pipeline's
# ``predict_proba`` (input validation, then sknet's numba kernels) and for ONNX Runtime.
# Single-sample requests are where a serving runtime's low overhead shows. These are
# timings on the machine that built this page, which may have been busy.
batch_sizes = [1, 10, 100, 1000]


def median_time(fn, batch, repeats):
    fn(batch)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


predictors = {
    "sknet pipeline": pipe.predict_proba,
    "ONNX Runtime": lambda batch: session.run(None, {"X": batch}),
}


X_big = np.tile(X_test, (3, 1))  # 1,350 rows: room for the largest batch
latency = {name: [] for name in predictors}
for n in batch_sizes:
    batch = np.ascontiguousarray(X_big[:n])
    for name, fn in predictors.items():
        latency[name].append(median_time(fn, batch, repeats=30 if n < 1000 else 10))
for name, values in latency.items():
    print(
        f"{name:>15}: " + ", ".join(f"{n}: {t * 1e3:.2f} ms" for n, t in zip(batch_sizes, values))
    )

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
for name, values in latency.items():
    ax1.plot(batch_sizes, np.array(values) * 1e3, "o-", label=name)
ax1.set(
    xscale="log",
    yscale="log",
    xlabel="batch size (samples)",
    ylabel="median time per call (ms)",
    title="Prediction latency",
)
ax1.legend()
ax1.grid(True, which="both", alpha=0.3)

ax2.hist(gap.ravel(), bins=40, color="C2")
ax2.set(
    yscale="log",
    xlabel="|ONNX probability - pipeline probability|",
    ylabel="count (test digits x classes)",
    title="Agreement of the exported model",
)
fig.tight_layout()
plt.show()
