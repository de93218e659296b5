"""MLP training and inference speed: sknet against scikit-learn and PyTorch CPU.

Every figure is measured in this one run, back to back, and reported as a ratio to the
peers measured beside it (absolute seconds drift between runs on shared machines).

Jobs (MNIST-shaped random data, 60,000 x 784, 10 classes, Adam, batch 200):

* (256, 128) relu float32 - seconds per epoch, sknet / sklearn / torch, 1 and 2 threads,
  and sknet's share of the machine's float32 GEMM peak on the exact matmul FLOP count;
* (100,) relu float32 - the same ratios;
* (256, 128) float64 - sknet / sklearn;
* predict_proba throughput (10,000 x 784) - samples per second (sknet's in a fresh
  ``--sknet-peer`` process, as its training; scikit-learn's in this one);
* start-up: a fresh process with a warm numba cache, import to end of a first small fit;
  and a cold compile of the MLP kernels (empty cache) per dtype.

PyTorch is timed twice per job and its faster time is the peer's figure: in this process,
where OpenMP waits passively (this script sets ``OMP_WAIT_POLICY=PASSIVE`` for its own
process, before PyTorch starts its threads; sknet itself sets nothing), and in a fresh
process with ``OMP_WAIT_POLICY=ACTIVE``, PyTorch's own default (spinning threads).
Both figures are printed.

sknet's training epochs are timed in a fresh process of their own (``--sknet-peer``),
with the environment this script was started with: without the ``PASSIVE`` setting,
which made numba's OpenMP threads sleep between sknet's parallel regions (slower
regions: a 2-thread (256, 128) epoch 0.67 s in this process, 0.40-0.43 s in a fresh
one, idle machine). Each fresh process warms its kernels up first (numba's disk cache).

Usage::

    python benchmarks/bench_mlp.py            # full run (several minutes)
    python benchmarks/bench_mlp.py --quick    # fewer repeats / smaller data
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
# the environment as started, for the --sknet-peer subprocesses
_START_ENV = dict(os.environ)
# passive OpenMP waiting in this process, for PyTorch too (set before it loads OpenMP);
# the --torch-peer subprocess times PyTorch with ACTIVE, its own default
if "--sknet-peer" not in sys.argv:  # the sknet peer keeps the environment as started
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import torch
except ImportError:  # torch is an optional peer
    torch = None

import numba
import scipy.linalg  # noqa: F401  (load scipy's OpenBLAS before limiting threads)
from _peers import run_peer, time_torch_active
from sklearn.neural_network import MLPClassifier as SkMLP
from threadpoolctl import threadpool_limits

from sknet import MLPClassifier


def matmul_flops(n_samples, sizes):
    """FLOPs of one training epoch: forward, weight gradients, input gradients of
    every layer but the first."""
    fwd = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    dx = sum(2 * a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return n_samples * (2 * fwd + dx)


def gemm_peak(dtype, n=2048, repeats=5):
    a = np.random.rand(n, n).astype(dtype)
    b = np.random.rand(n, n).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.dot(a, b, out=c)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.dot(a, b, out=c)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / np.median(times) / 1e9


def time_estimator(make, X, y, epochs, repeats):
    """Median seconds per epoch of ``make().fit`` with exactly ``epochs`` epochs."""
    make().set_params(max_iter=1).fit(X[:1000], y[:1000])  # warm up (compile, caches)
    per_epoch = []
    for _ in range(repeats):
        est = make().set_params(max_iter=epochs, tol=0.0, n_iter_no_change=10**6)
        t = time.perf_counter()
        est.fit(X, y)
        per_epoch.append((time.perf_counter() - t) / epochs)
    return float(np.median(per_epoch))


def time_torch(X, y, hidden, epochs, repeats, batch_size=200, lr=1e-3, alpha=1e-4):
    """Median seconds per epoch of the same network trained with PyTorch CPU."""
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.astype(np.int64))
    sizes = [X.shape[1], *hidden, 10]

    def one_run(n_epochs):
        torch.manual_seed(0)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        # L2 on weights with sklearn's scaling alpha / batch, as coupled weight decay
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=alpha / batch_size)
        loss_fn = torch.nn.CrossEntropyLoss()
        n = Xt.shape[0]
        t = time.perf_counter()
        for _ in range(n_epochs):
            perm = torch.randperm(n)
            for s in range(0, n, batch_size):
                idx = perm[s : s + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        return (time.perf_counter() - t) / n_epochs

    one_run(1)  # warm up
    return float(np.median([one_run(epochs) for _ in range(repeats)]))


def torch_peer_main(spec):
    """Entry point of the ``--torch-peer`` subprocess: print seconds per epoch."""
    n, epochs, repeats, n_threads, *hidden = (int(v) for v in spec.split(","))
    X32, y = make_data(n)
    set_threads(n_threads)
    with threadpool_limits(n_threads):
        print(time_torch(X32, y, tuple(hidden), epochs, repeats))


def sknet_peer_main(spec):
    """Entry point of the ``--sknet-peer`` subprocess: print sknet's seconds per epoch
    of ``MLPClassifier(hidden)`` on ``make_data(n)`` in ``dtype``, or with ``epochs`` 0 its
    ``predict_proba`` samples per second on 10,000 rows (fitted on 2,000)."""
    n, epochs, repeats, n_threads, dtype, *hidden = spec.split(",")
    n, epochs, repeats, n_threads = (int(v) for v in (n, epochs, repeats, n_threads))
    X32, y = make_data(n)
    X = X32.astype(dtype)
    hidden = tuple(int(h) for h in hidden)
    set_threads(n_threads)
    with threadpool_limits(n_threads):
        if epochs == 0:  # predict_proba throughput instead (samples per second)
            est = MLPClassifier(hidden, max_iter=1, **COMMON).fit(X[:2000], y[:2000])
            print(time_predict(est, X[:10_000], repeats))
            return
        print(time_estimator(lambda: MLPClassifier(hidden, **COMMON), X, y, epochs, repeats))


def time_sknet(n, epochs, repeats, n_threads, dtype, hidden):
    """sknet's seconds per epoch from a fresh ``--sknet-peer`` process started with the
    environment this script was started with (no ``OMP_WAIT_POLICY`` of ours)."""
    spec = (n, epochs, repeats, n_threads, dtype, *hidden)
    return run_peer(__file__, "--sknet-peer", spec, _START_ENV)


COMMON = dict(activation="relu", solver="adam", batch_size=200, random_state=0)


def make_data(n):
    rng = np.random.default_rng(0)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n)


def set_threads(n):
    numba.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def time_predict(est, X, repeats):
    est.predict_proba(X[:100])
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        est.predict_proba(X)
        times.append(time.perf_counter() - t)
    return X.shape[0] / float(np.median(times))


STARTUP_SNIPPET = textwrap.dedent("""
    import time, warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    import numpy as np
    from sknet import MLPClassifier
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.random((200, 20), dtype={dtype}); y = rng.integers(0, 3, 200)
    MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    t2 = time.perf_counter()
    print(t1 - t0, t2 - t1)
