"""mmsr.imageio: every kind of file in and back out, size limits, bad files, atomic writes."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from mmsr.imageio import (
    ImageData,
    ImageTooLargeError,
    alpha_supported,
    exif_fits,
    read_image,
    resize_alpha,
    resize_pixels,
    write_image,
)


def _pixels(h=12, w=10, channels=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)


def _save(path, array, **options):
    Image.fromarray(array).save(path, **options)
    return path


@pytest.mark.parametrize("ext", [".png", ".webp", ".tif", ".bmp"])
def test_rgb_round_trip_lossless(tmp_path, ext):
    array = _pixels()
    extra = {"lossless": True} if ext == ".webp" else {}
    image = read_image(_save(tmp_path / f"a{ext}", array, **extra))
    assert image.rgb.dtype == torch.uint8 and image.rgb.shape == (3, 12, 10)
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), array)
    assert image.alpha is None and not image.grayscale and not image.sixteen_bit
    if ext != ".webp":  # mmsr writes WebP lossy at quality 95
        write_image(tmp_path / f"b{ext}", image)
        assert np.array_equal(np.array(Image.open(tmp_path / f"b{ext}")), array)


def test_jpeg_reads_and_writes(tmp_path):
    image = read_image(_save(tmp_path / "a.jpg", _pixels(), quality=90))
    assert image.rgb.shape == (3, 12, 10)
    write_image(tmp_path / "b.jpeg", image)
    assert Image.open(tmp_path / "b.jpeg").format == "JPEG"


def test_rgba_keeps_alpha_apart(tmp_path):
    array = _pixels(channels=4)
    image = read_image(_save(tmp_path / "a.png", array))
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), array[..., :3])
    assert np.array_equal(image.alpha.numpy(), array[..., 3])
    write_image(tmp_path / "b.png", image)
    assert np.array_equal(np.array(Image.open(tmp_path / "b.png")), array)


@pytest.mark.parametrize("ext, keeps", [(".png", True), (".webp", True), (".tif", True), (".jpg", False), (".bmp", False)])
def test_alpha_support_by_format(tmp_path, ext, keeps):
    assert alpha_supported(f"x{ext}") == keeps
    image = ImageData(rgb=torch.zeros(3, 4, 4, dtype=torch.uint8), alpha=torch.full((4, 4), 7, dtype=torch.uint8))
    write_image(tmp_path / f"a{ext}", image)
    assert ("A" in Image.open(tmp_path / f"a{ext}").mode) == keeps


def test_grayscale_round_trip(tmp_path):
    array = _pixels(channels=1)
    image = read_image(_save(tmp_path / "g.png", array))
    assert image.grayscale and image.rgb.shape == (3, 12, 10)
    assert all(torch.equal(image.rgb[c], torch.from_numpy(array)) for c in range(3))
    write_image(tmp_path / "h.png", image)
    out = Image.open(tmp_path / "h.png")
    assert out.mode == "L" and np.array_equal(np.array(out), array)


def test_grey_with_alpha(tmp_path):
    array = _pixels(channels=2)
    Image.fromarray(array, "LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    assert image.grayscale and np.array_equal(image.alpha.numpy(), array[..., 1])
    write_image(tmp_path / "out.png", image)
    assert Image.open(tmp_path / "out.png").mode == "LA"


def test_bilevel_reads_as_grey(tmp_path):
    Image.fromarray(_pixels(channels=1) > 127).save(tmp_path / "b.png")
    image = read_image(tmp_path / "b.png")
    assert image.grayscale and set(image.rgb.unique().tolist()) <= {0, 255}


def test_palette_reads_as_rgb(tmp_path):
    rgb = Image.fromarray(_pixels())
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    expected = np.array(Image.open(tmp_path / "p.png").convert("RGB"))
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), expected)
    assert image.alpha is None and not image.grayscale


def test_palette_transparency_becomes_alpha(tmp_path):
    p = Image.fromarray(_pixels()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    index = np.array(p)[0, 0]
    p.save(tmp_path / "t.png", transparency=int(index))
    image = read_image(tmp_path / "t.png")
    assert image.alpha is not None and image.alpha[0, 0] == 0
    assert (image.alpha == 0).sum() == (np.array(p) == index).sum()


def test_rgb_transparency_key_becomes_alpha(tmp_path):
    array = _pixels()
    array[0, 0] = (1, 2, 3)
    Image.fromarray(array).save(tmp_path / "k.png", transparency=(1, 2, 3))
    assert read_image(tmp_path / "k.png").alpha[0, 0] == 0


def test_sixteen_bit_png(tmp_path):
    values = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500
    Image.fromarray(values).save(tmp_path / "g16.png")
    image = read_image(tmp_path / "g16.png")
    assert image.sixteen_bit and image.grayscale and image.rgb.dtype == torch.float32
    torch.testing.assert_close(image.rgb[0], torch.from_numpy(values.astype(np.float32) / 65535))
    write_image(tmp_path / "out.png", image)
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "I;16" and np.array_equal(np.array(out), values)
    write_image(tmp_path / "out.jpg", image)  # no 16-bit JPEG: written as 8-bit grey
    assert Image.open(tmp_path / "out.jpg").mode == "L"


def _write_png16(path, array: np.ndarray) -> None:
    """A 16-bit RGB (3 channels) or RGBA (4) PNG, which Pillow cannot write."""
    h, w, c = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_png_reads_at_eight_bits(tmp_path, channels):
    values = np.random.default_rng(0).integers(0, 65536, (6, 5, channels), dtype=np.uint16)
    _write_png16(tmp_path / "c16.png", values)
    image = read_image(tmp_path / "c16.png")
    assert image.rgb.dtype == torch.uint8 and image.rgb.shape == (3, 6, 5)
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), (values[..., :3] >> 8).astype(np.uint8))
    assert (image.alpha is not None) == (channels == 4)


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    Image.fromarray(_pixels()).convert("CMYK").save(tmp_path / "c.jpg")
    assert read_image(tmp_path / "c.jpg").rgb.shape == (3, 12, 10)


def test_cmyk_profile_is_not_carried_into_rgb(tmp_path):
    # A CMYK profile would mislabel the RGB pixels mmsr writes. (A real CMYK profile cannot be
    # made offline; an sRGB profile relabelled CMYK is not usable, so the plain formula is used.)
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[16:20] = b"CMYK"
    cmyk = Image.fromarray(_pixels()).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", icc_profile=bytes(profile))
    image = read_image(tmp_path / "c.jpg")
    assert image.icc_profile is None
    plain = np.array(Image.open(tmp_path / "c.jpg").convert("RGB"))
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), plain)


def test_grey_file_drops_a_profile_of_another_colour_space(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_pixels()[..., 0]).save(tmp_path / "g.png", icc_profile=profile)
    assert read_image(tmp_path / "g.png").icc_profile is None


def test_thirty_two_bit_integers_beyond_sixteen_bits_are_refused(tmp_path):
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32), mode="I").save(tmp_path / "i.tif")
    with pytest.raises(ValueError, match=r"i\.tif: 32-bit integer pixels from 0 to 70000 are outside 16 bits"):
        read_image(tmp_path / "i.tif")


def test_frames_are_counted(tmp_path):
    frames = [Image.fromarray(_pixels(seed=k)) for k in range(3)]
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:])
    assert read_image(tmp_path / "a.webp").frames == 3
    assert read_image(_save(tmp_path / "one.png", _pixels())).frames == 1


def test_pillows_own_limit_does_not_apply(tmp_path, monkeypatch):
    # Pillow refuses past twice its global limit while opening; mmsr's max_pixels decides instead.
    path = _save(tmp_path / "big.png", _pixels(h=100, w=100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert read_image(path, max_pixels=None).size == (100, 100)
    with pytest.raises(ImageTooLargeError, match=r"big\.png: 100x100 = 10,000 pixels exceeds the limit of 5,000"):
        read_image(path, max_pixels=5000)
    assert Image.MAX_IMAGE_PIXELS == 1000  # put back


def test_a_tiff_pillow_fails_with_type_error_is_an_unreadable_file(tmp_path, monkeypatch):
    # Pillow raises TypeError("Missing dimensions") for some malformed TIFF directories.
    path = _save(tmp_path / "t.tif", _pixels())

    def broken(self):
        raise TypeError("Missing dimensions")

    from PIL import TiffImagePlugin

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "n_frames", property(broken))
    with pytest.raises(OSError, match=r"t\.tif: cannot read image \(Missing dimensions\)"):
        read_image(path)


def test_a_file_that_is_no_image_is_named_once_in_the_error(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"garbage")
    with pytest.raises(OSError) as caught:
        read_image(path)
    assert str(caught.value) == f"{path}: cannot read image (cannot identify image file)"


def test_exif_orientation_is_applied(tmp_path):
    im = Image.fromarray(_pixels(h=6, w=10))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "o.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "o.jpg").size == (10, 6)


def test_icc_profile_is_carried(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_pixels()).save(tmp_path / "icc.png", icc_profile=profile)
    image = read_image(tmp_path / "icc.png")
    assert image.icc_profile == profile
    write_image(tmp_path / "out.webp", image)
    assert Image.open(tmp_path / "out.webp").info.get("icc_profile") == profile


def _camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS R5", orientation  # make, model, orientation
    details = exif.get_ifd(0x8769)
    details[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    details[0xA002], details[0xA003] = 10, 12  # PixelXDimension, PixelYDimension
    details[0x927C] = b"maker-specific offsets"  # MakerNote: not carried
    exif.get_ifd(0x8825)[2] = (52.0, 30.0, 0.0)  # GPSLatitude
    return exif


def _upscaled(image, factor=2):
    rgb = image.rgb.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    return image.with_pixels(rgb, None)


@pytest.mark.parametrize("source_ext", [".jpg", ".png", ".webp", ".tif"])
@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp", ".tif"])
def test_exif_is_carried_with_the_new_pixel_size(tmp_path, source_ext, ext):
    # EXIF used to be dropped: an upscaled photo lost its camera, dates and GPS.
    source = _save(tmp_path / f"in{source_ext}", _pixels(h=12, w=10), exif=_camera_exif().tobytes())
    write_image(tmp_path / f"out{ext}", _upscaled(read_image(source)))
    exif = Image.open(tmp_path / f"out{ext}").getexif()
    assert (exif[0x010F], exif[0x0110]) == ("Canon", "EOS R5")
    details = exif.get_ifd(0x8769)
    assert details[0x9003] == "2024:05:06 07:08:09"
    assert (details[0xA002], details[0xA003]) == (20, 24)  # the output's width and height
    assert 0x927C not in details
    assert exif.get_ifd(0x8825)[2] == (52.0, 30.0, 0.0)


def test_exif_orientation_is_not_carried_and_a_turn_swaps_the_dpi(tmp_path):
    source = _save(tmp_path / "in.jpg", _pixels(h=6, w=10), exif=_camera_exif(orientation=6).tobytes(), dpi=(300, 150))
    image = read_image(source)
    assert image.size == (10, 6) and image.dpi == (150.0, 300.0)
    write_image(tmp_path / "out.jpg", image)
    out = Image.open(tmp_path / "out.jpg")
    assert out.size == (6, 10)  # upright pixels, and no tag that would turn them again
    assert 0x0112 not in out.getexif() and out.getexif()[0x010F] == "Canon"
    assert out.info["dpi"] == (150, 300)


def test_a_tiffs_structural_tags_are_not_carried(tmp_path):
    # A TIFF's EXIF holds its strip offsets, sizes and compression: written into another file they
    # would describe the old one.
    source = _save(tmp_path / "in.tif", _pixels(h=12, w=10), exif=_camera_exif().tobytes())
    write_image(tmp_path / "out.png", _upscaled(read_image(source)))
    exif = Image.open(tmp_path / "out.png").getexif()
    assert exif[0x010F] == "Canon"
    assert not {0x0100, 0x0101, 0x0103, 0x0111, 0x0117} & set(exif)  # width, height, compression, strips


@pytest.mark.parametrize("ext, holds_dpi", [(".jpg", True), (".png", True), (".tif", True), (".bmp", True), (".webp", False)])
def test_dpi_is_carried_unchanged(tmp_path, ext, holds_dpi):
    source = _save(tmp_path / "in.tif", _pixels(), dpi=(300, 300))
    write_image(tmp_path / f"out{ext}", _upscaled(read_image(source)))
    dpi = Image.open(tmp_path / f"out{ext}").info.get("dpi")
    if holds_dpi:
        assert dpi == pytest.approx((300, 300), abs=0.01)  # PNG and BMP store pixels per metre
    else:
        assert dpi is None


def test_without_metadata_drops_exif_and_dpi_but_keeps_the_colour_profile(tmp_path):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = _save(tmp_path / "in.jpg", _pixels(), exif=_camera_exif().tobytes(), dpi=(300, 300), icc_profile=profile)
    write_image(tmp_path / "out.jpg", read_image(source).without_metadata())
    out = Image.open(tmp_path / "out.jpg")
    assert not out.getexif() and out.info.get("dpi") in (None, (72, 72))  # Pillow's JFIF default
    assert out.info["icc_profile"] == profile


def _exif_with_one_field(tag: int, kind: int, payload: bytes, gps: bool = False) -> bytes:
    """Little-endian EXIF holding one field of a TIFF ``kind`` whose value sits at offset 26 (or, with
    ``gps``, a GPS directory holding it), the way a broken camera or editor writes a wrong type."""
    import struct

    head = b"Exif\0\0II*\0" + struct.pack("<I", 8)
    if gps:
        return head + struct.pack("<HHHII", 1, 0x8825, 4, 1, 26) + struct.pack("<I", 0) + \
            struct.pack("<HHHII", 1, tag, kind, len(payload), 44) + struct.pack("<I", 0) + payload
    return head + struct.pack("<HHHII", 1, tag, kind, 1, 26) + struct.pack("<I", 0) + payload


def test_exif_text_that_is_not_ascii_is_kept_byte_for_byte(tmp_path):
    # Pillow reads EXIF text as Latin-1 and writes str as ASCII: every "©", "é" or CJK byte used to
    # come back as "?".
    exif = Image.Exif()
    exif[0x8298] = "© 2024 Jane".encode()  # UTF-8, as most software writes it
    exif[0x013B] = "José Müller".encode("latin-1")
    source = _save(tmp_path / "in.jpg", _pixels(), exif=exif.tobytes())
    write_image(tmp_path / "out.png", read_image(source))
    out = Image.open(tmp_path / "out.png").getexif()
    assert out[0x8298].encode("latin-1") == "© 2024 Jane".encode()
    assert out[0x013B].encode("latin-1") == "José Müller".encode("latin-1")


@pytest.mark.parametrize(
    "exif, dropped",
    [(_exif_with_one_field(0x0132, 5, b"\x01\0\0\0\x03\0\0\0"), "DateTime (0x0132)"),  # a date as a RATIONAL
     (_exif_with_one_field(2, 2, b"48.8566\0", gps=True), "GPS GPSLatitude (0x0002)")],  # a latitude as text
    ids=["date-as-rational", "gps-latitude-as-text"],
)  # fmt: skip
def test_a_malformed_exif_field_is_left_out_with_a_warning_not_a_failure(tmp_path, exif, dropped):
    # These files open in Pillow, but mmsr used to fail them ("cannot read image", or an
    # AttributeError while re-encoding the EXIF).
    _pixels_file = tmp_path / "in.jpg"
    Image.fromarray(_pixels()).save(_pixels_file, exif=exif)
    image = read_image(_pixels_file)
    assert image.rgb.shape == (3, 12, 10)
    assert any(dropped in w and "malformed and not carried" in w for w in image.metadata_warnings)
    write_image(tmp_path / "out.jpg", image)
    assert read_image(_pixels_file, metadata=False).metadata_warnings == ()


def test_dpi_is_only_what_the_file_states(tmp_path):
    # Pillow reports 1 DPI for a TIFF without a resolution unit and 72 for a JPEG whose EXIF has no
    # resolution: neither was stated, and mmsr used to write them into the output.
    Image.fromarray(_pixels()).save(tmp_path / "plain.tif")
    assert Image.open(tmp_path / "plain.tif").info.get("dpi") == (1, 1)
    assert read_image(tmp_path / "plain.tif").dpi is None
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    Image.fromarray(_pixels()).save(tmp_path / "nodpi.jpg", exif=exif.tobytes())
    assert Image.open(tmp_path / "nodpi.jpg").info.get("dpi") == (72, 72)
    assert read_image(tmp_path / "nodpi.jpg").dpi is None
    write_image(tmp_path / "out.tif", read_image(tmp_path / "plain.tif"))
    assert Image.open(tmp_path / "out.tif").tag_v2.get(0x0128) in (None, 1)  # no unit: no resolution stated
    # Stated ones are read: a TIFF in centimetres, a JPEG's EXIF resolution.
    Image.fromarray(_pixels()).save(tmp_path / "cm.tif", tiffinfo={0x011A: 100.0, 0x011B: 100.0, 0x0128: 3})
    assert read_image(tmp_path / "cm.tif").dpi == pytest.approx((254.0, 254.0))
    exif[0x011A], exif[0x011B], exif[0x0128] = 240.0, 240.0, 2
    Image.fromarray(_pixels()).save(tmp_path / "exifdpi.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "exifdpi.jpg").dpi == (240.0, 240.0)


def test_a_grey_profile_is_not_written_into_webp(tmp_path):
    # WebP stores grey as RGB, which a GRAY profile cannot describe: colour-managed software could not
    # use the file's profile at all.
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[16:20] = b"GRAY"
    Image.fromarray(_pixels()[..., 0]).save(tmp_path / "g.png", icc_profile=bytes(profile))
    image = read_image(tmp_path / "g.png")
    assert image.icc_profile == bytes(profile)
    write_image(tmp_path / "g.webp", image)
    assert "icc_profile" not in Image.open(tmp_path / "g.webp").info
    write_image(tmp_path / "g.tif", image)  # grey pixels: the profile stays
    assert Image.open(tmp_path / "g.tif").info["icc_profile"] == bytes(profile)


def test_no_empty_or_stale_exif_directories_are_written(tmp_path):
    # A main-directory-only EXIF used to gain an empty Exif directory (invalid: one entry at least),
    # and pointer tags inside a directory were copied as meaningless numbers.
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    source = _save(tmp_path / "make.jpg", _pixels(), exif=exif.tobytes())
    write_image(tmp_path / "out.jpg", read_image(source))
    assert 0x8769 not in Image.open(tmp_path / "out.jpg").getexif()
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    exif.get_ifd(0x8769)[0xA005] = 8  # an interoperability pointer: an offset into the old file
    source = _save(tmp_path / "ptr.jpg", _pixels(), exif=exif.tobytes())
    write_image(tmp_path / "out2.jpg", read_image(source))
    details = Image.open(tmp_path / "out2.jpg").getexif().get_ifd(0x8769)
    assert details == {0x9003: "2024:05:06 07:08:09"}


def test_exif_over_a_jpegs_64_kb_is_refused_by_name(tmp_path):
    exif = Image.Exif()
    exif[0x010E] = "x" * 70000
    image = read_image(_save(tmp_path / "big.png", _pixels(), exif=exif.tobytes()))
    assert not exif_fits(tmp_path / "out.jpg", image, 24, 20) and exif_fits(tmp_path / "out.png", image, 24, 20)
    with pytest.raises(ValueError, match=r"out\.jpg: its EXIF \(\d+ bytes\) is over the 65533 a JPEG holds"):
        write_image(tmp_path / "out.jpg", image)
    assert not (tmp_path / "out.jpg").exists()


def test_an_image_without_metadata_gets_none(tmp_path):
    image = read_image(_save(tmp_path / "plain.png", _pixels()))
    assert image.exif is None and image.dpi is None


def test_float_pixels_are_quantised(tmp_path):
    rgb = torch.tensor([0.0, 0.5, 1.0, 1.2]).view(1, 1, 4).expand(3, 1, 4).contiguous()
    write_image(tmp_path / "f.png", ImageData(rgb=rgb))
    assert np.array(Image.open(tmp_path / "f.png"))[0, :, 0].tolist() == [0, 128, 255, 255]


def test_max_pixels_refused_before_decoding(tmp_path):
    path = _save(tmp_path / "big.png", _pixels(h=100, w=100))
    with pytest.raises(ImageTooLargeError, match=r"big\.png: 100x100 = 10,000 pixels exceeds the limit of 9,999"):
        read_image(path, max_pixels=9_999)
    assert read_image(path, max_pixels=10_000).size == (100, 100)
    assert read_image(path, max_pixels=None).size == (100, 100)


@pytest.mark.parametrize(
    "content",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"],
    ids=["empty", "text", "png-header-only"],
)
def test_unreadable_files_name_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(OSError, match="broken.png"):
        read_image(path)


def test_truncated_file(tmp_path):
    data = io.BytesIO()
    Image.fromarray(_pixels(h=64, w=64)).save(data, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(OSError, match="cut.png"):
        read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.png: no such file$"):
        read_image(tmp_path / "nope.png")


def test_float_mode_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match=r"f\.tif: 32-bit floating-point"):
        read_image(tmp_path / "f.tif")


def test_unsupported_output_extension(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported extension '\.gif'"):
        write_image(tmp_path / "a.gif", ImageData(rgb=torch.zeros(3, 2, 2, dtype=torch.uint8)))


def test_malformed_pixels(tmp_path):
    with pytest.raises(ValueError, match=r"rgb should be a \[3, H, W\] tensor"):
        write_image(tmp_path / "a.png", ImageData(rgb=torch.zeros(4, 2, 2, dtype=torch.uint8)))


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = _save(tmp_path / "keep.png", _pixels())
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(path, ImageData(rgb=torch.zeros(3, 2, 2, dtype=torch.uint8)))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.png"]  # no temporary file left behind


def test_resize_alpha():
    alpha = torch.zeros(4, 6, dtype=torch.uint8)
    alpha[:, 3:] = 255
    big = resize_alpha(alpha, 16, 24)
    assert big.shape == (16, 24) and big.dtype == torch.uint8
    assert big[:, :10].max() == 0 and big[:, 14:].min() == 255  # flat regions stay exact
    with pytest.raises(ValueError, match="alpha should be a uint8"):
        resize_alpha(alpha.float(), 8, 12)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_resize_pixels_keeps_flat_areas_and_dtype(dtype):
    rgb = torch.zeros(3, 16, 24, dtype=dtype)
    rgb[:, :, 12:] = 255 if dtype == torch.uint8 else 1.0
    small = resize_pixels(rgb, 8, 12)
    assert small.shape == (3, 8, 12) and small.dtype == dtype
    assert small[:, :, :3].max() == 0 and (small[:, :, 9:] == rgb.max()).all()  # flat areas away from the edge
    with pytest.raises(ValueError, match=r"rgb should be a \[3, H, W\] tensor"):
        resize_pixels(rgb[0], 8, 12)


def test_resize_pixels_low_passes_when_it_shrinks():
    # A one-pixel checkerboard halved must come out mid-grey, not a sampled pattern (aliasing).
    board = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 255).to(torch.uint8).expand(3, 32, 32)
    half = resize_pixels(board, 16, 16).float()
    assert (half[:, 2:-2, 2:-2] - 127.5).abs().max() < 8


@pytest.mark.parametrize("quality", [0, 101, 9.5, True])
def test_bad_quality(tmp_path, quality):
    with pytest.raises(ValueError, match="quality must be an int from 1 to 100"):
        write_image(tmp_path / "q.jpg", ImageData(rgb=torch.zeros(3, 4, 4, dtype=torch.uint8)), quality)
    assert not (tmp_path / "q.jpg").exists()
