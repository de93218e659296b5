"""Cold compilation: seconds to compile each estimator family's kernels, per dtype.

Every job runs in a fresh process whose ``NUMBA_CACHE_DIR`` (set in the child's
environment only) is a new empty directory, so numba compiles every kernel the job
uses. The job fits a small model twice (``max_iter=2``) and predicts; the cold
figure is the first fit + predict minus the second (which runs on compiled code), so
it is compilation (and cache writing) alone; ``cpu s`` is the same difference in CPU
time of the process, less sensitive to other processes on a shared machine. Families:
MLP, ConvNet, RNN with each cell (rnn i.e. Elman, lstm, gru), and a composable network with
batch normalization and residual blocks (``sknet.layers.resnet``). ``warm s`` is the
same job once more with the cache now filled: loading instead of compiling.

The five slowest kernels of each job in CPU seconds (numba's compile events, inclusive of the
functions compiled inside them) show where the time goes; ``--exclusive`` lists every
compiled function with its exclusive CPU seconds (less the compiles nested inside it: numba
compiles a callee, or an overload's implementation, within its caller's compile), its
inclusive ones and its number of signatures.

``--gridsearch`` times ``GridSearchCV(ConvNetClassifier(...), n_jobs=2)`` (4 candidates,
2 folds, digits as 1 x 8 x 8 images, float32) in a fresh process, with an empty cache
(the two loky workers start cold at the same time) and again with the cache it filled,
in wall time and in CPU time of all processes (the workers included).

Usage::

    python benchmarks/bench_compile.py                 # every family, float64 and float32
    python benchmarks/bench_compile.py --jobs convnet lstm --dtypes float32
    python benchmarks/bench_compile.py --gridsearch
    python benchmarks/bench_compile.py --jobs resnet --dtypes float64 --exclusive
    python benchmarks/bench_compile.py --repeats 3      # medians of 3 cold processes

With ``--repeats N``, each job and dtype runs N cold processes (each with its own empty
cache; the rounds go through every job before the next round starts, so that a change
in the machine's speed spreads over the jobs) and the figures are their medians, with
the range of ``cpu s`` in brackets: single runs on a shared machine vary by 0.3-0.7 s.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

JOBS = ("mlp", "convnet", "rnn", "lstm", "gru", "resnet")


def make(job, max_iter):
    import sknet
    from sknet.layers import resnet

    common = {"max_iter": max_iter, "random_state": 0}
    if job == "mlp":
        return sknet.MLPClassifier((16,), **common)
    if job == "convnet":
        return sknet.ConvNetClassifier((4, 8), hidden_layer_sizes=(16,), **common)
    if job in ("rnn", "lstm", "gru"):
        return sknet.RNNClassifier(cell=job, **common)
    if job == "resnet":
        return sknet.NetworkClassifier(resnet(filters=(4, 8, 8)), **common)
    raise ValueError(job)


def data(job, dtype):
    import numpy as np

    rng = np.random.default_rng(0)
    if job == "mlp":
        X = rng.normal(size=(64, 8))
    elif job == "convnet":
        X = rng.normal(size=(64, 1, 8, 8))
    elif job == "resnet":
        X = rng.normal(size=(64, 16))
    else:
        X = rng.normal(size=(64, 6, 3))
    y = (X.reshape(64, -1)[:, 0] > 0).astype(int) + (X.reshape(64, -1)[:, 1] > 0)
    return X.astype(dtype), y


def run_job(job, dtype):
    """In this fresh process: seconds of the first and second fit + predict."""
    from numba.core import event

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    import sknet  # noqa: F401
    from sknet.parallel import kernel_stats

    import_s = time.perf_counter() - start
    X, y = data(job, dtype)
    compiles = {}  # name -> inclusive CPU s
    exclusive = {}  # name -> CPU s less the compiles nested inside it
    signatures = {}  # name -> number of signatures compiled
    callers = {}  # name -> the outermost function whose compile compiled it
    stack = []  # [name, start CPU s, CPU s of nested compiles] of the compiles in progress

    class Listener(event.Listener):
        def on_start(self, ev):
            disp = ev.data["dispatcher"]
            name = getattr(disp, "py_func", disp).__qualname__
            if stack:
                callers.setdefault(name, stack[0][0])
            stack.append([name, time.process_time(), 0.0])

        def on_end(self, ev):
            name, start, nested = stack.pop()
            spent = time.process_time() - start
            if stack:
                stack[-1][2] += spent
            compiles[name] = compiles.get(name, 0.0) + spent
            exclusive[name] = exclusive.get(name, 0.0) + spent - nested
            signatures[name] = signatures.get(name, 0) + 1

    times, cpu = [], []
    with event.install_listener("numba:compile", Listener()):
        for _ in range(2):
            start, start_cpu = time.perf_counter(), time.process_time()
            make(job, 2).fit(X, y).predict(X)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    top = sorted(compiles.items(), key=lambda kv: -kv[1])[:5]
    return {
        "import": import_s,
        "first": times[0],
        "second": times[1],
        "cpu": cpu[0] - cpu[1],
        "stats": kernel_stats(),
        "top": top,
        "exclusive": sorted(
            (
                [name, s, compiles[name], signatures[name], callers.get(name, "")]
                for name, s in exclusive.items()
            ),
            key=lambda row: -row[1],
        ),
    }


def run_gridsearch():
    """In this fresh process: seconds of a 2-worker grid search over a ConvNet."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    import sknet

    warnings.simplefilter("ignore")
    X, y = load_digits(return_X_y=True)
    X = (X / 16).reshape(-1, 1, 8, 8).astype(np.float32)
    est = sknet.ConvNetClassifier((8, 16), hidden_layer_sizes=(32,), max_iter=3, random_state=0)
    grid = {"alpha": [1e-4, 1e-3], "learning_rate_init": [1e-3, 3e-3]}
    start = time.perf_counter()
    GridSearchCV(est, grid, cv=2, n_jobs=2).fit(X[:600], y[:600])
    return {"seconds": time.perf_counter() - start}


