"""The transform suite: the edits an upload goes through between a listed original and the
copy a platform sees, each a pure, seeded function ``(image, rng) -> image``.

A transform never modifies its input and draws every random choice (which edge to crop,
the sign of a rotation, where a sticker goes, the noise) from the NumPy Generator it is
given; `transform_rng` derives that Generator from the run's seed, the photo set, the
photo's index and the transform's id, so a run is reproducible photo by photo and a
transform added later does not change the copies of the others.

Families (strengths in brackets; why each is there):

- ``none`` [none]: the original itself. A sanity check: every method must give 0.
- ``resize`` [0.25x, 0.5x, 0.75x, 1.5x, 2x]: Lanczos down, bicubic up. Every platform
  rescales uploads; 0.25x is the thumbnail case.
- ``aspect`` [w0.75, w1.33]: width alone scaled, the picture squeezed or stretched, as
  when a photo is forced into a fixed box.
- ``jpeg`` [q10, q20, q30, q50, q75, q95] and ``webp`` [q10, q30, q50, q75]: one
  re-encoding at that quality (Pillow's encoders: JPEG with 4:2:0 chroma, WebP at effort
  `WEBP_METHOD`): what every upload pipeline and messenger does.
- ``recompress`` [jpeg85x5, jpeg-webp-jpeg, social]: chains of re-encodings: five JPEG
  q85 generations; JPEG q80 -> WebP q60 -> JPEG q50; and 0.5x then JPEG q70, as a
  forwarded photo goes through several services.
- ``crop-centre`` [2%, 5%, 10%, 20%, 40%]: that share of the width and of the height cut
  away, half from each side (40% keeps the central 36% of the area).
- ``crop-edge`` [2%, 5%, 10%, 20%, 40%]: that share of the width or of the height cut from
  one side chosen at random. Cropping is the commonest way around PDQ, whose hash
  describes the whole frame.
- ``border`` [5%, 10%, 25%, letterbox]: a solid border of random colour, its width that
  share of the shorter side, on all four sides; letterbox pads to a square with black.
  Reposting apps and memes frame photos this way.
- ``rotate`` [1, 2, 5, 10, 15 degrees]: rotation by that angle either way (random sign),
  bilinear, same canvas, corners black: a straightened or tilted re-photograph.
- ``dihedral`` [rotate90, rotate180, rotate270, mirror, flip, transpose, transverse]:
  the seven rotations and flips; plain PDQ misses these, its eight variants catch them.
- ``greyscale`` [L]: luma only, as filters and some forums do.
- ``brightness`` [-40%, -20%, -10%, +10%, +20%, +40%], ``contrast`` [0.7x, 1.3x],
  ``gamma`` [0.7, 1.5]: global tone edits (Pillow's ImageEnhance, a gamma lookup table).
- ``blur`` [s0.2%, s0.5%, s1%]: Gaussian blur whose radius is that share of the shorter
  side (1, 2.6 and 5 px at 512 px); the first two are "mild". ``sharpen`` [light, strong]:
  unsharp mask of radius 0.5% of the shorter side at 100% and 250%.
- ``noise`` [s10, s25]: Gaussian noise of that standard deviation (of 255) per pixel
  and channel, as from a re-photographed screen or a noise filter.
- ``text`` [2%, 5%, 10%, 20%]: a caption in Pillow's default font, white with a black
  outline, whose bounding box covers that share of the picture, placed at random.
- ``watermark`` [5%, 10%, 25%]: translucent (40% opacity) white text covering that share.
- ``sticker`` [2%, 5%, 10%, 20%]: one opaque shape (an emoji-like disc or a rectangle, random
  colour and place) covering that share of the picture.
- ``screenshot`` [phone, phone-feed, desktop, desktop-thumb]: the photo scaled into a
  larger canvas with UI-like bars, text lines and other content: full width on a 720 x
  1560 phone screen; at 85% width in a social feed; in a 1440 x 900 desktop window at
  60% of its height; as one of four thumbnails in a row (at most 255 x 270 px), the
  others other pictures. PDQ of the whole screenshot describes the screen, not the photo.

Every family has a `Family` entry in `FAMILIES` with these texts; `describe_suite` puts
them in the evaluation's JSON, and docs/accuracy.md repeats them.
"""

from __future__ import annotations

