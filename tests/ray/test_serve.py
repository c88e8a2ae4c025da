"""`stoa serve --ray` against a local Ray cluster: the replicas answer predict and chat
completions exactly as the in-process server does for the same inputs and unit ids,
and every prediction, shadows included, is in the PostgreSQL logbook afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from stoa.client import LocalClient
from stoa.core.settings import Settings
from stoa.serve.server import create_app
from tests.artifacts import SUPPORT_SPEC, ticket_classifier
from tests.serve.test_server_process import STOA, free_port, stoa_env
from tests.servers import serve_in_thread

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

READY_S = 180
TEXTS = [
    "refund my order", "reset my password", "hi", "please send me your password",
    "my invoice is wrong and I was charged twice for the same order last month", "ok",
]  # fmt: skip


def _prepare(settings: Settings) -> None:
    """tickets@champion, support@1 and a support@2 that words its answer differently;
    an endpoint that splits them by unit and mirrors every request to a shadow."""
    with LocalClient(settings=settings, actor="tester") as client:
        client.models.log("tickets", ticket_classifier())
        client.models.set_alias("tickets", 1, "champion")
        client.solutions.register(SUPPORT_SPEC)
        client.solutions.register(SUPPORT_SPEC.replace("Routing your", "Sending your"))
        client.endpoints.create(
            "support",
            ["a=support@1:50", "b=support@2:50", "s=support@2:shadow"],
            description="the Ray test endpoint",
        )


def _exchange(url: str) -> tuple[list[dict], list[dict], set[str]]:
    """Predictions and chat completions (plain and streamed) for fixed units; what
    must match, and every prediction id the server gave."""
    predicted, chatted, ids = [], [], set()
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(24):
            body = {"input": {"text": TEXTS[i % len(TEXTS)]}, "unit_id": f"user-{i}"}
            answer = http.post("/v1/endpoints/support/predict", json=body)
            assert answer.status_code == 200, answer.text
            got = answer.json()
            ids.add(got["prediction_id"])
            predicted.append({k: got[k] for k in ("variant", "status", "output", "tokens")})
    sdk = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    for i in range(6):
        messages = [{"role": "user", "content": TEXTS[i]}]
        headers = {"X-Stoa-Unit-Id": f"chat-{i}"}
        done = sdk.chat.completions.with_raw_response.create(
            model="support", messages=messages, extra_headers=headers
        )
        ids.add(done.headers["X-Stoa-Prediction-Id"])
        parsed = done.parse()
        stream = sdk.chat.completions.create(
            model="support", messages=messages, stream=True, extra_headers=headers
        )
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        chatted.append({"content": parsed.choices[0].message.content,
                        "variant": parsed.system_fingerprint, "streamed": "".join(pieces),
                        "finish": parsed.choices[0].finish_reason})  # fmt: skip
    return predicted, chatted, ids


def _wait_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"stoa serve --ray exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready after {READY_S} s:\n{log.read_text()[-3000:]}")


def _counted(url: str) -> tuple[dict[str, float], dict[str, float], float]:
    """What one scrape through Serve's proxy counts: requests and shadow runs of the
    endpoint by variant, and how many replicas it added up."""
    requests: Counter[str] = Counter()
    shadows: Counter[str] = Counter()
    reporting = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for sample in family.samples:
            if (
                sample.labels.get("endpoint") != "support"
                and family.name != "stoa_replicas_reporting"
            ):
                continue
            if sample.name == "stoa_requests_total":
                requests[sample.labels["variant"]] += sample.value
            elif sample.name == "stoa_shadow_runs_total":
                shadows[sample.labels["variant"]] += sample.value
            elif sample.name == "stoa_replicas_reporting":
                reporting = sample.value
    return dict(requests), dict(shadows), reporting


def _check_metrics(url: str, predicted: list[dict], chatted: list[dict]) -> None:
    """Every scrape, whichever replica answers it, counts all 36 requests and their 36
    shadow runs: each replica served only part of them."""
    variants = Counter(p["variant"] for p in predicted)
    # plain and streamed, for one unit; the fingerprint is ENDPOINT/VARIANT
    variants.update(2 * [c["variant"].split("/")[-1] for c in chatted])
    expected = (dict(variants), {"s": 36.0}, 2.0)
    import ray

    from stoa.serve.ray.metrics_hub import HUB_NAME, NAMESPACE, PUSH_S

    _wait_for(url, expected)
    # One scrape saw every request, so all have happened; the other replica's copy in
    # the hub may lag by one push. After that, whichever replica answers counts them all.
    time.sleep(3 * PUSH_S)
    scrapes = [_counted(url) for _ in range(6)]
    assert all(scrape == expected for scrape in scrapes), scrapes

    ray.kill(ray.get_actor(HUB_NAME, namespace=NAMESPACE))  # the hub is a cache: lose it
    _wait_for(url, expected)  # a scrape starts another, and the next pushes fill it


def _wait_for(url: str, expected: tuple) -> None:
    deadline = time.monotonic() + 30  # shadows run after the answer; pushes every second
    while (got := _counted(url)) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert got == expected


def test_ray_serve_answers_as_in_process_and_logs_every_prediction(
    ray_cluster, postgres_url, tmp_path
):
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    _prepare(settings)
    with serve_in_thread(create_app(settings)) as url:
        local = _exchange(url)

    port, log = free_port(), tmp_path / "serve.log"
    env = stoa_env(tmp_path / "home", STOA_DATABASE_URL=postgres_url)
    command = [STOA, "serve", "endpoint:support", "--ray", "--address", ray_cluster,
               "--replicas", "2", "--replica-cpus", "0.5", "--port", str(port)]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}", log)
        on_ray = _exchange(f"http://127.0.0.1:{port}")
        import ray

        actors = ray.util.list_named_actors(all_namespaces=True)  # from the GCS, no dashboard
        replicas = [
            a for a in actors if "SERVE_REPLICA" in a["name"] and "StoaEndpoint" in a["name"]
        ]
        assert len(replicas) == 2, actors
        _check_metrics(f"http://127.0.0.1:{port}", on_ray[0], on_ray[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(90)
        from ray import serve

        serve.shutdown()  # the proxy too: a later deployment in this session starts clean
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "serving endpoint support on Ray Serve (2 replica(s))" in log.read_text()

    assert on_ray[0] == local[0] and on_ray[1] == local[1]
    assert {p["variant"] for p in local[0]} == {"a", "b"}  # both arms took part
    assert any("Sending your" in json.dumps(p["output"]) for p in local[0])
    assert all(c["streamed"] == c["content"] for c in on_ray[1])

    with LocalClient(settings=settings) as client:  # the replicas wrote before they stopped
        for prediction_id in on_ray[2]:
            assert client.predictions.show(prediction_id)["endpoint"] == "support"
        rows = {r["variant"]: r for r in client.predictions.summary("support")}
    # 24 predictions and 12 completions per server, each mirrored to the shadow.
    assert rows["a"]["predictions"] + rows["b"]["predictions"] == 2 * 36
    assert rows["s"]["mode"] == "shadow" and rows["s"]["predictions"] == 2 * 36


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--replicas", "2"], ["ray", "--replicas need(s) --ray"]),
        (["--replica-cpus", "2"], ["ray", "--replica-cpus need(s) --ray"]),
        (["--ray", "--workers", "2"], ["workers", "Ray scales by replicas"]),
        (["--ray", "--autoscale", "3:1"], ["autoscale", "MIN must be at most MAX"]),
        (["--ray", "--autoscale", "two"], ["autoscale", "is not MIN:MAX"]),
        (["--ray", "--replicas", "2", "--autoscale", "1:2"], ["autoscale", "not both"]),
        (["--ray", "--detach"], ["detach", "needs a cluster that outlives"]),
    ],
)
def test_serve_ray_refuses_bad_options_before_starting(tmp_path, args, fragments):
    env = {k: v for k, v in stoa_env(tmp_path / "home").items() if k != "RAY_ADDRESS"}
    with LocalClient(settings=Settings(home=tmp_path / "home")) as client:
        client.models.log("tickets", ticket_classifier())
    result = subprocess.run(
        [STOA, "serve", "tickets@1", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    first = result.stderr.strip().splitlines()[0]
    assert all(f in first for f in fragments), first
    with LocalClient(settings=Settings(home=tmp_path / "home")) as client:
        assert client.endpoints.list() == []  # refused before the endpoint was made


def test_doctor_counts_the_clusters_nodes_and_names_what_one_node_can_share(ray_cluster, tmp_path):
    env = stoa_env(tmp_path / "home")
    result = subprocess.run(
        [STOA, "doctor", "--ray", "--address", ray_cluster, "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["ray cluster"]["status"] == "ok"
    assert rows["ray cluster"]["detail"] == "1 alive node(s)"
    assert rows["ray database"]["detail"].startswith("SQLite works on this one node")
    alone = subprocess.run([STOA, "doctor", "--address", ray_cluster], env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert alone.returncode == 2 and "--address needs --ray" in alone.stderr


def test_a_deploy_that_ray_fails_is_one_clear_error(ray_cluster, tmp_path, monkeypatch):
    """Serve's proxy killed for failing its health checks on a starved node, or a
    replica's constructor raising, ends ``stoa serve --ray`` with Stoa's error, not
    Ray's traceback."""
    from ray.exceptions import RaySystemError

    from stoa.core.errors import ConfigurationError
    from stoa.serve.ray import endpoints

    def proxy_died(*args, **kwargs):
        raise RaySystemError("the proxy actor died before it was ready\n  a remote trace")

    monkeypatch.setattr(endpoints, "deploy", proxy_died)
    with pytest.raises(ConfigurationError) as caught:
        endpoints.serve_on_ray(Settings(home=tmp_path / "home"), "support", endpoints.Scale(),
                               address=ray_cluster, detach=True, say=lambda _: None)  # fmt: skip
    error = caught.value
    assert error.field == "ray"
    assert error.message == (
        "Ray Serve could not start the application: "
        "System error: the proxy actor died before it was ready"
    )
    assert "stoa doctor --ray" in error.fix
