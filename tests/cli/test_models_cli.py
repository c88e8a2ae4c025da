"""`stoa models show` after a licence review, and `models load` / `models predict`."""

from __future__ import annotations

import json

from tests.cli.test_cli import clean_env, ok_json, one_line_error, stoa  # noqa: F401 - fixture


def test_models_show_says_what_is_true_now_and_keeps_registration_findings_as_history(
    stoa,  # noqa: F811
    tmp_path,
    skops_file,
):
    wide = {**clean_env(STOA_HOME=str(tmp_path / "home"), COLUMNS="200"), "STOA_USER": "ada"}
    held = stoa("models", "register", "nc", str(skops_file), "--license", "CC-BY-NC-4.0", env=wide)
    assert held.returncode == 1, held.stderr  # held for review: refused until decided
    before = stoa("models", "show", "nc", env=wide).stdout
    assert "pending: held for licence review" in before
    assert "stoa models approve nc@1" in before
    assert "blocked" not in before  # the scanner's file verdict no longer contradicts it
    assert "license-review" in before and "history" not in before

    approved = stoa("models", "approve", "nc@1", "--note", "legal ok", env=wide)
    assert approved.returncode == 0, approved.stderr
    after = stoa("models", "show", "nc", env=wide).stdout
    assert "allowed: licence review approved by ada on " in after
    assert "+00:00: legal ok" in after and "pending" not in after
    assert "history: findings of the scan at registration" in after
    assert "license-review" in after  # kept, labelled as history
    assert approved.stdout.count("approved by ada") == 1

    review = ok_json(stoa("models", "show", "nc", "--json", env=wide))
    assert review["status"] == "allowed"  # --json is the version record, unchanged

    # The same bytes under another name are released by that decision, and say so.
    again = stoa("models", "register", "copy", str(skops_file), "--license", "CC-BY-NC-4.0",
                 env=wide)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "approved by ada" in again.stdout and "(as nc@1, the same bytes)" in again.stdout


def test_models_load_prints_the_type_flavor_and_a_summary(stoa, skops_file):  # noqa: F811
    ok_json(stoa("models", "register", "m", str(skops_file), "--license", "MIT", "--json"))
    loaded = ok_json(stoa("models", "load", "m", "--json"))
    assert loaded["ref"] == "m@1" and loaded["flavor"] == "sklearn"
    assert loaded["type"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert loaded["summary"]["features"] == 4 and loaded["summary"]["classes"] == [0, 1]
    assert "predict_proba" in loaded["summary"]["can"]
    table = stoa("models", "load", "m@1").stdout
    assert "LogisticRegression" in table and "sklearn" in table


def test_models_predict_writes_one_json_line_per_row(stoa, tmp_path, skops_file, sk_model):  # noqa: F811
    model, x = sk_model
    ok_json(stoa("models", "register", "m", str(skops_file), "--license", "MIT", "--json"))
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, row)) for row in x) + "\n")
    printed = stoa("models", "predict", "m@1", "--input", str(csv))
    assert printed.returncode == 0, printed.stderr
    rows = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [r["row"] for r in rows] == list(range(len(x)))
    assert [r["prediction"] for r in rows] == model.predict(x).tolist()

    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(dict(zip("abcd", row, strict=True))) + "\n" for row in x))
    out = tmp_path / "predictions.jsonl"
    written = stoa("models", "predict", "m", "--input", str(jsonl), "--output", str(out))
    assert written.returncode == 0 and written.stdout == "", written.stderr
    assert f"wrote {len(x)} predictions of m@1 to {out}" in written.stderr
    assert [json.loads(line)["prediction"] for line in out.read_text().splitlines()] == [
        r["prediction"] for r in rows
    ]
    one_line_error(stoa("models", "predict", "m", "--input", str(jsonl), "--output", str(out)),
                   2, "output", "already exists")  # fmt: skip
    one_line_error(stoa("models", "predict", "m", "--input", str(skops_file)), 2, "CSV nor JSONL")
    short = tmp_path / "short.csv"
    short.write_text("a\n1\n")
    one_line_error(stoa("models", "predict", "m", "--input", str(short)), 2, "input",
                   "could not predict")  # fmt: skip


def test_models_predict_and_load_refuse_a_version_that_is_not_allowed(
    stoa,  # noqa: F811
    tmp_path,
    skops_file,
):
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,c,d\n1,2,3,4\n")
    held = stoa("models", "register", "nc", str(skops_file), "--license", "CC-BY-NC-4.0")
    assert held.returncode == 1
    one_line_error(stoa("models", "predict", "nc", "--input", str(csv)), 1, "pending", "nc@1")
    one_line_error(stoa("models", "load", "nc"), 1, "pending")
