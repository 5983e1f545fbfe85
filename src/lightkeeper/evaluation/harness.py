"""The evaluation run: photos in, an `Evaluation` (JSON-able figures) out.

For every photo of every set the harness decodes the file once (with the same decoder as
uploads, EXIF orientation applied), scales it down to at most `max_side` pixels on its long
side (PDQ looks at 512 pixels anyway; this keeps every transform cheap and a full corpus
run within minutes), and then, for each transform of the suite, makes the copy and asks
every method for its codes. It measures:

- **recall**: per (set, method, transform), how many copies lie within each threshold
  0..256 of their original (`RecallCurve.within`, cumulative, so recall at a threshold is
  one lookup), and how many of those also pass the PDQ quality floor;
- **unrelated pairs**: per (set, method), the distance between every two distinct
  originals of the set, one as the banked reference and the other as the upload (never
  across sets): the histogram, the minimum, the closest pairs, and the false-match count
  at each threshold (`PairStats`), and the fitted tail that calibration uses (`TailFit`);
- **quality**: the share of originals and of copies under the PDQ quality floor.

Work is spread over processes, one photo at a time; results do not depend on how many.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lightkeeper.errors import InputError, MediaError
from lightkeeper.evaluation.calibration import TailFit, fit_tail
from lightkeeper.evaluation.corpus import PhotoSet
from lightkeeper.evaluation.methods import (
    DEFAULT_METHODS,
    Method,
    codes_array,
    copy_distances,
    get_method,
    pairwise_min_distances,
    pdq_of,
)
from lightkeeper.evaluation.transforms import (
    Transform,
    describe_suite,
    standard_suite,
    transform_rng,
)

__all__ = [
    "DEFAULT_MAX_SIDE",
    "SCHEMA",
    "ClosePair",
    "CopyQuality",
    "Evaluation",
    "PairStats",
    "RecallCurve",
    "SetSummary",
    "load_original",
    "run_evaluation",
]

#: Identifies the JSON layout; bumped whenever a field changes meaning or goes away.
SCHEMA: Final = "lightkeeper-accuracy/1"
DEFAULT_MAX_SIDE: Final = 1024
BINS: Final = 257  # distances 0..256
#: Closest unrelated pairs listed per set and method, for a person to look at.
CLOSEST_PAIRS: Final = 5


@dataclass(frozen=True)
class RecallCurve:
    """Copies of one transform, in one set, under one method, by distance to the original."""

    set: str
    method: str
    transform: str
    family: str
    strength: str
    copies: int
    #: Copies within t of their original, t = 0..256.
    within: tuple[int, ...]
    #: … of which the copy's PDQ quality is at least the floor (what a bank would match).
    within_quality: tuple[int, ...]

    def recall(self, threshold: int) -> float:
        return self.within[threshold] / self.copies if self.copies else float("nan")


@dataclass(frozen=True)
class ClosePair:
    a: str
    b: str
    distance: int
    #: PDQ quality of each photo (the matcher leaves uploads under the floor unmatched).
    quality_a: int
    quality_b: int


@dataclass(frozen=True)
class PairStats:
    """All unordered pairs of distinct originals of one set under one method; a pair's
    distance is the smaller of its two directions (either photo as the upload).

    The gated figures count only the directions whose upload passes the PDQ quality floor
    (the matcher does not match the others): the false matches a bank could really make.
    """

    set: str
    method: str
    photos: int
    pairs: int
    histogram: tuple[int, ...]
    minimum: int | None
    closest: tuple[ClosePair, ...]
    gated_pairs: int
    gated_histogram: tuple[int, ...]

    def false_matches(self, threshold: int, *, gated: bool = False) -> int:
        return sum((self.gated_histogram if gated else self.histogram)[: threshold + 1])


@dataclass(frozen=True)
class CopyQuality:
    """How many copies of one transform in one set fall under the PDQ quality floor."""

    set: str
    transform: str
    copies: int
    below_floor: int


@dataclass(frozen=True)
class SetSummary:
    name: str
    photos: int
    copies: int
    originals_below_floor: int
    copies_below_floor: int
    #: Photos that could not be read or decoded: (file, reason).
    failed: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Evaluation:
    """Everything one run measured, with what is needed to reproduce it."""

    seed: int
    max_side: int
    limit: int | None
    signal_type: str
    quality_floor: int
    default_threshold: int
    methods: tuple[str, ...]
    transforms: tuple[str, ...]
    suite: dict[str, Any]
    sets: tuple[SetSummary, ...]
    recall: tuple[RecallCurve, ...]
    pairs: tuple[PairStats, ...]
    quality: tuple[CopyQuality, ...]
    tails: tuple[TailFit, ...]
    environment: dict[str, Any]
    seconds: float

    def curve(self, set_name: str, method: str, transform: str) -> RecallCurve:
        for curve in self.recall:
            if (curve.set, curve.method, curve.transform) == (set_name, method, transform):
                return curve
        raise KeyError((set_name, method, transform))

    def pair_stats(self, set_name: str, method: str) -> PairStats | None:
        return next((p for p in self.pairs if (p.set, p.method) == (set_name, method)), None)

    def to_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["tails"] = [t.to_json() for t in self.tails]
        return {"schema": SCHEMA, **body}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        if data.get("schema") != SCHEMA:
            raise InputError(f"not an evaluation of schema {SCHEMA} (got {data.get('schema')!r})")
        return cls(
            seed=data["seed"],
            max_side=data["max_side"],
            limit=data["limit"],
            signal_type=data["signal_type"],
            quality_floor=data["quality_floor"],
            default_threshold=data["default_threshold"],
            methods=tuple(data["methods"]),
            transforms=tuple(data["transforms"]),
            suite=data["suite"],
            sets=tuple(
                SetSummary(**{**s, "failed": tuple(tuple(f) for f in s["failed"])})
                for s in data["sets"]
            ),
            recall=tuple(
                RecallCurve(
                    **{
                        **c,
                        "within": tuple(c["within"]),
                        "within_quality": tuple(c["within_quality"]),
                    }
                )
                for c in data["recall"]
            ),
            pairs=tuple(
                PairStats(
                    **{
                        **p,
                        "histogram": tuple(p["histogram"]),
                        "gated_histogram": tuple(p["gated_histogram"]),
                        "closest": tuple(ClosePair(**c) for c in p["closest"]),
                    }
                )
                for p in data["pairs"]
            ),
            quality=tuple(CopyQuality(**q) for q in data["quality"]),
            tails=tuple(TailFit.from_json(t) for t in data["tails"]),
            environment=data["environment"],
            seconds=data["seconds"],
        )


def load_original(path: Path, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """A photo as users see it (the upload decoder, EXIF orientation applied), in RGB,
    scaled down (Lanczos) to at most `max_side` pixels on its long side."""
    from lightkeeper.media.decode import decode_image

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    decoded = decode_image(data, reduce=False)
    assert decoded.rgb is not None  # reduce=False always gives full-resolution RGB
    image = Image.fromarray(decoded.rgb)
    scale = max_side / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


# -- per photo, in a worker ------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    methods: tuple[Method, ...]
    suite: tuple[Transform, ...]
    seed: int
    max_side: int


@dataclass(frozen=True)
class _Job:
    set_index: int
    set_name: str
    photo_index: int
    path: Path


@dataclass(frozen=True)
class _PhotoResult:
    job: _Job
    error: str | None = None
    quality: int = 0
    copy_quality: NDArray[np.int16] | None = None
    #: Per method: the original's reference codes, its query codes, and (one per
    #: transform) the distance of each copy to the reference.
    reference: tuple[NDArray[np.uint8], ...] = ()
    query: tuple[NDArray[np.uint8], ...] = ()
    distances: tuple[NDArray[np.int16], ...] = ()
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _evaluate_photo(settings: _Settings, job: _Job) -> _PhotoResult:
    start, cpu = time.perf_counter(), time.process_time()
    try:
        original = load_original(job.path, settings.max_side)
    except (InputError, MediaError) as exc:
        return _PhotoResult(job, error=str(exc))
    quality = pdq_of(original).quality
    reference = tuple(codes_array(m.reference_codes(original)) for m in settings.methods)
    query = tuple(codes_array(m.query_codes(original)) for m in settings.methods)
    copy_codes: list[list[NDArray[np.uint8]]] = [[] for _ in settings.methods]
    copy_quality = np.zeros(len(settings.suite), dtype=np.int16)
    for index, transform in enumerate(settings.suite):
        rng = transform_rng(settings.seed, job.set_name, job.photo_index, transform.id)
        copy = transform.apply(original, rng)
        copy_quality[index] = pdq_of(copy).quality
        for codes, method in zip(copy_codes, settings.methods, strict=True):
            codes.append(codes_array(method.query_codes(copy)))
    distances = tuple(
        copy_distances(ref, codes) for ref, codes in zip(reference, copy_codes, strict=True)
    )
    return _PhotoResult(
        job,
        quality=quality,
        copy_quality=copy_quality,
        reference=reference,
        query=query,
        distances=distances,
        seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu,
    )


_WORKER_SETTINGS: _Settings | None = None


def _init_worker(settings: _Settings) -> None:
    global _WORKER_SETTINGS
    _WORKER_SETTINGS = settings


def _evaluate_in_worker(job: _Job) -> _PhotoResult:
    assert _WORKER_SETTINGS is not None, "worker started without its settings"
    return _evaluate_photo(_WORKER_SETTINGS, job)


def _run_jobs(
    settings: _Settings,
    jobs: list[_Job],
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> list[_PhotoResult]:
    results: list[_PhotoResult] = []
    if workers <= 1:
        for job in jobs:
            results.append(_evaluate_photo(settings, job))
            if progress:
                progress(len(results), len(jobs))
        return results
    # Workers come from a fresh server process, not forked from this one: a caller may run
    # threads (a progress bar) that a fork would copy mid-flight.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(settings,)
    ) as pool:
        # Large photos first, so that the last worker is not left with the slowest one.
        order = sorted(jobs, key=lambda j: -_size_hint(j.path))
        pending = {pool.submit(_evaluate_in_worker, job) for job in order}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    results.append(future.result())
                    if progress:
                        progress(len(results), len(jobs))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results


def _size_hint(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# -- aggregation, in the parent ---------------------------------------------------------


def _cumulative(distances: NDArray[np.int16]) -> tuple[int, ...]:
    counts = np.bincount(np.clip(distances, 0, BINS - 1), minlength=BINS)
    return tuple(int(v) for v in np.cumsum(counts))


def _set_figures(
    photo_set: PhotoSet,
    results: list[_PhotoResult],
    settings: _Settings,
    quality_floor: int,
    replicates: int,
) -> tuple[SetSummary, list[RecallCurve], list[PairStats], list[CopyQuality], list[TailFit]]:
    good = sorted((r for r in results if r.error is None), key=lambda r: r.job.photo_index)
    failed = tuple((r.job.path.name, r.error or "") for r in results if r.error is not None)
    suite = settings.suite
    copy_quality = (
        np.stack([r.copy_quality for r in good if r.copy_quality is not None])
        if good
        else np.zeros((0, len(suite)), dtype=np.int16)
    )
    passes = copy_quality >= quality_floor
    curves: list[RecallCurve] = []
    for k, method in enumerate(settings.methods):
        matrix = (
            np.stack([r.distances[k] for r in good])
            if good
            else np.zeros((0, len(suite)), dtype=np.int16)
        )
        for j, transform in enumerate(suite):
            column = matrix[:, j]
            curves.append(
                RecallCurve(
                    set=photo_set.name,
                    method=method.name,
                    transform=transform.id,
                    family=transform.family,
                    strength=transform.strength,
                    copies=len(column),
                    within=_cumulative(column),
                    within_quality=_cumulative(column[passes[:, j]]),
                )
            )
    quality = [
        CopyQuality(photo_set.name, t.id, len(good), int((~passes[:, j]).sum()))
        for j, t in enumerate(suite)
    ]
    pairs: list[PairStats] = []
    tails: list[TailFit] = []
    names = [r.job.path.name for r in good]
    qualities = np.array([r.quality for r in good], dtype=np.int16)
    upload_ok = qualities >= quality_floor
    if upload_ok.sum() < 2:  # nothing left to fit once gated: fit every pair
        upload_ok[:] = True
    if len(good) >= 2:
        for k, method in enumerate(settings.methods):
            matrix = pairwise_min_distances(
                [r.reference[k] for r in good], [r.query[k] for r in good]
            )
            pairs.append(
                _pair_stats(photo_set.name, method.name, matrix, names, qualities, quality_floor)
            )
            tails.append(
                fit_tail(
                    matrix,
                    set_name=photo_set.name,
                    method=method.name,
                    signal_type=method.signal_type,
                    valid=np.broadcast_to(upload_ok[None, :], matrix.shape),
                    quality_floor=quality_floor,
                    replicates=replicates,
                    seed=settings.seed,
                )
            )
    summary = SetSummary(
        name=photo_set.name,
        photos=len(good),
        copies=int(copy_quality.size),
        originals_below_floor=sum(r.quality < quality_floor for r in good),
        copies_below_floor=int((~passes).sum()),
        failed=failed,
    )
    return summary, curves, pairs, quality, tails


def _pair_stats(
    set_name: str,
    method: str,
    matrix: NDArray[np.int16],
    names: list[str],
    qualities: NDArray[np.int16],
    quality_floor: int,
) -> PairStats:
    rows, cols = np.triu_indices(len(names), k=1)
    forward, backward = matrix[rows, cols], matrix[cols, rows]  # upload = cols, rows
    values = np.minimum(forward, backward)
    histogram = np.bincount(np.clip(values, 0, BINS - 1), minlength=BINS)
    ok = qualities >= quality_floor
    gated = np.minimum(np.where(ok[cols], forward, BINS), np.where(ok[rows], backward, BINS))
    gated = gated[gated < BINS]
    nearest = np.argsort(values, kind="stable")[:CLOSEST_PAIRS]
    return PairStats(
        set=set_name,
        method=method,
        photos=len(names),
        pairs=len(values),
        histogram=tuple(int(v) for v in histogram),
        minimum=int(values.min()) if len(values) else None,
        closest=tuple(
            ClosePair(
                names[rows[i]],
                names[cols[i]],
                int(values[i]),
                int(qualities[rows[i]]),
                int(qualities[cols[i]]),
            )
            for i in nearest
        ),
        gated_pairs=len(gated),
        gated_histogram=tuple(int(v) for v in np.bincount(gated, minlength=BINS)),
    )


def _environment(workers: int) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for package in ("lightkeeper", "numpy", "pillow", "matplotlib"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    cpu = platform.processor() or "unknown"
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "versions": {"python": platform.python_version(), **versions},
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()},
        "workers": workers,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_evaluation(
    photo_sets: Sequence[PhotoSet],
    *,
    methods: Sequence[Method] | None = None,
    suite: Sequence[Transform] | None = None,
    seed: int = 0,
    limit: int | None = None,
    workers: int | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    replicates: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate `methods` (default: plain PDQ and PDQ with its eight variants) on the
    photo sets under the transform `suite` (default: `standard_suite`).

    `limit` takes the first N photos of each set (for quick runs); `workers` processes
    (default: every available core; 1 runs in this process); `replicates` of the
    calibration bootstrap; `progress(done, total)` is called after each photo.

    Workers are started by a fork server (or spawned), not forked from the caller, so a
    script that calls this with more than one worker needs Python's usual guard,
    ``if __name__ == "__main__":``; methods and transforms must be picklable.
    """
    from lightkeeper.signals.base import ImageSignalType
    from lightkeeper.signals.registry import get

    started = time.perf_counter()
    chosen = (
        tuple(methods) if methods is not None else tuple(get_method(n) for n in DEFAULT_METHODS)
    )
    names = [m.name for m in chosen]
    if not chosen or len(set(names)) != len(names):
        raise ValueError(f"methods must be one or more, with distinct names (got {names})")
    transforms = tuple(suite) if suite is not None else standard_suite()
    ids = [t.id for t in transforms]
    if len(set(ids)) != len(ids):
        raise ValueError("two transforms of the suite share an id")
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16 pixels, got {max_side}")
    signal = get("pdq")
    floor = signal.default_quality_floor if isinstance(signal, ImageSignalType) else 0
    settings = _Settings(chosen, transforms, seed, max_side)
    jobs = [
        _Job(s, photo_set.name, i, path)
        for s, photo_set in enumerate(photo_sets)
        for i, path in enumerate(photo_set.photos[:limit])
    ]
    count = workers if workers is not None else _available_cores()
    results = _run_jobs(settings, jobs, max(1, min(count, len(jobs))), progress)

    summaries: list[SetSummary] = []
    curves: list[RecallCurve] = []
    pairs: list[PairStats] = []
    quality: list[CopyQuality] = []
    tails: list[TailFit] = []
    for s, photo_set in enumerate(photo_sets):
        mine = [r for r in results if r.job.set_index == s]
        summary, c, p, q, t = _set_figures(photo_set, mine, settings, floor, replicates)
        summaries.append(summary)
        curves += c
        pairs += p
        quality += q
        tails += t
    environment = _environment(count)
    # Worker time per photo, summed: wall clock, and CPU time (which other load on the
    # machine inflates less), to tell a slow run from a busy machine.
    environment["photo_seconds"] = round(sum(r.seconds for r in results), 3)
    environment["photo_cpu_seconds"] = round(sum(r.cpu_seconds for r in results), 3)
    return Evaluation(
        seed=seed,
        max_side=max_side,
        limit=limit,
        signal_type="pdq",
        quality_floor=floor,
        default_threshold=signal.default_threshold,
        methods=tuple(names),
        transforms=tuple(ids),
        suite=describe_suite(transforms),
        sets=tuple(summaries),
        recall=tuple(curves),
        pairs=tuple(pairs),
        quality=tuple(quality),
        tails=tuple(tails),
        environment=environment,
        seconds=round(time.perf_counter() - started, 3),
    )
