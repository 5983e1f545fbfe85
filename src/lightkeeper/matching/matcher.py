"""`Matcher`: content in, matches with evidence out, against every enabled bank.

    from lightkeeper.banks import BankStore
    from lightkeeper.matching import Matcher

    with BankStore.open() as store:
        matcher = Matcher(store)
        result = matcher.match_file("upload.jpg")
        for match in result.matches:
            print(match.bank, match.entry_id, match.signal_type, match.distance)

The path of one content: its signals (`lightkeeper.hashing`: PDQ with its quality and, from
EXIF-rotated files, the hash as stored; MD5, SHA-1, SHA-256), then one query per signal type
against the follower's index, then a check of each candidate against its own bank:

- **PDQ**: the displayed hash is queried, and the as-stored one too when the file had an EXIF
  rotation (lists filled by EXIF-blind hashers hold that). When an enabled bank asks for it
  (``match_dihedral``), the eight rotations and flips are computed and queried in the same
  call; a rotation only counts for banks that asked. The search radius is the largest
  threshold among the banks taking part; each candidate is then judged by *its* bank's
  threshold, so two banks with different thresholds see the same query differently.
- **Regions** (crops, screenshots, overlays), for banks with ``regions`` on only: an upload
  is also looked up with the PDQ of crop windows and tiles of itself and of the photos found
  inside it when it is a screenshot (`region_codes.upload_codes`), against the region
  codes those banks keep for images added to them (`region_index.RegionIndex`), and its
  whole hash meets those codes too (a hash lookup as well). Only pairs that can line up
  count (`lightkeeper.signals.regions.compatible`), each within its bank's
  ``region_threshold``; a match names the entry, with the content's code in ``variant`` and
  the entry's in ``entry_code``. Banks with regions off see exactly what they saw before.
- **Quality**: a PDQ hash below a bank's quality floor is not matched against that bank (a
  flat or tiny picture's hash matches too much), and the result says ``low_quality``.
  Exact hashes still match: they identify the file, whatever it looks like.
- **Allow banks**: a content that matches an allow bank (known false positives) has its
  block matches suppressed; they are listed in `MatchResult.suppressed`, with the allow
  entry that suppressed them, never dropped. A perceptual allow match (a benign look-alike)
  suppresses perceptual block matches only, never an exact match of the listed file itself.
- **Current state**: every call first applies the store's change log (one cheap query when
  nothing changed), and each candidate's entry is read back from the store before it is
  reported, so an entry removed, disabled or re-enabled by any process counts at once. A
  service at thousands of requests a second makes the matcher with ``refresh_on_call=False``
  and lets ``matcher.follower.follow()`` apply the log in the background instead; an entry
  added anywhere is then matched within about one follow interval.

Deterministic: every enabled bank is consulted, results are sorted by (bank, distance, entry
id), and the same content against the same store always gives the same result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal, cast

from lightkeeper.banks import Bank, BankStore, Entry
from lightkeeper.errors import InvalidSignal, LightkeeperError, MediaError
from lightkeeper.hashing import bytes_signals, hash_bytes, read_file
from lightkeeper.matching.evidence import AS_STORED, ORIGINAL, Match, MatchResult, SuppressedMatch
from lightkeeper.matching.follower import IndexFollower, hamming_code, index_kind
from lightkeeper.matching.region_codes import upload_codes
from lightkeeper.matching.region_index import SIGNAL_TYPE as REGION_SIGNAL_TYPE
from lightkeeper.media.decode import DEFAULT_LIMITS, MediaLimits
from lightkeeper.signals import registry
from lightkeeper.signals.base import DIHEDRAL_NAMES, ImageSignalType
from lightkeeper.signals.pdq import CODE_BYTES, HEX_DIGITS, PdqSignal
from lightkeeper.signals.regions import RegionCode, compatible, family_of

#: The batch fast path's signal type (`Matcher._match_plain`): the built-in PDQ.
PDQ_NAME = PdqSignal.name
_PDQ_QUALITY = f"{PDQ_NAME}_quality"
_PDQ_HEX = HEX_DIGITS

#: Rank of each variant when one entry is reached by several: the displayed hash first.
_VARIANT_RANK = {ORIGINAL: 0, AS_STORED: 1} | {
    name: 2 + i for i, name in enumerate(DIHEDRAL_NAMES) if name != ORIGINAL
}


@dataclass(frozen=True, slots=True)
class _Hit:
    """An index candidate: which signal type, which variant of the content, how far."""

    signal_type: str
    distance: int
    variant: str
    quality: int | None
    #: The content's hash (of this variant) that was looked up.
    value: str
    #: The entry's code that was met when a region took part ("whole" or a window's name);
    #: None for a pair of whole hashes.
    entry_code: str | None = None

    def rank(self) -> tuple[int, int, str, str]:
        variant_rank = _VARIANT_RANK.get(self.variant, len(_VARIANT_RANK))
        return (self.distance, variant_rank, self.variant, self.entry_code or "")


@dataclass(frozen=True, slots=True)
class _Query:
    """One Hamming query of a content: a variant of its hash, searched within `radius`."""

    signal_type: str
    radius: int
    variant: str
    value: str
    code: bytes
    quality: int | None
    #: Which index: the entries' own hashes, or the region codes of banked images.
    index: Literal["entries", "regions"] = "entries"


class _Banks:
    """The banks as one call sees them, read once per call (not once per item of a batch),
    with what each signal type and quality needs from them worked out once."""

    def __init__(self, banks: Mapping[int, Bank]) -> None:
        self.by_id = dict(banks)
        self.enabled = [bank for bank in self.by_id.values() if bank.enabled]
        #: Enabled banks with regions on.
        self.regions = [bank for bank in self.enabled if bank.regions]
        self._floors: dict[str, int] = {}
        self._taking_part: dict[tuple[str, int | None], tuple[int, bool] | None] = {}
        self._region_radius: dict[int | None, int | None] = {}

    def highest_floor(self, signal_type: str) -> int:
        """The highest quality floor for `signal_type` among the enabled banks."""
        floor = self._floors.get(signal_type)
        if floor is None:
            floors = [_floor(bank, signal_type) for bank in self.enabled]
            floor = self._floors[signal_type] = max(floors or [_default_floor(signal_type)])
        return floor

    def search_for(self, signal_type: str, quality: int | None) -> tuple[int, bool] | None:
        """How to search a `signal_type` hash of this quality: the radius (the widest
        threshold among the enabled banks that accept that quality) and whether any of them
        matches rotations and flips; None when no bank accepts it."""
        key = (signal_type, quality)
        if key not in self._taking_part:
            banks = [
                b for b in self.enabled if quality is None or quality >= _floor(b, signal_type)
            ]
            self._taking_part[key] = (
                (max(b.threshold(signal_type) for b in banks), any(b.match_dihedral for b in banks))
                if banks
                else None
            )
        return self._taking_part[key]

    def region_radius(self, quality: int | None) -> int | None:
        """How far to search when a region code takes part, for a PDQ code of this quality:
        the widest region threshold among the banks with regions on that accept it; None
        when none does."""
        if quality not in self._region_radius:
            thresholds = [
                b.region_threshold
                for b in self.regions
                if quality is None or quality >= _floor(b, REGION_SIGNAL_TYPE)
            ]
            self._region_radius[quality] = max(thresholds) if thresholds else None
        return self._region_radius[quality]


@dataclass(slots=True)
class _Plan:
    """One content's matching in progress: exact hits so far, Hamming queries to run."""

    banks: _Banks
    sha256: object
    computed: list[str] = field(default_factory=list)
    low_quality: bool = False
    quality: int | None = None
    hits: dict[int, list[_Hit]] = field(default_factory=dict)
    queries: list[_Query] = field(default_factory=list)


