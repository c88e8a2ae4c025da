"""Variants of an endpoint and which one answers each request.

Assignment is sticky by unit id (a user, a session, an account): the unit is hashed
with the endpoint's salt into one of ``BUCKETS`` buckets, and each bucket belongs to a
live variant by weighted rendezvous hashing (highest random weight). Rendezvous
hashing is chosen over cutting the bucket range into slices because a weight change
then moves the fewest units: raising one variant's weight only pulls buckets into it,
and reordering or adding variants never reshuffles the others. Names, not list
positions, enter the hash.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.core.names import parse_ref

MODES = ("live", "shadow")
KINDS = ("solution", "model")
MAX_VARIANTS = 16
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
CLI_FORM = "write NAME=REF:WEIGHT, NAME=REF:shadow or NAME=REF:shadow=PERCENT, e.g. a=support@2:50"
_RNG = random.Random()


def _bad(message: str, fix: str = CLI_FORM) -> InvalidInputError:
    return InvalidInputError(message, field="variant", fix=fix)


def parse_target(text: str) -> str:
    """``REF``, ``solution:REF`` or ``model:REF`` as the canonical ``KIND:REF``."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(f"the reference {text!r} is empty", "name a solution or model, e.g. support@2")
    kind, sep, ref = text.partition(":")
    if not sep:
        kind, ref = "solution", text
    if kind not in KINDS:
        raise _bad(
            f"{kind!r} is not a kind of target; use 'solution' or 'model'",
            "write solution:NAME@VERSION or model:NAME@VERSION; no prefix means a solution",
        )
    if not ref:
        raise _bad("the reference is empty", "name a solution or model, e.g. support@2")
    return f"{kind}:{parse_ref(ref, field='variant')}"


def _check_weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"variant {name!r}: the weight {value!r} is not a finite number")
    if value < 0:
        raise _bad(f"variant {name!r}: the weight {value} is negative; weights are >= 0")
    return float(value)


def _check_overrides(value: Any, name: str) -> None:
    fix = "give overrides as {STEP_ID: {OPTION: VALUE}}, e.g. {'answer': {'k': 8}}"
    if not isinstance(value, Mapping):
        raise _bad(f"variant {name!r}: overrides must be a mapping of step id to options", fix)
    for step, options in value.items():
        if not isinstance(step, str) or not step:
            raise _bad(f"variant {name!r}: the override key {step!r} is not a step id", fix)
        if not isinstance(options, Mapping):
            raise _bad(f"variant {name!r}: the overrides of step {step!r} are not a mapping", fix)


