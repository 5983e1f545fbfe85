"""What the evaluation measures: a *method*, i.e. the codes a bank would hold for an original
and the codes an upload would be looked up with, and the distance between the two.

The contract, kept stable because other signals plug into the harness through it:

    class Method(Protocol):
        name: str            # "pdq", "pdq+dihedral", …; unique within a run
        signal_type: str     # "pdq": which bank threshold the distances are compared with
        def reference_codes(self, image) -> list[bytes]   # what a bank holds for an original
        def query_codes(self, image) -> list[bytes]       # what an upload is looked up with

Codes are 32 bytes (256 bits, compared by Hamming distance), and both lists must be
non-empty. The distance of a (reference, query) pair under a method is the smallest
Hamming distance over all (reference code, query code) pairs: a bank that stores several
codes per image, or a matcher that looks an upload up under several codes, matches when
any one pair is within the threshold. Images come in as RGB `PIL.Image.Image` (at most
``max_side`` pixels on a side, see `lightkeeper.evaluation.harness`) and must not be
modified. Methods run in worker processes, so an instance must be picklable (plain
attributes, no open files or locks).

A method whose matcher does not count every code pair implements `PairedMethod` as well:
its codes carry names, and `compatible(reference name, query name)` says which pairs count
(the region signal's crop windows only meet windows of the same family, as its matcher
does). The harness then measures it the way the product counts: the distance of a pair is
the smallest over the compatible code pairs only (`copy_distances` with `allowed`, and
`lightkeeper.evaluation.pairs.unrelated_pairs`), and the unrelated pairs also record the
smallest over every code pair (`pairwise_min_distances`), to show what pairing removes.
Its codes named ``"whole"`` or ``"whole:K"`` are the whole image's (and its rotations and
flips): the harness holds them to the copy's PDQ quality floor as the matcher does
(`is_whole_image`); the method itself drops any other code under the floor, as the region
signal does.

A new method is added to a run with ``run_evaluation(..., methods=[...])``, and to the
``lightkeeper eval --method NAME`` choices by one entry in `METHOD_FACTORIES`; factories
import their module lazily, so this module never imports the signals that plug into it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lightkeeper.signals.pdq import hash_pixels, hash_pixels_dihedral, hex_to_code

__all__ = [
    "CODE_BITS",
    "CODE_BYTES",
    "DEFAULT_METHODS",
    "FAR",
    "METHOD_FACTORIES",
    "Method",
    "PairedMethod",
    "PdqHash",
    "PdqMethod",
    "allowed_matrix",
    "code_signs",
    "codes_array",
    "copy_distances",
    "get_method",
    "is_whole_image",
    "pairwise_min_distances",
    "pdq_of",
]

CODE_BYTES: Final = 32
CODE_BITS: Final = 8 * CODE_BYTES


@runtime_checkable
class Method(Protocol):
    """A way of turning an original and an upload into codes; see the module docstring."""

    name: str
    signal_type: str

    def reference_codes(self, image: Image.Image) -> list[bytes]:
        """What a bank would hold for this original (one or more 32-byte codes)."""
        ...

    def query_codes(self, image: Image.Image) -> list[bytes]:
        """What an upload of this image would be looked up with (one or more codes)."""
        ...


@runtime_checkable
class PairedMethod(Method, Protocol):
    """A method whose matcher counts only some (reference code, query code) pairs; see the
    module docstring. `named_*_codes` give the same codes as `*_codes`, each with its name
    (in the same order, duplicates allowed when their names differ)."""

    def named_reference_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        """The reference codes, each with its name ("whole", "region:left-89" …)."""
        ...

    def named_query_codes(self, image: Image.Image) -> list[tuple[str, bytes]]:
        """The query codes, each with its name."""
        ...

    def compatible(self, reference: str, query: str) -> bool:
        """Whether the matcher counts a pair of a reference code and a query code so named."""
        ...


def is_whole_image(name: str) -> bool:
    """Whether a paired method's code so named is the whole image's ("whole", or "whole:K"
    for a rotation or flip of it), which the matcher looks up only when the upload's PDQ
    quality passes the floor."""
    return name == "whole" or name.startswith("whole:")


@dataclass(frozen=True)
class PdqHash:
    """PDQ of one image: the plain code, the eight dihedral variants, and the quality."""

    code: bytes
    variants: tuple[bytes, ...]
    quality: int


# The harness asks for PDQ of the same image several times in a row (its quality, then each
# method's codes); one luma pass and one DCT give the plain hash and all eight variants, so
# the last few results are kept, keyed by the image object itself (images are never
# modified once made, see the module docstring).
_RECENT: list[tuple[Image.Image, PdqHash]] = []
_RECENT_SIZE: Final = 2


def _rgb(image: Image.Image) -> NDArray[np.uint8]:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8)


def pdq_of(image: Image.Image) -> PdqHash:
    """PDQ (exact path) of an RGB image, with its eight variants and quality; memoised."""
    for seen, found in _RECENT:
        if seen is image:
            return found
    pixels = _rgb(image)
    variants, quality = hash_pixels_dihedral(pixels)
    plain = variants[0]
    if pixels.shape[:2] == (64, 64):  # the reference's one quirk; see hash_pixels_dihedral
        plain = hash_pixels(pixels)[0]
    found = PdqHash(hex_to_code(plain), tuple(hex_to_code(v) for v in variants), quality)
    _RECENT.insert(0, (image, found))
    del _RECENT[_RECENT_SIZE:]
    return found


class PdqMethod:
    """Plain PDQ: the bank holds the original's hash; an upload is looked up with its own
    hash, or with `dihedral` with the hashes of its eight rotations and flips (what a bank
    created with ``--dihedral`` does)."""

    signal_type = "pdq"

    def __init__(self, dihedral: bool = False) -> None:
        self.dihedral = dihedral
        self.name = "pdq+dihedral" if dihedral else "pdq"

    def reference_codes(self, image: Image.Image) -> list[bytes]:
        return [pdq_of(image).code]

    def query_codes(self, image: Image.Image) -> list[bytes]:
        found = pdq_of(image)
        return list(found.variants) if self.dihedral else [found.code]

    def __repr__(self) -> str:
        return f"PdqMethod(dihedral={self.dihedral})"


def _regions(*, dihedral: bool) -> Method:
    from lightkeeper.signals.regions import PdqRegionsMethod

    return PdqRegionsMethod(dihedral=dihedral)


def _tiles(*, dihedral: bool) -> Method:
    from lightkeeper.signals.regions import PdqTilesMethod

    return PdqTilesMethod(dihedral=dihedral)


def _content(*, dihedral: bool) -> Method:
    from lightkeeper.signals.regions import PdqContentMethod

    return PdqContentMethod(dihedral=dihedral)


#: The methods ``lightkeeper eval --method NAME`` knows, by name. Another signal adds one
#: entry whose factory imports its module when called, as the region methods do
#: (`lightkeeper.signals.regions`: "pdq+regions", a bank with regions on; "pdq+content",
#: the content finder alone, what a bank of bare hashes gains; "pdq+tiles", the grid of
#: tiles alone, for overlays).
METHOD_FACTORIES: dict[str, Callable[[], Method]] = {
    "pdq": lambda: PdqMethod(dihedral=False),
    "pdq+dihedral": lambda: PdqMethod(dihedral=True),
    "pdq+regions": lambda: _regions(dihedral=False),
    "pdq+regions+dihedral": lambda: _regions(dihedral=True),
    "pdq+content": lambda: _content(dihedral=False),
    "pdq+content+dihedral": lambda: _content(dihedral=True),
    "pdq+tiles": lambda: _tiles(dihedral=False),
    "pdq+tiles+dihedral": lambda: _tiles(dihedral=True),
}

#: What a run measures when no method is named.
DEFAULT_METHODS: Final[tuple[str, ...]] = ("pdq", "pdq+dihedral")


def get_method(name: str) -> Method:
    """A new instance of the method registered as `name`; ValueError names the known ones."""
    try:
        factory = METHOD_FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(METHOD_FACTORIES))
        raise ValueError(f"unknown evaluation method {name!r} (known: {known})") from None
    method = factory()
    if method.name != name:
        raise ValueError(f"method registered as {name!r} calls itself {method.name!r}")
    return method


def codes_array(codes: Sequence[bytes]) -> NDArray[np.uint8]:
    """Codes as a (count, 32) uint8 array; ValueError when empty or not 32 bytes each."""
    if not codes:
        raise ValueError("a method must give at least one code per image")
    for code in codes:
        if len(code) != CODE_BYTES:
            raise ValueError(f"a code has {CODE_BYTES} bytes, got {len(code)}")
    return np.frombuffer(b"".join(codes), dtype=np.uint8).reshape(len(codes), CODE_BYTES)


#: The distance of a code pair that does not count (`PairedMethod.compatible`): beyond any
#: threshold; histograms put it in the last bin, 256.
FAR: Final = CODE_BITS + 1


def allowed_matrix(
    method: PairedMethod,
    reference_names: Sequence[str],
    query_names: Sequence[str],
    cache: dict[tuple[str, str], bool] | None = None,
) -> NDArray[np.bool_]:
    """(len(reference_names), len(query_names)): which code pairs the method counts.
    `cache` keeps the answers of earlier calls (a run asks about the same few dozen names
    thousands of times)."""
    memo = cache if cache is not None else {}
    out = np.empty((len(reference_names), len(query_names)), dtype=np.bool_)
    for i, ref in enumerate(reference_names):
        for j, query in enumerate(query_names):
            key = (ref, query)
            found = memo.get(key)
            if found is None:
                found = memo[key] = bool(method.compatible(ref, query))
            out[i, j] = found
    return out


def copy_distances(
    reference: NDArray[np.uint8],
    queries: Sequence[NDArray[np.uint8]],
    allowed: NDArray[np.bool_] | None = None,
) -> NDArray[np.int16]:
    """For each query group, the smallest Hamming distance between any of its codes and any
    reference code: one original against all its copies, at a few codes each. With
    `allowed` (reference codes x all query codes, groups concatenated), only the pairs it
    allows count; a group with none is at `FAR`."""
    if not queries:
        return np.zeros(0, dtype=np.int16)
    stacked = np.concatenate(queries)
    ref64 = np.ascontiguousarray(reference).view(np.uint64)  # (k, 4)
    query64 = np.ascontiguousarray(stacked).view(np.uint64)  # (m, 4)
    bits = np.bitwise_count(ref64[:, None, :] ^ query64[None, :, :]).sum(axis=2)  # (k, m)
    if allowed is not None:
        if allowed.shape != bits.shape:
            raise ValueError(f"allowed has shape {allowed.shape}, the code pairs {bits.shape}")
        bits = np.where(allowed, bits, FAR)
    per_code = bits.min(axis=0)
    starts = np.cumsum([0] + [len(q) for q in queries[:-1]])
    return np.minimum.reduceat(per_code, starts).astype(np.int16)


#: Code-pair distances computed per block in `pairwise_min_distances` (float32 cells).
_BLOCK_CELLS: Final = 1 << 23


def code_signs(codes: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Codes as rows of ±1 (one per bit), so that a dot product gives their distance."""
    return np.unpackbits(codes, axis=1).astype(np.float32) * 2.0 - 1.0


