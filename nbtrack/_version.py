"""nbtrack's version: one number, from ``labextension/package.json`` through the package's
metadata (hatch reads it there), shared by the Python package and the lab extension."""

from __future__ import annotations

from importlib import metadata

__all__ = ["VERSION"]

try:
    VERSION = metadata.version("nbtrack")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0.0.0"
