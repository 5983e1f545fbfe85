"""Type stub for the compiled core (`_hamming.c`); see that file for the design."""

from collections.abc import Sequence
from typing import Any

from numpy.typing import NDArray
from typing_extensions import Buffer as _Buffer

# NumPy arrays export the buffer protocol, but on Python 3.11 type checkers cannot see it.
Buffer = _Buffer | NDArray[Any]

NCHUNKS: int
DIR_BITS: int
DIR_LEN: int
LOW_PAD: int
MAX_THRESHOLD: int
KERNEL: str
BATCH_KERNEL: str

Segment = (
    tuple[Buffer, Buffer, Buffer, int, Buffer | None, Buffer | None, Buffer | None]
    | tuple[
        Buffer,
        Buffer,
        Buffer,
        int,
        Buffer | None,
        Buffer | None,
        Buffer | None,
        Buffer | None,
        Buffer | None,
        Buffer | None,
    ]
)

def search(
    queries: Buffer,
    nq: int,
    radius: int,
    thresholds: Sequence[int] | None,
    segments: tuple[Segment, ...],
    /,
) -> list[list[tuple[int, int]]]: ...
def search_batch(
    queries: Buffer,
    nq: int,
    radius: int,
    thresholds: Sequence[int] | None,
    segments: tuple[Segment, ...],
    workers: int,
    group_bits: int = 0,
    join: int = -1,
    portable: bool = False,
    /,
) -> list[list[tuple[int, int]]]: ...
def build_tables(
    codes: Buffer,
    n: int,
    dirs: Buffer,
    lows: Buffer,
    slots: Buffer,
    chunks: Sequence[int],
    paired: bool = False,
    /,
) -> None: ...
def xxh64(data: Buffer, seed: int = 0, /) -> int: ...
