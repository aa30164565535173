"""Defects of the second `mmsr eval` / `mmsr report` audit, kept fixed.

Each section is one defect: what the curve and the shipped bundle are, `--concurrent` runs' costs,
seeds pooled honestly, grayscale images, skipped images and `--out` in `mmsr report`, messages
for unfinished runs, `--device`, the warm-up of every model, and the bundle's identity in results.json.
Runs are hand-made run folders (plan.json, summary.json, snapshots of 1-2w8 generators) and
images are a few small ramps, so each test takes well under a second.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from mmsr import evaluate
from mmsr.bundle import Bundle, save_bundle
from mmsr.cli import main as mmsr_main
from mmsr.evaluate import BICUBIC, bundle_method, evaluate_folder
from mmsr.evaluate_curve import CurvePoint, QualityCurve, curve_report
from mmsr.evaluate_seeds import seed_report
from mmsr.evaluate_training import RunTimes, label_seeds, load_run, training_table
from mmsr.models import Generator, ModelConfig
from mmsr.train.snapshots import write_snapshot
from test_eval_guards import _photo, hr_dir  # noqa: F401  (hr_dir is a fixture: two small colour images)

CONFIG = "1-2w8"
GREY_GAIN_DB = 20 * math.log10(255 / 219)  # Y = 16 + 219/255 v narrows the range by this much


def _save(image: torch.Tensor, path, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.permute(1, 2, 0).numpy()).convert(mode).save(path)


def _generator(seed: int) -> Generator:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Generator.from_config(ModelConfig.parse(CONFIG), scale=4)


def _run_folder(root, name, *, classes=1, gan_steps=0, statuses=None, concurrent=False, seed=0, pixel_steps=2,
                mode="mmsr", shipped=True):  # fmt: skip
    """A finished (by default) `mmsr train --snapshots 1` run folder of 1-2w8 classes, and its bundle.

    A class whose status is "not run" has no snapshots; with ``gan_steps`` the bundle is a generator of
    its own (the post-GAN one), else the last snapshots'.
    """
    statuses = statuses or ["finished"] * classes
    run = root / f"{name}.run"
    run.mkdir(parents=True)
    boundaries = [0.02 * (k + 1) for k in range(classes - 1)]
    plan = {"mode": mode, "configs": [CONFIG] * classes, "boundaries": boundaries, "threshold": 0.0, "scale": 4}
    (run / "plan.json").write_text(json.dumps(plan))
    generators = [_generator(seed + k) for k in range(classes)]
    for k, status in enumerate(statuses):
        if status == "not run":
            continue
        for index in (0, 1):
            write_snapshot(run, klass=k, config=CONFIG, generator=generators[k], index=index, count=1,
                           step=pixel_steps * index, elapsed_s=1.0 + k + 2.0 * index, threshold=0.0, tile_size=16,
                           overlap=4)  # fmt: skip
    bundle = None
    if shipped:
        final = [_generator(100 + seed + k) for k in range(classes)] if gan_steps else generators
        path = save_bundle(Bundle.from_generators(final, [CONFIG] * classes, threshold=0.0, boundaries=boundaries,
                                                  tile_size=16, overlap=4), root / f"{name}.safetensors")  # fmt: skip
        bundle = {"path": str(path), "relative": f"../{name}.safetensors",
                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}  # fmt: skip
    entries = [
        {"index": k, "config": CONFIG, "device": "cpu", "status": status,
         "steps": 0 if status == "not run" else pixel_steps + gan_steps, "pixel_steps": pixel_steps,
         "gan_steps": 0 if status == "not run" else gan_steps, "wall_time_s": 10.0 * (k + 1) if status == "finished"
         else None}
        for k, status in enumerate(statuses)
    ]  # fmt: skip
    command = ["/usr/bin/mmsr", "train", "data", "--out", f"{name}.safetensors", "--snapshots", "1"]
    summary = {
        "mode": mode, "command": command, "cwd": str(root), "classes": entries, "wall_time_s": 40.0, "bundle": bundle,
        "settings": {"seed": seed, "concurrent": concurrent, "pixel_steps": [pixel_steps] * classes,
                     "gan_steps": [gan_steps] * classes, "snapshots": 1, "command": command},
    }  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _report(*arguments) -> int:
    return mmsr_main(["report", *map(str, arguments)])


def _cells(text: str, first: str) -> list:
    line = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


# -- 1: the curve is the pixel phase; the shipped bundle is after the GAN phase ---------------------


def test_a_run_with_a_gan_phase_does_not_claim_its_last_snapshot_is_what_it_ships(hr_dir, tmp_path, capsys):
    run = _run_folder(tmp_path, "g", gan_steps=3)
    assert _report(run, "--quality", hr_dir, "--no-cache") == 0
    text = capsys.readouterr().out
    assert "what the run ships" not in text and "The curve covers the pixel phase only" in text
    assert "Table 3's class times also hold any GAN phase" in text
    shipped = evaluate_folder(hr_dir, [bundle_method("s", tmp_path / "g.safetensors")], scale=4, with_niqe=False,
                              progress=False).mean()["s"]  # fmt: skip
    line = next(line for line in text.splitlines() if line.startswith("- **g**:"))
    assert "3 GAN steps per class" in line and "is the post-GAN one and is not a point of this curve" in line
    assert f"PSNR-Y {shipped.psnr_y:.2f} dB, SSIM-Y {shipped.ssim_y:.4f}" in line
    assert _cells(text, "g | 1/1")[5] != f"{shipped.psnr_y:.2f}"  # the curve ends before the GAN phase


def test_the_shipped_bundles_score_is_kept_with_the_snapshots(hr_dir, tmp_path, capsys, monkeypatch):
    import mmsr.evaluate_curve as evaluate_curve

    run = _run_folder(tmp_path, "g", gan_steps=3)
    assert _report(run, "--quality", hr_dir) == 0
    first = capsys.readouterr().out

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(evaluate_curve, "evaluate_folder", no_measuring)
    assert _report(run, "--quality", hr_dir) == 0 and capsys.readouterr().out == first
    bundle = tmp_path / "g.safetensors"
    os.utime(bundle, ns=(bundle.stat().st_atime_ns, bundle.stat().st_mtime_ns + 10**9))  # rewritten: measured again
    with pytest.raises(AssertionError, match="measured again"):
        _report(run, "--quality", hr_dir)


def test_a_missing_or_replaced_shipped_bundle_is_said_not_measured(hr_dir, tmp_path, capsys):
    run = _run_folder(tmp_path, "g", gan_steps=3)
    bundle = tmp_path / "g.safetensors"
    save_bundle(Bundle.random([CONFIG], threshold=0.0, boundaries=[], scale=4), bundle)  # another run's file
    assert _report(run, "--quality", hr_dir, "--no-cache") == 0
    assert "not measured: `" in (out := capsys.readouterr().out) and "is no longer the bundle the run wrote" in out
    bundle.unlink()
    assert _report(run, "--quality", hr_dir, "--no-cache") == 0
    assert "not measured: the bundle file is not there" in capsys.readouterr().out


def test_without_a_gan_phase_the_last_snapshot_is_what_ships(hr_dir, tmp_path, capsys):
    run = _run_folder(tmp_path, "p")
    assert _report(run, "--quality", hr_dir, "--no-cache") == 0
    assert "- **p**: no GAN phase, so its last snapshot holds the generators the run ships." in capsys.readouterr().out


# -- 2: --concurrent runs: one device is the longest class, measured; no separate devices ----------


def test_table3_gives_a_concurrent_run_its_measured_one_device_time_and_no_separate_devices_time():
    base = RunTimes("base", "b.json", "baseline", ("16-8",), ("cpu",), ("finished",), (100,), (50.0,), 55.0)
    shared = RunTimes("shared", "s.json", "mmsr", ("2-2", "8-6"), ("cpu", "cpu"), ("finished",) * 2, (50, 50),
                      (10.0, 20.0), 33.0, concurrent=True)  # fmt: skip
    table = training_table([base, shared], base)
    # One device: the longest class (20 s, measured while both shared the CPU), not 10 + 20; 20 / 50 = 0.40.
    assert _cells(table, "shared")[4:] == ["33.0", "0.60", "20.0 ‡", "0.40", "—", "—"]
    assert "‡ shared trained its classes concurrently (`--concurrent`) on cpu" in table
    assert "Its one-device time is measured, not summed: the longest class's training time" in table
    assert "It has no separate-devices time" in table
    assert "class times summed" not in table


def test_the_curve_of_a_concurrent_run_has_no_separate_devices_time(hr_dir, tmp_path, capsys):
    run = _run_folder(tmp_path, "c", classes=2, concurrent=True)
    base = _run_folder(tmp_path, "b", mode="baseline", seed=5)
    assert _report(run, base, "--quality", hr_dir, "--no-cache") == 0
    text = capsys.readouterr().out
    # Class times at snapshot 1: 3 s and 4 s; shared, so one device is the longest, 4 s, and no separate time.
    assert _cells(text, "c | 1/1")[3:5] == ["4", "—"]
    assert _cells(text, "c | mmsr")[6:] == ["20.0 ‡", "2.00", "—", "—"]  # against the baseline's 10 s
    equal = _cells(text.split("### Training time at equal quality")[1], "c")
    assert equal[6] == "—" and equal[7].startswith("—")


def test_a_seed_mean_curve_with_a_concurrent_seed_has_no_separate_devices_time():
    runs = label_seeds([RunTimes("w", f"w{s}", "mmsr", ("4-2",), ("cpu",), ("finished",), (1,), (1.0,), 1.0, seed=s,
                                 concurrent=s == 2) for s in (1, 2)])  # fmt: skip
    separate = {1: (0.0, 5.0), 2: (None, None)}  # seed 2 trained --concurrent
    curves = [
        QualityCurve(r, None, (CurvePoint(0, (0,), 0.0, separate[r.seed][0], 20.0, 0.5),
                               CurvePoint(1, (1,), 9.0, separate[r.seed][1], 22.0, 0.6)))
        for r in runs
    ]  # fmt: skip
    base = RunTimes("b", "b", "baseline", ("16-8",), ("cpu",), ("finished",), (1,), (1.0,), 1.0, seed=1)
    b = QualityCurve(base, None, (CurvePoint(0, (0,), 0.0, 0.0, 20.0, 0.5), CurvePoint(1, (1,), 30.0, 30.0, 23.0, 0.6)))
    text = seed_report([*curves, b], [b])
    assert _cells(text, "w")[-2:] == ["—", "—"] and "| w | 1 | 9.0 | — |" in text


# -- 3: seeds ------------------------------------------------------------------------------------------


def _seed_curves(run_pairs, base_pairs):
    """Seeds 1 and 2 of "w" (run_pairs: per seed its (time, PSNR) points) and baselines "b" of base_pairs' seeds."""
    def curve(run, pairs):
        points = tuple(CurvePoint(i, (i,), t, t, p, 0.5) for i, (t, p) in enumerate(pairs))
        return QualityCurve(run, SimpleNamespace(count=len(points) - 1), points)

    runs = [RunTimes("w", f"w{s}", "mmsr", ("4-2",), ("cpu",), ("finished",), (1,), (1.0,), 1.0, seed=s)
            for s in run_pairs]  # fmt: skip
    bases = [RunTimes("b", f"b{s}", "baseline", ("16-8",), ("cpu",), ("finished",), (1,), (1.0,), 1.0, seed=s)
             for s in base_pairs]  # fmt: skip
    labelled = label_seeds(runs + bases)
    curves = [curve(r, pairs) for r, pairs in zip(labelled, [*run_pairs.values(), *base_pairs.values()])]
    return curves, curves[len(runs):]


