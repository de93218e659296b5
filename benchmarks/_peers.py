"""Helpers shared by the benchmark scripts (not part of sknet)."""

import os
import subprocess
import sys


def peer_numbers(script, flag, spec, env):
    """The numbers ``python script flag spec`` prints, run in a fresh process with the
    environment ``env``."""
    out = subprocess.run(
        [sys.executable, script, flag, ",".join(str(v) for v in spec)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [float(v) for v in out.split()]


def run_peer(script, flag, spec, env):
    """Seconds per epoch from ``python script flag spec`` in a fresh process with the
    environment ``env``; the script prints the time last."""
    return peer_numbers(script, flag, spec, env)[-1]


def time_torch_active(script, *spec):
    """Seconds per epoch from ``python script --torch-peer spec`` run in a fresh process
    with ``OMP_WAIT_POLICY=ACTIVE``, PyTorch's own OpenMP default (the calling process
    waits passively). The script prints the time last."""
    return run_peer(script, "--torch-peer", spec, dict(os.environ, OMP_WAIT_POLICY="ACTIVE"))
