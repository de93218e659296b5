"""
========================================
Scaling out: a Dask cluster and a memmap
========================================

Two ways to go beyond one model on one core, both with Dask's ``distributed``
(``pip install "sknet[dask]"``):

1. **Model selection on a cluster.** ``GridSearchCV`` sends its fits to Dask workers
   through joblib's Dask backend. :func:`sknet.dask.setup_workers` first caps each
   worker's numba and BLAS threads (two workers of one thread must not each start a
   thread per core) and loads sknet's compiled kernels once per worker, so no task pays
   numba's compilation.
2. **Out-of-core training.** :func:`sknet.dask.partial_fit_chunks` streams a file on
   disk (an ``np.memmap``) through ``partial_fit`` one chunk at a time; memory stays
   flat however large the file.

The cluster here is a ``LocalCluster`` of two worker processes on this machine,
listening on the loopback interface only. Point a ``Client`` at a real scheduler to run
the same code on many machines. The script runs in well under a minute and draws one
figure: the grid search's cross-validated scores, and the test accuracy after each
epoch of out-of-core training next to the same training in memory.

This script starts worker processes, so (as with any ``multiprocessing`` code) each
step runs under ``if __name__ == "__main__":``; the workers import this file without
running it.
"""

# %%
# A local cluster
# ---------------
# Two worker processes with one task thread each. ``worker_config(1)`` starts every
# worker with one numba and one BLAS thread (numba's pool size is fixed when a process
# starts, so it goes into the environment the workers are spawned with). The dashboard
# is off.
import os
import tempfile
import time
import warnings

import dask
import joblib
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split

from sknet import MLPClassifier
from sknet.dask import partial_fit_chunks, setup_workers, worker_config

warnings.filterwarnings("ignore", category=ConvergenceWarning)

if __name__ == "__main__":
    with dask.config.set(worker_config(n_threads=1)):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    client = Client(cluster)

    # ``setup_workers`` warms the kernels here first (filling numba's on-disk cache),
    # then on each worker, and reports what every worker's tasks will see.
    start = time.perf_counter()
    report = setup_workers(client, n_threads=1)
    print(f"workers ready in {time.perf_counter() - start:.1f} s")
    for address, info in report.items():
        print(
            f"{address}: numba threads {info['numba_threads']}, BLAS threads "
            f"{info['blas_threads']}, kernels loaded from the cache "
            f"{info['kernels']['cache_hits']}, compiled {info['kernels']['cache_misses']}"
        )

# %%
# A grid search on the cluster
# ----------------------------
# The search itself is unchanged: only the joblib backend differs. With the same
# ``random_state`` the results are identical to a search run in this process.
if __name__ == "__main__":
    X, y = make_classification(n_samples=1000, n_features=20, n_informative=8, random_state=0)
    grid = {
        "hidden_layer_sizes": [(16,), (64,)],
        "alpha": [1e-4, 1e-2],
        "learning_rate_init": [1e-3, 1e-2],
    }
    search = GridSearchCV(MLPClassifier(max_iter=50, random_state=0), grid, cv=3)
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    print(f"8 candidates x 3 folds on the cluster: {time.perf_counter() - start:.1f} s")
    print(
        "best parameters:",
        search.best_params_,
        f"cross-validated accuracy {search.best_score_:.3f}",
    )

    fig, (ax_grid, ax_epochs) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    results = search.cv_results_
    labels = [
        f"{p['hidden_layer_sizes'][0]} units, alpha={p['alpha']:g}, lr={p['learning_rate_init']:g}"
        for p in results["params"]
    ]
    order = np.argsort(results["mean_test_score"])
    ax_grid.barh(
        np.arange(len(order)),
        results["mean_test_score"][order],
        xerr=results["std_test_score"][order],
        color="tab:blue",
        alpha=0.8,
    )
    ax_grid.set_yticks(np.arange(len(order)), [labels[i] for i in order], fontsize=8)
    low = results["mean_test_score"].min() - 2 * results["std_test_score"].max()
    ax_grid.set(
        xlim=(max(0.0, low), 1.0),
        xlabel="3-fold cross-validated accuracy",
        title="GridSearchCV on the Dask cluster",
    )

# %%
# Out-of-core training from a memmap
# ----------------------------------
# The training set is written to a file and opened read-only as an ``np.memmap``:
# only the pages being read are in memory. ``partial_fit_chunks`` passes chunks of
# 2,000 rows to ``partial_fit`` (one pass in mini-batches each), visits the chunks in a
# new order every epoch, and releases each chunk's pages once it is used. It is called
# here one epoch at a time (training continues where it stopped) to score the model
# after every epoch.
if __name__ == "__main__":
    X, y = make_classification(n_samples=40_000, n_features=20, n_informative=8, random_state=1)
    X_train, X_test, y_train, y_test = train_test_split(X.astype(np.float32), y, random_state=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X_train.dat")
        disk = np.memmap(path, dtype=np.float32, mode="w+", shape=X_train.shape)
        disk[:] = X_train
        disk.flush()
        del disk
        X_disk = np.memmap(path, dtype=np.float32, mode="r", shape=X_train.shape)

        clf = MLPClassifier(hidden_layer_sizes=(64,), learning_rate_init=1e-3, random_state=0)
        out_of_core = []
        start = time.perf_counter()
        for epoch in range(5):
            partial_fit_chunks(
                clf, X_disk, y_train, chunk_size=2000, n_epochs=1, random_state=epoch
            )
            out_of_core.append(clf.score(X_test, y_test))
        print(
            f"out of core, 5 epochs: {time.perf_counter() - start:.1f} s (with scoring), "
            f"test accuracy {out_of_core[-1]:.3f}"
        )
        del X_disk

    # For comparison, the same network trained on the data in memory, one pass per
    # ``partial_fit`` call over the whole training set.
    reference = MLPClassifier(hidden_layer_sizes=(64,), learning_rate_init=1e-3, random_state=0)
    in_memory = []
    for _ in range(5):
        reference.partial_fit(X_train, y_train, classes=np.unique(y_train))
        in_memory.append(reference.score(X_test, y_test))
    print(f"in memory, 5 epochs: test accuracy {in_memory[-1]:.3f}")

    epochs = np.arange(1, 6)
    ax_epochs.plot(epochs, out_of_core, "o-", label="out of core (memmap, 2,000-row chunks)")
    ax_epochs.plot(epochs, in_memory, "s--", label="in memory")
    ax_epochs.set(
        xlabel="epoch",
        ylabel="test accuracy",
        xticks=epochs,
        title=f"Training on {len(X_train):,} rows streamed from disk",
    )
    ax_epochs.legend(loc="lower right")

# %%
# Closing the cluster
# -------------------
if __name__ == "__main__":
    client.close()
    cluster.close()
    plt.show()