def test_a_seed_left_out_of_the_geometric_mean_is_counted_and_named():
    # Seed 1 reaches 24 dB at 50 s against its baseline's 100 s (2x); seed 2 starts above everything its
    # baseline reaches, so it has no speed-up.
    curves, bases = _seed_curves({1: [(0.0, 20.0), (50.0, 24.0)], 2: [(0.0, 26.0), (50.0, 27.0)]},
                                 {1: [(0.0, 20.0), (100.0, 24.0)], 2: [(0.0, 20.0), (100.0, 25.0)]})  # fmt: skip
    cell = _cells(seed_report(curves, bases), "w")[3]
    assert cell == "2.00×; geometric mean over 1 of 2 seeds; seed 2 left out: w (seed 2) at the start"


def test_a_seed_compared_with_another_seeds_baseline_is_named_and_not_called_the_same_seed():
    curves, bases = _seed_curves({1: [(0.0, 20.0), (50.0, 24.0)], 2: [(0.0, 20.0), (25.0, 24.0)]},
                                 {1: [(0.0, 20.0), (100.0, 24.0)]})  # fmt: skip
    text = seed_report(curves, bases)
    assert "w (seed 2) has no baseline trained with its seed 2: it is compared with b (seed 1)" in text
    assert "the baselines of the same seeds" not in text and "trained with the same seed" not in text
    assert "w (seed 2) has no baseline trained with its seed 2: it is compared with b (seed 1)" in curve_report(
        curves, bases)
    # With a baseline per seed, the claim stands.
    curves, bases = _seed_curves({1: [(0.0, 20.0), (50.0, 24.0)], 2: [(0.0, 20.0), (25.0, 24.0)]},
                                 {1: [(0.0, 20.0), (100.0, 24.0)], 2: [(0.0, 20.0), (100.0, 24.0)]})  # fmt: skip
    assert "the baselines of the same seeds" in seed_report(curves, bases)


