"""nbtrack's kernel side on a GPU machine that has PyTorch but no MLflow: the training loop never
waits for the device, and the journal it writes there is replayed into MLflow elsewhere.

    # on the GPU machine (python3 with a CUDA torch and nvidia-ml-py; nothing else needed):
    PYTHONPATH=. python3 benchmarks/gpu_journal_check.py --out OUT_FOLDER
    # then here, with the journal it left in OUT_FOLDER/journal.tar:
    PYTHONPATH=. .venv/bin/python benchmarks/gpu_journal_check.py --replay OUT_FOLDER

On the GPU machine it checks, and writes to ``OUT_FOLDER/gpu.json`` with the journal as
``journal.tar``:

1. a CUDA training loop (AdamW on an MLP, a few ms a step) with ``nbtrack.watch`` and
   ``nbtrack.log`` of the CUDA loss every step, in both call forms, runs under
   ``torch.cuda.set_sync_debug_mode("error")``, which raises at any call that waits for the
   device: nbtrack's calls must never do that (the sender, which reads the tensors, is drained
   after the loop, as it would be 0.5 s later in a kernel);
2. the values the sender read are the losses the loop computed (kept on the device, compared
   after the loop);
3. what one ``nbtrack.log`` of a CUDA tensor costs the loop's thread, timed around the call,
   against the floor of appending a timestamped dict of the detached tensor to a list;
4. NVML's energy counter as nbtrack reads it (``EnergyMeter``) over a few seconds of matrix
   products, against NVML's power readings times the time.

With ``--replay`` it uploads that journal with ``nbtrack sync`` into a SQLite store at the same
path the GPU machine named (``/tmp/nbtrack-gpu-check/mlflow.db``, created here) and checks that
every point is in MLflow: the loss history, the norms, the params.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

# A fixed path on both machines: the journal names its store by it.
STORE_FOLDER = Path("/tmp/nbtrack-gpu-check")  # noqa: S108 - a scratch folder of this check
STORE_URI = f"sqlite:///{STORE_FOLDER / 'mlflow.db'}"
SPOOL = STORE_FOLDER / "spool"


def _loop(torch: Any, nbtrack: Any, device: str, steps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    width = 4096 if device == "cuda" else 64
    model = torch.nn.Sequential(
        torch.nn.Linear(1024, width), torch.nn.GELU(), torch.nn.Linear(width, width),
        torch.nn.GELU(), torch.nn.Linear(width, 10),
    ).to(device)  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = 512 if device == "cuda" else 16
    x = torch.randn(batch, 1024, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    nbtrack.watch(model, optimizer, every=50)
    losses = []
    log_ns: list[int] = []
    floor_ns: list[int] = []
    kept: list[Any] = []
    clock = time.perf_counter_ns
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    waited = None
    started = time.monotonic()
    try:
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            # Alternate the two forms of the call and the floor, timed around themselves.
            if step % 3 == 0:
                t = clock()
                nbtrack.log(loss=loss)
                log_ns.append(clock() - t)
            elif step % 3 == 1:
                t = clock()
                nbtrack.log({"loss": loss})
                log_ns.append(clock() - t)
            else:
                nbtrack.log(loss=loss)  # every step logs; this one is not timed
                t = clock()
                kept.append((None, time.time(), {"loss": loss.detach()}))
                floor_ns.append(clock() - t)
    except RuntimeError as error:  # set_sync_debug_mode("error") raised: something waited
        waited = str(error)
    finally:
        if device == "cuda":
            torch.cuda.set_sync_debug_mode(0)
            torch.cuda.synchronize()
    seconds = time.monotonic() - started
    log_ns.sort()
    floor_ns.sort()
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "steps": len(losses),
        "ms_per_step": 1000 * seconds / max(1, len(losses)),
        "waited_for_the_device": waited,
        "log_us_median": log_ns[len(log_ns) // 2] / 1000 if log_ns else None,
        "floor_us_median": floor_ns[len(floor_ns) // 2] / 1000 if floor_ns else None,
        "losses": torch.stack(losses).double().cpu().tolist() if losses else [],
    }


def _energy(torch: Any, device: str, seconds: float) -> dict[str, Any]:
    """NVML's energy counter (through nbtrack) against power readings times time."""
    from nbtrack.journal.system import EnergyMeter

    if device != "cuda":
        return {"skipped": "no GPU"}
    import pynvml

    meter = EnergyMeter()
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    powers = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for _ in range(20):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
        powers.append(pynvml.nvmlDeviceGetPowerUsage(handle) / 1000)  # mW -> W
    elapsed = time.monotonic() - started
    joules = meter.joules()
    estimate = sum(powers) / len(powers) * elapsed
    return {
        "seconds": elapsed,
        "nbtrack_joules": joules,
        "mean_power_w": sum(powers) / len(powers),
        "power_times_time_j": estimate,
        "ratio": joules.get(0, 0.0) / estimate if estimate else None,
    }


