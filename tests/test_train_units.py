"""mmsr.train parts that need no training run: options, calibration, scheduling, checkpoints, losses."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from mmsr.ops import DEFAULT_TVAT_THRESHOLD
from mmsr.train.calibrate import check_boundaries, class_fractions, format_histogram, quantile_boundaries
from mmsr.train.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, load_latest, save_checkpoint
from mmsr.train.config import ClassJob, add_arguments, parse_devices, settings_from_args
from mmsr.train.losses import (
    PerceptualLoss,
    VGG19Features,
    discriminator_loss,
    find_vgg19_weights,
    generator_adversarial_loss,
    pixel_loss,
)
from mmsr.train.schedule import assign_ranks, assign_slots, job_cost


def _settings(*options: str):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(["data", "--out", "runs/m.safetensors", "--devices", "cpu", *options]))


# -- options -------------------------------------------------------------------------------------


def test_defaults_follow_the_paper_pairing_and_derive_the_run_dir():
    s = _settings()
    assert s.configs == ("4-2", "8-6", "16-8")
    assert s.run_dir.endswith("runs/m.run")
    assert _settings("--classes", "2").configs == ("8-6", "16-8")
    assert _settings("--boundaries", "0.1,0.2,0.3").configs == ("2-2", "4-2", "8-6", "16-8")


def test_per_class_options_take_one_value_or_one_per_class():
    s = _settings("--classes", "2", "--configs", "2-2w16,4-2", "--pixel-steps", "10,20", "--gan-steps", "5", "--batch", "8,4")
    assert [(j.config, j.pixel_steps, j.gan_steps, j.batch) for j in s.jobs()] == [("2-2w16", 10, 5, 8), ("4-2", 20, 5, 4)]
    with pytest.raises(ValueError, match="--pixel-steps has 3 values but there are 2 classes"):
        _settings("--classes", "2", "--pixel-steps", "1,2,3")
    with pytest.raises(ValueError, match="--configs.*invalid model config"):
        _settings("--configs", "deep")


def test_baseline_spends_the_budget_of_the_class_run():
    s = _settings("--baseline", "--classes", "3", "--pixel-steps", "10,20,30", "--gan-steps", "4")
    assert s.configs == ("16-8",) and s.boundaries == ()
    assert s.pixel_steps == (60,) and s.gan_steps == (12,)
    assert _settings("--baseline", "--baseline-config", "16-8w8").configs == ("16-8w8",)


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="--boundaries: boundaries must be strictly ascending"):
        _settings("--boundaries", "0.2,0.1")
    with pytest.raises(ValueError, match="--classes 2 disagrees with the 3 classes of --boundaries"):
        _settings("--classes", "2", "--boundaries", "0.1,0.2")
    with pytest.raises(ValueError, match="--crop 30 is not divisible by --scale 4"):
        _settings("--crop", "30")
    with pytest.raises(ValueError, match="--amp bf16 needs CUDA devices"):
        _settings("--amp", "bf16")
    with pytest.raises(ValueError, match="class 0 has no steps"):
        _settings("--pixel-steps", "0", "--gan-steps", "0")
    with pytest.raises(ValueError, match="no default model list for 7 classes"):
        _settings("--classes", "7")


def _bundle_file(tmp_path, configs, boundaries, threshold=0.01, scale=4, name="b.safetensors"):
    from mmsr.bundle import Bundle, save_bundle

    return str(save_bundle(Bundle.random(configs, threshold=threshold, boundaries=boundaries, scale=scale), tmp_path / name))


def test_init_bundle_supplies_models_routing_and_threshold(tmp_path):
    path = _bundle_file(tmp_path, ["2-2w8", "4-2w8"], [0.1], threshold=0.02)
    s = _settings("--init", path, "--pixel-steps", "5")
    assert s.init == str(Path(path).resolve())
    assert s.configs == ("2-2w8", "4-2w8") and s.boundaries == (0.1,) and s.threshold == 0.02
    # Options that agree with the bundle are accepted.
    s = _settings("--init", path, "--configs", "2-2w8,4-2w8", "--boundaries", "0.1", "--threshold", "0.02")
    assert s.configs == ("2-2w8", "4-2w8")
    # Without --init the threshold keeps the package default.
    assert _settings().threshold == DEFAULT_TVAT_THRESHOLD and _settings().init is None


def test_init_for_the_baseline_takes_its_one_model(tmp_path):
    path = _bundle_file(tmp_path, ["16-8w8"], [], name="base.safetensors")
    s = _settings("--baseline", "--init", path, "--pixel-steps", "10")
    assert s.configs == ("16-8w8",) and s.boundaries == () and s.pixel_steps == (30,)
    with pytest.raises(ValueError, match="class 0 is a 16-8w8 model there, but this run configures 16-8"):
        _settings("--baseline", "--init", path, "--baseline-config", "16-8")
    three = _bundle_file(tmp_path, ["2-2w8", "4-2w8", "8-6w8"], [0.1, 0.2], name="three.safetensors")
    with pytest.raises(ValueError, match="has 3 class.*a baseline needs a one-model bundle"):
        _settings("--baseline", "--init", three)


def test_init_options_that_contradict_the_bundle_are_refused_by_name(tmp_path):
    path = _bundle_file(tmp_path, ["2-2w8", "4-2w8"], [0.1], threshold=0.02)
    with pytest.raises(ValueError, match=r"is a x4 bundle, but --scale is 2"):
        _settings("--init", path, "--scale", "2")
    with pytest.raises(ValueError, match="class 1 is a 4-2w8 model there, but this run configures 8-6"):
        _settings("--init", path, "--configs", "2-2w8,8-6")
    with pytest.raises(ValueError, match=r"has 2 class.*this run trains 3"):
        _settings("--init", path, "--classes", "3")
    with pytest.raises(ValueError, match=r"routes by boundaries \[0.1\], but --boundaries gives \[0.3\]"):
        _settings("--init", path, "--boundaries", "0.3")
    with pytest.raises(ValueError, match="trained with TVAT threshold 0.02, but --threshold gives 0.05"):
        _settings("--init", path, "--threshold", "0.05")
    with pytest.raises(ValueError, match="--init: .*missing.safetensors"):
        _settings("--init", str(tmp_path / "missing.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a bundle")
    with pytest.raises(ValueError, match="--init: .*junk.safetensors"):
        _settings("--init", str(tmp_path / "junk.safetensors"))


def test_init_may_start_a_class_from_a_deeper_generator_of_the_same_width(tmp_path):
    path = _bundle_file(tmp_path, ["2-2w8", "4-2w8"], [0.1], threshold=0.02)
    s = _settings("--init", path, "--configs", "1-2w8,2-6w8")  # shallower, other discriminators: accepted
    assert s.configs == ("1-2w8", "2-6w8") and s.boundaries == (0.1,) and s.threshold == 0.02
    with pytest.raises(ValueError, match="class 0 is a 2-2w8 model there, but this run configures 4-2w8 for class 0"):
        _settings("--init", path, "--configs", "4-2w8,4-2w8")  # deeper than its source
    with pytest.raises(ValueError, match="configures 1-2w16 for class 0; a class starts from the same generator or "
                                         "a deeper one of the same width and input skip"):
        _settings("--init", path, "--configs", "1-2w16,2-2w8")
    with pytest.raises(ValueError, match="configures 2-2w8r for class 1"):
        _settings("--init", path, "--configs", "1-2w8,2-2w8r")


def test_a_one_model_init_starts_every_class_which_then_calibrates_its_own_routing(tmp_path):
    path = _bundle_file(tmp_path, ["4-2w8"], [], threshold=0.02, name="deep.safetensors")
    s = _settings("--init", path, "--configs", "1-2w8,2-2w8,4-2w8")
    assert s.configs == ("1-2w8", "2-2w8", "4-2w8") and s.boundaries is None and s.threshold == 0.02
    # A one-model bundle has no routing, so no --boundaries contradicts it.
    assert _settings("--init", path, "--configs", "1-2w8,4-2w8", "--boundaries", "0.3").boundaries == (0.3,)
    with pytest.raises(ValueError, match="its one model is a 4-2w8 model there, but this run configures 8-6w8 for "
                                         "class 1"):
        _settings("--init", path, "--configs", "1-2w8,8-6w8")
    # Without --configs the run trains the bundle's one model, as before.
    assert _settings("--init", path).configs == ("4-2w8",)
    two = _bundle_file(tmp_path, ["2-2w8", "4-2w8"], [0.1], name="two.safetensors")
    with pytest.raises(ValueError, match="has 2 class.*this run trains 3.*a one-model bundle may start every class"):
        _settings("--init", two, "--configs", "1-2w8,2-2w8,4-2w8")


def test_only_a_class_started_from_init_may_train_no_steps(tmp_path):
    path = _bundle_file(tmp_path, ["4-2w8"], [], name="deep.safetensors")
    s = _settings("--init", path, "--configs", "1-2w8,4-2w8", "--pixel-steps", "5,0", "--gan-steps", "0", "--snapshots", "5")
    assert s.pixel_steps == (5, 0)
    with pytest.raises(ValueError, match=r"class 1 has no steps.*only a class started from --init may keep its weights"):
        _settings("--configs", "1-2w8,4-2w8", "--pixel-steps", "5,0", "--gan-steps", "0")
    with pytest.raises(ValueError, match="--snapshots 6 needs at least that many pixel steps per class, but class 0"):
        _settings("--init", path, "--configs", "1-2w8,4-2w8", "--pixel-steps", "5,0", "--gan-steps", "0", "--snapshots", "6")
    with pytest.raises(ValueError, match=r"class 0 has no steps: --pixel-steps and --gan-steps are both 0$"):
        _settings("--baseline", "--init", path, "--pixel-steps", "0", "--gan-steps", "0")


def test_init_default_names_the_shipped_bundle():
    from mmsr.bundle import default_bundle_path, read_bundle_metadata

    s = _settings("--init", "default")
    meta = read_bundle_metadata(default_bundle_path())
    assert s.init == str(default_bundle_path().resolve())
    assert list(s.configs) == meta["configs"] and list(s.boundaries) == meta["boundaries"]


def test_parse_devices():
    assert parse_devices("cpu,cpu") == ("cpu", "cpu")
    with pytest.raises(ValueError, match="--devices: 'tpu:0'"):
        parse_devices("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            parse_devices("cuda:0")


# -- calibration ---------------------------------------------------------------------------------


def test_quantile_boundaries_make_equal_classes():
    scores = torch.rand(3000, generator=torch.Generator().manual_seed(0)) ** 2
    boundaries = quantile_boundaries(scores, 3)
    assert len(boundaries) == 2 and boundaries[0] < boundaries[1]
    assert class_fractions(scores, boundaries) == pytest.approx([1 / 3] * 3, abs=0.002)
    assert quantile_boundaries(scores, 1) == ()


def test_quantile_boundaries_never_split_tied_scores():
    scores = torch.cat([torch.zeros(500), torch.linspace(0.01, 1.0, 500)])
    (boundary,) = quantile_boundaries(scores, 2)
    assert 0.0 < boundary <= 0.01
    assert class_fractions(scores, [boundary]) == [0.5, 0.5]
    with pytest.raises(ValueError, match="only 2 distinct values"):
        quantile_boundaries(torch.tensor([0.0, 0.0, 1.0, 1.0]), 3)


def test_check_boundaries():
    assert check_boundaries([1, 2.5]) == (1.0, 2.5)
    with pytest.raises(ValueError, match="finite"):
        check_boundaries([float("nan")])


def test_histogram_counts_every_score_and_marks_boundaries():
    scores = torch.linspace(0, 1, 101)
    text = format_histogram(scores, [0.25, 0.5], bins=10, width=10)
    counts = [int(line.split()[1]) for line in text.splitlines()[1:] if not line.startswith("---")]
    assert sum(counts) == 101
    assert "--- boundary 0.25 ---" in text and "--- boundary 0.5 ---" in text


# -- scheduling ----------------------------------------------------------------------------------


def test_assign_slots_is_longest_first_to_the_least_loaded():
    assert assign_slots([1.0, 2.0, 3.0], 3) == [[2], [1], [0]]
    assert assign_slots([5.0, 3.0, 3.0, 1.0], 2) == [[0, 3], [1, 2]]
    assert assign_slots([1.0, 2.0], 4) == [[1], [0], [], []]


def test_assign_ranks_gives_extra_ranks_to_the_costliest_class():
    assert assign_ranks([1.0, 2.0, 4.0], 3) == [[0], [1], [2]]
    assert assign_ranks([1.0, 2.0, 4.0], 4) == [[0], [1], [2, 3]]
    assert assign_ranks([1.0, 2.0, 4.0], 5) == [[0], [1, 4], [2, 3]]
    assert assign_ranks([1.0, 2.0, 4.0], 2) == [[1], [1], [0]]


def test_job_cost_grows_with_depth_and_steps():
    def cost(config, pixel, gan=0):
        return job_cost(ClassJob(0, config, pixel, gan, 16, 1e-4), scale=4, crop=96)

    assert cost("4-2", 100) < cost("8-6", 100) < cost("16-8", 100)
    assert cost("16-8", 200) == pytest.approx(2 * cost("16-8", 100))
    assert cost("4-2", 0, 100) > cost("4-2", 100)


# -- checkpoints ---------------------------------------------------------------------------------


def test_checkpoints_round_trip_and_keep_the_newest(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((2,), float(step)), "name": "x"}, keep=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 2]
    state, path = load_latest(tmp_path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.full((2,), 3.0)) and path.name == "step00000003.pt"
    assert not list(tmp_path.glob(".*tmp"))


def test_a_corrupt_checkpoint_is_refused_and_an_older_one_used(tmp_path):
    save_checkpoint(tmp_path, 1, {"step": 1}, keep=2)
    newest = save_checkpoint(tmp_path, 2, {"step": 2, "w": torch.zeros(100)}, keep=2)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="step00000002.pt is corrupt: sha256 mismatch"):
        load_checkpoint(newest)
    notes = []
    state, path = load_latest(tmp_path, log=notes.append)
    assert state["step"] == 1 and "sha256 mismatch" in notes[0]
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(CheckpointError, match="no usable checkpoint.*Delete"):
        load_latest(tmp_path)


def test_a_checkpoint_without_its_sidecar_was_never_completed(tmp_path):
    pt = save_checkpoint(tmp_path, 5, {"step": 5}, keep=2)
    pt.with_suffix(".json").unlink()
    assert load_latest(tmp_path) is None


def test_checkpoints_never_unpickle_code(tmp_path):
    pt = save_checkpoint(tmp_path, 1, {"step": 1}, keep=2)
    data = _pickled_object_checkpoint()
    pt.write_bytes(data)
    import hashlib

    pt.with_suffix(".json").write_text(json.dumps({"step": 1, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(pt)


class _Payload:
    pass


def _pickled_object_checkpoint() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"step": 1, "object": _Payload()}, buffer)
    return buffer.getvalue()


# -- losses --------------------------------------------------------------------------------------


def test_pixel_and_adversarial_losses():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert float(pixel_loss("l1")(a, b)) == pytest.approx(0.5)
    assert float(pixel_loss("mse")(a, b)) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="pixel loss must be one of"):
        pixel_loss("huber")
    confident = torch.full((4,), 30.0)
    assert float(discriminator_loss(confident, real=True)) < 1e-6
    assert float(discriminator_loss(-confident, real=False)) < 1e-6
    assert float(generator_adversarial_loss(-confident)) > 10


def _vgg_file(tmp_path):
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files also hold the classifier
    path = tmp_path / "vgg19-test.pth"
    torch.save(state, path)
    return path


def test_vgg19_loads_a_torchvision_style_file_and_gives_a_perceptual_gradient(tmp_path):
    features = VGG19Features.from_file(_vgg_file(tmp_path))
    assert not any(p.requires_grad for p in features.parameters())
    loss = PerceptualLoss(features)
    sr = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(sr, torch.rand(1, 3, 32, 32))
    value.backward()
    assert float(value.detach()) > 0 and sr.grad is not None and float(sr.grad.abs().sum()) > 0
    assert not features.train().training


def test_vgg19_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="bad.pth.*lacks"):
        VGG19Features.from_file(bad)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read VGG19 weights file"):
        VGG19Features.from_file(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="--vgg19 file"):
        find_vgg19_weights(str(tmp_path / "missing.pth"))
    assert find_vgg19_weights(str(bad)) == bad


def test_calibrate_command_prints_the_histogram_and_boundaries(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from mmsr.cli import main

    rng = np.random.default_rng(1)
    for i, noise in enumerate([2, 20, 60]):
        image = np.clip(128 + rng.normal(0, noise, (48, 56, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    code = main(["calibrate", str(tmp_path), "--classes", "3", "--crop", "32", "--samples", "300", "--bins", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "TVAT of 300 LR crops (8x8, x4 from 32x32 HR) of 2 of the 3 images" in out
    assert "(1 held out for validation, as `mmsr train --holdout 0.1 --seed 0` holds them out)" in out
    assert out.count("--- boundary") == 2
    line = next(l for l in out.splitlines() if l.startswith("suggested boundaries (3 equal-count classes):"))
    boundaries = [float(b) for b in line.split(":")[1].split(",")]
    assert len(boundaries) == 2 and boundaries[0] < boundaries[1]
    assert f"--boundaries {line.split(': ')[1]}" in out
    assert main(["calibrate", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cosine_schedule_decays_from_lr_to_one_percent_and_constant_stays():
    from mmsr.train.trainer import scheduled_lr

    values = [scheduled_lr("cosine", 2e-4, step, 1000) for step in range(0, 1001, 100)]
    assert values[0] == pytest.approx(2e-4)
    assert values[5] == pytest.approx(2e-4 * (0.01 + 0.99 * 0.5))
    assert values[-1] == pytest.approx(2e-6)
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing
    assert scheduled_lr("cosine", 2e-4, 5000, 1000) == pytest.approx(2e-6)  # past the plan: the floor
    assert {scheduled_lr("constant", 3e-4, step, 1000) for step in (0, 500, 2000)} == {3e-4}
    with pytest.raises(ValueError, match="schedule"):
        scheduled_lr("linear", 1e-4, 0, 10)


def test_lr_schedule_option_is_checked(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(tmp_path), "--out", "m.safetensors", "--devices", "cpu", "--lr-schedule", "cosine"])
    assert settings_from_args(args).lr_schedule == "cosine"
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path), "--out", "m.safetensors", "--lr-schedule", "step"])


def test_concurrent_defaults_to_on_for_gpus_in_bf16_and_off_in_fp32_and_on_cpu(tmp_path):
    from mmsr.train.config import default_concurrent

    assert default_concurrent(("cuda:0",), 3, "bf16") and default_concurrent(("cuda:0", "cuda:1"), 3, "bf16")
    assert not default_concurrent(("cuda:0", "cuda:1", "cuda:2"), 3, "bf16")  # a device per class already
    assert not default_concurrent(("cpu",), 3, "bf16") and not default_concurrent(("cuda:0", "cpu"), 3, "bf16")
    # fp32 (the default --amp off): three processes sharing an H200 did 0.90x the work of one
    assert not default_concurrent(("cuda:0",), 3, "off") and not default_concurrent(("cuda:0",), 3)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = [str(tmp_path), "--out", "m.safetensors", "--devices", "cpu"]
    assert settings_from_args(parser.parse_args(base)).concurrent is False
    assert settings_from_args(parser.parse_args(base + ["--concurrent"])).concurrent is True
    assert settings_from_args(parser.parse_args(base + ["--no-concurrent"])).concurrent is False


def test_boundaries_split_neighbouring_float32_scores():
    # Their float32 midpoint rounds onto one of them; the boundary must still split them.
    import numpy as np

    low = np.float32(1.0)
    high = np.nextafter(low, np.float32(2))
    scores = torch.tensor([low] * 10 + [high] * 10)
    assert class_fractions(scores, quantile_boundaries(scores, 2)) == [0.5, 0.5]
    tiny = torch.tensor([0.0] * 10 + [1e-45] * 10)
    assert class_fractions(tiny, quantile_boundaries(tiny, 2)) == [0.5, 0.5]


def test_a_foreign_checkpoint_error_keeps_torchs_reason_not_its_advice(tmp_path):
    import hashlib
    import os

    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "step00000001.pt"
    torch.save({"x": Payload()}, path)
    data = path.read_bytes()
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "cannot be loaded safely" in message and "weights_only" not in message and "\n" not in message
