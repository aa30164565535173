"""mmsr train's guards: divergence, --resume consistency, checks before training, the user's files, and
honest records. Each training here is one or two tiny classes for a few steps on 32-pixel crops."""
from __future__ import annotations

import argparse
import os
import json
import math
from pathlib import Path

import pytest
import torch

from mmsr.bundle import Bundle, load_bundle, read_bundle_metadata, save_bundle
from mmsr.cli import main as mmsr_main
from mmsr.ops import DEFAULT_TVAT_THRESHOLD
from mmsr.train.checkpoint import list_checkpoints, load_checkpoint
from mmsr.train.config import add_arguments, settings_from_args
from mmsr.train.trainer import FAIL_ENV, ClassTrainer, TrainingDiverged
from test_train import _summary, data_dir  # noqa: F401  (data_dir is a fixture)

ONE = [
    "--devices", "cpu",
    "--crop", "32",
    "--batch", "2",
    "--classes", "1",
    "--configs", "1-2w8",
    "--disc-width", "8",
    "--pixel-steps", "4",
    "--gan-steps", "0",
    "--val-every", "2",
    "--log-every", "2",
    "--checkpoint-every", "2",
    "--holdout", "0.3",
    "--val-crops", "2",
    "--calib-samples", "64",
    "--threads", "1",
    "--no-progress",
]  # fmt: skip
TWO = [*ONE[: ONE.index("--classes")], *ONE[ONE.index("--disc-width") :], "--configs", "1-2w8,1-2w8"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmsr train")
    add_arguments(parser)
    return parser


def _settings(*options: str):
    args = _parser().parse_args(["data", "--out", "runs/m.safetensors", "--devices", "cpu", *options])
    return settings_from_args(args)


def _train(data, out: Path, *options: str) -> int:
    return mmsr_main(["train", str(data), "--out", str(out), *options])


# -- 1. divergence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phase, message",
    [("pixel", "at step 3 (pixel phase): loss_pixel became nan; lower --lr (it is 0.0001"),
     ("gan", "at step 5 (gan phase): loss_adv became inf; lower --gan-lr (it is 0.0001) or the GAN loss weights")],
)  # fmt: skip
def test_a_nan_loss_stops_the_class_naming_step_loss_and_option(data_dir, tmp_path, phase, message):
    from mmsr.data import load_folder

    options = ["--pixel-steps", "4", "--gan-steps", "4", "--log-every", "100", "--val-crops", "0"]
    settings = settings_from_args(
        _parser().parse_args([str(data_dir), "--out", str(tmp_path / "m.safetensors"), *ONE, *options])
    )
    images = load_folder(data_dir, min_size=32, log=None).images
    trainer = ClassTrainer(settings.jobs()[0], settings, images, None, (), "cpu", log=lambda _: None)
    step_of_phase = trainer._pixel_step if phase == "pixel" else trainer._gan_step
    bad_step, bad_loss = (3, "loss_pixel") if phase == "pixel" else (5, "loss_adv")

    def poisoned(lr, hr):
        losses = step_of_phase(lr, hr)
        if trainer.step + 1 == bad_step:
            losses[bad_loss] = torch.tensor(math.nan if phase == "pixel" else math.inf)
        return losses

    setattr(trainer, "_pixel_step" if phase == "pixel" else "_gan_step", poisoned)
    with pytest.raises(TrainingDiverged) as caught:
        trainer.run()
    assert message in str(caught.value)
    assert not any(load_checkpoint(path)["finished"] for _, path in list_checkpoints(trainer.dir))