def run_on_the_gpu_machine(out: Path, steps: int) -> int:
    import torch

    os.environ["NBTRACK_SPOOL_DIR"] = str(SPOOL)
    os.environ["NBTRACK_STATE_DIR"] = str(STORE_FOLDER / "state")
    os.environ["NBTRACK_SYSTEM_METRICS"] = "0"  # MLflow's monitor needs MLflow: not here
    shutil.rmtree(STORE_FOLDER, ignore_errors=True)
    STORE_FOLDER.mkdir(parents=True)
    import nbtrack
    from nbtrack import _registry, _sender
    from nbtrack._buffer import Buffer
    from nbtrack._model import Run, Status
    from nbtrack._registry import TrackedRun
    from nbtrack.journal.session import session_for
    from nbtrack.journal.writer import Journal

    device = "cuda" if torch.cuda.is_available() else "cpu"
    run = Run("gpu-check", "gpu-check", STORE_URI)
    run.add_params({"device": device, "steps": str(steps)})
    session = session_for(STORE_URI)  # its sync process finds no MLflow here and waits
    tracked = TrackedRun(run=run, buffer=Buffer(), journal=Journal(session, run))
    tracked.buffer.pending.append(("params", dict(run.params)))
    _registry.activate(tracked)
    try:
        result = _loop(torch, nbtrack, device, steps)
    finally:
        _registry.deactivate(tracked)
    for callback in reversed(getattr(tracked, "at_end", [])):  # watch's hooks come off
        callback()
    _sender.drain(tracked)  # reads the CUDA tensors, off the loop
    curve = run.curves["loss"]
    _, logged = curve.points()
    result["logged_equals_computed"] = [round(v, 6) for v in logged.tolist()] == [
        round(v, 6) for v in result.pop("losses")
    ]
    result["norms_logged"] = sorted(k for k in run.curves if "norm" in k)
    run.status = Status.FINISHED
    run.end_time_ms = int(time.time() * 1000)
    tracked.journal.end(run)
    result["energy"] = _energy(torch, device, 5.0)
    if session.worker_pid is not None:
        os.kill(session.worker_pid, 9)
    # The journal goes elsewhere to be uploaded from its first line: no progress a sync
    # process may have made here (on a machine with MLflow) travels with it.
    for state in SPOOL.glob("*/*.state"):
        state.unlink()
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "journal.tar", "w") as archive:
        archive.add(SPOOL, arcname="spool")
    (out / "gpu.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = result["waited_for_the_device"] is None and result["logged_equals_computed"]
    return 0 if ok else 1


def replay_here(folder: Path) -> int:
    shutil.rmtree(STORE_FOLDER, ignore_errors=True)
    STORE_FOLDER.mkdir(parents=True)
    with tarfile.open(folder / "journal.tar") as archive:
        archive.extractall(STORE_FOLDER, filter="tar")
    env = {**os.environ, "MLFLOW_TRACKING_URI": STORE_URI, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(  # noqa: S603 - this very nbtrack, no shell
        [sys.executable, "-m", "nbtrack", "sync", "--spool-dir", str(SPOOL)],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    print(done.stdout + done.stderr)
    from mlflow import MlflowClient

    gpu = json.loads((folder / "gpu.json").read_text())
    client = MlflowClient(STORE_URI)
    (run,) = client.search_runs([client.get_experiment_by_name("gpu-check").experiment_id])
    history = client.get_metric_history(run.info.run_id, "loss")
    norms = sorted(k for k in run.data.metrics if "norm" in k)
    report = {
        "status": run.info.status,
        "loss_points": len(history),
        "steps_on_the_gpu": gpu["steps"],
        "norms": norms,
        "params": run.data.params,
    }
    print(json.dumps(report, indent=2))
    ok = (
        done.returncode == 0
        and run.info.status == "FINISHED"
        and len(history) == gpu["steps"]
        and norms == gpu["norms_logged"]
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="on the GPU machine: where to write results")
    parser.add_argument("--replay", type=Path, help="here: a folder the GPU machine wrote")
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    if args.replay is not None:
        return replay_here(args.replay)
    if args.out is None:
        parser.error("give --out (on the GPU machine) or --replay (here)")
    return run_on_the_gpu_machine(args.out, args.steps)


if __name__ == "__main__":
    threading.current_thread().name = "gpu-journal-check"
    sys.exit(main())
