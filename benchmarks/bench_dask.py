"""Scaling out: what a fresh Dask worker pays for numba, and memory of out-of-core training.

Part 1 -- compile (``--part compile``). A LocalCluster of 2 worker processes x 1 thread
on loopback, started fresh for each scenario:

* no cache: ``SKNET_NUMBA_CACHE=0``, every worker process compiles every kernel;
* cold cache: an empty ``NUMBA_CACHE_DIR`` (a fresh install), the workers compile and
  fill it;
* warm cache: the same directory again, the workers load the kernels from disk;
* warm cache + plugin: ``sknet.dask.setup_workers`` loads them when each worker starts.

For each: the time of each worker's first fit (a small MLP, run on both workers at
once; importing sknet is timed apart), of its second fit (steady state), and the wall
time of a 24-fit GridSearchCV through joblib's Dask backend on another fresh cluster
(sknet already imported on the workers), with the kernels the tasks had to compile
(numba cache misses inside tasks).

Part 2 -- memory (``--part memory``). How much the resident memory of a fresh
subprocess grows while it trains one epoch of an MLP on 1x, 4x and 16x the data (float32,
32 features; 1x = 131,072 rows = 16 MiB): VmRSS sampled every 2 ms from /proc during
training, peak minus the value at the start (``ru_maxrss`` cannot show this: the
process's peak is reached while importing and compiling, before training starts).
Also the anonymous part (RssAnon), which leaves out the file-backed pages of a memmap.
Methods:

* ``sknet.dask.partial_fit_chunks`` over an ``np.memmap`` (pages released per chunk);
* a naive loop of ``partial_fit`` over slices of the same memmap (pages stay mapped);
* ``partial_fit_chunks`` over a lazily generated ``dask.array`` (synchronous scheduler);
* dask-ml's ``Incremental`` over the same dask array (if dask-ml is installed);
* ``fit`` on the data loaded in memory (the peer: memory grows with the data).

Usage::

    python benchmarks/bench_dask.py               # both parts (a few minutes)
    python benchmarks/bench_dask.py --quick       # smaller data
    python benchmarks/bench_dask.py --part memory
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

N_FEATURES = 32
CHUNK_ROWS = 8192


# ------------------------------------------------------------------------ part 1
def _timed_fit(X, y):
    """Runs on a worker: import sknet, then one small fit (timed apart).

    Returns the import time, the fit time and the kernels the fit compiled.
    """
    import warnings as _w

    start = time.perf_counter()
    from sknet import MLPClassifier
    from sknet.parallel import kernel_stats

    imported = time.perf_counter()
    before = kernel_stats()["cache_misses"]
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        MLPClassifier((16,), max_iter=5, random_state=0).fit(X, y)
    return (
        imported - start,
        time.perf_counter() - imported,
        kernel_stats()["cache_misses"] - before,
    )


def _kernel_stats():
    from sknet.parallel import kernel_stats

    return kernel_stats()


def _cluster(extra_env):
    import dask
    from distributed import LocalCluster

    from sknet.dask import worker_config

    config = worker_config(1)
    config.update({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in extra_env.items()})
    with dask.config.set(config):
        return LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=50,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )


def _scenario(name, env_first, env_search, plugin, X, y):
    """Fresh cluster: first and second fit per worker; another fresh one: a search."""
    import joblib
    from distributed import Client
    from sklearn.model_selection import GridSearchCV

    from sknet import MLPClassifier
    from sknet.dask import setup_workers

    row = {"scenario": name}
    saved = dict(os.environ)  # the nannies write their pre-spawn variables in here
    try:
        with _cluster(env_first) as cluster, Client(cluster) as client:
            if plugin:
                start = time.perf_counter()
                report = setup_workers(client, 1, warm_locally=False)
                row["setup"] = time.perf_counter() - start
                row["load"] = max(r["warm_up_seconds"] for r in report.values())
            workers = list(client.scheduler_info()["workers"])
            for label in ("first", "second"):
                futures = [
                    client.submit(_timed_fit, X, y, workers=[w], pure=False) for w in workers
                ]
                results = client.gather(futures)
                row[label] = float(np.mean([r[1] for r in results]))
                if label == "first":
                    row["import"] = float(np.mean([r[0] for r in results]))
                    row["first_misses"] = int(max(r[2] for r in results))
        os.environ.clear()
        os.environ.update(saved)
        with _cluster(env_search) as cluster, Client(cluster) as client:
            if plugin:
                setup_workers(client, 1, warm_locally=False)
            before = client.run(_kernel_stats)
            grid = {
                "hidden_layer_sizes": [(16,), (32,)],
                "alpha": [1e-4, 1e-2],
                "solver": ["adam", "sgd"],
            }
            start = time.perf_counter()
            with joblib.parallel_backend("dask"):
                GridSearchCV(MLPClassifier(max_iter=20, random_state=0), grid, cv=3).fit(X, y)
            row["search"] = time.perf_counter() - start
            after = client.run(_kernel_stats)
            row["search_misses"] = sum(
                after[w]["cache_misses"] - before[w]["cache_misses"] for w in after
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return row


def _warm_cache_dir(cache_dir):
    """What ``setup_workers(warm_locally=True)`` does on the client: fill the cache."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import sknet.parallel as p; p.warm_up()"],
        env={**os.environ, "NUMBA_CACHE_DIR": cache_dir},
        check=True,
        capture_output=True,
        timeout=1800,
    )
    return time.perf_counter() - start