def test_a_diverged_run_is_not_finished_and_resume_can_retrain_it_with_a_lower_lr(data_dir, tmp_path, capsys):
    out = tmp_path / "d.safetensors"
    run_dir = tmp_path / "d.run"
    assert _train(data_dir, out, *TWO, "--lr", "1e-4,1e6") == 1
    err = capsys.readouterr().err
    assert "class 1 (1-2w8) on cpu diverged at step" in err and "lower --lr (it is 1e+06 for this class)" in err
    # Its outcome line does not give a second "diverged at step": the step it stopped at is another one.
    assert err.count("diverged at step") == 1 and "class 1 (1-2w8) on cpu: diverged; stopped at step" in err
    assert "--resume with the same options would diverge again" in err
    assert not out.exists()
    classes = _summary(out)["classes"]
    assert [c["status"] for c in classes] == ["finished", "diverged"]
    assert "lower --lr" in classes[1]["error"]
    diverged = list_checkpoints(run_dir / "checkpoints" / "class1")
    assert not any(load_checkpoint(path)["finished"] for _, path in diverged)

    # The diverged class's checkpoints go; it may then restart with its own lower --lr.
    for _, path in diverged:
        path.unlink()
        path.with_suffix(".json").unlink()
    assert _train(data_dir, out, *TWO, "--lr", "1e-4,1e-5", "--resume") == 0
    assert [c["status"] for c in _summary(out)["classes"]] == ["finished", "finished"]
    # ... but the class that finished keeps its options.
    assert _train(data_dir, tmp_path / "e.safetensors", *TWO, "--run-dir", str(run_dir), "--lr", "2e-4,1e-5",
                  "--resume") == 2  # fmt: skip
    assert "--lr: 0.0001,1e-05 (the run) vs 0.0002,1e-05 (this command)" in capsys.readouterr().err


# -- 2. --resume keeps the run's options -----------------------------------------------------------


def test_resume_refuses_changed_options_listing_each_and_accepts_harmless_ones(data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.safetensors"
    with monkeypatch.context() as patch:
        patch.setenv(FAIL_ENV, "0:2")
        assert _train(data_dir, out, *ONE) == 1
    capsys.readouterr()
    changed = ["--batch", "4", "--seed", "7", "--lr", "3e-4", "--pixel-steps", "9", "--lr-schedule", "cosine",
               "--adv-weight", "0.5", "--crop", "48"]  # fmt: skip
    assert _train(data_dir, out, *ONE, *changed, "--resume") == 2
    err = capsys.readouterr().err
    listed = ["--batch: 2 (the run) vs 4 (this command)", "--seed: 0 (the run) vs 7",
              "--lr: 0.0001 (the run) vs 0.0003", "--pixel-steps: 4 (the run) vs 9",
              "--lr-schedule: constant (the run) vs cosine", "--adv-weight: 0.001 (the run) vs 0.5",
              "--crop: 32 (the run) vs 48"]  # fmt: skip
    for line in listed:
        assert line in err, line
    harmless = ["--threads", "2", "--log-every", "3", "--checkpoint-every", "5", "--keep-checkpoints", "3",
                "--checkpoint-minutes", "0"]
    assert _train(data_dir, out, *ONE, *harmless, "--resume") == 0
    entry = _summary(out)["classes"][0]
    assert entry["resumed_from"] == 2 and entry["steps"] == 4


def test_resume_compares_with_what_a_run_from_before_plan_settings_recorded(tmp_path):
    from mmsr.train.guards import check_resume

    run_dir = tmp_path / "old.run"
    run_dir.mkdir()
    plan = {"mode": "mmsr", "configs": ["4-2", "8-6", "16-8"], "boundaries": [0.1, 0.2],
            "threshold": DEFAULT_TVAT_THRESHOLD, "scale": 4, "crop": 96, "init": None}  # fmt: skip
    (run_dir / "plan.json").write_text(json.dumps(plan))
    settings = _settings("--resume", "--run-dir", str(run_dir), "--devices", "cpu")
    assert check_resume(settings, None) == (0.1, 0.2)
    with pytest.raises(ValueError, match=r"--crop: 96 \(the run\) vs 64 \(this command\)"):
        check_resume(_settings("--resume", "--run-dir", str(run_dir), "--crop", "64"), None)
    (run_dir / "summary.json").write_text(json.dumps({"settings": {"seed": 5, "devices": ["cuda:0"]}}))
    with pytest.raises(ValueError, match=r"--seed: 5 \(the run\) vs 0 \(this command\)"):
        check_resume(settings, None)


# -- 3, 21. what can fail without training fails first, and leaves nothing behind ------------------


def test_outputs_that_could_only_fail_at_the_end_are_refused_before_training(data_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="--overlap 8 must be below --tile-size 8"):
        _settings("--tile-size", "8", "--overlap", "8")
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _train(data_dir, folder, *ONE) == 2
    assert f"--out {folder} is a directory" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _train(data_dir, blocker / "sub" / "m.safetensors", *ONE) == 2
    assert f"--out: cannot create {blocker / 'sub'}: {blocker} is not a directory" in capsys.readouterr().err
    assert _train(tmp_path / "no-such-data", tmp_path / "x.safetensors", *ONE) == 2
    assert "no-such-data" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # no x.run left behind


# -- 4, 13. every number is checked up front, by name ------------------------------------------------


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--gan-lr", "-1", "argument --gan-lr: expected a positive number, got '-1'"),
        ("--gan-lr", "nan", "argument --gan-lr: expected a finite number, got 'nan'"),
        ("--pixel-weight", "-1", "argument --pixel-weight: expected a number >= 0, got '-1'"),
        ("--perceptual-weight", "inf", "argument --perceptual-weight: expected a finite number, got 'inf'"),
        ("--adv-weight", "nan", "argument --adv-weight: expected a finite number, got 'nan'"),
        ("--min-delta", "-0.5", "argument --min-delta: expected a number >= 0, got '-0.5'"),
        ("--threshold", "nan", "argument --threshold: expected a finite number, got 'nan'"),
        ("--min-class-fraction", "inf", "argument --min-class-fraction: expected a finite number, got 'inf'"),
        ("--holdout", "1", "argument --holdout: must be in [0, 1), got '1'"),
        ("--seed", str(10**20), f"argument --seed: must be between 0 and 2**63-1, got '{10**20}'"),
        ("--seed", "-1", "argument --seed: must be between 0 and 2**63-1, got '-1'"),
        ("--crop", "abc", "argument --crop: expected an integer, got 'abc'"),
    ],
)
def test_numeric_options_are_range_checked_naming_the_option(option, value, message, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["data", "--out", "m.safetensors", f"{option}={value}"])
    assert message in capsys.readouterr().err


