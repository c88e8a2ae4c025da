"""The demo's measure step: what the day of traffic says, and what follows from it.

After the serving step's day, everything here reads only the logbook and the feedback:

1. The A/B report on the endpoint's goal metric, CTR (declared before looking, as a
   team should), with the latency, error and cost guardrails: the planted click lift of
   ``b`` (docs in ``stoa.demo.traffic``) is found or not, and the decision says why.
2. An online judge (the embedding judge) scores ``JUDGE_RATE`` of the day's answers.
3. A calibration queue takes every judged answer; a simulated reviewer labels them
   ``correct`` / ``partially`` / ``wrong`` from the answer's word F1 against the
   reference answer (>= 0.5, >= 0.2, else), mistaken on ``REVIEWER_ERROR`` of items,
   and writes the reference as the correction of a wrong answer. Then the judge-human
   agreement, and its verdict on replacing the reviewer.
4. The loop closed: the reviewed answers become a dataset version, and ``stoa select``
   trains on it a classifier that flags questions the assistant answers badly.
5. A second, shifted day (a night shift asking mostly tickets, ``DAY2_REQUESTS``
   requests) goes through the server; the drift report compares it with the first day,
   and two alert rules (input drift, and a CTR floor) are evaluated on it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.text import Text

from stoa.client import LocalClient
from stoa.demo.traffic import (
    ENDPOINT,
    HOURLY,
    SEED,
    _guide_questions,
    _send,
    _send_feedback,
    _ticket_questions,
    plan_day,
    running_server,
    user_actions,
)

JUDGE_POLICY = "support-relevance"
JUDGE_RATE = 0.06
QUEUE = "support-calibration"
REVIEWER_ERROR = 0.1
REVIEWED_DATASET = "support-reviewed"
RISK_MODEL = "answer-risk"
DAY2_REQUESTS = 600
DAY2_GUIDE_SHARE = 0.05
#: The second day's hours: the first day's curve moved by twelve hours (a night shift).
DAY2_HOURLY = HOURLY[12:] + HOURLY[:12]
CTR_FLOOR = 0.35


def measure_the_day(client: LocalClient, out: dict[str, Any], console: Console) -> str:
    """A/B decision, judges, review and agreement, the loop closed, drift and alerts."""
    from stoa.cli.experiments import report_view

    report = client.experiments.report(ENDPOINT, metrics=["ctr"])
    console.print(report_view(report))
    judged = client.judges.create_policy(
        JUDGE_POLICY, {"endpoint": ENDPOINT, "rate": JUDGE_RATE, "criteria": ["relevance"]}
    )
    scored = {"scored": 0, "scores": 0}
    for _ in range(100):  # the server would run a pass every 30 s; the demo catches up now
        result = client.judges.run(judged["name"])[0]
        scored = {k: scored[k] + result[k] for k in scored}
        if result["caught_up"]:
            break
    review = _review(client, out.get("answers", {}))
    console.print(_review_view(review))
    loop = _close_the_loop(client, console)
    drift, fired = _second_day(client, out, console)
    decision = report["decision"]
    out["measure"] = {"decision": decision, "judged": scored, "review": review, "loop": loop,
                      "queue": QUEUE, "day2_since": drift["current"]["since"],
                      "reference": drift["reference_spec"],
                      "drift": drift["drift"]["dataset"], "alerts": fired}  # fmt: skip
    agreement = review["agreement"]["verdict"]
    return (
        f"A/B: {decision['label']}; judge scored {scored['scored']} answers; "
        f"{review['labelled']} reviewed, judge can replace reviewers: "
        f"{'yes' if agreement['replace'] else 'no'}; {loop['dataset']} -> {loop['model']}; "
        f"day 2: {drift['drift']['dataset']['drifted_columns']} of "
        f"{drift['drift']['dataset']['columns']} columns drifted; "
        f"{len(fired)} alert(s) fired"
    )


def _review(client: LocalClient, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The calibration queue, labelled by the simulated reviewer."""
    client.reviews.create_queue(
        QUEUE, ENDPOINT, {"rules": [{"judged": "relevance"}], "criterion": "relevance"}
    )
    rng = random.Random(SEED + 2)
    labels = ["correct", "partially", "wrong"]
    labelled = 0
    while (item := client.reviews.next(QUEUE, reviewer="demo-reviewer")) is not None:
        known = answers.get(item["prediction_id"])
        if known is None:  # not an answer of the simulated day: leave it to a person
            client.reviews.release(item["id"], reviewer="demo-reviewer")
            break
        q = known["quality"]
        label = labels[0] if q >= 0.5 else labels[1] if q >= 0.2 else labels[2]
        if rng.random() < REVIEWER_ERROR:
            label = rng.choice([x for x in labels if x != label])
        correction = known["reference"] if label == "wrong" else None
        client.reviews.label(item["id"], label, correction=correction, reviewer="demo-reviewer")
        labelled += 1
    stats = client.reviews.stats(QUEUE)
    agreement = client.reviews.agreement(ENDPOINT, criterion="relevance", queue=QUEUE)
    return {"labelled": labelled, "stats": stats, "agreement": agreement}


