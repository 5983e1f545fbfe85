"""Policy: which matches lead to which actions.

A policy is an ordered list of rules. A rule *selects* matches (by bank, classification,
signal type, exact or perceptual, distance) and names the *actions* to take for them:

- ``block``: the match call answers "reject";
- ``quarantine``: keep the content, encrypted, in the vault;
- ``review``: open or join a case in the review queue, with a priority from the
  classification (1 is the most urgent);
- ``notify``: send the platform a webhook.

Every rule that selects a match applies to it (actions are a union, never "first rule
wins"), so adding a rule can only add actions, and a reader can check each rule on its own.
There is no "report" action, on purpose: a report is made from a case after a person has
decided, never by a rule. Perceptual matches are the reason (a look-alike is not the listed
image until someone has looked).

Only matches that act reach a policy: a block bank's matches that no allow bank suppressed
(`MatchResult.matches`). Suppressed and allow-bank matches are kept as evidence elsewhere.

Documents are JSON (`Policy.from_dict`, `to_dict`); every field is checked and an unknown
one is an error rather than ignored, since a typo in a rule ("bank" for "banks") would
otherwise silently widen it. `DEFAULT_POLICY` is what a new store runs with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args

from lightkeeper.errors import InvalidPolicy
from lightkeeper.matching.evidence import Match
from lightkeeper.matching.follower import index_kind

__all__ = [
    "ACTIONS",
    "DEFAULT_POLICY",
    "Action",
    "Decision",
    "MatchActions",
    "Policy",
    "Rule",
    "changes",
    "match_kind",
]

Action = Literal["block", "quarantine", "review", "notify"]
#: Actions in the order they are listed and carried out.
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
MatchKind = Literal["any", "exact", "perceptual"]
_KINDS: Final[tuple[str, ...]] = get_args(MatchKind)

#: Review priorities run from 1 (look first) to this.
LOWEST_PRIORITY: Final = 9
_MAX_DISTANCE: Final = 256
_MAX_NAME: Final = 100


def match_kind(match: Match) -> Literal["exact", "perceptual"]:
    """ "exact" for a cryptographic-hash match (the very file), "perceptual" otherwise (a
    picture that looks the same, even at distance 0)."""
    return "exact" if index_kind(match.signal_type) == "exact" else "perceptual"


@dataclass(frozen=True, slots=True)
class Rule:
    """Selects matches and names actions. An empty selector tuple means "any"."""

    name: str
    actions: tuple[Action, ...]
    banks: tuple[str, ...] = ()
    classifications: tuple[str, ...] = ()
    signal_types: tuple[str, ...] = ()
    match: MatchKind = "any"
    #: Only matches at most this far (bits); None: any distance the bank accepted.
    max_distance: int | None = None
    description: str = ""

    def selects(self, m: Match) -> bool:
        return (
            (not self.banks or m.bank in self.banks)
            and (not self.classifications or m.classification in self.classifications)
            and (not self.signal_types or m.signal_type in self.signal_types)
            and (self.match == "any" or match_kind(m) == self.match)
            and (self.max_distance is None or m.distance <= self.max_distance)
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "actions": list(self.actions)}
        for key in ("banks", "classifications", "signal_types"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.match != "any":
            out["match"] = self.match
        if self.max_distance is not None:
            out["max_distance"] = self.max_distance
        if self.description:
            out["description"] = self.description
        return out

    @classmethod
    def from_dict(cls, data: object, where: str) -> Rule:
        doc = _mapping(data, where)
        _known(doc, where, required={"name", "actions"}, optional=_RULE_OPTIONAL)
        name = _text(doc["name"], f"{where}.name")
        actions = _strings(doc["actions"], f"{where}.actions")
        for action in actions:
            if action not in ACTIONS:
                raise InvalidPolicy(
                    f"{where}.actions: unknown action {action!r} (one of {', '.join(ACTIONS)})"
                )
        if not actions:
            raise InvalidPolicy(f"{where}.actions: a rule must name at least one action")
        kind = doc.get("match", "any")
        if kind not in _KINDS:
            raise InvalidPolicy(f"{where}.match: {kind!r} is not one of {', '.join(_KINDS)}")
        distance = doc.get("max_distance")
        if distance is not None and (
            isinstance(distance, bool)
            or not isinstance(distance, int)
            or not 0 <= distance <= _MAX_DISTANCE
        ):
            raise InvalidPolicy(
                f"{where}.max_distance: a whole number of bits from 0 to {_MAX_DISTANCE}"
            )
        return cls(
            name=name,
            actions=tuple(a for a in ACTIONS if a in actions),
            banks=_selector(doc, "banks", where),
            classifications=_selector(doc, "classifications", where),
            signal_types=_selector(doc, "signal_types", where),
            match=cast(MatchKind, kind),
            max_distance=distance,
            description=_text(doc.get("description", ""), f"{where}.description", empty=True),
        )


_RULE_OPTIONAL: Final = frozenset(
    {"banks", "classifications", "signal_types", "match", "max_distance", "description"}
)


@dataclass(frozen=True, slots=True)
class MatchActions:
    """What the policy does about one match: the rules that selected it and their actions."""

    match: Match
    rules: tuple[str, ...]
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy applied to one content's matches."""

    per_match: tuple[MatchActions, ...]
    #: Every action for the content, in `ACTIONS` order.
    actions: tuple[Action, ...]
    #: The most urgent review priority among the matches to review; None: no review.
    priority: int | None

    @property
    def reject(self) -> bool:
        """Whether the upload is refused (a ``block`` action)."""
        return "block" in self.actions

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": list(self.actions),
            "priority": self.priority,
            "matches": [
                {
                    "bank": m.match.bank,
                    "entry_id": m.match.entry_id,
                    "signal_type": m.match.signal_type,
                    "rules": list(m.rules),
                    "actions": list(m.actions),
                }
                for m in self.per_match
            ],
        }


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    #: Review priority by classification; any other (or none) gets `default_priority`.
    priorities: Mapping[str, int] = field(default_factory=dict)
    default_priority: int = 3

    def decide(self, matches: Iterable[Match]) -> Decision:
        """The actions for one content's (acting) matches."""
        per_match: list[MatchActions] = []
        review: list[int] = []
        taken: set[str] = set()
        for m in matches:
            chosen = [rule for rule in self.rules if rule.selects(m)]
            actions = {a for rule in chosen for a in rule.actions}
            per_match.append(MatchActions(m, tuple(r.name for r in chosen), _ordered(actions)))
            taken |= actions
            if "review" in actions:
                review.append(self.priority_of(m.classification))
        return Decision(tuple(per_match), _ordered(taken), min(review, default=None))

    def priority_of(self, classification: str | None) -> int:
        if classification is None:
            return self.default_priority
        return self.priorities.get(classification, self.default_priority)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": [rule.to_dict() for rule in self.rules],
            "priorities": dict(sorted(self.priorities.items())),
            "default_priority": self.default_priority,
        }

    @classmethod
    def from_dict(cls, data: object) -> Policy:
        """A policy from its JSON document; `InvalidPolicy` saying where it is wrong."""
        doc = _mapping(data, "policy")
        _known(doc, "policy", required={"rules"}, optional={"priorities", "default_priority"})
        raw_rules = doc["rules"]
        if not isinstance(raw_rules, list):
            raise InvalidPolicy("policy.rules: a list of rules")
        rules = tuple(Rule.from_dict(r, f"policy.rules[{i}]") for i, r in enumerate(raw_rules))
        names = [rule.name for rule in rules]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise InvalidPolicy(f"policy.rules: rule names must be unique ({', '.join(twice)})")
        priorities = _mapping(doc.get("priorities", {}), "policy.priorities")
        checked = {
            _text(k, "policy.priorities"): _priority(v, f"policy.priorities.{k}")
            for k, v in priorities.items()
        }
        default = _priority(doc.get("default_priority", 3), "policy.default_priority")
        return cls(rules, checked, default)


