"""The EXIF and resolution (DPI) of an input image, kept so that its upscaled copy carries them.

What is kept, and why:

- **EXIF:** the descriptive tags of the main directory (camera make and model, date, artist,
  copyright, description, software), the Exif directory (exposure, lens, dates...) and the GPS
  directory, with text kept byte for byte (EXIF text is often UTF-8 or Latin-1, not ASCII).
  Left out:
  - the orientation tag: mmsr writes the pixels upright, so the tag would turn them again;
  - a TIFF's structural tags (sizes, strips, compression...), which describe the old file;
  - the thumbnail, the maker note and directory pointers, which hold byte offsets into the old
    file that do not survive being rewritten;
  - a tag whose value cannot be written back (a malformed field): it is named in
    :attr:`Metadata.warnings` and the rest is kept.

  The Exif directory's pixel dimensions (if it has them) are set to the output's size. XMP, IPTC
  and PNG text chunks are not carried.
- **DPI:** only where the file states one (a TIFF or EXIF resolution in inches or centimetres, a
  JPEG's JFIF density, a PNG's pHYs, a BMP's header), kept as it was, so that the upscaled image
  prints ``scale`` times larger at the same resolution (as image editors do when they resample).
  A rotating EXIF orientation swaps its two values, as it swaps width and height.

JPEG, PNG, WebP and TIFF outputs hold EXIF (a JPEG at most 64 KB of it); JPEG, PNG, TIFF and BMP
hold DPI.

Example:
    >>> exif = Image.Exif()
    >>> exif[MAKE] = "Canon"
    >>> exif[ORIENTATION] = 6
    >>> kept, warnings = carried_exif(exif)
    >>> loaded = Image.Exif()
    >>> loaded.load(kept)
    >>> dict(loaded), warnings
    ({271: 'Canon'}, [])
"""
from __future__ import annotations

import math
import warnings as python_warnings
from dataclasses import dataclass, field
from typing import Optional

from PIL import ExifTags, Image

__all__ = [
    "DPI_FORMATS",
    "EXIF_FORMATS",
    "JPEG_MAX_EXIF_BYTES",
    "Metadata",
    "carried_dpi",
    "carried_exif",
    "exif_for_output",
    "read_metadata",
]

EXIF_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
DPI_FORMATS = ("JPEG", "PNG", "TIFF", "BMP")
JPEG_MAX_EXIF_BYTES = 65533  # one APP1 marker segment, as Pillow's JPEG writer allows

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
_X_RESOLUTION, _Y_RESOLUTION, _RESOLUTION_UNIT = 0x011A, 0x011B, 0x0128
_INCH, _CENTIMETRE = 2, 3  # ResolutionUnit values; 1 means "no unit"
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
# Values that are byte offsets into the old file: sub-directory pointers and the maker note.
_NOT_CARRIED = (0x014A, _EXIF_IFD, _GPS_IFD, 0xA005, 0x927C)
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003  # the Exif directory's PixelXDimension / PixelYDimension
_ROTATING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees


@dataclass
class Metadata:
    """What :func:`read_metadata` found: the EXIF to carry, the DPI, and what it had to leave out."""

    exif: Optional[bytes] = None
    dpi: Optional[tuple] = None
    warnings: list = field(default_factory=list)


def _tag_name(tag: int, names: dict) -> str:
    return f"{names.get(tag, 'tag')} (0x{tag:04X})"


def _as_written(value):
    # Pillow reads EXIF text as Latin-1 and writes str back as ASCII, turning every other byte into
    # "?"; bytes are written as they are. So text that is not ASCII goes back as its original bytes.
    if isinstance(value, str) and not value.isascii():
        return value.encode("latin-1", "replace")
    return value


def _writable(ifd: Optional[int], tag: int, value) -> bool:
    trial = Image.Exif()
    try:
        if ifd is None:
            trial[tag] = value
        else:
            trial.get_ifd(ifd)[tag] = value
        trial.tobytes()
        return True
    except Exception:  # Pillow raises many kinds (TypeError, AttributeError, struct.error...) for bad values
        return False


