"""Checking what callers hand to the indexes, with messages that say what was expected.

Arrays that are already right pass through without a copy: a single query must not pay for it.
"""

from __future__ import annotations

import operator
from typing import Final

import numpy as np
from numpy.typing import NDArray

CODE_BYTES: Final = 32
CODE_BITS: Final = 8 * CODE_BYTES


def as_codes(codes: object, what: str) -> NDArray[np.uint8]:
    """A C-contiguous uint8 array of shape (n, 32); other layouts are copied, dtypes refused."""
    if (
        type(codes) is np.ndarray
        and codes.dtype == np.uint8
        and codes.ndim == 2
        and codes.shape[1] == CODE_BYTES
        and codes.flags.c_contiguous
    ):
        return codes  # the common case, checked cheaply: single queries are latency-bound
    arr = np.asarray(codes)
    if arr.dtype != np.uint8:
        raise ValueError(
            f"{what} must be a uint8 array of shape (n, {CODE_BYTES}), got dtype {arr.dtype}"
            " (a code is bytes.fromhex(pdq_hex); np.frombuffer(b''.join(codes), np.uint8)"
            ".reshape(-1, 32) stacks them)"
        )
    if arr.ndim != 2 or arr.shape[1] != CODE_BYTES:
        raise ValueError(f"{what} must have shape (n, {CODE_BYTES}), got {arr.shape}")
    return np.ascontiguousarray(arr)


def as_ids(ids: object) -> NDArray[np.int64]:
    """A 1-D int64 array; other integer types are converted when every value fits."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be a 1-D int64 array, got shape {arr.shape}")
    if arr.dtype == np.int64:
        return arr
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers (int64), got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError("ids must fit in int64")
    return arr.astype(np.int64)


def as_radius(radius: object) -> int:
    """An int in 0..256 (a bool is refused: `True` as a radius is surely a mistake)."""
    if isinstance(radius, bool):
        raise TypeError("radius must be an integer")
    r = operator.index(radius)  # type: ignore[arg-type]
    if not 0 <= r <= CODE_BITS:
        raise ValueError(f"radius must lie in 0..{CODE_BITS}, got {r}")
    return r
