"""FCN training and prediction speed: sknet's NetworkClassifier(fcn()) against PyTorch CPU.

The network (Wang, Yan & Oates 2017): three blocks of Conv1D ('same' padding, 128 / 256
/ 128 filters of kernel size 8 / 5 / 3), batch normalization and ReLU, global average
pooling, a linear output layer with softmax cross-entropy; float32, Adam (rate 1e-3, no
L2 penalty), shuffled mini-batches. sknet: ``NetworkClassifier(fcn(), alpha=0)``;
PyTorch: ``nn.Conv1d(padding='same')``, ``nn.BatchNorm1d``, ``nn.ReLU``,
``nn.AdaptiveAvgPool1d(1)``, ``nn.Linear``, ``torch.optim.Adam``, ``nn.CrossEntropyLoss``
and a plain loop (``randperm``, ``zero_grad``, ``backward``, ``step``).

Jobs (univariate series, 2 classes):

* ``gunpoint``: GunPoint-sized, 50 series x 150 steps (the UCR GunPoint training set
  when ``/work/shared/data/ucr`` holds it, else random series of that shape), batch 16
  (the last batch of an epoch holds 2 series, in both libraries). Seconds per epoch,
  timed over whole epochs. Prediction: the 50 series, repeated.
* ``large``: 5,000 synthetic series x 500 steps, batch 64. An epoch (78 full batches
  and one of 8) takes tens of seconds, so each run trains on a fixed number of batches
  (20 by default) and the seconds per epoch are extrapolated from the time per batch:
  ``t * 5000 / (20 * 64)`` (printed as such). Prediction: 512 of the series in one
  call (sknet's ``predict_proba``; PyTorch in eval mode under ``inference_mode``, in
  batches of 256).

Each library, job and thread count is timed in its own fresh process (this script
imports neither): 1 and 2 threads (sknet: ``sknet.set_num_threads``, numba and BLAS;
the estimator runs BLAS single-threaded inside its conv kernels; PyTorch:
``torch.set_num_threads``). PyTorch runs twice, with its own OpenMP default
(``OMP_WAIT_POLICY`` as the environment has it, normally unset, i.e. active waiting)
and with ``OMP_WAIT_POLICY=PASSIVE`` (what sknet set on import before 0.2); the faster is the
peer's figure, both are printed. Figures are medians of the repeats after a warm-up
(which also loads sknet's compiled kernels); ratios are sknet / PyTorch, so below 1
means sknet is faster (for throughput, PyTorch / sknet samples per second: also below 1
when sknet is faster). The load average is printed at the start and the end:
absolute figures on a shared machine drift; compare ratios measured in the same run.

Usage::

    python benchmarks/bench_fcn.py                 # full run (about 10-20 minutes)
    python benchmarks/bench_fcn.py --quick         # fewer repeats and batches
    python benchmarks/bench_fcn.py --jobs gunpoint --threads 1
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

UCR_DIR = Path(os.environ.get("SKNET_UCR_DIR", "/work/shared/data/ucr"))
RESULTS = Path(__file__).parent / "results" / "bench_fcn.txt"
FILTERS, KERNELS = (128, 256, 128), (8, 5, 3)
# name: (n series, length, batch)
JOBS = {"gunpoint": (50, 150, 16), "large": (5000, 500, 64)}
N_PREDICT_LARGE = 512
TORCH_PREDICT_BATCH = 256


# ------------------------------------------------------------------ data
def _read_ts(path):
    """(X (n, L) float32, y labels) of a univariate UCR ``.ts`` file."""
    rows, labels, data = [], [], False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            data = True
            continue
        if data:
            *values, label = line.split(":")
            rows.append([float(v) for v in values[0].split(",")])
            labels.append(label)
    return np.asarray(rows, dtype=np.float32), np.asarray(labels)


def load_job(name):
    """(X (n, 1, L) float32, y ints, source) of a job; the same in every process."""
    n, L, _ = JOBS[name]
    rng = np.random.default_rng(0)
    if name == "gunpoint":
        path = UCR_DIR / "GunPoint_TRAIN.ts"
        if path.exists():
            X, labels = _read_ts(path)
            if X.shape == (n, L):
                y = np.unique(labels, return_inverse=True)[1]
                return X[:, None, :], y, f"UCR GunPoint train ({path})"
        X = rng.normal(size=(n, 1, L)).astype(np.float32)
        return X, rng.integers(0, 2, n), "random series (no GunPoint file found)"
    # a learnable synthetic task: class 1 carries a bump at a random position
    X = rng.normal(size=(n, 1, L)).astype(np.float32)
    y = rng.integers(0, 2, n)
    pos = rng.integers(0, L - 50, n)
    bump = np.sin(np.linspace(0, np.pi, 50)).astype(np.float32) * 2
    for i in np.flatnonzero(y):
        X[i, 0, pos[i] : pos[i] + 50] += bump
    return X, y, "synthetic (noise, plus a bump for class 1)"


# ------------------------------------------------------------------ workers (fresh processes)
def sknet_worker(job, n_threads, epochs, n_batches, repeats):
    """Seconds per epoch and predicted samples per second of sknet, in this process."""
    import sknet
    from sknet import NetworkClassifier
    from sknet.layers import fcn

    sknet.set_num_threads(n_threads)
    X, y, _ = load_job(job)
    batch = JOBS[job][2]
    if n_batches:  # a fixed number of batches: one epoch over that many samples
        X_fit, y_fit, n_epochs = X[: n_batches * batch], y[: n_batches * batch], 1
    else:
        X_fit, y_fit, n_epochs = X, y, epochs

    def make(max_iter):
        return NetworkClassifier(
            fcn(FILTERS, KERNELS),
            batch_size=batch,
            alpha=0.0,
            learning_rate_init=1e-3,
            max_iter=max_iter,
            tol=0.0,
            n_iter_no_change=10**9,
            random_state=0,
        )

    make(1).fit(X[: 2 * batch], y[: 2 * batch])  # compile or load the kernels
    train = []
    est = None
    for _ in range(repeats):
        est = make(n_epochs)
        t = time.perf_counter()
        est.fit(X_fit, y_fit)
        train.append((time.perf_counter() - t) / n_epochs)
    X_pred = X[:N_PREDICT_LARGE] if job == "large" else X
    return train, _time_predict(lambda: est.predict_proba(X_pred), len(X_pred), job)


def torch_worker(job, n_threads, epochs, n_batches, repeats):
    """The same in PyTorch, in this process."""
    import torch

    nn = torch.nn
    torch.set_num_threads(n_threads)
    X, y, _ = load_job(job)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    batch = JOBS[job][2]
    n_fit = n_batches * batch if n_batches else len(X)
    n_epochs = 1 if n_batches else epochs

    def build():
        torch.manual_seed(0)
        layers, C = [], 1
        for f, k in zip(FILTERS, KERNELS):
            layers += [nn.Conv1d(C, f, k, padding="same"), nn.BatchNorm1d(f), nn.ReLU()]
            C = f
        layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(C, 2)]
        return nn.Sequential(*layers)

    def run(n_epochs, n):
        model = build()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        t = time.perf_counter()
        for _ in range(n_epochs):
            perm = torch.randperm(len(Xt))[:n]
            for s in range(0, n, batch):
                idx = perm[s : s + batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        return (time.perf_counter() - t) / n_epochs, model

    run(1, 2 * batch)  # warm up
    train, model = [], None
    for _ in range(repeats):
        seconds, model = run(n_epochs, n_fit)
        train.append(seconds)
    model.eval()
    X_pred = Xt[:N_PREDICT_LARGE] if job == "large" else Xt

    def predict():
        with torch.inference_mode():
            return torch.cat(
                [
                    torch.softmax(model(X_pred[s : s + TORCH_PREDICT_BATCH]), dim=1)
                    for s in range(0, len(X_pred), TORCH_PREDICT_BATCH)
                ]
            )

    return train, _time_predict(predict, len(X_pred), job)


def _time_predict(predict, n, job):
    """Samples per second of ``predict()`` (n samples), one per repeat, after a warm-up."""
    predict()
    out = []
    for _ in range(3 if job == "large" else 20):
        t = time.perf_counter()
        predict()
        out.append(n / (time.perf_counter() - t))
    return out


def worker_main(spec):
    """Entry point of a ``--worker`` subprocess: print one JSON line."""
    lib, job, n_threads, epochs, n_batches, repeats = spec.split(",")
    warnings.filterwarnings("ignore")
    fn = sknet_worker if lib == "sknet" else torch_worker
    train, predict = fn(job, int(n_threads), int(epochs), int(n_batches), int(repeats))
    print(json.dumps({"train": train, "predict": predict}))


def run_worker(lib, job, n_threads, epochs, n_batches, repeats, omp=None):
    """Run a worker in a fresh process; ``omp`` sets OMP_WAIT_POLICY (None: as is)."""
    env = dict(os.environ)
    if omp is not None:
        env["OMP_WAIT_POLICY"] = omp
    spec = ",".join(str(v) for v in (lib, job, n_threads, epochs, n_batches, repeats))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", spec],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return float(np.median(res["train"])), float(np.median(res["predict"]))


def load():
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and batches")
    parser.add_argument("--jobs", default="gunpoint,large", help="'gunpoint', 'large' or both")
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. '1,2'")
    parser.add_argument("--batches", type=int, help="batches per run of the large job")
    parser.add_argument("--no-save", action="store_true", help=f"do not write {RESULTS}")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(args.worker)
    jobs = [j for j in args.jobs.split(",") if j]
    threads = [int(t) for t in args.threads.split(",")]
    n_cpu = len(os.sched_getaffinity(0))
    # (epochs per run, batches per run or 0 for whole epochs, repeats)
    plan = {
        "gunpoint": (10, 0, 5) if not args.quick else (5, 0, 3),
        "large": (1, args.batches or (8 if args.quick else 20), 3),
    }
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    say(f"# sknet FCN benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {n_cpu} cores, {load()}")
    say(f"# command: python benchmarks/bench_fcn.py {' '.join(sys.argv[1:])}".rstrip())
    say(
        "# FCN Conv1D 128/256/128 (k 8/5/3, 'same') + BatchNorm + ReLU, global average "
        "pool, Linear; float32, Adam 1e-3, no L2; each figure from a fresh process"
    )
    for job in jobs:
        n, L, batch = JOBS[job]
        epochs, n_batches, repeats = plan[job]
        how = (
            f"{n_batches} batches per run, seconds per epoch = time per batch x {n / batch:.2f}"
            if n_batches
            else f"{epochs} epochs per run"
        )
        n_pred = min(n, N_PREDICT_LARGE) if job == "large" else n
        say(
            f"# {job}: {n} series x {L} steps, batch {batch}, {load_job(job)[2]}; {how}; "
            f"median of {repeats} runs; predict {n_pred} series"
        )
    rows = []
    for job in jobs:
        n, L, batch = JOBS[job]
        epochs, n_batches, repeats = plan[job]
        scale = n / (n_batches * batch) if n_batches else 1.0
        for nt in threads:
            me = run_worker("sknet", job, nt, epochs, n_batches, repeats)
            active = run_worker("torch", job, nt, epochs, n_batches, repeats)
            passive = run_worker("torch", job, nt, epochs, n_batches, repeats, omp="PASSIVE")
            tt = (min(active[0], passive[0]), max(active[1], passive[1]))
            me_epoch, tt_epoch = me[0] * scale, tt[0] * scale
            say(
                f"# measured {job}, {nt} thread(s): sknet {me_epoch:.3f} s/epoch, "
                f"{me[1]:.0f} samples/s; torch {active[0] * scale:.3f} / "
                f"{passive[0] * scale:.3f} s/epoch, {active[1]:.0f} / {passive[1]:.0f} "
                f"samples/s (OpenMP default / passive) ({load()})"
            )
            rows.append((job, nt, me_epoch, tt_epoch, me[1], tt[1], bool(n_batches)))
    say()
    say(
        "| job | threads | sknet s/epoch | torch s/epoch | sknet/torch "
        "| sknet predict samples/s | torch predict samples/s | sknet/torch predict time |"
    )
    say("|---|---|---|---|---|---|---|---|")
    for job, nt, me_e, tt_e, me_p, tt_p, extrapolated in rows:
        mark = " (extrapolated)" if extrapolated else ""
        say(
            f"| {job}{mark} | {nt} | {me_e:.3f} | {tt_e:.3f} | {me_e / tt_e:.2f} "
            f"| {me_p:.0f} | {tt_p:.0f} | {tt_p / me_p:.2f} |"
        )
    say(f"\n# end: {load()}")
    if not args.no_save:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
