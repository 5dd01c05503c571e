"""Running notebooks and cells in real kernels, for the tests."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat


def notebook(*sources: str, name: str = "train.ipynb", folder: Path | None = None) -> Path:
    """Write a notebook with one code cell per source; return its path."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path = (folder or Path.cwd()) / name
    nbformat.write(nb, path)
    return path


def execute(path: Path, allow_errors: bool = False, timeout: int = 300) -> Any:
    """Run a notebook in a real ipykernel (nbclient), as papermill/nbconvert would; save it back.

    The kernel learns the notebook's path the way JupyterLab tells it (JPY_SESSION_NAME).
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["JPY_SESSION_NAME"] = str(path)
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=allow_errors,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        del os.environ["JPY_SESSION_NAME"]
        nbformat.write(nb, path)
    return nb


def outputs_of(cell: Any, kind: str | None = None) -> list[Any]:
    return [o for o in cell.outputs if kind is None or o.output_type == kind]


def text_of(cell: Any) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "".join(parts)


class Kernel:
    """A real ipykernel driven message by message, for what nbclient cannot do: interrupt a
    running cell, kill the kernel, look at outputs while a cell is still running."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        from jupyter_client.manager import KernelManager

        self.km = KernelManager(kernel_name="python3")
        full_env = {**os.environ, **(env or {})}
        self.km.start_kernel(cwd=str(cwd), env=full_env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        return int(self.km.provisioner.process.pid)  # type: ignore[union-attr]

    def submit(self, code: str) -> str:
        return str(self.kc.execute(code))

    def wait_reply(self, msg_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])

    def run(self, code: str, timeout: float = 120) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Execute ``code``; return the reply and the iopub outputs of that execution."""
        msg_id = self.submit(code)
        reply = self.wait_reply(msg_id, timeout)
        return reply, self.outputs(msg_id)

    def _iopub(self, seconds: float, poll: float) -> Iterator[dict[str, Any]]:
        """The kernel's iopub messages for ``seconds`` from now."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                yield self.kc.get_iopub_msg(timeout=poll)
            except queue.Empty:
                continue

    def outputs(self, msg_id: str, settle: float = 0.3) -> list[dict[str, Any]]:
        kinds = ("stream", "display_data", "update_display_data", "execute_result", "error")
        return [
            {"type": msg["msg_type"], **msg["content"]}
            for msg in self._iopub(settle, 0.05)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] in kinds
        ]

    def wait_for_output(self, msg_id: str, needle: str, timeout: float = 60) -> None:
        for msg in self._iopub(timeout, 0.2):
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "stream"
                and needle in msg["content"]["text"]
            ):
                return
        raise AssertionError(f"{needle!r} never appeared in the kernel's output")

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def kill(self) -> None:
        self.km.kill_kernel()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        if self.km.is_alive():
            self.km.shutdown_kernel(now=False)
