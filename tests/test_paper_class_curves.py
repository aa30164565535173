"""benchmarks/paper/class_curves.py: quality per TVAT class along two runs' snapshots, and each class's
steps' worth.

The script lives with the paper harness and imports its siblings by bare name, so it is imported
through test_paper_profiles' ``paper_imported``.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from mmsr.models import Generator, ModelConfig
from mmsr.train.snapshots import ClassSnapshot, SnapshotSeries, write_snapshot

from test_paper_profiles import paper_imported


@pytest.fixture
def class_curves(monkeypatch):
    with paper_imported(monkeypatch, "class_curves") as (module,):
        yield module


def _series(mode, configs, steps_by_index, boundaries=(0.1,)):
    """A series whose class k's snapshot i sits at ``steps_by_index[i][k]`` (no files: only steps are read)."""
    count = len(steps_by_index) - 1
    classes = tuple({i: ClassSnapshot(Path(f"c{k}_{i}"), i, steps[k], float(i)) for i, steps in enumerate(steps_by_index)}
                    for k in range(len(configs)))
    return SnapshotSeries(Path(mode), mode, tuple(configs), 2, 0.0, tuple(boundaries), count, classes)


def _totals(psnrs, pixels=100):
    """Bin totals whose pooled PSNR-Y per bin is ``psnrs`` (None: an empty bin)."""
    errors = [0.0 if p is None else 255.0 ** 2 * pixels / 10 ** (p / 10) for p in psnrs]
    return {"squared_error": errors, "pixels": [0 if p is None else pixels for p in psnrs], "tiles": [1] * len(psnrs)}


def test_each_class_is_worth_the_baseline_steps_that_reach_its_psnr_on_its_own_pixels(class_curves):
    mmsr = _series("mmsr", ("1-2w8", "2-2w8"), [(0, 0), (10, 30), (20, 60)])
    baseline = _series("baseline", ("2-2w8",), [(0,), (40,), (80,)], boundaries=())
    table = {"edges": [0.1], "totals": {
        "mmsr@0": _totals([30.0, 20.0]), "mmsr@1": _totals([31.0, 22.0]), "mmsr@2": _totals([31.5, 23.0]),
        "baseline@0": _totals([30.0, 20.0]), "baseline@1": _totals([32.0, 21.0]), "baseline@2": _totals([33.0, 24.0]),
    }}
    text = class_curves.class_curves(mmsr, baseline, table)
    # Class 0: 31 dB is half way to the baseline's 32 at 40 steps -> 20 steps over 10 = 2.00; 31.5 dB
    # -> 30 steps over 20 = 1.50. Class 1: 22 dB is a third of the way from 21 (40) to 24 (80) -> 53.3 / 30;
    # 23 dB -> 66.7 / 60.
    assert "| class 0 (1-2w8, TVAT < 0.1) | 2.00 · 1.50 |" in text
    assert f"| class 1 (2-2w8, TVAT ≥ 0.1) | {(40 + 40 / 3) / 30:.2f} · {(40 + 80 / 3) / 60:.2f} |" in text
    assert "| MMSR | 1/2 | 10 · 30 | 31.00 | 22.00 |" in text
    assert "| baseline | 2/2 | 80 | 33.00 | 24.00 |" in text


def test_a_class_the_baseline_never_reaches_shows_a_dash_and_an_empty_class_no_worth(class_curves):
    mmsr = _series("mmsr", ("1-2w8", "2-2w8"), [(0, 0), (10, 30)])
    baseline = _series("baseline", ("2-2w8",), [(0,), (40,)], boundaries=())
    table = {"edges": [0.1], "totals": {
        "mmsr@0": _totals([30.0, None]), "mmsr@1": _totals([35.0, None]),
        "baseline@0": _totals([30.0, None]), "baseline@1": _totals([32.0, None]),
    }}
    text = class_curves.class_curves(mmsr, baseline, table)
    assert "| class 0 (1-2w8, TVAT < 0.1) | — |" in text
    assert "| class 1 (2-2w8, TVAT ≥ 0.1) | — |" in text
    assert "| MMSR | 1/1 | 10 · 30 | 35.00 | — |" in text


def snapshot_run(folder: Path, mode, configs, boundaries, count, seed):
    """A run folder with plan.json and snapshots 0..count of every class (random generators; class k's
    snapshot i at step 10 i and i seconds), as `mmsr train --snapshots` leaves it."""
    folder.mkdir()
    plan = {"mode": mode, "configs": list(configs), "boundaries": list(boundaries), "threshold": 0.0, "scale": 2}
    (folder / "plan.json").write_text(json.dumps(plan))
    torch.manual_seed(seed)
    for k, config in enumerate(configs):
        for index in range(count + 1):
            write_snapshot(folder, klass=k, config=config, generator=Generator.from_config(ModelConfig.parse(config), 2),
                           index=index, count=count, step=10 * index, elapsed_s=float(index), threshold=0.0,
                           tile_size=8, overlap=2)
    return folder


def test_the_script_scores_every_snapshot_of_real_runs(class_curves, tmp_path, val_folder, capsys):
    mmsr = snapshot_run(tmp_path / "mmsr.run", "mmsr", ("1-2w8", "2-2w8"), (0.02,), 2, seed=1)
    base = snapshot_run(tmp_path / "base.run", "baseline", ("2-2w8",), (), 3, seed=2)
    assert class_curves.main(["--mmsr", str(mmsr), "--baseline", str(base), "--val", str(val_folder)]) == 0
    text = capsys.readouterr().out
    rows = [line.split("|") for line in text.splitlines() if line.startswith(("| MMSR |", "| baseline |"))]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [
        ("MMSR", "0/2"), ("MMSR", "1/2"), ("MMSR", "2/2"),
        ("baseline", "0/3"), ("baseline", "1/3"), ("baseline", "2/3"), ("baseline", "3/3")]
    assert all(math.isfinite(float(cell)) for r in rows for cell in r[4:6])
    assert "| class 0 (1-2w8, TVAT < 0.02) |" in text and "| class 1 (2-2w8, TVAT ≥ 0.02) |" in text


@pytest.mark.parametrize("case, message", [
    ("not_a_run", "--mmsr: .*no plan.json"),
    ("one_class_mmsr", "--mmsr: .*trained one class"),
    ("multi_class_baseline", "--baseline: .*trained 2 classes"),
    ("unfinished", "--baseline: .*has not finished its pixel phase"),
    ("not_images", "is not a folder of images"),
])
def test_bad_arguments_name_what_is_wrong(class_curves, tmp_path, val_folder, capsys, case, message):
    mmsr = snapshot_run(tmp_path / "mmsr.run", "mmsr", ("1-2w8", "2-2w8"), (0.02,), 1, seed=1)
    base = snapshot_run(tmp_path / "base.run", "baseline", ("2-2w8",), (), 1, seed=2)
    args = {"mmsr": mmsr, "baseline": base, "val": val_folder}
    if case == "not_a_run":
        args["mmsr"] = tmp_path
    elif case == "one_class_mmsr":
        args["mmsr"] = base
    elif case == "multi_class_baseline":
        args["baseline"] = mmsr
    elif case == "unfinished":
        (base / "snapshots" / "class0" / "001.safetensors").unlink()
    else:
        args["val"] = tmp_path / "nowhere"
    with pytest.raises(SystemExit) as exit_info:
        class_curves.main(["--mmsr", str(args["mmsr"]), "--baseline", str(args["baseline"]), "--val", str(args["val"])])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
