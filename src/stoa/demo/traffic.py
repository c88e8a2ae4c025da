"""The demo's serving step: a simulated day of traffic on the support assistant.

The step starts ``stoa server`` in this process on a free loopback port, puts the
support assistant behind the endpoint ``support`` and sends it a day of requests over
HTTP, as a client would. Then the users act on the answers, through ``/v1/feedback``.

Variants (one endpoint, one solution version, overrides only)
    ``a`` and ``b`` take half the users each and answer with the extractive generator:
    a generation by the local 135M model took 8 s per answer on the demo machine, and
    its answers to the guide questions scored a word F1 of 0.09 against 0.31 for the
    extractive ones, so it has no place on the live path. They differ in one block:
    how many passages the ``docs`` retrieve step hands the generator (``a``: ``k`` =
    ``K_A``, ``b``: ``K_B``). Measured before choosing: on the guide questions ``k`` from
    1 to 6, and lexical or vector retrieval instead of hybrid, moved the word F1 by at
    most 0.01, because the best sentence comes from the top passage; so the two
    variants answer alike and a difference in what their users do is the planted one.
    ``s`` is the solution as registered (the local SmolLM2 generating) in shadow, on
    ``SHADOW_PERCENT`` % of requests with a shadow queue of ``SHADOW_QUEUE``: a mirrored
    request that finds the queue full is skipped and counted, never waited for, so the
    CPU spends on the model what it can spare and no more.

The day
    ``REQUESTS`` requests from ``USERS`` users (unit ids ``user-001`` …), each with a
    simulated time of day drawn from ``HOURLY`` (a support desk's day: quiet at night,
    busiest late morning and mid-afternoon). The day is compressed: requests go out in
    the order of their simulated time as fast as ``CONCURRENCY`` clients allow, the
    logbook's ``ts`` is the real time, and the simulated hour travels in the input
    (``{"text": …, "hour": 14}``). A request is a question from the user guide with a
    reference answer (``GUIDE_SHARE``; the assistant's evaluation questions) or one of
    ``TICKETS`` synthetic support tickets (the rest; from the generator the intent
    classifier was selected on, with another seed, so the classifier never saw them).

Quality of an answer, q in [0, 1]
    The word F1 (``stoa.develop.judges.token_f1``, SQuAD's answer score) of the
    answer's text against a reference: a guide question's written reference; for a
    ticket whose intent has a routine answer, that routine answer (so a misrouted
    ticket scores low); for any other ticket, the hand-off message (a person should
    answer what neither a template nor the guide covers). The word F1 is used rather
    than the embedding judge because it costs microseconds per answer, where the judge
    embeds the question, the answer, its sentences and the reference with MiniLM.

The users (seeded; one draw per prediction, in request order)
    - click with probability ``(0.15 + 0.6 q) * (1 + PLANTED_LIFT if variant b)``: the
      planted effect, users of ``b`` click ``PLANTED_LIFT`` more often at the same
      quality, as a change outside the answer (a clearer link, say) would make them;
    - rate with probability ``0.3``, a rating of ``round(1 + 4 q + e)`` clipped to 1-5,
      ``e ~ Normal(0, 0.6)``;
    - after a click, convert with probability ``0.2 + 0.3 q`` (the same funnel on both
      variants, so conversions per click do not move).
    ``REQUESTS`` and ``USERS`` are sized so the A/B report's default (sequential) rule
    can find the lift within the one day; the measure step prints its decision, which
    says "keep running (needs about N more units)" when a day is too short.
    Events go to ``POST /v1/feedback`` in batches of ``FEEDBACK_BATCH``, each with an
    idempotency key (``demo-<prediction id>-<kind>``), so a resent batch counts once.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from stoa.client import LocalClient

ENDPOINT = "support"
SOLUTION = "support-assistant@production"
K_A, K_B = 2, 4
SHADOW_PERCENT = 1
SHADOW_QUEUE = 1
USERS = 500
REQUESTS = 3000
CONCURRENCY = 8
GUIDE_SHARE = 0.35
TICKETS = 300
FEEDBACK_BATCH = 500
PLANTED_LIFT = 0.30
SEED = 16
#: Relative request volume per hour of the simulated day, midnight first.
HOURLY = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 12, 11, 9, 10, 11, 10, 8, 6, 5, 4, 3, 2, 2, 1)
_START_WAIT_S = 30


@dataclass(frozen=True)
class Request:
    """One request of the day: who, when, what, and what a right answer says."""

    unit_id: str
    hour: int
    minute: int
    text: str
    reference: str
    source: str  # "guide" or "ticket"


def serve_a_day(client: LocalClient, out: dict[str, Any], console: Console) -> str:
    """Deploy, drive a day of traffic, act on the answers, and count what was logged."""
    started = time.perf_counter()
    info = client.endpoints.create(
        ENDPOINT,
        [
            {"name": "a", "target": SOLUTION, "weight": 50, "overrides": _overrides(K_A)},
            {"name": "b", "target": SOLUTION, "weight": 50, "overrides": _overrides(K_B)},
            {"name": "s", "target": SOLUTION, "mode": "shadow", "sample": SHADOW_PERCENT / 100},
        ],
        options={"shadow_queue": SHADOW_QUEUE},
        description="The support assistant: two retrieval depths and the local LLM in shadow.",
    )
    day = plan_day(_guide_questions(), _ticket_questions(), n=REQUESTS, users=USERS, seed=SEED)
    day_started = datetime.now(UTC)
    with running_server(client) as url:
        import httpx

        with httpx.Client(base_url=url, timeout=120) as http:
            shadows_before = _shadow_counts(http.get("/metrics").text)
            traffic_started = time.perf_counter()
            answers = _send(http, day)
            traffic_s = time.perf_counter() - traffic_started
            events = user_actions(day, answers, seed=SEED)
            feedback = _send_feedback(http, events)
            shadows = _delta(_shadow_counts(http.get("/metrics").text), shadows_before)
    day_ended = datetime.now(UTC)
    summary = client.predictions.summary(ENDPOINT)  # after shutdown: the logbook is flushed
    # A shadow still running at the last scrape ends before shutdown completes: the
    # logbook, read now, counts every one that ran; skips happen only on live requests.
    shadows = {
        "ran": sum(r["predictions"] for r in summary if r["mode"] == "shadow"),
        "skipped": shadows.get("skipped", 0),
    }
    figures = _figures(info.version, day, answers, traffic_s, feedback, shadows, summary)
    figures["seconds"] = time.perf_counter() - started
    rated = [e["prediction_id"] for e in events if e["kind"] == "rating"]
    figures["prediction_id"] = rated[0] if rated else answers[0]["prediction_id"]
    figures["window"] = {"since": day_started.isoformat(), "until": day_ended.isoformat()}
    out["traffic"] = figures
    # What the simulated reviewer of the measure step knows about each answer.
    out["answers"] = {
        a["prediction_id"]: {"quality": a["quality"], "reference": r.reference}
        for r, a in zip(day, answers, strict=True)
        if "quality" in a
    }
    console.print(summary_table(summary, shadows))
    return _outcome(figures)


# -- the endpoint and its server ---------------------------------------------------------


def _overrides(k: int) -> dict[str, dict[str, Any]]:
    """The live variants: extractive answers, from ``k`` retrieved passages."""
    return {"docs": {"k": k}, "answer": {"provider": "extractive", "model": "", "fallbacks": []}}


@contextlib.contextmanager
def running_server(client: LocalClient) -> Iterator[str]:
    """``stoa server`` in a thread on a free loopback port; stopped gracefully (the
    logbook writes what it holds) when the block ends. The socket is bound here and
    handed to uvicorn, so no other process can take the port in between."""
    import uvicorn

    from stoa.serve.server.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(client=client), log_level="critical", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_WAIT_S
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the demo's server did not start")
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, deadline + _START_WAIT_S)
        yield url
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def _wait_ready(url: str, deadline: float) -> None:
    """Until /readyz: the server loads the endpoint's models and plans before traffic."""
    import httpx

    while not httpx.get(f"{url}/readyz", timeout=10).json()["ready"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the demo's server did not get ready")
        time.sleep(0.05)


# -- the day -----------------------------------------------------------------------------


def _guide_questions() -> list[tuple[str, str]]:
    """The assistant's evaluation questions: (question, reference answer)."""
    from stoa.demo.assistant import REQUESTS as EVALUATION

    return [(r["input"], r["reference"]) for r in EVALUATION if "reference" in r]


def routine_answers() -> dict[str, str]:
    """The routine answer per intent, rendered from the assistant's own spec, and the
    hand-off message: what a right answer to a ticket says."""
    import yaml
    from jinja2.sandbox import SandboxedEnvironment

    from stoa.demo.assistant import SUPPORT

    steps = {s["id"]: s for s in yaml.safe_load(SUPPORT)["steps"]}
    template = SandboxedEnvironment().from_string(steps["routine"]["template"])
    intents = re.findall(r'"([a-z_]+)":', steps["routine"]["template"])
    answers = {i: " ".join(template.render(intent={"label": i}).split()) for i in intents}
    answers["handoff"] = steps["human"]["template"]
    return answers


def _ticket_questions() -> list[tuple[str, str]]:
    """Synthetic tickets with the answer their true intent deserves."""
    from stoa.demo.synthetic_data import support_ticket_records

    answers = routine_answers()
    return [
        (t.body, answers.get(t.true_intent, answers["handoff"]))
        for t in support_ticket_records(TICKETS, seed=SEED)
    ]


def plan_day(
    guide: list[tuple[str, str]],
    tickets: list[tuple[str, str]],
    *,
    n: int,
    users: int,
    seed: int,
    guide_share: float = GUIDE_SHARE,
    hourly: tuple[int, ...] = HOURLY,
) -> list[Request]:
    """``n`` requests from ``users`` users in the order of their simulated time."""
    rng = random.Random(seed)
    requests = []
    for _ in range(n):
        source = "guide" if rng.random() < guide_share else "ticket"
        text, reference = rng.choice(guide if source == "guide" else tickets)
        hour = rng.choices(range(24), weights=hourly)[0]
        unit = f"user-{rng.randrange(users) + 1:03d}"
        requests.append(Request(unit, hour, rng.randrange(60), text, reference, source))
    return sorted(requests, key=lambda r: (r.hour, r.minute))


def _send(http: Any, day: list[Request]) -> list[dict[str, Any]]:
    """Every request over HTTP, ``CONCURRENCY`` at a time; the answers in request order."""

    def one(request: Request) -> dict[str, Any]:
        body = {"input": {"text": request.text, "hour": request.hour}, "unit_id": request.unit_id}
        response = http.post(f"/v1/endpoints/{ENDPOINT}/predict", json=body)
        if response.status_code == 502:  # the variant failed: logged, with its id
            return {"prediction_id": response.headers.get("X-Stoa-Prediction-Id"),
                    "status": "error", "variant": None, "output": {}}  # fmt: skip
        response.raise_for_status()
        return response.json()

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, day))


