"""Reading and writing image files for mmsr: Pillow in, tensors out, and atomic writes back.

Every supported file becomes an RGB tensor the pipeline can take, plus what is needed to write the
result back the way it came in:

- RGB and CMYK/YCbCr (converted) images: ``rgb`` uint8 [3, H, W];
- grayscale (``L``, ``1``) images: the grey plane repeated into 3 channels; ``grayscale=True`` so the
  result is written back as one plane (the mean of the three upscaled channels);
- 16-bit grayscale PNG/TIFF (``I;16``, ``I``): float32 in [0, 1] (value / 65535), written back as
  16-bit PNG or TIFF, else 8-bit; 16-bit RGB(A) PNGs and TIFFs are read at 8 bits, as Pillow
  decodes them, and so are 16-bit grey PNGs with alpha, which stay grey (``LA``);
- palette (``P``) images: expanded to RGB, or RGBA where the palette has transparency; written as
  RGB(A), because re-quantising an upscaled image to 256 colours would throw its detail away;
- an alpha channel (``RGBA``, ``LA``, ``PA``, palette transparency, a transparent colour or grey
  value, 16-bit grey included, which is then written back at 8 bits; a 16-bit colour PNG's
  transparent colour is not carried, with a note in ``read_warnings``): kept apart as ``alpha`` uint8
  [H, W]. It is upscaled on its own with Pillow's bicubic filter (:func:`resize_alpha`), not by the
  SR models, which were trained on photographs, not masks;
- EXIF orientation is applied on reading, so the pixels are upright and the written file needs no
  orientation tag; an ICC colour profile is carried through to formats that store one;
- the rest of the EXIF (camera, dates, GPS...) and the DPI are carried too, where the output format
  holds them (see :mod:`mmsr.image_metadata` for exactly what); :meth:`ImageData.without_metadata`
  drops them.

Writes go through :mod:`mmsr.atomic`: a reader sees the old file or the new one, never a partial one.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "grey.png"
    >>> write_image(path, ImageData(rgb=torch.zeros(3, 4, 5, dtype=torch.uint8), grayscale=True))
    >>> read_image(path).rgb.shape, read_image(path).grayscale
    (torch.Size([3, 4, 5]), True)
"""
from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from ._checks import check_int
from .atomic import write_atomically
from .image_metadata import DPI_FORMATS, EXIF_FORMATS, JPEG_MAX_EXIF_BYTES, exif_for_output, read_metadata

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY",
    "alpha_supported",
    "check_output_size",
    "exif_fits",
    "EXTENSIONS",
    "ImageData",
    "ImageTooLargeError",
    "read_image",
    "resize_alpha",
    "resize_pixels",
    "without_path",
    "write_image",
]

#: Default limit on an input's pixel count (width x height). At x4 a 50 MP input becomes an 800 MP
#: output: 2.4 GB as 8-bit RGB, held once as a tensor and once more by Pillow while it encodes.
DEFAULT_MAX_PIXELS = 50_000_000

#: File extensions read and written, lower case, with their Pillow format names.
EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")  # Pillow writes JPEG and BMP without alpha
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
DEFAULT_QUALITY = 95  # JPEG/WebP: visually lossless, about half the size of quality 100
_WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
_U16_MAX = 65535.0
# The widest or tallest image each format can hold. The encoders refuse a larger one only once the
# whole image is handed to them (libjpeg with a bare "broken data stream"), so callers ask first.
_MAX_EDGE = {"WEBP": 16383, "JPEG": 65500}


class ImageTooLargeError(ValueError):
    """An image whose pixel count exceeds the limit given to :func:`read_image`."""


