"""``stoa select``: train every candidate on the same split and recommend one.

Quality, latency, cost and size are measured, never estimated, and each candidate is a
child run of the selection run, with every number logged. The recommendation is the
best candidate (by the primary metric) that meets every constraint; each rejected one
says why. ``register`` stores the winner through the registry gate, aliased
``champion``, linked to its run and the dataset version it was trained on.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stoa.core.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    RefusedError,
    UnreachableError,
)
from stoa.develop.ml import evaluate as ev
from stoa.develop.ml import measure
from stoa.develop.ml.candidates.base import (
    Skipped,
    Task,
    check_params,
    kind_class,
    kind_names,
    known_keys,
    make,
    refuse_unknown,
)
from stoa.develop.ml.data import Dataset, DataSpec, prepare, read_table, split

_CONFIG_KEYS = {"name", "data", "primary_metric", "constraints", "candidates", "pricing",
                "evaluation", "measurement"}  # fmt: skip
_DATA_KEYS = {"path", "dataset", "target", "text", "features", "task", "split"}
_SPLIT_KEYS = {"test_size", "seed", "column"}
_SECTION_KEYS = {"pricing": {"cpu_hour"}, "evaluation": {"bootstrap"},
                 "measurement": {"single", "batch"}}  # fmt: skip
_CANDIDATE_KEYS = {"name", "kind", "params", "search"}
_CONSTRAINT = re.compile(r"^(min|max)_(.+)$")
_DEFAULT_PRICE = 0.05  # USD per CPU-hour: a small cloud vCPU on demand, order of magnitude

#: ``progress(task, done, total)``: a candidate's name and its steps (train, evaluate,
#: latency, throughput, size), or ``"NAME: trials"`` and the trials of its search.
Progress = Callable[[str, int, int], None]
STEPS = ("train", "evaluate", "latency", "throughput", "size")


@dataclass
class CandidateSpec:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] | None = None  # Optuna: {trials, space: {param: range or choices}}
    where: str = ""  # its place in the config, such as candidates.2, for error fields


@dataclass
class SelectionConfig:
    name: str
    data: DataSpec
    primary_metric: str
    constraints: dict[str, float]
    candidates: list[CandidateSpec]
    price_per_cpu_hour: float = _DEFAULT_PRICE
    resamples: int = 500
    single_predictions: int = 200
    batch: int = 256


def parse_config(doc: Any, base: Path | None = None) -> SelectionConfig:
    """Validate a selection config (already parsed YAML/JSON); paths are relative to base.

    Every mapping with a known set of keys refuses the others, naming the dotted path
    (``constraints.max_p95``): a misspelled key would otherwise be silently ignored.
    """
    if not isinstance(doc, dict):
        raise InvalidInputError("the config must be a mapping", field="config")
    refuse_unknown(doc, _CONFIG_KEYS, "")
    spec = _data(doc.get("data"), base)
    candidates = doc.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise InvalidInputError("candidates must be a non-empty list", field="candidates")
    specs = [_candidate(c, i, spec.task) for i, c in enumerate(candidates)]
    names = [c.name for c in specs]
    if len(set(names)) != len(names):
        raise InvalidInputError("candidate names must be unique", field="candidates")
    constraints = _constraints(doc.get("constraints") or {}, spec.task)
    sections = {}
    for name, known in _SECTION_KEYS.items():
        section = doc.get(name) or {}
        if not isinstance(section, dict):
            raise InvalidInputError(f"{name} must be a mapping", field=name)
        refuse_unknown(section, known, name)
        sections[name] = section
    pricing, evaluation, measurement = (sections[n] for n in _SECTION_KEYS)
    config = SelectionConfig(
        name=str(doc.get("name") or "selection"),
        data=spec,
        primary_metric=str(doc.get("primary_metric") or ""),
        constraints=constraints,
        candidates=specs,
        price_per_cpu_hour=float(pricing.get("cpu_hour", _DEFAULT_PRICE)),
        resamples=int(evaluation.get("bootstrap", 500)),
        single_predictions=int(measurement.get("single", 200)),
        batch=int(measurement.get("batch", 256)),
    )
    if config.single_predictions < 200 or config.batch < 1:
        raise InvalidInputError(
            "measurement.single is at least 200 single-row predictions and batch at least 1",
            field="measurement",
            fix="percentiles from fewer than 200 calls are not worth reporting",
        )
    if not config.primary_metric:
        raise InvalidInputError("primary_metric is required", field="primary_metric")
    metrics = _metric_names(spec.task)
    if config.primary_metric not in metrics:
        raise InvalidInputError(
            f"unknown primary_metric {config.primary_metric!r}",
            field="primary_metric",
            fix=known_keys(config.primary_metric, metrics),
        )
    return config


def _data(data: Any, base: Path | None) -> DataSpec:
    if not isinstance(data, dict):
        raise InvalidInputError("data is required: path or dataset, and target", field="data")
    refuse_unknown(data, _DATA_KEYS, "data")
    if bool(data.get("path")) == bool(data.get("dataset")):
        raise InvalidInputError("give exactly one of data.path and data.dataset", field="data")
    if not isinstance(data.get("target"), str):
        raise InvalidInputError("data.target must name the label column", field="data.target")
    split_doc = data.get("split") or {}
    if not isinstance(split_doc, dict):
        raise InvalidInputError("data.split must be a mapping", field="data.split")
    refuse_unknown(split_doc, _SPLIT_KEYS, "data.split")
    path = Path(data["path"]) if data.get("path") else None
    if path is not None and base is not None and not path.is_absolute():
        path = base / path
    features = data.get("features")
    if features is not None and not (
        isinstance(features, list) and all(isinstance(f, str) for f in features)
    ):
        raise InvalidInputError("data.features must be a list of column names", field="data")
    task = data.get("task")
    if task not in (None, "classification", "regression"):
        raise InvalidInputError("data.task is classification or regression", field="data.task")
    return DataSpec(
        target=data["target"], path=path, dataset=data.get("dataset"), text=data.get("text"),
        features=features, task=task, test_size=float(split_doc.get("test_size", 0.2)),
        seed=int(split_doc.get("seed", 0)), split_column=split_doc.get("column"),
    )  # fmt: skip


def _candidate(doc: Any, index: int, task: Task | None) -> CandidateSpec:
    where = f"candidates.{index}"
    if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
        raise InvalidInputError(
            f"candidate {index + 1} needs a kind",
            field=f"{where}.kind",
            fix=f"use one of {', '.join(kind_names())}",
        )
    kind = doc["kind"]
    known = kind_class(kind, field=f"{where}.kind").param_names(task)
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidInputError(
            f"candidate {index + 1}: params must be a mapping", field=f"{where}.params"
        )
    # Keys beside name/kind/params (zero_shot's labels) are params written at the top level.
    extra = {k: v for k, v in doc.items() if k not in _CANDIDATE_KEYS}
    if known is not None:
        refuse_unknown(extra, _CANDIDATE_KEYS | known, where)
    check_params(kind, task, params, where=f"{where}.params")
    name = str(doc.get("name") or kind)
    search = doc.get("search")
    if search is not None:
        from stoa.develop.ml.search import check_search

        search = check_search(search, name, where=f"{where}.search", params=known)
    return CandidateSpec(name, kind, {**extra, **params}, search, where)


def _metric_names(task: Task | None) -> tuple[str, ...]:
    if task is None:
        return ev.CLASSIFICATION + ev.REGRESSION
    return ev.CLASSIFICATION if task == "classification" else ev.REGRESSION


def _constraints(doc: Any, task: Task | None) -> dict[str, float]:
    """``min_X``/``max_X`` on a metric of the task or a measured number, each a number."""
    if not isinstance(doc, dict):
        raise InvalidInputError("constraints map names to numbers", field="constraints")
    measurable = set(_metric_names(task)) | set(_ROW_VALUES)
    for key, value in doc.items():
        match = _CONSTRAINT.match(str(key))
        if match is None or match.group(2) not in measurable:
            raise InvalidInputError(
                f"unknown constraint {key!r}: constraints are min_ or max_ and a measured name",
                field=f"constraints.{key}",
                fix=known_keys(
                    str(key),
                    {f"{b}_{n}" for b in ("min", "max") for n in measurable},
                    listing=f"min_ or max_ with {', '.join(sorted(measurable))}",
                ),
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInputError(
                f"constraint {key} must be a number", field=f"constraints.{key}"
            )
    return {str(k): float(v) for k, v in doc.items()}


# -- running ----------------------------------------------------------------------------


def load_dataset(client: Any, spec: DataSpec) -> Dataset:
    """A registered dataset version (downloaded and verified) or a local file."""
    if spec.dataset:
        info = client.datasets.show(spec.dataset)
        with tempfile.TemporaryDirectory(prefix="stoa-select-") as tmp:
            name = Path(info.metadata.get("filename") or f"data.{info.format or 'csv'}").name
            path = client.datasets.download(info.ref, Path(tmp) / name)
            frame = read_table(path)
        return prepare(frame, spec, info.ref, info.ref)
    assert spec.path is not None
    return prepare(read_table(spec.path), spec, str(spec.path), None)


def run_selection(
    client: Any,
    config: SelectionConfig,
    *,
    register: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train, measure and rank every candidate; ``progress`` hears each step (see
    ``Progress``), so a caller can draw bars without this module knowing how."""
    report = progress or _silent
    data = load_dataset(client, config.data)
    primary = ev.check_primary(data.task, config.primary_metric)
    _constraints(config.constraints, data.task)  # min_r2 means nothing to a classifier
    if register and data.dataset_ref is None and config.data.path is not None:
        # The winner's lineage needs a dataset version: register the file it came from.
        name = re.sub(r"[^A-Za-z0-9._-]", "-", config.data.path.stem) or "data"
        data.dataset_ref = client.datasets.register(name, config.data.path).ref
    parts = split(data, config.data)
    for spec in config.candidates:  # a typo in the last candidate fails before any training
        _preflight(spec, data)
    params = {"primary_metric": primary, "task": data.task, "candidates": len(config.candidates),
              **{f"split.{k}": v for k, v in parts.describe().items()}}  # fmt: skip
    inputs = [data.dataset_ref] if data.dataset_ref else []
    rows: list[dict[str, Any]] = []
    fitted: dict[str, Any] = {}
    for spec in config.candidates:  # every candidate shows up front, waiting its turn
        report(spec.name, 0, len(STEPS))
    # The kind tag finds every selection run (the dashboard lists them by it).
    with client.runs.start(f"select-{config.name}", inputs=inputs, params=params,
                           tags={"kind": SELECTION_KIND}) as parent:  # fmt: skip
        for spec in config.candidates:
            row, model = _one(client, config, spec, data, parts, primary, parent.id, report)
            if "skipped" in row or "failed" in row:  # they stopped short of the last step
                report(spec.name, len(STEPS), len(STEPS))
            rows.append(row)
            if model is not None:
                fitted[spec.name] = model
        _rank(rows, primary, config.constraints)
        recommendation = next((r["name"] for r in rows if r["meets_constraints"]), None)
        parent.set_tag("recommendation", recommendation or "none")
        result: dict[str, Any] = {
            "leaderboard": rows,
            "recommendation": recommendation,
            "run_id": parent.id,
            "primary_metric": primary,
            "constraints": dict(config.constraints),
            "task": data.task,
            "split": parts.describe(),
            "dataset": data.dataset_ref or data.source,
        }
        if recommendation is None:
            result["note"] = "no candidate meets every constraint; see rejected_because"
        _log_result(parent, result)
    if register:
        if recommendation is None:
            result["registered"] = None
        else:
            row = next(r for r in rows if r["name"] == recommendation)
            result["registered"] = _register(client, register, fitted[recommendation], row, data)
    return result