def part_compile():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=500, n_features=16, random_state=0)
    print(
        "\n== Part 1: numba compilation paid by fresh Dask workers "
        "(LocalCluster, 2 processes x 1 thread, loopback) =="
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cold_a, cold_b, full = (os.path.join(tmp, d) for d in ("a", "b", "full"))
        off = {"SKNET_NUMBA_CACHE": "0"}
        rows.append(_scenario("no cache (SKNET_NUMBA_CACHE=0)", off, off, False, X, y))
        # two fresh, empty cache directories: one per cluster
        rows.append(
            _scenario(
                "cold on-disk cache",
                {"NUMBA_CACHE_DIR": cold_a},
                {"NUMBA_CACHE_DIR": cold_b},
                False,
                X,
                y,
            )
        )
        rows.append(
            _scenario(
                "warm on-disk cache",
                {"NUMBA_CACHE_DIR": cold_a},
                {"NUMBA_CACHE_DIR": cold_b},
                False,
                X,
                y,
            )
        )
        client_warm = _warm_cache_dir(full)
        env = {"NUMBA_CACHE_DIR": full}
        rows.append(_scenario("warm cache + SknetWorkerPlugin", env, env, True, X, y))
    head = (
        f"{'scenario':32s} {'import s':>8s} {'1st fit s':>9s} {'compiled':>8s} "
        f"{'2nd fit s':>9s} {'setup s':>8s} {'(load s)':>8s} {'search s':>8s} "
        f"{'compiled':>8s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        setup = f"{r['setup']:8.2f} {r['load']:8.2f}" if "setup" in r else f"{'-':>8s} {'-':>8s}"
        print(
            f"{r['scenario']:32s} {r['import']:8.2f} {r['first']:9.2f} "
            f"{r['first_misses']:8d} {r['second']:9.3f} {setup} {r['search']:8.2f} "
            f"{r['search_misses']:8d}"
        )
    base = rows[0]
    for r in rows[1:]:
        print(
            f"  {r['scenario']}: first fit {base['first'] / r['first']:.1f}x faster, "
            f"search {base['search'] / r['search']:.2f}x faster than with no cache"
        )
    print(
        "Per worker, on its first task: 'import s' importing sknet (and scikit-learn) in "
        "the task, '1st fit s' the fit itself, numba included; 'compiled': numba cache "
        "misses inside tasks (kernel signatures compiled; first fit: worst worker, "
        "search: sum over both workers). 'setup s': setup_workers, paid once per worker "
        "start outside the tasks, imports included; '(load s)' its kernel loading. The "
        "plugin loaded a cache that one client-side sknet.parallel.warm_up() filled in "
        f"{client_warm:.1f} s (once per machine and sknet version)."
    )


# ------------------------------------------------------------------------ part 2
def _make_memmap(path, n_rows):
    """Write n_rows x N_FEATURES float32 samples and int8 labels, chunk by chunk."""
    X = np.memmap(path + ".X", dtype=np.float32, mode="w+", shape=(n_rows, N_FEATURES))
    y = np.memmap(path + ".y", dtype=np.int8, mode="w+", shape=(n_rows,))
    rng = np.random.default_rng(0)
    w = rng.normal(size=N_FEATURES).astype(np.float32)
    for start in range(0, n_rows, 65536):
        stop = min(start + 65536, n_rows)
        block = rng.normal(size=(stop - start, N_FEATURES)).astype(np.float32)
        X[start:stop] = block
        y[start:stop] = np.tanh(block @ w) + 0.1 * block[:, 0] ** 2 > 0.05
    X.flush()
    y.flush()
    del X, y


_CHILD = r"""
import json, os, sys, threading, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from sknet import MLPClassifier
from sknet.dask import partial_fit_chunks
from sknet.parallel import warm_up

mode, path, n_rows, n_features, chunk = sys.argv[1:6]
n_rows, n_features, chunk = int(n_rows), int(n_features), int(chunk)


def memory():
    # resident set (file-backed pages of a memmap included) and its anonymous part, MiB
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024)


warm_up([(MLPClassifier((32,)), np.zeros((8, n_features), np.float32), np.arange(8) % 2)],
        dtypes=())
if mode in ("dask", "incremental"):
    import dask
    import dask.array as da
    if mode == "incremental":
        from dask_ml.wrappers import Incremental
start_rss, start_anon = memory()
peak = [start_rss, start_anon]
done = threading.Event()


def sample():
    while not done.is_set():
        rss, anon = memory()
        peak[0], peak[1] = max(peak[0], rss), max(peak[1], anon)
        time.sleep(0.002)


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
clf = MLPClassifier((32,), random_state=0)
start = time.perf_counter()
if mode in ("memmap", "naive", "in-memory"):
    X = np.memmap(path + ".X", dtype=np.float32, mode="r", shape=(n_rows, n_features))
    y = np.memmap(path + ".y", dtype=np.int8, mode="r", shape=(n_rows,))
    if mode == "memmap":
        partial_fit_chunks(clf, X, y, classes=[0, 1], chunk_size=chunk, shuffle=False)
    elif mode == "naive":
        for a in range(0, n_rows, chunk):
            clf.partial_fit(X[a:a + chunk], y[a:a + chunk], classes=[0, 1])
    else:
        clf.set_params(max_iter=1).fit(np.array(X), np.array(y))
else:
    rng = da.random.default_rng(0)
    X = rng.standard_normal((n_rows, n_features), chunks=(chunk, n_features),
                            dtype=np.float32)
    y = (X[:, :4].sum(axis=1) > 0).astype(np.int8)
    with dask.config.set(scheduler="synchronous"):
        if mode == "dask":
            partial_fit_chunks(clf, X, y, classes=[0, 1], shuffle=False)
        else:
            clf = Incremental(clf, shuffle_blocks=False).fit(X, y, classes=[0, 1]).estimator_
seconds = time.perf_counter() - start
done.set()
sampler.join()
if mode in ("dask", "incremental"):
    with dask.config.set(scheduler="synchronous"):
        Xs, ys = dask.compute(X[:20000], y[:20000])
else:
    Xs, ys = np.array(X[:20000]), np.array(y[:20000])
print(json.dumps({"start": start_rss, "rss": peak[0] - start_rss, "anon": peak[1] - start_anon,
                  "seconds": seconds, "score": float(clf.score(Xs, ys))}))
"""


def _child(mode, path, n_rows):
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, path, str(n_rows), str(N_FEATURES), str(CHUNK_ROWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
        env={
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "NUMBA_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        },
    )
    if out.returncode:
        raise RuntimeError(f"{mode} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_memory(quick):
    base_rows = 32768 if quick else 131072
    factors = (1, 4, 16)
    modes = [
        ("memmap", "partial_fit_chunks over np.memmap"),
        ("naive", "partial_fit loop over memmap slices"),
        ("dask", "partial_fit_chunks over dask.array"),
        ("incremental", "dask-ml Incremental over dask.array"),
        ("in-memory", "fit on data loaded in memory"),
    ]
    try:
        import dask_ml  # noqa: F401
    except ImportError:
        modes = [m for m in modes if m[0] != "incremental"]
        print("(dask-ml not installed: its row is skipped)")
    mib = base_rows * N_FEATURES * 4 / 2**20
    print(
        f"\n== Part 2: peak RSS of one training epoch, 1x = {base_rows:,} rows x "
        f"{N_FEATURES} float32 = {mib:.0f} MiB; chunks of {CHUNK_ROWS} rows =="
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data")
        _make_memmap(path, base_rows * factors[-1])
        head = (
            f"{'method':38s}"
            + "".join(f"{f'{f}x':>8s}" for f in factors)
            + f"{'16x/1x':>8s}{'16x anon':>9s}{'16x s':>7s}{'16x acc':>8s}"
        )
        print(
            "growth of resident memory during training, MiB (peak minus start); "
            "'anon' leaves out file-backed memmap pages"
        )
        print(head)
        print("-" * len(head))
        for mode, label in modes:
            res = [_child(mode, path, base_rows * f) for f in factors]
            grow = [r["rss"] for r in res]
            ratio = grow[-1] / max(grow[0], 0.1)
            print(
                f"{label:38s}"
                + "".join(f"{g:8.1f}" for g in grow)
                + f"{ratio:8.1f}{res[-1]['anon']:9.1f}{res[-1]['seconds']:7.1f}"
                f"{res[-1]['score']:8.3f}"
            )
        print(
            f"RSS when training starts: {res[0]['start']:.0f} MiB; data at 16x: {16 * mib:.0f} MiB"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["compile", "memory", "all"], default="all")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.part in ("compile", "all"):
        part_compile()
    if args.part in ("memory", "all"):
        part_memory(args.quick)


if __name__ == "__main__":
    main()
