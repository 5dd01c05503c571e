"""One version number: the Python package's comes from labextension/package.json, and the
installed lab extension is the one built from it."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from jupyter_core.paths import jupyter_path

import nbtrack

ROOT = Path(__file__).resolve().parents[2]


def _package_json_version() -> str:
    return str(json.loads((ROOT / "labextension" / "package.json").read_text())["version"])


def test_python_and_js_versions_agree() -> None:
    assert metadata.version("nbtrack") == _package_json_version()
    assert nbtrack.__version__ == _package_json_version()


def test_installed_lab_extension_matches_the_source() -> None:
    found = [
        Path(folder) / "nbtrack" / "package.json"
        for folder in jupyter_path("labextensions")
        if (Path(folder) / "nbtrack" / "package.json").is_file()
    ]
    assert found, "nbtrack's lab extension is not installed: run `pip install -e .`"
    installed = json.loads(found[0].read_text())
    assert installed["version"] == _package_json_version()
    # A prebuilt extension points JupyterLab at its bundle.
    load = installed["jupyterlab"]["_build"]["load"]
    assert (found[0].parent / load).is_file()