def test_cross_option_checks_name_the_options():
    with pytest.raises(ValueError, match="--pixel-weight, --perceptual-weight and --adv-weight are all 0"):
        _settings("--pixel-weight", "0", "--perceptual-weight", "0", "--adv-weight", "0")
    assert _settings("--pixel-weight", "0", "--perceptual-weight", "0", "--adv-weight", "0", "--gan-steps", "0")
    with pytest.raises(ValueError, match=r"--crop 4 is too small: at --scale 4 its LR crop is 1x1 pixels.*--crop 8"):
        _settings("--crop", "4")
    with pytest.raises(ValueError, match=r"--lr: expected a positive number, got '-1'"):
        _settings("--lr", "-1")


def test_the_largest_seed_trains(data_dir, tmp_path):
    out = tmp_path / "s.safetensors"
    assert _train(data_dir, out, *ONE, "--pixel-steps", "1", "--seed", str(2**63 - 1)) == 0
    assert _summary(out)["settings"]["seed"] == 2**63 - 1


def test_a_vgg19_file_that_is_no_state_dict_is_named_without_torchs_advice(data_dir):
    from mmsr.train.losses import VGG19Features

    image = data_dir / "im0.png"
    with pytest.raises(ValueError) as caught:
        VGG19Features.from_file(image)
    message = str(caught.value)
    assert str(image) in message and "not a file of tensors saved with torch.save" in message
    assert "expected torchvision's vgg19 state_dict" in message and "weights_only" not in message


def test_a_crop_too_small_for_the_discriminator_is_refused_up_front():
    # 16-pixel crops through an 8-layer discriminator end as 1x1 maps: with --batch 1, BatchNorm
    # would see one value per channel at the first GAN step.
    with pytest.raises(ValueError, match=r"--crop 16 with --batch 1 is too small for class 0's 8-layer discriminator"):
        _settings("--classes", "1", "--configs", "2-8w4", "--crop", "16", "--batch", "1", "--gan-steps", "2")
    _settings("--classes", "1", "--configs", "2-8w4", "--crop", "16", "--batch", "2", "--gan-steps", "2")
    _settings("--classes", "1", "--configs", "2-8w4", "--crop", "16", "--batch", "1", "--gan-steps", "0")


