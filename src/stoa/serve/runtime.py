"""The data plane: choose a variant, run it, log the prediction, mirror the shadows.

One ``DataPlane`` per server process. It reads each endpoint's config at most every
``CONFIG_TTL_S`` seconds (one indexed query for the config number), so a traffic change
reaches every worker within that time. Predictions run on the plane's own thread pool,
which is what lets a request time out (``options.timeout_s``) without waiting for the
work. Every request that reached a variant is logged, whatever its outcome: ok, a
rule's rejection, a failed step, or a timeout. A shadow runs after its live request
has been answered, on a separate small pool with a bounded queue per endpoint: when the
queue is full the shadow run is skipped and counted, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stoa.core.errors import (
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    StoaError,
    TimedOutError,
)
from stoa.develop.solution import trace as tracing
from stoa.develop.solution.runner import Environment, run_solution
from stoa.govern.scoring import frame_predictor
from stoa.serve import metrics
from stoa.serve.batching import Batcher, BatchingModel
from stoa.serve.endpoints import EndpointStore, split_target
from stoa.serve.ids import new_id
from stoa.serve.logbook import Logbook
from stoa.serve.traffic import Assigner, Variant

log = logging.getLogger("stoa.serve")

CONFIG_TTL_S = 1.0
#: Threads running live predictions; more than FastAPI's 40 so a burst of slow
#: generations cannot starve quick model calls of a thread.
PREDICT_THREADS = 64
SHADOW_THREADS = 2


@dataclass
class Served:
    """One config of one endpoint, ready to serve."""

    name: str
    version: int
    assigner: Assigner
    variants: dict[str, Variant]
    options: dict[str, Any]
    checked_at: float
    shadow_slots: threading.BoundedSemaphore


@dataclass
class Outcome:
    """What one request got, and the row the logbook keeps of it."""

    prediction_id: str
    endpoint: str
    variant: str
    status: str
    output: Any
    latency_ms: float
    tokens: int = 0
    cost_usd: float = 0.0
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = {
            "prediction_id": self.prediction_id,
            "endpoint": self.endpoint,
            "variant": self.variant,
            "status": self.status,
            "output": self.output,
            "latency_ms": round(self.latency_ms, 3),
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


class PredictionFailed(StoaError):
    """The variant ran and failed (a step error): the server's side, logged with its id."""

    code = "prediction_failed"
    http_status = 502
    exit_code = 1

    def __init__(self, outcome: Outcome):
        message = (outcome.error or {}).get("message", "the prediction failed")
        super().__init__(
            f"variant {outcome.variant} of {outcome.endpoint} failed: {message}",
            field=(outcome.error or {}).get("step"),
            fix=f"see `stoa predictions show {outcome.prediction_id}` for its trace",
        )
        self.outcome = outcome
        self.prediction_id = outcome.prediction_id


class PredictionTimedOut(TimedOutError):
    """The request's timeout passed; the run goes on and is logged as ``timeout``."""

    def __init__(self, message: str, *, prediction_id: str, fix: str):
        super().__init__(message, field="timeout_s", fix=fix)
        self.prediction_id = prediction_id


