"""`mmsr upscale` on awkward real-world files and places: each case failed before its fix.

Outputs that cannot be created are found before any image is upscaled; a failed write names the
input and says it was the write; a pipe is not read; a 16-bit grey PNG with alpha stays grey, and
one with a transparent value (tRNS) keeps its transparency; a TIFF turned by its orientation tag
is read upright.
"""
from __future__ import annotations

import errno
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from mmsr.cli import main
from mmsr.cli import upscale_cmd
from mmsr.imageio import ImageData, read_image, write_image

H, W = 30, 40

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bundle_path(cli_bundle_path):
    return cli_bundle_path


def _rgb(h=H, w=W, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _upscale(*args):
    return main(["upscale", *map(str, args)])


@pytest.fixture
def upscaled(monkeypatch):
    """The inputs `mmsr upscale` went on to upscale (each is reported as done, nothing is written)."""
    calls = []
    monkeypatch.setattr(upscale_cmd, "_upscale_file", lambda *a: calls.append(a[1]) or "done")
    return calls


def _write_png16(path, samples: np.ndarray, colour_type: int, trns: bytes = b"") -> None:
    """A 16-bit PNG of [H, W, channels] samples (colour type 4: grey + alpha, 2: RGB), with a tRNS
    chunk if given: kinds Pillow cannot write itself."""
    h = samples.shape[0]
    samples = samples.astype(">u2")
    raw = b"".join(b"\0" + samples[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", samples.shape[1], h, 16, colour_type, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + (chunk(b"tRNS", trns) if trns else b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _write_grey_alpha_png16(path, grey: np.ndarray, alpha: np.ndarray) -> None:
    _write_png16(path, np.stack([grey, alpha], axis=-1), colour_type=4)


def test_sixteen_bit_grey_png_with_alpha_stays_grey(tmp_path, bundle_path):
    rng = np.random.default_rng(0)
    grey, alpha = rng.integers(0, 65536, (H, W)), rng.integers(0, 65536, (H, W))
    _write_grey_alpha_png16(tmp_path / "la16.png", grey, alpha)
    image = read_image(tmp_path / "la16.png")
    assert image.grayscale and image.rgb.dtype == torch.uint8
    assert np.array_equal(image.rgb[0].numpy(), (grey >> 8).astype(np.uint8))
    assert np.array_equal(image.alpha.numpy(), (alpha >> 8).astype(np.uint8))
    # Pillow hands it over as RGBA; upscaled as colour, its three channels would drift apart.
    assert _upscale(tmp_path / "la16.png", "-o", tmp_path / "out.png", "--bundle", bundle_path) == 0
    assert Image.open(tmp_path / "out.png").mode == "LA"


def test_a_sixteen_bit_grey_pngs_transparent_value_becomes_alpha(tmp_path, bundle_path):
    grey = (np.arange(H * W).reshape(H, W) * 50).astype(np.uint16)
    grey[:, W // 2 :] = 7  # the right half is the transparent value
    Image.fromarray(grey).save(tmp_path / "key.png", transparency=7)
    image = read_image(tmp_path / "key.png")
    assert image.sixteen_bit and image.alpha is not None
    assert image.alpha[:, W // 2 :].max() == 0 and image.alpha[:, : W // 2].min() == 255
    assert _upscale(tmp_path / "key.png", "-o", tmp_path / "out.png", "--bundle", bundle_path) == 0
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "LA" and np.array(out)[:, W + 3 :, 1].max() == 0  # not silently opaque


def test_a_sixteen_bit_colour_pngs_transparent_colour_is_dropped_with_a_warning_not_misapplied(tmp_path, bundle_path, capsys):
    # The key (100, 100, 100) in 16-bit units is no pixel's colour. Pillow reads the pixels at 8 bits
    # and used to compare them with the key's numbers: the pixels of 8-bit value 100 (16-bit 25700)
    # came out transparent. Which pixels the key names only the 16-bit samples can say.
    rgb = np.full((H, W, 3), 25700)
    rgb[:, : W // 2] = 60000
    _write_png16(tmp_path / "key16.png", rgb, colour_type=2, trns=struct.pack(">HHH", 100, 100, 100))
    image = read_image(tmp_path / "key16.png")
    assert image.alpha is None and image.read_warnings and "not carried" in image.read_warnings[0]
    assert _upscale(tmp_path / "key16.png", "-o", tmp_path / "out.png", "--bundle", bundle_path) == 0
    assert Image.open(tmp_path / "out.png").mode == "RGB"
    assert "transparent colour" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["L", "I;16", "RGBA", "RGB"])
def test_a_tiff_turned_by_its_orientation_is_read_upright_not_scrambled(tmp_path, mode):
    # Pillow maps such an uncompressed TIFF into memory at its upright size when given its path.
    values = np.arange(H * W).reshape(H, W)
    planes = {"L": values % 251, "I;16": values * 50, "RGBA": np.dstack([values % 251] * 4), "RGB": np.dstack([values % 251] * 3)}
    array = planes[mode].astype(np.uint16 if mode == "I;16" else np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # turn 90 degrees clockwise to display
    Image.fromarray(array).save(tmp_path / "scan.tif", exif=exif.tobytes())
    image = read_image(tmp_path / "scan.tif")
    grey = image.rgb[0].numpy()
    if mode == "I;16":
        grey = (grey * 65535).round().astype(np.uint16)
    upright = np.rot90(values if mode == "I;16" else values % 251, -1)
    assert image.size == (W, H) and np.array_equal(grey, upright * 50 if mode == "I;16" else upright)
    if mode == "RGBA":
        assert np.array_equal(image.alpha.numpy(), upright)


@pytest.mark.parametrize("ext, limit", [(".webp", 16383), (".jpg", 65500)])
def test_a_result_too_large_for_its_format_is_refused_before_upscaling(tmp_path, bundle_path, capsys, monkeypatch, ext, limit):
    Image.fromarray(_rgb(1, limit // 2 + 1)).save(tmp_path / "wide.png")
    ran = []
    monkeypatch.setattr("mmsr.upscale.Upscaler.upscale", lambda self, *a, **k: ran.append(a))
    assert _upscale(tmp_path / "wide.png", "--format", ext[1:], "--bundle", bundle_path) == 1
    err = capsys.readouterr().err
    assert f"wide.png: {tmp_path / ('wide_x2' + ext)}: a " in err and f"at most {limit} pixels wide and high" in err
    assert ran == [] and sorted(p.name for p in tmp_path.iterdir()) == ["wide.png"]


def test_write_image_refuses_a_webp_past_its_limit_by_name(tmp_path):
    image = ImageData(rgb=torch.zeros(3, 1, 16384, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"big\.webp: a WebP image is at most 16383 pixels"):
        write_image(tmp_path / "big.webp", image)
    write_image(tmp_path / "big.png", image)  # PNG has no such limit


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_not_read(tmp_path, bundle_path, capsys, upscaled):
    # Reading it would block until something writes to the pipe: the command would hang.
    os.mkfifo(tmp_path / "pipe.png")
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    assert _upscale(tmp_path / "pipe.png", tmp_path / "a.png", "-o", tmp_path / "out", "--bundle", bundle_path) == 1
    assert "pipe.png: not a regular file" in capsys.readouterr().err
    assert upscaled == [tmp_path / "a.png"]


def test_an_output_name_too_long_fails_before_upscaling(tmp_path, bundle_path, capsys, upscaled):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    name = "a" * (limit - len(".png")) + ".png"  # the longest name allowed; NAME_x2.png is not
    Image.fromarray(_rgb()).save(tmp_path / name)
    Image.fromarray(_rgb()).save(tmp_path / "b.png")
    assert _upscale(tmp_path / name, tmp_path / "b.png", "--bundle", bundle_path) == 1
    assert f"its name is longer than the {limit} bytes the file system allows" in capsys.readouterr().err
    assert upscaled == [tmp_path / "b.png"]


def test_an_unwritable_output_folder_fails_before_upscaling(tmp_path, bundle_path, capsys, upscaled, monkeypatch):
    # As root (where tests often run) no folder refuses a file, so the refusal is what the probe meets.
    (tmp_path / "card").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "card" / "a.png")
    Image.fromarray(_rgb()).save(tmp_path / "b.png")
    real = upscale_cmd.tempfile.TemporaryFile

    def refuse_card(*args, dir=None, **kwargs):
        if dir == tmp_path / "card":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(upscale_cmd.tempfile, "TemporaryFile", refuse_card)
    assert _upscale(tmp_path / "card" / "a.png", tmp_path / "b.png", "--bundle", bundle_path) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'card' / 'a.png'}: cannot write {tmp_path / 'card' / 'a_x2.png'}: Permission denied" in err
    assert upscaled == [tmp_path / "b.png"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_fails_before_upscaling(tmp_path, bundle_path, capsys, upscaled):
    (tmp_path / "card").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "card" / "a.png")
    (tmp_path / "card").chmod(0o555)
    try:
        assert _upscale(tmp_path / "card" / "a.png", "--bundle", bundle_path) == 1
    finally:
        (tmp_path / "card").chmod(0o755)
    assert "a_x2.png: Permission denied" in capsys.readouterr().err and upscaled == []


def test_an_output_that_is_a_directory_is_refused_by_the_input_name(tmp_path, bundle_path, capsys, upscaled):
    # The output out/a.png contains the input's name a.png: the line must still start with the input.
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    Image.fromarray(_rgb()).save(tmp_path / "b.png")
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    assert _upscale(tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "out", "--bundle", bundle_path) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'a.png'}: cannot write {tmp_path / 'out' / 'a.png'}: it is a directory" in err
    assert upscaled == [tmp_path / "b.png"]


def test_a_failed_write_names_the_input_and_leaves_no_file(tmp_path, bundle_path, capsys, monkeypatch):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    (tmp_path / "out").mkdir()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    assert _upscale(tmp_path / "a.png", "-o", tmp_path / "out" / "a.png", "--bundle", bundle_path) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'a.png'}: cannot write {tmp_path / 'out' / 'a.png'}: No space left on device" in err
    assert "[Errno" not in err
    assert list((tmp_path / "out").iterdir()) == []  # neither the result nor its temporary file


def test_an_input_without_a_writable_extension_is_pointed_at_format(tmp_path, bundle_path, capsys):
    Image.fromarray(_rgb()).save(tmp_path / "scan", format="PNG")
    assert _upscale(tmp_path / "scan", "--bundle", bundle_path) == 1
    err = capsys.readouterr().err
    # The output scan_x2 contains the input's name; the line still starts with the input.
    assert f"error: {tmp_path / 'scan'}: cannot write {tmp_path / 'scan_x2'}" in err and "--format EXT" in err
    assert _upscale(tmp_path / "scan", "--format", "png", "--bundle", bundle_path) == 0
    assert Image.open(tmp_path / "scan_x2.png").size == (2 * W, 2 * H)
