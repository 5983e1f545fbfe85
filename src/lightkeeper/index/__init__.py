"""In-memory indexes over bank entries, one per comparison family.

- `HammingIndex`: exact radius search over 256-bit codes (PDQ), multi-index hashing in C.
- `ExactIndex`: exact-value lookup (MD5, SHA-1, SHA-256, normalised URLs).

Both map an entry's int64 id to its value, update in place (add, replace, remove) and save to
and load from versioned binary files.
"""

from lightkeeper.index.exact import ExactIndex
from lightkeeper.index.hamming import HammingIndex

__all__ = ["ExactIndex", "HammingIndex"]
