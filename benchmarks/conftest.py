"""Shared benchmark plumbing: the device under test, thread count, and a synchronised timer.

Run on CPU with ``python -m pytest benchmarks --benchmark-only``; set ``MMSR_BENCH_DEVICE=cuda``
to time the CUDA kernels instead. Every case records the device, torch's thread count and the
bytes it moves, so ``benchmarks/summarize.py`` can print ratios and effective bandwidth.
"""
from __future__ import annotations

import os
import platform

import pytest
import torch

BENCH_DEVICE = os.environ.get("MMSR_BENCH_DEVICE", "cpu")
BENCH_THREADS = int(os.environ.get("MMSR_BENCH_THREADS", "2"))


def pytest_configure(config):
    torch.set_num_threads(BENCH_THREADS)


@pytest.fixture(scope="session")
def device() -> str:
    if BENCH_DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("MMSR_BENCH_DEVICE asks for CUDA but no GPU is present")
    return BENCH_DEVICE


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores visible)"


def run_timed(benchmark, fn, device: str, *, bytes_moved: int, rounds: int = 10, warmup: int = 2, calls: int = 1):
    """Times ``fn`` with pytest-benchmark, synchronising CUDA inside the timed region.

    On CUDA a round makes ``calls`` back-to-back calls before it synchronises: a kernel of ~0.1 ms
    would otherwise be timed mostly as launch and synchronisation latency. The per-call time is the
    round's time / ``calls`` (recorded as ``calls_per_round``; ``summarize.py`` divides by it).
    """
    calls = calls if device.startswith("cuda") else 1
    benchmark.extra_info.update(
        device=describe_device(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        bytes_moved=bytes_moved,
        calls_per_round=calls,
    )
    if device.startswith("cuda"):
        def timed():
            for _ in range(calls):
                out = fn()
            torch.cuda.synchronize()
            return out
    else:
        timed = fn
    return benchmark.pedantic(timed, rounds=rounds, warmup_rounds=warmup, iterations=1)
