"""The evaluation run: photos in, an `Evaluation` (JSON-able figures) out.

For every photo of every set the harness decodes the file once (with the same decoder as
uploads, EXIF orientation applied), scales it down to at most `max_side` pixels on its long
side (PDQ looks at 512 pixels anyway; this keeps every transform cheap and a full corpus
run within minutes), and then, for each transform of the suite, makes the copy and asks
every method for its codes. It measures:

- **recall**: per (set, method, transform), how many copies lie within each threshold
  0..256 of their original (`RecallCurve.within`, cumulative, so recall at a threshold is
  one lookup), and how many of those also pass the PDQ quality floor; and the recall the
  must-show checks judge (`RecallCurve.gated_recall`): over the photos whose original
  passes PDQ's quality floor, the copies the matcher would match (a whole-image code of a
  copy under the floor does not count, as the matcher looks up no such hash);
- **unrelated pairs**: per (set, method), the distance between every two distinct
  originals of the set, one as the banked reference and the other as the upload (never
  across sets): the histogram, the minimum, the closest pairs, and the false-match count
  at each threshold (`PairStats`), and the fitted tail that calibration uses (`TailFit`);
- **quality**: the share of originals and of copies under the PDQ quality floor.

A method may be measured on some of the copies only (`lightkeeper.evaluation.scopes`: some
transform families, some sets, 1 in k photos), as the region signal is, whose codes cost
tens of milliseconds per copy; and a run may make a set's copies for 1 in k photos only,
for every method (a set kept for its unrelated pairs: `Scope.set_every`). Unrelated pairs
always cover every photo. Where a method's copies are a sample of the photos, the methods
measured on every copy are also counted on that same sample (`RecallCurve.sample`), so
that a comparison is made on the same copies. A copy that no method is measured on is not
made at all. A paired method (`lightkeeper.evaluation.methods.PairedMethod`) is measured
as its matcher counts: over the compatible code pairs only.

Work is spread over processes, one photo at a time; results do not depend on how many.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from lightkeeper.cpus import available_cpus
from lightkeeper.errors import InputError, MediaError
from lightkeeper.evaluation.calibration import TailFit, fit_tail
from lightkeeper.evaluation.corpus import PhotoSet
from lightkeeper.evaluation.methods import (
    DEFAULT_METHODS,
    FAR,
    Method,
    PairedMethod,
    allowed_matrix,
    codes_array,
    copy_distances,
    get_method,
    is_whole_image,
    pairwise_min_distances,
    pdq_of,
)
from lightkeeper.evaluation.pairs import unrelated_pairs
from lightkeeper.evaluation.results import (
    BINS,
    SCHEMA,
    ClosePair,
    CopyQuality,
    Evaluation,
    PairStats,
    RecallCurve,
    SetSummary,
)
from lightkeeper.evaluation.scopes import Scope
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

DEFAULT_MAX_SIDE: Final = 1024
#: Closest unrelated pairs listed per set and method, for a person to look at.
CLOSEST_PAIRS: Final = 5


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
    #: One per method: the copies it is measured on.
    scopes: tuple[Scope, ...]
    #: One per method: whether it is a `PairedMethod` (checked once, not per copy).
    paired: tuple[bool, ...]
    #: PDQ's quality floor: a copy under it is not looked up with its whole-image codes.
    quality_floor: int = 0


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
    #: PDQ quality of each copy, -1 where no method measured the transform on this photo.
    copy_quality: NDArray[np.int16] | None = None
    #: Per method: the original's reference codes, its query codes, and (one per
    #: transform) the distance of each copy to the reference, -1 where not measured.
    reference: tuple[NDArray[np.uint8], ...] = ()
    query: tuple[NDArray[np.uint8], ...] = ()
    distances: tuple[NDArray[np.int16], ...] = ()
    #: The same, counting only the codes the matcher looks a copy up with: its whole-image
    #: codes only where its PDQ quality passes the floor (`FAR` when no code is left).
    gated: tuple[NDArray[np.int16], ...] = ()
    #: Per method: the names of the reference and query codes (empty unless paired).
    reference_names: tuple[tuple[str, ...], ...] = ()
    query_names: tuple[tuple[str, ...], ...] = ()
    seconds: float = 0.0
    cpu_seconds: float = 0.0


NOT_MEASURED: Final = -1

#: `PairedMethod.compatible` answers, per method name, kept for the life of a worker.
_COMPATIBLE: dict[str, dict[tuple[str, str], bool]] = {}


def _codes(
    method: Method, paired: bool, image: Image.Image, *, reference: bool
) -> tuple[NDArray[np.uint8], tuple[str, ...]]:
    """A method's codes of an image, and their names when it is paired."""
    if paired:
        assert isinstance(method, PairedMethod)
        named = (
            method.named_reference_codes(image) if reference else method.named_query_codes(image)
        )
        return codes_array([code for _, code in named]), tuple(name for name, _ in named)
    codes = method.reference_codes(image) if reference else method.query_codes(image)
    return codes_array(codes), ()


