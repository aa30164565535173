"""End-to-end training on CPU with tiny models: CLI, bundle, logs, workers, resume, torchrun, baseline.

Models here are 1-2 residual blocks at width 8 on 32-pixel crops, a few dozen steps: these tests
check the machinery, not the quality.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmsr
from mmsr.bundle import load_bundle
from mmsr.cli import main as mmsr_main
from mmsr.train.trainer import FAIL_ENV, ClassTrainer

TINY = [
    "--devices", "cpu",
    "--crop", "32",
    "--batch", "4",
    "--configs", "1-2w8,2-2w8",
    "--disc-width", "8",
    "--pixel-steps", "12",
    "--gan-steps", "4",
    "--val-every", "4",
    "--log-every", "2",
    "--checkpoint-every", "4",
    "--holdout", "0.3",
    "--val-crops", "4",
    "--calib-samples", "256",
    "--threads", "1",
    "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Six small photo-like images, one in a subfolder: each has a smooth half and a textured half,
    so every image, held out or not, holds crops of both TVAT classes."""
    root = tmp_path_factory.mktemp("hr")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i, noise in enumerate([8, 12, 20, 30, 45, 60]):
        h, w = 64 + 8 * i, 72
        y, x = np.mgrid[0:h, 0:w] / 72
        image = np.stack([x, y, (x + y) / 2], axis=-1) * 200 + 20
        image[:, w // 2 :] += 30 * np.sin(x[:, w // 2 :, None] * (20 + i)) + rng.normal(0, noise, (h, w - w // 2, 3))
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / ("sub" if i == 3 else "") / f"im{i}.png")
    return root


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmsr", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _summary(out: Path) -> dict:
    return json.loads(out.with_name(out.stem + ".run").joinpath("summary.json").read_text())


def _log(out: Path, klass: int) -> list[dict]:
    path = out.with_name(out.stem + ".run") / "logs" / f"class{klass}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_cli_trains_two_classes_into_a_loadable_bundle_with_logs_and_summary(data_dir, tmp_path):
    out = tmp_path / "mmsr.safetensors"
    done = _run_cli("train", str(data_dir), "--out", str(out), *TINY)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("perceptual loss off") == 1

    summary = _summary(out)
    bundle = load_bundle(out)
    assert [c.name for c in bundle.configs] == ["1-2w8", "2-2w8"]
    assert list(bundle.boundaries) == summary["boundaries"] and len(bundle.boundaries) == 1
    assert bundle.threshold == pytest.approx(mmsr.DEFAULT_TVAT_THRESHOLD)
    assert bundle.scale == 4
    provenance = bundle.provenance
    assert provenance["data"] == str(data_dir) and provenance["images"] == 6
    assert [c["iterations"] for c in provenance["classes"]] == [16, 16]
    assert all(c["wall_time_s"] > 0 for c in provenance["classes"])
    assert provenance["devices"] == ["cpu"] and provenance["mmsr_version"] == mmsr.__version__
    assert "train" in provenance["command"]

    assert summary["mode"] == "mmsr" and summary["data"]["train_images"] + summary["data"]["val_images"] == 6
    assert sum(summary["class_shares"]) == pytest.approx(1.0)
    for entry in summary["classes"]:
        assert entry["status"] == "finished" and entry["device"] == "cpu" and entry["steps"] == 16
        assert entry["wall_time_s"] > 0 and entry["val_psnr"] is not None
    times = [c["wall_time_s"] for c in summary["classes"]]
    assert summary["predicted_wall_time_separate_devices_s"] == pytest.approx(max(times))
    assert summary["sequential_wall_time_s"] == pytest.approx(sum(times))
    assert "computed" in summary["predicted_note"]
    assert summary["wall_time_s"] >= max(times)
    assert summary["settings"]["crop"] == 32 and summary["settings"]["configs"] == ["1-2w8", "2-2w8"]

    records = _log(out, 1)
    train = [r for r in records if r["event"] == "train"]
    assert {"step", "phase", "loss_pixel", "crops_per_s", "elapsed_s"} <= set(train[0])
    assert {r["phase"] for r in train} == {"pixel", "gan"}
    assert {"loss_adv", "loss_d"} <= set(train[-1])
    assert any(r["event"] == "val" for r in records) and records[-1]["event"] == "finish"


