"""The training loop's cost of tracking, in CPU instructions instead of seconds.

Wall-clock ratios on a shared 2-vCPU machine drown a 1 % effect in 20-40 % noise
(bench_loop.py). Instruction counts are repeatable: each variant runs under valgrind's
callgrind, which counts every instruction the kernel process executes (the training loop, the
sender thread, nbtrack.log), while the sync process, a child, runs natively and is not
counted: it is the upload's own CPU, on another core, that bench_loop.py and bench_drain.py
measure.

Per variant two runs, with 0 and with N steps, so that start-up (imports, MLflow's warm-up,
creating the run) cancels out: instructions per step = (I(N) - I(0)) / N.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_loop_instructions.py [--steps 200]

Takes ~10 minutes: under callgrind a torch training step runs several hundred times slower.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LOOP = """
for step in range(STEPS):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    LOG
"""
SETUP = """
import torch
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(
    torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
    torch.nn.Linear(256, 10),
)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))
"""


def child(variant: str, steps: int) -> None:
    """One measured process: an IPython shell with nbtrack loaded runs the loop."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell: Any = InteractiveShell.instance()
    with capture_output():
        # Untracked means without nbtrack at all: loading it starts a background warm-up
        # (MLflow's import) whose instructions would land in a run or not depending on timing.
        setup = ["%load_ext nbtrack", SETUP] if variant == "tracked" else [SETUP]
        for cell in setup:
            assert shell.run_cell(cell).success
        if variant == "tracked":
            log = "nbtrack.log(loss=loss, acc=0.5, lr=0.01)"
            cell = "%%track -e instructions\n" + LOOP.replace("LOG", log)
        else:
            cell = LOOP.replace("LOG", "pass")
        result = shell.run_cell(cell.replace("STEPS", str(steps)))
    assert result.success, result.error_in_exec


def count(variant: str, steps: int, parent: Path) -> int:
    # A fresh store per run: creating MLflow's tables costs billions of instructions, and only
    # the first run in a folder would pay them.
    folder = Path(tempfile.mkdtemp(dir=parent))
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "NBTRACK_SPOOL_DIR": str(folder / "spool"),
        "NBTRACK_LIVE_PLOT": "0",
        "IPYTHONDIR": str(folder / "ipython"),
        # The kernel must not spend instructions waiting for the upload at cell end or exit.
        "NBTRACK_END_WAIT": "0",
        "NBTRACK_EXIT_WAIT": "0",
        "PYTHONHASHSEED": "0",
    }
    out = folder / f"callgrind-{variant}-{steps}.out"
    done = subprocess.run(  # noqa: S603 - our own script under valgrind, no shell
        [  # noqa: S607 - valgrind as found on PATH
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--child", variant, "--steps", str(steps),
        ],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise RuntimeError(done.stderr[-2000:])
    return int(match.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--child", choices=["tracked", "untracked"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install -y valgrind")
    folder = Path(tempfile.mkdtemp(prefix="nbtrack-instructions-"))
    try:
        per_step = {}
        for variant in ("untracked", "tracked"):
            base = count(variant, 0, folder)
            full = count(variant, args.steps, folder)
            per_step[variant] = (full - base) / args.steps
            print(f"{variant:>9}: {per_step[variant]:,.0f} instructions per step "
                  f"(I(0) = {base:,}, I({args.steps}) = {full:,})")  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    extra = per_step["tracked"] - per_step["untracked"]
    print(
        f"\ntracking adds {extra:,.0f} instructions per step (3 metrics, loss a tensor): "
        f"{100 * extra / per_step['untracked']:+.2f} % of the step  (target < 1 %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
