"""Policy rules: which acting matches lead to which actions, and documents that say so."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightkeeper.actions.policy import ACTIONS, DEFAULT_POLICY, Policy, changes
from lightkeeper.errors import InvalidPolicy
from lightkeeper.matching.evidence import Match


def _match(
    *,
    bank: str = "known",
    signal_type: str = "pdq",
    distance: int = 10,
    classification: str | None = None,
    entry_id: int = 1,
) -> Match:
    return Match(
        bank=bank,
        bank_kind="block",
        entry_id=entry_id,
        signal_type=signal_type,
        value="0" * 64,
        content_value="0" * 64,
        distance=distance,
        threshold=31,
        quality=90 if signal_type == "pdq" else None,
        variant="original",
        list_name=None,
        list_version=None,
        external_id=None,
        classification=classification,
    )


def test_default_policy_refuses_keeps_and_reviews_every_acting_match() -> None:
    for m in (_match(), _match(signal_type="sha256", distance=0), _match(signal_type="md5")):
        decision = DEFAULT_POLICY.decide([m])
        assert decision.reject
        assert decision.actions == ("block", "quarantine", "review")
    assert DEFAULT_POLICY.decide([_match(classification="A1")]).priority == 1
    assert DEFAULT_POLICY.decide([_match(classification="zzz")]).priority == 3


def test_no_match_means_no_action() -> None:
    decision = DEFAULT_POLICY.decide([])
    assert decision.actions == () and not decision.reject and decision.priority is None


def test_a_perceptual_match_at_distance_zero_is_still_perceptual() -> None:
    policy = Policy.from_dict(
        {"rules": [{"name": "exact-only", "match": "exact", "actions": ["block"]}]}
    )
    assert not policy.decide([_match(distance=0)]).reject
    assert policy.decide([_match(signal_type="sha256", distance=0)]).reject


def test_rules_select_by_bank_classification_signal_type_and_distance() -> None:
    policy = Policy.from_dict(
        {
            "rules": [
                {"name": "close", "max_distance": 8, "actions": ["block"]},
                {"name": "ncii", "banks": ["stopncii"], "actions": ["notify"]},
                {"name": "a1", "classifications": ["A1"], "actions": ["review"]},
                {"name": "md5", "signal_types": ["md5"], "actions": ["quarantine"]},
            ],
            "priorities": {"A1": 1},
        }
    )
    far = _match(distance=20)
    assert policy.decide([far]).actions == ()
    assert policy.decide([_match(distance=8)]).actions == ("block",)
    assert policy.decide([_match(bank="stopncii", distance=20)]).actions == ("notify",)
    decision = policy.decide([_match(classification="A1", distance=20)])
    assert decision.actions == ("review",) and decision.priority == 1
    both = policy.decide([_match(signal_type="md5", distance=0), far])
    assert both.actions == ("block", "quarantine")  # md5 at 0 is also within 8 bits
    assert [m.rules for m in both.per_match] == [("close", "md5"), ()]


def test_actions_are_the_union_of_every_selecting_rule_in_a_fixed_order() -> None:
    policy = Policy.from_dict(
        {
            "rules": [
                {"name": "a", "actions": ["notify", "review"]},
                {"name": "b", "actions": ["block", "review"]},
            ]
        }
    )
    assert policy.decide([_match()]).actions == ("block", "review", "notify")


def test_the_most_urgent_priority_among_reviewed_matches_wins() -> None:
    decision = DEFAULT_POLICY.decide(
        [_match(classification="B2"), _match(classification="A2", entry_id=2)]
    )
    assert decision.priority == 2


def test_a_document_round_trips() -> None:
    again = Policy.from_dict(json.loads(json.dumps(DEFAULT_POLICY.to_dict())))
    assert again == DEFAULT_POLICY


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([], "policy: an object"),
        ({}, "missing field(s) 'rules'"),
        ({"rules": [], "extra": 1}, "unknown field(s) 'extra'"),
        ({"rules": [{"name": "x", "actions": ["report"]}]}, "unknown action 'report'"),
        ({"rules": [{"name": "x", "actions": []}]}, "at least one action"),
        ({"rules": [{"name": "x", "bank": ["a"], "actions": ["block"]}]}, "'bank'"),
        ({"rules": [{"name": "x", "actions": ["block"], "match": "fuzzy"}]}, "match"),
        ({"rules": [{"name": "x", "actions": ["block"], "max_distance": 300}]}, "0 to 256"),
        ({"rules": [{"name": "x", "actions": ["block"], "max_distance": True}]}, "max_dist"),
        ({"rules": [{"name": "x", "actions": ["block"]}] * 2}, "unique (x)"),
        ({"rules": [], "priorities": {"A1": 0}}, "policy.priorities.A1"),
        ({"rules": [{"name": "", "actions": ["block"]}]}, "policy.rules[0].name"),
        ({"rules": [{"name": "x", "actions": "block"}]}, "a list of strings"),
    ],
)
def test_a_malformed_document_is_refused_saying_where(doc: Any, says: str) -> None:
    with pytest.raises(InvalidPolicy) as err:
        Policy.from_dict(doc)
    assert says in str(err.value)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=14), inner),
    max_leaves=20,
)
_rule = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=5), "actions": st.lists(st.sampled_from(ACTIONS))},
    optional={"match": _json, "max_distance": _json, "banks": _json, "bogus": _json},
)


@given(st.one_of(_json, st.fixed_dictionaries({"rules": st.lists(_rule, max_size=3)})))
def test_any_document_gives_a_policy_or_invalid_policy(doc: Any) -> None:
    try:
        policy = Policy.from_dict(doc)
    except InvalidPolicy:
        return
    assert Policy.from_dict(policy.to_dict()) == policy
    policy.decide([_match()])


def test_dry_run_lists_the_past_contents_whose_actions_would_change() -> None:
    stricter = Policy.from_dict(
        {
            "rules": [
                {"name": "exact", "match": "exact", "actions": ["block", "quarantine", "review"]},
                {"name": "close", "max_distance": 10, "actions": ["block", "review"]},
                {"name": "far", "actions": ["review"]},
            ]
        }
    )
    past = [[_match(distance=4)], [_match(distance=25)], [_match(signal_type="sha256", distance=0)]]
    diff = changes(DEFAULT_POLICY, stricter, past)
    assert [(i, before.actions, after.actions) for i, before, after in diff] == [
        (0, ("block", "quarantine", "review"), ("block", "review")),
        (1, ("block", "quarantine", "review"), ("review",)),
    ]