class Matcher:
    """Matches content against the enabled banks of a store; see the module docstring.

    Building one loads the banks' entries into memory (`IndexFollower`: from the snapshot in
    `snapshot_dir` when it holds a usable one, else from the store); keep it for the life of
    the process and call its methods from any thread. With `refresh_on_call` False, matching
    never queries the change log: call ``matcher.follower.follow()`` to keep it current.
    """

    def __init__(
        self,
        store: BankStore,
        *,
        limits: MediaLimits = DEFAULT_LIMITS,
        snapshot_dir: str | os.PathLike[str] | None = None,
        refresh_on_call: bool = True,
        search_threads: int | None = None,
        paired_tables: bool = False,
    ) -> None:
        self._store = store
        self._limits = limits
        self._refresh_on_call = refresh_on_call
        self._follower = IndexFollower(
            store,
            snapshot_dir=snapshot_dir,
            search_threads=search_threads,
            paired_tables=paired_tables,
        )

    @property
    def follower(self) -> IndexFollower:
        """The indexes and the log position they reflect."""
        return self._follower

    def refresh(self) -> int:
        """Apply the store's changes since the last call; returns how many were read."""
        return self._follower.refresh()

    @property
    def uses_regions(self) -> bool:
        """Whether an enabled bank has regions on: an upload is then also looked up with its
        region codes (`lightkeeper.matching.region_codes.upload_codes`), which callers that
        hash uploads themselves pass to `match_hashes`."""
        return any(b.enabled and b.regions for b in self._follower.banks.values())

    # ------------------------------------------------------------------ entry points

    def match_file(self, path: str | os.PathLike[str]) -> MatchResult:
        """Match a file's content. A file that cannot be read gives a result with `error`."""
        name = os.fspath(path)
        try:
            data = read_file(path, limits=self._limits)
        except LightkeeperError as exc:  # missing, unreadable, too large
            return MatchResult(file=name, error=str(exc), error_type=exc.code)
        return replace(self.match_bytes(data), file=name)

    def match_bytes(self, data: bytes) -> MatchResult:
        """Match content given as bytes.

        Bytes that are not a decodable image are still matched by their exact hashes; the
        result then carries the decoding error too.
        """
        if self._refresh_on_call:
            self.refresh()
        dihedral = any(b.enabled and b.match_dihedral for b in self._follower.banks.values())
        regions: list[RegionCode] = []
        try:
            if self.uses_regions:
                signals, regions = upload_codes(data, dihedral=dihedral, limits=self._limits)
            else:
                signals = hash_bytes(data, dihedral=dihedral, limits=self._limits)
        except MediaError as exc:
            result = self._match(dict(bytes_signals(data)))
            return replace(result, error=str(exc), error_type=exc.code)
        return self._match(signals, regions)

    def match_hashes(
        self, hashes: Mapping[str, object], *, regions: Sequence[RegionCode] = ()
    ) -> MatchResult:
        """Match signals computed elsewhere, given as `lightkeeper.hashing.hash_bytes` gives
        them: ``{"pdq": …, "pdq_quality": …, "pdq_as_stored": …, "pdq_dihedral": {name:
        value}, "md5": …, …}``. Keys that name no signal type are ignored; a malformed value
        raises `InvalidSignal`. Without ``pdq_quality`` the PDQ hash is taken as good enough.
        `regions` are the content's region codes (`region_codes.upload_codes`), matched
        against the banks with regions on.
        """
        if self._refresh_on_call:
            self.refresh()
        return self._match(hashes, regions)

    def match_many(self, items: Sequence[Mapping[str, object]]) -> list[MatchResult]:
        """`match_hashes` for many contents at once, with one index query per signal type
        and radius for the whole batch (much faster than one call per item for large
        batches). An item with a malformed or unknown hash gets a result with `error`
        instead of failing the batch."""
        if self._refresh_on_call:
            self.refresh()
        banks = _Banks(self._follower.banks)
        results: list[MatchResult | None] = [None] * len(items)
        searched: dict[int, _Plan] = {}
        rest = self._match_plain(items, banks, results, searched)
        plans: dict[int, _Plan] = {}
        for i in rest:
            try:
                plans[i] = self._plan(items[i], banks)
            except LightkeeperError as exc:
                results[i] = MatchResult(error=str(exc), error_type=exc.code)
        self._search_all(list(plans.values()))
        plans.update(searched)
        entries = self._entries(list(plans.values()))
        for i, plan in plans.items():
            results[i] = self._finish(plan, entries)
        return [r if r is not None else MatchResult() for r in results]

    def _match_plain(
        self,
        items: Sequence[Mapping[str, object]],
        banks: _Banks,
        results: list[MatchResult | None],
        searched: dict[int, _Plan],
    ) -> list[int]:
        """The batch's fast path: settle every *plain* PDQ item that finds nothing, put the
        plans of those that found candidates in `searched` (searched already: left to judge),
        and return the positions of the items left for the general path (in order).

        A plain item is a lone PDQ hash, with its quality at most: what a batched lookup
        sends. At 10,000 items the general path's per-item planning cost a third as much
        CPU as the index search itself; here the hex of a whole group (one quality) is
        checked and decoded in one ``bytes.fromhex``, searched in one index call, and the
        items without a candidate (nearly all: most uploads are benign) share one result.
        Items with a candidate are judged as the general path judges them; malformed ones
        (the general path words their error) and every item while a bank has regions on go
        the general way, so results are the same on both paths (`tests/test_matcher.py`
        compares them).
        """
        if banks.regions:
            return list(range(len(items)))
        rest: list[int] = []
        groups: dict[int | None, list[int]] = {}
        for i, hashes in enumerate(items):
            quality = _plain_pdq(hashes)
            if quality is False:
                rest.append(i)
            else:
                groups.setdefault(quality, []).append(i)
        for quality, members in groups.items():
            values = [items[i][PDQ_NAME] for i in members]
            packed = _packed_codes(cast(list[str], values))
            if packed is None:  # a malformed value among them: let the general path say which
                rest.extend(members)
                continue
            nothing = MatchResult(
                low_quality=quality is not None and quality < banks.highest_floor(PDQ_NAME),
                quality=quality,
                signals=(PDQ_NAME,),
            )
            search = banks.search_for(PDQ_NAME, quality)
            if search is None:  # no enabled bank takes a hash of this quality
                for i in members:
                    results[i] = nothing
                continue
            found = self._follower.search_packed(PDQ_NAME, packed, search[0])
            for i, hits in zip(members, found, strict=True):
                if not hits:
                    results[i] = nothing
                    continue
                # What `_plan` would make of the item, with the index's answer filled in.
                value = cast(str, items[i][PDQ_NAME]).lower()  # its canonical form
                plan = _Plan(banks=banks, sha256=None, computed=[PDQ_NAME])
                plan.quality, plan.low_quality = quality, nothing.low_quality
                for entry_id, distance in hits:
                    hit = _Hit(PDQ_NAME, distance, ORIGINAL, quality, value)
                    plan.hits.setdefault(entry_id, []).append(hit)
                searched[i] = plan
        rest.sort()
        return rest

    # ------------------------------------------------------------------ matching

    def _match(
        self, hashes: Mapping[str, object], regions: Sequence[RegionCode] = ()
    ) -> MatchResult:
        plan = self._plan(hashes, _Banks(self._follower.banks), regions)
        self._search_all([plan])
        return self._finish(plan, self._entries([plan]))

    def _plan(
        self, hashes: Mapping[str, object], banks: _Banks, regions: Sequence[RegionCode] = ()
    ) -> _Plan:
        """The content's signals, exact hits, and the Hamming queries still to run."""
        plan = _Plan(banks=banks, sha256=hashes.get("sha256"))
        if banks.regions:
            _region_queries(plan, regions)
        for name in registry.all_signal_types():
            value = hashes.get(name)
            if value is None:
                continue
            canonical = _canonical(name, value)
            plan.computed.append(name)
            kind = index_kind(name)
            if kind == "exact":
                for entry_id in self._follower.lookup(name, canonical):
                    plan.hits.setdefault(entry_id, []).append(
                        _Hit(name, 0, ORIGINAL, None, canonical)
                    )
            elif kind == "hamming":
                signal_quality = _quality(hashes.get(f"{name}_quality"))
                if plan.quality is None:
                    plan.quality = signal_quality
                if signal_quality is not None and signal_quality < banks.highest_floor(name):
                    plan.low_quality = True
                self._queries(plan, name, canonical, signal_quality, hashes)
        return plan

    def _queries(
        self,
        plan: _Plan,
        name: str,
        value: str,
        quality: int | None,
        hashes: Mapping[str, object],
    ) -> None:
        """The content's variants of a Hamming signal to query, radius the widest needed."""
        search = plan.banks.search_for(name, quality)
        if search is None:
            return
        radius, any_dihedral = search
        variants = [(ORIGINAL, value)]
        as_stored = hashes.get(f"{name}_as_stored")
        if as_stored is not None and (stored := _canonical(name, as_stored)) != value:
            variants.append((AS_STORED, stored))
        dihedral = hashes.get(f"{name}_dihedral")
        if any_dihedral and isinstance(dihedral, Mapping):
            for variant, other in dihedral.items():
                if variant != ORIGINAL and variant in _VARIANT_RANK:
                    variants.append((variant, _canonical(name, other)))
        region_radius = plan.banks.region_radius(quality) if name == REGION_SIGNAL_TYPE else None
        for variant, content_value in variants:
            code = hamming_code(content_value)
            plan.queries.append(_Query(name, radius, variant, content_value, code, quality))
            if region_radius is not None:  # the whole content meets every region code too
                plan.queries.append(
                    _Query(name, region_radius, variant, content_value, code, quality, "regions")
                )

    def _search_all(self, plans: list[_Plan]) -> None:
        """Run every plan's Hamming queries, one index call per (signal type, radius,
        index)."""
        groups: dict[tuple[str, int, str], list[tuple[_Plan, _Query]]] = {}
        for plan in plans:
            for query in plan.queries:
                key = (query.signal_type, query.radius, query.index)
                groups.setdefault(key, []).append((plan, query))
        for (name, radius, index), members in groups.items():
            codes = [q.code for _, q in members]
            if index == "regions":
                found_regions = self._follower.search_regions(codes, radius)
                for (plan, query), region_hits in zip(members, found_regions, strict=True):
                    for entry_id, region, distance in region_hits:
                        hit = _Hit(
                            name, distance, query.variant, query.quality, query.value, region
                        )
                        plan.hits.setdefault(entry_id, []).append(hit)
                continue
            found = self._follower.search(name, codes, radius)
            for (plan, query), hits in zip(members, found, strict=True):
                # A region of the content meets the entry's own hash: say so.
                entry_code = "whole" if family_of(query.variant) is not None else None
                for entry_id, distance in hits:
                    hit = _Hit(
                        name, distance, query.variant, query.quality, query.value, entry_code
                    )
                    plan.hits.setdefault(entry_id, []).append(hit)

    def _finish(self, plan: _Plan, entries: Mapping[int, Entry]) -> MatchResult:
        """The plan's result, its candidates judged against `entries` (read back from the
        store: an id missing there was removed since the index was refreshed)."""
        sha256 = plan.sha256 if isinstance(plan.sha256, str) else None
        if not plan.hits:  # most contents: nothing to judge
            return MatchResult(
                sha256=sha256,
                low_quality=plan.low_quality,
                quality=plan.quality,
                signals=tuple(plan.computed),
            )
        matches = _judge(plan.hits, plan.banks.by_id, entries)
        allowed = sorted((m for m in matches if m.bank_kind == "allow"), key=Match.sort_key)
        block = sorted((m for m in matches if m.bank_kind != "allow"), key=Match.sort_key)
        block, suppressed = _apply_allow(block, allowed)
        return MatchResult(
            sha256=sha256,
            matches=tuple(block),
            suppressed=suppressed,
            allowed=tuple(allowed),
            low_quality=plan.low_quality,
            quality=plan.quality,
            signals=tuple(plan.computed),
        )

    def _entries(self, plans: Sequence[_Plan]) -> dict[int, Entry]:
        """Every candidate entry of `plans`, read back from the store in one go."""
        return self._store.get_entries(entry_id for plan in plans for entry_id in plan.hits)


