"""benchmarks/concurrency_probe.py: each config's pixel steps alone, then one process per config sharing
the device, and the work they did together priced at their alone step times.

Run on the CPU with tiny models: it checks the probe's plumbing (processes meet at a barrier, every one
reports its steps, the gain is computed from them), not any speed.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def probe(monkeypatch):
    """The probe, imported by name from benchmarks/: its spawned processes import it again by that name."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("concurrency_probe", None)
    yield importlib.import_module("concurrency_probe")
    sys.modules.pop("concurrency_probe", None)


def test_every_config_steps_alone_and_together_and_the_gain_is_their_work_over_the_window(probe, capsys):
    args = ["--device", "cpu", "--configs", "1-2w8r,2-2w8r", "--batch", "2", "--crop", "16", "--steps", "2",
            "--warmup", "1", "--window", "0.5", "--modes", "fp32"]
    assert probe.main(args) == 0
    text = capsys.readouterr().out
    rows = re.findall(r"^\| (\S+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9]+) \|$", text, flags=re.M)
    assert [r[0] for r in rows] == ["1-2w8r", "2-2w8r"]
    alone = {c: float(a) for c, a, _, _ in rows}
    steps = {c: int(n) for c, _, _, n in rows}
    assert all(n >= 1 for n in steps.values()) and all(a > 0 for a in alone.values())
    work, window, gain = re.search(r"alone step times: ([0-9.]+) s in ([0-9.]+) s: \*\*([0-9.]+)×\*\*", text).groups()
    # the alone times are printed to 0.01 ms (so each step's price is off by up to 0.005 ms), the work to 0.01 s
    priced = sum(steps[c] * alone[c] / 1e3 for c in alone)
    assert float(work) == pytest.approx(priced, abs=0.005 + sum(steps.values()) * 0.005e-3 + 1e-9)
    assert float(window) >= 0.5
    # work and window are printed to 0.01 s and the gain to 0.01, so the true work and window lie within
    # 0.005 of what is printed and the printed gain within 0.005 of their ratio: check against that interval
    # (a fixed tolerance is not a bound: over a 0.5 s window a 0.005 s rounding moves the ratio by 1%)
    work, window, gain = float(work), float(window), float(gain)
    lowest = (work - 0.005) / (window + 0.005) - 0.005
    highest = (work + 0.005) / (window - 0.005) + 0.005
    assert lowest <= gain <= highest
    assert "**fp32 (TF32 convs) + channels_last**" in text and "bf16" not in text


@pytest.mark.parametrize("args, message", [
    (["--modes", "fp16"], "--modes: unknown mode 'fp16'; choose from fp32, bf16"),
    (["--configs", "3-x"], "--configs: invalid model config '3-x'"),
    (["--crop", "30"], "--crop a multiple of --scale"),
    (["--window", "0"], "--window above 0"),
])
def test_bad_arguments_name_what_is_wrong(probe, args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        probe.main(["--device", "cpu", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
