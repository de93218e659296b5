"""Recurrent training speed: sknet's RNNRegressor against PyTorch CPU's nn.RNN / LSTM / GRU.

Every figure is measured in this one run, back to back, and reported as a ratio to the
PyTorch loop timed beside it (absolute seconds drift between runs on shared machines).

Job (the issue's): 20,000 sequences of 50 steps of 1 feature, float32, a recurrent layer
of 32 or 128 units and a linear head on its last state, squared error, Adam (rate 1e-3),
mini-batches of 64, shuffled every epoch. sknet trains with ``RNNRegressor.fit`` and
``max_iter=k`` (``tol=0`` and ``n_iter_no_change`` infinite, so exactly k epochs; no L2
penalty and no gradient clipping, as in the PyTorch loop); PyTorch with a plain loop
(``randperm``, ``zero_grad``, ``backward``, ``step``). Seconds per epoch are the median of
the repeats, at 1 and 2 threads (numba's threads and PyTorch's intra-op threads; the BLAS
limit of threadpoolctl too, though RNNRegressor runs BLAS single-threaded inside its
passes: its dense output layer calls BLAS from numba's threads; the recurrent kernels
run products of their own).

OpenMP: PyTorch is timed twice and its faster time is the peer's figure: in this process
with passive waiting (``OMP_WAIT_POLICY=PASSIVE``, set here before PyTorch loads its
OpenMP runtime), and in a fresh process with ``OMP_WAIT_POLICY=ACTIVE``, PyTorch's own
default. (On a shared, loaded machine active spin-waiting made PyTorch's 2-thread epochs
10-17x slower in a probe; on a quiet one it can be faster.) Both are printed. sknet is
timed in a fresh process of its own (``--sknet-peer``) with the environment this script
was started with (sknet itself sets no OpenMP setting); each such process loads its
kernels from numba's disk cache in a warm-up fit first.

Then the cold compile time of the recurrent kernels per dtype: a fresh interpreter with
an empty ``NUMBA_CACHE_DIR`` runs one forward and one backward pass of a ``Recurrent``
layer per cell (only the recurrent kernels compile), timed per cell.

Usage::

    python benchmarks/bench_rnn.py            # full run (about 10 minutes)
    python benchmarks/bench_rnn.py --quick    # 4,000 sequences, 1 epoch per repeat
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

# the environment as started, for the --sknet-peer subprocesses
_START_ENV = dict(os.environ)
if "--sknet-peer" not in sys.argv:  # the sknet peer keeps the environment as started
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch / numba load OpenMP

import numpy as np

warnings.filterwarnings("ignore")

try:
    import torch
except ImportError:  # torch is an optional peer
    torch = None

import numba
import scipy.linalg  # noqa: F401  (load scipy's OpenBLAS before limiting threads)
from _peers import run_peer, time_torch_active
from threadpoolctl import threadpool_limits

from sknet import RNNRegressor

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
# the targets for sknet / PyTorch seconds per epoch
TARGETS = {("lstm", 32): 1.0, ("gru", 32): 0.5, ("rnn", 32): 0.5, ("lstm", 128): 1.3}


def make_data(n, n_steps=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_steps, 1)).astype(np.float32)
    # a target that needs memory: a weighted sum of the sequence
    w = np.linspace(1.0, 0.0, n_steps, dtype=np.float32)
    y = (X[:, :, 0] @ w / np.sqrt(n_steps)).astype(np.float32)
    return X, y


def sknet_model(cell, hidden, epochs):
    return RNNRegressor(
        cell=cell,
        hidden_layer_sizes=(hidden,),
        batch_size=64,
        learning_rate_init=1e-3,
        alpha=0.0,
        clip_norm=None,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=np.inf,
        shuffle=True,
        random_state=0,
    )


def time_sknet(cell, hidden, X, y, epochs, repeats):
    """Median seconds per epoch of ``RNNRegressor.fit`` with exactly ``epochs`` epochs."""
    sknet_model(cell, hidden, 1).fit(X[:640], y[:640])  # warm up: load / compile kernels
    per_epoch = []
    for _ in range(repeats):
        est = sknet_model(cell, hidden, epochs)
        t = time.perf_counter()
        est.fit(X, y)
        per_epoch.append((time.perf_counter() - t) / epochs)
        assert est.n_iter_ == epochs
    return float(np.median(per_epoch))


def time_torch(cell, hidden, X, y, epochs, repeats, batch_size=64, lr=1e-3):
    """Median seconds per epoch of the same network trained by a plain PyTorch loop."""
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y).reshape(-1, 1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, CELLS[cell])(1, hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    def one_run(n_epochs, n):
        torch.manual_seed(0)
        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.MSELoss()
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

    one_run(1, 640)  # warm up
    return float(np.median([one_run(epochs, len(X)) for _ in range(repeats)]))


def peer_main(spec, timer):
    """Entry point of the ``--sknet-peer`` / ``--torch-peer`` subprocesses: print the
    seconds per epoch ``timer`` (``time_sknet`` or ``time_torch``) measures."""
    cell, *rest = spec.split(",")
    hidden, n, epochs, repeats, n_threads = (int(v) for v in rest)
    X, y = make_data(n)
    set_threads(n_threads)
    with threadpool_limits(n_threads):
        print(timer(cell, hidden, X, y, epochs, repeats))


def set_threads(n):
    numba.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


COMPILE_SNIPPET = textwrap.dedent("""
    import time
    import numpy as np
    from sknet._layers import Recurrent
    out = []
    rng = np.random.RandomState(0)
    for cell in ("rnn", "lstm", "gru"):
        layer = Recurrent(cell, 4)
        layer.build((5, 2), np.{dtype})
        params = {{name: np.zeros(shape, np.{dtype}) for name, shape, _ in layer.param_specs()}}
        grads = {{name: np.zeros(shape, np.{dtype}) for name, shape, _ in layer.param_specs()}}
        layer.init_params(params, rng)
        X = rng.normal(size=(3, 5, 2)).astype(np.{dtype})
        ctx = {{}}
        t = time.perf_counter()
        Y = layer.forward(X, params, ctx, True, None)
        layer.backward(np.ones_like(Y), params, grads, ctx, True)
        out.append(time.perf_counter() - t)
    print(*out)
