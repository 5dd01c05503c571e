"""Calling back right after a module is first imported, for code that must act on a library
the user imports later (MLflow, Lightning) without importing it itself."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["remove_import_watch", "when_imported"]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callback`` once module ``name`` has been imported for the first time.

    Looking the module up without importing it (``importlib.util.find_spec``, as Lightning and
    Transformers do to see whether MLflow is installed) does not count: the watch stays until
    the module is really executed.
    """

    def __init__(self, name: str, callback: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(
        self, fullname: str, path: Any = None, _target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        watch = self

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                remove_import_watch(watch)
                loader.exec_module(module)
                watch.callback(module)

        spec.loader = _Loader()
        return spec


_watch_lock = threading.Lock()


def when_imported(name: str, callback: Callable[[ModuleType], None]) -> object:
    """Call ``callback`` right after module ``name`` is first imported in this process (or at
    once if it was already). Returns a handle for ``remove_import_watch`` (None if called)."""
    if name in sys.modules:
        callback(sys.modules[name])
        return None
    watch = _AfterImport(name, callback)
    with _watch_lock:
        sys.meta_path.insert(0, watch)
    return watch


def remove_import_watch(watch: object) -> None:
    with _watch_lock, contextlib.suppress(ValueError):
        sys.meta_path.remove(watch)  # type: ignore[arg-type]
