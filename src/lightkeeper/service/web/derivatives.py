"""The reviewer's default view of a file: a small, blurred, greyscale derivative.

Reviewing known abuse imagery harms the people who do it; industry wellness guidance (and
the issue) asks that a reviewer first sees the evidence and only a degraded picture, and
the clear image only when they choose to. The derivative is made here, on the server, so
that the clear pixels never reach the browser unless a person asked for them:

- decoded with `lightkeeper.media.decode` (one decoder per input, limits before work),
  which also applies the orientation a user would have seen;
- turned to greyscale (colour carries much of an image's impact), shrunk to at most
  `PREVIEW_SIDE` pixels on its longer side, then blurred with a Gaussian of radius
  `BLUR_RADIUS`: shapes and composition remain, for telling a blank frame from a photo,
  but no detail survives;
- encoded as an 8-bit greyscale PNG, in memory.

Nothing is cached: the derivative is made for each request and never written to disk, so
that no copy of quarantined content outlives the vault's retention and destruction (the
vault's "plaintext never touches disk" promise). The vault read that feeds it is logged
with actor ``system:derivative``; it is a system read, not a person viewing the file, and
does not count as one in reports (`lightkeeper.review.exposure.was_viewed` reads the
audit trail's ``review.reveal`` events only).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from lightkeeper.actions.vault import Vault
from lightkeeper.media.decode import DEFAULT_LIMITS, MediaLimits, decode_image

__all__ = [
    "BLUR_RADIUS",
    "DERIVATIVE_ACTOR",
    "DERIVATIVE_MEDIA_TYPE",
    "DERIVATIVE_REASON",
    "PREVIEW_SIDE",
    "blurred_preview",
    "preview_of_object",
]

#: Longest side of a preview, in pixels.
PREVIEW_SIDE = 160
#: Gaussian blur radius, in preview pixels: about a twentieth of the preview's side.
BLUR_RADIUS = 8.0
DERIVATIVE_MEDIA_TYPE = "image/png"
#: Who the vault's access log names for the reads that make previews.
DERIVATIVE_ACTOR = "system:derivative"
DERIVATIVE_REASON = "blurred preview"


def blurred_preview(data: bytes, *, limits: MediaLimits = DEFAULT_LIMITS) -> bytes:
    """A PNG of `data`'s first frame: greyscale, at most `PREVIEW_SIDE` px, heavily blurred.

    Raises the `MediaError` of `decode_image` for bytes that are not an image it decodes.
    """
    decoded = decode_image(data, limits=limits)
    if decoded.luma is not None:  # a large image, already reduced to a luma plane
        grey = Image.fromarray(np.clip(decoded.luma + 0.5, 0, 255).astype(np.uint8), "L")
    else:
        assert decoded.rgb is not None
        grey = Image.fromarray(decoded.rgb, "RGB").convert("L")
    grey.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BOX)
    blurred = grey.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    out = io.BytesIO()
    blurred.save(out, format="PNG", optimize=False)
    return out.getvalue()


def preview_of_object(
    vault: Vault, object_id: str, *, limits: MediaLimits = DEFAULT_LIMITS
) -> bytes:
    """The preview of one vault object (the read is logged as a system read, see above)."""
    data = vault.read(object_id, actor=DERIVATIVE_ACTOR, reason=DERIVATIVE_REASON)
    return blurred_preview(data, limits=limits)
