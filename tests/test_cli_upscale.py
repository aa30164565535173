"""`mmsr upscale` and `mmsr classify` end to end on small files, with a tiny random bundle."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from test_imageio import _write_png16

from mmsr.cli import main
from mmsr.cli import upscale_cmd

H, W = 30, 40


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bundle_path(cli_bundle_path):
    return cli_bundle_path


def _rgb(seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    array[:, : W // 2] = 120  # a flat half and a noisy half: both classes get tiles
    return array


def _write_inputs(folder):
    """One file of every kind the CLI must take; returns {name: expected output mode}."""
    rgb = _rgb()
    folder.mkdir(exist_ok=True)
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full((H, W), 200, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(rgb[..., 0]).save(folder / "grey.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(folder / "palette.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "deep.png")
    _write_png16(folder / "deep_rgb.png", rgb.astype(np.uint16) * 257)
    Image.fromarray(rgb).save(folder / "photo.jpg", quality=92)
    Image.fromarray(rgb).save(folder / "web.webp")
    Image.fromarray(rgb).save(folder / "scan.tif")
    Image.fromarray(rgb).save(folder / "old.bmp")
    return {
        "rgb.png": "RGB", "rgba.png": "RGBA", "grey.png": "L", "palette.png": "RGB", "deep.png": "I;16", "deep_rgb.png": "RGB",
        "photo.jpg": "RGB", "web.webp": "RGB", "scan.tif": "RGB", "old.bmp": "RGB",
    }


def _upscale(*args):
    return main(["upscale", *map(str, args)])


def test_every_kind_of_file(tmp_path, bundle_path, capsys):
    expected = _write_inputs(tmp_path / "in")
    assert _upscale(tmp_path / "in", "-o", tmp_path / "out", "--bundle", bundle_path) == 0
    for name, mode in expected.items():
        out = Image.open(tmp_path / "out" / name)
        assert out.size == (2 * W, 2 * H), name
        assert out.mode == mode, name
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(expected)
    assert all("-> " in line and "1-2w8:" in line and "2-2w8:" in line for line in lines)


def test_alpha_is_upscaled_on_its_own(tmp_path, bundle_path):
    alpha = np.zeros((H, W), np.uint8)
    alpha[:, W // 2 :] = 255
    Image.fromarray(np.dstack([_rgb(), alpha])).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path) == 0
    out_alpha = np.array(Image.open(tmp_path / "b.png"))[..., 3]
    assert out_alpha[:, : W - 3].max() == 0 and out_alpha[:, W + 3 :].min() == 255


def test_jpeg_output_drops_alpha_with_a_warning(tmp_path, bundle_path, capsys):
    Image.fromarray(np.dstack([_rgb(), np.full((H, W), 9, np.uint8)])).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "a.jpg", "--bundle", bundle_path) == 0
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    assert "cannot hold a.png's alpha channel" in capsys.readouterr().err


def test_exif_and_dpi_are_carried_unless_stripped(tmp_path, bundle_path):
    exif = Image.Exif()
    exif[0x010F] = "Nikon"  # Make
    exif.get_ifd(0x8825)[2] = (52.0, 30.0, 0.0)  # GPSLatitude
    Image.fromarray(_rgb()).save(tmp_path / "a.jpg", exif=exif.tobytes(), dpi=(300, 300))
    assert _upscale(tmp_path / "a.jpg", "-o", tmp_path / "kept.jpg", "--bundle", bundle_path, "-q") == 0
    kept = Image.open(tmp_path / "kept.jpg")
    assert kept.getexif()[0x010F] == "Nikon" and kept.getexif().get_ifd(0x8825)[2] == (52.0, 30.0, 0.0)
    assert kept.info["dpi"] == (300, 300)
    assert _upscale(tmp_path / "a.jpg", "-o", tmp_path / "bare.jpg", "--bundle", bundle_path, "-q", "--strip-metadata") == 0
    bare = Image.open(tmp_path / "bare.jpg")
    assert not bare.getexif() and bare.info.get("dpi") != (300, 300)


def test_a_malformed_exif_field_is_named_and_the_image_still_upscaled(tmp_path, bundle_path, capsys):
    from test_imageio import _exif_with_one_field

    Image.fromarray(_rgb()).save(tmp_path / "dt.jpg", exif=_exif_with_one_field(0x0132, 5, b"\x01\0\0\0\x03\0\0\0"))
    assert _upscale(tmp_path / "dt.jpg", "--bundle", bundle_path, "-q") == 0
    assert "dt.jpg: EXIF DateTime (0x0132) is malformed and not carried" in capsys.readouterr().err
    assert Image.open(tmp_path / "dt_x2.jpg").size == (2 * W, 2 * H)
    assert _upscale(tmp_path / "dt.jpg", "-o", tmp_path / "bare.jpg", "--bundle", bundle_path, "-q", "--strip-metadata") == 0
    assert "malformed" not in capsys.readouterr().err  # not even parsed
    # classify has no use for metadata; it used to fail on this file with a traceback.
    assert main(["classify", str(tmp_path / "dt.jpg"), "--bundle", str(bundle_path)]) == 0


def test_exif_too_big_for_a_jpeg_is_left_out_with_a_warning(tmp_path, bundle_path, capsys):
    # It used to fail the image after the whole upscale: "EXIF data is too long".
    exif = Image.Exif()
    exif[0x010E] = "x" * 70000
    Image.fromarray(_rgb()).save(tmp_path / "big.png", exif=exif.tobytes())
    assert _upscale(tmp_path / "big.png", "--bundle", bundle_path, "-q", "--format", "jpg") == 0
    assert "big_x2.jpg: big.png's EXIF is over the 64 KB a JPEG holds; it is left out" in capsys.readouterr().err
    assert not Image.open(tmp_path / "big_x2.jpg").getexif()


def test_o_and_format_naming_one_format_agree(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "x.jpg", "--format", "jpeg", "--bundle", bundle_path, "-q") == 0
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"


def test_default_output_name_next_to_the_input(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "photo.png")
    assert _upscale(tmp_path / "photo.png", "--bundle", bundle_path, "-q") == 0
    assert Image.open(tmp_path / "photo_x2.png").size == (2 * W, 2 * H)


def test_output_matches_the_python_api(tmp_path, bundle_path):
    from mmsr import Upscaler

    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path, "--blend", "cosine") == 0
    x = torch.from_numpy(_rgb()).permute(2, 0, 1).contiguous()
    expected = Upscaler(bundle_path, blend="cosine").upscale(x).image.permute(1, 2, 0).numpy()
    assert np.array_equal(np.array(Image.open(tmp_path / "b.png")), expected)


def test_max_run_reaches_the_upscaler(tmp_path, bundle_path):
    from mmsr import Upscaler

    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    x = torch.from_numpy(_rgb()).permute(2, 0, 1).contiguous()
    for max_run in (1, 3):
        assert _upscale(tmp_path / "a.png", "-o", tmp_path / f"b{max_run}.png", "--bundle", bundle_path,
                        "--max-run", max_run) == 0
        expected = Upscaler(bundle_path, max_run=max_run).upscale(x).image.permute(1, 2, 0).numpy()
        assert np.array_equal(np.array(Image.open(tmp_path / f"b{max_run}.png")), expected)
    # The two really differ (a run's window gives its tiles more context), so the option was used.
    assert not np.array_equal(np.array(Image.open(tmp_path / "b1.png")), np.array(Image.open(tmp_path / "b3.png")))


def test_refuses_to_overwrite_an_input(tmp_path, bundle_path, capsys):
    path = tmp_path / "a.png"
    Image.fromarray(_rgb()).save(path)
    before = path.read_bytes()
    assert _upscale(path, "-o", path, "--bundle", bundle_path) == 1
    assert "refusing to write" in capsys.readouterr().err
    assert path.read_bytes() == before
    # The same through a directory: -o the input directory maps every output onto its input.
    assert _upscale(tmp_path, "-o", tmp_path, "--bundle", bundle_path) == 1
    assert path.read_bytes() == before


def test_refuses_to_overwrite_through_a_hard_link(tmp_path, bundle_path):
    path = tmp_path / "a.png"
    Image.fromarray(_rgb()).save(path)
    (tmp_path / "link.png").hardlink_to(path)
    before = path.read_bytes()
    assert _upscale(path, "-o", tmp_path / "link.png", "--bundle", bundle_path) == 1
    assert path.read_bytes() == before


def test_a_bad_file_is_reported_and_the_rest_written(tmp_path, bundle_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_rgb()).save(folder / "a.png")
    (folder / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    Image.fromarray(_rgb(1)).save(folder / "c.png")
    assert _upscale(folder, "-o", tmp_path / "out", "--bundle", bundle_path) == 1
    err = capsys.readouterr().err
    assert "b_corrupt.png" in err and "1 failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_missing_input_is_reported(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", tmp_path / "nope.png", "-o", tmp_path / "out", "--bundle", bundle_path) == 1
    assert "nope.png: no such file or directory" in capsys.readouterr().err
    assert (tmp_path / "out" / "a.png").exists()


def test_max_pixels(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path, "--max-pixels", "1000") == 1
    err = capsys.readouterr().err
    assert "a.png: 40x30 = 1,200 pixels exceeds the limit of 1,000" in err and "--max-pixels" in err
    assert not (tmp_path / "b.png").exists()
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path, "--max-pixels", "1.2k") == 0


@pytest.mark.parametrize("text, pixels", [("50M", 50_000_000), ("1.5g", 1_500_000_000), ("1200", 1200), ("0", None)])
def test_pixel_counts(text, pixels):
    assert upscale_cmd.parse_pixels(text) == pixels


def test_class_map_files(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path,
                    "--class-map", tmp_path / "map.json") == 0
    record = json.loads((tmp_path / "map.json").read_text())
    assert record["configs"] == ["1-2w8", "2-2w8"] and record["scale"] == 2
    assert np.array(record["classes"]).shape == (record["rows"], record["cols"])
    assert sum(record["histogram"]) == record["rows"] * record["cols"]
    assert record["histogram"][0] > 0 and record["histogram"][1] > 0
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "c.png", "--bundle", bundle_path,
                    "--class-map", tmp_path / "map.png") == 0
    assert Image.open(tmp_path / "map.png").size == (W, H)


def test_class_maps_for_several_inputs(tmp_path, bundle_path):
    _write_inputs(tmp_path / "in")
    assert _upscale(tmp_path / "in" / "rgb.png", tmp_path / "in" / "grey.png", "-o", tmp_path / "out",
                    "--bundle", bundle_path, "--class-map", tmp_path / "maps") == 0
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["grey.json", "rgb.json"]


def test_tiling_options_are_used(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path, "--tile", "20",
                    "--overlap", "8", "--margin", "2", "--batch-size", "2", "--max-run", "1",
                    "--class-map", tmp_path / "m.json") == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["tile_size"] == 20 and record["overlap"] == 8


@pytest.mark.parametrize("model, forced", [("2-2w8", 1), ("deepest", 1), ("0", 0), ("1-2w8", 0)])
def test_model_sends_every_tile_through_one_class(tmp_path, bundle_path, model, forced):
    from mmsr import Upscaler

    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path, "--model", model,
                    "--class-map", tmp_path / "m.json") == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["tile_size"] == 16 and record["rows"] * record["cols"] > 1  # the bundle's tiling
    assert record["forced_model"] == ["1-2w8", "2-2w8"][forced]
    assert all(m == forced for row in record["models"] for m in row)
    x = torch.from_numpy(_rgb()).permute(2, 0, 1).contiguous()
    # The class map keeps TVAT's texture classes, which --model does not change.
    routed = Upscaler(bundle_path).upscale(x)
    assert record["classes"] == routed.classes.tolist()
    expected = Upscaler(bundle_path).upscale(x, force_class=forced).image.permute(1, 2, 0).numpy()
    assert np.array_equal(np.array(Image.open(tmp_path / "b.png")), expected)


def test_model_with_an_explicit_tile(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path, "--model", "deepest",
                    "--tile", "24", "--class-map", tmp_path / "m.json") == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["tile_size"] == 24 and record["histogram"][0] == 0 and record["histogram"][1] > 1


def test_routed_is_the_default_model(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    for name, extra in (("b", []), ("c", ["--model", "routed"])):
        assert _upscale(tmp_path / "a.png", "-o", tmp_path / f"{name}.png", "--bundle", bundle_path, *extra) == 0
    assert np.array_equal(np.array(Image.open(tmp_path / "b.png")), np.array(Image.open(tmp_path / "c.png")))


def test_a_missing_default_bundle_is_reported(tmp_path, monkeypatch, capsys):
    import mmsr.bundle

    monkeypatch.setattr(mmsr.bundle, "_DEFAULT_BUNDLE", tmp_path / "no-such-bundle.safetensors")
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png") == 2
    assert "lacks the default bundle" in capsys.readouterr().err


def test_the_shipped_default_bundle_upscales_without_options(tmp_path):
    from mmsr.bundle import default_bundle_path, read_bundle_metadata

    path = default_bundle_path()
    assert path is not None and path.parent.name == "weights"
    assert path.stat().st_size <= 15 * 2**20  # the limit for shipped weights
    meta = read_bundle_metadata(path)
    assert meta["scale"] == 4 and meta["weights_dtype"] == "float16"
    assert len(meta["configs"]) == len(meta["boundaries"]) + 1 >= 2  # a multi-model bundle
    assert meta["provenance"]["mode"] == "mmsr" and meta["provenance"]["images"] > 0

    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "a_x4.png") == 0
    with Image.open(tmp_path / "a_x4.png") as out:
        assert out.size == (W * 4, H * 4) and out.mode == "RGB"


@pytest.mark.parametrize(
    "options, message",
    [
        (["--half", "--device", "cpu"], "--half (float16) runs on CUDA only"),
        (["--tile", "8", "--overlap", "8"], "--overlap must be smaller than --tile, got --overlap 8 >= --tile 8"),
        (["--tile", "4"], "got --overlap 4 (the bundle's default) >= --tile 4"),
        (["--overlap", "4", "--margin", "3"], "--margin must be at most --overlap / 2"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--max-run", "0"], "--max-run must be >= 1"),
        (["-o", "newdir"], "unsupported extension ''; use one of"),
        (["-o", "a.png/x.png"], "a.png is a file, not a directory"),
        (["--class-map", "nodir/m.json"], "--class-map nodir/m.json: directory nodir does not exist"),
        (["--class-map", "a.png/maps/"], "cannot create directory a.png/maps"),
        (["--device", "tpu"], "device must be 'cpu', 'cuda' or 'cuda:N'"),
        (["-o", "out.gif"], "unsupported extension '.gif'"),
        (["--class-map", "map.txt"], "use a .json file, or an image file"),
        (["--model", "16-8"], "--model '16-8' is not one of this bundle's models; choose one of routed, deepest, "
         "1-2w8, 2-2w8, 0-1"),
        (["--model", "2"], "--model '2' is not one of this bundle's models"),
    ],
)
def test_bad_options(tmp_path, bundle_path, capsys, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "--bundle", bundle_path, *options) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "value, message",
    [("inf", "must be a finite count >= 0"), ("1e400", "must be a finite count >= 0"),
     ("0.5", "must be at least 1 pixel"), ("-0.5", "must be a finite count >= 0"), ("lots", "expected a pixel count")],
)
def test_bad_max_pixels(tmp_path, capsys, value, message):
    # 0.5 must not become int 0, which means "no limit".
    with pytest.raises(SystemExit) as exit_info:
        _upscale(tmp_path / "a.png", "--max-pixels", value)
    assert exit_info.value.code == 2
    assert f"argument --max-pixels: {message}" in capsys.readouterr().err


def test_bad_bundle_file(tmp_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    (tmp_path / "b.safetensors").write_bytes(b"nonsense")
    assert _upscale(tmp_path / "a.png", "--bundle", tmp_path / "b.safetensors") == 2
    assert "b.safetensors" in capsys.readouterr().err


def test_several_inputs_need_a_directory(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    Image.fromarray(_rgb()).save(tmp_path / "b.png")
    (tmp_path / "file.png").write_bytes(b"")
    assert _upscale(tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "file.png", "--bundle", bundle_path) == 2
    assert "the output must be a directory" in capsys.readouterr().err


def test_same_name_from_two_directories(tmp_path, bundle_path, capsys):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        Image.fromarray(_rgb()).save(tmp_path / sub / "a.png")
    assert _upscale(tmp_path / "x", tmp_path / "y", "-o", tmp_path / "out", "--bundle", bundle_path) == 1
    assert "is also the output of an earlier input" in capsys.readouterr().err
    assert (tmp_path / "out" / "a.png").exists()


# ---- mmsr classify -----------------------------------------------------------------------------


def test_classify_with_boundaries(tmp_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert main(["classify", str(tmp_path / "a.png"), "--map", str(tmp_path / "map.png"),
                 "--boundaries", "0.02", "--tile", "16", "--overlap", "4"]) == 0
    out = capsys.readouterr().out
    assert "9 tiles of 16x16" in out and "[0, 0.02)" in out and ">= 0.02" in out
    counts = [int(line.split()[4]) for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert sum(counts) == 9 and min(counts) > 0
    tinted = np.array(Image.open(tmp_path / "map.png"))
    assert tinted.shape == (H, W, 3)
    assert not np.array_equal(tinted[:, :5], tinted[:, -5:])  # flat and busy halves get different colours


def test_classify_with_a_bundle_and_json(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert main(["classify", str(tmp_path / "a.png"), "--map", str(tmp_path / "m.json"), "--bundle", str(bundle_path)]) == 0
    assert "1-2w8" in capsys.readouterr().out
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["configs"] == ["1-2w8", "2-2w8"] and record["tile_size"] == 16
    assert np.array(record["scores"]).shape == (record["rows"], record["cols"])
    # The same routing as `mmsr upscale`.
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path, "--class-map", tmp_path / "u.json") == 0
    assert json.loads((tmp_path / "u.json").read_text())["classes"] == record["classes"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--boundaries", "0.1,0.05"], "strictly ascending"),
        (["--boundaries", "a,b"], "comma-separated numbers"),
        (["--boundaries", "0.1", "--tile", "8", "--overlap", "9"], "0 <= --overlap < --tile"),
        (["--boundaries", "0.1", "--map", "m.gif"], "use an image extension"),
        (["--boundaries", ""], "--boundaries is empty"),
        (["--boundaries", "0.1", "--map", "nodir/m.png"], "nodir is not an existing directory"),
    ],
)
def test_classify_bad_options(tmp_path, capsys, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert main(["classify", "a.png", *options]) == 2
    assert message in capsys.readouterr().err


def test_classify_refuses_to_overwrite_the_image(tmp_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert main(["classify", str(tmp_path / "a.png"), "--map", str(tmp_path / "a.png"), "--boundaries", "0.1"]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err


def test_classify_unreadable_image(tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert main(["classify", str(tmp_path / "bad.png"), "--boundaries", "0.1"]) == 1
    assert "bad.png" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "upscale" in out and "classify" in out


def test_promotion_in_the_class_map_and_no_promote(tmp_path, bundle_path, capsys):
    # Noise everywhere but one flat tile: sending that tile to the deepest model (2-2w8) keeps one
    # shared block, cheaper than cutting it around a block of its own.
    array = np.random.default_rng(3).integers(0, 256, (H, 80, 3), dtype=np.uint8)
    array[:16, 24:40] = 120
    Image.fromarray(array).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", bundle_path,
                    "--class-map", tmp_path / "m.json") == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["histogram"][0] >= 1  # the flat tile's texture class
    assert record["promoted"] >= 1 and record["models"] != record["classes"]
    assert all(m in (c, 1) for mr, cr in zip(record["models"], record["classes"]) for m, c in zip(mr, cr))
    assert f"{record['promoted']} promoted to 2-2w8" in capsys.readouterr().out
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "c.png", "--bundle", bundle_path, "--no-promote",
                    "--class-map", tmp_path / "n.json") == 0
    plain = json.loads((tmp_path / "n.json").read_text())
    assert plain["promoted"] == 0 and plain["models"] == plain["classes"] == record["classes"]
    assert "promoted to" not in capsys.readouterr().out


def test_a_folder_upscaled_twice_does_not_upscale_its_results(tmp_path, bundle_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    Image.fromarray(_rgb()).save(folder / "a.png")
    Image.fromarray(_rgb(1)).save(folder / "b_x2.png")  # no b.* beside it: a photo of the user's, kept
    assert _upscale(folder, "--bundle", bundle_path) == 0
    assert (folder / "a_x2.png").exists() and (folder / "b_x2_x2.png").exists()
    capsys.readouterr()
    assert _upscale(folder, "--bundle", bundle_path) == 0  # not a_x2_x2.png, no "it is one of the inputs"
    captured = capsys.readouterr()
    assert not (folder / "a_x2_x2.png").exists() and not (folder / "b_x2_x2_x2.png").exists()
    assert "skipped 2 earlier result(s) of this command" in captured.err and "failed" not in captured.err


def test_a_folder_names_the_image_files_it_cannot_read_instead_of_skipping_them_silently(tmp_path, bundle_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    Image.fromarray(_rgb()).save(folder / "a.png")
    Image.fromarray(_rgb(1)).save(folder / "b.gif")
    (folder / "c.HEIC").write_bytes(b"not decoded")
    (folder / "notes.txt").write_text("not an image")
    assert _upscale(folder, "--bundle", bundle_path) == 0
    err = capsys.readouterr().err
    assert "skipped 2 image file(s) of a kind mmsr does not read (b.gif, c.HEIC); it reads PNG, JPEG" in err
    assert "notes.txt" not in err
    assert (folder / "a_x2.png").exists() and not (folder / "b_x2.png").exists()
    # Only unreadable kinds: the note comes with the error that the folder holds nothing to upscale.
    (folder / "a.png").unlink()
    (folder / "a_x2.png").unlink()
    assert _upscale(folder, "--bundle", bundle_path) != 0
    err = capsys.readouterr().err
    assert "skipped 2 image file(s)" in err and "directory holds no PNG, JPEG, WebP, TIFF or BMP files" in err


def test_outscale_resamples_the_models_result_and_names_the_output(tmp_path, bundle_path, capsys):
    from mmsr import Upscaler
    from mmsr.imageio import resize_pixels

    alpha = np.zeros((H, W), np.uint8)
    alpha[:, W // 2 :] = 255
    Image.fromarray(np.dstack([_rgb(), alpha])).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "--bundle", bundle_path, "--outscale", "1.5") == 0
    out = Image.open(tmp_path / "a_x1.5.png")
    assert out.size == (60, 45) and out.mode == "RGBA"
    assert "(40x30 -> 60x45," in capsys.readouterr().out
    x = torch.from_numpy(_rgb()).permute(2, 0, 1).contiguous()
    expected = resize_pixels(Upscaler(bundle_path).upscale(x).image, 45, 60)
    assert np.array_equal(np.array(out)[..., :3], expected.permute(1, 2, 0).numpy())
    out_alpha = np.array(out)[..., 3]
    assert out_alpha[:, :27].max() == 0 and out_alpha[:, 33:].min() == 255  # the alpha at the final size


def test_outscale_results_in_a_folder_are_skipped_the_second_time(tmp_path, bundle_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    Image.fromarray(_rgb()).save(folder / "a.png")
    assert _upscale(folder, "--bundle", bundle_path, "--outscale", "3", "-q") == 0
    assert Image.open(folder / "a_x3.png").size == (3 * W, 3 * H)
    assert _upscale(folder, "--bundle", bundle_path, "--outscale", "3", "-q") == 0
    assert not (folder / "a_x3_x3.png").exists()
    assert "skipped 1 earlier result(s)" in capsys.readouterr().err
    # Then at another scale: the x3 and x1.5 results are not upscaled again either.
    assert _upscale(folder, "--bundle", bundle_path, "--outscale", "1.5", "-q") == 0
    assert _upscale(folder, "--bundle", bundle_path, "-q") == 0
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_x1.5.png", "a_x2.png", "a_x3.png"]
    assert "skipped 2 earlier result(s)" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "17", "two"])
def test_bad_outscale(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        _upscale(tmp_path / "a.png", "--outscale", value)
    assert exit_info.value.code == 2
    assert f"argument --outscale: expected a number above 0 and at most 16, got {value!r}" in capsys.readouterr().err


def test_an_input_named_twice_is_upscaled_once(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", tmp_path / "./a.png", "-o", tmp_path / "out/", "--bundle", bundle_path) == 0
    assert "given more than once; upscaled once" in capsys.readouterr().err


def test_class_map_over_the_output_is_refused(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "s.png", "--class-map", tmp_path / "s.png",
                    "--bundle", bundle_path) == 2  # two options naming one file: a usage error, found up front
    assert "--class-map " + str(tmp_path / "s.png") + " is also the -o output" in capsys.readouterr().err
    assert not (tmp_path / "s.png").exists()


def test_class_maps_of_inputs_with_one_stem_keep_apart(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "p.png")
    Image.fromarray(_rgb(1)).save(tmp_path / "p.bmp")
    assert _upscale(tmp_path / "p.png", tmp_path / "p.bmp", "-o", tmp_path / "out/", "--class-map",
                    tmp_path / "maps", "--bundle", bundle_path) == 0
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["p.bmp.json", "p.png.json"]


def test_single_input_class_map_into_a_folder(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    (tmp_path / "maps").mkdir()
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--class-map", tmp_path / "maps",
                    "--bundle", bundle_path) == 0
    assert (tmp_path / "maps" / "a.json").exists()


def test_unwritable_output_format_fails_before_upscaling(tmp_path, bundle_path, capsys, monkeypatch):
    Image.fromarray(_rgb()).save(tmp_path / "anim.gif")
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    calls = []
    monkeypatch.setattr(upscale_cmd, "_upscale_file", lambda *a: calls.append(a[1]) or "done")
    assert _upscale(tmp_path / "anim.gif", tmp_path / "a.png", "--bundle", bundle_path) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "anim_x2.gif: unsupported output extension '.gif'" in err
    assert calls == [tmp_path / "a.png"]


def test_several_frames_warn(tmp_path, bundle_path, capsys):
    frames = [Image.fromarray(_rgb(k)) for k in range(2)]
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:], lossless=True)
    assert _upscale(tmp_path / "a.webp", "--bundle", bundle_path) == 0
    assert "only the first of its 2 frames is upscaled" in capsys.readouterr().err


def test_no_folder_is_made_when_an_option_is_refused(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "out/", "--class-map", tmp_path / "maps/",
                    "--tile", "0", "--bundle", bundle_path) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "maps").exists()


def test_folder_input_with_an_image_file_output_is_refused(tmp_path, bundle_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    Image.fromarray(_rgb()).save(folder / "a.png")
    assert _upscale(folder, "-o", tmp_path / "result.png", "--bundle", bundle_path) == 2
    assert "several inputs need an output directory, and this names an image file" in capsys.readouterr().err
    assert not (tmp_path / "result.png").exists()


def test_version(capsys):
    import mmsr

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"mmsr {mmsr.__version__}"


def test_format_and_quality(tmp_path, bundle_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    Image.fromarray(_rgb()).save(tmp_path / "anim.gif")  # a format mmsr reads but cannot write
    assert _upscale(tmp_path / "a.png", tmp_path / "anim.gif", "-o", tmp_path / "out/", "--format", "JPG",
                    "--bundle", bundle_path) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "anim.jpg"]
    assert _upscale(tmp_path / "a.png", "--format", ".webp", "--bundle", bundle_path) == 0
    assert Image.open(tmp_path / "a_x2.webp").format == "WEBP"
    sizes = {}
    for quality in (30, 95):
        target = tmp_path / f"q{quality}.jpg"
        assert _upscale(tmp_path / "a.png", "-o", target, "--quality", quality, "--bundle", bundle_path) == 0
        sizes[quality] = target.stat().st_size
    assert sizes[30] < sizes[95]


def test_format_conflicting_with_an_output_file(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--format", "jpg", "--bundle", bundle_path) == 2
    assert "names its own format; --format jpg is for outputs named after inputs" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [("--quality", "0", "expected an integer from 1 to 100"), ("--quality", "x", "expected an integer from 1 to 100"),
                                                    ("--format", "gif", "expected one of bmp, jpeg, jpg, png")])
def test_bad_format_or_quality(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit):
        _upscale(tmp_path / "a.png", option, value)
    assert f"argument {option}: {message}" in capsys.readouterr().err


def test_an_output_over_an_input_fails_before_any_image_is_read(tmp_path, bundle_path, capsys, monkeypatch):
    (tmp_path / "out").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    Image.fromarray(_rgb(1)).save(tmp_path / "out" / "b.png")  # -o out/ would write out/b.png over it
    events = []
    monkeypatch.setattr(upscale_cmd, "_upscale_file", lambda *a: events.append(("upscale", a[1].name)) or "done")
    real_print = print

    def recording_print(*args, **kwargs):
        events.append(("print", " ".join(map(str, args))))
        real_print(*args, **kwargs)

    monkeypatch.setattr("builtins.print", recording_print)
    assert _upscale(tmp_path / "a.png", tmp_path / "out" / "b.png", "-o", tmp_path / "out/", "--bundle", bundle_path) == 1
    refusal = next(i for i, e in enumerate(events) if e[0] == "print" and "it is one of the inputs" in e[1])
    assert refusal < events.index(("upscale", "a.png"))
    assert ("upscale", "b.png") not in events


def test_bundle_default_names_the_shipped_bundle(tmp_path, monkeypatch):
    from mmsr.bundle import default_bundle_path, resolve_bundle_path

    if default_bundle_path() is None:
        pytest.skip("this installation has no shipped bundle")
    monkeypatch.chdir(tmp_path)  # no file called "default" here
    assert resolve_bundle_path("default") == default_bundle_path()
    Image.fromarray(_rgb()[:8, :8]).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "b.png", "--bundle", "default") == 0
    assert Image.open(tmp_path / "b.png").size == (32, 32)  # the shipped x4 bundle


def test_classify_into_a_closed_pipe_writes_its_map_and_no_traceback(tmp_path, bundle_path):
    # `mmsr classify ... | head` ended in a BrokenPipeError traceback, and the map was not written.
    import subprocess
    import sys

    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    target = tmp_path / "m.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "mmsr", "classify", str(tmp_path / "a.png"), "--map", str(target), "--bundle", str(bundle_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    process.stdout.close()  # the reader is gone before anything is printed
    stderr = process.stderr.read()
    process.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert process.returncode == 141
    assert json.loads(target.read_text())["classes"]
