"""``stoa models load`` and ``stoa models predict``: a quick look at a model, and a quick
check of what it predicts, on any version the gate allowed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from stoa.cli.context import JsonOpt, existing_path, state
from stoa.cli.output import emit, fields, note
from stoa.core.errors import InvalidInputError
from stoa.govern.scoring import frame_predictor, one_line

#: Rows read, predicted and written at a time: memory stays flat on any input size.
CHUNK_ROWS = 10_000
_READERS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def load(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@3 or NAME@ALIAS")],
    json_out: JsonOpt = False,
) -> None:
    """Load a model as Python would (allowed versions only) and describe what came back."""
    client = state(ctx).client
    info = client.models.show(ref)
    model = client.models.load(info.ref)
    report = {"ref": info.ref, "flavor": info.flavor, "type": _type_name(model),
              "summary": summary(model)}  # fmt: skip
    emit(report, json_out, lambda r: fields(
        f"model {r['ref']}", [("type", r["type"]), ("flavor", r["flavor"]),
                              *[(k.replace("_", " "), _text(v)) for k, v in r["summary"].items()]],
    ))  # fmt: skip


def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@3 or NAME@ALIAS")],
    input_: Annotated[
        Path, typer.Option("--input", help="A CSV or JSONL file with one input per row.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(help="Write JSONL here (it must not exist) instead of to stdout."),
    ] = None,
) -> None:
    """Predict every row of INPUT with an allowed model version: one JSON line per row,
    {"row": N, "prediction": …}. For a quick check, not for serving."""
    read = _reader(existing_path(input_, "input"))
    if output is not None and output.exists():
        raise InvalidInputError(f"{output} already exists", field="output", fix="choose a new file")
    client = state(ctx).client
    info = client.models.show(ref)
    model = client.models.load(info.ref)  # refused (exit 1) unless the gate allowed it
    predict_frame = frame_predictor(model)
    out = open(output, "x", encoding="utf-8") if output is not None else sys.stdout  # noqa: SIM115
    rows = 0
    try:
        for frame in read():
            for value in predict_frame(frame, input_.name):
                out.write(json.dumps({"row": rows, "prediction": value}) + "\n")
                rows += 1
    except BaseException:
        if output is not None:
            out.close()
            output.unlink(missing_ok=True)  # never leave half an answer behind
        raise
    if output is not None:
        out.close()
        note(f"wrote {rows} predictions of {info.ref} to {output}")


def summary(model: Any) -> dict[str, Any]:
    """What a person checks first: inputs, outputs and size, as far as the object says."""
    facts: dict[str, Any] = {}
    for label, read in _FACTS:
        try:
            value = read(model)
        except Exception:  # a fact the object cannot give is left out
            continue
        if value is not None:
            facts[label] = value
    facts["can"] = [m for m in ("predict", "predict_proba", "transform", "encode")
                    if callable(getattr(model, m, None))]  # fmt: skip
    return facts


def _listed(values: Any, limit: int = 20) -> list[Any]:
    items = [v.item() if hasattr(v, "item") else v for v in list(values)]
    return items[:limit] + ([f"… {len(items) - limit} more"] if len(items) > limit else [])


_FACTS: list[tuple[str, Callable[[Any], Any]]] = [
    ("steps", lambda m: [name for name, _ in m.steps]),
    ("features", lambda m: int(m.n_features_in_)),
    ("feature_names", lambda m: _listed(m.feature_names_in_)),
    ("classes", lambda m: _listed(m.classes_)),
    ("features", lambda m: int(m.num_features())),  # xgboost.Booster
    ("features", lambda m: int(m.num_feature())),  # lightgbm.Booster
    ("boosting_rounds", lambda m: int(m.num_boosted_rounds())),
    ("trees", lambda m: int(m.num_trees())),
    ("embedding_dimension", lambda m: int(m.get_sentence_embedding_dimension())),
    ("max_sequence_length", lambda m: int(m.max_seq_length)),
    ("kind", lambda m: str(m.kind)),
]


def _type_name(model: Any) -> str:
    kind = type(model)
    return f"{kind.__module__}.{kind.__qualname__}"


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _reader(path: Path) -> Callable[[], Iterator[Any]]:
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise InvalidInputError(
            f"{path.name} is neither CSV nor JSONL", field="input", fix="give a .csv or .jsonl file"
        )

    def chunks() -> Iterator[Any]:
        import pandas as pd

        try:
            if kind == "csv":
                yield from pd.read_csv(path, chunksize=CHUNK_ROWS)
            else:
                yield from pd.read_json(path, lines=True, chunksize=CHUNK_ROWS)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InvalidInputError(
                f"{path.name} is not readable {kind.upper()}: {one_line(exc)}", field="input"
            ) from None

    return chunks