# -- the users ---------------------------------------------------------------------------


def answer_text(answer: dict[str, Any]) -> str:
    output = answer.get("output")
    return str(output.get("text", "")) if isinstance(output, dict) else ""


def user_actions(
    day: list[Request], answers: list[dict[str, Any]], *, seed: int
) -> list[dict[str, Any]]:
    """What the users do with each answer (the module docstring gives the model)."""
    from stoa.develop.judges import token_f1

    rng = random.Random(seed + 1)
    scored: dict[tuple[str, str], float] = {}
    events = []
    for request, answer in zip(day, answers, strict=True):
        if answer.get("status") == "error" or not answer.get("prediction_id"):
            continue
        text = answer_text(answer)
        key = (text, request.reference)
        if key not in scored:
            scored[key] = token_f1(text, request.reference)
        q = scored[key]
        answer["quality"] = q
        pid = answer["prediction_id"]

        def event(kind: str, value: Any, pid: str = pid) -> dict[str, Any]:
            return {"prediction_id": pid, "kind": kind, "value": value, "source": "user",
                    "idempotency_key": f"demo-{pid}-{kind}"}  # fmt: skip

        click, rate, noise, convert = rng.random(), rng.random(), rng.gauss(0, 0.6), rng.random()
        lift = 1 + PLANTED_LIFT if answer.get("variant") == "b" else 1.0
        clicked = click < (0.15 + 0.6 * q) * lift
        if clicked:
            events.append(event("click", True))
        if rate < 0.3:
            events.append(event("rating", min(5, max(1, round(1 + 4 * q + noise)))))
        if clicked and convert < 0.2 + 0.3 * q:
            events.append(event("conversion", True))
    return events


