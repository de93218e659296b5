"""Variable-length training speed: the cost follows the real steps, not the padding.

Job (the issue's): ``n`` univariate sequences with lengths drawn uniformly from 10 to
500, float32, one LSTM layer of 64 units and a linear head on each sequence's last real
state, squared error, Adam (rate 1e-3), mini-batches of 64, shuffled every epoch.
Seconds per epoch (median of the repeats), each configuration in a fresh process:

* ``sknet list``: ``RNNRegressor.fit`` on the list of sequences (padded and masked
  inside, batches bucketed by length);
* ``sknet padded``: the same network on the sequences zero-padded by hand to 500 steps
  (the fixed-length path: every batch runs 500 steps);
* ``torch packed``: a plain PyTorch loop over random batches, each padded to its longest
  and run through ``pack_padded_sequence(..., enforce_sorted=False)``;
* ``torch padded``: PyTorch on the batches padded to 500 steps, reading the state at
  each sequence's last real step;
* ``torch bucketed`` (one direction only): PyTorch without packing on batches sorted by
  length within pools of 50 batches (as sknet's) and padded to their longest, reading
  the state at each sequence's last real step: the cheapest correct PyTorch loop for a
  forward-only layer, not one of the issue's targets.

``--bidirectional`` makes the layer bidirectional in every configuration (PyTorch reads
both directions' final states, ``h_n``; padded to 500, its reverse direction starts on
the padding, which costs the same).

Every configuration runs with the environment this script was started with (no
``OMP_WAIT_POLICY`` of ours: sknet sets none, and PyTorch keeps its own default).

Printed: the seconds and the ratios measured in this one run (absolute seconds drift
between runs on a shared machine). ``real/padded steps`` is the ratio the cost should
follow.

Usage::

    python benchmarks/bench_varlen.py            # 2,000 sequences, 2 epochs x 3 repeats
    python benchmarks/bench_varlen.py --quick    # 600 sequences, 1 epoch x 2 repeats
"""

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

MAX_LEN = 500


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, MAX_LEN + 1, size=n)
    X = [rng.normal(size=(int(L), 1)).astype(np.float32) for L in lengths]
    y = np.array([x[:, 0].mean() * np.sqrt(len(x)) for x in X], dtype=np.float32)
    return X, y, lengths


def padded(X):
    out = np.zeros((len(X), MAX_LEN, 1), np.float32)
    for i, x in enumerate(X):
        out[i, : len(x)] = x
    return out


def time_sknet(X, y, epochs, repeats, pad, hidden, bidirectional=False):
    import scipy.linalg  # noqa: F401  (scipy's OpenBLAS first)

    from sknet import RNNRegressor

    def model(k):
        return RNNRegressor(
            cell="lstm",
            hidden_layer_sizes=(hidden,),
            bidirectional=bidirectional,
            batch_size=64,
            learning_rate_init=1e-3,
            alpha=0.0,
            clip_norm=None,
            max_iter=k,
            tol=0.0,
            n_iter_no_change=np.inf,
            random_state=0,
        )

    data = padded(X) if pad else X
    model(1).fit(data[:128], y[:128])  # warm up: load / compile the kernels
    times = []
    for _ in range(repeats):
        est = model(epochs)
        t = time.perf_counter()
        est.fit(data, y)
        times.append((time.perf_counter() - t) / epochs)
    return float(np.median(times))


def time_torch(
    X, y, lengths, epochs, repeats, pack, hidden, bidirectional=False, bucket=False, batch_size=64
):
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    full = torch.from_numpy(padded(X))
    yt = torch.from_numpy(y).reshape(-1, 1)
    Lt = torch.from_numpy(lengths.astype(np.int64))

    width = 2 * hidden if bidirectional else hidden

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(1, hidden, batch_first=True, bidirectional=bidirectional)
            self.head = torch.nn.Linear(width, 1)

        def forward(self, x, L):
            if pack:
                packed = pack_padded_sequence(x, L, batch_first=True, enforce_sorted=False)
                _, (h, _) = self.rnn(packed)
                return self.head(torch.cat(list(h), dim=1))
            out, _ = self.rnn(x)
            last = out[torch.arange(x.shape[0]), L - 1, :hidden]
            if bidirectional:
                last = torch.cat([last, out[:, 0, hidden:]], dim=1)
            return self.head(last)

    def run(n_epochs, n):
        torch.manual_seed(0)
        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.MSELoss()
        t = time.perf_counter()
        for _ in range(n_epochs):
            perm = torch.randperm(n)
            if bucket:  # sorted by length within pools of 50 batches, as sknet does
                pool = 50 * batch_size
                perm = torch.cat(
                    [c[torch.argsort(Lt[c], stable=True)] for c in perm[:n].split(pool)]
                )
            for s in range(0, n, batch_size):
                idx = perm[s : s + batch_size]
                L = Lt[idx]
                xb = full[idx, : int(L.max())] if pack or bucket else full[idx]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(xb, L), yt[idx]).backward()
                opt.step()
        return (time.perf_counter() - t) / n_epochs

    run(1, 128)
    return float(np.median([run(epochs, len(X)) for _ in range(repeats)]))


def worker(name, n, epochs, repeats, threads, hidden, bidirectional):
    import numba

    numba.set_num_threads(threads)
    X, y, lengths = make_data(n)
    if name.startswith("sknet"):
        return time_sknet(
            X,
            y,
            epochs,
            repeats,
            pad=name == "sknet padded",
            hidden=hidden,
            bidirectional=bidirectional,
        )
    import torch

    torch.set_num_threads(threads)
    return time_torch(
        X,
        y,
        lengths,
        epochs,
        repeats,
        pack=name == "torch packed",
        bucket=name == "torch bucketed",
        hidden=hidden,
        bidirectional=bidirectional,
    )


CONFIGS = ["sknet list", "sknet padded", "torch packed", "torch padded", "torch bucketed"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n, epochs, repeats = (600, 1, 2) if args.quick else (2000, 2, 3)
    if args.worker:
        seconds = worker(
            args.worker, n, epochs, repeats, args.threads, args.hidden, args.bidirectional
        )
        print(json.dumps(seconds))
        return
    _, _, lengths = make_data(n)
    print(
        f"{n} sequences, lengths 10..{MAX_LEN} (mean {lengths.mean():.0f}), "
        f"{'bidirectional ' if args.bidirectional else ''}LSTM "
        f"{args.hidden}, batch 64, {args.threads} thread(s), {epochs} epoch(s) x "
        f"{repeats} repeats, each configuration in a fresh process"
    )
    print(f"real/padded steps: {lengths.sum() / (n * MAX_LEN):.2f}")
    seconds = {}
    for name in CONFIGS:
        if name == "torch bucketed" and args.bidirectional:
            continue  # its reverse direction would start on each batch's padding
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--threads",
            str(args.threads),
            "--hidden",
            str(args.hidden),
        ]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--bidirectional"] if args.bidirectional else []
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(f"{name:14s} failed: {res.stderr.strip().splitlines()[-1]}")
            continue
        seconds[name] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{name:14s} {seconds[name]:8.3f} s/epoch")
    pairs = [
        ("sknet list", "sknet padded"),
        ("sknet list", "torch packed"),
        ("sknet padded", "torch padded"),
        ("torch packed", "torch padded"),
        ("sknet list", "torch bucketed"),
    ]
    for a, b in pairs:
        if a in seconds and b in seconds:
            print(f"{a} / {b}: {seconds[a] / seconds[b]:.2f}")


if __name__ == "__main__":
    main()
