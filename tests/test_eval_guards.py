"""`mmsr eval` / `mmsr report` guards: arguments checked up front, both bicubic rows, honest means and files.

Each test is a defect of the eval / report audit, kept fixed: bad arguments fail before any work and
name the option, the residual generators' own bicubic has a row of its own, the means say what they
cover, and no file of an earlier run is mixed with the new ones.
"""
from __future__ import annotations

import importlib
import json

import pytest
import torch
from PIL import Image

from mmsr.bundle import Bundle, save_bundle
from mmsr.cli import main as mmsr_main
from mmsr.evaluate import (
    BICUBIC,
    PSNR_CAP_DB,
    TORCH_BICUBIC,
    bicubic_method,
    bundle_method,
    evaluate_folder,
    evaluate_image,
    torch_bicubic_method,
    torch_bicubic_upscale,
)
from mmsr.evaluate_curve import curve_report
from mmsr.evaluate_report import comparison_image
from mmsr.evaluate_training import RunTimes, training_table
from mmsr.models import Generator, ModelConfig

SEEDS = [0, 1]
# mmsr.metrics re-exports the niqe function under the module's name; the module holds the file's name.
niqe_module = importlib.import_module("mmsr.metrics.niqe")


def _photo(height: int, width: int, seed: int) -> torch.Tensor:
    """uint8 [3, H, W]: smooth ramps with a noisy lower half."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([yy, xx, 1 - yy]) * 200 + 20
    image[:, height // 2 :] += torch.rand(3, height - height // 2, width, generator=g) * 100 - 50
    return image.clamp(0, 255).round().to(torch.uint8)


def _save(image: torch.Tensor, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory):
    """Two small images (no NIQE: under 96x96 after the crop)."""
    root = tmp_path_factory.mktemp("hr")
    _save(_photo(40, 44, 0), root / "a.png")
    _save(_photo(36, 40, 1), root / "b.png")
    return root


@pytest.fixture(scope="module")
def residual_bundle(tmp_path_factory):
    """An untrained residual bundle: its tail starts at zero, so it outputs torch's bicubic."""
    bundle = Bundle.random(["1-2w8r"], threshold=0.0, boundaries=[], scale=4)
    return save_bundle(bundle, tmp_path_factory.mktemp("bundles") / "untrained_r.safetensors")


def _eval(*arguments) -> int:
    return mmsr_main(["eval", *map(str, arguments)])


# -- 5: --compare-crop ---------------------------------------------------------------------------


@pytest.mark.parametrize("crop", ["0", "-5", "x"])
def test_compare_crop_must_be_a_positive_int_before_any_work(hr_dir, tmp_path, capsys, crop):
    with pytest.raises(SystemExit) as exit_info:
        _eval("--hr", hr_dir, "--scale", 4, "--out", tmp_path / "out", "--compare-crop", crop)
    assert exit_info.value.code == 2
    assert "argument --compare-crop: must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_comparison_image_refuses_a_zero_crop():
    outcome = evaluate_image("x.png", _photo(40, 40, 0), [bicubic_method()], scale=4, crop_border=4, with_niqe=False)
    with pytest.raises(ValueError, match="crop must be a positive int, got 0"):
        comparison_image(outcome, [bicubic_method()], 4, crop=0)


# -- 6: the two bicubics ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_torch_bicubic_is_what_an_untrained_residual_generator_outputs(seed):
    lr = _photo(9, 11, seed)
    generator = Generator.from_config(ModelConfig.parse("1-2w8r"), scale=4).eval()
    with torch.no_grad():
        out = generator(lr.float().div(255)[None])[0]
    expected = out.clamp(0, 1).mul(255).round().to(torch.uint8)
    assert torch.equal(torch_bicubic_upscale(lr, 4), expected)


def test_eval_reports_both_bicubic_rows_and_the_untrained_residual_bundle_matches_torch_bicubic(
    hr_dir, residual_bundle, tmp_path
):
    out = tmp_path / "out"
    assert _eval("--hr", hr_dir, "--bundle", f"r0={residual_bundle}", "--out", out, "--no-niqe") == 0
    data = json.loads((out / "results.json").read_text())
    methods = {m["name"]: m for m in data["methods"]}
    assert list(methods) == [BICUBIC, TORCH_BICUBIC, "r0"]
    assert "a=-0.5" in methods[BICUBIC]["kernel"] and "a=-0.75" in methods[TORCH_BICUBIC]["kernel"]
    mean = data["mean"]
    # Tiles are blended where they overlap, so a pixel may differ by float rounding: compare in dB.
    assert mean["r0"]["psnr_y_db"] == pytest.approx(mean[TORCH_BICUBIC]["psnr_y_db"], abs=1e-3)
    assert abs(mean[TORCH_BICUBIC]["ssim_y"] - mean[BICUBIC]["ssim_y"]) > 1e-4  # two kernels, two rows
    report = (out / "report.md").read_text()
    assert f"| {TORCH_BICUBIC} |" in report and "Keys' a = −0.75" in report
    assert f"its lead over {TORCH_BICUBIC}, not over bicubic" in report
    assert TORCH_BICUBIC in data["conventions"]


