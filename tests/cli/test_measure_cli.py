"""`stoa metrics`, `stoa judges` and `stoa feedback send/export` as a user types them:
JSON out, one-line errors with exit code 2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stoa.core.db import Database
from tests.cli.test_cli import clean_env, ok_json, one_line_error, stoa  # noqa: F401 - fixture
from tests.measure.logbook_rows import feedback, prediction, write

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SPEC = "name: help\nsteps:\n  - id: s\n    kind: respond\n    template: x\n"


def test_metrics_define_list_show_and_bad_files(stoa, tmp_path):  # noqa: F811
    (tmp_path / "m.yaml").write_text(
        "metrics:\n  - name: refunds\n    kind: proportion\n    event: refund\n"
        "    direction: lower\n    window: 48h\n"
    )
    assert ok_json(stoa("metrics", "define", "m.yaml", "--json"))[0]["version"] == 1
    listed = ok_json(stoa("metrics", "list", "--json"))
    assert [m["name"] for m in listed][:2] == ["ctr", "csat"] and listed[-1]["name"] == "refunds"
    shown = ok_json(stoa("metrics", "show", "refunds", "--json"))
    assert (shown["kind"], shown["window"], shown["direction"]) == ("proportion", "48h", "lower")
    (tmp_path / "bad.yaml").write_text("name: x\nkind: ratio\nnumerator: {event: a}\n")
    one_line_error(stoa("metrics", "define", "bad.yaml"), 2, "metrics[0]", "a ratio needs")
    one_line_error(stoa("metrics", "define", "nope.yaml"), 2, "nope.yaml does not exist")
    one_line_error(stoa("metrics", "show", "nope"), 2, "no metric named 'nope'")


def test_judges_feedback_and_export_to_a_dataset(stoa, tmp_path):  # noqa: F811
    (tmp_path / "help.yaml").write_text(SPEC)
    ok_json(stoa("solutions", "register", "help.yaml", "--json"))
    db = Database(f"sqlite:///{tmp_path / 'home' / 'stoa.db'}")
    rows = [
        prediction("help", "a", T0 + timedelta(seconds=i), target="solution:help@1",
                   input={"question": f"q{i}"}, output={"text": f"a{i}"})
        for i in range(3)
    ]  # fmt: skip
    write(db, rows, [feedback(rows[0], "label", "wrong", T0 + timedelta(hours=1), "human")])
    db.dispose()

    created = ok_json(stoa("judges", "create", "j", "-e", "help", "--rate", "1", "--json"))
    assert created["spec"]["judges"] == ["embedding"]
    one_line_error(stoa("judges", "create", "k", "-e", "help", "--rate", "2"), 2, "policy.rate")
    bad = stoa("judges", "create", "k", "-e", "help", "--judge", "gpt")
    one_line_error(bad, 2, "unknown judge")
    ran = ok_json(stoa("judges", "run", "j", "--json"))
    assert ran[0]["scored"] == 3 and ran[0]["scores"] == 6

    # The old form and the explicit one both send.
    sent = stoa("feedback", rows[1]["id"], "label", '"correct"')
    assert sent.returncode == 0 and sent.stdout.strip() == "recorded", sent.stderr
    ok_json(stoa("feedback", "send", rows[2]["id"], "correction", '"a better answer"', "--json"))
    one_line_error(stoa("feedback", "nope", "click", "true"), 2, "nope")

    exported = ok_json(stoa("feedback", "export", "help", "--to-dataset", "fixes", "--json"))
    assert exported["rows"] == 3 and exported["parents"] == ["solution:help@1"]
    assert exported["labels"] == {"wrong": 1, "correct": 1, "(none)": 1}
    one_line_error(
        stoa("feedback", "export", "other", "--to-dataset", "fixes"), 2, "no reviewed predictions"
    )
    one_line_error(
        stoa("feedback", "export", "help", "--to-dataset", "x", "--format", "xlsx"), 2, "xlsx"
    )


def test_monitor_drift_between_two_tables(stoa, tmp_path):  # noqa: F811
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "amount": rng.normal(50, 10, 3000),
            "plan": rng.choice(["free", "pro"], 3000, p=[0.7, 0.3]),
        }
    )
    current = pd.DataFrame({"amount": rng.normal(58, 10, 3000),
                            "plan": rng.choice(["free", "pro"], 3000, p=[0.7, 0.3])})  # fmt: skip
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_parquet(tmp_path / "cur.parquet", index=False)
    ok_json(stoa("datasets", "register", "train", "ref.csv", "--json"))
    report = ok_json(stoa("monitor", "drift", "--reference", "train@1", "--current",
                          "cur.parquet", "--json"))  # fmt: skip
    columns = {c["column"]: c for c in report["columns"]}
    assert columns["amount"]["test"] == "wasserstein" and columns["amount"]["drifted"]
    assert not columns["plan"]["drifted"] and report["dataset"]["drifted"] is True
    assert report["reference"] == {"source": "train@1", "rows": 3000}
    psi = ok_json(stoa("monitor", "drift", "--reference", "ref.csv", "--current", "cur.parquet",
                       "--method", "amount=psi", "--column", "amount", "--json"))  # fmt: skip
    assert psi["columns"][0]["test"] == "psi" and psi["columns"][0]["drifted"]
    shown = stoa("monitor", "drift", "--reference", "ref.csv", "--current", "cur.parquet")
    assert "1 of 2 columns drifted" in shown.stdout and "DRIFT" in shown.stdout
    one_line_error(stoa("monitor", "drift", "--reference", "nope.csv", "--current", "cur.parquet"),
                   2, "reference", "nope.csv does not exist")  # fmt: skip
    one_line_error(stoa("monitor", "drift", "--reference", "ref.csv", "--current", "cur.parquet",
                        "--method", "amount=magic"), 2, "magic")  # fmt: skip
    one_line_error(stoa("monitor", "drift", "--reference", "ref.csv", "--current", "cur.parquet",
                        "--column", "age"), 2, "age")  # fmt: skip
    one_line_error(stoa("monitor", "report", "nothing"), 2, "no predictions of 'nothing'")


def test_experiments_analyze_a_table_report_and_promote(stoa, tmp_path):  # noqa: F811
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    n = 8000
    group = np.where(rng.random(n) < 0.5, "control", "treatment")
    clicked = rng.random(n) < np.where(group == "treatment", 0.13, 0.10)
    units = pd.DataFrame({"group": group, "clicked": clicked.astype(int)})
    units["ms"] = rng.gamma(4, 10, n)
    units.to_csv(tmp_path / "units.csv", index=False)
    result = ok_json(stoa("experiments", "analyze", "units.csv", "--variant", "group",
                          "--metric", "clicked:proportion", "--metric", "ms:mean:lower:guardrail",
                          "--weights", "control=50,treatment=50", "--json"))  # fmt: skip
    assert result["decision"]["label"] == "ship treatment" and result["rows"] == n
    shown = stoa("experiments", "analyze", "units.csv", "--variant", "group",
                 "--metric", "clicked:proportion")  # fmt: skip
    assert "decision: ship treatment" in shown.stdout and "because:" in shown.stdout
    one_line_error(stoa("experiments", "analyze", "units.csv", "--variant", "group",
                        "--metric", "clicked:share"), 2, "unknown kind 'share'")  # fmt: skip
    one_line_error(stoa("experiments", "analyze", "units.csv", "--variant", "arm",
                        "--metric", "clicked:proportion"), 2, "arm")  # fmt: skip
    one_line_error(
        stoa(
            "experiments",
            "analyze",
            "units.csv",
            "--variant",
            "group",
            "--metric",
            "clicked:proportion",
            "--weights",
            "a=x",
        ),
        2,
        "not a number",
    )

    (tmp_path / "help.yaml").write_text(SPEC)
    ok_json(stoa("solutions", "register", "help.yaml", "--json"))
    ok_json(stoa("endpoints", "create", "shop", "-v", "a=help@1:50", "-v", "b=help@1:50", "--json"))
    db = Database(f"sqlite:///{tmp_path / 'home' / 'stoa.db'}")
    rows, events = [], []
    for u in range(400):
        row = prediction("shop", "ab"[u % 2], T0 + timedelta(seconds=u), unit_id=f"u{u}",
                         target="solution:help@1")  # fmt: skip
        rows.append(row)
        if u % 5 == 0:
            events.append(feedback(row, "click", True, T0 + timedelta(hours=1)))
    write(db, rows, events)
    db.dispose()
    report = ok_json(stoa("experiments", "report", "shop", "--json"))
    assert report["decision"]["action"] == "continue" and report["srm"]["flagged"] is False
    one_line_error(stoa("experiments", "promote", "shop", "b"), 1, "does not recommend b")
    promoted = ok_json(stoa("experiments", "promote", "shop", "b", "--force", "--reason",
                            "product call", "--json"))  # fmt: skip
    assert promoted["version"] == 2 and promoted["note"].endswith("| product call")
    one_line_error(stoa("experiments", "report", "nowhere"), 2, "nowhere")