def test_user_boundaries_are_used_and_stored(data_dir, tmp_path):
    out = tmp_path / "b.safetensors"
    code = mmsr_main(["train", str(data_dir), "--out", str(out), *TINY, "--boundaries", "0.05", "--gan-steps", "0"])
    assert code == 0
    assert list(load_bundle(out).boundaries) == [0.05]
    assert _summary(out)["boundaries"] == [0.05]


def test_init_starts_from_the_bundle_weights_and_records_its_history(data_dir, tmp_path):
    from mmsr.bundle import Bundle, read_bundle_metadata, save_bundle

    from dataclasses import replace

    start = Bundle.random(["1-2w8", "2-2w8"], threshold=0.002, boundaries=[0.05], seed=123)
    start = replace(start, provenance={"note": "first run"})
    first = save_bundle(start, tmp_path / "first.safetensors")
    out = tmp_path / "tuned.safetensors"
    # An lr of 1e-9 moves no weight visibly: what comes out is what went in, if --init was used.
    options = [a for a in TINY if a not in ("--configs", "1-2w8,2-2w8")]
    code = mmsr_main(["train", str(data_dir), "--out", str(out), *options, "--init", str(first),
                      "--gan-steps", "0", "--pixel-steps", "2", "--lr", "1e-9"])  # fmt: skip
    assert code == 0
    tuned = load_bundle(out)
    assert [c.name for c in tuned.configs] == ["1-2w8", "2-2w8"]
    assert list(tuned.boundaries) == [0.05] and tuned.threshold == 0.002
    for k in range(2):
        for key in ("head.0.weight", "tail.weight"):
            init = start.state_dicts[k][key].half().float()  # the bundle stores float16
            assert torch.allclose(tuned.state_dicts[k][key], init, atol=1e-3), (k, key)
    history = read_bundle_metadata(out)["provenance"]["init"]
    assert history == {"bundle": str(first.resolve()), "provenance": {"note": "first run"}}

    # The same run without --init starts from fresh random weights, nowhere near the bundle's.
    fresh = tmp_path / "fresh.safetensors"
    assert mmsr_main(["train", str(data_dir), "--out", str(fresh), *TINY, "--boundaries", "0.05",
                      "--threshold", "0.002", "--gan-steps", "0", "--pixel-steps", "2", "--lr", "1e-9"]) == 0  # fmt: skip
    other = load_bundle(fresh).state_dicts[0]["head.0.weight"]
    assert not torch.allclose(other, start.state_dicts[0]["head.0.weight"].half().float(), atol=1e-3)
    assert read_bundle_metadata(fresh)["provenance"]["init"] is None


def _train_from_one_model(data_dir, tmp_path, config: str, seed: int, *options: str):
    """Train TINY's two classes from a random one-model bundle; returns (that bundle, its file, --out)."""
    from mmsr.bundle import Bundle, save_bundle

    deep = Bundle.random([config], threshold=0.002, boundaries=[], seed=seed)
    source = save_bundle(deep, tmp_path / "deep.safetensors")
    out = tmp_path / "out.safetensors"
    assert mmsr_main(["train", str(data_dir), "--out", str(out), *TINY, "--init", str(source), "--gan-steps", "0", *options]) == 0
    return deep, source, out


