"""Execute example_notebooks/01_quickstart.ipynb headless and say where to look at the result."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "example_notebooks" / "01_quickstart.ipynb"
RECORD = "application/vnd.nbtrack.run+json"


def main() -> int:
    folder = NOTEBOOK.parent
    # The kernel runs in the notebook's folder, so MLflow's default store is
    # example_notebooks/mlflow.db and `mlflow ui` started there finds the runs.
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["NBTRACK_NOTEBOOK"] = str(NOTEBOOK)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    print(f"Running {NOTEBOOK} ...")
    NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    nbformat.write(nb, NOTEBOOK)

    runs = [
        output["data"][RECORD]["run"]
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if RECORD in output.get("data", {})
    ]
    print(f"\n{len(runs)} tracked run(s), stored in {folder / 'mlflow.db'}:")
    for run in runs:
        print(
            f"  {run['name']:<12} {run['status']:<9} run id {run['id']}"
            f"  (experiment {run['experiment_name']})"
        )
    print(
        "\nWhere to look:\n"
        f"  MLflow UI:   cd {folder} && ../.venv/bin/mlflow ui      (then open http://127.0.0.1:5000)\n"
        f"               or: .venv/bin/nbtrack ui --tracking-uri sqlite:///{folder / 'mlflow.db'}\n"
        f"  JupyterLab:  .venv/bin/jupyter lab {NOTEBOOK}\n"
        "               (the saved notebook shows each run's record, no kernel needed)\n"
        f"  Terminal:    .venv/bin/nbtrack show {NOTEBOOK}"
    )
    return 0 if runs and all(r["status"] == "FINISHED" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