def _evaluate_photo(settings: _Settings, job: _Job) -> _PhotoResult:
    start, cpu = time.perf_counter(), time.process_time()
    try:
        original = load_original(job.path, settings.max_side)
    except (InputError, MediaError) as exc:
        return _PhotoResult(job, error=str(exc))
    quality = pdq_of(original).quality
    methods, suite = settings.methods, settings.suite
    reference = [
        _codes(m, p, original, reference=True)
        for m, p in zip(methods, settings.paired, strict=True)
    ]
    query = [
        _codes(m, p, original, reference=False)
        for m, p in zip(methods, settings.paired, strict=True)
    ]
    covered = np.array(
        [
            [
                scope.covers_photo(job.set_name, job.photo_index, settings.seed)
                and scope.covers_family(t.family)
                for t in suite
            ]
            for scope in settings.scopes
        ],
        dtype=bool,
    ).reshape(len(methods), len(suite))
    copy_codes: list[list[tuple[NDArray[np.uint8], tuple[str, ...]]]] = [[] for _ in methods]
    copy_quality = np.full(len(suite), NOT_MEASURED, dtype=np.int16)
    for index, transform in enumerate(suite):
        if not covered[:, index].any():
            continue  # no method is measured on this copy: it is not made
        rng = transform_rng(settings.seed, job.set_name, job.photo_index, transform.id)
        copy = transform.apply(original, rng)
        copy_quality[index] = pdq_of(copy).quality
        for k, method in enumerate(methods):
            if covered[k, index]:
                copy_codes[k].append(_codes(method, settings.paired[k], copy, reference=False))
    distances, gated = [], []
    for k, method in enumerate(methods):
        found = np.full(len(suite), NOT_MEASURED, dtype=np.int16)
        found_gated = found.copy()
        if copy_codes[k]:
            queries = [codes for codes, _ in copy_codes[k]]
            ref_codes, ref_names = reference[k]
            # Which query codes the matcher looks up: not the whole image's when the copy
            # is under the floor (an unpaired method's codes are all the whole image's).
            low = copy_quality[covered[k]] < settings.quality_floor
            if settings.paired[k]:
                assert isinstance(method, PairedMethod)
                cache = _COMPATIBLE.setdefault(method.name, {})
                allowed = np.concatenate(
                    [allowed_matrix(method, ref_names, names, cache) for _, names in copy_codes[k]],
                    axis=1,
                )
                looked_up = np.concatenate(
                    [
                        [not (dropped and is_whole_image(n)) for n in names]
                        for dropped, (_, names) in zip(low, copy_codes[k], strict=True)
                    ]
                ).astype(np.bool_)
                found[covered[k]] = copy_distances(ref_codes, queries, allowed)
                found_gated[covered[k]] = copy_distances(
                    ref_codes, queries, allowed & looked_up[None, :]
                )
            else:
                found[covered[k]] = copy_distances(ref_codes, queries)
                found_gated[covered[k]] = np.where(low, FAR, found[covered[k]])
        distances.append(found)
        gated.append(found_gated)
    return _PhotoResult(
        job,
        quality=quality,
        copy_quality=copy_quality,
        reference=tuple(codes for codes, _ in reference),
        query=tuple(codes for codes, _ in query),
        distances=tuple(distances),
        gated=tuple(gated),
        reference_names=tuple(names for _, names in reference),
        query_names=tuple(names for _, names in query),
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
    default_threshold: int,
) -> tuple[SetSummary, list[RecallCurve], list[PairStats], list[CopyQuality], list[TailFit]]:
    good = sorted((r for r in results if r.error is None), key=lambda r: r.job.photo_index)
    failed = tuple((r.job.path.name, r.error or "") for r in results if r.error is not None)
    suite = settings.suite
    copy_quality = (
        np.stack([r.copy_quality for r in good if r.copy_quality is not None])
        if good
        else np.zeros((0, len(suite)), dtype=np.int16)
    )
    made = copy_quality != NOT_MEASURED
    passes = copy_quality >= quality_floor
    original_ok = np.array([r.quality >= quality_floor for r in good], dtype=np.bool_)
    curves = _recall_curves(photo_set.name, good, settings, passes, original_ok)
    quality = [
        CopyQuality(
            photo_set.name, t.id, int(made[:, j].sum()), int((made[:, j] & ~passes[:, j]).sum())
        )
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
            references = [r.reference[k] for r in good]
            queries = [r.query[k] for r in good]
            all_pairs = None
            if settings.paired[k]:
                assert isinstance(method, PairedMethod)
                matrix, kinds = unrelated_pairs(
                    references,
                    queries,
                    uploads_ok=upload_ok,
                    reference_names=[r.reference_names[k] for r in good],
                    query_names=[r.query_names[k] for r in good],
                    compatible=method.compatible,
                )
                all_pairs = pairwise_min_distances(references, queries)
            else:
                matrix, kinds = unrelated_pairs(references, queries, uploads_ok=upload_ok)
            pairs.append(
                _pair_stats(
                    photo_set.name, method.name, matrix, names, qualities, quality_floor, all_pairs
                )
            )
            tails.append(
                fit_tail(
                    matrix,
                    set_name=photo_set.name,
                    method=method.name,
                    signal_type=method.signal_type,
                    kinds=kinds,
                    uploads_ok=upload_ok,
                    quality_floor=quality_floor,
                    replicates=replicates,
                    seed=settings.seed,
                    judged_at=default_threshold,
                )
            )
    summary = SetSummary(
        name=photo_set.name,
        photos=len(good),
        copies=int(made.sum()),
        originals_below_floor=sum(r.quality < quality_floor for r in good),
        copies_below_floor=int((made & ~passes).sum()),
        failed=failed,
    )
    return summary, curves, pairs, quality, tails


def _recall_curves(
    set_name: str,
    good: list[_PhotoResult],
    settings: _Settings,
    passes: NDArray[np.bool_],
    original_ok: NDArray[np.bool_],
) -> list[RecallCurve]:
    """Each method's curves on its own copies; then, for each photo sample of a method
    measured on a sample, the other methods' curves on the same copies (where they
    measured all of them), so that methods are compared on the same copies. `passes`:
    which copies pass the quality floor; `original_ok`: which photos do."""
    suite = settings.suite

    def stacked(field: str, k: int) -> NDArray[np.int16]:
        if not good:
            return np.zeros((0, len(suite)), dtype=np.int16)
        return np.stack([getattr(r, field)[k] for r in good])

    matrices = [stacked("distances", k) for k in range(len(settings.methods))]
    gated = [stacked("gated", k) for k in range(len(settings.methods))]
    samples = [scope.sample(settings.seed, set_name) for scope in settings.scopes]
    curves: list[RecallCurve] = []
    seen: set[tuple[str, str, str]] = set()

    def add(k: int, j: int, rows: NDArray[np.bool_], sample: str) -> None:
        key = (settings.methods[k].name, suite[j].id, sample)
        if key in seen:
            return
        seen.add(key)
        column = matrices[k][rows, j]
        usable = gated[k][rows & original_ok, j]
        transform = suite[j]
        curves.append(
            RecallCurve(
                set=set_name,
                method=settings.methods[k].name,
                transform=transform.id,
                family=transform.family,
                strength=transform.strength,
                copies=len(column),
                within=_cumulative(column),
                within_quality=_cumulative(column[passes[rows, j]]),
                sample=sample,
                gated_copies=len(usable),
                gated_within=_cumulative(usable),
            )
        )

    for k in range(len(settings.methods)):
        for j in range(len(suite)):
            rows = matrices[k][:, j] != NOT_MEASURED
            if rows.any():
                add(k, j, rows, samples[k])
    for k in range(len(settings.methods)):
        if not samples[k]:
            continue
        for j in range(len(suite)):
            rows = matrices[k][:, j] != NOT_MEASURED
            if not rows.any():
                continue
            for other in range(len(settings.methods)):
                if (
                    samples[other] != samples[k]
                    and (matrices[other][rows, j] != NOT_MEASURED).all()
                ):
                    add(other, j, rows, samples[k])
    return curves


def _pair_stats(
    set_name: str,
    method: str,
    matrix: NDArray[np.int16],
    names: list[str],
    qualities: NDArray[np.int16],
    quality_floor: int,
    all_pairs: NDArray[np.int16] | None = None,
) -> PairStats:
    rows, cols = np.triu_indices(len(names), k=1)
    forward, backward = matrix[rows, cols], matrix[cols, rows]  # upload = cols, rows
    values = np.minimum(forward, backward)
    histogram = np.bincount(np.clip(values, 0, BINS - 1), minlength=BINS)
    ok = qualities >= quality_floor
    gated = np.minimum(np.where(ok[cols], forward, BINS), np.where(ok[rows], backward, BINS))
    gated = gated[gated < BINS]
    nearest = np.argsort(values, kind="stable")[:CLOSEST_PAIRS]
    everything = None
    if all_pairs is not None and len(values):
        everything = int(np.minimum(all_pairs[rows, cols], all_pairs[cols, rows]).min())
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
        all_pairs_minimum=everything,
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
    scopes: Mapping[str, Scope] | None = None,
    copies_every: Mapping[str, int] | None = None,
) -> Evaluation:
    """Evaluate `methods` (default: plain PDQ and PDQ with its eight variants) on the
    photo sets under the transform `suite` (default: `standard_suite`).

    `scopes` restricts a method, by name, to some copies (`Scope`: transform families,
    sets, 1 in k photos); the others are measured on every copy, and every method's
    unrelated pairs on every photo. `copies_every` makes every method's copies in the
    named sets for 1 in K photos only (`Scope.set_every`). `limit` takes the first N
    photos of each set (for quick runs); `workers` processes (default: every available
    core; 1 runs in this process); `replicates` of the
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
    chosen_scopes = dict(scopes or {})
    unknown = sorted(set(chosen_scopes) - set(names))
    if unknown:
        raise ValueError(f"scopes given for methods not in the run: {unknown}")
    if copies_every:
        unknown = sorted(set(copies_every) - {s.name for s in photo_sets})
        if unknown:
            raise ValueError(f"copies sampled in sets not in the run: {unknown}")
        chosen_scopes = {
            n: chosen_scopes.get(n, Scope()).with_set_samples(copies_every) for n in names
        }
    signal = get("pdq")
    floor = signal.default_quality_floor if isinstance(signal, ImageSignalType) else 0
    settings = _Settings(
        chosen,
        transforms,
        seed,
        max_side,
        tuple(chosen_scopes.get(n, Scope()) for n in names),
        tuple(isinstance(m, PairedMethod) for m in chosen),
        floor,
    )
    jobs = [
        _Job(s, photo_set.name, i, path)
        for s, photo_set in enumerate(photo_sets)
        for i, path in enumerate(photo_set.photos[:limit])
    ]
    count = workers if workers is not None else available_cpus()
    results = _run_jobs(settings, jobs, max(1, min(count, len(jobs))), progress)

    summaries: list[SetSummary] = []
    curves: list[RecallCurve] = []
    pairs: list[PairStats] = []
    quality: list[CopyQuality] = []
    tails: list[TailFit] = []
    for s, photo_set in enumerate(photo_sets):
        mine = [r for r in results if r.job.set_index == s]
        summary, c, p, q, t = _set_figures(
            photo_set, mine, settings, floor, replicates, signal.default_threshold
        )
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
        scopes={n: scope.describe(seed) for n, scope in chosen_scopes.items() if not scope.is_full},
        paired=tuple(n for n, p in zip(names, settings.paired, strict=True) if p),
    )