def _ordered(actions: Iterable[str]) -> tuple[Action, ...]:
    present = set(actions)
    return tuple(a for a in ACTIONS if a in present)


# --- document checks ----------------------------------------------------------------------


def _mapping(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidPolicy(f"{where}: an object, got {type(data).__name__}")
    return cast(Mapping[str, Any], data)


def _known(
    doc: Mapping[str, Any], where: str, *, required: set[str], optional: Iterable[str]
) -> None:
    unknown = sorted(str(k) for k in doc if k not in required and k not in set(optional))
    if unknown:
        raise InvalidPolicy(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    missing = sorted(required - set(doc))
    if missing:
        raise InvalidPolicy(f"{where}: missing field(s) {', '.join(map(repr, missing))}")


def _text(value: object, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise InvalidPolicy(f"{where}: a non-empty string" if not empty else f"{where}: a string")
    if len(value) > (_MAX_NAME if not empty else 10 * _MAX_NAME):
        raise InvalidPolicy(f"{where}: too long")
    return value


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list):
        raise InvalidPolicy(f"{where}: a list of strings")
    return [_text(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _selector(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    values = _strings(doc.get(key, []), f"{where}.{key}")
    return tuple(dict.fromkeys(values))


def _priority(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= LOWEST_PRIORITY:
        raise InvalidPolicy(f"{where}: a whole number from 1 (most urgent) to {LOWEST_PRIORITY}")
    return value


#: What a new store runs with: every acting match is refused, its content quarantined and a
#: case opened for review. Exact and perceptual matches get the same actions; what differs is
#: downstream: nothing is reported on a perceptual match without a recorded human decision.
#: Classifications of the industry scheme (A1 most severe) set the review order.
DEFAULT_POLICY: Final = Policy.from_dict(
    {
        "rules": [
            {
                "name": "exact-match",
                "match": "exact",
                "actions": ["block", "quarantine", "review"],
                "description": "The very file on a block list: refuse, keep, review.",
            },
            {
                "name": "perceptual-match",
                "match": "perceptual",
                "actions": ["block", "quarantine", "review"],
                "description": "A picture within a bank's threshold of a listed one: refuse, "
                "keep, and have a person decide before anything is reported.",
            },
        ],
        "priorities": {"A1": 1, "A2": 2, "B1": 2, "B2": 3, "A": 1, "B": 2, "C": 3},
        "default_priority": 3,
    }
)


def changes(
    old: Policy, new: Policy, past: Sequence[Sequence[Match]]
) -> list[tuple[int, Decision, Decision]]:
    """Dry run: for each past content's matches (by position in `past`), the old and the new
    decision where they differ in actions or priority."""
    out = []
    for i, matches in enumerate(past):
        before, after = old.decide(matches), new.decide(matches)
        if (before.actions, before.priority) != (after.actions, after.priority):
            out.append((i, before, after))
    return out