def test_a_pixel_only_run_with_a_deep_discriminator_and_small_crops_trains(data_dir, tmp_path):
    # Its cost estimate used to run the discriminator in train mode on one 1x1 map and fail.
    out = tmp_path / "p.safetensors"
    options = [*ONE, "--configs", "2-8w4", "--crop", "16", "--batch", "1", "--pixel-steps", "1"]
    assert _train(data_dir, out, *options) == 0


def test_a_crop_too_small_for_vgg19_is_refused_before_training(data_dir, tmp_path, capsys):
    from mmsr.train.losses import VGG19Features

    vgg = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}, vgg)
    out = tmp_path / "v.safetensors"
    options = [*ONE, "--crop", "8", "--batch", "4", "--gan-steps", "1", "--vgg19", str(vgg)]
    assert _train(data_dir, out, *options) == 2
    assert "--crop 8 is too small for the perceptual loss" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "v.run").exists()


# -- 7. the records say which losses were used ----------------------------------------------------------


@pytest.mark.parametrize("cached", [False, True], ids=["no-vgg19", "vgg19-in-hub-cache"])
def test_records_say_whether_the_perceptual_loss_was_on_and_which_vgg19(data_dir, tmp_path, monkeypatch, cached):
    from mmsr.train.losses import VGG19Features

    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    vgg = hub / "checkpoints" / "vgg19-test.pth"
    if cached:
        torch.save({f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}, vgg)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    out = tmp_path / "g.safetensors"
    assert _train(data_dir, out, *ONE, "--pixel-steps", "1", "--gan-steps", "1") == 0
    expected = {"pixel_weight": 1.0, "perceptual": cached, "perceptual_weight": 1.0 if cached else None,
                "vgg19": str(vgg) if cached else None, "adv_weight": 1e-3, "lr": 1e-4}  # fmt: skip
    summary = _summary(out)
    assert summary["losses"] == {"pixel_loss": "l1", "gan": expected}
    assert summary["settings"]["vgg19"] == expected["vgg19"]
    assert read_bundle_metadata(out)["provenance"]["losses"] == {"pixel_loss": "l1", "gan": expected}


# -- 8. the user's files ------------------------------------------------------------------------------


def test_out_is_never_written_over_unless_asked_and_never_the_init_bundle(data_dir, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"someone's file")
    assert _train(data_dir, out, *ONE) == 2
    assert "already exists and is not the bundle this run wrote; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"someone's file" and not (tmp_path / "m.run").exists()

    assert _train(data_dir, out, *ONE, "--overwrite") == 0
    load_bundle(out)
    summary_path = tmp_path / "m.run" / "summary.json"
    summary = json.loads(summary_path.read_text())
    checkpoint = summary["classes"][0]["checkpoint"]
    assert not Path(checkpoint).is_absolute() and (tmp_path / "m.run" / checkpoint).is_file()

    # A finished run's resume says so, and rewrites neither the bundle nor summary.json.
    bundle_bytes, summary_bytes = out.read_bytes(), summary_path.read_bytes()
    capsys.readouterr()
    assert _train(data_dir, out, *ONE, "--resume") == 0
    err = capsys.readouterr().err
    assert "finished earlier and wrote" in err and "keeps its" not in err
    assert out.read_bytes() == bundle_bytes and summary_path.read_bytes() == summary_bytes
    # A new tiling is not applied to the unchanged bundle, and the note says so.
    assert _train(data_dir, out, *ONE, "--resume", "--tile-size", "48", "--overlap", "12") == 0
    assert "the bundle keeps its --tile-size 32 and --overlap 8: `mmsr upscale --tile`" in capsys.readouterr().err
    assert out.read_bytes() == bundle_bytes and summary_path.read_bytes() == summary_bytes

    # Resumed with another --out, it writes the bundle there and the summary names it and the command.
    second = tmp_path / "second.safetensors"
    assert _train(data_dir, second, *ONE, "--resume", "--run-dir", str(tmp_path / "m.run")) == 0
    assert "writing the bundle again from their checkpoints" in capsys.readouterr().err
    summary = json.loads(summary_path.read_text())
    # (In-process, the command recorded is this interpreter's argv.)
    assert summary["settings"]["out"] == str(second) and isinstance(summary["bundle_command"], list)
    assert summary["classes"] == json.loads(summary_bytes)["classes"]  # the training's record stays

    # Another run may not take the bundle over, and a run never replaces the bundle it starts from.
    assert _train(data_dir, out, *ONE, "--run-dir", str(tmp_path / "other.run")) == 2
    init = save_bundle(Bundle.random(["1-2w8"], threshold=0.01, boundaries=[]), tmp_path / "init.safetensors")
    assert _train(data_dir, init, *ONE, "--init", str(init), "--overwrite", "--run-dir", str(tmp_path / "i.run")) == 2
    assert "is the --init bundle" in capsys.readouterr().err
    assert out.read_bytes() == bundle_bytes