def test_torch_bicubic_is_a_reserved_name(residual_bundle):
    with pytest.raises(ValueError, match="reserved"):
        bundle_method(TORCH_BICUBIC, residual_bundle)
    assert torch_bicubic_method().describe()["kind"] == "bicubic"


# -- 11: NIQE's parameters file --------------------------------------------------------------------


@pytest.fixture
def niqe_params_missing(monkeypatch):
    niqe_module._pristine.cache_clear()
    monkeypatch.setattr(niqe_module, "_PARAMS_FILE", "missing_niqe_params.npz")
    yield
    monkeypatch.undo()
    niqe_module._pristine.cache_clear()


def test_a_missing_niqe_file_is_one_error_up_front(niqe_params_missing, hr_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval("--hr", hr_dir, "--scale", 4, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("error") == 1 and "missing_niqe_params.npz" in err and "--no-niqe" in err
    assert "skipped" not in err and not out.exists()
    with pytest.raises(OSError, match="missing_niqe_params.npz.*--no-niqe"):
        evaluate_folder(hr_dir, [bicubic_method()], scale=4, progress=False)
    # Without NIQE the file is not needed.
    assert _eval("--hr", hr_dir, "--scale", 4, "--out", out, "--no-niqe") == 0


# -- 13: error messages ----------------------------------------------------------------------------


def test_a_missing_or_empty_hr_folder_is_named_before_scale(tmp_path, capsys):
    assert _eval("--hr", tmp_path / "nope", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "--hr" in err and "does not exist" in err and "--scale" not in err
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("not an image")
    for folder in ("empty", "text"):
        assert _eval("--hr", tmp_path / folder, "--out", tmp_path / "out") == 2
        err = capsys.readouterr().err
        assert "holds no image files" in err and "--scale" not in err


def test_a_bad_blend_names_the_option(hr_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _eval("--hr", hr_dir, "--scale", 4, "--out", tmp_path / "out", "--blend", "foo")
    assert exit_info.value.code == 2 and "argument --blend: invalid choice: 'foo'" in capsys.readouterr().err


def test_a_skip_reason_names_the_image_once(hr_dir, tmp_path, capsys):
    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "a.png").write_bytes((hr_dir / "a.png").read_bytes())
    (hr / "bad.png").write_bytes(b"\x89PNG truncated")
    assert _eval("--hr", hr, "--scale", 4, "--out", tmp_path / "out", "--no-niqe") == 1
    line = next(line for line in capsys.readouterr().err.splitlines() if "skipped bad.png" in line)
    assert line.count("bad.png") == 1, line
    reason = json.loads((tmp_path / "out" / "results.json").read_text())["failed"][0]["reason"]
    assert "bad.png" not in reason and "cannot read image" in reason


# -- 14: what the means cover ----------------------------------------------------------------------


def test_an_exact_reconstruction_is_capped_alike_in_the_report_and_the_json(tmp_path):
    hr = tmp_path / "hr"
    _save(torch.full((3, 40, 40), 90, dtype=torch.uint8), hr / "grey.png")  # bicubic reproduces it exactly
    _save(_photo(40, 44, 0), hr / "photo.png")
    out = tmp_path / "out"
    assert _eval("--hr", hr, "--scale", 4, "--out", out, "--no-niqe") == 0
    data = json.loads((out / "results.json").read_text())
    grey = next(i for i in data["images"] if i["name"] == "grey.png")
    assert grey["scores"][BICUBIC]["psnr_y_db"] == PSNR_CAP_DB
    mean = data["mean"][BICUBIC]["psnr_y_db"]
    photo = next(i for i in data["images"] if i["name"] == "photo.png")["scores"][BICUBIC]["psnr_y_db"]
    assert mean == pytest.approx((PSNR_CAP_DB + photo) / 2)
    assert {"image": "grey.png", "method": BICUBIC} in data["psnr_capped"] and data["psnr_cap_db"] == PSNR_CAP_DB
    report = (out / "report.md").read_text()
    assert "∞" not in report and f"| {BICUBIC} | {mean:.2f} |" in report
    assert "capped at 100 dB" in report and "reached the 100 dB cap" in report


def test_the_niqe_mean_says_how_many_images_it_covers(tmp_path, capsys):
    hr = tmp_path / "hr"
    _save(_photo(104, 104, 0), hr / "big.png")  # 96x96 after the 4-pixel crop: has a NIQE
    _save(_photo(40, 44, 1), hr / "small.png")
    out = tmp_path / "out"
    assert _eval("--hr", hr, "--scale", 4, "--out", out) == 0
    assert "NIQE over 1 of them" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["niqe_images"] == {BICUBIC: 1, TORCH_BICUBIC: 1, "HR": 1} and data["images_evaluated"] == 2
    assert "The NIQE means cover only the images that have a NIQE (1 of 2 images)" in (out / "report.md").read_text()


# -- 15: nothing evaluated; a reused --out -------------------------------------------------------


def test_when_every_image_fails_there_is_an_error_and_no_report(tmp_path, capsys):
    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert _eval("--hr", hr, "--scale", 4, "--out", out, "--no-niqe") == 1
    captured = capsys.readouterr()
    assert "none of the 1 image(s)" in captured.err and "Mean over 0" not in captured.out
    assert not (out / "report.md").exists() and not (out / "compare").exists()


def test_a_reused_out_keeps_no_stale_comparisons_but_keeps_the_users_files(hr_dir, tmp_path):
    out = tmp_path / "out"
    assert _eval("--hr", hr_dir, "--scale", 4, "--out", out, "--no-niqe") == 0
    assert sorted(p.name for p in (out / "compare").iterdir()) == ["a.png", "b.png"]
    _save(_photo(8, 8, 0), out / "compare" / "mine.png")  # not mmsr's: must stay
    assert _eval("--hr", hr_dir, "--scale", 4, "--out", out, "--no-niqe", "--limit", 1) == 0
    assert sorted(p.name for p in (out / "compare").iterdir()) == ["a.png", "mine.png"]


# -- 16: --quality --limit -------------------------------------------------------------------------


def _snapshot_run(root):
    from mmsr.train.snapshots import write_snapshot

    run = root / "one.run"
    run.mkdir()
    plan = {"mode": "mmsr", "configs": ["1-2w8"], "boundaries": [], "threshold": 0.0, "scale": 4}
    (run / "plan.json").write_text(json.dumps(plan))
    summary = {"mode": "mmsr", "wall_time_s": 2.0, "settings": {"seed": 0},
               "classes": [{"config": "1-2w8", "device": "cpu", "status": "finished", "steps": 2, "wall_time_s": 1.0}]}
    (run / "summary.json").write_text(json.dumps(summary))
    generator = Generator.from_config(ModelConfig.parse("1-2w8"), scale=4)
    for index in (0, 1):
        write_snapshot(run, klass=0, config="1-2w8", generator=generator, index=index, count=1, step=2 * index,
                       elapsed_s=float(index), threshold=0.0, tile_size=16, overlap=4)  # fmt: skip
    return run


def test_report_quality_limit_says_how_many_images_were_measured(hr_dir, tmp_path, capsys):
    run = _snapshot_run(tmp_path)
    assert mmsr_main(["report", str(run), "--quality", str(hr_dir), "--limit", "1", "--no-cache"]) == 0
    assert "(the first 1 of its 2 images only)" in capsys.readouterr().out
    assert "images only" not in curve_report([], None, str(hr_dir), images=(2, 2))


# -- 17: × baseline from partial times -------------------------------------------------------------


def _times(name, mode, statuses, wall, resumed=False, times=(10.0,)):
    configs = ("16-8",) if mode == "baseline" else ("4-2",) * len(statuses)
    return RunTimes(name, f"{name}.json", mode, configs, ("cpu",) * len(statuses), statuses, (5,) * len(statuses),
                    times, wall, resumed=resumed)  # fmt: skip


def _row(table, name):
    line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_resumed_and_unfinished_runs_get_no_ratios_from_partial_times():
    base = _times("base", "baseline", ("finished",), 20.0, times=(16.0,))
    resumed = _times("resumed", "mmsr", ("finished", "finished"), 2.0, resumed=True, times=(4.0, 4.0))
    unfinished = _times("cut", "mmsr", ("finished", "interrupted"), 5.0, times=(4.0, 1.0))
    table = training_table([resumed, unfinished, base], base)
    # The resumed run: its wall time is the last session's, so no wall ratio; class times are whole.
    assert _row(table, "resumed")[4:] == ["2.0 †", "—", "8.0", "0.50", "4.0", "0.25"]
    assert _row(table, "cut")[4:] == ["5.0", "—", "5.0", "—", "4.0", "—"]
    assert "No wall-time ratio for resumed" in table and "No ratios for cut" in table


def test_a_resumed_baseline_gives_no_wall_time_ratio():
    base = _times("base", "baseline", ("finished",), 20.0, resumed=True, times=(16.0,))
    run = _times("m", "mmsr", ("finished",), 5.0, times=(8.0,))
    table = training_table([run, base], base)
    assert _row(table, "m")[4:6] == ["5.0", "—"] and _row(table, "m")[7] == "0.50"


# -- 20: wording -------------------------------------------------------------------------------------


def test_without_niqe_no_niqe_timing_is_printed(hr_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert _eval("--hr", hr_dir, "--scale", 4, "--out", out, "--no-niqe") == 0
    assert "NIQE 0.0 s" not in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "NIQE 0.0 s" not in report and "NIQE ↓ (lower is better)" not in report
    assert report.count("PI (perceptual index)") == 1


def test_build_info_has_a_description(capsys):
    with pytest.raises(SystemExit):
        mmsr_main(["build-info", "--help"])
    assert "compiled with" in capsys.readouterr().out