def _silent(task: str, done: int, total: int) -> None:
    return None


#: The artifact on the selection's parent run that holds its whole result.
RESULT_ARTIFACT = "selection.json"
#: The parent run's ``kind`` tag.
SELECTION_KIND = "selection"


def _log_result(parent: Any, result: dict[str, Any]) -> None:
    """The leaderboard, constraints and recommendation as ``selection.json`` on the
    parent run: the run's tags say only who won, and the dashboard draws the rest."""
    with tempfile.TemporaryDirectory(prefix="stoa-selection-") as tmp:
        path = Path(tmp) / RESULT_ARTIFACT
        path.write_text(json.dumps(numpy_safe(result), indent=1, default=str))
        parent.log_artifact(path)


def _preflight(spec: CandidateSpec, data: Dataset) -> None:
    """What the config could not check before the data said its task and modality."""
    cls = kind_class(spec.kind, field=f"{spec.where}.kind")
    if data.task not in cls.tasks:
        raise InvalidInputError(
            f"candidate {spec.name}: {spec.kind} does not do {data.task}",
            field=f"{spec.where}.kind",
            fix=f"it does {', '.join(cls.tasks)}",
        )
    check_params(spec.kind, data.task, spec.params, where=f"{spec.where}.params")
    try:
        candidate = make(spec.kind, data.task, spec.params)
    except Skipped:
        return
    if data.inputs.modality not in candidate.modalities:
        raise InvalidInputError(
            f"candidate {spec.name}: {spec.kind} takes {' or '.join(candidate.modalities)} "
            f"data, not {data.inputs.modality}",
            field=f"{spec.where}.kind",
        )


