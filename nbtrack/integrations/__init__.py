"""What nbtrack adds to the libraries a training cell uses: PyTorch (``watch``, ``log_model``,
``log_checkpoint``), datasets (``log_dataset``), MLflow's own calls made in a tracked cell
(``mlflow_bridge``), Lightning and Hugging Face's ``Trainer``.

Each module imports its framework only when one of its functions is called (or, for the
Lightning and Transformers classes, when the module itself is imported by a user who uses
that framework), so ``import nbtrack`` stays light. None of them is a dependency of nbtrack.
"""