import functools
import io
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

__all__ = [
    "FAMILIES",
    "Family",
    "Transform",
    "TransformFunction",
    "describe_suite",
    "standard_suite",
    "transform_rng",
]

TransformFunction = Callable[[Image.Image, np.random.Generator], Image.Image]


@dataclass(frozen=True)
class Family:
    """A kind of edit: what it does, the strengths in the suite, and why it is measured."""

    name: str
    what: str
    why: str


@dataclass(frozen=True)
class Transform:
    """One edit at one strength. `apply` is a module-level function (or a partial of one),
    so that a suite can be sent to worker processes."""

    family: str
    strength: str
    apply: TransformFunction

    @property
    def id(self) -> str:
        return f"{self.family}/{self.strength}"


FAMILIES: Final[dict[str, Family]] = {
    f.name: f
    for f in (
        Family("none", "the original itself", "sanity check: the distance must be 0"),
        Family("resize", "uniform rescale, Lanczos down, bicubic up", "every platform rescales"),
        Family("aspect", "width alone rescaled", "photos forced into a fixed box"),
        Family("jpeg", "one JPEG re-encoding at that quality", "every upload pipeline"),
        Family("webp", "one WebP re-encoding at that quality", "web and messenger pipelines"),
        Family(
            "recompress",
            "chains of re-encodings (and a downscale)",
            "a photo forwarded through several services",
        ),
        Family(
            "crop-centre",
            "that share of width and height cut away, half from each side",
            "cropping is the commonest way around PDQ",
        ),
        Family(
            "crop-edge",
            "that share of the width or height cut from one random side",
            "cropping is the commonest way around PDQ",
        ),
        Family(
            "border",
            "solid border (share of the shorter side), or letterbox to a square",
            "reposting apps and memes frame photos",
        ),
        Family(
            "rotate",
            "small rotation either way, same canvas, black corners",
            "tilted or straightened re-photographs",
        ),
        Family(
            "dihedral",
            "90/180/270 degree rotations and flips",
            "plain PDQ misses them; its eight variants catch them",
        ),
        Family("greyscale", "luma only", "filters and forums drop colour"),
        Family("brightness", "brightness scaled by 1 + strength", "tone edits"),
        Family("contrast", "contrast scaled by the factor", "tone edits"),
        Family("gamma", "gamma curve with that exponent", "tone edits, camera profiles"),
        Family(
            "blur",
            "Gaussian blur, radius a share of the shorter side",
            "soft focus, privacy blurs, upscaled thumbnails",
        ),
        Family("sharpen", "unsharp mask at 100% or 250%", "phone and editor sharpening"),
        Family(
            "noise",
            "Gaussian noise of that std. deviation (of 255)",
            "noise filters, re-photographs",
        ),
        Family("text", "opaque caption covering that share", "memes and captions"),
        Family("watermark", "40% opaque text covering that share", "reposters' watermarks"),
        Family("sticker", "one opaque shape covering that share", "stickers and emoji over photos"),
        Family(
            "screenshot",
            "the photo scaled into a phone or desktop screen with UI around it",
            "screenshots are how photos move between apps",
        ),
    )
}


def transform_rng(
    seed: int, set_name: str, photo_index: int, transform_id: str
) -> np.random.Generator:
    """The Generator of one transform of one photo: independent of every other transform,
    photo and set, and the same on every run with the same seed (CRC-32, not Python's
    per-process randomised `hash`, turns the names into numbers)."""
    entropy = [seed, zlib.crc32(set_name.encode()), photo_index, zlib.crc32(transform_id.encode())]
    return np.random.default_rng(np.random.SeedSequence(entropy))


# -- geometry ---------------------------------------------------------------------------