def _one(client: Any, config: SelectionConfig, spec: CandidateSpec, data: Dataset, parts: Any,
         primary: str, parent_id: str, report: Progress) -> tuple[dict[str, Any], Any]:  # fmt: skip
    row: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "params": spec.params}
    seed = config.data.seed  # the split's seed seeds every candidate too

    def done(step: str) -> None:
        report(spec.name, STEPS.index(step) + 1, len(STEPS))

    try:
        candidate = make(spec.kind, data.task, spec.params, seed=seed)
    except Skipped as exc:
        return _skipped(row, str(exc)), None
    try:
        with client.runs.start(spec.name, params={"kind": spec.kind, "seed": seed,
                                                  **_flat(spec.params)},
                              parent=parent_id, capture_environment=False) as run:  # fmt: skip
            try:
                started = time.perf_counter()
                if spec.search:
                    from stoa.develop.ml.search import tune

                    trials = f"{spec.name}: trials"
                    tuned = tune(client, spec, data.task, parts, primary, run.id, seed,
                                 on_trial=lambda n, total: report(trials, n, total))  # fmt: skip
                    row["search"] = tuned
                    candidate = make(spec.kind, data.task, {**spec.params, **tuned["best_params"]},
                                     seed=seed)  # fmt: skip
                    run.log_params({f"best.{k}": v for k, v in tuned["best_params"].items()})
                if callable(getattr(candidate, "bind", None)):
                    _bind(candidate, client)
                candidate.fit(parts.x_train, parts.y_train)
                train_s = time.perf_counter() - started
            except Skipped as exc:
                run.set_tag("skipped", str(exc))
                return _skipped(row, str(exc)), None
            done("train")
            plan = _sample_plan(candidate, len(parts.y_test), config, seed)
            x_test, y_test = parts.x_test, parts.y_test
            if plan is not None:
                row["sample"] = plan["sample"]
                x_test, y_test = x_test.take(plan["rows"]), y_test[plan["rows"]]
            pred, proba = _predictions(candidate, x_test)
            quality = ev.evaluate(data.task, y_test, pred, proba, candidate.classes_, primary,
                                  resamples=config.resamples, seed=seed)  # fmt: skip
            if callable(getattr(candidate, "extras", None)):
                row.update(candidate.extras())
            done("evaluate")
            single = config.single_predictions if plan is None else plan["latency_calls"]
            # A sampled candidate is slow per call: one warm-up call warms its caches.
            warmup = 10 if plan is None else 1
            lat = measure.latency(candidate, x_test, single=single, warmup=warmup)
            done("latency")
            if plan is None:
                thr = measure.throughput(candidate, x_test, batch=config.batch)
            else:  # one small batch: rows/s of a model call per row hardly depends on it
                thr = measure.throughput(
                    candidate, x_test, batch=plan["batch"], max_batches=1, warm=False
                )
            done("throughput")
            size = measure.size_mb(candidate)
            done("size")
            cost = measure.cost_per_1k(thr["cpu_s_per_row"], config.price_per_cpu_hour)
            cost += 1000 * row.pop("billed_usd_per_answer", 0.0)  # a priced API's tokens
            row.update(
                metrics=quality["metrics"],
                interval=quality["interval"],
                latency_ms={k: lat[k] for k in ("p50", "p95", "p99")},
                throughput_rows_per_s=thr["rows_per_s"],
                peak_mem_mb=thr["peak_mem_mb"],
                cost_per_1k=cost,
                size_mb=size,
                train_s=train_s,
                run_id=run.id,
                confusion_matrix=quality.get("confusion_matrix"),
                calibration=quality.get("calibration"),
            )
            logged = {
                **quality["metrics"], "latency_p50_ms": lat["p50"],
                "latency_p95_ms": lat["p95"], "latency_p99_ms": lat["p99"],
                "throughput_rows_per_s": thr["rows_per_s"], "peak_mem_mb": thr["peak_mem_mb"],
                "cost_per_1k": cost, "size_mb": size, "train_s": train_s,
            }  # fmt: skip
            if "invalid_answers" in row:  # an LLM's answers outside the label set
                logged["invalid_answers"] = float(row["invalid_answers"])
            if quality["interval"]:
                logged[f"{primary}_ci_low"] = quality["interval"]["low"]
                logged[f"{primary}_ci_high"] = quality["interval"]["high"]
            run.log_metrics({k: v for k, v in logged.items() if math.isfinite(v)}, step=0)
    except Skipped as exc:
        return _skipped(row, str(exc)), None
    except Exception as exc:  # one candidate's crash must not lose the others' results
        # The child run was marked failed when the exception left it; the row says why.
        return _failed(row, f"{type(exc).__name__}: {exc}"), None
    return row, candidate


