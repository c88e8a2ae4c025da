"""What `stoa select` prints: a leaderboard that fits 80 columns without cutting a number,
the columns a user chooses, and progress on stderr that leaves --json on stdout alone."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console

from stoa.cli.select import leaderboard, leaderboard_table, parse_columns
from stoa.core.errors import InvalidInputError


def _row(name: str, kind: str, f1: float, p95: float, cost: float, **extra) -> dict:
    return {"name": name, "kind": kind,
            "metrics": {"f1_macro": f1, "accuracy": f1 + 0.0123, "precision_weighted": f1 - 0.01,
                        "log_loss": 0.123456},
            "interval": {"low": f1 - 0.021, "high": f1 + 0.017},
            "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95 * 2}, "cost_per_1k": cost,
            "size_mb": 86.214, "train_s": 1234.5, "peak_mem_mb": 512.25,
            "throughput_rows_per_s": 123456.7, "pareto": True, "meets_constraints": True,
            "rejected_because": [], **extra}  # fmt: skip


RESULT = {
    "primary_metric": "f1_macro",
    "run_id": "0123456789abcdef",
    "recommendation": "tfidf-baseline-with-bigrams",
    "leaderboard": [
        _row("tfidf-baseline-with-bigrams", "tfidf_linear", 0.97123, 0.84, 2.23e-6),
        _row("minilm-logistic-head", "embedding_head", 0.96871, 135.21, 1.2e-4,
             pareto=False, meets_constraints=False,
             rejected_because=["p95_ms 135.2 > max_p95_ms 20",
                               "cost_per_1k 0.00012 > max_cost_per_1k 0.0001"]),
        _row("xgboost-on-embeddings", "logistic_regression", 0.5, 9999.99, 123.45),
        {"name": "llm", "kind": "llm_prompt", "params": {}, "metrics": {}, "latency_ms": None,
         "cost_per_1k": None, "size_mb": None, "train_s": None, "pareto": False,
         "meets_constraints": False, "skipped": "no LLM provider is configured",
         "rejected_because": ["skipped: no LLM provider is configured"]},
        {"name": "crashy", "kind": "xgboost", "params": {}, "metrics": {}, "latency_ms": None,
         "cost_per_1k": None, "size_mb": None, "train_s": None, "pareto": False,
         "meets_constraints": False, "failed": "MemoryError: out of memory",
         "rejected_because": ["failed: MemoryError: out of memory"]},
    ],
}  # fmt: skip


def _render(renderable, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def _fits_and_shows(text: str, values: list[str], width: int = 80) -> None:
    assert max(len(line) for line in text.splitlines()) <= width
    # Whole numbers only: a cut one would end in an ellipsis or lose its last digits.
    assert "…" not in text
    for value in values:
        assert re.search(rf"(?<![\d.]){re.escape(value)}(?![\d])", text), value


def test_the_default_leaderboard_fits_80_columns_and_shows_every_number_in_full():
    text = _render(leaderboard_table(RESULT))
    intervals = ["0.950\u20130.988", "0.948\u20130.986"]  # with an en dash
    _fits_and_shows(text, ["0.9712", "0.9687", "0.5000", *intervals, "0.84", "135.21",
                           "9999.99", "2.23e-06", "1.20e-04", "1.23e+02"])  # fmt: skip
    # Names fold rather than push numbers out, and nothing of them is lost.
    first_column = "".join(
        line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")
    )
    assert first_column == "".join(row["name"] for row in RESULT["leaderboard"])
    # Every reason is printed in full below the table.
    assert "p95_ms 135.2 > max_p95_ms 20" in text.replace("\n", " ")
    assert "(2) llm: skipped: no LLM provider is configured" in text
    assert "(3) crashy: failed: MemoryError: out of memory" in text


def test_chosen_columns_that_do_not_fit_go_on_to_a_second_table():
    every = ("name,kind,f1_macro,accuracy,precision_weighted,log_loss,ci,p50_ms,p95_ms,"
             "p99_ms,throughput_rows_per_s,peak_mem_mb,cost_per_1k,size_mb,train_s,pareto,"
             "verdict")  # fmt: skip
    text = _render(leaderboard(RESULT, parse_columns(every, "f1_macro")))
    _fits_and_shows(text, ["0.9835", "0.9612", "0.1235", "67.61", "270.42", "123,457",
                           "512.2", "86.21", "1234.50"])  # fmt: skip
    assert text.count("name ") >= 2  # the names head every table


def test_columns_are_chosen_by_name_and_an_unknown_one_is_refused():
    assert parse_columns(None, "rmse") == ["name", "kind", "rmse", "ci", "p95_ms", "cost_per_1k",
                                           "verdict"]  # fmt: skip
    chosen = parse_columns("name, accuracy,p99_ms,name", "f1_macro")
    assert chosen == ["name", "accuracy", "p99_ms"]
    text = _render(leaderboard(RESULT, chosen))
    assert "accuracy" in text and "p99 ms" in text and "95% CI" not in text
    with pytest.raises(InvalidInputError) as err:
        parse_columns("name,p95", "f1_macro")
    assert err.value.field == "--columns" and "did you mean 'p95_ms'?" in err.value.fix


def test_select_draws_progress_on_stderr_and_keeps_json_on_stdout(stoa, tmp_path):
    import numpy as np
    import pandas as pd
    import yaml

    from tests.cli.test_cli import clean_env

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    frame["y"] = (frame.a + rng.normal(size=200) > 0).astype(int)
    frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "data": {"path": "d.csv", "target": "y"}, "primary_metric": "f1_macro",
        "evaluation": {"bootstrap": 20},
        "candidates": [{"name": "lr", "kind": "logistic_regression"}],
    }))  # fmt: skip
    # TTY_COMPATIBLE makes Rich treat the captured stderr as the terminal a person watches.
    env = clean_env(STOA_HOME=str(tmp_path / "home"), TTY_COMPATIBLE="1")
    result = stoa("select", str(tmp_path / "s.yaml"), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["recommendation"] == "lr"
    assert "lr" in result.stderr and "/5" in result.stderr
    table = stoa("select", str(tmp_path / "s.yaml"), "--columns", "name,accuracy,p99_ms",
                 env={**env, "COLUMNS": "80"})  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "accuracy" in table.stdout and "p99 ms" in table.stdout and "kind" not in table.stdout
    refused = stoa("select", str(tmp_path / "s.yaml"), "--columns", "name,speed")
    from tests.cli.test_cli import one_line_error

    one_line_error(refused, 2, "--columns", "unknown column(s) speed")
