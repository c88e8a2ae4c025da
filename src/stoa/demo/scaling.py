"""The demo's scale-out step: the day's endpoint as Ray Serve replicas, and a batch of
the day's questions on Ray Data, each checked against the in-process result.

It runs on a local Ray of 2 CPUs over the demo's own SQLite home: one node, so SQLite
and the blob folder are shared by construction (docs/scale.md says what changes on a
cluster). Without Ray installed the step says so and the demo goes on.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from stoa.client import LocalClient
from stoa.demo.traffic import (
    ENDPOINT,
    K_A,
    SOLUTION,
    USERS,
    _guide_questions,
    _overrides,
    _ticket_questions,
    plan_day,
    running_server,
)

REPLAYED = 60  # requests sent to both servers
BATCH_ROWS = 300  # questions scored locally and on Ray
REPLICAS = 2
READY_S = 300


def scale_out(client: LocalClient, work: Path, out: dict[str, Any], console: Console) -> str:
    if importlib.util.find_spec("ray") is None:
        return "skipped: Ray is not installed (pip install 'stoa[ray]')"
    from stoa.serve.ray.cluster import connect
    from stoa.serve.ray.endpoints import Scale, deploy, undeploy

    day = plan_day(_guide_questions(), _ticket_questions(), n=REPLAYED, users=USERS, seed=99)
    bodies = [{"input": {"text": r.text, "hour": r.hour}, "unit_id": r.unit_id} for r in day]
    with running_server(client) as url:
        here = _replay(url, bodies)

    import ray as ray_module
    from ray import serve

    settings = client.stores.settings
    owned = not ray_module.is_initialized()  # else a Ray this process already uses: keep it
    ray = connect(settings, "local", num_cpus=2, quiet=True)
    try:
        started = time.perf_counter()
        url = deploy(settings, ENDPOINT, Scale(replicas=REPLICAS), port=_free_port())
        _wait_ready(url)
        deployed_s = time.perf_counter() - started
        there = _replay(url, bodies)
        counted, reporting = _scraped(url)
        undeploy()  # each replica writes its logbook before it stops
        questions = plan_day(
            _guide_questions(), _ticket_questions(), n=BATCH_ROWS, users=USERS, seed=7
        )
        batch = _batch(client, work, [r.text for r in questions])
    finally:
        serve.shutdown()  # first, so no later Serve call in this process finds it stale
        if owned:
            ray.shutdown()
    same = sum(_same(a, b) for a, b in zip(here, there, strict=True))
    logged = sum(client.predictions.show(a["prediction_id"])["endpoint"] == ENDPOINT
                 for a in there)  # fmt: skip
    out["scale"] = {"replicas": REPLICAS, "replayed": len(bodies), "identical": same,
                    "logged": logged, "deploy_s": deployed_s, "metrics_counted": counted,
                    "metrics_replicas": reporting, **batch}  # fmt: skip
    console.print(
        f"[bold]Ray Serve[/]: {REPLICAS} replicas up in {deployed_s:.0f} s; {same} of "
        f"{len(bodies)} answers identical to the in-process server, {logged} in the logbook; "
        f"one scrape of /metrics counts {counted} requests over {reporting} replicas. "
        f"[bold]Ray Data[/]: {batch['batch_rows']} questions, {batch['batch_identical']} rows "
        f"identical "
        f"to the local run."
    )
    return (
        f"{same}/{len(bodies)} answers on {REPLICAS} Ray Serve replicas as in process, "
        f"{logged} logged, {counted} counted by one /metrics scrape; "
        f"batch of {batch['batch_rows']} on Ray Data: {batch['batch_identical']} rows as local"
    )


def _replay(url: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What must match between two servers: the variant, the status and the answer."""
    answers = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for body in bodies:
            response = http.post(f"/v1/endpoints/{ENDPOINT}/predict", json=body)
            response.raise_for_status()
            got = response.json()
            answers.append({k: got[k] for k in ("prediction_id", "variant", "status", "output")})
    return answers


def _scraped(url: str) -> tuple[int, int]:
    """The endpoint's requests that one scrape through Serve's proxy counts, and over how
    many replicas: each replica sends its counts every second, so wait for the last."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(f"{url}/metrics", timeout=30)
        response.raise_for_status()  # says the status and the URL, never the body
        counted, reporting = counted_requests(response.text)
        if counted >= REPLAYED or time.monotonic() > deadline:
            return counted, reporting
        time.sleep(0.5)


def counted_requests(text: str) -> tuple[int, int]:
    """The demo endpoint's requests in a Prometheus exposition, and the replicas it sums."""
    from prometheus_client.parser import text_string_to_metric_families

    counted, reporting = 0.0, 0.0
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "stoa_requests_total":
                    counted += sample.value if sample.labels.get("endpoint") == ENDPOINT else 0
                elif sample.name == "stoa_replicas_reporting":
                    reporting = sample.value
    except ValueError:  # not the exposition format: say so, without repeating the text
        raise RuntimeError("the /metrics answer is not Prometheus text") from None
    return int(counted), int(reporting)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == b[k] for k in ("variant", "status", "output"))


def _batch(client: LocalClient, work: Path, texts: list[str]) -> dict[str, Any]:
    import pandas as pd

    table = work / "questions.parquet"
    pd.DataFrame({"text": texts}).to_parquet(table)
    runs = {}
    for engine in ("local", "ray"):
        out = work / f"scored-{engine}.parquet"
        summary = client.batch.score(SOLUTION, str(table), out, overrides=_overrides(K_A),
                                     partition_rows=50, ray=engine == "ray")  # fmt: skip
        # What a run measures: its time, its trace ids, and its cost (CPU time times its price).
        frame = pd.read_parquet(out).drop(columns=["latency_ms", "trace", "cost_usd"])
        runs[engine] = (frame, summary["rows_per_s"])
    local, ray = (_rows(runs[engine][0]) for engine in ("local", "ray"))
    identical = sum(a == b for a, b in zip(local, ray, strict=False))  # a lost row: fewer
    differ = sorted({k for a, b in zip(local, ray, strict=False) if a != b
                     for k, v in json.loads(a).items() if json.loads(b).get(k) != v})  # fmt: skip
    return {"batch_rows": len(local), "batch_identical": identical, "batch_differ": differ,
            "local_rows_per_s": runs["local"][1], "ray_rows_per_s": runs["ray"][1]}  # fmt: skip


def _rows(frame: Any) -> list[str]:
    """Each row as canonical JSON: None equals None, and list cells compare by value."""

    def plain(value: Any) -> Any:
        return value.tolist() if hasattr(value, "tolist") else str(value)

    return [json.dumps(row, default=plain, sort_keys=True) for row in frame.to_dict("records")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + READY_S
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray Serve replicas were not ready in {READY_S} s")
        time.sleep(0.5)