def test_a_one_model_init_starts_each_class_from_its_first_blocks(data_dir, tmp_path, capsys):
    # An lr of 1e-9 moves no weight visibly: each class holds what it started from.
    deep, source, out = _train_from_one_model(data_dir, tmp_path, "4-2w8", 7, "--pixel-steps", "2", "--lr", "1e-9")
    err = capsys.readouterr().err
    assert f"class 0 (1-2w8): generator starts from {source.resolve()} (its first 1 of 4 residual blocks)" in err
    assert f"class 1 (2-2w8): generator starts from {source.resolve()} (its first 2 of 4 residual blocks)" in err
    tuned = load_bundle(out)
    assert [c.name for c in tuned.configs] == ["1-2w8", "2-2w8"]
    assert len(tuned.boundaries) == 1 and tuned.threshold == 0.002  # calibrated: the bundle had no routing
    start = deep.state_dicts[0]
    for k, blocks in enumerate((1, 2)):
        state = tuned.state_dicts[k]
        assert {name.split(".")[1] for name in state if name.startswith("body.")} == {str(i) for i in range(blocks)}
        for key in ("head.0.weight", f"body.{blocks - 1}.conv2.weight", "trunk.0.weight", "upsample.0.0.weight", "tail.weight"):
            assert torch.allclose(state[key], start[key].half().float(), atol=1e-3), (k, key)


def test_a_class_given_no_steps_keeps_its_init_weights_and_snapshots_them(data_dir, tmp_path):
    _, source, out = _train_from_one_model(data_dir, tmp_path, "2-2w8", 8, "--pixel-steps", "4,0", "--snapshots", "2")
    kept, stored = load_bundle(out).state_dicts[1], load_bundle(source).state_dicts[0]  # both float16 on disk
    assert kept.keys() == stored.keys()
    assert all(torch.equal(kept[name], stored[name]) for name in kept)  # untouched, bit for bit
    run = out.with_suffix(".run")
    summary = _summary(out)["classes"][1]
    assert summary["steps"] == 0 and summary["status"] == "finished"
    for index in range(3):  # every point of the curve holds the untouched model
        snap = load_bundle(run / "snapshots" / "class1" / f"{index:03d}.safetensors").state_dicts[0]
        assert all(torch.equal(snap[name], kept[name]) for name in kept), index


