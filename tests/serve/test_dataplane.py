"""The data plane in process: every route of ``stoa.serve.server.dataplane`` through
FastAPI's TestClient, on SQLite and PostgreSQL, with every bad input answered by a
4xx whose status, message and field are checked."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.artifacts import SUPPORT_SPEC, ticket_classifier
from tests.develop.llm.openai_server import Step, scripted_openai_app
from tests.servers import serve_in_thread

#: A solution of one generate step on the configured provider ``slow``.
SLOW_SPEC = "name: slowgen\nsteps:\n  - id: answer\n    kind: generate\n    provider: slow\n"


@pytest.fixture(scope="module")
def classifier() -> Any:
    return ticket_classifier()


@pytest.fixture
def stoa(app, classifier):
    """The server's own client, with a model endpoint ``tk`` (two variants over the
    ticket classifier) and a solution endpoint ``sup`` with a shadow."""
    client = app.state.client
    client.models.log("tickets", classifier)
    client.models.set_alias("tickets", 1, "champion")
    client.solutions.register(SUPPORT_SPEC)
    client.endpoints.create("tk", ["a=model:tickets@champion:50", "b=model:tickets@1:50"])
    client.endpoints.create("sup", ["a=support@1:100", "s=support@1:shadow"])
    return client


def flush(client: Any) -> None:
    client.stores.serving.logbook.flush()


def error(response: Any, status: int, *fragments: str, field: str | None = "") -> dict:
    """Assert the status and the error body; every fragment is in the message."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()["error"]
    assert set(body) == {"code", "message", "field", "fix"}, body
    for fragment in fragments:
        assert fragment in body["message"], (fragment, body)
    if field != "":
        assert body["field"] == field, body
    assert "Traceback" not in response.text
    return body


# -- predict ------------------------------------------------------------------------------


