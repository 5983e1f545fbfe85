"""Safe media decoding: untrusted bytes in, displayed pixels or a `MediaError` out.

`sniff` names a format from its magic bytes; `decode_image` decodes the first frame with
that format's decoder only, under byte and pixel limits, with EXIF orientation applied.
"""

from lightkeeper.media.decode import (
    DEFAULT_LIMITS,
    MIN_REDUCED_SIDE,
    DecodedImage,
    MediaLimits,
    choose_scale,
    decode_image,
)
from lightkeeper.media.sniff import FORMATS, IMAGE_FORMATS, FormatInfo, describe, sniff

__all__ = [
    "DEFAULT_LIMITS",
    "FORMATS",
    "IMAGE_FORMATS",
    "MIN_REDUCED_SIDE",
    "DecodedImage",
    "FormatInfo",
    "MediaLimits",
    "choose_scale",
    "decode_image",
    "describe",
    "sniff",
]