# -- 9, 10. empty lists, the baseline's model ------------------------------------------------------------


def test_empty_configs_and_boundaries_are_errors():
    with pytest.raises(ValueError, match="--configs is empty"):
        _settings("--configs", "")
    with pytest.raises(ValueError, match="--boundaries is empty.*--classes 1"):
        _settings("--boundaries", "")
    with pytest.raises(ValueError, match="--boundaries '0.1,' has an empty entry"):
        _settings("--boundaries", "0.1,")
    with pytest.raises(ValueError, match="--batch is empty"):
        _settings("--batch", "")


def test_the_default_baseline_is_residual_when_every_config_is_and_is_announced(tmp_path, capsys):
    residual = _settings("--baseline", "--configs", "2-2w16r,4-2w16r,4-2w16r")
    assert residual.configs == ("16-8r",) and "residual" in residual.baseline_origin
    assert _settings("--baseline", "--configs", "2-2w16r,4-2,8-6").configs == ("16-8",)
    assert _settings("--baseline", "--configs", "4-2r,8-6r", "--baseline-config", "8-6w8").configs == ("8-6w8",)
    code = mmsr_main(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "b.safetensors"), *ONE[:2],
                      "--baseline", "--configs", "4-2r,8-6r"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "baseline: one 16-8r model (SRGAN's 16-8, residual like every --configs entry)" in err
    assert "; --baseline-config changes it" in err


# -- 12. an interrupted class keeps its progress in summary.json ----------------------------------------------


def test_an_interrupted_class_records_its_steps_and_checkpoint(data_dir, tmp_path, monkeypatch, capsys):
    pixel_step = ClassTrainer._pixel_step

    def signalled_during_step_3(self, lr, hr):
        if self.step == 2:
            self._stop_signal = "SIGINT"  # as the handler does: the run stops once step 3 is whole
        return pixel_step(self, lr, hr)

    monkeypatch.setattr(ClassTrainer, "_pixel_step", signalled_during_step_3)
    out = tmp_path / "i.safetensors"
    assert _train(data_dir, out, *ONE, "--checkpoint-every", "100") == 130
    assert "interrupted at step 3 of 4 (checkpoint checkpoints/class0/step00000003.pt)" in capsys.readouterr().err
    entry = _summary(out)["classes"][0]
    assert entry["status"] == "interrupted" and entry["steps"] == 3 and entry["planned_steps"] == 4
    assert entry["checkpoint"] == "checkpoints/class0/step00000003.pt"
    assert (tmp_path / "i.run" / entry["checkpoint"]).is_file()


