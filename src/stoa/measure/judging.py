"""Judges online: score a sample of an endpoint's live predictions in the background.

A policy names an endpoint, the judges (``embedding``, ``llm:PROVIDER[:MODEL]``, the
same names ``stoa solutions eval`` takes), the criteria kept and a sampling rate. The
sample is decided by a hash of the policy and the prediction id, so it is the same on
every run and every worker, and a rerun never scores twice. Each score is stored as
feedback ``judge.<criterion>`` with source ``judge``: the A/B report, monitors, alerts
and the judge-human agreement read it like any other feedback.

Several server workers may run the same policy: a run scores a page of predictions,
then moves the policy's cursor with a conditional UPDATE in the transaction that writes
the scores; a worker that lost the race writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import insert, select, update

from stoa.core.db import Database
from stoa.core.errors import ConflictError, NotFoundError, from_validation
from stoa.core.names import validate_name
from stoa.core.schema import FeedbackEvent, JudgePolicy, Prediction, utcnow
from stoa.measure.records import exchange

log = logging.getLogger("stoa.judging")

#: Predictions looked at per run and policy; a run never holds more in memory.
PAGE = 500


class PolicySpec(BaseModel):
    """One online judge policy (docs/review.md#judges-online)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(min_length=1, max_length=128)
    judges: list[str] = Field(default_factory=lambda: ["embedding"], min_length=1)
    #: Keep only these criteria (default: every criterion the judges give).
    criteria: list[str] | None = None
    rate: float = Field(default=0.1, gt=0, le=1)
    variants: list[str] | None = None
    #: Scores written per run at most, so an LLM judge cannot hold a worker for long.
    max_per_run: int = Field(default=100, ge=1, le=10_000)

    @field_validator("judges")
    @classmethod
    def _judge_names(cls, judges: list[str]) -> list[str]:
        for name in judges:
            if name != "embedding" and not name.startswith("llm:"):
                raise ValueError(f"unknown judge {name!r}: use embedding, or llm:PROVIDER[:MODEL]")
        return judges


def parse_policy(doc: Mapping[str, Any]) -> PolicySpec:
    try:
        return PolicySpec.model_validate(dict(doc))
    except ValidationError as exc:
        raise from_validation(exc, "policy", "see docs/review.md#judges-online") from None


def sampled(policy: str, prediction_id: str, rate: float) -> bool:
    """The same answer for a policy and a prediction on every run and every worker."""
    digest = hashlib.blake2b(f"{policy}\0{prediction_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


class JudgePolicies:
    """Policies in the database; ``run`` scores what they sample."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, name: str, spec: PolicySpec | Mapping[str, Any], *, actor: str = "") -> dict:
        validate_name(name, "name")
        spec = spec if isinstance(spec, PolicySpec) else parse_policy(spec)
        with self.db.write() as session:
            if session.scalars(select(JudgePolicy).where(JudgePolicy.name == name)).first():
                raise ConflictError(
                    f"a judge policy named {name!r} exists",
                    field="name",
                    fix="choose another name, or disable that one first",
                )
            row = JudgePolicy(
                name=name, endpoint=spec.endpoint, spec=spec.model_dump(), created_by=actor
            )
            session.add(row)
            session.flush()
            return _info(row)

    def list(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.scalars(select(JudgePolicy).order_by(JudgePolicy.name)).all()
            return [_info(r) for r in rows]

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        with self.db.write() as session:
            row = self._row(session, name)
            row.enabled = enabled
            return _info(row)

    def run(self, env: Any, *, name: str | None = None) -> list[dict[str, Any]]:
        """One pass of every enabled policy (or ``name``): what each scored."""
        with self.db.read() as session:
            if name is not None:
                rows = [self._row(session, name)]
            else:
                query = select(JudgePolicy).where(JudgePolicy.enabled.is_(True))
                rows = list(session.scalars(query.order_by(JudgePolicy.id)).all())
            policies = [
                (r.id, r.name, r.scanned_to, PolicySpec.model_validate(r.spec)) for r in rows
            ]
        return [self._run_one(env, *p) for p in policies]

    def _run_one(self, env: Any, pid: int, name: str, cursor: str, spec: PolicySpec) -> dict:
        from stoa.develop.solution.evaluate import parse_judges

        judges = parse_judges(spec.judges, env)
        rows, last = self._page(spec, cursor)
        events: list[dict[str, Any]] = []
        scored = failed = 0
        capped = False
        for row in rows:
            if scored >= spec.max_per_run:
                capped = True
                break  # this prediction and the rest of the page wait for the next run
            last = row["id"]
            if sampled(name, row["id"], spec.rate):
                got, errors = _scores(judges, row, spec, name)
                events += got
                scored += bool(got)
                failed += errors
        with self.db.write() as session:
            moved = session.execute(
                update(JudgePolicy)
                .where(JudgePolicy.id == pid, JudgePolicy.scanned_to == cursor)
                .values(scanned_to=last)
            ).rowcount
            if moved and events:
                session.execute(insert(FeedbackEvent.__table__), events)
        if not moved:  # another worker ran this page first and wrote its scores
            return {"policy": name, "scored": 0, "scores": 0, "failed": 0, "raced": True,
                    "caught_up": False}  # fmt: skip
        # Caught up: this pass saw every prediction logged so far.
        caught_up = not capped and len(rows) < PAGE
        return {"policy": name, "scored": scored, "scores": len(events), "failed": failed,
                "raced": False, "caught_up": caught_up}  # fmt: skip

    def _page(self, spec: PolicySpec, cursor: str) -> tuple[list[dict[str, Any]], str]:
        p = Prediction
        query = (
            select(p.id, p.endpoint, p.variant, p.input, p.output, p.trace)
            .where(p.endpoint == spec.endpoint, p.mode == "live", p.status == "ok", p.id > cursor)
            .order_by(p.id)
            .limit(PAGE)
        )
        if spec.variants:
            query = query.where(p.variant.in_(spec.variants))
        with self.db.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        return rows, (rows[-1]["id"] if rows else cursor)

    @staticmethod
    def _row(session: Any, name: str) -> JudgePolicy:
        row = session.scalars(select(JudgePolicy).where(JudgePolicy.name == name)).first()
        if row is None:
            raise NotFoundError(
                f"no judge policy named {name!r}", field="name", fix="see `stoa judges policies`"
            )
        return row


def _scores(
    judges: list[Any], row: Mapping[str, Any], spec: PolicySpec, policy: str
) -> tuple[list[dict[str, Any]], int]:
    """Every kept criterion's score for one prediction, and how many judges failed."""
    seen = exchange(row)
    if not seen.answer:
        return [], 0
    events: list[dict[str, Any]] = []
    failed = 0
    now = utcnow()
    context = [p["text"] for p in seen.passages]
    for judge in judges:
        name = getattr(judge, "name", "judge")
        try:
            scores = judge.score(seen.question, context, seen.answer)
        except Exception as exc:  # one judge failing must not stop the others
            log.warning("judge %s failed on %s: %s", name, row["id"], exc)
            failed += 1
            continue
        for criterion, verdict in scores.items():
            if spec.criteria and criterion not in spec.criteria:
                continue
            if verdict.score is None or not math.isfinite(verdict.score):
                failed += 1
                continue
            events.append(_event(row, criterion, verdict.score, now, policy, name))
    return events, failed


def _event(row: Mapping[str, Any], criterion: str, score: float, now: Any, policy: str,
           judge: str) -> dict[str, Any]:  # fmt: skip
    return {
        "prediction_id": row["id"],
        "endpoint": row["endpoint"],
        "variant": row["variant"],
        "kind": f"judge.{criterion}",
        "value": round(float(score), 6),
        "source": "judge",
        "ts": now,
        "received_at": now,
        "idempotency_key": _key(policy, judge, criterion, row["id"]),
    }


def _key(*parts: str) -> str:
    """One score per policy, judge, criterion and prediction, however long the names."""
    return "judge:" + hashlib.blake2b("\0".join(parts).encode(), digest_size=24).hexdigest()


def _info(row: JudgePolicy) -> dict[str, Any]:
    return {
        "name": row.name,
        "endpoint": row.endpoint,
        "enabled": row.enabled,
        "scanned_to": row.scanned_to,
        "spec": row.spec,
        "created_at": row.created_at,
        "created_by": row.created_by,
    }