def _judge(
    hits: dict[int, list[_Hit]], banks: Mapping[int, Bank], entries: Mapping[int, Entry]
) -> list[Match]:
    """Each candidate checked against its entry and bank as they are now."""
    now = datetime.now(UTC)
    found: list[Match] = []
    for entry_id, candidates in sorted(hits.items()):
        entry = entries.get(entry_id)
        if entry is None:
            continue  # removed since the index was refreshed
        bank = banks.get(entry.bank_id)
        if bank is None or not bank.enabled or not entry.is_active(now):
            continue
        best = _best(entry, bank, candidates)
        if best is not None:
            found.append(_evidence(entry, bank, best))
    return found


def _apply_allow(
    block: list[Match], allowed: list[Match]
) -> tuple[list[Match], tuple[SuppressedMatch, ...]]:
    """Block matches kept, and those suppressed with the allow match that suppressed them.

    An allow entry records a known false positive. A perceptual allow match (a look-alike
    judged benign) suppresses perceptual block matches only: it says nothing against an
    exact match, which means the very file on the list. An exact allow match (this exact
    file was judged benign) suppresses every block match.
    """
    if not allowed or not block:
        return block, ()
    exact_allow = next((a for a in allowed if index_kind(a.signal_type) == "exact"), None)
    kept: list[Match] = []
    suppressed: list[SuppressedMatch] = []
    for match in block:
        if exact_allow is not None:
            suppressed.append(SuppressedMatch(match, exact_allow))
        elif index_kind(match.signal_type) != "exact":
            suppressed.append(SuppressedMatch(match, allowed[0]))
        else:
            kept.append(match)
    return kept, tuple(suppressed)