class ServingEnvironment(Environment):
    """The runner's environment with adaptive batching around every model a classify
    step calls: concurrent requests share one ``predict_proba`` call."""

    def __init__(self, *args: Any, max_batch_size: int, max_wait_ms: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self._wrapped: dict[str, Any] = {}
        self._wrap_lock = threading.Lock()

    def model(self, ref: str) -> tuple[Any, str]:
        model, version = super().model(ref)
        if self.max_batch_size <= 1:
            return model, version
        with self._wrap_lock:
            wrapped = self._wrapped.get(version)
            if wrapped is None or wrapped.model is not model:
                wrapped = BatchingModel(
                    model, max_batch_size=self.max_batch_size, max_wait_ms=self.max_wait_ms
                )
                self._wrapped[version] = wrapped
        return wrapped, version


class DataPlane:
    """Serves every endpoint of one set of stores, in one process."""

    def __init__(self, local: Any, logbook: Logbook):
        self.local = local
        self.endpoints = EndpointStore(local.db, local.registry)
        self.logbook = logbook
        self.pool = ThreadPoolExecutor(PREDICT_THREADS, thread_name_prefix="stoa-predict")
        self.shadow_pool = ThreadPoolExecutor(SHADOW_THREADS, thread_name_prefix="stoa-shadow")
        self._served: dict[str, Served] = {}
        self._envs: dict[tuple[int, float], ServingEnvironment] = {}
        self._batchers: dict[tuple[str, int, float], Any] = {}
        self._lock = threading.Lock()
        self._rng = random.Random()
        self.closed = False

    # -- configuration ----------------------------------------------------------------

    def served(self, name: str) -> Served:
        """The endpoint's current config, re-checked every ``CONFIG_TTL_S`` seconds."""
        now = time.monotonic()
        hit = self._served.get(name)
        if hit is not None and now - hit.checked_at < CONFIG_TTL_S:
            return hit
        current = self.endpoints.current_version(name)
        if current is None or current[1]:
            self._served.pop(name, None)
            state = "is archived" if current else "does not exist"
            raise NotFoundError(
                f"endpoint {name!r} {state}",
                field="endpoint",
                fix="see `stoa endpoints list` for the endpoints being served",
            )
        if hit is not None and hit.version == current[0]:
            hit.checked_at = now
            return hit
        salt, version, variants, options = self.endpoints.serving(name)
        served = Served(
            name=name,
            version=version,
            assigner=Assigner(salt, variants),
            variants={v.name: v for v in variants},
            options=options,
            checked_at=now,
            shadow_slots=threading.BoundedSemaphore(max(1, int(options["shadow_queue"]))),
        )
        self._served[name] = served
        return served

    def choose(self, served: Served, unit_id: str | None, forced: str | None) -> Variant:
        if forced is not None:
            variant = served.variants.get(forced)
            if variant is None:
                raise InvalidInputError(
                    f"endpoint {served.name} has no variant {forced!r}",
                    field="variant",
                    fix=f"use one of {', '.join(served.variants)}",
                )
            return variant
        return served.assigner.assign(unit_id, self._rng)

    # -- predicting -------------------------------------------------------------------

    def predict(
        self,
        name: str,
        value: Any,
        *,
        unit_id: str | None = None,
        variant: str | None = None,
        deadline: _Deadline | None = None,
    ) -> Outcome:
        """Run one request on its variant, log it, and mirror it to the shadows."""
        if unit_id is not None and (not isinstance(unit_id, str) or not 0 < len(unit_id) <= 256):
            raise InvalidInputError(
                "unit_id must be a string of 1 to 256 characters",
                field="unit_id",
                fix="send the user, session or account id as a string",
            )
        served = self.served(name)
        chosen = self.choose(served, unit_id, variant)
        prediction_id = deadline.prediction_id if deadline else new_id()
        outcome, row = self._run(served, chosen, value, prediction_id, unit_id, "live", None)
        if deadline is not None and not deadline.finish():
            outcome.status = row["status"] = "timeout"
            row["error"] = {"message": f"answered after the {deadline.timeout_s:g} s timeout"}
        self._log(served, chosen, outcome, row)
        if row["status"] != "timeout":
            self._mirror(served, value, prediction_id, unit_id)
        return outcome

    async def apredict(
        self,
        name: str,
        value: Any,
        *,
        unit_id: str | None = None,
        variant: str | None = None,
    ) -> Outcome:
        """``predict`` on the plane's pool, answering 504 at the endpoint's timeout; the
        late run still finishes and is logged with status ``timeout``."""
        timeout_s = self.served(name).options["timeout_s"]
        deadline = _Deadline(new_id(), timeout_s)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.pool,
            lambda: self.predict(name, value, unit_id=unit_id, variant=variant, deadline=deadline),
        )
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            if deadline.expire():
                raise PredictionTimedOut(
                    f"{name} did not answer within its timeout of {timeout_s:g} s",
                    prediction_id=deadline.prediction_id,
                    fix=f"prediction {deadline.prediction_id} is logged when it ends; raise "
                    f"the endpoint's timeout_s with `stoa endpoints set-traffic {name} "
                    "--option timeout_s=…`",
                ) from None
            return await future  # it finished right at the deadline

    def _run(
        self,
        served: Served,
        variant: Variant,
        value: Any,
        prediction_id: str,
        unit_id: str | None,
        mode: str,
        parent_id: str | None,
    ) -> tuple[Outcome, dict[str, Any]]:
        ts = datetime.now(UTC)
        started = time.perf_counter()
        kind, ref = split_target(variant.target)
        if kind == "model":
            status, output, error, tokens, cost, trace = self._run_model(served, ref, value)
        else:
            env = self._environment(served.options)
            result = run_solution(env, ref, value, overrides=variant.overrides or None)
            status, output, error = result.status, result.output, result.error
            tokens, cost, trace = result.tokens, result.cost_usd, result.trace.to_dict()
        latency_ms = (time.perf_counter() - started) * 1000
        outcome = Outcome(
            prediction_id,
            served.name,
            variant.name,
            status,
            output,
            latency_ms,
            tokens,
            cost,
            error,
            extra={"trace": trace},
        )
        options = served.options
        row = {
            "id": prediction_id,
            "endpoint": served.name,
            "config_version": served.version,
            "variant": variant.name,
            "mode": mode,
            "parent_id": parent_id,
            "target": variant.target,
            "unit_id": unit_id,
            "ts": ts,
            "input": value if options["log_inputs"] else None,
            "output": output,
            "status": status,
            "error": error,
            "latency_ms": latency_ms,
            "tokens": tokens,
            "cost_usd": cost,
            "trace": trace if options["log_traces"] else None,
        }
        return outcome, row

    def _run_model(self, served: Served, ref: str, value: Any) -> tuple[Any, ...]:
        """A model variant as a one-step solution: one row in, its prediction out."""
        trace = tracing.Trace()
        span = trace.start(f"model {ref}", None, **{"stoa.step.kind": "model"})
        call = self._model_call(ref, served.options)
        try:
            prediction = call(rows_frame([model_row(value)]))[0]
        except InvalidInputError:
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, StoaError) else f"{type(exc).__name__}: {exc}"
            trace.end(span, error=message)
            return "error", {}, {"step": "model", "message": message}, 0, 0.0, trace.to_dict()
        trace.end(span, **{"stoa.outputs": {"prediction": prediction}})
        return "ok", {"prediction": prediction}, None, 0, 0.0, trace.to_dict()

    def _model_call(self, ref: str, options: Mapping[str, Any]) -> Callable[[Any], list[Any]]:
        """``call(frame)``: the model's predictions for a frame's rows. Concurrent calls
        (single-row predicts and MLflow frames alike) share adaptive batches."""
        env = self._environment(options)
        model, version = Environment.model(env, ref)
        size, wait = int(options["max_batch_size"]), float(options["max_wait_ms"])
        key = (version, size, wait)
        with self._lock:
            entry = self._batchers.get(key)
            if entry is None or entry[0] is not model:
                predict = frame_predictor(model)

                def batch(frames: list[Any]) -> list[list[Any]]:
                    import pandas as pd

                    whole = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
                    values = predict(whole, "the request's rows")
                    metrics.BATCH_SIZE.labels(version).observe(len(values))
                    out, start = [], 0
                    for frame in frames:
                        out.append(values[start : start + len(frame)])
                        start += len(frame)
                    return out

                if size <= 1:
                    call: Callable[[Any], list[Any]] = lambda frame: batch([frame])[0]  # noqa: E731
                else:
                    batcher = Batcher(batch, max_batch_size=size, max_wait_ms=wait, name=version)
                    call = batcher.submit
                entry = (model, call)
                self._batchers[key] = entry
        return entry[1]

    def model_frame(
        self, name: str, frame: Any, *, unit_id: str | None = None, logged_input: Any = None
    ) -> Outcome:
        """MLflow's scoring protocol: a whole frame through one variant, logged once."""
        served = self.served(name)
        variant = served.assigner.assign(unit_id, self._rng)
        kind, ref = split_target(variant.target)
        prediction_id = new_id()
        ts = datetime.now(UTC)
        started = time.perf_counter()
        if kind == "model":
            predictions = self._model_call(ref, served.options)(frame)
            status, error, tokens, cost = "ok", None, 0, 0.0
        else:
            env = self._environment(served.options)
            predictions, status, error, tokens, cost = [], "ok", None, 0, 0.0
            for record in frame.to_dict(orient="records"):
                result = run_solution(env, ref, record, overrides=variant.overrides or None)
                predictions.append(result.output)
                tokens, cost = tokens + result.tokens, cost + result.cost_usd
                if result.status == "error":
                    status, error = "error", result.error
                    break
        latency_ms = (time.perf_counter() - started) * 1000
        outcome = Outcome(
            prediction_id, name, variant.name, status, predictions, latency_ms, tokens, cost, error
        )
        if not served.options["log_inputs"]:
            logged_input = {"rows": len(frame), "columns": [str(c) for c in frame.columns]}
        elif logged_input is None:
            logged_input = frame.to_dict(orient="split")
        row = {
            "id": prediction_id, "endpoint": name, "config_version": served.version,
            "variant": variant.name, "mode": "live", "parent_id": None,
            "target": variant.target, "unit_id": unit_id, "ts": ts, "input": logged_input,
            "output": predictions, "status": status, "error": error,
            "latency_ms": latency_ms, "tokens": tokens, "cost_usd": cost, "trace": None,
        }  # fmt: skip
        self._log(served, variant, outcome, row)
        return outcome

    # -- logging and shadows ------------------------------------------------------------

    def _log(self, served: Served, variant: Variant, outcome: Outcome, row: dict) -> None:
        for key in ("input", "output"):
            row[key] = json_safe(row[key])
        try:
            self.logbook.record(row)  # a full logbook raises 503 here: never answered unlogged
        except OverloadedError:
            metrics.LOGBOOK_REFUSED.inc()
            raise
        labels = (served.name, variant.name)
        metrics.REQUESTS.labels(*labels, outcome.status).inc()
        metrics.LATENCY.labels(*labels).observe(outcome.latency_ms / 1000)
        if outcome.tokens:
            metrics.TOKENS.labels(*labels).inc(outcome.tokens)
        if outcome.cost_usd:
            metrics.COST.labels(*labels).inc(outcome.cost_usd)
        if outcome.status == "error":
            log.warning(
                "prediction failed",
                extra={
                    "endpoint": served.name,
                    "variant": variant.name,
                    "prediction_id": outcome.prediction_id,
                    "error": outcome.error,
                },
            )

    def _mirror(self, served: Served, value: Any, parent_id: str, unit_id: str | None) -> None:
        for shadow in served.assigner.shadows(self._rng):
            if not served.shadow_slots.acquire(blocking=False):
                metrics.SHADOWS.labels(served.name, shadow.name, "skipped").inc()
                continue
            self.shadow_pool.submit(self._shadow, served, shadow, value, parent_id, unit_id)

    def _shadow(
        self, served: Served, shadow: Variant, value: Any, parent_id: str, unit_id: str | None
    ) -> None:
        try:
            _, row = self._run(served, shadow, value, new_id(), unit_id, "shadow", parent_id)
            for key in ("input", "output"):
                row[key] = json_safe(row[key])
            self.logbook.record(row)
            metrics.SHADOWS.labels(served.name, shadow.name, row["status"]).inc()
        except Exception:  # a shadow's failure never reaches the live side
            metrics.SHADOWS.labels(served.name, shadow.name, "error").inc()
            log.exception("shadow run failed", extra={"endpoint": served.name})
        finally:
            served.shadow_slots.release()

    # -- warming up ---------------------------------------------------------------------

    def warm(self) -> list[str]:
        """Load what every endpoint's variants need before the first request does: plans,
        models (with their batchers) and embedders, so a cold start is not a user's
        timeout. What fails to load is returned; the request that needs it says why."""
        problems = []
        for info in self.endpoints.list():
            try:
                served = self.served(info.name)
            except StoaError as exc:
                problems.append(f"{info.name}: {exc}")
                continue
            for variant in served.variants.values():
                try:
                    self._warm_variant(served, variant)
                except Exception as exc:
                    problems.append(f"{info.name}/{variant.name}: {type(exc).__name__}: {exc}")
        return problems

    def _warm_variant(self, served: Served, variant: Variant) -> None:
        kind, ref = split_target(variant.target)
        if kind == "model":
            self._model_call(ref, served.options)
            return
        env = self._environment(served.options)
        self._warm_plan(env, ref, variant.overrides or None, depth=0)

    def _warm_plan(self, env: Environment, ref: str, overrides: Any, depth: int) -> None:
        plan, _ = env.plan(ref, overrides)
        for compiled in plan.steps:
            step = compiled.step
            if compiled.kind == "classify":
                env.model(step.model)
            elif compiled.kind == "embed":
                env.embedder(step.embedder).embed(["warm up"])
            elif compiled.kind == "call" and depth < 8:
                self._warm_plan(env, step.solution, None, depth + 1)

    # -- environments -------------------------------------------------------------------

    def _environment(self, options: Mapping[str, Any]) -> ServingEnvironment:
        key = (int(options["max_batch_size"]), float(options["max_wait_ms"]))
        env = self._envs.get(key)
        if env is None:
            local = self.local
            cache = local.solutions.generation_cache
            env = ServingEnvironment(
                local.registry,
                local.kbs,
                local.settings,
                cache,
                max_batch_size=key[0],
                max_wait_ms=key[1],
            )
            self._envs[key] = env
        return env

    def close(self) -> None:
        """Let running predictions and shadows finish, then write what the logbook holds."""
        self.closed = True
        self.pool.shutdown(wait=True)
        self.shadow_pool.shutdown(wait=True)
        for _, call in self._batchers.values():
            batcher = getattr(call, "__self__", None)
            if isinstance(batcher, Batcher):
                batcher.close()
        for env in self._envs.values():
            for wrapped in env._wrapped.values():
                with contextlib.suppress(Exception):
                    wrapped.close()