def test_predict_answers_with_the_id_in_body_and_header_and_logs_it(api, stoa):
    r = api.post("/v1/endpoints/tk/predict", json={"input": "reset my password", "unit_id": "u1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"prediction_id", "endpoint", "variant", "status", "output",
                         "latency_ms", "tokens", "cost_usd"}  # fmt: skip
    assert r.headers["X-Stoa-Prediction-Id"] == body["prediction_id"]
    assert r.headers["X-Stoa-Variant"] == body["variant"] in ("a", "b")
    assert body["output"] == {"prediction": "account"} and body["status"] == "ok"
    assert body["endpoint"] == "tk" and body["latency_ms"] > 0
    flush(stoa)
    row = stoa.predictions.show(body["prediction_id"])
    assert (row["endpoint"], row["variant"], row["mode"], row["unit_id"]) == (
        "tk",
        body["variant"],
        "live",
        "u1",
    )
    assert row["input"] == "reset my password" and row["output"] == body["output"]
    assert row["target"] == "model:tickets@1" and row["config_version"] == 1


def test_a_unit_keeps_its_variant_and_the_header_names_the_unit(api, stoa):
    seen: dict[str, set[str]] = {}
    for unit in [f"user-{i}" for i in range(20)]:
        for how in ("body", "header"):
            if how == "body":
                r = api.post("/v1/endpoints/tk/predict", json={"input": "hi", "unit_id": unit})
            else:
                r = api.post(
                    "/v1/endpoints/tk/predict",
                    json={"input": "hi"},
                    headers={"X-Stoa-Unit-Id": unit},
                )
            assert r.status_code == 200, r.text
            seen.setdefault(unit, set()).add(r.json()["variant"])
    assert all(len(v) == 1 for v in seen.values()), seen
    assert set().union(*seen.values()) == {"a", "b"}  # 20 units do not all land on one side


def test_a_shadow_is_logged_with_its_parent_and_never_returned(api, stoa):
    ids = []
    for _ in range(5):
        r = api.post("/v1/endpoints/sup/predict", json={"input": {"text": "charged twice"}})
        assert r.status_code == 200 and r.json()["variant"] == "a", r.text
        ids.append(r.json()["prediction_id"])
    deadline = time.monotonic() + 10
    while True:
        flush(stoa)
        shows = [stoa.predictions.show(i) for i in ids]
        if all(s["shadows"] for s in shows) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for live in shows:
        assert live["mode"] == "live" and len(live["shadows"]) == 1, live
        shadow = stoa.predictions.show(live["shadows"][0])
        assert (shadow["mode"], shadow["variant"], shadow["parent_id"]) == (
            "shadow",
            "s",
            live["id"],
        )
        assert shadow["input"] == live["input"] and shadow["output"] == live["output"]


def test_forcing_a_variant_picks_it(api, stoa):
    for name in ("a", "b", "a"):
        r = api.post("/v1/endpoints/tk/predict", json={"input": "x", "variant": name})
        assert r.status_code == 200 and r.json()["variant"] == name, r.text


def test_forcing_a_variant_needs_the_write_scope(api, stoa):
    read = stoa.tokens.create("ro", ["read"]).token
    write = stoa.tokens.create("rw", ["write"]).token
    url = "/v1/endpoints/tk/predict"
    as_reader = {"Authorization": f"Bearer {read}"}
    as_writer = {"Authorization": f"Bearer {write}"}

    # With tokens configured, nobody gets in without one.
    error(api.post(url, json={"input": "x"}), 401, "token is required", field="Authorization")
    # A read token predicts, but may not bypass the split.
    assert api.post(url, json={"input": "x"}, headers=as_reader).status_code == 200
    error(
        api.post(url, json={"input": "x", "variant": "b"}, headers=as_reader),
        403,
        "lacks the 'write' scope",
    )
    forced = api.post(url, json={"input": "x", "variant": "b"}, headers=as_writer)
    assert forced.status_code == 200 and forced.json()["variant"] == "b", forced.text
    # The same rule on the OpenAI route, where the variant travels in a header.
    chat = {"model": "sup", "messages": [{"role": "user", "content": "charged twice"}]}
    error(
        api.post("/v1/chat/completions", json=chat, headers={**as_reader, "X-Stoa-Variant": "a"}),
        403,
        "lacks the 'write' scope",
    )
    r = api.post("/v1/chat/completions", json=chat, headers={**as_writer, "X-Stoa-Variant": "a"})
    assert r.status_code == 200, r.text


PREDICT_BAD = [
    ({"unit_id": "u"}, 422, "required", "input"),
    ({"input": 3}, 422, "not int", "input"),
    ({"input": [1, 2]}, 422, "not list", "input"),
    ({"input": None}, 422, "not null", "input"),
    ({"input": {}}, 422, "the object is empty", "input"),
    ({"input": "x", "unit_id": "u" * 257}, 422, "at most 256 characters", "unit_id"),
    ({"input": "x", "unit_id": ""}, 422, "at least 1 character", "unit_id"),
    ({"input": "x", "unit_id": 7}, 422, "string", "unit_id"),
    ({"input": "x", "variant": "zz"}, 422, "has no variant 'zz'", "variant"),
    ({"input": "x", "colour": "red"}, 422, "Extra inputs are not permitted", "colour"),
    ([{"input": "x"}], 422, "valid dictionary", None),
]


def test_predict_refuses_bad_bodies(api, stoa):
    for body, status, fragment, field in PREDICT_BAD:
        r = api.post("/v1/endpoints/tk/predict", json=body)
        error(r, status, fragment, field=field)
        assert "X-Stoa-Prediction-Id" not in r.headers


def test_predict_refuses_what_is_not_json_and_unknown_or_archived_endpoints(api, stoa):
    url = "/v1/endpoints/tk/predict"
    error(api.post(url, content=b"{nope", headers={"content-type": "application/json"}),
          422, "not valid JSON", field="body")  # fmt: skip
    error(api.post(url, content=b"input=x", headers={"content-type": "text/plain"}), 422)
    error(api.post("/v1/endpoints/nope/predict", json={"input": "x"}), 404,
          "endpoint 'nope' does not exist", field="endpoint")  # fmt: skip
    stoa.endpoints.archive("tk")
    error(api.post(url, json={"input": "x"}), 404, "endpoint 'tk' is archived", field="endpoint")
    error(api.get(url), 405, "GET is not allowed", field="method")


def test_a_body_over_the_limit_is_refused_with_413(settings, classifier):
    from fastapi.testclient import TestClient

    from stoa.serve.server import create_app

    small = settings.model_copy(update={"max_json_mb": 1})
    app = create_app(small)
    try:
        client = app.state.client
        client.models.log("tickets", classifier)
        client.endpoints.create("tk", ["a=model:tickets@1:1"])
        big = json.dumps({"input": "x" * (1024 * 1024 + 10)})
        with TestClient(app, base_url="http://127.0.0.1") as api:
            for url in ("/v1/endpoints/tk/predict", "/v1/feedback", "/v1/chat/completions",
                        "/v1/endpoints/tk/invocations"):  # fmt: skip
                r = api.post(url, content=big, headers={"content-type": "application/json"})
                error(r, 413, "over the server's limit of 1 MiB", field="body")
            ok = api.post("/v1/endpoints/tk/predict", json={"input": "x" * 1000})
            assert ok.status_code == 200, ok.text
    finally:
        client.close()


def test_rate_limits_answer_429_with_retry_after(settings, classifier):
    from fastapi.testclient import TestClient

    from stoa.serve.server import create_app

    limited = settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 2})
    app = create_app(limited)
    try:
        client = app.state.client
        client.models.log("tickets", classifier)
        client.endpoints.create("tk", ["a=model:tickets@1:1"])
        with TestClient(app, base_url="http://127.0.0.1") as api:
            codes = [api.post("/v1/endpoints/tk/predict", json={"input": "x"}) for _ in range(3)]
            assert [r.status_code for r in codes[:2]] == [200, 200]
            body = error(codes[2], 429, "over its limit of 0.5 requests/s")
            assert body["fix"].startswith("retry after")
            assert int(codes[2].headers["Retry-After"]) >= 1
    finally:
        client.close()