def _best(entry: Entry, bank: Bank, candidates: list[_Hit]) -> _Hit | None:
    """The closest of the content's variants that this bank accepts, if any.

    A pair of whole hashes is judged by the bank's threshold for the signal type. A pair in
    which a region takes part counts only for a bank with regions on, only when the two codes
    can line up at all (`compatible`: a crop window of the content meets windows of the same
    family only), and within the bank's region threshold. A whole-hash match, when there is
    one, is preferred to any region match: it is the stronger evidence.
    """
    threshold = bank.threshold(entry.signal_type)
    floor = _floor(bank, entry.signal_type)
    whole: list[_Hit] = []
    regions: list[_Hit] = []
    for hit in candidates:
        if hit.signal_type != entry.signal_type:
            continue
        if hit.quality is not None and hit.quality < floor:
            continue
        turned = family_of(hit.variant) is None and hit.variant not in (ORIGINAL, AS_STORED)
        if turned and not bank.match_dihedral:
            continue
        if hit.entry_code is None:
            if hit.distance <= threshold:
                whole.append(hit)
        elif (
            bank.regions
            and hit.distance <= bank.region_threshold
            and compatible(hit.entry_code, hit.variant)
        ):
            regions.append(hit)
    return min(whole or regions, key=_Hit.rank, default=None)


