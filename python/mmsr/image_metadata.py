"""The EXIF and resolution (DPI) of an input image, kept so that its upscaled copy carries them.

What is kept, and why:

- **EXIF:** the descriptive tags of the main directory (camera make and model, date, artist,
  copyright, description, software), the whole Exif directory (exposure, lens, dates...) and the GPS
  directory. Left out:
  - the orientation tag: mmsr writes the pixels upright, so the tag would turn them again;
  - a TIFF's structural tags (sizes, strips, compression...), which describe the old file;
  - the thumbnail, the maker note and the interoperability directory pointer, which hold byte
    offsets into the old file that do not survive being rewritten.

  The Exif directory's pixel dimensions (if it has them) are set to the output's size.
- **DPI:** kept as it was, so that the upscaled image prints ``scale`` times larger at the same
  resolution (as image editors do when they resample). A rotating EXIF orientation swaps its two
  values, as it swaps width and height.

JPEG, PNG, WebP and TIFF outputs hold EXIF; JPEG, PNG, TIFF and BMP hold DPI.

Example:
    >>> from PIL import Image
    >>> exif = Image.Exif()
    >>> exif[MAKE] = "Canon"
    >>> exif[ORIENTATION] = 6
    >>> kept = Image.Exif()
    >>> kept.load(carried_exif(exif))
    >>> dict(kept)
    {271: 'Canon'}
"""
from __future__ import annotations

import math
from typing import Optional

from PIL import Image

__all__ = ["EXIF_FORMATS", "DPI_FORMATS", "carried_dpi", "carried_exif", "exif_for_output"]

EXIF_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
DPI_FORMATS = ("JPEG", "PNG", "TIFF", "BMP")

ORIENTATION = 0x0112
MAKE = 0x010F
_DESCRIPTIVE_TAGS = (
    0x010E,  # ImageDescription
    MAKE,
    0x0110,  # Model
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x8298,  # Copyright
)
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKER_NOTE = 0x927C
_INTEROP_IFD = 0xA005
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003  # the Exif directory's PixelXDimension / PixelYDimension
_ROTATING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees


def carried_exif(exif: Image.Exif) -> Optional[bytes]:
    """The part of ``exif`` an upscaled copy should carry (see the module docstring), as bytes;
    None when nothing is left."""
    kept = Image.Exif()
    for tag in _DESCRIPTIVE_TAGS:
        if tag in exif:
            kept[tag] = exif[tag]
    details = {t: v for t, v in exif.get_ifd(_EXIF_IFD).items() if t not in (_MAKER_NOTE, _INTEROP_IFD)}
    if details:
        kept.get_ifd(_EXIF_IFD).update(details)
    gps = dict(exif.get_ifd(_GPS_IFD))
    if gps:
        kept.get_ifd(_GPS_IFD).update(gps)
    if not len(kept) and not details and not gps:
        return None
    return kept.tobytes()


def carried_dpi(info: dict, orientation: int) -> Optional[tuple[float, float]]:
    """The (x, y) DPI an upscaled copy should carry, from Pillow's ``info``; None when the file
    states none (or a zero, negative or non-finite one)."""
    dpi = info.get("dpi")
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v > 0 for v in (x, y)):
        return None
    return (y, x) if orientation in _ROTATING_ORIENTATIONS else (x, y)


def exif_for_output(exif: bytes, width: int, height: int) -> bytes:
    """``exif`` (from :func:`carried_exif`) with its pixel dimensions, if it has them, set to
    ``width`` x ``height``."""
    loaded = Image.Exif()
    loaded.load(exif)
    details = loaded.get_ifd(_EXIF_IFD)
    if _PIXEL_X in details or _PIXEL_Y in details:
        details[_PIXEL_X], details[_PIXEL_Y] = width, height
    return loaded.tobytes()