def test_a_second_signal_inside_a_step_checkpoints_nothing_of_that_step(data_dir, tmp_path, monkeypatch, capsys):
    # A second Ctrl-C raises at once. Inside a GAN step, after the discriminator's update and before
    # the generator's, the run used to checkpoint that half-applied step as if it were a whole one.
    gan_step = ClassTrainer._gan_step

    def second_signal_between_the_two_updates(self, lr, hr):
        if self.step == 3:
            self.opt_gan.step = lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt("SIGINT"))
        return gan_step(self, lr, hr)

    monkeypatch.setattr(ClassTrainer, "_gan_step", second_signal_between_the_two_updates)
    out = tmp_path / "g.safetensors"
    gan = ["--pixel-steps", "2", "--gan-steps", "3", "--checkpoint-every", "2"]
    assert _train(data_dir, out, *ONE, *gan) == 130
    err = capsys.readouterr().err
    assert "stopped inside step 4, so that step is not checkpointed; --resume continues from the last checkpoint (step 2)" in err
    entry = _summary(out)["classes"][0]
    assert entry["status"] == "interrupted" and entry["checkpoint"] == "checkpoints/class0/step00000002.pt"
    assert [step for step, _ in list_checkpoints(tmp_path / "g.run" / "checkpoints" / "class0")] == [2]
    # --resume goes on from step 2 and finishes; its log says where the replay starts.
    monkeypatch.setattr(ClassTrainer, "_gan_step", gan_step)
    assert _train(data_dir, out, *ONE, *gan, "--resume") == 0
    assert _summary(out)["classes"][0]["status"] == "finished"
    log = [json.loads(line) for line in (tmp_path / "g.run" / "logs" / "class0.jsonl").read_text().splitlines()]
    resumes = [r for r in log if r["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["step"] == 2 and resumes[0]["checkpoint"] == "checkpoints/class0/step00000002.pt"


# -- 18. calibrate computes what train calibrates -------------------------------------------------------


def test_calibrate_suggests_the_boundaries_train_calibrates(data_dir, tmp_path, capsys):
    # Both with their default --holdout (0.1: one of the six images is held out), then with another.
    common = ["--classes", "2", "--crop", "32", "--seed", "3"]
    for holdout in ([], ["--holdout", "0.5"]):
        assert mmsr_main(["calibrate", str(data_dir), *common, *holdout, "--samples", "64"]) == 0
        line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("suggested boundaries"))
        out = tmp_path / f"c{len(holdout)}.safetensors"
        train = [*TWO, *common, "--holdout", holdout[1] if holdout else "0.1", "--calib-samples", "64"]
        assert _train(data_dir, out, *train, "--pixel-steps", "1") == 0
        assert line.endswith(": " + ",".join(f"{b:.6g}" for b in _summary(out)["boundaries"]))


# -- 20. help ------------------------------------------------------------------------------------------


def test_train_help_explains_every_option_with_its_default():
    parser = _parser()
    for action in parser._actions:
        if action.dest in ("help", "data"):
            continue
        assert action.help, action.dest
        if action.default not in (None, False):
            assert "default" in action.help, action.dest
    seed = next(a for a in parser._actions if a.dest == "seed")
    assert all(word in seed.help for word in ("initial weights", "training crops", "hold-out split", "calibration"))
    from mmsr.cli.train_cmd import _DESCRIPTION

    assert "float16" in _DESCRIPTION and "best validation PSNR" in _DESCRIPTION and "RGB PSNR" in _DESCRIPTION


# -- processes: one run per run directory, no orphans, no lost signals, no debris ---------------------------


def test_a_live_run_locks_its_run_directory(data_dir, tmp_path, capsys):
    from mmsr.train.guards import run_lock

    out = tmp_path / "l.safetensors"
    with run_lock(tmp_path / "l.run"):  # as a live run holds it
        assert _train(data_dir, out, *ONE) == 2
    assert "is in use by another mmsr train (pid" in capsys.readouterr().err
    assert not out.exists()
    assert _train(data_dir, out, *ONE) == 0  # released: the run goes ahead


def test_the_lock_leaves_no_empty_run_directory(tmp_path):
    from mmsr.train.guards import run_lock

    with pytest.raises(RuntimeError):
        with run_lock(tmp_path / "x.run"):
            raise RuntimeError("failed before training")
    assert not (tmp_path / "x.run").exists()


def test_debris_of_a_killed_save_is_removed_but_not_checkpoints(tmp_path):
    from mmsr.train.checkpoint import remove_debris, save_checkpoint

    folder = tmp_path / "class0"
    kept = save_checkpoint(folder, 3, {"step": 3}, keep=2)
    (folder / ".step00000004.pt.123.abcd.tmp").write_bytes(b"half")
    (folder / "step00000005.pt").write_bytes(b"no sidecar")
    assert sorted(p.name for p in remove_debris(folder)) == [".step00000004.pt.123.abcd.tmp", "step00000005.pt"]
    assert [step for step, _ in list_checkpoints(folder)] == [3] and kept.is_file()


def test_resume_refuses_a_data_folder_that_changed(data_dir, tmp_path):
    import shutil

    from mmsr.train.guards import check_resume, training_record

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    run_dir = tmp_path / "m.run"
    run_dir.mkdir()
    settings = _settings("--run-dir", str(run_dir))
    settings = type(settings)(**{**settings.__dict__, "data": str(data)})
    (run_dir / "plan.json").write_text(json.dumps({"boundaries": [], "settings": training_record(settings, None)}))
    resumed = type(settings)(**{**settings.__dict__, "resume": True})
    check_resume(resumed, None)  # the same files: fine
    shutil.copy(data / "im0.png", data / "extra.png")
    with pytest.raises(ValueError, match=r"DATA's image files \(names and sizes\): \d+ files, sha256 \w+ \(the run\) vs"):
        check_resume(resumed, None)


def test_a_signal_while_a_class_finishes_starts_no_other_class(data_dir, tmp_path, monkeypatch):
    # The stop flag used to be read only at the top of the training loop: a signal during the final
    # validation or checkpoint was lost and the next class trained in full.
    finish = ClassTrainer._finish

    def finish_then_signal(self):
        self._stop_signal = "SIGTERM"  # as if it arrived during the final checkpoint
        return finish(self)

    monkeypatch.setattr(ClassTrainer, "_finish", finish_then_signal)
    out = tmp_path / "s.safetensors"
    assert _train(data_dir, out, *TWO) == 130
    assert [c["status"] for c in _summary(out)["classes"]] == ["finished", "not run"]


@pytest.mark.parametrize("nohup", [False, True], ids=["plain", "nohup"])
def test_a_worker_dies_with_its_launcher(tmp_path, nohup):
    # kill -9 of the launcher used to leave its workers training as orphans; under `nohup` too,
    # while the parent-death signal was SIGHUP, which nohup ignores.
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "launcher.py"
    script.write_text(
        "import multiprocessing as mp, os, sys, time\n"
        "from mmsr.train.launch import _die_with_parent\n"
        "def child(parent, path):\n"
        "    _die_with_parent(parent)\n"
        "    open(path, 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    p = mp.get_context('spawn').Process(target=child, args=(os.getpid(), sys.argv[1]))\n"
        "    p.start(); time.sleep(60)\n"
    )
    pid_file = tmp_path / "child.pid"
    ignore_hangup = (lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if nohup else None
    launcher = subprocess.Popen([sys.executable, str(script), str(pid_file)], preexec_fn=ignore_hangup)
    try:
        for _ in range(300):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        child = int(pid_file.read_text())
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        for _ in range(100):
            if not _alive(child):
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the worker outlived its launcher by 10 s")
    finally:
        launcher.kill()


def _alive(pid: int) -> bool:
    """Running, not gone and not a zombie nobody reaped yet (an orphan's reaper may be slow)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except OSError:
        return True


def test_resume_without_a_run_is_refused(data_dir, tmp_path, capsys):
    # A mistyped --out used to start a new run from scratch under --resume.
    assert _train(data_dir, tmp_path / "typo.safetensors", *ONE, "--resume") == 2
    assert "--resume: there is no run in" in capsys.readouterr().err
    assert not (tmp_path / "typo.run").exists()


def test_summary_records_where_the_command_ran(data_dir, tmp_path):
    out = tmp_path / "w.safetensors"
    assert _train(data_dir, out, *ONE, "--pixel-steps", "1") == 0
    assert _summary(out)["cwd"] == os.getcwd()


def test_an_init_bundle_is_kept_when_fine_tuning_only_made_it_worse(data_dir, tmp_path, capsys):
    # The starting weights were never validated, so a fine-tune with too high a learning rate handed
    # back a bundle several dB worse than the one it started from, with no word about it.
    start = tmp_path / "start.safetensors"
    assert _train(data_dir, start, *ONE, "--pixel-steps", "8") == 0
    out = tmp_path / "tuned.safetensors"
    assert _train(data_dir, out, *ONE, "--init", str(start), "--lr", "0.5") == 0
    assert "class 0 (1-2w8): no pixel step validated better than its starting weights" in capsys.readouterr().err
    kept, before = load_bundle(out).state_dicts[0], load_bundle(start).state_dicts[0]
    assert all(torch.equal(kept[k], before[k]) for k in before)


def test_more_snapshots_than_pixel_steps_are_refused(tmp_path, capsys):
    # They wrote repeated points: snapshots 1 and 2 were both step 1, with the same weights.
    code = mmsr_main(["train", str(tmp_path), "--out", str(tmp_path / "s.safetensors"), *ONE, "--snapshots", "10"])
    assert code == 2
    assert "--snapshots 10 needs at least that many pixel steps per class, but class 0 (1-2w8) has 4" in capsys.readouterr().err


# -- weights past float16's range ------------------------------------------------------------------


def test_weights_past_float16s_range_are_saved_in_float32_with_a_note(data_dir, tmp_path, monkeypatch, capsys):
    # A --lr far too high can leave finite weights beyond float16's 65504. The run's bundle used to fail
    # to save ("overflows float16; save with weights_dtype=torch.float32", an API hint) after training.
    import mmsr.train.launch as launch

    real = Bundle.from_generators

    def inflated(generators, *args, **kwargs):
        bundle = real(generators, *args, **kwargs)
        bundle.state_dicts[0]["tail.weight"].view(-1)[0] = 1e5
        return bundle

    monkeypatch.setattr(launch.Bundle, "from_generators", staticmethod(inflated))
    out = tmp_path / "big.safetensors"
    assert _train(data_dir, out, *ONE) == 0
    err = capsys.readouterr().err
    assert "class0.tail.weight reaches 1e+05, past float16's range (65504)" in err
    assert f"{out} stores its weights in float32, twice the size" in err
    assert read_bundle_metadata(out)["weights_dtype"] == "float32"
    assert float(load_bundle(out).state_dicts[0]["tail.weight"].view(-1)[0]) == 1e5


# -- time-based checkpoints ----------------------------------------------------------------------


@pytest.mark.parametrize("minutes, kept", [("1e-9", [1, 2, 3, 4]), ("0", [4])], ids=["every-step", "off"])
def test_checkpoint_minutes_checkpoints_between_the_step_interval(data_dir, tmp_path, minutes, kept):
    # The seed-3 CPU run lost 300 steps (a quarter of an hour) to a killed session: 1000 steps of a
    # 16-8 take most of an hour on a CPU. With a minimum time between checkpoints of ~0 every step is
    # one; with 0 only --checkpoint-every (far off here) and the end write them.
    out = tmp_path / "t.safetensors"
    options = [*ONE, "--checkpoint-every", "1000", "--keep-checkpoints", "10", "--checkpoint-minutes", minutes]
    assert _train(data_dir, out, *options) == 0
    assert sorted(step for step, _ in list_checkpoints(tmp_path / "t.run" / "checkpoints" / "class0")) == kept


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_a_bad_checkpoint_minutes_is_refused_by_name(value, capsys):
    with pytest.raises(SystemExit):
        _settings("--checkpoint-minutes", value)
    assert "--checkpoint-minutes" in capsys.readouterr().err


def test_time_based_checkpoints_do_not_change_what_is_trained(data_dir, tmp_path):
    # Writing a checkpoint reads the RNG states and the pending losses; it must not move either.
    bundles = []
    for minutes in ("1e-9", "0"):
        out = tmp_path / f"m{minutes}.safetensors"
        assert _train(data_dir, out, *ONE, "--checkpoint-every", "1000", "--checkpoint-minutes", minutes) == 0
        bundles.append(load_bundle(out))
    every, never = (bundle.state_dicts[0] for bundle in bundles)
    assert every.keys() == never.keys() and all(torch.equal(every[k], never[k]) for k in every)