@dataclass(frozen=True)
class Variant:
    """One way an endpoint can answer: a target plus block overrides, a weight and a mode.

    A live variant takes a share of traffic in proportion to its weight; a shadow
    variant ignores its weight and mirrors a ``sample`` share of live requests, its
    output logged and never returned.
    """

    name: str
    target: str
    weight: float
    mode: str = "live"
    sample: float = 1.0
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Checked here so that no Variant exists that the assigner could not use.
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise _bad(
                f"{self.name!r} is not a variant name",
                "use 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit",
            )
        if self.mode not in MODES:
            raise _bad(f"variant {self.name!r}: the mode {self.mode!r} is not 'live' or 'shadow'")
        object.__setattr__(self, "weight", _check_weight(self.weight, self.name))
        sample = self.sample
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 < sample <= 1:
            raise _bad(
                f"variant {self.name!r}: the shadow sample {sample!r} is not in (0, 1]",
                "give the share of live requests to mirror, e.g. 0.25",
            )
        object.__setattr__(self, "sample", float(sample))
        object.__setattr__(self, "target", parse_target(self.target))
        _check_overrides(self.overrides, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "weight": self.weight,
            "mode": self.mode,
            "sample": self.sample,
            "overrides": {step: dict(opts) for step, opts in self.overrides.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Variant:
        """Read a stored or posted variant; a missing weight is 1 (live) or 0 (shadow)."""
        if not isinstance(d, Mapping):
            raise _bad("a variant must be an object", "give {name, target, weight, mode}")
        unknown = set(d) - {"name", "target", "weight", "mode", "sample", "overrides"}
        if unknown:
            raise _bad(
                f"unknown variant fields: {', '.join(sorted(map(str, unknown)))}",
                "use name, target, weight, mode, sample and overrides",
            )
        if "name" not in d or "target" not in d:
            raise _bad("a variant needs a name and a target", "give {name, target, weight}")
        mode = d.get("mode", "live")
        overrides = d.get("overrides") or {}
        _check_overrides(overrides, str(d["name"]))
        return cls(
            name=d["name"],
            target=parse_target(d["target"]),
            weight=d.get("weight", 0.0 if mode == "shadow" else 1.0),
            mode=mode,
            sample=d.get("sample", 1.0),
            overrides={step: dict(opts) for step, opts in overrides.items()},
        )


def parse_variant(text: str) -> Variant:
    """The CLI form: ``NAME=REF:WEIGHT``, ``NAME=REF:shadow`` or ``NAME=REF:shadow=PCT``."""
    if not isinstance(text, str):
        raise _bad(f"{text!r} is not a variant")
    name, sep, rest = text.partition("=")
    if not sep:
        raise _bad(f"{text!r} has no '=' between the variant name and its reference")
    if not NAME_PATTERN.match(name):
        raise _bad(
            f"{name!r} is not a variant name",
            "use 1-64 lowercase letters, digits, '_' or '-', e.g. a=support@2:50",
        )
    # The reference may hold a colon of its own (model:churn@2), so the weight is split
    # off the right.
    ref, sep, last = rest.rpartition(":")
    if not sep:
        raise _bad(f"{text!r} has no weight or 'shadow' after the reference")
    if not ref:
        raise _bad(f"{text!r} has an empty reference", "name a solution or model, e.g. support@2")
    if ref in KINDS:
        raise _bad(f"{text!r} lacks either the reference after '{ref}:' or the weight after it")
    if last == "shadow" or last.startswith("shadow="):
        return Variant(name, parse_target(ref), 0.0, "shadow", _shadow_sample(last, text))
    try:
        weight = float(last)
    except ValueError:
        raise _bad(f"the weight {last!r} in {text!r} is not a number") from None
    return Variant(name, parse_target(ref), _check_weight(weight, name))


def _shadow_sample(last: str, text: str) -> float:
    if last == "shadow":
        return 1.0
    percent = last.removeprefix("shadow=")
    try:
        value = float(percent)
    except ValueError:
        value = math.nan
    if not 0 < value <= 100:  # False for NaN too
        raise _bad(
            f"the shadow percent {percent!r} in {text!r} is not in (0, 100]",
            "write NAME=REF:shadow=25 to mirror a quarter of live requests",
        )
    return value / 100


def check_variants(variants: list[Variant]) -> None:
    """Refuse a set of variants that cannot serve: none live, all weights zero, clashes."""
    if not variants:
        raise _bad("an endpoint needs at least one variant")
    if len(variants) > MAX_VARIANTS:
        raise _bad(
            f"{len(variants)} variants is more than the {MAX_VARIANTS} an endpoint may have",
            "remove variants that no longer take traffic",
        )
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _bad(f"variant names appear more than once: {', '.join(twice)}", "rename one")
    live = [v for v in variants if v.mode == "live"]
    if not live:
        raise _bad("no variant is live, so nothing would answer", "give one variant a weight")
    if all(v.weight == 0 for v in live):
        raise _bad("every live variant has weight 0, so nothing would answer", "raise a weight")
    for v in variants:
        _check_overrides(v.overrides, v.name)


@lru_cache(maxsize=256)
def _uniforms(salt: str, name: str, buckets: int) -> np.ndarray:
    """u(bucket, name) in (0, 1) for every bucket; independent of weights, so cached.

    A SplitMix64 stream seeded by SHA-256 of (salt, name), vectorised: 100,000 buckets
    take a millisecond, where a hash per bucket would take a tenth of a second.
    """
    seed = int.from_bytes(hashlib.sha256(f"{salt}\x00{name}".encode()).digest()[:8], "big")
    with np.errstate(over="ignore"):
        x = np.arange(buckets, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    values = ((x >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    values.flags.writeable = False
    return values


class Assigner:
    """Chooses the live variant for a request and the shadows that mirror it."""

    #: Enough that each variant's share of buckets is within ~0.2 % of its weight.
    BUCKETS = 100_000

    def __init__(self, salt: str, variants: list[Variant]):
        check_variants(variants)
        self.salt = salt
        self.variants = list(variants)
        self._live = [v for v in variants if v.mode == "live" and v.weight > 0]
        self._shadows = [v for v in variants if v.mode == "shadow"]
        self._weights = [v.weight for v in self._live]
        # score = -ln(u) / w is an exponential draw with rate w; the smallest draw wins
        # with probability w / sum(w), and raising w only lowers that variant's scores.
        scores = np.stack(
            [-np.log(_uniforms(salt, v.name, self.BUCKETS)) / v.weight for v in self._live]
        )
        owners = np.argmin(scores, axis=0)
        self._table = [self._live[i] for i in owners.tolist()]
        counts = np.bincount(owners, minlength=len(self._live))
        self._shares = {v.name: 0.0 for v in variants if v.mode == "live"}
        self._shares.update(
            {v.name: int(c) / self.BUCKETS for v, c in zip(self._live, counts, strict=True)}
        )

    def bucket(self, unit_id: str) -> int:
        digest = hashlib.sha256(f"{self.salt}\x00{unit_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.BUCKETS

    def assign(self, unit_id: str | None, rng: random.Random | None = None) -> Variant:
        """The live variant for this unit; random by weight when there is no unit id."""
        if unit_id is None or unit_id == "":
            return (rng or _RNG).choices(self._live, weights=self._weights)[0]
        return self._table[self.bucket(unit_id)]

    def shadows(self, rng: random.Random | None = None) -> list[Variant]:
        """The shadow variants that mirror this request, each drawn by its sample share."""
        rng = rng or _RNG
        return [v for v in self._shadows if v.sample >= 1.0 or rng.random() < v.sample]

    def shares(self) -> dict[str, float]:
        """The exact share of buckets (so of units) each live variant owns."""
        return dict(self._shares)