def _bind(candidate: Any, client: Any) -> None:
    """Give a provider-backed candidate its provider. A provider this machine cannot
    load (model not registered, server down, package missing) skips the candidate with
    the reason and the fix, as other kinds that cannot run here are skipped."""
    try:
        candidate.bind(provider_loader(client))
    except (NotFoundError, ConfigurationError, UnreachableError, RefusedError) as exc:
        fix = f"; {exc.fix}" if exc.fix else ""
        raise Skipped(f"its provider could not be loaded: {exc.message}{fix}") from None


#: Rows in the one throughput batch of a sampled candidate.
SAMPLED_BATCH = 4


def _sample_plan(candidate: Any, total: int, config: SelectionConfig,
                 seed: int) -> dict[str, Any] | None:  # fmt: skip
    """For a slow candidate (one that declares ``evaluation_sample() -> (rows,
    latency_calls)``), the seeded test rows it is scored on and its latency calls.

    Every row of an LLM is a model call: scoring all of them would take hours on a CPU,
    so it is scored on a stated random sample and its bootstrap interval is computed on
    that sample, which widens it honestly. Fast candidates keep every row and the
    ``measurement.single`` rule of at least 200 latency calls.
    """
    declared = getattr(candidate, "evaluation_sample", None)
    if not callable(declared):
        return None
    rows, calls = declared()
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.permutation(total)[: min(int(rows), total)])
    calls = max(1, int(calls))
    return {
        "rows": chosen,
        "latency_calls": calls,
        "batch": min(SAMPLED_BATCH, len(chosen)),
        "sample": {"rows": len(chosen), "of": total, "latency_calls": calls},
    }


