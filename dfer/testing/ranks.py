"""`torchrun --standalone --nproc_per_node N -m dfer ARGS` on this machine's CPU: how the tests launch the multi-process
paths (gloo), through the real launcher and command line, beside the same command run in one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dfer

REPO = Path(dfer.__file__).resolve().parents[1]


def torchrun(args: list[str], nproc: int = 2, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `dfer ARGS` on `nproc` local ranks; raise with their output if the job fails."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "dfer", *map(str, args)]
    # this checkout's dfer, not an installed one; one thread per rank (the ranks share the cores)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode:
        raise RuntimeError(f"torchrun dfer {' '.join(map(str, args))} failed ({done.returncode}):\n"
                           f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done