def _region_queries(plan: _Plan, regions: Sequence[RegionCode]) -> None:
    """The queries of a content's region codes: every one against the region codes of the
    banks with regions on; a photo found inside the content (a content region) against the
    entries' own hashes too. A crop window of the content can only meet windows of the bank
    (`compatible`), so it is never searched among the entries' hashes."""
    for region in regions:
        radius = plan.banks.region_radius(region.quality)
        if radius is None:
            continue  # under every region bank's quality floor
        value, code = region.value, region.code
        args = (REGION_SIGNAL_TYPE, radius, region.name, value, code, region.quality)
        plan.queries.append(_Query(*args, "regions"))
        if family_of(region.name) == "content":
            plan.queries.append(_Query(*args, "entries"))


def _evidence(entry: Entry, bank: Bank, hit: _Hit) -> Match:
    threshold = (
        bank.threshold(entry.signal_type) if hit.entry_code is None else bank.region_threshold
    )
    return Match(
        bank=bank.name,
        bank_kind=bank.kind,
        entry_id=entry.id,
        signal_type=entry.signal_type,
        value=entry.value,
        content_value=hit.value,
        distance=hit.distance,
        threshold=threshold,
        quality=hit.quality,
        variant=hit.variant,
        list_name=entry.list_name,
        list_version=entry.list_version,
        external_id=entry.external_id,
        classification=entry.classification,
        entry_code=hit.entry_code,
    )