def pairwise_min_distances(
    groups_a: Sequence[NDArray[np.uint8]],
    groups_b: Sequence[NDArray[np.uint8]],
) -> NDArray[np.int16]:
    """The (len(groups_a), len(groups_b)) matrix of smallest Hamming distances between any
    code of group i of `groups_a` and any code of group j of `groups_b`.

    All pairs of a photo set, at up to tens of codes per photo, are hundreds of millions
    of code pairs: the bits become ±1 vectors, so that a matrix product gives every
    dot product at once (distance = (256 - dot) / 2, exact in float32), computed in
    blocks of whole groups of `groups_a` to bound memory, and reduced to the minimum over
    each group pair with `np.minimum.reduceat`. (A paired method's compatible pairs only:
    `lightkeeper.evaluation.pairs.unrelated_pairs`.)
    """
    out = np.zeros((len(groups_a), len(groups_b)), dtype=np.int16)
    if not groups_a or not groups_b:
        return out
    b_signs = code_signs(np.concatenate(groups_b))
    b_starts = np.cumsum([0] + [len(g) for g in groups_b[:-1]])
    rows_per_block = max(1, _BLOCK_CELLS // len(b_signs))
    first = 0
    while first < len(groups_a):
        last, rows = first, 0
        while last < len(groups_a) and (rows == 0 or rows + len(groups_a[last]) <= rows_per_block):
            rows += len(groups_a[last])
            last += 1
        block = groups_a[first:last]
        dots = code_signs(np.concatenate(block)) @ b_signs.T
        distances = (CODE_BITS - dots) * 0.5
        per_b = np.minimum.reduceat(distances, b_starts, axis=1)
        a_starts = np.cumsum([0] + [len(g) for g in block[:-1]])
        out[first:last] = np.rint(np.minimum.reduceat(per_b, a_starts, axis=0))
        first = last
    return out