# -- timeouts -----------------------------------------------------------------------------


@pytest.fixture
def slow_llm() -> Iterator[str]:
    """An OpenAI-compatible server that takes 1.5 s to answer."""
    app = scripted_openai_app([Step(reply="slow answer", delay_s=1.5)])
    with serve_in_thread(app) as url:
        yield f"{url}/v1"


def test_a_slow_variant_times_out_with_504_and_is_logged_as_timeout(settings, slow_llm):
    from fastapi.testclient import TestClient

    from stoa.serve.server import create_app

    providers = {"slow": {"kind": "openai", "url": slow_llm, "model": "tiny", "max_retries": 0}}
    app = create_app(settings.model_copy(update={"providers": providers}))
    try:
        client = app.state.client
        client.solutions.register(SLOW_SPEC)
        client.endpoints.create("slow", ["a=slowgen@1:1"], options={"timeout_s": 0.2})
        with TestClient(app, base_url="http://127.0.0.1") as api:
            r = api.post("/v1/endpoints/slow/predict", json={"input": "hello"})
            body = error(r, 504, "did not answer within its timeout of 0.2 s", field="timeout_s")
            chat = {"model": "slow", "messages": [{"role": "user", "content": "hello"}]}
            error(api.post("/v1/chat/completions", json=chat), 504, "timeout of 0.2 s")
        prediction_id = body["fix"].split()[1]
        client.stores.serving.close()  # waits for the late runs, and writes them
        row = client.predictions.show(prediction_id)
        assert row["status"] == "timeout" and row["endpoint"] == "slow"
        assert "0.2 s timeout" in row["error"]["message"]
        assert row["output"]["text"] == "slow answer" and row["latency_ms"] >= 1000
    finally:
        client.close()


# -- OpenAI -------------------------------------------------------------------------------


def sse(text: str) -> list[Any]:
    events = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data:")]
    assert events[-1] == "[DONE]", events
    return [json.loads(e) for e in events[:-1]]