def test_boundaries_in_the_papers_units_are_refused_with_the_data_range(data_dir, tmp_path, capsys):
    code = mmsr_main(["train", str(data_dir), "--out", str(tmp_path / "p.safetensors"), *TINY, "--boundaries", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "leave class(es) [1] below --min-class-fraction" in err and "the paper's 2 and 4 are in other units" in err


def test_pixel_loss_falls_on_one_fixed_batch(data_dir, tmp_path):
    from mmsr.data import load_folder

    settings = _settings(tmp_path, pixel_steps=(60,), lr=(2e-3,))
    images = load_folder(data_dir, min_size=32, log=None).images
    trainer = ClassTrainer(settings.jobs()[0], settings, images, None, (), "cpu")
    torch.manual_seed(0)
    lr, hr = trainer.batches.next(4)
    losses = [float(trainer._pixel_step(lr, hr)["loss_pixel"]) for _ in range(60)]
    assert losses[-1] < 0.3 * losses[0], losses


def _settings(tmp_path, **changes):
    import argparse
    from dataclasses import replace

    from mmsr.train.config import add_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["unused", "--out", str(tmp_path / "x.safetensors"), "--baseline"])
    base = settings_from_args(args)
    return replace(base, configs=("2-2w8",), batch=(4,), crop=32, gan_steps=(0,), **changes)


def test_baseline_trains_one_16_8_model_on_all_crops_with_the_same_budget(data_dir, tmp_path):
    out = tmp_path / "base.safetensors"
    code = mmsr_main(
        [
            "train", str(data_dir), "--out", str(out), *TINY,
            "--baseline", "--baseline-config", "16-8w8", "--gan-steps", "0", "--channels-last",
        ]  # fmt: skip
    )
    assert code == 0
    bundle = load_bundle(out)
    assert [c.name for c in bundle.configs] == ["16-8w8"] and list(bundle.boundaries) == []
    summary = _summary(out)
    assert summary["mode"] == "baseline" and summary["boundaries"] == []
    assert summary["classes"][0]["steps"] == 2 * 12  # two classes' pixel budgets


def test_early_stopping_ends_the_pixel_phase_and_restores_the_best(data_dir, tmp_path):
    out = tmp_path / "es.safetensors"
    code = mmsr_main(
        ["train", str(data_dir), "--out", str(out), *TINY, "--early-stop", "1", "--min-delta", "100"]
    )
    assert code == 0
    for entry in _summary(out)["classes"]:
        # First validation (step 4) sets the best; the second (step 8) is not 100 dB better: stop.
        assert entry["early_stopped_at"] == 8 and entry["pixel_steps"] == 8 and entry["gan_steps"] == 4
    events = [r["event"] for r in _log(out, 0)]
    assert "early_stop" in events and "restore_best" in events


@pytest.mark.slow
@pytest.mark.parametrize("devices", [["cpu,cpu"], ["cpu", "--concurrent"]], ids=["two-devices", "concurrent-on-one"])
def test_two_cpu_workers_train_in_separate_processes(data_dir, tmp_path, devices):
    out = tmp_path / "w.safetensors"
    options = [o for option in TINY for o in (devices if option == "cpu" else [option])]
    code = mmsr_main(["train", str(data_dir), "--out", str(out), *options])
    assert code == 0
    classes = _summary(out)["classes"]
    pids = {c["pid"] for c in classes}
    assert len(pids) == 2 and os.getpid() not in pids
    assert sorted(c["worker"] for c in classes) == [0, 1]
    assert len(load_bundle(out).configs) == 2


@pytest.mark.slow
def test_a_failed_worker_is_reported_and_resume_finishes_only_that_class(data_dir, tmp_path, capsys):
    out = tmp_path / "r.safetensors"
    args = ["train", str(data_dir), "--out", str(out), *[o if o != "cpu" else "cpu,cpu" for o in TINY]]
    failed = _run_cli(*args, env={FAIL_ENV: "1:6"})
    assert failed.returncode == 1
    assert "class 1 (2-2w8) on cpu failed: InjectedFailure" in failed.stderr
    assert "--resume" in failed.stderr and not out.exists()
    statuses = {c["index"]: c for c in _summary(out)["classes"]}
    assert statuses[0]["status"] == "finished" and statuses[1]["status"] == "failed"
    assert "injected failure" in statuses[1]["error"]

    capsys.readouterr()
    assert mmsr_main(args) == 2
    assert "pass --resume" in capsys.readouterr().err

    # Resume may use other devices: here the remaining class trains in this process.
    single = [o if o != "cpu,cpu" else "cpu" for o in args]
    assert mmsr_main([*single, "--resume"]) == 0
    assert "class 0 (1-2w8) finished in an earlier run; not retrained" in capsys.readouterr().err
    classes = {c["index"]: c for c in _summary(out)["classes"]}
    assert classes[0]["session_steps"] == 0 and classes[0]["steps"] == 16
    assert classes[1]["resumed_from"] == 4 and classes[1]["session_steps"] == 12 and classes[1]["steps"] == 16
    assert len(load_bundle(out).configs) == 2


def test_a_warm_started_run_resumes_only_with_the_same_init(data_dir, tmp_path, capsys):
    from mmsr.bundle import Bundle, save_bundle

    first = save_bundle(Bundle.random(["1-2w8", "2-2w8"], threshold=0.002, boundaries=[0.05], seed=7),
                        tmp_path / "first.safetensors")  # fmt: skip
    out = tmp_path / "tuned.safetensors"
    options = [a for a in TINY if a not in ("--configs", "1-2w8,2-2w8")]
    args = ["train", str(data_dir), "--out", str(out), *options, "--gan-steps", "0"]
    failed = _run_cli(*args, "--init", str(first), env={FAIL_ENV: "1:6"})
    assert failed.returncode == 1 and not out.exists()

    capsys.readouterr()
    other = save_bundle(Bundle.random(["1-2w8", "2-2w8"], threshold=0.002, boundaries=[0.05], seed=8),
                        tmp_path / "other.safetensors")  # fmt: skip
    assert mmsr_main([*args, "--init", str(other), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"--init: {first.resolve()} (the run) vs {other.resolve()} (this command)" in err
    assert "resume with the run's options" in err
    assert mmsr_main([*args, "--init", str(first), "--resume"]) == 0
    classes = {c["index"]: c for c in _summary(out)["classes"]}
    assert classes[1]["resumed_from"] == 4 and classes[1]["steps"] == 12


def test_resume_refuses_a_corrupt_checkpoint_with_a_clear_message(data_dir, tmp_path):
    out = tmp_path / "c.safetensors"
    args = ["train", str(data_dir), "--out", str(out), *TINY, "--keep-checkpoints", "1"]
    os.environ[FAIL_ENV] = "0:5"
    try:
        assert mmsr_main(args) == 1
    finally:
        del os.environ[FAIL_ENV]
    checkpoint = out.with_name("c.run") / "checkpoints" / "class0" / "step00000004.pt"
    data = bytearray(checkpoint.read_bytes())
    data[-100] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    assert mmsr_main([*args, "--resume"]) == 1
    entry = _summary(out)["classes"][0]
    assert entry["status"] == "failed"
    assert "step00000004.pt is corrupt: sha256 mismatch" in entry["error"]
    assert "Delete" in entry["error"]


def test_bf16_autocast_is_refused_on_cpu(data_dir, tmp_path, capsys):
    code = mmsr_main(["train", str(data_dir), "--out", str(tmp_path / "a.safetensors"), *TINY, "--amp", "bf16"])
    assert code == 2
    assert "--amp bf16 needs CUDA devices" in capsys.readouterr().err


def test_a_vgg19_file_turns_the_perceptual_loss_on(data_dir, tmp_path, capsys):
    from mmsr.train.losses import VGG19Features

    vgg = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}, vgg)
    out = tmp_path / "p.safetensors"
    options = ["--pixel-steps", "2", "--gan-steps", "2", "--vgg19", str(vgg), "--configs", "1-2w8", "--classes", "1"]
    code = mmsr_main(["train", str(data_dir), "--out", str(out), *TINY, *options])
    assert code == 0
    assert "perceptual loss: VGG19 conv5_4 features from" in capsys.readouterr().err
    gan = [r for r in _log(out, 0) if r["event"] == "train" and r["phase"] == "gan"]
    assert gan and all(r["loss_perceptual"] >= 0 for r in gan)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_gloo_trains_classes_on_ranks_and_the_extra_rank_joins_with_ddp(data_dir, tmp_path):
    out = tmp_path / "t.safetensors"
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc-per-node", "3",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        "--log-dir", str(tmp_path / "torchrun-logs"),  # else torchrun leaves a torchelastic_* folder in /tmp
        "-m", "mmsr.train", str(data_dir), "--out", str(out), *TINY,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    classes = _summary(out)["classes"]
    ranks = sorted(c["ranks"] for c in classes)
    assert ranks == [1, 2]
    joint = next(c for c in classes if c["ranks"] == 2)
    assert joint["steps"] == 8  # 16 steps' crops in 8 steps of two ranks
    assert "ranks [1, 2]" in joint["device"]
    assert len(load_bundle(out).configs) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "devices, signal_name", [("cpu", "SIGINT"), ("cpu,cpu", "SIGTERM")], ids=["ctrl-c-in-process", "sigterm-two-workers"]
)
def test_an_interrupted_run_checkpoints_every_running_class(data_dir, tmp_path, devices, signal_name):
    import signal
    import time

    from mmsr.train.checkpoint import load_latest

    out = tmp_path / "i.safetensors"
    run_dir = out.with_name("i.run")
    options = [o if o != "cpu" else devices for o in TINY]
    long_run = ["--pixel-steps", "100000", "--early-stop", "0", "--checkpoint-every", "100000", "--log-every", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "mmsr", "train", str(data_dir), "--out", str(out), *options, *long_run],
        stderr=subprocess.PIPE,
        text=True,
    )
    running = [0, 1] if devices == "cpu,cpu" else [1]  # one worker runs the costlier class first
    logs = [run_dir / "logs" / f"class{k}.jsonl" for k in running]
    deadline = time.monotonic() + 90
    while not all(p.is_file() and p.read_text().count("\n") >= 2 for p in logs):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() else "slow"
        time.sleep(0.2)
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    for k in running:
        assert summary["classes"][k]["status"] == "interrupted"
        state, _ = load_latest(run_dir / "checkpoints" / f"class{k}")
        assert not state["finished"] and state["step"] >= 2
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Snapshots (--snapshots K) and quality against training time (mmsr report --quality)