@dataclass(frozen=True)
class ImageData:
    """An image as mmsr works on it, plus what is needed to write it back in kind.

    Attributes:
        rgb: Tensor[3, H, W], uint8 (8-bit files) or float32 in [0, 1] (16-bit files).
        alpha: Tensor[H, W] uint8 opacity, or None.
        grayscale: the file had one colour plane; write back the mean of the three channels.
        sixteen_bit: the file had 16 bits per sample; PNG and TIFF outputs keep 16 bits.
        icc_profile: the file's ICC colour profile bytes, or None (also when the profile's
            colour space is not the pixels', e.g. a CMYK profile of a CMYK file read as RGB).
        frames: how many frames the file holds; only the first is read.
        exif: the EXIF an upscaled copy carries (see :mod:`mmsr.image_metadata`), or None.
        dpi: the (x, y) resolution in dots per inch the file states, or None.
        metadata_warnings: what of the file's metadata could not be carried, and why.
        read_warnings: what of the file's pixels could not be read as stored, and why.

    Example:
        >>> ImageData(rgb=torch.zeros(3, 2, 2, dtype=torch.uint8)).size
        (2, 2)
    """

    rgb: torch.Tensor
    alpha: Optional[torch.Tensor] = None
    grayscale: bool = False
    sixteen_bit: bool = False
    icc_profile: Optional[bytes] = None
    frames: int = 1
    exif: Optional[bytes] = None
    dpi: Optional[tuple] = None
    metadata_warnings: tuple = ()
    read_warnings: tuple = ()

    @property
    def size(self) -> tuple:
        """(height, width) in pixels."""
        return tuple(self.rgb.shape[1:])

    def with_pixels(self, rgb: torch.Tensor, alpha: Optional[torch.Tensor]) -> "ImageData":
        """The same image kind (grayscale, bit depth, colour profile, EXIF, DPI) with new pixels."""
        return replace(self, rgb=rgb, alpha=alpha)

    def without_metadata(self) -> "ImageData":
        """The same image without its EXIF and DPI. The ICC profile stays: it says what the pixel
        values mean, and without it a colour-managed viewer would show other colours."""
        return replace(self, exif=None, dpi=None, metadata_warnings=())


def _format_for(path: Path) -> str:
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise ValueError(f"{path}: unsupported extension {path.suffix!r}; use one of {known}")
    return fmt


def _check_pixels(path: Path, width: int, height: int, max_pixels: Optional[int]) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{path}: {width}x{height} = {width * height:,} pixels exceeds the limit of {max_pixels:,} "
            "(raise it with --max-pixels, or max_pixels=, if the memory is there)"
        )


def _is_grey_with_alpha_16(im: Image.Image) -> bool:
    """Whether ``im`` (opened, not loaded) is a 16-bit grey PNG with alpha: Pillow decodes it as RGBA
    with three equal channels, which would make it a colour image, and the SR models, run on
    three channels apart, would give it colour fringes."""
    return im.format == "PNG" and im.mode == "RGBA" and any(tile[3] == "LA;16B" for tile in im.tile)


def _is_colour_16_with_key(im: Image.Image) -> bool:
    """Whether ``im`` (opened, not loaded) is a 16-bit colour PNG with a transparent colour (tRNS).
    Pillow decodes its pixels at 8 bits but keeps the 16-bit key, and then marks as transparent the
    8-bit pixels that equal the key's numbers: the wrong ones."""
    return (
        im.format == "PNG" and im.mode == "RGB" and isinstance(im.info.get("transparency"), tuple)
        and any(tile[3] == "RGB;16B" for tile in im.tile)
    )


def _transparent_value(values: np.ndarray, info: dict) -> Optional[torch.Tensor]:
    """The alpha plane of a 16-bit grey PNG whose tRNS chunk names one fully transparent value, or
    None. Pillow keeps that value aside in ``info`` instead of decoding it into an alpha channel."""
    key = info.get("transparency")
    if not isinstance(key, int) or isinstance(key, bool):
        return None
    return torch.from_numpy(np.where(values == key, 0, 255).astype(np.uint8))


def _plane_to_rgb(plane: np.ndarray) -> torch.Tensor:
    """A writable [H, W] array -> Tensor[3, H, W], the plane in every channel."""
    return torch.from_numpy(plane).unsqueeze(0).expand(3, -1, -1).contiguous()


def _profile_space(icc: Optional[bytes]) -> Optional[bytes]:
    """An ICC profile's data colour space (header bytes 16-20: b"RGB ", b"GRAY", b"CMYK", ...)."""
    return icc[16:20] if icc and len(icc) >= 20 else None


