"""mmsr.evaluate, evaluate_report and evaluate_training: the harness, its report files and Table 3."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mmsr.bundle import Bundle, save_bundle
from mmsr.data import downsample
from mmsr.evaluate import (
    BICUBIC,
    HR,
    EvalRun,
    Scores,
    bicubic_method,
    bicubic_upscale,
    bundle_method,
    evaluate_folder,
    evaluate_image,
    make_lr,
    mod_crop,
    parse_bundle_spec,
)
from mmsr.evaluate_report import _GAP, _LABEL_HEIGHT, CSV_COLUMNS, choose_crop, comparison_image, csv_text, results_json
from mmsr.evaluate_training import RunTimes, find_baseline, load_run, training_table
from mmsr.metrics import niqe, psnr, ssim

SEEDS = [0, 1]


def _photo(height: int, width: int, seed: int) -> torch.Tensor:
    """A uint8 [3, H, W] image with smooth ramps and a noisy patch, so both TVAT classes occur."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([yy, xx, (yy + xx) / 2]) * 200 + 20
    noise = torch.rand(3, height - height // 2, width - width // 2, generator=g) * 120 - 60
    image[:, height // 2 :, width // 2 :] += noise
    return image.clamp(0, 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def two_class():
    return bundle_method("mm", Bundle.random(["1-2w8", "2-2w8"], threshold=0.0, boundaries=[0.02], scale=4))


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_bicubic_is_pillows_bicubic(seed):
    # Values stay in [40, 215] so no overshoot reaches 0 or 255: Pillow clips to uint8 between its
    # horizontal and vertical passes, which changes pixels next to clipped ones (measured: up to 12 levels).
    g = torch.Generator().manual_seed(seed)
    lr = torch.randint(40, 216, (3, 13, 17), generator=g, dtype=torch.uint8)
    ours = bicubic_upscale(lr, 4)
    pillow = Image.fromarray(lr.permute(1, 2, 0).numpy()).resize((68, 52), Image.BICUBIC)
    theirs = torch.from_numpy(np.array(pillow)).permute(2, 0, 1)
    # Pillow computes in fixed point; the rounding may differ by one level.
    assert ours.shape == theirs.shape and (ours.int() - theirs.int()).abs().max() <= 1


def test_bicubic_keeps_batches_and_checks_dtype():
    batch = torch.stack([_photo(8, 8, 0), _photo(8, 8, 1)])
    assert torch.equal(bicubic_upscale(batch, 2)[1], bicubic_upscale(batch[1], 2))
    with pytest.raises(ValueError, match="uint8"):
        bicubic_upscale(batch.float(), 2)


def test_lr_is_the_training_downsampler_on_the_mod_cropped_image():
    hr = _photo(50, 61, 0)
    cropped = mod_crop(hr, 4)
    assert cropped.shape == (3, 48, 60)
    expected = (downsample(cropped[None], 4)[0] * 255).round().to(torch.uint8)
    assert torch.equal(make_lr(cropped, 4), expected)


def test_parse_bundle_spec():
    assert parse_bundle_spec("fast=a/b.safetensors") == ("fast", "a/b.safetensors")
    assert parse_bundle_spec("runs/x=1/b.safetensors") == ("b", "runs/x=1/b.safetensors")
    assert parse_bundle_spec("c.safetensors") == ("c", "c.safetensors")


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_bicubic_row_is_psnr_ssim_niqe_of_the_same_arrays(seed, two_class):
    hr = _photo(110, 105, seed)
    outcome = evaluate_image("x.png", hr, [bicubic_method(), two_class], scale=4, crop_border=4)
    cropped = hr[:, :108, :104]
    sr = bicubic_upscale(make_lr(cropped, 4), 4)
    assert torch.equal(outcome.outputs[BICUBIC], sr)
    row = outcome.scores[BICUBIC]
    assert row.psnr_y == psnr(sr, cropped, crop_border=4)
    assert row.ssim_y == ssim(sr, cropped, crop_border=4)
    assert row.niqe == pytest.approx(niqe(sr, crop_border=4), abs=1e-5)
    assert outcome.scores[HR].niqe == pytest.approx(niqe(cropped, crop_border=4), abs=1e-5)
    assert row.histogram is None and row.time_s >= 0


def test_bundle_row_counts_every_tile_once(two_class):
    outcome = evaluate_image("x.png", _photo(128, 96, 0), [two_class], scale=4, crop_border=4, with_niqe=False)
    classes, grid = outcome.routes["mm"]
    histogram = outcome.scores["mm"].histogram
    assert sum(histogram) == grid.num_tiles == classes.numel() and len(histogram) == 2
    assert outcome.scores["mm"].niqe is None and HR not in outcome.scores


def test_single_model_bundles_have_no_histogram():
    single = bundle_method("one", Bundle.random(["1-2w8"], threshold=0.0, boundaries=[], scale=2))
    outcome = evaluate_image("x.png", _photo(40, 40, 0), [single], scale=2, crop_border=2, with_niqe=False)
    assert outcome.scores["one"].histogram is None


def test_too_small_images_are_refused_by_name():
    with pytest.raises(ValueError, match="tiny.png: 16x16 .* too small"):
        evaluate_image("tiny.png", _photo(18, 16, 0), [bicubic_method()], scale=4, crop_border=4, with_niqe=False)


def test_mean_skips_missing_values_and_sums_histograms():
    run = EvalRun("hr", 4, 4, True, "cpu", [bicubic_method()])
    run.images = [
        ("a", (8, 8), {BICUBIC: Scores(20.0, 0.5, 4.0, 0.1, (1, 3)), HR: Scores(None, None, 3.0, None)}),
        ("b", (8, 8), {BICUBIC: Scores(30.0, 0.7, None, 0.3, (2, 0)), HR: Scores(None, None, None, None)}),
    ]
    mean = run.mean()
    assert mean[BICUBIC] == Scores(25.0, pytest.approx(0.6), 4.0, pytest.approx(0.2), (3, 3))
    assert mean[HR] == Scores(None, None, 3.0, None, None)


def test_evaluate_folder_reports_and_skips_an_unreadable_image(tmp_path, two_class, capsys):
    for i, name in enumerate(["a.png", "b.png"]):
        Image.fromarray(_photo(40, 44, i).permute(1, 2, 0).numpy()).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    run = evaluate_folder(tmp_path, [bicubic_method(), two_class], scale=4, with_niqe=False, progress=False)
    assert [name for name, _, _ in run.images] == ["a.png", "b.png"]
    assert [name for name, _ in run.failed] == ["broken.png"]
    assert "skipped broken.png" in capsys.readouterr().err
    assert run.crop_border == 4 and run.upscale_s > 0 and run.total_s >= run.metrics_s


def test_evaluate_folder_checks_its_arguments(tmp_path, two_class):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_folder(tmp_path / "missing", [bicubic_method()], scale=4)
    with pytest.raises(ValueError, match="holds no image files"):
        evaluate_folder(tmp_path, [bicubic_method()], scale=4)
    with pytest.raises(ValueError, match="upscales x4 but --scale is 2"):
        evaluate_folder(tmp_path, [two_class], scale=2)
    with pytest.raises(ValueError, match="unique"):
        evaluate_folder(tmp_path, [bicubic_method(), bicubic_method()], scale=4)


def test_choose_crop_finds_the_textured_corner():
    hr = torch.full((3, 96, 96), 128, dtype=torch.uint8)
    hr[:, 64:, :32] = _photo(64, 64, 0)[:, :32, :32] // 2 * 2 + torch.randint(0, 2, (3, 32, 32), dtype=torch.uint8) * 60
    assert choose_crop(hr, 32) == (64, 0, 32)
    assert choose_crop(hr[:, :20], 32)[2] == 20


def test_comparison_has_one_panel_per_method_plus_hr_plus_class_map(two_class):
    outcome = evaluate_image("x.png", _photo(64, 80, 0), [bicubic_method(), two_class], scale=4, crop_border=4,
                             with_niqe=False)
    image = comparison_image(outcome, [bicubic_method(), two_class], 4, crop=48, zoom=2)
    panels, side = 4, 96  # bicubic | mm | HR | mm's class map
    assert image.dtype == torch.uint8 and image.shape == (3, _LABEL_HEIGHT + side, panels * side + (panels - 1) * _GAP)


def test_csv_and_json_hold_every_image_and_the_means():
    run = EvalRun("hr", 4, 4, False, "cpu", [bicubic_method()])
    run.images = [("a.png", (8, 12), {BICUBIC: Scores(math.inf, 1.0, None, 0.5)})]
    rows = list(csv.DictReader(io.StringIO(csv_text(run))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["image"], r["method"]) for r in rows] == [("a.png", BICUBIC), ("mean", BICUBIC)]
    assert rows[0]["height"] == "8" and rows[0]["niqe_lower_is_better"] == ""
    assert float(rows[1]["psnr_y_db"]) == math.inf
    data = json.loads(json.dumps(results_json(run), allow_nan=False))
    assert data["images"][0]["scores"][BICUBIC]["psnr_y_db"] is None  # inf has no JSON form
    assert data["mean"][BICUBIC]["upscale_time_s"] == 0.5 and "Ma et al." in data["conventions"]["pi"]


def _summary(path, mode, classes, wall, resume=False):
    path.mkdir(parents=True, exist_ok=True)
    entries = [
        {"index": k, "config": c, "device": d, "status": "finished", "steps": 10, "wall_time_s": t}
        for k, (c, d, t) in enumerate(classes)
    ]
    summary = {"mode": mode, "classes": entries, "wall_time_s": wall, "settings": {"resume": resume}}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def _cells(row: str) -> list:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_table3_ratios_are_taken_against_the_baseline(tmp_path):
    base = load_run(_summary(tmp_path / "srgan.run", "baseline", [("16-8", "cuda:0", 1000.0)], 1200.0))
    mmsr = load_run(
        "ours=" + str(_summary(tmp_path / "m", "mmsr", [("4-2", "cuda:0", 150.0), ("8-6", "cuda:1", 450.0)], 480.0))
    )
    assert (base.name, mmsr.name) == ("srgan", "ours")
    assert find_baseline([mmsr, base]) is base
    rows = [_cells(line) for line in training_table([base, mmsr], base).splitlines() if line.startswith("| ours |")]
    # wall 480 / 1200; classes (150 + 450) / 1000; longest class 450 / 1000.
    assert rows[0][4:] == ["480.0", "0.40", "600.0", "0.60", "450.0", "0.45"]
    assert rows[1][-2:] == ["150.0", "0.15"] and rows[2][-2:] == ["450.0", "0.45"]


def test_a_single_16_8_run_is_a_baseline_and_two_need_a_choice(tmp_path):
    a = RunTimes("a", "a", "mmsr", ("16-8w32",), ("cpu",), ("finished",), (1,), (5.0,), 6.0)
    b = RunTimes("b", "b", "baseline", ("16-8",), ("cpu",), ("finished",), (1,), (5.0,), 6.0)
    c = RunTimes("c", "c", "mmsr", ("4-2", "16-8"), ("cpu",) * 2, ("finished",) * 2, (1, 1), (1.0, None), 6.0)
    assert a.is_baseline and not c.is_baseline and c.sum_s is None and c.max_s is None
    with pytest.raises(ValueError, match="several runs are baselines"):
        find_baseline([a, b])
    assert find_baseline([a, b], "b") is b and find_baseline([c]) is None


def test_load_run_names_the_bad_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no training summary"):
        load_run(tmp_path)
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(ValueError, match="summary.json' is not a JSON"):
        load_run(tmp_path)
    (tmp_path / "summary.json").write_text('{"classes": []}')
    with pytest.raises(ValueError, match="no per-class entries"):
        load_run(tmp_path)


def test_bundle_files_load_by_path(tmp_path):
    path = save_bundle(Bundle.random(["1-2w8"], threshold=0.0, boundaries=[], scale=2), tmp_path / "b.safetensors")
    method = bundle_method("b", path)
    assert method.describe()["path"] == str(path) and method.describe()["configs"] == ["1-2w8"]
    assert method.describe()["context"] == 4 and method.describe()["max_run"] == 8  # the Upscaler's defaults
    assert method.describe()["promote"] is False  # evaluation measures pure TVAT routing unless asked
    assert bundle_method("b", path, promote=True).upscaler.promote is True
    with pytest.raises(ValueError, match="reserved"):
        bundle_method(HR, path)