def _send_feedback(http: Any, events: list[dict[str, Any]]) -> dict[str, int]:
    accepted = duplicates = 0
    for start in range(0, len(events), FEEDBACK_BATCH):
        response = http.post("/v1/feedback", json=events[start : start + FEEDBACK_BATCH])
        response.raise_for_status()
        body = response.json()
        accepted, duplicates = accepted + body["accepted"], duplicates + body["duplicates"]
    # One batch again: the idempotency keys make the resend count zero new events.
    if events:
        again = http.post("/v1/feedback", json=events[:FEEDBACK_BATCH])
        again.raise_for_status()
        duplicates += again.json()["duplicates"]
    return {"sent": len(events), "accepted": accepted, "duplicates": duplicates}


# -- the counts --------------------------------------------------------------------------

_SHADOW_LINE = re.compile(
    r"^stoa_shadow_runs_total\{(?P<labels>[^}]*)\}\s+(?P<value>[0-9.eE+-]+)$", re.M
)


def _shadow_counts(text: str) -> dict[str, float]:
    """Shadow runs of this endpoint by outcome, from a ``/metrics`` scrape."""
    counts: dict[str, float] = {}
    for match in _SHADOW_LINE.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("endpoint") == ENDPOINT:
            outcome = labels.get("outcome", "")
            counts[outcome] = counts.get(outcome, 0) + float(match["value"])
    return counts


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, int]:
    return {k: int(v - before.get(k, 0)) for k, v in after.items() if v - before.get(k, 0)}