def _from_cmyk(im: Image.Image, icc: Optional[bytes]) -> Image.Image:
    """A CMYK image as RGB: through its own profile to sRGB where it has one (what a colour-managed
    viewer shows), else Pillow's plain formula."""
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # a broken profile or a Pillow without littlecms: the plain formula below
            pass
    return im.convert("RGB")


def _decode(im: Image.Image) -> ImageData:
    icc = im.info.get("icc_profile") or None
    if im.mode == "CMYK":
        im = _from_cmyk(im, icc)
        icc = None  # the pixels are sRGB now; a CMYK profile would mislabel them
    if im.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(im).astype(np.float32)
        if im.mode == "I" and values.size and (values.max() > _U16_MAX or values.min() < 0):
            raise ValueError(
                f"32-bit integer pixels from {values.min():.0f} to {values.max():.0f} are outside 16 bits; "
                "mmsr reads 8- and 16-bit images"
            )
        grey = torch.from_numpy(np.clip(values / _U16_MAX, 0.0, 1.0))
        icc = icc if _profile_space(icc) == b"GRAY" else None
        return ImageData(
            rgb=grey.unsqueeze(0).expand(3, -1, -1).contiguous(), alpha=_transparent_value(values, im.info),
            grayscale=True, sixteen_bit=True, icc_profile=icc,
        )
    if im.mode == "F":
        raise ValueError("32-bit floating-point images (mode F) are not supported: their value range is unknown")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "1":
        im = im.convert("L")
    grayscale = im.mode in ("L", "LA", "La")
    alpha = None
    if im.mode in _WITH_ALPHA or "transparency" in im.info:
        rgba = im.convert("LA" if grayscale else "RGBA")
        alpha = torch.from_numpy(np.array(rgba.getchannel("A")))
        im = rgba.convert("L" if grayscale else "RGB")
    if grayscale:
        icc = icc if _profile_space(icc) == b"GRAY" else None
        return ImageData(rgb=_plane_to_rgb(np.array(im)), alpha=alpha, grayscale=True, icc_profile=icc)
    if im.mode not in ("RGB", "RGBA"):
        icc = None  # e.g. LAB or YCbCr converted below: the file's profile no longer describes the pixels
    pixels = np.array(im.convert("RGB"))  # [H, W, 3]
    rgb = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    icc = icc if _profile_space(icc) in (None, b"RGB ") else None
    return ImageData(rgb=rgb, alpha=alpha, icc_profile=icc)


