"""System metrics of a run, sampled in the sync process by MLflow's own monitor.

While a run's cell executes, the sync process runs MLflow's ``SystemMetricsMonitor`` for it: CPU
and memory, disk and network, and, where NVML answers (``nvidia-ml-py`` and an NVIDIA driver),
each GPU's utilisation, memory and power, every ``NBTRACK_SYSTEM_METRICS`` seconds, logged as
``system/...`` metrics (MLflow's "System metrics" tab). It runs outside the kernel, so the
training loop pays nothing for it, not even the GIL.

Beside MLflow's figures, nbtrack measures the energy the GPUs used over the run, from NVML's
energy counter (``nvmlDeviceGetTotalEnergyConsumption``, GPUs since Volta) read when the sync
process first sees the run's journal (a few milliseconds after the cell starts, before the run
exists in the store) and when it sees the cell's end: ``system/gpu_<i>_energy_joules`` and their sum
``system/gpu_energy_joules``.

Each sample is also appended to ``<run>.system`` (JSON lines, ``t`` = ``s`` for a sample,
``energy`` for the total), which the kernel reads to show the samples in the live view
(``%%track --system``) and the energy in the record.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from nbtrack._files import open_private
from nbtrack.journal.format import encode, run_ended

__all__ = ["ENERGY_METRIC", "SYSTEM_SUFFIX", "EnergyMeter", "RunSystemMetrics", "SystemSampling"]

log = logging.getLogger("nbtrack.sync")

SYSTEM_SUFFIX = ".system"
ENERGY_METRIC = "system/gpu_energy_joules"
_PREFIX = "system/"


class SystemSampling:
    """The sync process's system metrics: one monitor per run its live kernel is executing."""

    def __init__(self, tracking_uri: str, interval: float) -> None:
        self.tracking_uri = tracking_uri
        self.interval = interval
        self.running: dict[Path, RunSystemMetrics] = {}
        self._energy: dict[Path, EnergyMeter] = {}
        self._started: set[Path] = set()

    def follow(self, spool: Path, run_id: str | None, client: Any) -> None:
        """Start measuring a run's GPU energy at first sight of its journal (before the store
        has the run), its monitor once the run exists; stop both as soon as the cell ended
        (the energy covers the cell, not the upload after it)."""
        if not self.interval:
            return
        if run_ended(spool):
            self.stop(spool, client)
            return
        if spool not in self._energy and spool not in self._started:
            self._energy[spool] = EnergyMeter()
        if run_id is not None and spool in self._energy:
            self._started.add(spool)  # once per run, also if it could not start
            energy = self._energy.pop(spool)
            try:
                self.running[spool] = RunSystemMetrics(
                    spool, run_id, self.tracking_uri, self.interval, energy
                )
            except Exception as error:  # noqa: BLE001 - no system metrics, the run goes on
                log.warning("system metrics off for %s: %s", spool.stem, error)

    def stop(self, spool: Path, client: Any) -> None:
        self._energy.pop(spool, None)
        sampler = self.running.pop(spool, None)
        if sampler is not None:
            sampler.finish(client)

    def stop_all(self, client: Any) -> None:
        for spool in list(self.running):
            self.stop(spool, client)


class RunSystemMetrics:
    """MLflow's system metrics monitor for one run, its GPU energy, and the kernel's copy."""

    def __init__(
        self, spool: Path, run_id: str, tracking_uri: str, interval: float, energy: EnergyMeter
    ) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.path = spool.with_suffix(SYSTEM_SUFFIX)
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._lock = threading.Lock()
        self.energy = energy
        copy = self._copy

        class Monitor(SystemMetricsMonitor):
            def publish_metrics(self, metrics: dict[str, float]) -> None:
                step = self._logging_step
                super().publish_metrics(metrics)
                copy(step, metrics)

        self.monitor = Monitor(
            run_id, sampling_interval=interval, samples_before_logging=1, tracking_uri=tracking_uri
        )
        self.monitor.start()

    def _copy(self, step: int, metrics: dict[str, float]) -> None:
        values = {_PREFIX + key: float(value) for key, value in metrics.items()}
        self._append({"t": "s", "step": step, "time": time.time(), "m": values})

    def _append(self, record: dict[str, Any]) -> None:
        with self._lock, contextlib.suppress(OSError), open_private(self.path) as out:
            out.write(encode(record))

    def finish(self, client: Any) -> None:
        """Stop sampling (the cell ended): log what was sampled since the last publication
        (a run shorter than one interval gets its one sample), then the GPU energy."""
        monitor = self.monitor
        monitor._shutdown_event.set()
        thread = monitor._process
        if thread is not None:
            thread.join()
        with contextlib.suppress(Exception):  # MLflow logs its own failures
            if any(m._metrics for m in monitor.monitors):
                monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
        joules = self.energy.joules()
        if not joules:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = monitor._logging_step
        values = {f"{_PREFIX}gpu_{i}_energy_joules": j for i, j in joules.items()}
        values[ENERGY_METRIC] = sum(joules.values())
        try:
            client.log_batch(
                self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()]
            )
        except Exception as error:  # noqa: BLE001 - a figure lost, not the run
            log.warning("could not log the GPU energy of run %s: %s", self.run_id, error)
        self._append({"t": "energy", "step": step, "time": now / 1000, "m": values})


class EnergyMeter:
    """Joules each GPU used since this meter was made, from NVML's energy counter (in mJ,
    since the driver loaded). Empty where NVML, a GPU or the counter is missing."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - no NVML, no driver, no GPU: no energy figure
            self._handles = []
        self._start = self._read()

    def _read(self) -> dict[int, int]:
        readings = {}
        for i, handle in enumerate(self._handles):
            # Older GPUs do not count energy: they are left out, not reported as 0.
            with contextlib.suppress(Exception):
                readings[i] = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        return readings

    def joules(self) -> dict[int, float]:
        now = self._read()
        return {i: (now[i] - start) / 1000 for i, start in self._start.items() if i in now}