def _snapshot_info(run_dir: Path, klass: int) -> dict[int, dict]:
    from mmsr.bundle import read_bundle_metadata

    folder = run_dir / "snapshots" / f"class{klass}"
    infos = [read_bundle_metadata(p)["provenance"]["snapshot"] for p in sorted(folder.glob("*.safetensors"))]
    return {info["index"]: info for info in infos}


def test_snapshots_record_each_class_through_its_pixel_phase(data_dir, tmp_path):
    from mmsr.train.snapshots import read_series

    out = tmp_path / "m.safetensors"
    assert mmsr_main(["train", str(data_dir), "--out", str(out), *TINY, "--gan-steps", "0", "--snapshots", "3"]) == 0
    run_dir = out.with_name("m.run")
    final = load_bundle(out)
    for k in range(2):
        infos = _snapshot_info(run_dir, k)
        assert sorted(infos) == [0, 1, 2, 3]
        assert [infos[i]["step"] for i in range(4)] == [0, 4, 8, 12]
        elapsed = [infos[i]["elapsed_s"] for i in range(4)]
        assert elapsed == sorted(elapsed) and elapsed[0] < elapsed[3]
    series = read_series(run_dir)
    assert series.count == 3 and series.complete() and series.boundaries == final.boundaries
    # The last snapshot is the bundle the run ships; the first is where training started.
    last, first = series.bundle(3), series.bundle(0)
    for k in range(2):
        for name, tensor in final.state_dicts[k].items():
            assert torch.equal(last.state_dicts[k][name], tensor), (k, name)
        assert not torch.equal(first.state_dicts[k]["head.0.weight"], final.state_dicts[k]["head.0.weight"])
    events = [r for r in _log(out, 0) if r["event"] == "snapshot"]
    assert [r["index"] for r in events] == [0, 1, 2, 3]


