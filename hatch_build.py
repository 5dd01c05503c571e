"""Build hook: compiles nbtrack._hotpath, the C version of nbtrack.log's usual call.

Optional by design: where no C compiler is found the wheel stays pure Python and nbtrack.log
runs its Python version, which behaves the same and costs a few µs more per call inside a
training loop. Set ``NBTRACK_REQUIRE_HOTPATH=1`` to make a failed compile an error instead (the
project's own set-up does, so that a missing compiler cannot go unnoticed).

A regular wheel gets the compiled module packed in (and a platform tag); an editable install
gets it next to the source, where Python imports the package from.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_SOURCE = Path("nbtrack") / "_hotpath.c"


class HotPathBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        work = self._work = Path(tempfile.mkdtemp(prefix="nbtrack-hotpath-"))
        try:
            built = _compile(root / _SOURCE, work)
        except Exception as error:
            if os.environ.get("NBTRACK_REQUIRE_HOTPATH", "") not in ("", "0"):
                raise
            self.app.display_warning(
                f"nbtrack: the C hot path was not built ({error}); nbtrack.log will run its "
                "Python version"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version == "editable":
            shutil.copy2(built, root / "nbtrack" / built.name)
        else:
            build_data["force_include"][str(built)] = f"nbtrack/{built.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:  # noqa: ARG002 - the hook interface
        # The wheel is packed by now: the compiler's output is no longer needed.
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _compile(source: Path, work: Path) -> Path:
    # setuptools knows each platform's compiler and flags for extension modules.
    from setuptools import Distribution, Extension

    extension = Extension("nbtrack._hotpath", [str(source)])
    dist = Distribution({"name": "nbtrack", "ext_modules": [extension]})
    command: Any = dist.get_command_obj("build_ext")
    command.build_lib = str(work / "lib")
    command.build_temp = str(work / "temp")
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath(extension.name))
