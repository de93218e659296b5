"""Helpers shared by the benchmark scripts (not part of sknet)."""

import os
import subprocess
import sys


def time_torch_active(script, *spec):
    """Seconds per epoch from ``python script --torch-peer spec`` run in a fresh process
    with ``OMP_WAIT_POLICY=ACTIVE``, PyTorch's own OpenMP default (the calling process
    waits passively, as sknet sets on import). The script prints the time last."""
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE")
    out = subprocess.run(
        [sys.executable, script, "--torch-peer", ",".join(str(v) for v in spec)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.split()[-1])
