"""benchmarks/paper/compare_bins.py: two bundles compared per TVAT class, pooled and per image.

The script lives with the paper harness and imports its siblings by bare name, so it is imported
through test_paper_profiles' ``paper_imported`` (the harness's folder on sys.path only meanwhile).
"""
from __future__ import annotations

import math

import pytest

from mmsr.bundle import Bundle, save_bundle
from mmsr.metrics import psnr

from test_paper_profiles import paper_imported


@pytest.fixture
def compare_bins(monkeypatch):
    with paper_imported(monkeypatch, "compare_bins") as (module,):
        yield module


def _bundle(folder, name, seed, scale=2, configs=("1-2w8", "2-2w8"), boundaries=(0.02,)):
    bundle = Bundle.random(list(configs), threshold=0.0, boundaries=list(boundaries), scale=scale, tile_size=8,
                           overlap=2, seed=seed)
    return save_bundle(bundle, folder / f"{name}.safetensors")


def test_pooled_and_per_image_differences_come_from_the_summed_errors(compare_bins):
    # Hand-made totals: class 0 error 4x smaller for "a" (+6.02 dB), class 1 equal.
    table = {
        "edges": [0.1],
        "totals": {
            "bicubic": {"squared_error": [800.0, 900.0], "pixels": [10, 10], "tiles": [1, 1]},
            "a": {"squared_error": [100.0, 400.0], "pixels": [10, 10], "tiles": [1, 1]},
            "b": {"squared_error": [400.0, 400.0], "pixels": [10, 10], "tiles": [1, 1]},
        },
        "images": [{"set": "s", "name": "x.png", "totals": {
            "a": {"squared_error": [100.0, 400.0], "pixels": [10, 10], "tiles": [1, 1]},
            "b": {"squared_error": [400.0, 400.0], "pixels": [10, 10], "tiles": [1, 1]},
        }}],
    }
    text = compare_bins.compare(table, ["a", "b"])
    gain0 = 10 * math.log10(4)
    whole = 10 * math.log10(800 / 500)
    assert f"| 0 | < 0.1 | 1 | 10 | {10 * math.log10(255 ** 2 * 10 / 800):.2f} |" in text
    assert f"| +{gain0:.2f} |" in text  # pooled class 0
    assert f"| s | x.png | 1 / 1 | +{gain0:.2f} | +0.00 | +{whole:.2f} |" in text
    assert f"mean over the 1 images' whole-image PSNR-Y: +{whole:.3f} dB" in text


def test_an_empty_class_shows_a_dash_not_a_number(compare_bins):
    empty = {"squared_error": [0.0, 5.0], "pixels": [0, 10], "tiles": [0, 1]}
    table = {"edges": [0.1], "totals": {"bicubic": empty, "a": empty, "b": empty},
             "images": [{"set": "s", "name": "x.png", "totals": {"a": empty, "b": empty}}]}
    text = compare_bins.compare(table, ["a", "b"])
    assert "| s | x.png | 0 / 1 | — | +0.00 | +0.00 |" in text


def test_the_script_on_real_bundles_matches_psnr_of_the_whole_image(compare_bins, tmp_path, val_folder, capsys):
    a = _bundle(tmp_path, "a", seed=1)
    b = _bundle(tmp_path, "b", seed=2)
    assert compare_bins.main(["--bundle", f"a={a}", "--bundle", f"b={b}", "--val", str(val_folder)]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| tiny_set |")]
    assert [r.split("|")[2].strip() for r in rows] == ["im0.png", "im1.png"]

    # The whole-image column is PSNR-Y of the image as `mmsr eval` measures it (crop = scale).
    from mmsr.data import read_image
    from mmsr.evaluate import make_lr, mod_crop
    from mmsr.upscale import Upscaler

    def eval_psnr(bundle, path):
        hr = mod_crop(read_image(path), 2)
        sr = Upscaler(bundle, device="cpu", promote=False).upscale(make_lr(hr, 2)).image
        return psnr(sr, hr, crop_border=2, y_channel=True)

    for row, name in zip(rows, ("im0.png", "im1.png")):
        want = float(eval_psnr(a, val_folder / name)) - float(eval_psnr(b, val_folder / name))
        assert float(row.split("|")[-2]) == pytest.approx(want, abs=0.006)


@pytest.mark.parametrize("case, message", [
    ("one", "at least two --bundle"),
    ("no_equals", "must be NAME=PATH"),
    ("missing", "is not a file"),
    ("scales", "compare bundles of one scale"),
    ("one_class_first", "one-class bundle has no TVAT classes"),
    ("not_images", "is not a folder of images"),
])
def test_bad_arguments_name_what_is_wrong(compare_bins, tmp_path, val_folder, capsys, case, message):
    a = _bundle(tmp_path, "a", seed=1)
    args = {
        "one": ["--bundle", f"a={a}"],
        "no_equals": ["--bundle", str(a), "--bundle", f"a={a}"],
        "missing": ["--bundle", f"a={a}", "--bundle", f"b={tmp_path / 'nope.safetensors'}"],
        "scales": ["--bundle", f"a={a}", "--bundle", f"b={_bundle(tmp_path, 'x4', 3, scale=4)}"],
        "one_class_first": ["--bundle", f"c={_bundle(tmp_path, 'c', 4, configs=('1-2w8',), boundaries=())}",
                            "--bundle", f"a={a}"],
        "not_images": ["--bundle", f"a={a}", "--bundle", f"b={a}", "--val", str(tmp_path / "nowhere")],
    }[case]
    if "--val" not in args:
        args += ["--val", str(val_folder)]
    with pytest.raises(SystemExit) as exit_info:
        compare_bins.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
