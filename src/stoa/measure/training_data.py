"""Closing the loop: reviewed predictions become a new dataset version to train on.

Human reviewers' labels and corrections (feedback with source ``human``, kinds
``label`` and ``correction``) are joined to the predictions they judged, one row per
prediction with its latest label and correction, and registered as a dataset version.
The rows keep their ``prediction_id`` and the version links back to the solution or
model versions that served them, so a model trained on it shows where its data came
from. The columns suit both ways back in:

- ``text`` + ``label``: a classifier (``stoa select`` with ``target: label``);
- ``input`` + ``reference``: an evaluation set for ``stoa solutions eval`` (the
  correction, or the answer itself when reviewers called it correct).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from stoa.core.db import Database
from stoa.core.errors import InvalidInputError
from stoa.core.schema import FeedbackEvent, Prediction
from stoa.measure.records import exchange
from stoa.serve.endpoints import split_target

FORMATS = ("jsonl", "parquet", "csv")
#: Labels that mean "the answer was right", so the answer itself is the reference.
CORRECT = {"correct", "good", "right", "yes", "true", "accept", "accepted"}
_CHUNK = 500


def reviewed_rows(
    db: Database,
    endpoint: str,
    *,
    since: datetime | None = None,
    sources: Sequence[str] = ("human",),
) -> list[dict[str, Any]]:
    """One row per prediction that reviewers labelled or corrected, oldest first."""
    f = FeedbackEvent
    query = select(f.prediction_id, f.kind, f.value, f.source, f.ts).where(
        f.endpoint == endpoint,
        f.kind.in_(("label", "correction")),
        f.source.in_(list(sources)),
    )
    if since is not None:
        query = query.where(f.ts >= since)
    latest: dict[str, dict[str, Any]] = {}
    with db.engine.connect() as conn:
        for pid, kind, value, source, ts in conn.execute(query.order_by(f.ts, f.id)):
            entry = latest.setdefault(pid, {"label": None, "correction": None})
            entry[kind] = value
            entry["source"], entry["labelled_at"] = source, ts
        ids = sorted(latest)
        rows = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            p = Prediction
            found = conn.execute(
                select(p.id, p.variant, p.target, p.unit_id, p.ts, p.input, p.output, p.trace)
                .where(p.id.in_(chunk))
            )  # fmt: skip
            rows.extend(dict(r._mapping) for r in found)
    rows.sort(key=lambda r: (r["ts"], r["id"]))
    return [_row(r, latest[r["id"]], endpoint) for r in rows]


def _row(prediction: dict[str, Any], review: dict[str, Any], endpoint: str) -> dict[str, Any]:
    seen = exchange(prediction)
    label, correction = review["label"], review["correction"]
    if correction:
        reference = correction
    elif isinstance(label, str) and label.lower() in CORRECT:
        reference = seen.answer
    else:
        reference = None
    return {
        "prediction_id": prediction["id"],
        "endpoint": endpoint,
        "variant": prediction["variant"],
        "target": prediction["target"],
        "unit_id": prediction["unit_id"],
        "served_at": prediction["ts"].isoformat(),
        "input": prediction["input"],
        "text": seen.question,
        "output": seen.answer,
        "label": label if not isinstance(label, list) else ",".join(label),
        "correction": correction,
        "reference": reference,
        "source": review["source"],
        "labelled_at": review["labelled_at"].isoformat(),
    }


def write_table(rows: list[dict[str, Any]], path: Path, format: str) -> None:
    """JSONL keeps ``input`` as an object; Parquet and CSV store it as JSON text."""
    frame = pd.DataFrame(rows)
    if format == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
        return
    frame["input"] = frame["input"].map(lambda v: json.dumps(v, ensure_ascii=False))
    if format == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def export_to_dataset(
    local: Any,
    endpoint: str,
    name: str,
    *,
    format: str = "jsonl",
    since: datetime | None = None,
    sources: Sequence[str] = ("human",),
    description: str = "",
) -> dict[str, Any]:
    """Register the reviewed rows as the next version of dataset ``name``."""
    from stoa.govern.datasets import describe_dataset

    if format not in FORMATS:
        raise InvalidInputError(
            f"unknown format {format!r}", field="format", fix="use jsonl, parquet or csv"
        )
    unknown = sorted(set(sources) - {"user", "human", "judge", "system"})
    if unknown or not sources:
        raise InvalidInputError(
            f"unknown feedback source(s) {', '.join(unknown) or '(none)'}",
            field="sources",
            fix="use human, user, system or judge",
        )
    rows = reviewed_rows(local.db, endpoint, since=since, sources=sources)
    if not rows:
        raise InvalidInputError(
            f"no reviewed predictions on endpoint {endpoint!r}",
            field="endpoint",
            fix="label some with `stoa review next` / `stoa review label` first",
        )
    parents = sorted({split_target(r["target"]) for r in rows})
    metadata = {
        "source": "feedback",
        "endpoint": endpoint,
        "predictions": len(rows),
        "first_prediction": rows[0]["prediction_id"],
        "last_prediction": rows[-1]["prediction_id"],
        "feedback_sources": list(sources),
        "labels": _counts(r["label"] for r in rows),
    }
    with tempfile.TemporaryDirectory(prefix="stoa-reviewed-") as tmp:
        path = Path(tmp) / f"{name}.{format}"
        write_table(rows, path, format)
        spec = describe_dataset(path)
        stored = local.registry.blobs.put_path(path, None)
        info = local.registry.add_version(
            "dataset", name, stored, status="allowed", actor=local.actor, fmt=spec["format"],
            description=description or f"reviewed predictions of endpoint {endpoint}",
            metadata=metadata, spec=spec, parents=parents,
        )  # fmt: skip
    return {"dataset": info.ref, "rows": len(rows), "parents": [f"{k}:{r}" for k, r in parents],
            "labels": metadata["labels"]}  # fmt: skip


def _counts(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        key = "(none)" if value is None else str(value)
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
