"""Calling a loaded model on a frame of rows, the one way ``stoa models predict``, the
MLflow scoring route and model endpoints all do it: the columns it was fitted on, in
its order; positions for a model fitted on a bare array; a DMatrix for a raw XGBoost
Booster; texts for an encoder. Framework errors become ``InvalidInputError`` naming
what was wrong with the rows, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stoa.core.errors import InvalidInputError, StoaError

Predictor = Callable[[Any, str], list[Any]]


def frame_predictor(model: Any) -> Predictor:
    """``call(frame, source)``: one JSON-ready prediction per row of a pandas frame;
    ``source`` names the rows in errors (a file name, "input")."""
    if callable(getattr(model, "predict", None)):
        names = getattr(model, "feature_names_in_", None)

        def call(frame: Any, source: str) -> list[Any]:
            if names is not None:  # the columns it was fitted on, in order; extras ignored
                missing = [n for n in names if n not in frame.columns]
                if missing:
                    raise InvalidInputError(
                        f"{source} lacks the column(s) {', '.join(map(str, missing))}",
                        field="input",
                        fix=f"send the columns {', '.join(map(str, names))}",
                    )
                if list(frame.columns) != list(names):  # selecting costs ~0.5 ms a call
                    frame = frame[list(names)]
            elif hasattr(model, "n_features_in_"):
                frame = frame.to_numpy()  # fitted on an unnamed array: positions, not names
            elif len(frame.columns) == 1 and frame.dtypes.iloc[0].kind == "O":
                frame = frame.iloc[:, 0].tolist()  # a text pipeline takes a list of strings
            return run_model(lambda: model.predict(native(model, frame)), source)

        return call
    if callable(getattr(model, "encode", None)):

        def embed(frame: Any, source: str) -> list[Any]:
            column = "text" if "text" in frame.columns else frame.columns[0]
            texts = frame[column].astype(str).tolist()
            return run_model(lambda: model.encode(texts), source)

        return embed
    kind = type(model)
    raise InvalidInputError(
        f"a {kind.__module__}.{kind.__qualname__} has no predict or encode method",
        field="ref",
        fix="load it in Python with client.models.load",
    )


def native(model: Any, frame: Any) -> Any:
    """A frame as the model's own API takes it: a raw XGBoost Booster wants a DMatrix."""
    if type(model).__module__.startswith("xgboost") and type(model).__name__ == "Booster":
        import xgboost

        return xgboost.DMatrix(frame)
    return frame


def run_model(call: Callable[[], Any], source: str) -> list[Any]:
    try:
        result = call()
    except StoaError:
        raise
    except Exception as exc:  # the framework's own complaint about the rows
        raise InvalidInputError(
            f"the model could not predict {source}: {type(exc).__name__}: {one_line(exc)}",
            field="input",
            fix="give the columns (and types) the model was trained on",
        ) from None
    return json_ready(result)


def json_ready(result: Any) -> list[Any]:
    values = result.tolist() if hasattr(result, "tolist") else list(result)
    return [v.item() if hasattr(v, "item") else v for v in values]


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
