"""ConvNet training speed: sknet against PyTorch CPU, and the kernels' compile time.

Every figure is measured in this one run, sknet and PyTorch alternating, and reported
as a ratio to the peer measured beside it (absolute seconds drift between runs on shared
machines). The machine's load average is printed at the start and the end.

Jobs (float32, Adam, batch 128, 10 classes, 10,000 images):

* LeNet-like, 1x28x28: conv 16@5x5 + relu + maxpool 2, conv 32@5x5 + relu + maxpool 2
  ('valid' padding), dense 128 relu, 10 outputs. Real MNIST (the t10k files) when
  ``SKNET_MNIST_DIR`` or ``/work/shared/data/mnist`` holds them, else random pixels of
  that shape (the speed does not depend on the pixel values).
* Digits, 1x8x8: conv 16@3x3 + relu + maxpool 2, conv 32@3x3 + relu + maxpool 2
  ('same' padding), dense 128 relu, 10 outputs; scikit-learn's 1,797 digits drawn with
  replacement to 10,000 images.

Both at 1 and 2 threads (numba's, BLAS's through threadpoolctl, and PyTorch's), plus
sknet with 2 numba threads and 1 BLAS thread. Also the share of the float32 GEMM peak
each reaches on the network's exact multiply-add count, and the cold compile time of
the convolution and pooling kernels per dtype (a fresh process with an empty
``NUMBA_CACHE_DIR``) next to the time to load them from a warm cache.

PyTorch is timed twice and its faster time is the peer's figure: in this process, where
OpenMP waits passively (as sknet set on import before 0.2), and in a fresh process with
``OMP_WAIT_POLICY=ACTIVE``, PyTorch's own default. Both are printed. sknet is timed in a
fresh process of its own (``--sknet-peer``) started with the environment this script was
started with: passive waiting makes every one of sknet's parallel regions wake its
threads, which a user's process does not pay (``OMP_WAIT_POLICY`` unset).

Usage::

    python benchmarks/bench_convnet.py            # full run (a few minutes)
    python benchmarks/bench_convnet.py --quick    # fewer repeats
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
from _peers import peer_numbers, time_torch_active
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from sknet import ConvNetClassifier

MNIST_DIRS = [os.environ.get("SKNET_MNIST_DIR"), "/work/shared/data/mnist"]
N_IMAGES = 10_000
BATCH = 128

# (name, input (C, H, W), conv_filters, kernel_size, padding, dense)
JOBS = [
    ("LeNet-like 1x28x28", (1, 28, 28), (16, 32), 5, "valid", 128),
    ("digits 1x8x8", (1, 8, 8), (16, 32), 3, "same", 128),
]


# ------------------------------------------------------------------ data
def load_images(shape, rng):
    """(X, y, source): 10,000 float32 images of ``shape`` and their labels."""
    if shape == (1, 28, 28):
        from sknet.datasets import load_mnist

        for directory in MNIST_DIRS:
            if directory and os.path.isdir(directory):
                try:
                    X, y = load_mnist(directory, kind="t10k")
                except (FileNotFoundError, ValueError):
                    continue
                return X[:N_IMAGES].reshape(-1, *shape), y[:N_IMAGES], f"MNIST t10k ({directory})"
        X = rng.random((N_IMAGES,) + shape, dtype=np.float32)
        return X, rng.integers(0, 10, N_IMAGES), "random pixels (no MNIST files found)"
    X, y = load_digits(return_X_y=True)
    idx = rng.integers(0, len(y), N_IMAGES)
    return (X[idx] / 16.0).astype(np.float32).reshape(-1, *shape), y[idx], "sklearn digits"


# ------------------------------------------------------------------ FLOPs and peak
def conv_flops(shape, filters, k, padding, dense, n_out=10):
    """Multiply-add FLOPs of one training epoch over N_IMAGES: forward, weight gradients,
    and input gradients of every layer but the first (2 FLOPs per multiply-add)."""
    C, H, W = shape
    fwd = []
    for f in filters:
        pad = (k - 1) // 2 if padding == "same" else 0
        H, W = H + 2 * pad - k + 1, W + 2 * pad - k + 1
        fwd.append(2 * f * C * k * k * H * W)
        C = f
        H, W = H // 2, W // 2
    sizes = [C * H * W, dense, n_out]
    fwd += [2 * a * b for a, b in zip(sizes[:-1], sizes[1:])]
    dx = fwd[1:]  # every layer but the first
    return N_IMAGES * (2 * sum(fwd) + sum(dx))


def gemm_peak(n=2048, repeats=5):
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.dot(a, b, out=c)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.dot(a, b, out=c)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / np.median(times) / 1e9


# ------------------------------------------------------------------ the two trainers
def sknet_runner(X, y, job):
    _, shape, filters, k, padding, dense = job

    def make(epochs):
        return ConvNetClassifier(
            conv_filters=filters,
            kernel_size=k,
            padding=padding,
            pool_size=2,
            hidden_layer_sizes=(dense,),
            batch_size=BATCH,
            learning_rate_init=1e-3,
            max_iter=epochs,
            tol=0.0,
            n_iter_no_change=10**6,
            random_state=0,
        )

    make(1).fit(X[:500], y[:500])  # compile or load the kernels

    def run(epochs):
        est = make(epochs)
        t = time.perf_counter()
        est.fit(X, y)
        return (time.perf_counter() - t) / epochs

    return run


def torch_runner(X, y, job, alpha=1e-4):
    _, shape, filters, k, padding, dense = job
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.astype(np.int64))
    nn = torch.nn

    def build():
        torch.manual_seed(0)
        layers, C = [], shape[0]
        for f in filters:
            layers += [nn.Conv2d(C, f, k, padding=padding), nn.ReLU(), nn.MaxPool2d(2)]
            C = f
        layers.append(nn.Flatten())
        with torch.no_grad():
            n_flat = nn.Sequential(*layers)(torch.zeros((1,) + shape)).shape[1]
        layers += [nn.Linear(n_flat, dense), nn.ReLU(), nn.Linear(dense, 10)]
        return nn.Sequential(*layers)

    def run(epochs):
        model = build()
        # L2 on the weights with scikit-learn's scaling alpha / batch, as weight decay
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=alpha / BATCH)
        loss_fn = nn.CrossEntropyLoss()
        n = Xt.shape[0]
        t = time.perf_counter()
        for _ in range(epochs):
            perm = torch.randperm(n)
            for s in range(0, n, BATCH):
                idx = perm[s : s + BATCH]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
        return (time.perf_counter() - t) / epochs

    run(1)  # warm up
    return run


def measure(X, y, job, numba_threads, blas_threads, torch_threads, epochs, repeats):
    """Median seconds per epoch of sknet (a fresh ``--sknet-peer`` process) and of
    PyTorch (this process), runs alternating."""
    if torch is not None:
        torch.set_num_threads(torch_threads)
    me, tt = [], []
    with threadpool_limits(torch_threads):
        tt_run = torch_runner(X, y, job) if torch is not None else None
        for _ in range(repeats):
            spec = (JOBS.index(job), numba_threads, blas_threads, epochs, 1)
            me.append(peer_numbers(__file__, "--sknet-peer", spec, _START_ENV)[0])
            if tt_run is not None:
                tt.append(tt_run(epochs))
    return float(np.median(me)), float(np.median(tt)) if tt else float("nan")


def _peer_data(job_index):
    """The images and labels of job ``job_index``, the same draws as the main process."""
    rng = np.random.default_rng(0)
    data = [load_images(job[1], rng) for job in JOBS]
    return data[job_index][:2]


def sknet_peer_main(spec):
    """Entry point of the ``--sknet-peer`` subprocess: print sknet's seconds per epoch
    (median of ``repeats`` fits after a warm-up)."""
    job_index, numba_threads, blas_threads, epochs, repeats = (int(v) for v in spec.split(","))
    X, y = _peer_data(job_index)
    numba.set_num_threads(numba_threads)
    with threadpool_limits(blas_threads):
        run = sknet_runner(X, y, JOBS[job_index])
        print(float(np.median([run(epochs) for _ in range(repeats)])))


def torch_peer_main(spec):
    """Entry point of the ``--torch-peer`` subprocess: print seconds per epoch."""
    job_index, torch_threads, epochs, repeats = (int(v) for v in spec.split(","))
    X, y = _peer_data(job_index)
    torch.set_num_threads(torch_threads)
    with threadpool_limits(torch_threads):
        run = torch_runner(X, y, JOBS[job_index])
        print(float(np.median([run(epochs) for _ in range(repeats)])))


# ------------------------------------------------------------------ compile time
COMPILE_SNIPPET = textwrap.dedent("""
    import time, warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    t0 = time.perf_counter()
    from sknet import MLPClassifier
    from sknet._layers import Dense, Flatten
    from sknet._layers.conv import Conv, Pool
    from sknet._network import Network
    t1 = time.perf_counter()
    dtype = np.{dtype}
    rng = np.random.default_rng(0)
    # the dense, activation, loss and optimizer kernels first, so that what follows
    # times the convolution and pooling kernels alone
    MLPClassifier(hidden_layer_sizes=(8,), max_iter=2).fit(
        rng.random((64, 5)).astype(dtype), rng.integers(0, 3, 64))
    t2 = time.perf_counter()
    times = []
    for ndim, shape in ((2, (2, 12, 12)), (1, (2, 24))):
        t = time.perf_counter()
        net = Network([Conv(3, 3, 1, "same", "relu", ndim), Pool("max", 2, ndim),
                       Conv(3, 3, 2, "valid", "relu", ndim), Pool("avg", 2, ndim), Flatten(),
                       Dense(3)], "log_loss").build(shape, dtype)
        net.init_params(np.random.RandomState(0))
        X = rng.random((4,) + shape).astype(dtype)
        net.loss_and_grad(X, np.eye(3, dtype=dtype)[[0, 1, 2, 0]], None, 0.0)
        times.append(time.perf_counter() - t)
    print(t1 - t0, t2 - t1, *times)