def _review_view(review: dict[str, Any]) -> Group:
    stats, agreement = review["stats"], review["agreement"]
    kappa = agreement["weighted_kappa"] if agreement["ordinal"] else agreement["kappa"]
    rho = agreement["spearman"]
    verdict = agreement["verdict"]
    return Group(
        Text(
            f"review queue {QUEUE}: {stats['done']} labelled "
            + ", ".join(f"{k} {v}" for k, v in stats["by_label"].items())
            + f"; {stats['open']} open, {stats['claimed']} claimed"
        ),
        Text(
            f"judge vs reviewer on {agreement['n']} answers: kappa {_num(kappa['value'])} "
            f"[{_num(kappa['low'])}, {_num(kappa['high'])}], Spearman {_num(rho['value'])}"
        ),
        Text(
            "the judge can replace the reviewer: "
            + ("yes" if verdict["replace"] else "no")
            + f" ({verdict['reason']})",
            style="bold",
        ),
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _close_the_loop(client: LocalClient, console: Console) -> dict[str, Any]:
    """Reviewed answers -> a dataset version -> a classifier trained on it."""
    from stoa.cli.select import leaderboard_table
    from stoa.develop.ml.select import numpy_safe, parse_config, run_selection

    exported = client.feedback.export(ENDPOINT, REVIEWED_DATASET)
    config = parse_config({
        "name": RISK_MODEL,
        "data": {"dataset": exported["dataset"], "target": "label", "text": "text",
                 "split": {"test_size": 0.3, "seed": 7}},
        "primary_metric": "f1_macro",
        "evaluation": {"bootstrap": 100},
        "candidates": [{"name": "tfidf", "kind": "tfidf_linear"}],
    })  # fmt: skip
    result = numpy_safe(run_selection(client, config, register=RISK_MODEL))
    console.print(leaderboard_table(result))
    registered = (result.get("registered") or {}).get("ref") or RISK_MODEL
    return {"dataset": exported["dataset"], "rows": exported["rows"],
            "parents": exported["parents"], "model": registered}  # fmt: skip


def _second_day(
    client: LocalClient, out: dict[str, Any], console: Console
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A shifted day through the server; its drift against the first; alerts on it."""
    from stoa.cli.monitor import drift_table

    day = plan_day(_guide_questions(), _ticket_questions(), n=DAY2_REQUESTS, users=500,
                   seed=SEED + 3, guide_share=DAY2_GUIDE_SHARE, hourly=DAY2_HOURLY)  # fmt: skip
    started = datetime.now(UTC)
    with running_server(client) as url:
        import httpx

        with httpx.Client(base_url=url, timeout=120) as http:
            answers = _send(http, day)
            _send_feedback(http, user_actions(day, answers, seed=SEED + 3))
    seconds = int((datetime.now(UTC) - started).total_seconds()) + 1
    first = out["traffic"]["window"]
    reference = f"logbook:{first['since']}/{first['until']}"
    report = client.monitor.report(ENDPOINT, window=f"{seconds}s", reference=reference)
    report["reference_spec"] = reference
    console.print(drift_table(report["drift"]))
    client.alerts.create_rules([
        {"name": "support-input-drift", "endpoint": ENDPOINT, "window": f"{seconds}s",
         "signal": {"drift": {"reference": reference, "columns": ["hour", "text"]}},
         "op": ">=", "threshold": 0.5, "severity": "warning",
         "description": "the questions or their hours no longer look like the reference day"},
        {"name": "support-ctr-floor", "endpoint": ENDPOINT, "window": f"{seconds}s",
         "signal": {"metric": "ctr"}, "op": "<", "threshold": CTR_FLOOR, "severity": "critical",
         "description": "fewer answers are clicked than the business case needs"},
    ])  # fmt: skip
    fired = [t for t in client.alerts.evaluate() if t.get("to") == "firing"]
    for alert in client.alerts.list():
        console.print(Text(f"alert firing: {alert['rule']}: {alert['message']}", style="bold"))
    return report, fired
