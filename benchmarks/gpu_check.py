"""The GPU path end to end, on a machine with an NVIDIA GPU: a short CUDA training loop with
``nbtrack.watch``, GPU tensors logged every step, checkpoints and a model, system metrics on,
then what landed in MLflow.

    PYTHONPATH=. .venv/bin/python benchmarks/gpu_check.py [--seconds 30]

Needs a CUDA build of torch and ``nvidia-ml-py`` (NVML). It checks, and prints:

1. the training loop never waits for the GPU: it runs under
   ``torch.cuda.set_sync_debug_mode("error")``, which raises at any synchronising call, with
   ``nbtrack.log(loss=loss)`` (a CUDA tensor) every step and ``watch``'s norms every 50 steps
   (the sender thread, which reads those tensors, is kept asleep while the loop runs);
2. the run in MLflow: loss and norm histories, MLflow's system metrics for the GPU
   (``system/gpu_0_utilization_percentage``, memory, power) and nbtrack's GPU energy
   (``system/gpu_energy_joules``) against the mean power times the cell's duration;
3. the record: the system metrics drawn (``%%track --system``) and the energy;
4. the model reloads with ``mlflow.pytorch.load_model`` and gives the same outputs.

Exits non-zero if a check fails. Everything lives in a temporary folder, removed at exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Shell, isolate

TRAIN = """
import time, torch, nbtrack
device = DEVICE
cuda = device == "cuda"
torch.manual_seed(0)
width = 4096 if cuda else 64               # the CPU rehearsal only checks the script
model = torch.nn.Sequential(
    torch.nn.Linear(1024, width), torch.nn.GELU(), torch.nn.Linear(width, width), torch.nn.GELU(),
    torch.nn.Linear(width, 10),
).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
batch = 512 if cuda else 16
x = torch.randn(batch, 1024, device=device)
y = torch.randint(0, 10, (batch,), device=device)
nbtrack.watch(model, optimizer, every=50)
if cuda:
    torch.cuda.synchronize()
started = time.monotonic()
steps = 0
synced_in_loop = None
if cuda:
    torch.cuda.set_sync_debug_mode("error")   # any synchronising call in the loop raises
try:
    while steps < 200 or time.monotonic() - started < SECONDS:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        nbtrack.log(loss=loss)
        steps += 1
        if steps % 500 == 0:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)   # a checkpoint copies to the host: it waits
            nbtrack.log_checkpoint({"model": model.state_dict(), "step": steps}, step=steps, keep=2)
            if cuda:
                torch.cuda.set_sync_debug_mode("error")
except RuntimeError as error:
    synced_in_loop = str(error)
finally:
    if cuda:
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
seconds = time.monotonic() - started
info = nbtrack.log_model(model, "mlp", input_example=x[:4])
probe = torch.randn(4, 1024, device=device)
with torch.no_grad():
    expected = model.eval()(probe).cpu()
run_id = nbtrack.active_run().run_id
from nbtrack import _registry
tracked = _registry.current()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="training time (default 30)")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="rehearse on the CPU (with tests/helpers/fake_nvml first on PYTHONPATH for the GPU "
        "figures): the script's own check, not the GPU's",
    )
    args = parser.parse_args()
    folder = isolate("gpu")
    os.environ["NBTRACK_SYSTEM_METRICS"] = "2"
    # The sender reads logged CUDA tensors when it wakes; asleep during the loop, it cannot
    # trip the sync check (its reads are off the training thread by design).
    os.environ["NBTRACK_FLUSH_INTERVAL"] = "600"
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: this check needs an NVIDIA GPU and a CUDA build of torch")
        return 2
    shell = Shell()
    shell["DEVICE"] = "cpu" if args.cpu else "cuda"
    shell.run("import nbtrack", track="-e gpu-check -n warm-up")  # the sync process starts
    shell["SECONDS"] = args.seconds
    shell.run(TRAIN, track="-e gpu-check -n cuda --system")
    shell.run("nbtrack.wait(120)")
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(("ok    " if ok else "FAILED") + " " + what)
        if not ok:
            failures.append(what)

    synced = shell["synced_in_loop"]
    steps, seconds = shell["steps"], shell["seconds"]
    name = "CPU rehearsal" if args.cpu else torch.cuda.get_device_name(0)
    print(f"\n{name}: {steps} steps in {seconds:.1f} s "
          f"({seconds / steps * 1e3:.2f} ms a step); store and journals in {folder}\n")  # fmt: skip
    check(synced is None, f"no device synchronisation in the training loop ({synced or 'none'})")

    from mlflow import MlflowClient

    client = MlflowClient()
    run = client.get_run(shell["run_id"])
    metrics = run.data.metrics
    check(run.info.status == "FINISHED", f"run status {run.info.status}")
    loss = client.get_metric_history(run.info.run_id, "loss")
    check(len(loss) == steps, f"loss: {len(loss)} points for {steps} steps")
    norms = client.get_metric_history(run.info.run_id, "grad_norm")
    check(len(norms) == (steps + 49) // 50, f"grad_norm: {len(norms)} samples (every 50 steps)")
    gpu = sorted(k for k in metrics if k.startswith("system/gpu_0"))
    print("\nsystem metrics in MLflow (last values):")
    for key in sorted(k for k in metrics if k.startswith("system/")):
        print(f"  {key:45} {metrics[key]:>14,.1f}")
    check("system/gpu_0_utilization_percentage" in gpu, "MLflow's GPU metrics (NVML) present")
    util = client.get_metric_history(run.info.run_id, "system/gpu_0_utilization_percentage")
    print(f"  GPU utilisation samples: {[round(m.value) for m in util]}")
    power = client.get_metric_history(run.info.run_id, "system/gpu_0_power_usage_watts")
    energy = metrics.get("system/gpu_energy_joules")
    if power and energy is not None:
        mean_watts = sum(m.value for m in power) / len(power)
        print(f"  energy over the cell {energy:,.0f} J; mean sampled power x loop time = "
              f"{mean_watts * seconds:,.0f} J")  # fmt: skip
    check(energy is not None and energy > 0, "GPU energy over the cell (NVML energy counter)")

    # What the record draws: the run's curves in the kernel (--system: every sample).
    drawn = set(shell["tracked"].run.curves)
    check(
        "system/gpu_0_utilization_percentage" in drawn and "system/gpu_energy_joules" in drawn,
        "the record has the GPU's system metrics and the energy",
    )
    shell.run(
        "import mlflow.pytorch, torch\n"
        "reloaded = mlflow.pytorch.load_model(info.model_uri)\n"
        "where = next(reloaded.parameters()).device\n"
        "with torch.no_grad():\n"
        "    same = bool(torch.allclose(reloaded(probe.to(where)).cpu(), expected, atol=1e-4))"
    )
    check(shell["same"], "the logged model reloads with the same outputs")
    print("\nall checks passed" if not failures else f"\n{len(failures)} check(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