""")


def compile_times(dtype, cache_dir):
    """Seconds in a fresh process: import, dense kernels (a tiny MLP fit), then the 2-D
    and the 1-D convolution + max / avg pooling kernels, forward and backward."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", COMPILE_SNIPPET.format(dtype=dtype)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return [float(v) for v in out.split()]


def load():
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and repeats")
    parser.add_argument("--jobs", default="lenet,digits", help="'lenet', 'digits' or both")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile timing")
    parser.add_argument("--torch-peer", help=argparse.SUPPRESS)
    parser.add_argument("--sknet-peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_peer:
        return torch_peer_main(args.torch_peer)
    if args.sknet_peer:
        return sknet_peer_main(args.sknet_peer)
    epochs, repeats = (1, 3) if args.quick else (2, 3)
    jobs = [j for j, key in zip(JOBS, ("lenet", "digits")) if key in args.jobs]
    n_cpu = len(os.sched_getaffinity(0))
    pool = numba.config.NUMBA_NUM_THREADS
    # (label, numba threads, BLAS threads, torch threads)
    configs = [("1", 1, 1, 1)]
    if pool >= 2 and n_cpu >= 2:
        configs += [("2", 2, 2, 2), ("2 (sknet BLAS 1)", 2, 1, 2)]

    print(f"# sknet ConvNet benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {n_cpu} cores, {load()}")
    print(
        f"# float32, Adam, batch {BATCH}, {N_IMAGES} images; median of {repeats} runs of "
        f"{epochs} epoch(s), sknet (fresh processes, OMP_WAIT_POLICY as started) and torch "
        "alternating"
    )
    print(
        f"# torch: {torch.__version__ if torch is not None else 'not installed'}, "
        f"numba {numba.__version__}"
    )
    rng = np.random.default_rng(0)
    data = {}
    for job in JOBS:  # all, in order, so that the --torch-peer process draws the same
        data[job[0]] = load_images(job[1], rng)
    for job in jobs:
        print(f"# {job[0]}: {data[job[0]][2]}", flush=True)
    peaks = {}
    rows = []
    for label, nt_numba, nt_blas, nt_torch in configs:
        with threadpool_limits(nt_torch):
            peaks.setdefault(nt_torch, gemm_peak())
        for job in jobs:
            X, y, _ = data[job[0]]
            me, tt = measure(X, y, job, nt_numba, nt_blas, nt_torch, epochs, repeats)
            tt_active = (
                time_torch_active(__file__, JOBS.index(job), nt_torch, epochs, repeats)
                if torch is not None
                else float("nan")
            )
            gflop = conv_flops(*job[1:]) / 1e9
            rows.append((job[0], label, me, min(tt, tt_active), gflop, peaks[nt_torch]))
            print(
                f"# measured {job[0]}, threads {label}: sknet {me:.3f} s, torch {tt:.3f} s "
                f"(passive OpenMP wait), {tt_active:.3f} s (active) per epoch ({load()})",
                flush=True,
            )
    for nt, peak in peaks.items():
        print(f"# float32 GEMM peak (numpy, 2048^2) at {nt} thread(s): {peak:.0f} GFLOP/s")

    print()
    print(
        "| network | threads | sknet s/epoch | torch s/epoch | sknet/torch "
        "| sknet % of peak | torch % of peak |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, label, me, tt, gflop, peak in rows:
        print(
            f"| {name} | {label} | {me:.3f} | {tt:.3f} | {me / tt:.2f} | "
            f"{100 * gflop / me / peak:.1f}% | {100 * gflop / tt / peak:.1f}% |"
        )
    print(
        "\n(GFLOP per epoch: "
        + ", ".join(f"{job[0]} {conv_flops(*job[1:]) / 1e9:.1f}" for job in jobs)
        + ")"
    )

    if not args.no_compile:
        print()
        print(
            "| dtype | numba cache | import s | dense kernels (tiny MLP fit) s "
            "| 2-D conv + pool kernels s | 1-D conv + pool kernels s |"
        )
        print("|---|---|---|---|---|---|")
        for dtype in ("float32", "float64"):
            with tempfile.TemporaryDirectory() as cache_dir:
                for cache in ("cold (empty)", "warm"):
                    imp, dense, k2, k1 = compile_times(dtype, cache_dir)
                    print(f"| {dtype} | {cache} | {imp:.2f} | {dense:.2f} | {k2:.2f} | {k1:.2f} |")
    print(f"\n# end: {load()}")


if __name__ == "__main__":
    main()
