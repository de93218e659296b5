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
the same code on many machines. The script runs in well under a minute.

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
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)

    # ``setup_workers`` warms the kernels here first (filling numba's on-disk cache),
    # then on each worker, and reports what every worker's tasks will see.
    start = time.perf_counter()
    report = setup_workers(client, n_threads=1)
    print(f"workers ready in {time.perf_counter() - start:.1f} s")
    for address, info in report.items():
        print(f"{address}: numba threads {info['numba_threads']}, BLAS threads "
              f"{info['blas_threads']}, kernels loaded from the cache "
              f"{info['kernels']['cache_hits']}, compiled {info['kernels']['cache_misses']}")

# %%
# A grid search on the cluster
# ----------------------------
# The search itself is unchanged: only the joblib backend differs. With the same
# ``random_state`` the results are identical to a search run in this process.
if __name__ == "__main__":
    X, y = make_classification(n_samples=1000, n_features=20, n_informative=8,
                               random_state=0)
    grid = {"hidden_layer_sizes": [(16,), (64,)], "alpha": [1e-4, 1e-2],
            "learning_rate_init": [1e-3, 1e-2]}
    search = GridSearchCV(MLPClassifier(max_iter=50, random_state=0), grid, cv=3)
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    print(f"8 candidates x 3 folds on the cluster: {time.perf_counter() - start:.1f} s")
    print("best parameters:", search.best_params_,
          f"cross-validated accuracy {search.best_score_:.3f}")

# %%
# Out-of-core training from a memmap
# ----------------------------------
# The training set is written to a file and opened read-only as an ``np.memmap``:
# only the pages being read are in memory. ``partial_fit_chunks`` passes chunks of
# 2,000 rows to ``partial_fit`` (one pass in mini-batches each), visits the chunks in a
# new order every epoch, and releases each chunk's pages once it is used.
if __name__ == "__main__":
    X, y = make_classification(n_samples=40_000, n_features=20, n_informative=8,
                               random_state=1)
    X_train, X_test, y_train, y_test = train_test_split(X.astype(np.float32), y,
                                                        random_state=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "X_train.dat")
        disk = np.memmap(path, dtype=np.float32, mode="w+", shape=X_train.shape)
        disk[:] = X_train
        disk.flush()
        del disk
        X_disk = np.memmap(path, dtype=np.float32, mode="r", shape=X_train.shape)

        clf = MLPClassifier(hidden_layer_sizes=(64,), learning_rate_init=1e-3,
                            random_state=0)
        start = time.perf_counter()
        partial_fit_chunks(clf, X_disk, y_train, chunk_size=2000, n_epochs=5,
                           random_state=0)
        print(f"out of core, 5 epochs: {time.perf_counter() - start:.1f} s, "
              f"test accuracy {clf.score(X_test, y_test):.3f}")
        del X_disk

    # For comparison, the same network fitted on the data in memory for 5 epochs.
    reference = MLPClassifier(hidden_layer_sizes=(64,), learning_rate_init=1e-3,
                              max_iter=5, random_state=0).fit(X_train, y_train)
    print(f"in memory, 5 epochs: test accuracy {reference.score(X_test, y_test):.3f}")

# %%
# Closing the cluster
# -------------------
if __name__ == "__main__":
    client.close()
    cluster.close()