@pytest.mark.parametrize("field, change, named", [
    ("mode", {"mode": "baseline"}, "modes (baseline or not)"),
    ("configs", {"configs": ("2-2",)}, "models"),
    ("pixel", {"pixel_budget": (8,)}, "pixel-step budgets"),
    ("gan", {"gan_budget": (4,)}, "GAN-step budgets"),
])  # fmt: skip
def test_runs_of_one_name_must_be_one_setting(field, change, named):
    from dataclasses import replace

    a = RunTimes("w", "s1/summary.json", "mmsr", ("4-2",), ("cpu",), ("finished",), (1,), (1.0,), 1.0, seed=1,
                 pixel_budget=(4,), gan_budget=(0,))  # fmt: skip
    b = replace(a, path="s2/summary.json", seed=2, **change)
    with pytest.raises(ValueError, match=rf"named 'w'.*their {re.escape(named)}.*differ: s1/summary.json \(.*\), s2/"):
        label_seeds([a, b])
    same = replace(a, path="s2/summary.json", seed=2)
    assert [r.name for r in label_seeds([a, same])] == ["w (seed 1)", "w (seed 2)"]


def test_load_run_reads_the_step_budgets_the_seed_check_compares(tmp_path, capsys):
    a = _run_folder(tmp_path / "s1", "w", seed=1)
    b = _run_folder(tmp_path / "s2", "w", seed=2, pixel_steps=4)
    assert load_run(a).pixel_budget == (2,) and load_run(a).gan_budget == (0,)
    assert _report(f"w={a}", f"w={b}") == 2
    assert "pixel-step budgets (--pixel-steps) differ" in capsys.readouterr().err