def _plain_pdq(hashes: Mapping[str, object]) -> int | Literal[False] | None:
    """The quality of a plain PDQ item (None when not given), or False when the item is not
    one: anything but a PDQ string and a whole-number quality."""
    value = hashes.get(PDQ_NAME)
    if not isinstance(value, str):
        return False
    if len(hashes) == 1:
        return None
    quality = hashes.get(_PDQ_QUALITY)
    if len(hashes) != 2 or type(quality) is not int:
        return False
    return quality


def _packed_codes(values: list[str]) -> bytes | None:
    """The 32-byte codes of 64-hex-digit values, end to end; None if any value is not exactly
    that (``bytes.fromhex`` skips spaces and accepts either case, hence the length check)."""
    if any(len(v) != _PDQ_HEX for v in values):
        return None
    try:
        packed = bytes.fromhex("".join(values))
    except ValueError:
        return None
    return packed if len(packed) == CODE_BYTES * len(values) else None


def _canonical(signal_type: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSignal(f"a {signal_type} value must be a string, got {type(value).__name__}")
    return registry.get(signal_type).normalize(value)


def _quality(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSignal(f"a quality must be a whole number, got {value!r}")
    return value


def _floor(bank: Bank, signal_type: str) -> int:
    """The lowest quality a bank accepts for a signal type (the bank's own floor for PDQ)."""
    if signal_type == "pdq":
        return bank.pdq_quality_floor
    return _default_floor(signal_type)


def _default_floor(signal_type: str) -> int:
    st = registry.get(signal_type)
    return st.default_quality_floor if isinstance(st, ImageSignalType) else 0