def _figures(
    version: int,
    day: list[Request],
    answers: list[dict[str, Any]],
    traffic_s: float,
    feedback: dict[str, int],
    shadows: dict[str, int],
    summary: list[dict[str, Any]],
) -> dict[str, Any]:
    quality: dict[str, list[float]] = {}
    for answer in answers:
        if "quality" in answer:
            quality.setdefault(answer["variant"], []).append(answer["quality"])
    return {
        "endpoint": ENDPOINT,
        "config_version": version,
        "requests": len(day),
        "users": len({r.unit_id for r in day}),
        "guide_questions": sum(r.source == "guide" for r in day),
        "errors_seen": sum(a.get("status") == "error" for a in answers),
        "traffic_s": traffic_s,
        "requests_per_s": len(day) / traffic_s if traffic_s else 0.0,
        "quality": {v: sum(q) / len(q) for v, q in sorted(quality.items())},
        "feedback": feedback,
        "shadow_runs": shadows,
        "variants": summary,
    }


def summary_table(summary: list[dict[str, Any]], shadows: dict[str, int]) -> Table:
    """The logbook per variant, as ``stoa predictions summary`` prints it."""
    table = Table(title=f"endpoint {ENDPOINT}: the logbook per variant", title_justify="left")
    for column in ("variant", "mode", "predictions", "errors", "p50 ms", "p95 ms",
                   "clicks", "ratings", "conversions"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("variant", "mode") else "right")
    for row in summary:
        fb = row["feedback"]
        table.add_row(
            row["variant"], row["mode"], str(row["predictions"]), str(row["errors"]),
            _ms(row["p50_latency_ms"]), _ms(row["p95_latency_ms"]), str(fb.get("click", 0)),
            str(fb.get("rating", 0)), str(fb.get("conversion", 0)),
        )  # fmt: skip
    ran, skipped = shadows["ran"], shadows["skipped"]
    table.caption = (
        f"errors: failed or timed out; shadow runs: {ran} ran, {skipped} skipped (queue full)"
    )
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _outcome(figures: dict[str, Any]) -> str:
    live = {r["variant"]: r for r in figures["variants"] if r["mode"] == "live"}
    shadows = figures["shadow_runs"]
    ran = shadows["ran"]
    quality = ", ".join(f"{v} {q:.2f}" for v, q in figures["quality"].items())
    logged = sum(r["predictions"] for r in live.values())
    return (
        f"{figures['requests']} requests from {figures['users']} users at "
        f"{figures['requests_per_s']:.0f}/s; {logged} logged live ("
        + ", ".join(f"{v} {r['predictions']}" for v, r in live.items())
        + f"), shadow {ran} ran / {shadows['skipped']} skipped; answer quality "
        f"{quality}; {figures['feedback']['accepted']} feedback events"
    )