def read_image(
    path: Union[str, os.PathLike], max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, metadata: bool = True
) -> ImageData:
    """Decode an image file into an RGB tensor (see the module docstring for each kind of file).

    Args:
        path: a PNG, JPEG, WebP, TIFF or BMP file (the content decides, not the extension).
        max_pixels: refuse images with more than this many pixels, checked on the header before
            decoding; None for no limit.
        metadata: read the EXIF and DPI to carry (see :mod:`mmsr.image_metadata`); False leaves
            them out and skips their parsing. A malformed EXIF never fails the read: what cannot
            be carried is left out and said in ``metadata_warnings``.

    Returns:
        :class:`ImageData` with ``rgb`` uint8 [3, H, W] (float32 in [0, 1] for 16-bit files).

    Raises:
        ImageTooLargeError: over ``max_pixels``.
        OSError, ValueError: a missing, unreadable, truncated or unsupported file; the message
            names the file.

    Example:
        >>> read_image("photo.png").rgb.dtype  # doctest: +SKIP
        torch.uint8
    """
    path = Path(path)
    if max_pixels is not None:
        max_pixels = check_int(max_pixels, "max_pixels", 1)
    with warnings.catch_warnings():
        # mmsr applies its own, documented limit below; Pillow's bomb warning would only repeat it.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            # A file object, not the path: Pillow maps an uncompressed TIFF from a named file into
            # memory at its upright size, which scrambles the pixels of one turned 90 degrees by its
            # orientation tag (a grey, 16-bit or RGBA scan); a file object is read, never mapped.
            with open(str(path), "rb") as file, _open_unlimited(file) as im:
                _check_pixels(path, im.width, im.height, max_pixels)
                frames = getattr(im, "n_frames", 1)
                grey_with_alpha = _is_grey_with_alpha_16(im)  # before loading, which clears im.tile
                colour_key_16 = _is_colour_16_with_key(im)
                if metadata:
                    # Before loading: Pillow turns a TIFF upright while loading it, then drops its EXIF.
                    found, _ = read_metadata(im)
                else:
                    # Pillow's warnings about a corrupt EXIF concern metadata that is not used here.
                    warnings.simplefilter("ignore", UserWarning)
                im.load()
                upright = ImageOps.exif_transpose(im)
                if grey_with_alpha:
                    upright = upright.convert("LA")  # exact: the three channels are equal
                read_warnings = ()
                if colour_key_16:
                    # Only the 16-bit samples, which Pillow does not give, can say which pixels the key
                    # names; at 8 bits other colours collide with it. Opaque, and said, not a wrong mask.
                    upright.info.pop("transparency", None)
                    read_warnings = ("its transparent colour (a 16-bit colour PNG's tRNS) is not carried: "
                                     "Pillow reads the pixels at 8 bits; the result is opaque",)
                decoded = replace(_decode(upright), frames=frames, read_warnings=read_warnings)
                if not metadata:
                    return decoded
                return replace(decoded, exif=found.exif, dpi=found.dpi, metadata_warnings=tuple(found.warnings))
        except ImageTooLargeError:
            raise
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None
        except (OSError, SyntaxError, EOFError, TypeError) as err:
            # TypeError: Pillow's answer to some malformed TIFF directories ("Missing dimensions").
            raise OSError(f"{path}: cannot read image ({_unnamed(str(err), path)})") from None
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


# Pillow refuses images past its own "decompression bomb" limit (~179 MP) while opening, before
# mmsr's max_pixels check could run; the limit is lifted for the open only (the header is read,
# nothing decoded), under a lock because it is a global of Pillow's.
_PILLOW_LIMIT_LOCK = threading.Lock()


def _open_unlimited(file) -> Image.Image:
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(file)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _unnamed(message: str, path: Path) -> str:
    """Pillow's message without the file it names (the file object read_image opened, or the quoted
    path): read_image's message starts with the path already.

    Example:
        >>> _unnamed("cannot identify image file <_io.BufferedReader name='a.png'>", Path("a.png"))
        'cannot identify image file'
    """
    for name in (f"<_io.BufferedReader name={str(path)!r}>", repr(str(path))):
        message = message.replace(" " + name, "").replace(name, "")
    return message


def without_path(message: str, path: Union[str, os.PathLike]) -> str:
    """An error message about ``path`` without the path, for a line that names the file already:
    drops the leading ``PATH: `` that :func:`read_image` adds and the quoted path decoders embed.

    Example:
        >>> without_path("a/b.png: cannot read image (cannot identify image file 'a/b.png')", "a/b.png")
        'cannot read image (cannot identify image file)'
    """
    path = Path(path)
    for prefix in (str(path), repr(str(path))):
        if message.startswith(prefix + ": "):
            message = message[len(prefix) + 2 :]
            break
    for quoted in {repr(str(path)), repr(str(path.resolve()))}:
        message = message.replace(" " + quoted, "")
    return message


