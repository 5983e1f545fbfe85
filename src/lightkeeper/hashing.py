"""Hash a photo with every registered signal type: the library face of hashing.

The CLI (``lightkeeper hash``) and the HTTP service are thin layers over `hash_bytes` and
`hash_file`; they turn the `LightkeeperError`s raised here into messages and exit or status
codes. Nothing here knows the built-in signal types by name: every `ImageSignalType` and
every `BytesSignalType` found by the registry contributes its values, so a plug-in (a
licensed PhotoDNA, SHA-512) appears in the output without a change to this module.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from lightkeeper.errors import InputError, MediaTooLarge
from lightkeeper.media.decode import DEFAULT_LIMITS, DecodedImage, MediaLimits, decode_image
from lightkeeper.signals.base import DIHEDRAL_NAMES
from lightkeeper.signals.exact import HexDigestSignal, hex_digests
from lightkeeper.signals.registry import bytes_signal_types, image_signal_types

#: Read this much at a time from a file that grew after its size was taken.
_GROWTH_CHUNK = 1024 * 1024


def hash_bytes(
    data: bytes, *, dihedral: bool = False, limits: MediaLimits = DEFAULT_LIMITS
) -> dict[str, object]:
    """Every signal of an image, and what was decoded, as a JSON-ready dict.

    Keys, in this order: for each image signal type (``pdq``) its value and, where the
    algorithm has one, ``<name>_quality``; each bytes signal type's value (``md5``, ``sha1``,
    ``sha256``); ``format``, ``width``, ``height`` (displayed, after EXIF orientation); then
    only when they say something: ``exif_orientation`` (when not 1) with ``<name>_as_stored``
    (the hash of the pixels as stored, ignoring the orientation, as reference hashers that
    ignore EXIF computed it for hash lists), ``frames`` (when more
    than 1), ``<name>_dihedral`` (with `dihedral`: variant name to value, in the order of
    `DIHEDRAL_NAMES`) and ``warnings`` (human-readable strings, e.g. a PDQ quality below the
    matching floor, or an animation of which only the first frame was hashed).

    Raises a `MediaError` subclass when `data` is not an image that can be decoded within
    `limits`; `bytes_signals` still gives the exact hashes of such data.
    """
    return hash_decoded(decode_image(data, limits=limits), data, dihedral=dihedral)


def hash_decoded(image: DecodedImage, data: bytes, *, dihedral: bool = False) -> dict[str, object]:
    """`hash_bytes` of `data` already decoded as `image` (by `decode_image`, whose fast path
    the hashes of every bank are computed from)."""
    result: dict[str, object] = {}
    variants: dict[str, object] = {}
    as_stored: dict[str, object] = {}
    warnings: list[str] = []
    for signal_type in image_signal_types():
        name = signal_type.name
        signal = signal_type.from_image(image, dihedral=dihedral)
        result[name] = signal.value
        if signal.quality is not None:
            result[f"{name}_quality"] = signal.quality
            floor = signal_type.default_quality_floor
            if signal.quality < floor:
                warnings.append(
                    f"{name} quality {signal.quality} is below {floor}: "
                    "low quality, not used for matching"
                )
        if signal.as_stored is not None:
            as_stored[f"{name}_as_stored"] = signal.as_stored
        if dihedral and signal.dihedral is not None:
            variants[f"{name}_dihedral"] = dict(zip(DIHEDRAL_NAMES, signal.dihedral, strict=True))
    result.update(bytes_signals(data))
    result["format"] = image.format
    result["width"] = image.width
    result["height"] = image.height
    if image.orientation != 1:
        result["exif_orientation"] = image.orientation
        result.update(as_stored)
    if image.frames > 1:
        result["frames"] = image.frames
        warnings.append(f"{image.frames} frames or pages: only the first was hashed")
    result.update(variants)
    if warnings:
        result["warnings"] = warnings
    return result


def hash_file(
    path: str | os.PathLike[str],
    *,
    dihedral: bool = False,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> dict[str, object]:
    """`hash_bytes` of a file's content; see `read_file` for the errors reading can raise."""
    return hash_bytes(read_file(path, limits=limits), dihedral=dihedral, limits=limits)


def bytes_signals(data: bytes) -> dict[str, str]:
    """The value of every bytes signal type (``md5``, ``sha1``, ``sha256`` …) for any data.

    Exact hash lists cover videos and documents too, so callers report these even for data
    that `hash_bytes` refuses.
    """
    signal_types = bytes_signal_types()
    digests = hex_digests(data, [t for t in signal_types if isinstance(t, HexDigestSignal)])
    return {
        t.name: digests[t.name] if t.name in digests else t.from_bytes(data) for t in signal_types
    }


def read_file(path: str | os.PathLike[str], *, limits: MediaLimits = DEFAULT_LIMITS) -> bytes:
    """The content of a regular file, refused before reading when over `limits.max_bytes`.

    Raises `InputError` when the path cannot be read (missing, permission denied, a
    directory, a FIFO or device) and `MediaTooLarge` when the file is too large. Messages
    do not repeat the path: the caller shows it beside them.
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError("no such file or directory") from None
    except PermissionError:
        raise InputError("permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError("is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise InputError("not a regular file (a FIFO, socket or device)")
        _check_size(info.st_size, limits)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        try:
            return _read_bounded(file, info.st_size, limits)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}") from None


def _check_size(size: int, limits: MediaLimits) -> None:
    if size > limits.max_bytes:
        raise MediaTooLarge(
            f"the file is {size:,} bytes, over the limit of {limits.max_bytes:,} bytes"
        )


def _read_bounded(file: BinaryIO, expected: int, limits: MediaLimits) -> bytes:
    """Read `expected` bytes, and whatever the file grew by since, up to the byte limit."""
    data = file.read(expected)
    more = file.read(1)
    if not more:
        return data
    parts = [data, more]
    total = len(data) + 1
    while chunk := file.read(_GROWTH_CHUNK):
        parts.append(chunk)
        total += len(chunk)
        _check_size(total, limits)
    _check_size(total, limits)
    return b"".join(parts)
