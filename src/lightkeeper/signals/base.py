"""The signal-type interface: a named algorithm that turns content into a signal and compares two.

A signal type is a class with an explicit, stable `name` (never derived from the class name),
registered under the entry-point group ``lightkeeper.signal_types``. Built-ins are registered the
same way a plug-in is (see ``pyproject.toml``), so a licensed PhotoDNA or a learned descriptor
plugs in without touching this package.

Three families:

- `BytesSignalType`: computed from the raw bytes (MD5, SHA-1, SHA-256).
- `ImageSignalType`: computed from decoded pixels (PDQ).
- plain `SignalType`: values supplied from outside and only normalised and compared (URL).

Values travel as strings in a canonical form (`normalize` produces it), e.g. PDQ as the
reference's 64 lowercase hex digits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Literal

if TYPE_CHECKING:
    from lightkeeper.media.decode import DecodedImage

Comparison = Literal["hamming", "exact"]

#: The eight rotations and flips of an image, in the order of Meta's reference
#: (`pdqDihedralHash256esFromFloatLuma`). rotate90 turns the picture 90° counter-clockwise
#: (`numpy.rot90`), rotate270 clockwise; flipx mirrors it top to bottom, flipy left to right;
#: flip_plus1 transposes it, flip_minus1 mirrors it about the anti-diagonal.
DIHEDRAL_NAMES: Final[tuple[str, ...]] = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipx",
    "flipy",
    "flip_plus1",
    "flip_minus1",
)

#: For each EXIF orientation, the variant that turns the displayed picture back into the
#: pixels as stored in the file — what hashers that ignore EXIF (Meta's pdq-photo-hasher,
#: HMA) computed when they filled a hash list. Orientation 6 ("rotate 90° clockwise to
#: display") is undone by rotating 90° counter-clockwise, and so on.
STORED_VARIANT_BY_ORIENTATION: Final[dict[int, str]] = {
    1: "original",
    2: "flipy",
    3: "rotate180",
    4: "flipx",
    5: "flip_plus1",
    6: "rotate90",
    7: "flip_minus1",
    8: "rotate270",
}


class SignalType(ABC):
    """A named way of describing content, and of telling how close two descriptions are."""

    #: Stable public name, written out in each class (``"pdq"``, ``"md5"`` …).
    name: ClassVar[str]
    #: One line for ``--help`` texts and docs.
    description: ClassVar[str]
    #: "hamming": values are bit strings compared by Hamming distance (radius search);
    #: "exact": values match only when equal (hash-map lookup).
    comparison: ClassVar[Comparison]
    #: Bits in a value, for Hamming signals (PDQ: 256).
    bits: ClassVar[int] = 0
    #: Default per-bank match threshold (largest distance that matches); 0 for exact signals.
    default_threshold: ClassVar[int] = 0

    @abstractmethod
    def normalize(self, value: str) -> str:
        """Return the canonical form of `value`, or raise `InvalidSignal` saying what is wrong."""

    def distance(self, a: str, b: str) -> int:
        """Distance between two canonical values: Hamming bits, or 0/1 for exact signals."""
        if self.comparison == "exact":
            return 0 if a == b else 1
        return (int(a, 16) ^ int(b, 16)).bit_count()


class BytesSignalType(SignalType):
    """A signal computed from the raw bytes of any file."""

    @abstractmethod
    def from_bytes(self, data: bytes) -> str:
        """The canonical signal value of `data`."""


@dataclass(frozen=True)
class ImageSignal:
    """What an image signal type computes for one image."""

    value: str
    #: Quality in 0..100 where the algorithm has one (PDQ), else None.
    quality: int | None = None
    #: The eight rotation/flip variants when asked for, in `DIHEDRAL_NAMES` order.
    dihedral: tuple[str, ...] | None = None
    #: The value of the pixels as stored, ignoring EXIF orientation (what reference hashers
    #: put in hash lists); set only when the file's EXIF orientation is not 1.
    as_stored: str | None = None


class ImageSignalType(SignalType):
    """A signal computed from decoded pixels."""

    #: Below this quality a value is reported as low quality and not used for matching.
    default_quality_floor: ClassVar[int] = 0

    @abstractmethod
    def from_image(self, image: DecodedImage, *, dihedral: bool = False) -> ImageSignal:
        """Compute the signal of a decoded image (in its displayed orientation)."""
