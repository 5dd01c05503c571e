"""What the kernel knows about where a cell runs: notebook path, environment, session history."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from nbtrack._settings import settings

# Versions worth seeing at a glance; the full list goes to requirements.txt.
_KEY_PACKAGES = (
    "nbtrack",
    "mlflow",
    "torch",
    "numpy",
    "pandas",
    "scikit-learn",
    "lightning",
    "pytorch-lightning",
    "transformers",
    "jax",
    "tensorflow",
    "ipykernel",
    "ipython",
)

# Where a person watches and nobody waits for the saved file, a cell's end does not wait for
# the upload (its record updates itself in place); headless, it waits up to this long, so that
# the notebook a papermill or nbconvert run saves ends with final records.
_HEADLESS_END_WAIT_S = 60.0


def watching() -> bool:
    """Whether a person watches this kernel's outputs live (JupyterLab/Notebook, VS Code),
    as opposed to nbclient, papermill or nbconvert; ``NBTRACK_LIVE_PLOT`` decides if set."""
    explicit = settings().live_view
    if explicit is not None:
        return explicit
    return bool(os.environ.get("JPY_SESSION_NAME") or os.environ.get("VSCODE_PID"))


def end_wait() -> float:
    """Seconds a cell's end waits for the upload (``NBTRACK_END_WAIT``, or auto)."""
    wait = settings().end_wait
    if wait is None:
        wait = 0.0 if watching() else _HEADLESS_END_WAIT_S
    return wait


def notebook_path(user_ns: dict[str, Any]) -> str | None:
    """The notebook's path as the frontend exposes it, or None when the kernel cannot know.

    JupyterLab/Notebook (jupyter_server) set ``JPY_SESSION_NAME`` in the kernel's environment;
    VS Code puts ``__vsc_ipynb_file__`` in the namespace; papermill injects
    ``PAPERMILL_INPUT_PATH`` with ``--inject-paths``. ``NBTRACK_NOTEBOOK`` overrides them all.
    """
    candidates = (
        settings().notebook,
        user_ns.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
        user_ns.get("PAPERMILL_INPUT_PATH"),
    )
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = Path(candidate)
            if not path.is_absolute():
                # jupyter_server may give a path relative to its root; the kernel runs in the
                # notebook's folder, so the file name is enough to make it absolute.
                local = Path.cwd() / path.name
                path = local if local.exists() else Path.cwd() / path
            return str(path)
    return None


def environment() -> dict[str, Any]:
    """Python, OS, CPU/GPU and key package versions: what reproducing the run needs first."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or _cpu_model(),
        "packages": {},
    }
    for name in _KEY_PACKAGES:
        try:
            info["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    info["gpu"] = _gpus()
    return info


def requirements() -> str:
    """Every installed distribution as ``name==version`` lines, sorted."""
    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(sorted(seen.values(), key=str.lower)) + "\n"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _gpus() -> list[dict[str, Any]]:
    # Only ask torch if the user already imported it: importing it here would cost seconds.
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    gpus = []
    try:
        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                gpus.append(
                    {
                        "name": props.name,
                        "memory_gb": round(props.total_memory / 2**30, 1),
                        "cuda": torch.version.cuda,
                    }
                )
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            gpus.append({"name": "Apple MPS"})
    except Exception:  # noqa: BLE001 - a broken driver must not fail the user's cell
        return gpus
    return gpus


def environment_json() -> str:
    return json.dumps(environment(), indent=2, sort_keys=True) + "\n"