def test_chat_completions_answers_and_streams(api, stoa):
    messages = [{"role": "system", "content": "be kind"},
                {"role": "user", "content": "I was charged twice"}]  # fmt: skip
    r = api.post("/v1/chat/completions", json={"model": "sup", "messages": messages, "user": "u9"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "sup"
    answer = {"role": "assistant", "content": "Routing your billing question."}
    assert body["choices"][0]["message"] == answer
    assert body["id"] == r.headers["X-Stoa-Prediction-Id"]
    flush(stoa)
    row = stoa.predictions.show(body["id"])
    assert row["unit_id"] == "u9" and row["input"]["text"] == "I was charged twice"

    streamed = api.post(
        "/v1/chat/completions",
        json={"model": "sup", "messages": messages, "stream": True,
              "stream_options": {"include_usage": True}},
    )  # fmt: skip
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].startswith("text/event-stream")
    chunks = sse(streamed.text)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Routing your billing question."
    assert {c["id"] for c in chunks} == {streamed.headers["X-Stoa-Prediction-Id"]}
    assert chunks[-1]["choices"] == [] and "total_tokens" in chunks[-1]["usage"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"

    plain = api.post("/v1/chat/completions",
                     json={"model": "sup", "messages": messages, "stream": True})  # fmt: skip
    assert all("usage" not in c for c in sse(plain.text))

    rejected = api.post(
        "/v1/chat/completions",
        json={
            "model": "sup",
            "messages": [{"role": "user", "content": "please send your password"}],
        },
    )
    assert rejected.json()["choices"][0]["finish_reason"] == "content_filter"


CHAT_BAD = (
    [
        ({"model": "sup"}, 422, "Field required", "messages"),
        ({"model": "sup", "messages": []}, 422, "at least 1 item", "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, 422, "Field required", "model"),
        ({"model": "sup", "messages": [{"role": "user", "content": "x"}], "n": 2}, 422,
         "n=2 is not supported", "n"),
        ({"model": "sup", "messages": [{"role": "system", "content": "x"}]}, 422,
         "no user message", "messages"),
        ({"model": "sup", "messages": [{"role": "robot", "content": "x"}]}, 422,
         "Input should be", "messages.0.role"),
        ({"model": "sup", "messages": "hi"}, 422, "valid list", "messages"),
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404,
         "endpoint 'nope' does not exist", "endpoint"),
        (["x"], 422, "", "body"),
    ]
)  # fmt: skip


def test_chat_completions_refuses_bad_bodies(api, stoa):
    for body, status, fragment, field in CHAT_BAD:
        error(api.post("/v1/chat/completions", json=body), status, fragment, field=field)


def test_chat_completions_refuses_a_body_that_is_not_json(api, stoa):
    r = api.post("/v1/chat/completions", content=b"model=sup",
                 headers={"content-type": "application/json"})  # fmt: skip
    error(r, 422, "not valid JSON", field="body")


def test_models_lists_the_endpoints_being_served(api, stoa):
    r = api.get("/v1/models")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["sup", "tk"]
    assert all(m["object"] == "model" for m in r.json()["data"])
    stoa.endpoints.archive("tk")
    assert [m["id"] for m in api.get("/v1/models").json()["data"]] == ["sup"]


# -- MLflow -------------------------------------------------------------------------------

TEXTS = ["reset my password", "charged twice", "app crashes on start"]
LABELS = ["account", "billing", "bug"]


FORMATS = [
    {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}},
    {"dataframe_records": [{"text": t} for t in TEXTS]},
    {"instances": TEXTS},
    {"instances": [{"text": t} for t in TEXTS]},
    {"inputs": TEXTS},
    {"inputs": {"text": TEXTS}},
]


def test_invocations_takes_every_mlflow_format(api, stoa):
    for body in FORMATS:
        r = api.post("/v1/endpoints/tk/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": LABELS}, body
        flush(stoa)
        row = stoa.predictions.show(r.headers["X-Stoa-Prediction-Id"])
        assert row["output"] == LABELS and row["endpoint"] == "tk"


def test_invocations_takes_csv(api, stoa):
    csv = "text\n" + "\n".join(TEXTS) + "\n"
    r = api.post("/v1/endpoints/tk/invocations", content=csv.encode(),
                 headers={"content-type": "text/csv; charset=utf-8"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": LABELS}


MLFLOW_BAD = (
    [
        ({"inputs": TEXTS, "instances": TEXTS}, "application/json",
         "exactly one of dataframe_split, dataframe_records, instances, inputs (it has "
         "instances, inputs)", "body"),
        ({}, "application/json", "(it has none)", "body"),
        ({"inputs": TEXTS, "params": {"k": 1}}, "application/json", "params are not supported",
         "params"),
        ({"inputs": []}, "application/json", "inputs holds no rows", "inputs"),
        ({"dataframe_records": []}, "application/json", "holds no rows", "dataframe_records"),
        ({"dataframe_split": {"columns": ["text"], "data": []}}, "application/json",
         "holds no rows", "dataframe_split"),
        ({"dataframe_split": {"columns": ["text"]}}, "application/json", "needs data",
         "dataframe_split"),
        ({"dataframe_records": "text"}, "application/json", "must be a list of objects",
         "dataframe_records"),
        ({"inputs": TEXTS, "extra": 1}, "application/json", "unknown field(s) extra", "body"),
        ([1, 2], "application/json", "the body is a JSON list, not an object", "body"),
        (b"{nope", "application/json", "not valid JSON", "body"),
        ({"inputs": TEXTS}, "application/xml", "content type 'application/xml' is not supported",
         "Content-Type"),
        (b"", "text/csv", "CSV body is not readable", "body"),
    ]
)  # fmt: skip


def test_invocations_refuses_bad_bodies(api, stoa):
    for body, content_type, fragment, field in MLFLOW_BAD:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = api.post("/v1/endpoints/tk/invocations", content=content,
                     headers={"content-type": content_type})  # fmt: skip
        error(r, 422, fragment, field=field)


def test_invocations_without_a_default_endpoint_or_on_unknown_ones_is_404(api, stoa):
    error(api.post("/invocations", json={"inputs": TEXTS}), 404, "no default endpoint",
          field="url")  # fmt: skip
    error(api.post("/v1/endpoints/nope/invocations", json={"inputs": TEXTS}), 404,
          "endpoint 'nope' does not exist")  # fmt: skip


def test_invocations_answers_on_the_default_endpoint(settings, classifier):
    from fastapi.testclient import TestClient

    from stoa.serve.server import create_app

    app = create_app(settings, default_endpoint="tickets")
    try:
        client = app.state.client
        client.models.log("tickets", classifier)
        client.endpoints.create("tickets", ["main=model:tickets@1:100"])
        with TestClient(app, base_url="http://127.0.0.1") as api:
            r = api.post("/invocations", json={"inputs": TEXTS})
            assert r.status_code == 200 and r.json() == {"predictions": LABELS}, r.text
    finally:
        client.close()


# -- feedback -----------------------------------------------------------------------------


@pytest.fixture
def pid(api, stoa) -> str:
    r = api.post("/v1/endpoints/tk/predict", json={"input": "reset my password"})
    flush(stoa)  # so that show() finds it; feedback itself does not need this
    return r.json()["prediction_id"]


GOOD_EVENTS = [
    ("click", None, True),
    ("click", False, False),
    ("thumb", "up", 1),
    ("thumb", "DOWN", -1),
    ("thumb", True, 1),
    ("thumb", -1, -1),
    ("rating", 4.5, 4.5),
    ("rating", -2, -2),
    ("conversion", True, True),
    ("conversion", 19.99, 19.99),
    ("conversion", 0, 0),
    ("label", "billing", "billing"),
    ("label", ["a", "b"], ["a", "b"]),
    ("label", 3, 3),
    ("csat", 5, 5),
    ("resolved.first-time", "yes", "yes"),
    ("my_kind", None, None),
]


def test_every_kind_takes_its_values(api, stoa, pid):
    for kind, value, stored in GOOD_EVENTS:
        event = {"prediction_id": pid, "kind": kind, "value": value, "source": "judge"}
        r = api.post("/v1/feedback", json=event)
        assert r.status_code == 201, r.text
        assert r.json()["accepted"] == 1 and r.json()["duplicates"] == 0
        got = stoa.predictions.show(pid)["feedback"][-1]  # durable on 201: no flush needed
        assert (got["kind"], got["value"], got["source"]) == (kind, stored, "judge")
    assert len(stoa.predictions.show(pid)["feedback"]) == len(GOOD_EVENTS)


BAD_EVENTS = (
    [
        ({"kind": "click", "value": 1}, "a click takes true or false", "value"),
        ({"kind": "click", "value": "yes"}, "a click takes true or false", "value"),
        ({"kind": "thumb", "value": 0}, "a thumb takes", "value"),
        ({"kind": "thumb", "value": "sideways"}, "a thumb takes", "value"),
        ({"kind": "thumb", "value": None}, "a thumb takes", "value"),
        ({"kind": "rating", "value": "5"}, "a rating takes a finite number", "value"),
        ({"kind": "rating", "value": True}, "a rating takes a finite number", "value"),
        ({"kind": "rating", "value": None}, "a rating takes a finite number", "value"),
        ({"kind": "conversion", "value": -1}, "a conversion takes", "value"),
        ({"kind": "conversion", "value": "sold"}, "a conversion takes", "value"),
        ({"kind": "label", "value": None}, "a label takes", "value"),
        ({"kind": "label", "value": {"a": 1}}, "a label takes", "value"),
        ({"kind": "label", "value": [1, 2]}, "a label takes", "value"),
        ({"kind": "label", "value": "x" * 5000}, "a label takes", "value"),
        ({"kind": "csat", "value": [1]}, "a custom kind takes", "value"),
        ({"kind": "csat", "value": {"a": 1}}, "a custom kind takes", "value"),
        ({"kind": "Thumb"}, "a kind is click, thumb", "kind"),
        ({"kind": ""}, "a kind is click, thumb", "kind"),
        ({"kind": "x" * 65}, "a kind is click, thumb", "kind"),
        ({"kind": 3}, "valid string", "kind"),
        ({"kind": "thumb", "value": 1, "source": "robot"}, "Input should be", "source"),
        ({"kind": "thumb", "value": 1, "ts": "yesterday"}, "datetime", "ts"),
        ({"kind": "thumb", "value": 1, "colour": "red"}, "'colour' is not a field", "colour"),
        ({"kind": "thumb", "value": 1, "idempotency_key": ""}, "at least 1 character",
         "idempotency_key"),
        ({"kind": "thumb", "value": 1, "prediction_id": ""}, "at least 1 character",
         "prediction_id"),
        ({"kind": "thumb", "value": 1, "prediction_id": 5}, "valid string", "prediction_id"),
    ]
)  # fmt: skip


def test_a_value_of_the_wrong_type_is_422_and_nothing_is_stored(api, stoa, pid):
    for patch, fragment, field in BAD_EVENTS:
        event = {"prediction_id": pid, **patch}
        body = error(api.post("/v1/feedback", json=event), 422, fragment, field=field)
        assert body["fix"]
    assert stoa.predictions.show(pid)["feedback"] == []


def test_feedback_on_an_unknown_prediction_is_404(api, stoa, pid):
    body = error(api.post("/v1/feedback", json={"prediction_id": "no-such-id", "kind": "click"}),
                 404, "no prediction 'no-such-id' was logged", field="prediction_id")  # fmt: skip
    assert "nothing in this batch was stored" in body["fix"]
    # A well-formed id that is old (made long ago) and never logged: 404 too.
    old = "01800000-0000-7000-8000-000000000000"
    error(api.post("/v1/feedback", json={"prediction_id": old, "kind": "click"}), 404,
          f"no prediction {old!r}")  # fmt: skip


def test_a_repeated_idempotency_key_is_accepted_once(api, stoa, pid):
    event = {"prediction_id": pid, "kind": "rating", "value": 5, "idempotency_key": "k-1"}
    first = api.post("/v1/feedback", json=event)
    assert first.status_code == 201 and first.json()["accepted"] == 1, first.text
    again = api.post("/v1/feedback", json={**event, "value": 1})
    assert again.status_code == 201, again.text
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 1
    assert again.json()["events"][0]["status"] == "duplicate"
    assert again.json()["events"][0]["id"] == first.json()["events"][0]["id"]
    # The same key twice in one batch is written once as well.
    batch = [{**event, "idempotency_key": "k-2"}, {**event, "idempotency_key": "k-2"}]
    both = api.post("/v1/feedback", json=batch).json()
    assert (both["accepted"], both["duplicates"]) == (1, 1)
    stored = stoa.predictions.show(pid)["feedback"]
    assert sorted((e["idempotency_key"], e["value"]) for e in stored) == [("k-1", 5), ("k-2", 5)]


def test_a_batch_is_all_or_nothing(api, stoa, pid):
    good = {"prediction_id": pid, "kind": "click"}
    r = api.post("/v1/feedback", json=[good, {**good, "kind": "thumb", "value": 7}])
    error(r, 422, "a thumb takes", field="events[1].value")
    r = api.post("/v1/feedback", json={"events": [good, {**good, "prediction_id": "nope"}]})
    error(r, 404, "no prediction 'nope'", field="events[1].prediction_id")
    r = api.post("/v1/feedback", json=[good, "click"])
    error(r, 422, "each event is a JSON object", field="events[1]")
    assert stoa.predictions.show(pid)["feedback"] == []
    ok = api.post("/v1/feedback", json={"events": [good, {**good, "kind": "thumb", "value": 1}]})
    assert ok.status_code == 201 and ok.json()["accepted"] == 2, ok.text
    assert len(stoa.predictions.show(pid)["feedback"]) == 2


NOT_EVENTS = [
    (b"[]", "the batch holds no events", "events"),
    (b"3", "one event object, a list of events", "events"),
    (b'"click"', "one event object, a list of events", "events"),
    (b'{"events": 3}', "one event object, a list of events", "events"),
    (b"{nope", "not valid JSON", "body"),
]


def test_feedback_refuses_bodies_that_are_not_events(api, stoa):
    for content, fragment, field in NOT_EVENTS:
        headers = {"content-type": "application/json"}
        error(
            api.post("/v1/feedback", content=content, headers=headers), 422, fragment, field=field
        )


def test_a_batch_is_at_most_1000_events(api, stoa, pid):
    events = [{"prediction_id": pid, "kind": "click"}] * 1001
    error(api.post("/v1/feedback", json=events), 422, "at most 1000 events, not 1001",
          field="events")  # fmt: skip


def test_feedback_on_a_prediction_not_yet_written_is_accepted(api, stoa):
    """The logbook may still hold the prediction: feedback must not 404 on it."""
    stoa.stores.serving.logbook.flush_s = 60  # nothing is written for a minute
    r = api.post("/v1/endpoints/tk/predict", json={"input": "x"})
    pid = r.json()["prediction_id"]
    fb = api.post("/v1/feedback", json={"prediction_id": pid, "kind": "click"})
    assert fb.status_code == 201, fb.text
    flush(stoa)
    assert [e["kind"] for e in stoa.predictions.show(pid)["feedback"]] == ["click"]


# -- operations ---------------------------------------------------------------------------


def test_metrics_and_readiness(api, stoa):
    api.post("/v1/endpoints/tk/predict", json={"input": "x", "variant": "a"})
    text = api.get("/metrics").text
    counted = re.findall(r"^stoa_requests_total\{(.*)\} (\S+)$", text, re.M)
    labels = [dict(re.findall(r'(\w+)="([^"]*)"', names)) for names, _ in counted]
    assert {"endpoint": "tk", "variant": "a", "status": "ok"} in labels, text
    assert "stoa_request_latency_seconds_bucket" in text
    assert "stoa_logbook_queue_depth" in text
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "problems": []}