class _Deadline:
    """Who got there first: the finished run, or the request's timeout."""

    def __init__(self, prediction_id: str, timeout_s: float):
        self.prediction_id = prediction_id
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._state = "running"

    def finish(self) -> bool:
        """True when the run ended in time (its answer is returned)."""
        with self._lock:
            if self._state == "running":
                self._state = "done"
            return self._state == "done"

    def expire(self) -> bool:
        """True when the timeout won (the caller gets 504)."""
        with self._lock:
            if self._state == "running":
                self._state = "expired"
            return self._state == "expired"


def model_row(value: Any) -> Any:
    """One row for a model: a JSON object of features, or a text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and value:
        return dict(value)
    raise InvalidInputError(
        f"a model endpoint takes a JSON object of features or a string, not "
        f"{type(value).__name__ if value is not None else 'null'}"
        + (" (the object is empty)" if isinstance(value, Mapping) else ""),
        field="input",
        fix='send {"input": {"feature": value, …}} or {"input": "some text"}',
    )


def rows_frame(rows: list[Any]) -> Any:
    """A frame of single-request rows: texts become a ``text`` column."""
    import pandas as pd

    if all(isinstance(r, str) for r in rows):
        return pd.DataFrame({"text": rows})
    if any(isinstance(r, str) for r in rows):
        return pd.DataFrame({"text": [r if isinstance(r, str) else r.get("text") for r in rows]})
    return pd.DataFrame.from_records(rows)


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON can hold it: NaN and infinities (which pandas and Python's
    JSON parser produce, and PostgreSQL refuses) become null, NumPy scalars plain ones."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (ValueError, TypeError):
        return _cleaned(value)


def _cleaned(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return _cleaned(value.item())
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
