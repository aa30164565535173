"""`mmsr eval` and `mmsr report` end to end: files, columns, comparison images, errors and exit codes."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image

from mmsr.bundle import Bundle, save_bundle
from mmsr.cli import main as mmsr_main
from mmsr.evaluate_report import _GAP, _LABEL_HEIGHT, CSV_COLUMNS

IMAGES = {"a.png": (112, 112), "b.png": (60, 75), "sub/c.jpg": (50, 61)}


def _photo(height: int, width: int, seed: int) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([yy, xx, 1 - yy]) * 200 + 20
    image[:, height // 2 :] += torch.rand(3, height - height // 2, width, generator=g) * 100 - 50
    return Image.fromarray(image.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hr")
    for seed, (name, size) in enumerate(IMAGES.items()):
        (root / name).parent.mkdir(exist_ok=True)
        _photo(*size, seed).save(root / name)
    return root


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    two = Bundle.random(["1-2w8", "2-2w16"], threshold=0.0, boundaries=[0.02], scale=4)
    one = Bundle.random(["2-2w8"], threshold=0.0, boundaries=[], scale=4)
    return save_bundle(two, root / "two.safetensors"), save_bundle(one, root / "one.safetensors")


@pytest.fixture(scope="module")
def evaluated(hr_dir, bundles, tmp_path_factory):
    """One full `mmsr eval` run with a two-class bundle (named) and a single-model bundle (by stem)."""
    out = tmp_path_factory.mktemp("eval") / "out"
    two, one = bundles
    code = mmsr_main(["eval", "--hr", str(hr_dir), "--bundle", f"mm={two}", "--bundle", str(one), "--out", str(out),
                      "--compare-crop", "48"])
    return code, out


def test_eval_writes_the_table_csv_and_json_with_every_image_and_the_mean(evaluated):
    code, out = evaluated
    assert code == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    names = {"a.png", "b.png", "sub/c.jpg"}
    methods = ["bicubic", "torch-bicubic", "mm", "one", "HR"]
    assert {(r["image"], r["method"]) for r in rows} == {(i, m) for i in names | {"mean"} for m in methods}
    by_key = {(r["image"], r["method"]): r for r in rows}
    assert by_key["sub/c.jpg", "bicubic"]["height"] == "48" and by_key["sub/c.jpg", "bicubic"]["width"] == "60"
    # NIQE needs 96x96 after the 4-pixel crop: only a.png (112x112) has it.
    assert by_key["a.png", "mm"]["niqe_lower_is_better"] != "" and by_key["b.png", "mm"]["niqe_lower_is_better"] == ""
    assert by_key["mean", "mm"]["class_histogram"].count(" ") == 1 and by_key["mean", "one"]["class_histogram"] == ""
    mean_psnr = sum(float(by_key[i, "bicubic"]["psnr_y_db"]) for i in names) / 3
    assert float(by_key["mean", "bicubic"]["psnr_y_db"]) == pytest.approx(mean_psnr)

    data = json.loads((out / "results.json").read_text())
    assert [m["name"] for m in data["methods"]] == ["bicubic", "torch-bicubic", "mm", "one"]
    assert set(data["mean"]) == set(methods) and len(data["images"]) == 3 and data["failed"] == []
    assert data["images"][0]["comparison"] == "compare/a.png"

    report = (out / "report.md").read_text()
    assert "NIQE ↓ |" in report and "NIQE ↓ (lower is better)" not in report
    assert report.count("perceptual index") == 1 and "PI (perceptual index) is not reported because" in report
    assert "## Mean over 3 images" in report and "| mm |" in report and "tiles per class" in report


def test_eval_draws_one_comparison_per_image_with_a_panel_per_method(evaluated):
    _, out = evaluated
    files = sorted(p.name for p in (out / "compare").iterdir())
    assert files == ["a.png", "b.png", "sub__c.png"]
    # bicubic | mm | one | HR | mm's class map (torch-bicubic, which looks like bicubic, and the single-model
    # bundle's class map are left out), 48 px crops zoomed 2x.
    panels, side = 5, 96
    with Image.open(out / "compare" / "a.png") as im:
        assert im.size == (panels * side + (panels - 1) * _GAP, _LABEL_HEIGHT + side)
    with Image.open(out / "compare" / "sub__c.png") as im:  # 48x60: the crop is clamped to 48
        assert im.size[0] == panels * side + (panels - 1) * _GAP


def test_tiling_options_reach_the_upscalers_and_the_report(hr_dir, bundles, tmp_path):
    out = tmp_path / "out"
    assert mmsr_main(["eval", "--hr", str(hr_dir), "--bundle", str(bundles[0]), "--out", str(out), "--no-niqe",
                      "--limit", "1", "--context", "2", "--max-run", "1"]) == 0
    method = json.loads((out / "results.json").read_text())["methods"][2]
    assert method["context"] == 2 and method["max_run"] == 1 and method["promote"] is False
    assert "context 2, blocks up to 1 tiles wide" in (out / "report.md").read_text()
    assert "promoted" not in (out / "report.md").read_text()


def test_promote_is_off_unless_asked(hr_dir, bundles, tmp_path):
    # Evaluation measures pure TVAT routing (the method); --promote measures `mmsr upscale`'s default.
    out = tmp_path / "out"
    assert mmsr_main(["eval", "--hr", str(hr_dir), "--bundle", str(bundles[0]), "--out", str(out), "--no-niqe",
                      "--limit", "1", "--promote"]) == 0
    assert json.loads((out / "results.json").read_text())["methods"][2]["promote"] is True
    assert "tiles promoted to the deepest model" in (out / "report.md").read_text()


def test_an_unreadable_image_is_reported_and_skipped_with_a_nonzero_exit(hr_dir, bundles, tmp_path, capsys):
    broken = tmp_path / "hr"
    broken.mkdir()
    for name in ("a.png", "b.png"):
        (broken / name).write_bytes((hr_dir / name).read_bytes())
    (broken / "bad.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "out"
    code = mmsr_main(["eval", "--hr", str(broken), "--bundle", str(bundles[0]), "--out", str(out), "--no-niqe"])
    assert code == 1
    err = capsys.readouterr().err
    assert "skipped bad.png" in err and "1 image(s) failed" in err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["image"] for r in rows} == {"a.png", "b.png", "mean"}
    assert json.loads((out / "results.json").read_text())["failed"][0]["name"] == "bad.png"
    assert "## Skipped images (1)" in (out / "report.md").read_text()


def test_missing_or_empty_hr_dir_is_a_clear_error(bundles, tmp_path, capsys):
    assert mmsr_main(["eval", "--hr", str(tmp_path / "nope"), "--bundle", str(bundles[0])]) == 2
    assert "--hr" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert mmsr_main(["eval", "--hr", str(tmp_path / "empty"), "--scale", "4"]) == 2
    assert "holds no image files" in capsys.readouterr().err


def test_bad_arguments_are_refused_before_any_work(hr_dir, bundles, tmp_path, capsys):
    assert mmsr_main(["eval", "--hr", str(hr_dir)]) == 2
    assert "--scale is required" in capsys.readouterr().err
    assert mmsr_main(["eval", "--hr", str(hr_dir), "--bundle", str(bundles[0]), "--scale", "2"]) == 2
    assert "upscales x4 but --scale is 2" in capsys.readouterr().err
    assert mmsr_main(["eval", "--hr", str(hr_dir), "--bundle", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert mmsr_main(["eval", "--hr", str(hr_dir), "--scale", "4", "--out", str(hr_dir / "results")]) == 2
    assert "inside --hr" in capsys.readouterr().err


def test_eval_help_names_pi_as_unavailable(capsys):
    with pytest.raises(SystemExit) as exit_info:
        mmsr_main(["eval", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "PI (perceptual index) is not reported" in text and "Ma et al." in text and "lower is better" in text
    assert text.count("PI (perceptual index)") == 1


def _summary(folder, mode, classes, wall):
    folder.mkdir()
    entries = [
        {"index": k, "config": c, "device": "cuda:%d" % k, "status": "finished", "steps": 100, "wall_time_s": t}
        for k, (c, t) in enumerate(classes)
    ]
    (folder / "summary.json").write_text(json.dumps({"mode": mode, "classes": entries, "wall_time_s": wall}))
    return folder


def test_report_prints_table3_with_hand_computed_ratios(tmp_path, capsys):
    base = _summary(tmp_path / "srgan.run", "baseline", [("16-8", 2000.0)], 2100.0)
    ours = _summary(tmp_path / "mmsr.run", "mmsr", [("4-2", 300.0), ("8-6", 500.0), ("16-8", 700.0)], 840.0)
    table_file = tmp_path / "table3.md"
    assert mmsr_main(["report", str(ours), str(base / "summary.json"), "--out", str(table_file)]) == 0
    text = capsys.readouterr().out
    assert table_file.read_text() == text
    row = next(line for line in text.splitlines() if line.startswith("| mmsr |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # measured 840 / 2100 = 0.40; summed 1500 / 2000 = 0.75; separate devices (computed) 700 / 2000 = 0.35.
    assert cells[4:] == ["840.0", "0.40", "1500.0", "0.75", "700.0", "0.35"]
    assert "separate devices (s, computed)" in text and "Computed from the per-class timings, not measured" in text


def test_report_refuses_a_missing_summary(tmp_path, capsys):
    assert mmsr_main(["report", str(tmp_path)]) == 2
    assert "no training summary" in capsys.readouterr().err
