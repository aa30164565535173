"""`--threads N` of the commands that compute on the CPU: it reaches mmsr's native kernels before any
work, and bad values are refused by name.

Every test starts with one torch thread (the ``one_thread`` fixture, which also puts the count back
after) and asks for 2, so a command that ignored the option would leave 1 behind.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmsr import _ops
from mmsr.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

_COMMANDS = ["upscale", "eval", "report", "classify", "calibrate"]


@pytest.fixture
def tvat_threads(monkeypatch):
    """The thread counts mmsr's CPU TVAT kernel was called with, in call order."""
    seen = []
    original = _ops._core.tvat_cpu

    def recording(**kwargs):
        seen.append(kwargs["threads"])
        return original(**kwargs)

    monkeypatch.setattr(_ops._core, "tvat_cpu", recording)
    return seen


def _image(path, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    rgb[:, :20] = 120  # a flat half and a busy half
    Image.fromarray(rgb).save(path)
    return path


def test_classify_scores_with_the_threads_asked_for(tmp_path, tvat_threads, capsys):
    image = _image(tmp_path / "a.png")
    assert main(["classify", str(image), "--boundaries", "0.02", "--threads", "2"]) == 0
    assert tvat_threads and set(tvat_threads) == {2}
    assert torch.get_num_threads() == 2


def test_without_threads_the_setting_is_left_alone(tmp_path, tvat_threads, capsys):
    image = _image(tmp_path / "a.png")
    assert main(["classify", str(image), "--boundaries", "0.02"]) == 0
    assert set(tvat_threads) == {1}


def test_upscale_routes_with_the_threads_asked_for(tmp_path, cli_bundle_path, tvat_threads, capsys):
    image = _image(tmp_path / "a.png")
    assert main(["upscale", str(image), "-o", str(tmp_path / "b.png"), "--bundle", str(cli_bundle_path),
                 "--threads", "2"]) == 0
    assert (tmp_path / "b.png").is_file()
    assert tvat_threads and set(tvat_threads) == {2}


def test_eval_runs_with_the_threads_asked_for(tmp_path, cli_bundle_path, capsys):
    hr = tmp_path / "hr"
    hr.mkdir()
    _image(hr / "a.png")
    code = main(["eval", "--hr", str(hr), "--bundle", str(cli_bundle_path), "--out", str(tmp_path / "eval"),
                 "--threads", "2"])
    assert code == 0, capsys.readouterr().err
    assert torch.get_num_threads() == 2
    # results.json records the threads the upscaling ran with, so its timings say what they measured.
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["torch_threads"] == 2


def test_calibrate_scores_with_the_threads_asked_for(tmp_path, tvat_threads, capsys):
    data = tmp_path / "train"
    data.mkdir()
    for seed in range(3):
        _image(data / f"{seed}.png", seed)
    code = main(["calibrate", str(data), "--crop", "16", "--samples", "64", "--holdout", "0", "--threads", "2"])
    assert code == 0, capsys.readouterr().err
    assert tvat_threads and set(tvat_threads) == {2}


def test_report_sets_threads_before_it_reads_anything(tmp_path, capsys):
    # The run does not exist: the command fails on it, after the threads were set.
    assert main(["report", str(tmp_path / "no_such_run"), "--threads", "2"]) != 0
    assert "no_such_run" in capsys.readouterr().err
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("command", _COMMANDS)
@pytest.mark.parametrize("value, message", [("0", "expected at least 1 CPU thread, got '0'"),
                                            ("two", "expected an integer, got 'two'")])
def test_bad_threads_are_refused_by_name(command, value, message, capsys):
    # argparse checks options before the positional arguments are looked at, so none are needed.
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--threads", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--threads" in err and message in err


def test_every_cpu_command_lists_threads_in_its_help(capsys):
    for command in _COMMANDS:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--threads N" in capsys.readouterr().out, command