def carried_exif(exif: Image.Exif) -> tuple[Optional[bytes], list]:
    """The part of ``exif`` an upscaled copy should carry (see the module docstring), as bytes, or
    None when nothing is left; and a warning for each tag left out because it cannot be written."""
    warnings: list = []
    main = {}
    for tag in _DESCRIPTIVE_TAGS:
        if tag in exif:
            value = _as_written(exif[tag])
            if _writable(None, tag, value):
                main[tag] = value
            else:
                warnings.append(f"EXIF {_tag_name(tag, ExifTags.TAGS)} is malformed and not carried")
    directories = {}
    for ifd, names, what in ((_EXIF_IFD, ExifTags.TAGS, "Exif"), (_GPS_IFD, ExifTags.GPSTAGS, "GPS")):
        if ifd not in exif:
            continue
        try:
            entries = dict(exif.get_ifd(ifd))
        except Exception as err:
            warnings.append(f"the EXIF {what} directory cannot be read ({err}); not carried")
            continue
        for tag, value in entries.items():
            if tag in _NOT_CARRIED:
                continue
            value = _as_written(value)
            if _writable(ifd, tag, value):
                directories.setdefault(ifd, {})[tag] = value
            else:
                warnings.append(f"EXIF {what} {_tag_name(tag, names)} is malformed and not carried")
    if not main and not directories:
        return None, warnings
    kept = Image.Exif()
    for tag, value in main.items():
        kept[tag] = value
    for ifd, entries in directories.items():  # only directories with entries: an empty one is invalid
        kept.get_ifd(ifd).update(entries)
    return kept.tobytes(), warnings


def _positive_pair(x, y, factor: float = 1.0) -> Optional[tuple[float, float]]:
    try:
        pair = (float(x) * factor, float(y) * factor)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return pair if all(math.isfinite(v) and v > 0 for v in pair) else None


def _from_resolution_tags(tags) -> Optional[tuple[float, float]]:
    unit = tags.get(_RESOLUTION_UNIT)
    if unit not in (_INCH, _CENTIMETRE):
        return None  # no unit: Pillow would read the TIFF default of 1 as 1 DPI
    return _positive_pair(tags.get(_X_RESOLUTION), tags.get(_Y_RESOLUTION), 2.54 if unit == _CENTIMETRE else 1.0)


def carried_dpi(im: Image.Image, exif: Image.Exif, orientation: int) -> Optional[tuple[float, float]]:
    """The (x, y) DPI ``im``'s file states, turned with its orientation; None where it states none.

    Pillow's ``info["dpi"]`` is not used for JPEG and TIFF: it reports 72 for a JPEG whose EXIF has
    no resolution and 1 for a TIFF without a resolution unit, which no file stated."""
    if im.format == "TIFF":
        dpi = _from_resolution_tags(im.tag_v2)
    elif im.format in ("JPEG", "MPO"):
        unit = im.info.get("jfif_unit")
        if unit in (1, 2) and "jfif_density" in im.info:
            dpi = _positive_pair(*im.info["jfif_density"], 2.54 if unit == 2 else 1.0)
        else:
            dpi = _from_resolution_tags(exif)
    else:
        stated = im.info.get("dpi")
        dpi = _positive_pair(*stated) if isinstance(stated, tuple) and len(stated) == 2 else None
    if dpi is None:
        return None
    return (dpi[1], dpi[0]) if orientation in _ROTATING_ORIENTATIONS else dpi


def read_metadata(im: Image.Image) -> tuple[Metadata, int]:
    """(the EXIF and DPI to carry from an opened, not yet loaded image, its EXIF orientation).

    Never raises: an unreadable EXIF is left out with a warning, and Pillow's own warnings about it
    become :attr:`Metadata.warnings`, so that the caller can name the file."""
    found = Metadata()
    orientation = 1
    with python_warnings.catch_warnings(record=True) as caught:
        python_warnings.simplefilter("always")
        try:
            exif = im.getexif()
        except Exception as err:
            exif = Image.Exif()
            found.warnings.append(f"its EXIF cannot be read ({err}); not carried")
        try:
            value = exif.get(ORIENTATION, 1)
            orientation = value if isinstance(value, int) else 1
            found.exif, dropped = carried_exif(exif)
            found.warnings += dropped
        except Exception as err:
            found.exif = None
            found.warnings.append(f"its EXIF cannot be carried ({err}); left out")
        try:
            found.dpi = carried_dpi(im, exif, orientation)
        except Exception:
            found.dpi = None
    found.warnings += [f"Pillow: {w.message}" for w in caught]
    return found, orientation


def exif_for_output(exif: bytes, width: int, height: int) -> bytes:
    """``exif`` (from :func:`carried_exif`) with its pixel dimensions, if it has them, set to
    ``width`` x ``height``."""
    loaded = Image.Exif()
    loaded.load(exif)
    for tag in list(loaded):
        if tag not in (_EXIF_IFD, _GPS_IFD):
            loaded[tag] = _as_written(loaded[tag])  # loading turned text back into Latin-1 str
    for ifd in (_EXIF_IFD, _GPS_IFD):
        if ifd in loaded:  # get_ifd would otherwise add an empty directory
            entries = loaded.get_ifd(ifd)
            for tag in list(entries):
                entries[tag] = _as_written(entries[tag])
            if ifd == _EXIF_IFD and (_PIXEL_X in entries or _PIXEL_Y in entries):
                entries[_PIXEL_X], entries[_PIXEL_Y] = width, height
    return loaded.tobytes()
