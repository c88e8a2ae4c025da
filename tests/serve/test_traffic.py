"""Variants and sticky assignment: the CLI form, the checks, shares, stickiness and the
minimal movement a weight change promises."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from stoa.core.errors import InvalidInputError
from stoa.serve.traffic import Assigner, Variant, check_variants, parse_variant

UNITS = [f"user-{i}" for i in range(10_000)]
SALT = "endpoint-support"


def live(name: str, weight: float) -> Variant:
    return Variant(name, f"solution:support@{len(name)}", weight)


def assignments(assigner: Assigner) -> dict[str, str]:
    return {unit: assigner.assign(unit).name for unit in UNITS}


# -- the CLI form ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=support@1:50", Variant("a", "solution:support@1", 50.0)),
        ("b=solution:support@champion:12.5", Variant("b", "solution:support@champion", 12.5)),
        ("a=model:churn@2:50", Variant("a", "model:churn@2", 50.0)),
        ("c=model:churn@prod:0", Variant("c", "model:churn@prod", 0.0)),
        ("s=support@3:shadow", Variant("s", "solution:support@3", 0.0, "shadow", 1.0)),
        ("s_1=support:shadow=25", Variant("s_1", "solution:support", 0.0, "shadow", 0.25)),
        ("s-2=model:churn:shadow=100", Variant("s-2", "model:churn", 0.0, "shadow", 1.0)),
    ],
)
def test_parse_variant_reads_every_form(text: str, expected: Variant) -> None:
    assert parse_variant(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("support@1:50", "no '='"),
        ("A=support@1:50", "not a variant name"),
        ("-a=support@1:50", "not a variant name"),
        ("a=:50", "empty reference"),
        ("a=support@1", "no weight"),
        ("a=model:churn@2", "lacks either the reference"),
        ("a=support@1:fifty", "is not a number"),
        ("a=support@1:nan", "not a finite number"),
        ("a=support@1:-5", "negative"),
        ("s=support@1:shadow=0", "not in (0, 100]"),
        ("s=support@1:shadow=150", "not in (0, 100]"),
        ("s=support@1:shadow=lots", "not in (0, 100]"),
        ("a=dataset:x@1:50", "not a kind of target"),
        ("a=../etc:50", "looks like a path"),
    ],
)
def test_parse_variant_refuses_bad_forms_clearly(text: str, says: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_variant(text)
    assert caught.value.field == "variant"
    assert says in caught.value.message
    assert caught.value.fix


def test_the_fix_shows_the_form() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_variant("a=support@1:x")
    assert "NAME=REF:WEIGHT" in caught.value.fix


def test_targets_are_stored_as_kind_and_canonical_ref() -> None:
    assert Variant("a", "support@2", 1).target == "solution:support@2"
    assert Variant("a", "model:churn@latest", 1).target == "model:churn"
    with pytest.raises(InvalidInputError, match="not a kind of target"):
        Variant("a", "prompt:greeting@1", 1)


def test_a_variant_round_trips_through_a_dict() -> None:
    v = Variant("b", "solution:support@2", 30.0, overrides={"answer": {"k": 8}})
    assert Variant.from_dict(v.to_dict()) == v
    assert Variant.from_dict({"name": "a", "target": "support@1"}).weight == 1.0
    shadow = Variant.from_dict({"name": "s", "target": "model:m@1", "mode": "shadow"})
    assert (shadow.weight, shadow.sample) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"name": "a", "target": "support@1", "wieght": 5}, "unknown variant fields: wieght"),
        ({"name": "a"}, "needs a name and a target"),
        ({"name": "a", "target": "support@1", "mode": "canary"}, "not 'live' or 'shadow'"),
        ({"name": "a", "target": "support@1", "weight": "50"}, "not a finite number"),
        ({"name": "a", "target": "support@1", "mode": "shadow", "sample": 0}, "not in (0, 1]"),
        ({"name": "a", "target": "support@1", "overrides": ["k"]}, "overrides must be a mapping"),
        ({"name": "a", "target": "support@1", "overrides": {"answer": 8}}, "are not a mapping"),
    ],
)
def test_from_dict_refuses_bad_variants(data: dict, says: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Variant.from_dict(data)
    assert says in caught.value.message


# -- checks on the whole set ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variants", "says"),
    [
        ([], "at least one variant"),
        ([live("a", 1), live("a", 2)], "more than once: a"),
        ([parse_variant("s=support@1:shadow")], "no variant is live"),
        ([live("a", 0), live("b", 0)], "every live variant has weight 0"),
        ([live(f"v{i}", 1) for i in range(17)], "more than the 16"),
    ],
)
def test_check_variants_refuses_sets_that_cannot_serve(variants: list, says: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_variants(variants)
    assert says in caught.value.message
    with pytest.raises(InvalidInputError):
        Assigner(SALT, variants)


def test_check_variants_refuses_overrides_that_are_not_step_mappings() -> None:
    bad = Variant("a", "solution:support@1", 1.0)
    object.__setattr__(bad, "overrides", {"answer": ["k", 8]})  # as if mutated after checks
    with pytest.raises(InvalidInputError, match="overrides of step 'answer'"):
        check_variants([bad])


# -- assignment -----------------------------------------------------------------------


@pytest.mark.parametrize("weights", [(50, 50), (90, 10), (33, 33, 34)])
def test_shares_of_10000_units_follow_the_weights(weights: tuple[int, ...]) -> None:
    variants = [live(f"v{i}", w) for i, w in enumerate(weights)]
    assigner = Assigner(SALT, variants)
    counts = Counter(assignments(assigner).values())
    total = sum(weights)
    for v in variants:
        assert abs(counts[v.name] / len(UNITS) - v.weight / total) <= 0.02, counts
        # The bucket table itself is closer still: within a fraction of a percent.
        assert abs(assigner.shares()[v.name] - v.weight / total) <= 0.015


def test_a_unit_keeps_its_variant_across_assigners() -> None:
    first = assignments(Assigner(SALT, [live("a", 50), live("b", 50)]))
    again = assignments(Assigner(SALT, [live("a", 50), live("b", 50)]))
    assert first == again
    other_salt = assignments(Assigner("another-endpoint", [live("a", 50), live("b", 50)]))
    assert sum(first[u] != other_salt[u] for u in UNITS) > 3_000  # salts are independent


def test_reordering_variants_moves_nobody() -> None:
    a, b, c = live("a", 20), live("b", 30), live("c", 50)
    assert assignments(Assigner(SALT, [a, b, c])) == assignments(Assigner(SALT, [c, a, b]))


def test_a_canary_step_moves_about_ten_percent_all_from_a_to_b() -> None:
    before = assignments(Assigner(SALT, [live("a", 90), live("b", 10)]))
    after = assignments(Assigner(SALT, [live("a", 80), live("b", 20)]))
    movers = [u for u in UNITS if before[u] != after[u]]
    assert 0.08 <= len(movers) / len(UNITS) <= 0.12
    assert all(before[u] == "a" and after[u] == "b" for u in movers)


def test_adding_a_variant_takes_units_only_into_it() -> None:
    before = assignments(Assigner(SALT, [live("a", 50), live("b", 50)]))
    after = assignments(Assigner(SALT, [live("a", 50), live("b", 50), live("c", 10)]))
    movers = [u for u in UNITS if before[u] != after[u]]
    assert movers and all(after[u] == "c" for u in movers)
    assert abs(len(movers) / len(UNITS) - 10 / 110) <= 0.02


def test_weight_zero_keeps_a_variant_configured_but_idle() -> None:
    assigner = Assigner(SALT, [live("a", 1), live("b", 0)])
    assert set(assignments(assigner).values()) == {"a"}
    assert assigner.shares() == {"a": 1.0, "b": 0.0}
    rng = random.Random(1)
    assert {assigner.assign(None, rng).name for _ in range(1_000)} == {"a"}


def test_without_a_unit_id_assignment_is_random_by_weight() -> None:
    assigner = Assigner(SALT, [live("a", 75), live("b", 25)])
    rng = random.Random(7)
    counts = Counter(assigner.assign(None, rng).name for _ in range(10_000))
    assert abs(counts["a"] / 10_000 - 0.75) <= 0.02
    assert assigner.assign("", rng).name in {"a", "b"}


def test_shadows_mirror_their_sample_and_are_never_assigned() -> None:
    variants = [
        live("a", 1),
        parse_variant("full=support@3:shadow"),
        parse_variant("quarter=support@4:shadow=25"),
    ]
    assigner = Assigner(SALT, variants)
    rng = random.Random(3)
    mirrored = Counter(v.name for _ in range(10_000) for v in assigner.shadows(rng))
    assert mirrored["full"] == 10_000
    assert abs(mirrored["quarter"] / 10_000 - 0.25) <= 0.02
    assert set(assignments(assigner).values()) == {"a"}
    assert set(assigner.shares()) == {"a"}
