"""Which copies a method is measured on: a `Scope` per method of a run.

Why. PDQ of one copy costs a few milliseconds, so every method of a run can be measured on
every edit of every photo (80 x 824 copies in minutes). A region signal looks each upload up
with some 30 codes, 21 crop windows and the content finder included: about 65 ms more per
copy (bench/results/regions.md), over an hour of CPU time for the whole suite on the whole
corpus. It only changes anything on the edits that move or hide part of the picture, so it
is measured there, and where that is still too slow for ``make eval``, on a fixed sample of
the photos:

- `Scope.families`: the transform families whose copies the method is measured on (None:
  all). The region methods default to `REGION_FAMILIES` (crops, borders and letterbox,
  screenshots, and the text, watermark and sticker overlays), see `DEFAULT_FAMILIES`.
- `Scope.sets`: the photo sets in which its copies are measured (None: all).
- `Scope.every`: 1 in `every` photos of a set: those whose index i (in the set's sorted
  order) has ``i % every == seed % every``, so that the sample is fixed by the run's seed,
  spread evenly over the set (whose files sort by package), and the same for every method.
- `Scope.set_every`: sets whose copies are made for 1 in K photos only, for every method of
  the run (`run_evaluation`'s ``copies_every``; ``--copies-every SET=K``): a set kept for its
  unrelated pairs (``make eval``'s astronomy set) need not pay for every copy of every photo.
  Where a method has its own sample too, a photo is measured when it is in both, which is
  1 in lcm(every, K) photos (both keep the index congruent to the seed).

A scope restricts **copies only**: every method's unrelated pairs (false matches) are always
measured on every photo of every set. The harness also measures the unrestricted methods
(plain PDQ) on the sampled copies, so that "PDQ alone" and "with the added signal" are
compared on the same copies (`RecallCurve.sample`).

On the command line a method is named ``NAME`` (its default scope), ``NAME:FAMILY,FAMILY``
(those families) or ``NAME:all`` (every family), and ``NAME@K`` gives it its own photo
sample, 1 in K (``@1``: every photo), instead of the run's; `parse_method_specs` reads that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from lightkeeper.evaluation.methods import METHOD_FACTORIES, Method, get_method
from lightkeeper.evaluation.transforms import FAMILIES

__all__ = [
    "DEFAULT_FAMILIES",
    "EVERYTHING",
    "OVERLAY_FAMILIES",
    "REGION_FAMILIES",
    "Scope",
    "parse_method_specs",
    "photo_sample",
]

#: Where a region signal can change anything: the crops (what its windows are for), borders
#: and letterbox and screenshots (what its content finder is for), and the overlays (a
#: sticker or caption near an edge falls outside some window of the upload).
REGION_FAMILIES: Final[tuple[str, ...]] = (
    "crop-centre",
    "crop-edge",
    "border",
    "screenshot",
    "text",
    "watermark",
    "sticker",
)

#: Where tiles can change anything: the overlays, which hide part of the picture and leave
#: the rest where it was.
OVERLAY_FAMILIES: Final[tuple[str, ...]] = ("text", "watermark", "sticker")

#: The families a method is measured on when it is named without any (``--method NAME``);
#: methods not listed are measured on every family.
DEFAULT_FAMILIES: Final[Mapping[str, tuple[str, ...]]] = {
    "pdq+regions": REGION_FAMILIES,
    "pdq+regions+dihedral": REGION_FAMILIES,
    "pdq+content": REGION_FAMILIES,
    "pdq+content+dihedral": REGION_FAMILIES,
    "pdq+tiles": OVERLAY_FAMILIES,
    "pdq+tiles+dihedral": OVERLAY_FAMILIES,
}


@dataclass(frozen=True)
class Scope:
    """The copies one method is measured on (see the module docstring); the default scope
    is every copy of every photo."""

    families: frozenset[str] | None = None
    sets: frozenset[str] | None = None
    every: int = 1
    #: (set, K) pairs, sorted: in that set every method's copies are made for 1 in K photos.
    set_every: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for every in (self.every, *(k for _, k in self.set_every)):
            if every < 1:
                raise ValueError(f"a photo sample takes 1 in every N photos, N >= 1 (got {every})")
        if self.families is not None:
            unknown = sorted(self.families - set(FAMILIES))
            if unknown:
                known = ", ".join(FAMILIES)
                raise ValueError(f"unknown transform families {unknown} (known: {known})")
            if not self.families:
                raise ValueError("a scope names at least one transform family")

    @property
    def is_full(self) -> bool:
        return self.is_own_full and not self.set_every

    @property
    def is_own_full(self) -> bool:
        """Whether the method itself is measured on every copy (a set's sample aside)."""
        return self.families is None and self.sets is None and self.every == 1

    def offset(self, seed: int) -> int:
        """The index, modulo `every`, of the sampled photos."""
        return seed % self.every

    def every_in(self, set_name: str) -> int:
        """K where this method's copies in a set are measured on 1 in K photos: its own
        sample and the set's together."""
        return math.lcm(self.every, dict(self.set_every).get(set_name, 1))

    def covers_photo(self, set_name: str, photo_index: int, seed: int) -> bool:
        """Whether this photo's copies are measured (its unrelated pairs always are)."""
        if self.sets is not None and set_name not in self.sets:
            return False
        every = self.every_in(set_name)
        return photo_index % every == seed % every

    def covers_family(self, family: str) -> bool:
        return self.families is None or family in self.families

    def sample(self, seed: int, set_name: str | None = None) -> str:
        """The photo sample in words ("" for every photo), as recall curves carry it: the
        method's own, or in `set_name`, its own and the set's together."""
        return photo_sample(self.every if set_name is None else self.every_in(set_name), seed)

    def with_photos(self, *, sets: Iterable[str] | None = None, every: int = 1) -> Scope:
        """This scope on a photo sample (for methods restricted to some families only)."""
        return replace(self, sets=frozenset(sets) if sets is not None else None, every=every)

    def with_set_samples(self, copies_every: Mapping[str, int]) -> Scope:
        """This scope where the copies of the named sets are made for 1 in K photos only."""
        pairs = tuple(sorted((name, k) for name, k in copies_every.items() if k != 1))
        return replace(self, set_every=pairs)

    def describe(self, seed: int) -> dict[str, Any]:
        """As the report's JSON shows it; `set_samples`: the sample, in words, in each set
        that has its own."""
        return {
            "families": sorted(self.families) if self.families is not None else None,
            "sets": sorted(self.sets) if self.sets is not None else None,
            "every": self.every,
            "offset": self.offset(seed),
            "sample": self.sample(seed),
            "set_every": dict(self.set_every),
            "set_samples": {name: self.sample(seed, name) for name, _ in self.set_every},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        families, sets = data.get("families"), data.get("sets")
        set_every = data.get("set_every") or {}
        return cls(
            frozenset(families) if families is not None else None,
            frozenset(sets) if sets is not None else None,
            int(data.get("every", 1)),
            tuple(sorted((str(name), int(k)) for name, k in set_every.items())),
        )


def photo_sample(every: int, seed: int) -> str:
    """1 in `every` photos of a run with `seed`, in words ("" for every photo)."""
    if every == 1:
        return ""
    return f"1 in {every} photos (index mod {every} = {seed % every})"


#: Written after the colon for every family, overriding a method's default list.
EVERYTHING: Final = "all"


def parse_method_specs(
    specs: Sequence[str], *, sets: Iterable[str] | None = None, every: int = 1
) -> list[tuple[Method, Scope]]:
    """Methods and their scopes from ``--method`` values: ``NAME``, ``NAME:FAMILY,FAMILY``
    or ``NAME:all``, several per value separated by commas (``pdq,pdq+dihedral``; a name
    after a family list starts the next method), each name optionally ``NAME@K``. A method
    restricted to some families (by default or by name) has its copies measured only in
    `sets` (None: all) and on 1 in `every` photos, or 1 in K where it says ``@K``; the
    others on every copy. ValueError names what is unknown."""
    tokens = [part.strip() for spec in specs for part in spec.split(",") if part.strip()]
    parsed: list[tuple[str, list[str] | None, int | None]] = []
    for token in tokens:
        head, colon, first = token.partition(":")
        name, sample = _name_and_sample(head.strip())
        if colon:
            parsed.append((name, [first.strip()] if first.strip() else [], sample))
        else:
            previous = parsed[-1][1] if parsed else None
            if name in METHOD_FACTORIES or previous is None:
                parsed.append((name, None, sample))
            else:
                previous.append(token)  # one more family of the method before it
    names = [name for name, _, _ in parsed]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"a method is named more than once: {', '.join(twice)}")
    found: list[tuple[Method, Scope]] = []
    for name, families, sample in parsed:
        method = get_method(name)
        if families is None:
            chosen = DEFAULT_FAMILIES.get(name)
        elif families == [EVERYTHING]:
            chosen = None
        elif not families:
            raise ValueError(f"no transform family after {name + ':'!r}")
        else:
            chosen = tuple(families)
        if chosen is None and sample is not None:
            raise ValueError(
                f"{name}@{sample}: {name} is measured on every copy of every photo; "
                "@K samples the photos of a method restricted to some families"
            )
        if chosen is None:
            found.append((method, Scope()))
        else:
            photos = every if sample is None else sample
            found.append((method, Scope(frozenset(chosen)).with_photos(sets=sets, every=photos)))
    return found


def _name_and_sample(head: str) -> tuple[str, int | None]:
    """("NAME", K) from "NAME@K", ("NAME", None) from "NAME"."""
    name, at, count = head.partition("@")
    if not at:
        return name, None
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"{head!r}: after '@' comes K >= 1, the photo sample 1 in K")
    return name, int(count)