def test_a_class_that_stops_early_stands_in_with_its_final_snapshot(data_dir, tmp_path):
    from mmsr.train.snapshots import read_series

    out = tmp_path / "es.safetensors"
    code = mmsr_main(["train", str(data_dir), "--out", str(out), *TINY, "--gan-steps", "0", "--snapshots", "6",
                      "--early-stop", "1", "--min-delta", "100"])  # fmt: skip
    assert code == 0
    run_dir = out.with_name("es.run")
    infos = _snapshot_info(run_dir, 0)
    # Planned steps 0, 2, ..., 12; the class stops at step 8, so 5 (step 10) is never taken.
    assert sorted(infos) == [0, 1, 2, 3, 4, 6] and infos[6]["step"] == 8
    series = read_series(run_dir)
    assert series.at(5)[0].index == 6 and series.at(4)[0].index == 4


def test_resume_continues_the_snapshots(data_dir, tmp_path):
    out = tmp_path / "r.safetensors"
    args = ["train", str(data_dir), "--out", str(out), *TINY, "--gan-steps", "0", "--snapshots", "3"]
    assert _run_cli(*args, env={FAIL_ENV: "0:6"}).returncode == 1
    assert sorted(_snapshot_info(out.with_name("r.run"), 0)) == [0, 1]
    assert mmsr_main([*args, "--resume"]) == 0
    infos = _snapshot_info(out.with_name("r.run"), 0)
    assert sorted(infos) == [0, 1, 2, 3]
    elapsed = [infos[i]["elapsed_s"] for i in range(4)]
    assert elapsed == sorted(elapsed)


