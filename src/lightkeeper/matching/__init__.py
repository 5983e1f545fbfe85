"""Matching content against hash banks: the matcher, its evidence, and index following.

    from lightkeeper.banks import BankStore
    from lightkeeper.matching import Matcher

    with BankStore.open() as store:
        result = Matcher(store).match_file("upload.jpg")
        print(result.to_dict())

- `Matcher` (`matcher.py`): file, bytes or hashes -> `MatchResult`.
- `Match`, `SuppressedMatch`, `MatchResult` (`evidence.py`): what was found, with evidence.
- `IndexFollower` (`follower.py`): the in-memory indexes, loaded from a snapshot and kept
  current from the change log (`FollowerStatus` says how current).
- Region matching, for banks with regions on (docs/matching.md): `region_codes.py` (the
  region codes of a banked image and of an upload) and `region_index.py`
  (the banked codes in memory, following their entries' changes).
"""

from lightkeeper.matching.evidence import AS_STORED, ORIGINAL, Match, MatchResult, SuppressedMatch
from lightkeeper.matching.follower import FollowerStatus, IndexFollower
from lightkeeper.matching.matcher import Matcher

__all__ = [
    "AS_STORED",
    "ORIGINAL",
    "FollowerStatus",
    "IndexFollower",
    "Match",
    "MatchResult",
    "Matcher",
    "SuppressedMatch",
]
