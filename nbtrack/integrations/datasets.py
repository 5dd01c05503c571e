"""``nbtrack.log_dataset``: what a run trained or evaluated on, as one of MLflow's dataset inputs.

MLflow's own dataset classes compute the digest (a hash of the data), the schema and the shape
(its "profile"), and ``mlflow.log_input`` attaches them to the run, where the MLflow UI shows
them apart from params and metrics: two runs on different data differ there by digest. The
run also gets the tag ``nbtrack.datasets`` (``context:name@digest`` for each, comma-separated),
which is how ``nbtrack.runs()`` and MLflow's search tell runs apart by data.
"""

from __future__ import annotations

from typing import Any

from nbtrack._model import MAX_TAG_VALUE_LENGTH, check_key, value_text
from nbtrack.integrations._common import mlflow_run_id, tracked

__all__ = ["DATASETS_TAG", "log_dataset"]

DATASETS_TAG = "nbtrack.datasets"


def log_dataset(data: Any, name: str, context: str = "train") -> Any:
    """Record the data the cell uses, as an MLflow dataset input of the tracked run.

    ``data`` is a pandas DataFrame, a numpy array, a torch Tensor, or a
    ``torch.utils.data.TensorDataset`` (its first tensor as the features, its second, if any,
    as the targets). ``context`` says what it was used for: ``"train"``, ``"eval"``,
    ``"test"``... Returns MLflow's dataset object (``.digest``, ``.schema``, ``.profile``).

    Raises:
        NoActiveRunError: outside a ``%%track`` cell.
        TypeError: ``data`` is of another kind (convert it to a DataFrame or an array).
        ValueError: ``name`` or ``context`` is a name MLflow refuses.
        RunNotInStoreError: the tracking store has not created the run (unreachable).
    """
    run = tracked("log_dataset")
    check_key(name, "dataset")
    check_key(context, "dataset context")
    dataset = _mlflow_dataset(data, name)
    mlflow_run_id(run, "log_dataset")  # the tracked run is MLflow's active run from here
    import mlflow

    mlflow.log_input(dataset, context=context)
    # Carried by the journal with the run's other tags; names are listed in call order.
    entry = f"{context}:{name}@{dataset.digest}"
    listed = [e for e in run.run.tags.get(DATASETS_TAG, "").split(",") if e and e != entry]
    run.run.tags[DATASETS_TAG] = value_text(",".join([*listed, entry]), MAX_TAG_VALUE_LENGTH)
    run.buffer.pending.append(("tags", {DATASETS_TAG: run.run.tags[DATASETS_TAG]}))
    return dataset


def _mlflow_dataset(data: Any, name: str) -> Any:
    kind = type(data)
    module = kind.__module__.split(".", 1)[0]
    if module == "pandas" and kind.__name__ == "DataFrame":
        from mlflow.data.pandas_dataset import from_pandas

        return from_pandas(data, name=name)
    if module == "numpy" and kind.__name__ == "ndarray":
        from mlflow.data.numpy_dataset import from_numpy

        return from_numpy(data, name=name)
    if module == "torch":
        import torch

        if isinstance(data, torch.Tensor):
            from mlflow.data.numpy_dataset import from_numpy

            return from_numpy(_numpy(data), name=name)
        if isinstance(data, torch.utils.data.TensorDataset):
            from mlflow.data.numpy_dataset import from_numpy

            tensors = data.tensors
            features = _numpy(tensors[0])
            if len(tensors) > 1:
                return from_numpy(features, targets=_numpy(tensors[1]), name=name)
            return from_numpy(features, name=name)
    msg = (
        f"nbtrack.log_dataset() takes a pandas DataFrame, a numpy array, a torch Tensor or a "
        f"TensorDataset, got {kind.__module__}.{kind.__qualname__}; convert it to one of those "
        "(e.g. a DataFrame of its columns)"
    )
    raise TypeError(msg)


def _numpy(tensor: Any) -> Any:
    return tensor.detach().cpu().numpy()