@pytest.mark.slow
def test_report_quality_measures_every_snapshot_and_compares_at_equal_quality(data_dir, tmp_path, capsys):
    from mmsr.evaluate import bundle_method, evaluate_folder

    common = ["train", str(data_dir), *TINY, "--gan-steps", "0", "--snapshots", "2"]
    mmsr_out, base_out = tmp_path / "mmsr.safetensors", tmp_path / "base.safetensors"
    assert mmsr_main([*common, "--out", str(mmsr_out)]) == 0
    assert mmsr_main([*common, "--out", str(base_out), "--baseline", "--baseline-config", "16-8w8"]) == 0
    capsys.readouterr()
    report = tmp_path / "report.md"
    code = mmsr_main(["report", str(mmsr_out.with_name("mmsr.run")), str(base_out.with_name("base.run")),
                      "--quality", str(data_dir), "--out", str(report)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert report.read_text() == text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith(("| mmsr | ", "| base | "))]
    curve = {(r[0].strip(), r[1].strip()): r for r in rows if "/" in r[1]}
    assert sorted(curve) == [("base", "0/2"), ("base", "1/2"), ("base", "2/2"),
                             ("mmsr", "0/2"), ("mmsr", "1/2"), ("mmsr", "2/2")]  # fmt: skip
    assert curve[("mmsr", "1/2")][2].strip() == "6 · 6" and curve[("base", "2/2")][2].strip() == "24"
    # The final snapshot's PSNR is what `mmsr eval` measures for the shipped bundle.
    shipped = evaluate_folder(data_dir, [bundle_method("m", mmsr_out)], scale=4, with_niqe=False, progress=False)
    assert float(curve[("mmsr", "2/2")][5]) == pytest.approx(shipped.mean()["m"].psnr_y, abs=0.006)
    assert "Training time at equal quality (baseline: base)" in text
    assert any(line.startswith("| mmsr | ") and ("×" in line or "at the start" in line) for line in text.splitlines())


@pytest.mark.slow
def test_report_pools_seeds_and_measures_each_snapshot_once(data_dir, tmp_path, capsys, monkeypatch):
    import mmsr.evaluate_curve as evaluate_curve

    common = ["train", str(data_dir), *TINY, "--gan-steps", "0", "--pixel-steps", "4", "--snapshots", "1"]
    specs = []
    for seed in (0, 1):
        for name, extra in (("w", []), ("b", ["--baseline", "--baseline-config", "2-2w8"])):
            out = tmp_path / f"{name}{seed}.safetensors"
            assert mmsr_main([*common, "--seed", str(seed), "--out", str(out), *extra]) == 0
            specs.append(f"{name}={out.with_name(f'{name}{seed}.run')}")
    capsys.readouterr()
    # A 2-2 single-class run is no 16-8 baseline by itself: the b runs are named as the baseline.
    args = ["report", *specs, "--baseline", "b", "--quality", str(data_dir)]
    assert mmsr_main(args) == 0
    text = capsys.readouterr().out
    assert "Baselines: **b (seed 0)**, **b (seed 1)**" in text
    # A row per seed (the pairing by seed is checked by hand in test_evaluate_seeds; tiny random models may
    # already start at equal quality).
    equal = text.split("### Training time at equal quality (baseline: b (seed 0), b (seed 1))")[1]
    for seed in (0, 1):
        row = next(line for line in equal.splitlines() if line.startswith(f"| w (seed {seed}) | "))
        assert "×" in row or "at the start" in row
    assert "\n\n### Over seeds\n" in text
    pooled = next(line for line in text.splitlines() if line.startswith("| w | 0, 1 | "))
    assert len(pooled.strip("|").split("|")) == 10 and "(baseline)" in text
    for spec in specs:
        assert (tmp_path / spec.split("=")[1] / "quality_cache.json").is_file()
    # A run folder that cannot be written to costs the cache, not the report.
    from mmsr.quality_cache import QualityCache

    def read_only(self):
        raise PermissionError(13, "Permission denied", str(self.path))

    with monkeypatch.context() as patch:
        patch.setattr(QualityCache, "save", read_only)
        (tmp_path / "w0.run" / "quality_cache.json").unlink()
        assert mmsr_main(args) == 0
        captured = capsys.readouterr()
        assert captured.out == text and "could not keep the measured scores in" in captured.err
    assert mmsr_main(args) == 0 and capsys.readouterr().out == text  # measures w0 again and keeps it

    # The second report reads every snapshot's scores from the run folders and measures nothing...
    def no_measuring(*args, **kwargs):
        raise AssertionError("a snapshot was measured again")

    monkeypatch.setattr(evaluate_curve, "evaluate_folder", no_measuring)
    assert mmsr_main(args) == 0
    assert capsys.readouterr().out == text
    # ... unless asked to, or a snapshot changed.
    with pytest.raises(AssertionError, match="measured again"):
        mmsr_main([*args, "--no-cache"])
    assert mmsr_main([*args, "--limit", "-1"]) == 2  # refused, not read from the cache under a bad limit
    assert "--limit must be >= 1" in capsys.readouterr().err
    snapshot = tmp_path / "w1.run" / "snapshots" / "class0" / "001.safetensors"
    os.utime(snapshot, ns=(snapshot.stat().st_atime_ns, snapshot.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="measured again"):
        mmsr_main(args)
    # Two runs of one name need distinct seeds.
    assert mmsr_main(["report", specs[0], specs[0]]) == 2
    assert "need distinct known seeds" in capsys.readouterr().err


def test_report_quality_needs_snapshots(data_dir, tmp_path, capsys):
    out = tmp_path / "plain.safetensors"
    assert mmsr_main(["train", str(data_dir), "--out", str(out), *TINY, "--gan-steps", "0", "--pixel-steps", "2"]) == 0
    capsys.readouterr()
    assert mmsr_main(["report", str(out.with_name("plain.run")), "--quality", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "class 0 has no snapshots" in err and "--snapshots K" in err
    # A missing HR folder is named; --out never lands on one of its images.
    assert mmsr_main(["report", str(out.with_name("plain.run")), "--quality", str(tmp_path / "nowhere")]) == 2
    assert "--quality" in capsys.readouterr().err
    image = data_dir / "im0.png"
    before = image.read_bytes()
    assert mmsr_main(["report", str(out.with_name("plain.run")), "--quality", str(data_dir), "--out", str(image)]) == 2
    assert "is one of the --quality images" in capsys.readouterr().err and image.read_bytes() == before


def test_residual_configs_train_and_start_from_bicubic(data_dir, tmp_path):
    import torch.nn.functional as F

    from mmsr.train.snapshots import read_series

    out = tmp_path / "r.safetensors"
    options = [a for a in TINY if a not in ("--configs", "1-2w8,2-2w8")]
    code = mmsr_main(["train", str(data_dir), "--out", str(out), *options, "--configs", "1-2w8r,2-2w8r",
                      "--gan-steps", "2", "--snapshots", "1"])  # fmt: skip
    assert code == 0
    assert [c.name for c in load_bundle(out).configs] == ["1-2w8r", "2-2w8r"]
    start = read_series(out.with_name("r.run")).bundle(0)
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        for generator in start.generators():
            assert torch.equal(generator(x), F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False))
