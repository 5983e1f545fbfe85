"""Region codes at both ends of matching.

- `banked_image`: what a bank with regions on keeps for an image a curator adds: its
  signals (as `lightkeeper.hashing.hash_bytes` names them) and the PDQ of its 14 crop
  windows (`lightkeeper.signals.regions.reference_regions`) and 16 tiles (`tile_regions`),
  for `BankStore.add_entry`.
- `upload_codes`: what an upload is looked up with when an enabled bank has regions on: its
  signals and the PDQ of its own crop windows (`query_windows`, 21), of its tiles (16) and
  of the photos found inside it when it is a screenshot (`content_regions`, up to 4).

The signals (the whole image's PDQ, the exact hashes) come from `hash_bytes`, exactly as
when no bank has regions on: switching regions on for one bank must not change the hash any
other bank is matched with, not even by the few bits between the fast path's reduced plane
and full-resolution pixels (`lightkeeper.media.decode`). Regions need colour pixels at full
resolution, which that fast path does not keep, so the image is decoded a second time for
them (about 10 ms for a 1 MP JPEG, beside 20-60 ms for the windows' hashes). Images over
`REGION_MAX_PIXELS` get no region codes (their RGB alone would take hundreds of megabytes per
request); their size is read from the header, before any pixel is decoded.

Upload codes are computed whatever their quality (`RegionCode.quality`): the matcher judges
each against the quality floor of the bank it meets. Banked codes under the bank's floor are
dropped, as the whole image's PDQ is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from lightkeeper.banks.records import EntryRegion
from lightkeeper.errors import MediaTooLarge
from lightkeeper.hashing import hash_bytes
from lightkeeper.media.decode import DEFAULT_LIMITS, DecodedImage, MediaLimits, decode_image
from lightkeeper.signals.regions import RegionCode, RegionHasher

__all__ = ["REGION_MAX_PIXELS", "banked_image", "upload_codes"]

#: Largest image (in pixels) whose region codes are computed: 50 megapixels, 150 MB of RGB.
REGION_MAX_PIXELS: Final = 50_000_000


def upload_codes(
    data: bytes, *, dihedral: bool = False, limits: MediaLimits = DEFAULT_LIMITS
) -> tuple[dict[str, object], list[RegionCode]]:
    """An upload's signals (`hash_bytes`'s dict) and its region codes: crop windows first,
    then content regions. Raises `MediaError` as `hash_bytes` does."""
    signals = hash_bytes(data, dihedral=dihedral, limits=limits)
    image = _full_resolution(data, limits)
    if image is None or image.rgb is None:
        return signals, []
    return signals, RegionHasher(quality_floor=0).query(image.rgb)


def banked_image(
    data: bytes, *, quality_floor: int, limits: MediaLimits = DEFAULT_LIMITS
) -> tuple[dict[str, object], list[EntryRegion]]:
    """An image's signals (`hash_bytes`'s dict) and the region codes a bank with regions on
    keeps for it: its crop windows of at least `quality_floor` (the bank's PDQ floor).
    Raises `MediaError` as `hash_bytes` does."""
    signals = hash_bytes(data, limits=limits)
    image = _full_resolution(data, limits)
    if image is None or image.rgb is None:
        return signals, []
    codes = RegionHasher(quality_floor=quality_floor).reference(image.rgb)
    return signals, [EntryRegion(code.name, code.value, code.quality) for code in codes]


def _full_resolution(data: bytes, limits: MediaLimits) -> DecodedImage | None:
    """The image as full-resolution RGB; None when it is larger than `REGION_MAX_PIXELS`
    but within `limits` (known from its header, before decoding)."""
    capped = replace(limits, max_pixels=min(limits.max_pixels, REGION_MAX_PIXELS))
    try:
        return decode_image(data, limits=capped, reduce=False)
    except MediaTooLarge:
        if capped.max_pixels == limits.max_pixels:
            raise
        return None
