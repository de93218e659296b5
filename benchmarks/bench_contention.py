"""Training under contention: another process keeps one core busy.

Each job runs in a fresh process, once on the machine as it is ("idle") and once while
a child process spins on one core of this process's affinity mask ("busy"); the script
prints both times, their ratio (the goal is at most 2x) and the job's peak resident
memory. Jobs:

* ``mlp_cv``: the case of issue 13, ``cross_val_score`` (5 folds) of
  ``Pipeline(StandardScaler(), MLPClassifier((128,), max_iter=60))`` on digits;
* ``convnet``: ``ConvNetClassifier`` on digits as 1 x 8 x 8 images, 15 epochs;
* ``lstm``: ``RNNClassifier(cell="lstm")`` on 1,000 random sequences of 40 x 4, 15
  epochs.

Every job runs with sknet's default threads and with ``sknet.set_num_threads(1)``.
Compilation is excluded (a small fit first, warm on-disk cache).

A last part shows that importing sknet changes nothing for other libraries: one
PyTorch MLP epoch (784 -> 256 -> 128 -> 10, 10,000 samples, batches of 200) timed in a
process that imported sknet and ran a fit, and in one that did not (both import
scikit-learn first), with the environment variables compared (skipped when PyTorch is
not installed).

Usage::

    python benchmarks/bench_contention.py            # 3 repeats, median
    python benchmarks/bench_contention.py --quick    # 1 repeat
    python benchmarks/bench_contention.py --jobs mlp_cv --no-torch

Times are medians of the repeats; on a shared machine they drift, the ratios less so.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

JOBS = ("mlp_cv", "convnet", "lstm")


def _peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_job(job, threads):
    """Run one job in this (fresh) process; return seconds and peak memory."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import sknet

    warnings.simplefilter("ignore")
    if threads != "default":
        sknet.set_num_threads(int(threads))
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    if job == "mlp_cv":

        def make(it):
            return make_pipeline(
                StandardScaler(), sknet.MLPClassifier((128,), max_iter=it, random_state=0)
            )

        make(2).fit(X[:100], y[:100])  # compile or load the kernels
        start = time.perf_counter()
        score = cross_val_score(make(60), X, y).mean()
    elif job == "convnet":
        X = (X / 16).reshape(-1, 1, 8, 8).astype(np.float32)

        def make(it):
            return sknet.ConvNetClassifier(max_iter=it, random_state=0)

        make(1).fit(X[:64], y[:64])
        start = time.perf_counter()
        score = make(15).fit(X, y).score(X, y)
    elif job == "lstm":
        X = rng.normal(size=(1000, 40, 4)).astype(np.float32)
        y = (X[:, :, 0].mean(axis=1) > 0).astype(int)

        def make(it):
            return sknet.RNNClassifier(cell="lstm", max_iter=it, random_state=0)

        make(1).fit(X[:64], y[:64])
        start = time.perf_counter()
        score = make(15).fit(X, y).score(X, y)
    else:
        raise ValueError(f"unknown job {job!r}")
    return {"seconds": time.perf_counter() - start, "score": float(score), "peak_mb": _peak_mb()}


def run_torch(import_sknet):
    """One PyTorch MLP epoch (after one warm-up epoch), optionally after sknet ran."""
    import sklearn  # noqa: F401  (sets two KMP_ variables on import: scikit-learn's, not sknet's)

    env_before = dict(os.environ)
    if import_sknet:
        import numpy as np

        import sknet

        warnings.simplefilter("ignore")
        X = np.random.default_rng(0).normal(size=(64, 8))
        sknet.MLPClassifier((8,), max_iter=2).fit(X, X[:, 0] > 0)
        sknet.ConvNetClassifier(max_iter=1).fit(X.reshape(-1, 1, 8), X[:, 0] > 0)
    changed = sorted(
        k for k in set(env_before) | set(os.environ) if env_before.get(k) != os.environ.get(k)
    )
    import torch

    torch.manual_seed(0)
    X = torch.randn(10_000, 784)
    y = torch.randint(0, 10, (10_000,))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        for i in range(0, len(X), 200):
            opt.zero_grad()
            loss_fn(model(X[i : i + 200]), y[i : i + 200]).backward()
            opt.step()

    epoch()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return {"seconds": min(times), "env_changed": changed}


def _child(args, env=None):
    out = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


class Busy:
    """A child process spinning on one core of this process's affinity mask."""

    def __enter__(self):
        cpu = max(os.sched_getaffinity(0))
        code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--job", nargs=2, metavar=("JOB", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--torch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", nargs="*", default=list(JOBS), choices=JOBS)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch part")
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(*args.job)))
        return
    if args.torch is not None:
        print(json.dumps(run_torch(bool(args.torch))))
        return

    repeats = 1 if args.quick else 3
    print(
        f"cores in affinity mask: {len(os.sched_getaffinity(0))}, load average before: "
        f"{os.getloadavg()[0]:.2f}, {repeats} repeat(s), median seconds"
    )
    print(
        f"{'job':8s} {'threads':8s} {'idle s':>8s} {'busy s':>8s} {'busy/idle':>9s} {'peak MB':>8s}"
    )
    for job in args.jobs:
        for threads in ("default", "1"):
            idle, busy, peak = [], [], []
            for _ in range(repeats):  # interleaved, so drift hits both alike
                r = _child(["--job", job, threads])
                idle.append(r["seconds"])
                peak.append(r["peak_mb"])
                with Busy():
                    busy.append(_child(["--job", job, threads])["seconds"])
            i, b = statistics.median(idle), statistics.median(busy)
            print(
                f"{job:8s} {threads:8s} {i:8.2f} {b:8.2f} {b / i:9.2f} {max(peak):8.0f}", flush=True
            )

    if args.no_torch:
        return
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch: not installed, skipped")
        return
    without, with_ = [], []
    for _ in range(repeats):
        without.append(_child(["--torch", "0"])["seconds"])
        r = _child(["--torch", "1"])
        with_.append(r["seconds"])
    w, wo = statistics.median(with_), statistics.median(without)
    print(
        f"torch MLP epoch: {wo:.3f} s without sknet, {w:.3f} s after import sknet and "
        f"fits: ratio {w / wo:.2f}; environment variables changed by sknet: "
        f"{r['env_changed'] or 'none'}"
    )


if __name__ == "__main__":
    main()