def _child(job, dtype, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, __file__, "--child", job, dtype],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", nargs="*", default=list(JOBS))
    parser.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--gridsearch", action="store_true")
    parser.add_argument(
        "--exclusive",
        action="store_true",
        help="also list every compiled function: exclusive CPU s, inclusive, signatures, and "
        "the top-level kernel whose compile first compiled it",
    )
    parser.add_argument("--gridsearch-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--repeats", type=int, default=1, help="cold processes per job and dtype (medians)"
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_job(*args.child)))
        return
    if args.gridsearch_child:
        print(json.dumps(run_gridsearch()))
        return
    if args.gridsearch:
        with tempfile.TemporaryDirectory(prefix="sknet-compile-") as cache_dir:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
            times, cpu = [], []
            for _ in range(2):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = subprocess.run(
                    [sys.executable, __file__, "--gridsearch-child"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                times.append(json.loads(out.strip().splitlines()[-1])["seconds"])
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        print(
            f"GridSearchCV(ConvNetClassifier, n_jobs=2), load average "
            f"{os.getloadavg()[0]:.2f}: cold cache {times[0]:.2f} s, warm cache "
            f"{times[1]:.2f} s, cold/warm {times[0] / times[1]:.1f}; CPU seconds of all "
            f"processes (workers included): cold {cpu[0]:.1f}, warm {cpu[1]:.1f}"
        )
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"{'job':8s} {'dtype':8s} {'cold s':>7s} {'cpu s':>6s} {'warm s':>7s} {'kernels':>8s} "
        f"{'import s':>8s}  slowest kernels (CPU s, inclusive)"
    )
    pairs = [(job, dtype) for job in args.jobs for dtype in args.dtypes]
    runs = {pair: [] for pair in pairs}  # (cold, warm) of each round
    for round_ in range(args.repeats):
        for job, dtype in pairs:
            with tempfile.TemporaryDirectory(prefix="sknet-compile-") as cache_dir:
                cold = _child(job, dtype, cache_dir)
                warm = _child(job, dtype, cache_dir)
            runs[job, dtype].append((cold, warm))
            if round_ < args.repeats - 1:
                continue
            colds = [c for c, _ in runs[job, dtype]]
            cold_s = statistics.median(c["first"] - c["second"] for c in colds)
            warm_s = statistics.median(w["first"] - w["second"] for _, w in runs[job, dtype])
            cpus = [c["cpu"] for c in colds]
            cpu_s = f"{statistics.median(cpus):6.2f}"
            if args.repeats > 1:
                cpu_s += f" [{min(cpus):.2f}-{max(cpus):.2f}]"
            import_s = statistics.median(c["import"] for c in colds)
            top = ", ".join(f"{name} {s:.1f}" for name, s in cold["top"])
            print(
                f"{job:8s} {dtype:8s} {cold_s:7.2f} {cpu_s} {warm_s:7.2f} "
                f"{cold['stats']['cache_misses']:8d} {import_s:8.2f}  {top}",
                flush=True,
            )
            if args.exclusive:
                rows = cold["exclusive"]
                total = sum(row[1] for row in rows)
                print(f"  {len(rows)} functions compiled, {total:.2f} CPU s in numba's compiles")
                print(
                    f"  {'exclusive':>9s} {'inclusive':>9s} {'sigs':>4s}  function (first within)"
                )
                for name, excl, incl, sigs, caller in rows:
                    within = f"  (within {caller})" if caller else ""
                    print(f"  {excl:9.2f} {incl:9.2f} {sigs:4d}  {name}{within}")


if __name__ == "__main__":
    main()