def _predictions(candidate: Any, x: Any) -> tuple[np.ndarray, Any]:
    """Labels and probabilities; one pass when the candidate can give both at once."""
    both = getattr(candidate, "predict_with_proba", None)
    if callable(both):
        return both(x)
    return candidate.predict(x), candidate.predict_proba(x)


class ProviderLoader:
    """How ``llm_prompt`` candidates reach a provider through this client's stores.

    Local stores: ``load_provider`` with their registry and settings. A server: a
    ``local`` model is downloaded verified with ``client.models.load`` and run here,
    other providers come from this machine's settings (their keys never leave it).
    ``model_bytes`` is the referenced model's size, part of the candidate's size.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def _local(self) -> Any:
        """The client's local stores, when it has them (an area never imports the client
        layer, so this asks for what it needs rather than for a class)."""
        transport = getattr(self.client, "_transport", None)
        has_stores = hasattr(transport, "registry") and hasattr(transport, "settings")
        return transport if has_stores else None

    def __call__(self, spec: Any) -> Any:
        from stoa.core.settings import Settings
        from stoa.develop.llm.providers import load_provider, provider_kind

        local = self._local()
        if local is not None:
            return load_provider(spec, registry=local.registry, settings=local.settings)
        settings = Settings()
        if provider_kind(spec.provider, settings) != "local":
            return load_provider(spec, registry=None, settings=settings)  # type: ignore[arg-type]
        from stoa.develop.llm.local import LocalProvider

        info = self.client.models.show(spec.model)
        if info.sha256 not in _REMOTE:  # downloaded, verified and loaded once per process
            lm = self.client.models.load(info.ref)
            _REMOTE[info.sha256] = LocalProvider(lm, model=info.ref,
                                                 cpu_hour_usd=settings.cpu_hour_usd)  # fmt: skip
        return _REMOTE[info.sha256]

    def model_bytes(self, spec: Any) -> int:
        """What the named model weighs; 0 for a served (remote) model."""
        from stoa.core.settings import Settings
        from stoa.develop.llm.providers import provider_kind

        local = self._local()
        settings = local.settings if local is not None else Settings()
        if provider_kind(spec.provider, settings) != "local" or not spec.model:
            return 0
        info = (local.registry.get("model", spec.model) if local is not None
                else self.client.models.show(spec.model))  # fmt: skip
        return int(info.size or 0)


_REMOTE: dict[str, Any] = {}  # local models fetched from a server, once per process


def provider_loader(client: Any) -> ProviderLoader:
    """The loader ``select`` binds ``llm_prompt`` candidates with (see ``ProviderLoader``)."""
    return ProviderLoader(client)


def _failed(row: dict[str, Any], reason: str) -> dict[str, Any]:
    _skipped(row, reason)
    row["failed"] = row.pop("skipped")
    row["rejected_because"] = [f"failed: {reason}"]
    return row


def _skipped(row: dict[str, Any], reason: str) -> dict[str, Any]:
    row.update(skipped=reason, metrics={}, latency_ms=None, cost_per_1k=None, size_mb=None,
               train_s=None, pareto=False, meets_constraints=False,
               rejected_because=[f"skipped: {reason}"])  # fmt: skip
    return row


def _flat(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in params.items()}


# -- ranking ----------------------------------------------------------------------------


def _rank(rows: list[dict[str, Any]], primary: str, constraints: dict[str, float]) -> None:
    """Sort by the primary metric, mark the Pareto front, explain every rejection."""
    sign = -1 if primary in ev.LOWER_IS_BETTER else 1
    scored = [r for r in rows if "skipped" not in r and "failed" not in r]

    def key(r: dict[str, Any]) -> float:
        value = r["metrics"].get(primary)
        return -math.inf if value is None else sign * value

    scored.sort(key=key, reverse=True)
    for row in scored:
        row["pareto"] = _on_front(row, scored, primary, sign)
        row["rejected_because"] = _rejections(row, primary, constraints)
        row["meets_constraints"] = not row["rejected_because"]
    rows[:] = scored + [r for r in rows if "skipped" in r or "failed" in r]


def pareto_front(rows: list[dict[str, Any]], primary: str) -> list[str]:
    """Names on the front of quality vs cost vs p95 latency (for tests and reports)."""
    sign = -1 if primary in ev.LOWER_IS_BETTER else 1
    return [r["name"] for r in rows if _on_front(r, rows, primary, sign)]


def _objectives(row: dict[str, Any], primary: str, sign: int) -> tuple[float, float, float]:
    quality = row["metrics"].get(primary)
    return (
        -math.inf if quality is None else sign * quality,  # higher is better
        -row["cost_per_1k"],  # cheaper is better
        -row["latency_ms"]["p95"],  # faster is better
    )


def _on_front(row: dict[str, Any], rows: list[dict[str, Any]], primary: str, sign: int) -> bool:
    mine = _objectives(row, primary, sign)
    for other in rows:
        if other is row:
            continue
        theirs = _objectives(other, primary, sign)
        if all(t >= m for t, m in zip(theirs, mine, strict=True)) and theirs != mine:
            return False
    return True


_ROW_VALUES = {
    "p95_ms": lambda r: r["latency_ms"]["p95"],
    "p99_ms": lambda r: r["latency_ms"]["p99"],
    "p50_ms": lambda r: r["latency_ms"]["p50"],
    "cost_per_1k": lambda r: r["cost_per_1k"],
    "size_mb": lambda r: r["size_mb"],
    "train_s": lambda r: r["train_s"],
    "peak_mem_mb": lambda r: r["peak_mem_mb"],
    "throughput_rows_per_s": lambda r: r["throughput_rows_per_s"],
}


def _rejections(row: dict[str, Any], primary: str, constraints: dict[str, float]) -> list[str]:
    reasons = []
    for key, limit in constraints.items():
        match = _CONSTRAINT.match(key)
        assert match is not None
        bound, name = match.groups()
        value = _ROW_VALUES[name](row) if name in _ROW_VALUES else row["metrics"].get(name)
        if value is None:
            reasons.append(f"{name} was not measured for this candidate ({key} {limit:g})")
        elif (bound == "max" and value > limit) or (bound == "min" and value < limit):
            sign = ">" if bound == "max" else "<"
            reasons.append(f"{name} {value:.4g} {sign} {key} {limit:g}")
    return reasons


# -- registering ------------------------------------------------------------------------


def _register(
    client: Any, name: str, candidate: Any, row: dict[str, Any], data: Dataset
) -> dict[str, Any]:
    """Through the gate, as the candidate flavor, aliased champion, with lineage."""
    with tempfile.TemporaryDirectory(prefix="stoa-winner-") as tmp:
        path = candidate.save(Path(tmp))
        summary = {k: row[k] for k in ("name", "kind", "metrics", "latency_ms", "cost_per_1k",
                                       "size_mb", "train_s", "pareto") if k in row}  # fmt: skip
        info = client.models.register(
            name,
            path,
            flavor="candidate",
            description=f"{row['kind']} chosen by stoa select",
            metadata={"leaderboard_row": summary},
            spec=candidate.spec(),
            run_id=row["run_id"],
            datasets=[data.dataset_ref] if data.dataset_ref else [],
        )
    if info.status != "allowed":
        return {"ref": info.ref, "status": info.status, "alias": None}
    client.models.set_alias(name, info.version, "champion")
    return {"ref": info.ref, "status": info.status, "alias": f"{name}@champion"}


def numpy_safe(value: Any) -> Any:
    """Leaderboards hold numpy scalars and labels: make them plain JSON."""
    if isinstance(value, dict):
        return {str(k): numpy_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [numpy_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