# -- 4: grayscale HR images ----------------------------------------------------------------------------


def test_grayscale_images_are_named_and_given_their_psnr_on_the_grey_values(tmp_path):
    hr = tmp_path / "hr"
    _save(_photo(40, 44, 0), hr / "colour.png")
    _save(_photo(40, 44, 1), hr / "grey.png", mode="L")
    _save(_photo(40, 44, 2)[:1].expand(3, -1, -1), hr / "rgb_of_grey.png")  # an RGB file: scored as such anywhere
    out = tmp_path / "out"
    assert mmsr_main(["eval", "--hr", str(hr), "--scale", "4", "--out", str(out), "--no-niqe"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["grayscale_images"] == ["grey.png"] and "16 + 219/255 v" in data["conventions"]["grayscale"]
    scores = {i["name"]: i["scores"] for i in data["images"]}
    assert "psnr_grey_db" not in scores["colour.png"][BICUBIC]
    # The convention is kept; the grey-value PSNR is 1.32 dB lower (bicubic's output is grey too).
    grey = scores["grey.png"][BICUBIC]
    assert grey["psnr_grey_db"] == pytest.approx(grey["psnr_y_db"] - GREY_GAIN_DB, abs=1e-6)
    report = (out / "report.md").read_text()
    assert "- **grayscale images** (1)" in report and "## Grayscale images (1)" in report
    assert f"| grey.png | {BICUBIC} | {grey['psnr_y_db']:.2f} | {grey['psnr_grey_db']:.2f} | -1.32 |" in report
    others = [scores[name][BICUBIC]["psnr_y_db"] for name in ("colour.png", "rgb_of_grey.png")]
    mean = (sum(others) + grey["psnr_grey_db"]) / 3
    assert f"- {BICUBIC}: {mean:.2f} dB (-0.441 dB against {data['mean'][BICUBIC]['psnr_y_db']:.2f})" in report


def test_eval_help_documents_the_grey_convention(capsys):
    with pytest.raises(SystemExit):
        mmsr_main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Grayscale HR images are scored like colour ones, on the BT.601 Y of their three equal channels" in text
    assert "1.32 dB" in text


# -- 5: images --quality cannot measure ------------------------------------------------------------------


def test_report_quality_lists_skipped_images_and_exits_1(hr_dir, tmp_path, capsys):
    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "a.png").write_bytes((hr_dir / "a.png").read_bytes())
    (hr / "bad.png").write_bytes(b"\x89PNG truncated")
    _save(_photo(12, 12, 0), hr / "small.png")
    run = _run_folder(tmp_path, "p")
    out = tmp_path / "rep.md"
    assert _report(run, "--quality", hr, "--no-cache", "--out", out) == 1
    captured = capsys.readouterr()
    text = out.read_text()
    assert captured.out == text and "#### Skipped images (2)" in text
    assert "- `bad.png`: cannot read image" in text and "- `small.png`: 12x12" in text
    assert "2 image(s) of --quality could not be measured and were skipped" in captured.err


# -- 6: --out overwrites nothing but a report --------------------------------------------------------------


def test_report_out_refuses_files_it_did_not_write_and_run_folders(tmp_path, capsys):
    run = _run_folder(tmp_path, "p")
    bundle = tmp_path / "p.safetensors"
    before = bundle.read_bytes()
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    for out, message in [(bundle, "is not a Markdown (.md) report"), (notes, "is not a report `mmsr report` wrote"),
                         (run / "table.md", "is inside the run folder"), (run, "is inside the run folder"),
                         (tmp_path, "is not a Markdown (.md) report")]:  # fmt: skip
        assert _report(run, "--out", out) == 2, out
        assert message in capsys.readouterr().err
    assert bundle.read_bytes() == before and notes.read_text() == "my notes\n"
    assert sorted(p.name for p in run.iterdir()) == ["plan.json", "snapshots", "summary.json"]
    # A new file, and then the report it holds, may be written.
    table = tmp_path / "table.md"
    assert _report(run, "--out", table) == 0
    capsys.readouterr()
    assert _report(run, "--out", table) == 0 and table.read_text() == capsys.readouterr().out


# -- 7: messages for unfinished runs -------------------------------------------------------------------


def test_a_class_that_never_started_is_said_not_trained_and_how_to_resume(hr_dir, tmp_path, capsys):
    run = _run_folder(tmp_path, "cut", classes=2, statuses=["interrupted", "not run"], shipped=False)
    assert _report(run, "--quality", hr_dir, "--no-cache") == 2
    err = capsys.readouterr().err
    assert "class 1 (1-2w8) did not train (status: not run)" in err and "--snapshots K" not in err
    assert f"run `mmsr train data --out cut.safetensors --snapshots 1 --resume` from {tmp_path}" in err


def test_a_run_folder_without_summary_is_said_killed_and_how_to_resume(tmp_path, capsys):
    run = tmp_path / "k9.run"
    (run / "logs").mkdir(parents=True)
    (run / "plan.json").write_text("{}")
    assert _report(run) == 2
    err = capsys.readouterr().err
    assert "without summary.json: the run did not finish" in err and "kill -9" in err and "--resume" in err
    with pytest.raises(FileNotFoundError, match="no training summary here"):
        load_run(tmp_path / "elsewhere")


# -- 8: --device --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu", "mps", pytest.param("cuda", marks=pytest.mark.skipif(
    torch.cuda.is_available(), reason="CUDA is there"))])  # fmt: skip
