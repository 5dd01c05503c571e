"""A stand-in for NVIDIA's ``pynvml`` (nvidia-ml-py) describing one GPU, for machines without
one: put this folder first on ``PYTHONPATH`` and MLflow's GPU monitor and nbtrack's energy
meter read it as they would read a real GPU.

The GPU draws a steady 250 W: its energy counter (millijoules, as NVML counts) grows by 250 J
per second from when this module is imported. Only the functions MLflow's ``GPUMonitor`` and
nbtrack's ``EnergyMeter`` call are here.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

WATTS = 250.0
_STARTED = time.monotonic()
_HANDLE = object()


class NVMLError(Exception):
    pass


def nvmlInit() -> None:
    pass


def nvmlShutdown() -> None:
    pass


def nvmlDeviceGetCount() -> int:
    return 1


def nvmlDeviceGetHandleByIndex(index: int) -> object:
    if index != 0:
        raise NVMLError("invalid index")
    return _HANDLE


def nvmlDeviceGetMemoryInfo(handle: object) -> SimpleNamespace:
    return SimpleNamespace(used=30 * 2**30, total=140 * 2**30, free=110 * 2**30)


def nvmlDeviceGetUtilizationRates(handle: object) -> SimpleNamespace:
    return SimpleNamespace(gpu=87, memory=40)


def nvmlDeviceGetPowerUsage(handle: object) -> int:
    return int(WATTS * 1000)  # milliwatts


def nvmlDeviceGetEnforcedPowerLimit(handle: object) -> int:
    return 700_000


def nvmlDeviceGetTotalEnergyConsumption(handle: object) -> int:
    return int((time.monotonic() - _STARTED) * WATTS * 1000)  # millijoules