""")


def compile_times(dtype):
    """Seconds to compile (forward + backward) per cell in a fresh process, empty cache."""
    with tempfile.TemporaryDirectory() as cold:
        env = {**os.environ, "NUMBA_CACHE_DIR": cold}
        res = subprocess.run(
            [sys.executable, "-c", COMPILE_SNIPPET.format(dtype=dtype)],
            capture_output=True,
            text=True,
            env=env,
        )
    if res.returncode:
        raise RuntimeError(res.stderr)
    return [float(v) for v in res.stdout.split()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="4,000 sequences and 1 epoch per repeat"
    )
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. '2' or '1,2'")
    parser.add_argument("--hidden", default="32,128", help="hidden sizes, e.g. '32'")
    parser.add_argument("--cells", default="lstm,gru,rnn", help="cells, e.g. 'lstm'")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the compile timing")
    parser.add_argument("--torch-peer", help=argparse.SUPPRESS)
    parser.add_argument("--sknet-peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_peer:
        return peer_main(args.torch_peer, time_torch)
    if args.sknet_peer:
        return peer_main(args.sknet_peer, time_sknet)
    n = 4_000 if args.quick else 20_000
    epochs = 1 if args.quick else 2
    threads = [int(t) for t in args.threads.split(",")]
    hiddens = [int(h) for h in args.hidden.split(",")]
    cells = args.cells.split(",")

    X, y = make_data(n)
    print(
        f"# sknet RNN benchmark: {n} sequences x 50 steps x 1 feature, float32, batch 64, "
        f"adam; median of {args.repeats} runs of {epochs} epoch(s)"
    )
    print(
        f"# torch: {torch.__version__ if torch is not None else 'not installed (skipped)'}; "
        f"numba {numba.__version__}; numba threading layer after the run is printed below"
    )
    print(
        f"# OMP_WAIT_POLICY: {os.environ['OMP_WAIT_POLICY']} for PyTorch in this process, "
        f"{_START_ENV.get('OMP_WAIT_POLICY', 'unset')} for sknet (as started)"
    )
    print(
        f"# load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
        f"on {os.cpu_count()} cores"
    )
    rows = []
    for nt in threads:
        set_threads(nt)
        with threadpool_limits(nt):
            for hidden in hiddens:
                for cell in cells:
                    spec = (cell, hidden, n, epochs, args.repeats, nt)
                    me = run_peer(__file__, "--sknet-peer", spec, _START_ENV)
                    tt = tt_active = float("nan")
                    if torch is not None:
                        tt = time_torch(cell, hidden, X, y, epochs, args.repeats)
                        tt_active = time_torch_active(
                            __file__, cell, hidden, n, epochs, args.repeats, nt
                        )
                    rows.append((cell, hidden, nt, me, min(tt, tt_active)))
                    print(
                        f"#   {cell} H={hidden} {nt}T: sknet {me:.3f} s, torch {tt:.3f} s "
                        f"(passive OpenMP wait), {tt_active:.3f} s (active)",
                        flush=True,
                    )
    print(
        f"# load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
        f"numba threading layer: {numba.threading_layer()}"
    )

    print()
    print("| cell | hidden | threads | sknet s/epoch | torch s/epoch | sknet/torch | target |")
    print("|---|---|---|---|---|---|---|")
    for cell, hidden, nt, me, tt in rows:
        target = TARGETS.get((cell, hidden))
        ratio = me / tt
        verdict = (
            ""
            if target is None or torch is None
            else f"<= {target} {'met' if ratio <= target else 'NOT met'}"
        )
        print(
            f"| {CELLS[cell]} | {hidden} | {nt} | {me:.3f} | {tt:.3f} | {ratio:.2f} | {verdict} |"
        )

    if not args.no_compile:
        print()
        print("| dtype | cold compile, Elman RNN | LSTM | GRU | all three |")
        print("|---|---|---|---|---|")
        for dtype in ("float32", "float64"):
            times = compile_times(dtype)
            print(
                f"| {dtype} | {times[0]:.1f} s | {times[1]:.1f} s | {times[2]:.1f} s | "
                f"{sum(times):.1f} s |"
            )


if __name__ == "__main__":
    main()
