"""Matching content against hash banks: the matcher, its evidence, and index following.

    from lightkeeper.banks import BankStore
    from lightkeeper.matching import Matcher

    with BankStore.open() as store:
        result = Matcher(store).match_file("upload.jpg")
        print(result.to_dict())

- `Matcher` (`matcher.py`): file, bytes or hashes -> `MatchResult`.
- `Match`, `SuppressedMatch`, `MatchResult` (`evidence.py`): what was found, with evidence.
- `IndexFollower` (`follower.py`): the in-memory indexes, kept current from the change log.
"""

from lightkeeper.matching.evidence import AS_STORED, ORIGINAL, Match, MatchResult, SuppressedMatch
from lightkeeper.matching.follower import IndexFollower
from lightkeeper.matching.matcher import Matcher

__all__ = [
    "AS_STORED",
    "ORIGINAL",
    "IndexFollower",
    "Match",
    "MatchResult",
    "Matcher",
    "SuppressedMatch",
]
