"""Closing the loop: reviewed predictions become a dataset version with lineage to the
solution versions that served them; a classifier can train on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from stoa.client import LocalClient
from stoa.core.errors import InvalidInputError
from stoa.measure.training_data import export_to_dataset
from tests.measure.logbook_rows import feedback, prediction, write

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SPEC = "name: help\nsteps:\n  - id: s\n    kind: respond\n    template: x\n"


@pytest.fixture
def client(settings) -> Iterator[LocalClient]:
    c = LocalClient(settings=settings)
    c.solutions.register(SPEC)
    c.solutions.register(SPEC.replace("template: x", "template: y"))
    yield c
    c.close()


def _served(i: int, version: int) -> dict:
    return prediction(
        "help", f"v{version}", T0 + timedelta(minutes=i), target=f"solution:help@{version}",
        input={"question": f"question {i}"}, output={"text": f"answer {i}"},
    )  # fmt: skip


def test_reviewed_predictions_become_a_dataset_with_lineage(client: LocalClient, tmp_path) -> None:
    db = client.stores.db
    rows = [_served(i, 1 + i % 2) for i in range(6)]
    later = T0 + timedelta(hours=1)
    events = [
        feedback(rows[0], "label", "correct", later, "human"),
        feedback(rows[1], "label", "wrong", later, "human"),
        feedback(rows[1], "correction", "the right answer", later, "human"),
        feedback(rows[2], "label", "wrong", later, "human"),
        feedback(rows[2], "label", "partially", later + timedelta(minutes=1), "human"),  # latest
        feedback(rows[3], "label", "wrong", later, "user"),  # not a reviewer's
        feedback(rows[4], "thumb", -1, later, "human"),  # not a label
    ]
    write(db, rows, events)
    result = export_to_dataset(client.stores, "help", "help-reviewed")
    assert result["rows"] == 3 and result["dataset"] == "help-reviewed@1"
    assert result["parents"] == ["solution:help@1", "solution:help@2"]
    assert result["labels"] == {"correct": 1, "wrong": 1, "partially": 1}
    path = client.datasets.download("help-reviewed@1", tmp_path / "d.jsonl")
    got = [json.loads(line) for line in path.read_text().splitlines()]
    assert [g["prediction_id"] for g in got] == [r["id"] for r in rows[:3]]
    assert [g["label"] for g in got] == ["correct", "wrong", "partially"]
    assert [g["reference"] for g in got] == ["answer 0", "the right answer", None]
    assert got[1]["text"] == "question 1" and got[1]["input"] == {"question": "question 1"}
    lineage = client.datasets.lineage("help-reviewed@1")
    assert "help@1" in json.dumps(lineage, default=str)


def test_csv_export_trains_a_classifier(client: LocalClient, tmp_path) -> None:
    db = client.stores.db
    rows, events = [], []
    for i in range(40):
        row = _served(i, 1)
        row["input"] = {"question": ("refund my order" if i % 2 else "reset my password") + f" {i}"}
        rows.append(row)
        label = "billing" if i % 2 else "account"
        events.append(feedback(row, "label", label, T0 + timedelta(hours=1), "human"))
    write(db, rows, events)
    result = export_to_dataset(client.stores, "help", "help-labels", format="csv")
    path = client.datasets.download(result["dataset"], tmp_path / "labels.csv")
    import pandas as pd

    frame = pd.read_csv(path)
    assert set(frame.columns) >= {"text", "label", "prediction_id"}
    assert frame["label"].value_counts().to_dict() == {"account": 20, "billing": 20}


def test_bad_exports_are_refused(client: LocalClient) -> None:
    with pytest.raises(InvalidInputError, match="no reviewed predictions on endpoint 'help'"):
        export_to_dataset(client.stores, "help", "x")
    with pytest.raises(InvalidInputError, match="unknown format 'xlsx'") as info:
        export_to_dataset(client.stores, "help", "x", format="xlsx")
    assert info.value.fix == "use jsonl, parquet or csv"
    with pytest.raises(InvalidInputError, match="unknown feedback source"):
        export_to_dataset(client.stores, "help", "x", sources=["robot"])
    assert client.datasets.list() == []