def _identity(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image


def _resample(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    size = (max(1, size[0]), max(1, size[1]))
    shrinking = size[0] * size[1] < image.width * image.height
    method = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    return image.resize(size, method, reducing_gap=3.0 if shrinking else None)


def _resize(image: Image.Image, rng: np.random.Generator, *, factor: float) -> Image.Image:
    return _resample(image, (round(image.width * factor), round(image.height * factor)))


def _aspect(image: Image.Image, rng: np.random.Generator, *, width_factor: float) -> Image.Image:
    return _resample(image, (round(image.width * width_factor), image.height))


def _crop_centre(image: Image.Image, rng: np.random.Generator, *, fraction: float) -> Image.Image:
    dx, dy = round(image.width * fraction / 2), round(image.height * fraction / 2)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _crop_edge(image: Image.Image, rng: np.random.Generator, *, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    side = int(rng.integers(4))
    box = ((dx, 0, w, h), (0, 0, w - dx, h), (0, dy, w, h), (0, 0, w, h - dy))[side]
    return image.crop(box)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(0, 256, size=3))
    return (r, g, b)


def _border(image: Image.Image, rng: np.random.Generator, *, fraction: float) -> Image.Image:
    pad = max(1, round(min(image.size) * fraction))
    canvas = Image.new("RGB", (image.width + 2 * pad, image.height + 2 * pad), _random_colour(rng))
    canvas.paste(image, (pad, pad))
    return canvas


def _letterbox(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = max(image.size)
    canvas = Image.new("RGB", (side, side), (0, 0, 0))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def _rotate(image: Image.Image, rng: np.random.Generator, *, degrees: float) -> Image.Image:
    angle = degrees if rng.integers(2) else -degrees
    return image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))


def _transpose(
    image: Image.Image, rng: np.random.Generator, *, method: Image.Transpose
) -> Image.Image:
    return image.transpose(method)


# -- encodings ----------------------------------------------------------------------------


#: libwebp's effort (0-6; Pillow's default is 4): 1 encodes about three times faster, and
#: moved PDQ distances by about half a bit on average on corpus photos (q10 to q95).
WEBP_METHOD: Final = 1


def _encode(image: Image.Image, fmt: str, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    options = {"method": WEBP_METHOD} if fmt == "WEBP" else {}
    image.save(buffer, fmt, quality=quality, **options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def _jpeg(image: Image.Image, rng: np.random.Generator, *, quality: int) -> Image.Image:
    return _encode(image, "JPEG", quality)


def _webp(image: Image.Image, rng: np.random.Generator, *, quality: int) -> Image.Image:
    return _encode(image, "WEBP", quality)


def _chain(
    image: Image.Image, rng: np.random.Generator, *, steps: tuple[tuple[str, float], ...]
) -> Image.Image:
    """Steps ("JPEG" | "WEBP", quality) re-encode; ("scale", factor) rescales."""
    for kind, value in steps:
        if kind == "scale":
            image = _resize(image, rng, factor=value)
        else:
            image = _encode(image, kind, int(value))
    return image


# -- tone and filters ---------------------------------------------------------------------


def _greyscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.convert("L").convert("RGB")


def _brightness(image: Image.Image, rng: np.random.Generator, *, change: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.0 + change)


def _contrast(image: Image.Image, rng: np.random.Generator, *, factor: float) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(factor)


def _gamma(image: Image.Image, rng: np.random.Generator, *, gamma: float) -> Image.Image:
    table = [round(255 * (v / 255) ** gamma) for v in range(256)]
    return image.point(table * 3)


def _blur(image: Image.Image, rng: np.random.Generator, *, fraction: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=min(image.size) * fraction))


def _sharpen(image: Image.Image, rng: np.random.Generator, *, percent: int) -> Image.Image:
    radius = max(1.0, min(image.size) * 0.005)
    return image.filter(ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=0))


def _noise(image: Image.Image, rng: np.random.Generator, *, sigma: float) -> Image.Image:
    noisy = rng.standard_normal((image.height, image.width, 3), dtype=np.float32)
    noisy *= sigma
    noisy += np.asarray(image, dtype=np.float32)
    np.clip(noisy, 0, 255, out=noisy)
    return Image.fromarray(np.rint(noisy, out=noisy).astype(np.uint8))


# -- overlays -----------------------------------------------------------------------------

_CAPTIONS: Final = (
    "when the weekend finally arrives",
    "throwback to last summer",
    "nobody: absolutely nobody: me",
    "best day ever with the crew",
    "this view though",
    "monday mood",
    "found this in my camera roll",
    "shared from a friend",
)

_WATERMARKS: Final = ("@lightkeeper_sample", "© sample photo agency", "repost.example.net")

_MEASURE: Final = ImageDraw.Draw(Image.new("L", (1, 1)))


@functools.lru_cache(maxsize=128)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _stroke(size: int, outlined: bool) -> int:
    return max(1, size // 14) if outlined else 0


def _text_box(text: str, size: int, outlined: bool) -> tuple[float, float, float, float]:
    left, top, right, bottom = _MEASURE.multiline_textbbox(
        (0, 0), text, font=_font(size), stroke_width=_stroke(size, outlined), align="center"
    )
    return float(left), float(top), float(right), float(bottom)


def _lines(words: Sequence[str], count: int) -> str:
    per_line = max(1, math.ceil(len(words) / count))
    return "\n".join(" ".join(words[i : i + per_line]) for i in range(0, len(words), per_line))


def _fit_text(
    phrase: str, width: int, height: int, coverage: float, outlined: bool
) -> tuple[str, int, tuple[float, float, float, float]]:
    """The phrase broken into as few lines as fit the width, and the font size whose
    bounding box covers `coverage` of a `width` x `height` picture."""
    target = coverage * width * height
    words = phrase.split()
    best: tuple[str, int, tuple[float, float, float, float]] | None = None
    for count in range(1, len(words) + 1):
        text = _lines(words, count)
        left, top, right, bottom = _text_box(text, 100, outlined)
        size = max(6, round(100 * math.sqrt(target / max((right - left) * (bottom - top), 1.0))))
        box = _text_box(text, size, outlined)
        best = (text, size, box)
        if box[2] - box[0] <= 0.96 * width and box[3] - box[1] <= 0.96 * height:
            break
    assert best is not None
    return best


def _place(rng: np.random.Generator, free: float) -> float:
    return float(rng.uniform(0, max(free, 0.0)))


def _draw_text(
    image: Image.Image,
    rng: np.random.Generator,
    phrase: str,
    coverage: float,
    *,
    opacity: float,
    outlined: bool,
) -> Image.Image:
    text, size, (left, top, right, bottom) = _fit_text(
        phrase, image.width, image.height, coverage, outlined
    )
    x = _place(rng, image.width - (right - left)) - left
    y = _place(rng, image.height - (bottom - top)) - top
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    alpha = round(255 * opacity)
    ImageDraw.Draw(layer).multiline_text(
        (x, y),
        text,
        font=_font(size),
        fill=(255, 255, 255, alpha),
        stroke_width=_stroke(size, outlined),
        stroke_fill=(0, 0, 0, alpha),
        align="center",
    )
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def _text(image: Image.Image, rng: np.random.Generator, *, coverage: float) -> Image.Image:
    phrase = _CAPTIONS[int(rng.integers(len(_CAPTIONS)))].upper()
    return _draw_text(image, rng, phrase, coverage, opacity=1.0, outlined=True)


def _watermark(image: Image.Image, rng: np.random.Generator, *, coverage: float) -> Image.Image:
    phrase = _WATERMARKS[int(rng.integers(len(_WATERMARKS)))]
    return _draw_text(image, rng, phrase, coverage, opacity=0.4, outlined=False)


def _sticker(image: Image.Image, rng: np.random.Generator, *, coverage: float) -> Image.Image:
    w, h = image.size
    disc = bool(rng.integers(2))
    aspect = float(rng.uniform(0.75, 1.33))
    area = coverage * w * h * (4 / math.pi if disc else 1.0)  # of the bounding box
    box_w = min(float(w), math.sqrt(area * aspect))
    box_h = min(float(h), area / box_w)
    x0, y0 = _place(rng, w - box_w), _place(rng, h - box_h)
    out = image.copy()
    draw = ImageDraw.Draw(out)
    colour = _random_colour(rng)
    if disc:
        draw.ellipse((x0, y0, x0 + box_w, y0 + box_h), fill=colour)
        # An emoji-like face: eyes and mouth inside the disc, so the covered area is unchanged.
        ink = tuple(255 - c for c in colour)
        for cx in (0.35, 0.65):
            draw.ellipse(
                (
                    x0 + box_w * (cx - 0.06),
                    y0 + box_h * 0.3,
                    x0 + box_w * (cx + 0.06),
                    y0 + box_h * 0.45,
                ),
                fill=ink,
            )
        draw.arc(
            (x0 + box_w * 0.28, y0 + box_h * 0.4, x0 + box_w * 0.72, y0 + box_h * 0.78),
            20,
            160,
            fill=ink,
            width=max(1, round(box_h * 0.05)),
        )
    else:
        draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=colour)
    return out


# -- screenshots --------------------------------------------------------------------------


def _fit(image: Image.Image, max_w: float, max_h: float) -> Image.Image:
    scale = min(max_w / image.width, max_h / image.height)
    return _resample(image, (round(image.width * scale), round(image.height * scale)))


def _text_bars(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    box: tuple[float, float, float, float],
    ink: tuple[int, int, int],
    line: float,
) -> None:
    """Grey bars of random length where a UI would show lines of text."""
    x0, y0, x1, y1 = box
    y = y0
    while y + line <= y1:
        length = float(rng.uniform(0.4, 1.0)) * (x1 - x0)
        draw.rounded_rectangle((x0, y, x0 + length, y + line * 0.6), radius=line * 0.2, fill=ink)
        y += line


def _screenshot(image: Image.Image, rng: np.random.Generator, *, layout: str) -> Image.Image:
    dark = bool(rng.integers(2))
    background = (18, 18, 18) if dark else (250, 250, 250)
    chrome = (40, 40, 44) if dark else (235, 235, 238)
    ink = (90, 90, 95) if dark else (190, 190, 195)
    if layout in ("phone", "phone-feed"):
        canvas = Image.new("RGB", (720, 1560), background)
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((0, 0, 720, 48), fill=(0, 0, 0))  # status bar
        draw.rectangle((0, 48, 720, 150), fill=chrome)  # app header
        _text_bars(draw, rng, (120, 80, 420, 130), ink, 40)
        draw.rectangle((0, 1460, 720, 1560), fill=chrome)  # navigation bar
        for i in range(5):
            draw.ellipse((52 + i * 136, 1485, 102 + i * 136, 1535), fill=ink)
        if layout == "phone":
            photo = _fit(image, 720, 1000)
            top = 170
            canvas.paste(photo, ((720 - photo.width) // 2, top))
        else:
            draw.ellipse((40, 175, 110, 245), fill=_random_colour(rng))  # avatar
            _text_bars(draw, rng, (130, 185, 500, 245), ink, 30)
            photo = _fit(image, 612, 820)
            top = 265
            canvas.paste(photo, ((720 - photo.width) // 2, top))
        below = top + photo.height + 20
        _text_bars(draw, rng, (54, below, 666, min(below + 200, 1440)), ink, 36)
        if below + 230 < 1440:  # the next post's picture, partly scrolled in
            draw.rectangle((54, below + 230, 666, 1440), fill=_random_colour(rng))
        return canvas
    canvas = Image.new("RGB", (1440, 900), background)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, 1440, 36), fill=chrome)  # title bar
    for i, colour in enumerate(((237, 106, 94), (245, 191, 79), (97, 197, 84))):
        draw.ellipse((14 + 22 * i, 11, 28 + 22 * i, 25), fill=colour)
    draw.rectangle((0, 36, 1440, 84), fill=chrome)  # address bar
    draw.rounded_rectangle((200, 46, 1240, 74), radius=12, fill=background)
    draw.rectangle((0, 84, 260, 900), fill=chrome)  # sidebar
    _text_bars(draw, rng, (24, 110, 236, 880), ink, 34)
    if layout == "desktop":
        photo = _fit(image, 1440 * 0.6, 900 * 0.6)
        left, top = 300, 120
        canvas.paste(photo, (left, top))
        _text_bars(draw, rng, (left + photo.width + 40, top, 1400, 860), ink, 30)
        _text_bars(draw, rng, (left, top + photo.height + 30, left + photo.width, 860), ink, 30)
        return canvas
    # A gallery or chat: the photo as one of four thumbnails in a row, the others other
    # pictures, text below.
    tile = (1400 - 300) / 4
    photo = _fit(image, tile - 20, 900 * 0.3)
    slot, top = int(rng.integers(4)), 120
    for i in range(4):
        x = round(300 + i * tile)
        if i == slot:
            canvas.paste(photo, (x, top))
        else:
            box = (x, top, x + round(tile) - 20, top + photo.height)
            draw.rectangle(box, fill=_random_colour(rng))
    _text_bars(draw, rng, (300, top + photo.height + 40, 1400, 860), ink, 30)
    return canvas


# -- the suite ----------------------------------------------------------------------------


def _t(
    family: str, strength: str, function: Callable[..., Image.Image], **params: Any
) -> Transform:
    apply = functools.partial(function, **params) if params else function
    return Transform(family, strength, apply)


def standard_suite() -> tuple[Transform, ...]:
    """The documented suite (see the module docstring): 80 copies of each photo."""
    suite: list[Transform] = [_t("none", "none", _identity)]
    suite += [_t("resize", f"{f:g}x", _resize, factor=f) for f in (0.25, 0.5, 0.75, 1.5, 2.0)]
    suite += [_t("aspect", f"w{f:g}", _aspect, width_factor=f) for f in (0.75, 1.33)]
    suite += [_t("jpeg", f"q{q}", _jpeg, quality=q) for q in (10, 20, 30, 50, 75, 95)]
    suite += [_t("webp", f"q{q}", _webp, quality=q) for q in (10, 30, 50, 75)]
    chains: dict[str, tuple[tuple[str, float], ...]] = {
        "jpeg85x5": (("JPEG", 85),) * 5,
        "jpeg-webp-jpeg": (("JPEG", 80), ("WEBP", 60), ("JPEG", 50)),
        "social": (("scale", 0.5), ("JPEG", 70)),
    }
    suite += [_t("recompress", name, _chain, steps=steps) for name, steps in chains.items()]
    for family, function in (("crop-centre", _crop_centre), ("crop-edge", _crop_edge)):
        suite += [_t(family, f"{p}%", function, fraction=p / 100) for p in (2, 5, 10, 20, 40)]
    suite += [_t("border", f"{p}%", _border, fraction=p / 100) for p in (5, 10, 25)]
    suite.append(_t("border", "letterbox", _letterbox))
    suite += [_t("rotate", f"{d}deg", _rotate, degrees=d) for d in (1, 2, 5, 10, 15)]
    dihedral = {
        "rotate90": Image.Transpose.ROTATE_90,
        "rotate180": Image.Transpose.ROTATE_180,
        "rotate270": Image.Transpose.ROTATE_270,
        "mirror": Image.Transpose.FLIP_LEFT_RIGHT,
        "flip": Image.Transpose.FLIP_TOP_BOTTOM,
        "transpose": Image.Transpose.TRANSPOSE,
        "transverse": Image.Transpose.TRANSVERSE,
    }
    suite += [_t("dihedral", name, _transpose, method=m) for name, m in dihedral.items()]
    suite.append(_t("greyscale", "L", _greyscale))
    suite += [
        _t("brightness", f"{c:+d}%", _brightness, change=c / 100)
        for c in (-40, -20, -10, 10, 20, 40)
    ]
    suite += [_t("contrast", f"{f:g}x", _contrast, factor=f) for f in (0.7, 1.3)]
    suite += [_t("gamma", f"{g:g}", _gamma, gamma=g) for g in (0.7, 1.5)]
    suite += [_t("blur", f"s{p:g}%", _blur, fraction=p / 100) for p in (0.2, 0.5, 1.0)]
    suite += [_t("sharpen", n, _sharpen, percent=p) for n, p in (("light", 100), ("strong", 250))]
    suite += [_t("noise", f"s{s}", _noise, sigma=float(s)) for s in (10, 25)]
    suite += [_t("text", f"{p}%", _text, coverage=p / 100) for p in (2, 5, 10, 20)]
    suite += [_t("watermark", f"{p}%", _watermark, coverage=p / 100) for p in (5, 10, 25)]
    suite += [_t("sticker", f"{p}%", _sticker, coverage=p / 100) for p in (2, 5, 10, 20)]
    suite += [
        _t("screenshot", layout, _screenshot, layout=layout)
        for layout in ("phone", "phone-feed", "desktop", "desktop-thumb")
    ]
    return tuple(suite)


def describe_suite(suite: Sequence[Transform]) -> dict[str, Any]:
    """The suite as JSON: each family's texts and its strengths, in suite order."""
    families: dict[str, dict[str, Any]] = {}
    for transform in suite:
        known = FAMILIES.get(transform.family)
        entry = families.setdefault(
            transform.family,
            {
                "what": known.what if known else "",
                "why": known.why if known else "",
                "strengths": [],
            },
        )
        entry["strengths"].append(transform.strength)
    return families