def test_an_unusable_device_is_a_clear_error(hr_dir, tmp_path, capsys, device):
    out = tmp_path / "o"
    assert mmsr_main(["eval", "--hr", str(hr_dir), "--scale", "4", "--device", device, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--device {device!r}" in err and "available here: cpu" in err and not out.exists()
    assert err.count(repr(device)) == 1, err  # the value named once, not again as "device=..." or "got ..."
    run = _run_folder(tmp_path, "p")
    assert _report(run, "--quality", hr_dir, "--device", device) == 2
    assert f"--device {device!r}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="available here: cpu"):
        evaluate.check_device(device)


# -- 9: the warm-up runs every model -------------------------------------------------------------------


def test_the_warm_up_runs_every_model_of_a_bundle():
    method = bundle_method("mm", Bundle.random([CONFIG, "2-2w8", "1-2w8"], threshold=0.0, boundaries=[0.02, 0.05],
                                                scale=4))  # fmt: skip
    up = method.upscaler
    calls = [0] * len(up.generators)

    def counted(k, generator):
        def run(x):
            calls[k] += 1
            return generator(x)
        return run

    up.generators = [counted(k, g) for k, g in enumerate(up.generators)]
    evaluate._warm_up([method], 4, torch.device("cpu"))
    assert all(calls), calls


# -- 10: results.json names each bundle file for certain --------------------------------------------------


def test_results_json_records_the_resolved_bundle_path_its_sha256_and_size(hr_dir, tmp_path, monkeypatch):
    bundle = save_bundle(Bundle.random([CONFIG], threshold=0.0, boundaries=[], scale=4), tmp_path / "b.safetensors")
    monkeypatch.chdir(tmp_path)
    assert mmsr_main(["eval", "--hr", str(hr_dir), "--bundle", "b.safetensors", "--out", "out", "--no-niqe"]) == 0
    method = json.loads((tmp_path / "out" / "results.json").read_text())["methods"][2]
    assert method["path"] == str(bundle.resolve()) and method["path_given"] == "b.safetensors"
    assert method["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert method["size_bytes"] == bundle.stat().st_size
    assert method["sha256"] in (tmp_path / "out" / "report.md").read_text()
