"""``nbtrack.log_model`` and ``nbtrack.log_checkpoint``: a PyTorch model as an MLflow model,
and training checkpoints as the run's artifacts, the last few kept.

``log_model`` goes through ``mlflow.pytorch.log_model`` in the kernel (it is called once, after
training): the tracked run is made MLflow's active run first, so the model is logged into it.
``log_checkpoint`` serialises the state in the call (the state as it is at that step), stages
it in the run's journal, and leaves the upload to the sync process, off the training thread.

Checkpoints kept: the last ``keep`` of the run. An older one is removed from the journal's
staging folder, so a checkpoint superseded before the sync process reached it is never
uploaded, and a delete line asks the sync process to remove it from the run's artifacts if it
was; stores whose artifact repository cannot delete (a few cloud backends) keep it, with a line
in the sync process's log.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import weakref
from collections import deque
from typing import Any

from nbtrack._files import make_private_dir, open_private
from nbtrack._registry import TrackedRun
from nbtrack.integrations._common import at_cell_end, mlflow_run_id, tracked

__all__ = ["log_checkpoint", "log_model"]

CHECKPOINTS = "checkpoints"


def log_model(
    model: Any, name: str = "model", input_example: Any = None, **mlflow_options: Any
) -> Any:
    """Log a PyTorch model into the tracked run with ``mlflow.pytorch.log_model``.

    Given ``input_example`` (a tensor or numpy array, a small batch), the model is run on it in
    eval mode (its train/eval mode is restored), the signature is inferred from that input and
    the output, and MLflow stores the model in its default format, a graph exported with
    ``torch.export``; without one it is pickled (cloudpickle). Either way it loads back with
    ``mlflow.pytorch.load_model(model_info.model_uri)`` in any kernel, also one where its class
    is not defined. Returns MLflow's ``ModelInfo``.

    The environment stored with the model is MLflow's default for PyTorch (torch and
    cloudpickle, pinned to this kernel's versions, a local label such as ``+cpu`` left out)
    rather than MLflow's inference, which loads
    the model again in a subprocess (~15 s). Other ``mlflow.pytorch.log_model`` options
    (``pip_requirements``, ``code_paths``, ``registered_model_name``...) are passed through.

    This call waits for MLflow: the first one imports it (a few seconds), and the model is
    saved and uploaded before it returns.

    Raises:
        NoActiveRunError: outside a ``%%track`` cell.
        TypeError: ``model`` is not a ``torch.nn.Module``, or ``input_example`` is neither a
            tensor nor a numpy array.
        RunNotInStoreError: the tracking store has not created the run (unreachable).
    """
    run = tracked("log_model")
    import torch

    if not isinstance(model, torch.nn.Module):
        msg = f"nbtrack.log_model() takes a torch.nn.Module, got {type(model).__name__}"
        raise TypeError(msg)
    example = None if input_example is None else _as_numpy(input_example, "input_example")
    mlflow_run_id(run, "log_model")
    import mlflow.pytorch
    from mlflow.models import infer_signature

    signature = None
    if example is not None:
        output = _predict(model, example)
        signature = infer_signature(example, output)
    if example is None:
        # MLflow's default format (torch.export's, "pt2") needs an example to trace the model.
        mlflow_options.setdefault("serialization_format", "pickle")
    if not {"pip_requirements", "extra_pip_requirements", "conda_env"} & mlflow_options.keys():
        # (MLflow warns, in the cell's output, that it drops the "+cpu" of a local torch build
        # from the pin: expected, and said once here instead.)
        requirements_log = logging.getLogger("mlflow.utils.requirements_utils")
        level = requirements_log.level
        requirements_log.setLevel(logging.ERROR)
        try:
            mlflow_options["pip_requirements"] = mlflow.pytorch.get_default_pip_requirements()
        finally:
            requirements_log.setLevel(level)
    return mlflow.pytorch.log_model(
        model, name=name, signature=signature, input_example=example, **mlflow_options
    )


def _as_numpy(value: Any, what: str) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__ == "torch" and type(value).__name__ == "Tensor":
        return value.detach().cpu().numpy()
    msg = (
        f"nbtrack.log_model({what}=...) takes a torch tensor or a numpy array, "
        f"got {type(value).__name__}"
    )
    raise TypeError(msg)


def _predict(model: Any, example: Any) -> Any:
    """The model's output on ``example`` as numpy (None if it is not one tensor), in eval
    mode and without gradients; the model's own mode is restored."""
    import torch

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.as_tensor(example).to(device))
    finally:
        model.train(was_training)
    if isinstance(output, torch.Tensor):
        return output.detach().cpu().numpy()
    return None


def log_checkpoint(state: Any, step: int, keep: int = 3) -> str:
    """Store a training checkpoint with the run, as ``checkpoints/step-<step>.pt``.

    ``state`` is anything ``torch.save`` takes (typically a dict of ``state_dict()``\\ s and
    the epoch). It is serialised now, in the calling thread (tensors on a GPU are copied to
    the host, which waits for the device: checkpoint between steps); the upload happens in the
    background. Only the run's last ``keep`` checkpoints are kept: older ones are not uploaded
    if they were not yet, and deleted from the run's artifacts if they were. Returns the
    checkpoint's path among the run's artifacts.

    Raises:
        NoActiveRunError: outside a ``%%track`` cell.
        TypeError: ``step`` is not an integer >= 0 or ``keep`` not an integer >= 1.
        OSError: the checkpoint could not be written (a full disk): nothing of it is kept, the
            run goes on, and the loop may catch this and train on.
    """
    run = tracked("log_checkpoint")
    for what, value, least in (("step", step, 0), ("keep", keep, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            msg = f"nbtrack.log_checkpoint({what}=...) must be an integer >= {least}, got {value!r}"
            raise TypeError(msg)
    import torch

    kept = _checkpoints.get(run)
    if kept is None:
        kept = _checkpoints[run] = deque()
        at_cell_end(run, lambda: _checkpoints.pop(run, None))
    file_name = f"step-{step:08d}.pt"
    artifact = f"{CHECKPOINTS}/{file_name}"
    staging = f"checkpoint-{next(_staged)}"
    folder = make_private_dir(run.journal.files / staging)
    with open_private(folder / file_name, "wb") as out:
        torch.save(state, out)
    # The same step checkpointed again replaces the earlier one.
    for earlier in [entry for entry in kept if entry[0] == artifact]:
        kept.remove(earlier)
        _discard_staged(run, earlier[1])
    kept.append((artifact, staging))
    run.buffer.pending.append(("artifact", (f"{staging}/{file_name}", CHECKPOINTS)))
    while len(kept) > keep:
        old_artifact, old_staging = kept.popleft()
        _discard_staged(run, old_staging)
        run.buffer.pending.append(("delete", old_artifact))
    return artifact


def _discard_staged(run: TrackedRun, staging: str) -> None:
    folder = run.journal.files / staging
    for file in folder.glob("*"):
        with contextlib.suppress(OSError):
            file.unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


_staged = itertools.count()
# Each running cell's checkpoints, oldest first: (artifact path, staging folder).
_checkpoints: weakref.WeakKeyDictionary[TrackedRun, deque[tuple[str, str]]] = (
    weakref.WeakKeyDictionary()
)
