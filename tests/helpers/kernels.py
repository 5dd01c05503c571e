"""Running notebooks and cells in real kernels, for the tests."""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import KernelManager

RECORD = "application/vnd.nbtrack.run+json"


def notebook(*sources: str, name: str = "train.ipynb", folder: Path | None = None) -> Path:
    """Write a notebook with one code cell per source; return its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "language": "python",
        "display_name": "Python 3",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path = (folder or Path.cwd()) / name
    nbformat.write(nb, path)
    return path


# Unix sockets of the kernels this test process starts: a folder of its own for each kernel,
# all under one folder removed when the process exits.
_SOCKETS = tempfile.mkdtemp(prefix="nbtrack-test-kernels-")
atexit.register(shutil.rmtree, _SOCKETS, ignore_errors=True)


class IpcKernelManager(KernelManager):
    """A python3 kernel that talks over Unix sockets in a folder of its own. Over TCP,
    jupyter_client picks free ports by binding and releasing them, and a kernel or server
    started at the same moment by the other test worker can take one first: the kernel then
    dies with "Address already in use" (seen in CI)."""

    def __init__(self, **kwargs: Any) -> None:
        # Absolute and short: a relative path would be read from the kernel's working folder
        # and the client's apart, and a Unix socket's path is limited to ~100 bytes.
        folder = tempfile.mkdtemp(dir=_SOCKETS)
        kwargs.setdefault("kernel_name", "python3")
        super().__init__(transport="ipc", ip=os.path.join(folder, "k"), **kwargs)


def execute(path: Path, allow_errors: bool = False, timeout: int = 300) -> Any:
    """Run a notebook in a real ipykernel (nbclient), as papermill/nbconvert would; save it back.

    The kernel learns the notebook's path from ``NBTRACK_NOTEBOOK``, the way a user tells it
    where the frontend does not.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    previous = os.environ.get("NBTRACK_NOTEBOOK")
    os.environ["NBTRACK_NOTEBOOK"] = str(path)
    try:
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            kernel_manager_class=IpcKernelManager,
            allow_errors=allow_errors,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        if previous is None:
            del os.environ["NBTRACK_NOTEBOOK"]
        else:
            os.environ["NBTRACK_NOTEBOOK"] = previous
        nbformat.write(nb, path)
    _no_part_of_nbtrack_failed(nb)
    return nb


# What nbtrack's sender thread and live view say when an exception stopped one of their
# updates (nbtrack/_sender.py). Never expected: every notebook a test runs is checked for it.
_UPDATE_FAILED = "failed and skips this update"


def _no_part_of_nbtrack_failed(nb: Any) -> None:
    for index, cell in enumerate(nb.cells):
        said = text_of(cell) if cell.cell_type == "code" else ""
        assert _UPDATE_FAILED not in said, f"cell {index}: {said[-2000:]}"


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


def output_text(outputs: list[dict[str, Any]]) -> str:
    """What a live kernel's outputs (``Kernel.run``) say in plain text, each once: streams,
    errors as ``name: value``, and the plain text of displays."""
    parts = []
    for output in outputs:
        if output["type"] == "stream":
            parts.append(output["text"])
        elif output["type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def records_of(cell: Any) -> list[dict[str, Any]]:
    """The nbtrack records among a saved cell's outputs."""
    return [o.data[RECORD] for o in cell.outputs if RECORD in o.get("data", {})]


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sync_process_pids(folder: Path) -> list[int]:
    """Sync processes whose session folder is under ``folder``."""
    pids = []
    needle = str(folder).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"nbtrack.journal.worker" in cmdline and any(needle in arg for arg in cmdline):
            pids.append(int(proc.name))
    return pids


class Kernel:
    """A real ipykernel driven message by message, for what nbclient cannot do: interrupt a
    running cell, kill the kernel, look at outputs while a cell is still running."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.km = IpcKernelManager()
        full_env = {**os.environ, **(env or {})}
        self.km.start_kernel(cwd=str(cwd), env=full_env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        # iopub messages read while looking for something else, kept for whoever asks next.
        self._seen: list[dict[str, Any]] = []
        self._dump_path: Path | None = None

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
        return reply, self.outputs(msg_id, timeout)

    def _iopub(self, timeout: float) -> Iterator[dict[str, Any]]:
        """The kernel's iopub messages (those kept earlier first) until ``timeout``."""
        while self._seen:
            yield self._seen.pop(0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                yield self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue

    def outputs(self, msg_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The outputs of execution ``msg_id``, up to the kernel going idle after it."""
        kinds = ("stream", "display_data", "update_display_data", "execute_result", "error")
        found = []
        others = []
        for msg in self._iopub(timeout):
            if msg["parent_header"].get("msg_id") != msg_id:
                others.append(msg)
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            if msg["msg_type"] in kinds:
                found.append({"type": msg["msg_type"], **msg["content"]})
        self._seen.extend(others)
        # As ``execute`` checks a notebook: shown under this execution or, from the sender
        # thread, under whichever the kernel ran at that moment.
        for msg in [*others, *found]:
            text = msg.get("text") or msg.get("content", {}).get("text") or ""
            assert _UPDATE_FAILED not in text, text[-2000:]
        return found

    def wait_for_output(self, msg_id: str, needle: str, timeout: float = 60) -> None:
        for msg in self._iopub(timeout):
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "stream"
                and needle in msg["content"]["text"]
            ):
                return
        raise AssertionError(f"{needle!r} never appeared in the kernel's output")

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def enable_thread_dumps(self, path: Path) -> None:
        """Let ``thread_dump`` say where each of the kernel's threads is, for a test that finds
        the kernel stuck (written by faulthandler to ``path`` on SIGUSR1)."""
        self._dump_path = path
        code = (
            "import faulthandler, signal\n"
            f"faulthandler.register(signal.SIGUSR1, open({str(path)!r}, 'w'), all_threads=True)"
        )
        assert self.run(code)[0]["status"] == "ok"

    def thread_dump(self) -> str:
        if self._dump_path is None:
            return "(no thread dump: enable_thread_dumps was not called)"
        os.kill(self.pid, signal.SIGUSR1)
        time.sleep(1)  # written by the kernel's C signal handler, without its threads' help
        return self._dump_path.read_text(errors="replace")

    def shutdown(self) -> None:
        self.kc.stop_channels()
        if self.km.is_alive():
            self.km.shutdown_kernel(now=False)
        else:  # killed by the test: its connection file and sockets are left to remove
            self.km.cleanup_resources()