def resize_alpha(alpha: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resample an alpha plane to ``height`` x ``width`` with Pillow's bicubic filter.

    Args:
        alpha: uint8 Tensor[H, W] on the CPU.
        height, width: the new size, each >= 1.

    Returns:
        uint8 Tensor[height, width].

    Example:
        >>> resize_alpha(torch.full((2, 3), 255, dtype=torch.uint8), 8, 12).shape
        torch.Size([8, 12])
    """
    if alpha.dtype != torch.uint8 or alpha.dim() != 2:
        raise ValueError(f"alpha should be a uint8 [H, W] tensor, got {alpha.dtype} {tuple(alpha.shape)}")
    plane = Image.fromarray(alpha.cpu().numpy()).resize((width, height), Image.BICUBIC)
    return torch.from_numpy(np.array(plane))


def resize_pixels(rgb: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resample [3, H, W] pixels to ``height`` x ``width`` with Pillow's Lanczos filter, which
    low-passes first when it shrinks (so a x4 result brought to x2 does not alias).

    Args:
        rgb: Tensor[3, H, W] on the CPU, uint8 or float in [0, 1] (16-bit files).
        height, width: the new size, each >= 1.

    Returns:
        Tensor[3, height, width] of ``rgb``'s dtype (float results clamped to [0, 1]).

    Example:
        >>> resize_pixels(torch.zeros(3, 8, 12, dtype=torch.uint8), 4, 6).shape
        torch.Size([3, 4, 6])
    """
    if rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb should be a [3, H, W] tensor, got shape {tuple(rgb.shape)}")
    if rgb.dtype == torch.uint8:
        im = Image.fromarray(np.ascontiguousarray(rgb.cpu().numpy().transpose(1, 2, 0)))
        return torch.from_numpy(np.array(im.resize((width, height), Image.LANCZOS))).permute(2, 0, 1).contiguous()
    planes = [
        np.array(Image.fromarray(plane).resize((width, height), Image.LANCZOS))
        for plane in rgb.float().cpu().numpy()
    ]
    return torch.from_numpy(np.stack(planes)).clamp_(0, 1).to(rgb.dtype)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    if x.dtype == torch.uint8:
        return x.cpu().numpy()
    return (x.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _to_pil(image: ImageData, fmt: str) -> Image.Image:
    rgb = image.rgb
    if not isinstance(rgb, torch.Tensor) or rgb.dim() != 3 or rgb.shape[0] != 3:
        shape = tuple(rgb.shape) if isinstance(rgb, torch.Tensor) else type(rgb).__name__
        raise ValueError(f"rgb should be a [3, H, W] tensor, got {shape}")
    if rgb.dtype != torch.uint8 and not rgb.is_floating_point():
        # Other integers would be read as floats in [0, 1] and saturate: 0-255 int32 comes out white.
        raise TypeError(f"rgb must be uint8, or float in [0, 1], got {rgb.dtype}")
    alpha = image.alpha
    if alpha is not None and (
        not isinstance(alpha, torch.Tensor) or alpha.dtype != torch.uint8 or tuple(alpha.shape) != tuple(rgb.shape[1:])
    ):
        got = f"{alpha.dtype} {tuple(alpha.shape)}" if isinstance(alpha, torch.Tensor) else type(alpha).__name__
        raise ValueError(f"alpha should be a uint8 [H, W] tensor of rgb's size {tuple(rgb.shape[1:])}, got {got}")
    if image.grayscale:
        grey = rgb.float().mean(0) if rgb.dtype != torch.uint8 else rgb.float().mean(0) / 255
        if image.sixteen_bit and fmt in _SIXTEEN_BIT_FORMATS and image.alpha is None:
            values = (grey.clamp(0, 1) * _U16_MAX).round().to(torch.int32).cpu().numpy().astype(np.uint16)
            return Image.fromarray(values)  # uint16 [H, W] -> mode I;16
        im = Image.fromarray(_to_uint8(grey))
    else:
        im = Image.fromarray(np.ascontiguousarray(_to_uint8(rgb).transpose(1, 2, 0)))
    if image.alpha is not None and fmt in _ALPHA_FORMATS:
        im.putalpha(Image.fromarray(image.alpha.cpu().numpy()))
    return im


def write_image(path: Union[str, os.PathLike], image: ImageData, quality: int = DEFAULT_QUALITY) -> None:
    """Encode ``image`` in the format named by ``path``'s extension and write it atomically.

    PNG, WebP and TIFF keep the alpha channel; JPEG and BMP cannot hold one, so it is dropped (the
    CLI warns first). A 16-bit grayscale image stays 16 bits in PNG and TIFF. The ICC profile, EXIF
    and DPI are written where the format holds them.

    Args:
        path: destination; its directory must exist. An existing file is replaced only once the
            new one is complete.
        image: the pixels (``rgb`` uint8, or float in [0, 1], [3, H, W]) and their kind.
        quality: JPEG and WebP quality, 1-100 (default 95: visually lossless, about half the size
            of 100); other formats are lossless and ignore it.

    Raises:
        ValueError: an unsupported extension, a malformed tensor, an image too large for the
            format (:func:`check_output_size` tells beforehand), or EXIF over a JPEG's 64 KB
            (:func:`exif_fits` tells beforehand).
        OSError: the file cannot be written.

    Example:
        >>> write_image("out.webp", ImageData(rgb=torch.zeros(3, 8, 8, dtype=torch.uint8)))  # doctest: +SKIP
    """
    path = Path(path)
    fmt = _format_for(path)
    if isinstance(image.rgb, torch.Tensor) and image.rgb.dim() == 3:
        check_output_size(path, *image.rgb.shape[1:])
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int from 1 to 100, got {quality!r}")
    im = _to_pil(image, fmt)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if image.icc_profile and fmt != "BMP" and not (fmt == "WEBP" and _profile_space(image.icc_profile) == b"GRAY"):
        # WebP has no grey pixels (Pillow stores grey as RGB), which a GRAY profile cannot describe.
        options["icc_profile"] = image.icc_profile
    if image.exif is not None and fmt in EXIF_FORMATS:
        options["exif"] = exif_for_output(image.exif, im.width, im.height)
        if fmt == "JPEG" and len(options["exif"]) > JPEG_MAX_EXIF_BYTES:
            raise ValueError(
                f"{path}: its EXIF ({len(options['exif'])} bytes) is over the {JPEG_MAX_EXIF_BYTES} a JPEG holds; "
                "write it without (ImageData.without_metadata(), mmsr upscale --strip-metadata) or to PNG, WebP or TIFF"
            )
    if image.dpi is not None and fmt in DPI_FORMATS:
        options["dpi"] = image.dpi
    write_atomically(path, lambda f: im.save(f, format=fmt, **options))


def check_output_size(path: Union[str, os.PathLike], height: int, width: int) -> None:
    """Raise ValueError, naming ``path``, where its format cannot hold a ``height`` x ``width``
    image: a WebP is at most 16383 pixels a side and a JPEG 65500 (PNG, TIFF and BMP have no such
    limit at sizes mmsr reaches). Ask before upscaling: the encoder only fails once the result exists.

    Example:
        >>> check_output_size("out.webp", 12000, 20000)
        Traceback (most recent call last):
        ...
        ValueError: out.webp: a WebP image is at most 16383 pixels wide and high, and this one is 20000x12000; write PNG or TIFF, or upscale less (--outscale)
    """
    fmt = _format_for(Path(path))
    limit = _MAX_EDGE.get(fmt)
    if limit is not None and max(height, width) > limit:
        name = "WebP" if fmt == "WEBP" else fmt
        raise ValueError(
            f"{path}: a {name} image is at most {limit} pixels wide and high, and this one is {width}x{height}; "
            "write PNG or TIFF, or upscale less (--outscale)"
        )


def exif_fits(path: Union[str, os.PathLike], image: ImageData, height: int, width: int) -> bool:
    """Whether ``image``'s EXIF, at an output size of ``height`` x ``width``, fits the format
    named by ``path`` (a JPEG holds at most 64 KB of it; formats without EXIF drop it anyway).

    Example:
        >>> exif_fits("out.jpg", ImageData(rgb=torch.zeros(3, 2, 2, dtype=torch.uint8)), 8, 8)
        True
    """
    if image.exif is None or _format_for(Path(path)) != "JPEG":
        return True
    return len(exif_for_output(image.exif, width, height)) <= JPEG_MAX_EXIF_BYTES


def alpha_supported(path: Union[str, os.PathLike]) -> bool:
    """Whether the format named by ``path``'s extension stores an alpha channel.

    Example:
        >>> alpha_supported("x.png"), alpha_supported("x.jpg")
        (True, False)
    """
    return _format_for(Path(path)) in _ALPHA_FORMATS
