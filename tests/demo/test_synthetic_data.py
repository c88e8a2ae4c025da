"""The demo datasets: deterministic, the documented size and noise, and learnable within the
documented bands, so the model-selection demo shows a real but not trivial comparison."""

from __future__ import annotations

import hashlib
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from stoa.demo import synthetic_data as dd


@pytest.fixture(scope="module")
def records() -> list[dd.TicketRecord]:
    return dd.support_ticket_records()


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return dd.support_tickets()


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return dd.churn()


def test_same_seed_same_frames_and_other_seeds_differ() -> None:
    pd.testing.assert_frame_equal(dd.support_tickets(400, seed=3), dd.support_tickets(400, seed=3))
    pd.testing.assert_frame_equal(dd.churn(400, seed=3), dd.churn(400, seed=3))
    assert not dd.support_tickets(400, seed=3).equals(dd.support_tickets(400, seed=4))
    assert not dd.churn(400, seed=3).equals(dd.churn(400, seed=4))


def _digest_in_subprocess(hash_seed: str) -> str:
    code = (
        "import hashlib; from stoa.demo import synthetic_data as d; "
        "print(hashlib.sha256((d.support_tickets(300).to_csv() + d.churn(300).to_csv())"
        ".encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_frames_do_not_depend_on_string_hashing() -> None:
    """Another hash seed must not change a frame: nothing may iterate a set of strings."""
    here = (dd.support_tickets(300).to_csv() + dd.churn(300).to_csv()).encode()
    assert _digest_in_subprocess("12345") == hashlib.sha256(here).hexdigest()


def test_tickets_have_the_documented_shape(tickets: pd.DataFrame) -> None:
    assert list(tickets.columns) == list(dd.TICKET_COLUMNS)
    assert len(tickets) >= 2000
    assert tickets["ticket_id"].is_unique
    counts = tickets["intent"].value_counts()
    assert set(counts.index) == set(dd.INTENT_SHARES) and len(counts) >= 8
    assert counts.min() >= 80
    assert set(tickets["channel"]) == set(dd.CHANNEL_SHARES)
    dates = pd.to_datetime(tickets["created_at"], format="%Y-%m-%d")
    assert dates.dt.year.eq(2024).all()
    for column in dd.TICKET_COLUMNS:
        assert pd.api.types.is_string_dtype(tickets[column]), column


def test_true_intents_follow_the_documented_proportions(records: list[dd.TicketRecord]) -> None:
    got = Counter(r.true_intent for r in records)
    assert dict(got) == dd.exact_counts(dd.INTENT_SHARES, len(records))
    assert dd.exact_counts({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}


def _expected_rates() -> dict[str, float]:
    long = 1 - dd.SHORT_RATE  # the body-level noise only applies to tickets that are not short
    return {
        "short": dd.SHORT_RATE,
        "vague": dd.VAGUE_RATE * long,
        "paraphrase": dd.PARAPHRASE_RATE * long,
        "two_topics": dd.TWO_TOPIC_RATE * long,
        "run_on": dd.RUN_ON_RATE * long,
        "typos": dd.TYPO_RATE * long,
        "lower": dd.LOWER_RATE,
        "upper": dd.UPPER_RATE,
        "label_noise": dd.LABEL_NOISE_RATE,
    }


def test_noise_rates_match_the_docstring(records: list[dd.TicketRecord]) -> None:
    n = len(records)
    seen = Counter(kind for r in records for kind in r.noise)
    for kind, rate in _expected_rates().items():
        tolerance = 4 * math.sqrt(rate * (1 - rate) / n)  # four standard errors
        assert abs(seen[kind] / n - rate) <= tolerance, (kind, seen[kind] / n, rate)


def test_label_noise_changes_exactly_the_noisy_labels(
    records: list[dd.TicketRecord], tickets: pd.DataFrame
) -> None:
    assert tickets["intent"].tolist() == [r.intent for r in records]
    for r in records:
        assert (r.intent != r.true_intent) == ("label_noise" in r.noise)
    assert 0.025 <= sum("label_noise" in r.noise for r in records) / len(records) <= 0.055


def test_noise_is_visible_in_the_text(records: list[dd.TicketRecord]) -> None:
    short = [r.body for r in records if "short" in r.noise]
    assert short and all(len(body.split()) <= 5 for body in short)
    assert any(body in dd.GENERIC_SHORT for body in short)
    assert any(r.body.isupper() for r in records if "upper" in r.noise)
    assert all(r.body == r.body.lower() for r in records if "lower" in r.noise)
    assert any("Sent from my" in r.body for r in records)
    assert all("{" not in r.body for r in records)  # every slot was filled


def test_typos_swap_drop_or_double_letters() -> None:
    text = "please cancel my subscription before the renewal"
    for seed in range(20):
        noisy = dd.add_typos(text, random.Random(seed), 2)
        assert noisy != text
        assert abs(len(noisy) - len(text)) <= 2
        changed = [a != b for a, b in zip(noisy.split(), text.split(), strict=True)]
        assert 1 <= sum(changed) <= 2


def test_churn_has_the_documented_columns_rate_and_missing_values(
    customers: pd.DataFrame,
) -> None:
    assert len(customers) == 3000 and customers["customer_id"].is_unique
    assert 0.20 <= customers["churned"].mean() <= 0.30
    missing = customers.isna().mean()
    assert set(missing[missing > 0].index) == {"total_charges"}
    assert 0.02 <= missing["total_charges"] <= 0.06
    assert set(customers["contract"]) == set(dd.CONTRACT_SHARES)
    assert customers["tenure_months"].between(1, 72).all()
    assert customers["num_products"].between(1, 4).all()
    for column in ("tenure_months", "support_tickets_90d", "num_products", "last_login_days"):
        assert pd.api.types.is_integer_dtype(customers[column]), column
    for column in ("monthly_charges", "total_charges"):
        assert pd.api.types.is_float_dtype(customers[column]), column
    for column in ("has_discount", "paperless_billing"):
        assert pd.api.types.is_bool_dtype(customers[column]), column
    for column in ("customer_id", "contract", "payment_method", "region"):
        assert pd.api.types.is_string_dtype(customers[column]), column
    assert set(customers["churned"]) == {0, 1}


def test_churn_follows_its_documented_logit(customers: pd.DataFrame) -> None:
    """Customers with the highest predictor churn far more than those with the lowest."""
    z = pd.Series(dd.churn_logit(customers))
    top, bottom = z >= z.quantile(0.8), z <= z.quantile(0.2)
    assert customers["churned"][top].mean() > 0.6 > 0.05 > customers["churned"][bottom].mean()


def test_tfidf_logistic_regression_lands_in_the_documented_band(tickets: pd.DataFrame) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    train, test = train_test_split(
        tickets, test_size=0.2, stratify=tickets["intent"], random_state=0
    )
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(max_iter=2000),
    )
    with threadpool_limits(limits=1):  # BLAS threads fight each other on a shared runner
        model.fit(train["body"], train["intent"])
    macro_f1 = f1_score(test["intent"], model.predict(test["body"]), average="macro")
    assert 0.80 <= macro_f1 <= 0.93, macro_f1


def test_gradient_boosting_lands_in_the_documented_band(customers: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    features = pd.get_dummies(customers.drop(columns=["customer_id", "churned"]), dtype=float)
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        customers["churned"],
        test_size=0.2,
        stratify=customers["churned"],
        random_state=0,
    )
    with threadpool_limits(limits=1):  # OpenMP threads fight each other on a shared runner
        model = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)
        auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    assert 0.80 <= auc <= 0.90, auc


def test_write_demo_data_round_trips(tmp_path: Path) -> None:
    paths = dd.write_demo_data(tmp_path / "demo")
    assert set(paths) == {"tickets", "churn"}
    assert [p.name for p in paths.values()] == ["tickets.csv", "churn.csv"]
    tickets = pd.read_csv(paths["tickets"], keep_default_na=False)
    pd.testing.assert_frame_equal(tickets, dd.support_tickets(), check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(paths["churn"]), dd.churn(), check_dtype=False)
