"""The machine a run used: CPU model and threads, GPU, torch and mmsr versions, load, date.

Timings from these shared machines mean little without the load they ran under, so the load
average is read at the start and at the end of a run.

Example:
    >>> sorted(describe_machine(["cpu"]))[:3]
    ['cpu_model', 'cpu_threads', 'gpus']
"""
from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import List, Optional, Sequence

import torch

import mmsr

__all__ = ["describe_machine", "load_average", "now_utc"]


def now_utc() -> str:
    """The current time as ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def load_average() -> Optional[List[float]]:
    """The 1-, 5- and 15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    # /proc/cpuinfo names the model on Linux; platform.processor() is often empty there.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(devices: Sequence[str]) -> dict:
    """JSON-ready facts about this machine and software; GPUs are named when ``devices`` use CUDA."""
    gpus = []
    if any(str(d).startswith("cuda") for d in devices) and torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu_model": _cpu_model(),
        "cpu_threads": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "mmsr": mmsr.__version__,
        "mmsr_build": mmsr.build_info(),
    }