""")


def startup_times(dtype, cache_dir=None):
    """(import seconds, first fit seconds) in a fresh interpreter."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", STARTUP_SNIPPET.format(dtype=dtype)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    imp, fit = (float(v) for v in out.split())
    return imp, fit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repeats")
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. '2' or '1,2'")
    parser.add_argument("--torch-peer", help=argparse.SUPPRESS)
    parser.add_argument("--sknet-peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_peer:
        return torch_peer_main(args.torch_peer)
    if args.sknet_peer:
        return sknet_peer_main(args.sknet_peer)
    n = 12_000 if args.quick else 60_000
    epochs, repeats = (1, 3) if args.quick else (2, 3)
    threads = [int(t) for t in args.threads.split(",")]

    X32, y = make_data(n)
    X64 = X32.astype(np.float64)
    common = COMMON

    print(
        f"# sknet MLP benchmark: {n} x 784, 10 classes, adam, batch 200; "
        f"median of {repeats} runs of {epochs} epoch(s); sknet in fresh processes "
        f"(OMP_WAIT_POLICY={_START_ENV.get('OMP_WAIT_POLICY', 'unset')})"
    )
    print(f"# torch: {torch.__version__ if torch is not None else 'not installed'}")
    rows, torch_notes = [], []
    for nt in threads:
        set_threads(nt)
        with threadpool_limits(nt):
            peak = gemm_peak(np.float32)
            for hidden in [(256, 128), (100,)]:
                sk = time_estimator(lambda h=hidden: SkMLP(h, **common), X32, y, epochs, repeats)
                me = time_sknet(n, epochs, repeats, nt, "float32", hidden)
                tt = float("nan")
                if torch is not None:
                    tt_passive = time_torch(X32, y, hidden, epochs, repeats)
                    tt_active = time_torch_active(__file__, n, epochs, repeats, nt, *hidden)
                    tt = min(tt_passive, tt_active)
                    torch_notes.append(
                        f"# torch {hidden} {nt}T: passive OpenMP wait "
                        f"{tt_passive:.3f} s, active {tt_active:.3f} s"
                    )
                flops = matmul_flops(n, [784, *hidden, 10])
                rows.append((f"{hidden} f32", nt, me, sk, tt, flops / me / 1e9 / peak))
            if nt == max(threads):
                sk64 = time_estimator(lambda: SkMLP((256, 128), **common), X64, y, epochs, repeats)
                me64 = time_sknet(n, epochs, repeats, nt, "float64", (256, 128))
                rows.append(("(256, 128) f64", nt, me64, sk64, float("nan"), float("nan")))
        print(f"# float32 GEMM peak at {nt} thread(s): {peak:.0f} GFLOP/s")

    print("\n".join(torch_notes))
    print()
    print(
        "| job | threads | sknet s/epoch | sklearn s/epoch | torch s/epoch "
        "| sknet/sklearn | sknet/torch | sknet % of GEMM peak |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for job, nt, me, sk, tt, frac in rows:
        print(
            f"| {job} | {nt} | {me:.3f} | {sk:.3f} | {tt:.3f} | {me / sk:.2f} | "
            f"{me / tt:.2f} | {100 * frac:.0f}% |"
        )

    # inference throughput
    nt = max(threads)
    set_threads(nt)
    with threadpool_limits(nt):
        Xp = X32[:10_000]
        sk = SkMLP((256, 128), max_iter=1, **common).fit(X32[:2000], y[:2000])
        r_me = time_sknet(n, 0, 5, nt, "float32", (256, 128))  # in a fresh process
        r_sk = time_predict(sk, Xp, repeats=5)
    print()
    print(
        f"predict_proba (256,128), 10,000 x 784, {nt} threads: sknet {r_me:,.0f} samples/s, "
        f"sklearn {r_sk:,.0f} samples/s, ratio {r_me / r_sk:.2f}"
    )

    # start-up and compile
    print()
    for dtype in ("np.float32", "np.float64"):
        with tempfile.TemporaryDirectory() as cold:
            imp_c, fit_c = startup_times(dtype, cache_dir=cold)  # cold: empty cache
            imp_w, fit_w = startup_times(dtype, cache_dir=cold)  # warm: same cache again
        print(
            f"{dtype}: cold cache first fit {fit_c:.2f} s (compile); warm cache: import "
            f"{imp_w:.2f} s, import-to-end-of-first-fit {fit_w:.2f} s after import"
        )


if __name__ == "__main__":
    main()
