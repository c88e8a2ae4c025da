"""Hyperparameter search with Optuna: every trial is a child run of its candidate's run.

Trials train on 80 % of the training rows and are scored on the other 20 % (stratified
and seeded like the main split), so the test rows stay unseen until the tuned candidate
is evaluated. The sampler is seeded: the same config gives the same trials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from stoa.core.errors import InvalidInputError
from stoa.develop.ml import evaluate as ev
from stoa.develop.ml.candidates.base import make, refuse_unknown

MAX_TRIALS = 500
_SEARCH_KEYS = {"trials", "space"}
_RANGE_KEYS = {"low", "high", "log", "int", "float"}


def check_search(search: Any, name: str, where: str = "search",
                 params: set[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """``{trials: N, space: {param: {low, high, log?, int?, float?} | [choices]}}``,
    validated now. ``where`` is its dotted place in the config, for error fields, and
    ``params`` the names the candidate's kind knows (None: any)."""
    if not isinstance(search, dict) or not isinstance(search.get("space"), dict):
        raise InvalidInputError(
            f"candidate {name}: search needs a space of params",
            field=f"{where}.space",
            fix="write search: {trials: 20, space: {C: {low: 0.01, high: 10, log: true}}}",
        )
    refuse_unknown(search, _SEARCH_KEYS, where, f"the search of candidate {name}")
    trials = search.get("trials", 20)
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
        raise InvalidInputError(
            f"candidate {name}: trials must be 1..{MAX_TRIALS}", field=f"{where}.trials"
        )
    space = search["space"]
    if params is not None:
        refuse_unknown(space, params, f"{where}.space", f"the search space of candidate {name}")
    for param, domain in space.items():
        at = f"{where}.space.{param}"
        if isinstance(domain, list) and domain:
            continue
        if isinstance(domain, dict) and {"low", "high"} <= set(domain):
            refuse_unknown(domain, _RANGE_KEYS, at, f"the range of {param} ({name})")
            low, high = domain["low"], domain["high"]
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
                raise InvalidInputError(f"{name}: {param} bounds must be numbers", field=at)
            if low >= high or (domain.get("log") and low <= 0):
                raise InvalidInputError(
                    f"{name}: {param} needs low < high (and low > 0 on a log scale)", field=at
                )
            continue
        raise InvalidInputError(
            f"{name}: {param} must be a list of choices or {{low, high}}", field=at
        )
    return {"trials": trials, "space": space}


def _suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    """Integer bounds give integer params unless ``float: true``; ``log: true`` samples on
    a log scale."""
    params = {}
    for name, domain in space.items():
        if isinstance(domain, list):
            params[name] = trial.suggest_categorical(name, domain)
            continue
        low, high, log = domain["low"], domain["high"], bool(domain.get("log"))
        integer = domain.get("int") or (
            isinstance(low, int) and isinstance(high, int) and not domain.get("float")
        )
        if integer:
            params[name] = trial.suggest_int(name, int(low), int(high), log=log)
        else:
            params[name] = trial.suggest_float(name, float(low), float(high), log=log)
    return params


def tune(client: Any, spec: Any, task: Any, parts: Any, primary: str, parent_id: str, seed: int,
         on_trial: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The best params after ``spec.search["trials"]`` trials; ``on_trial(done, total)``
    hears the count before the first trial and after each one."""
    import optuna
    from sklearn.model_selection import train_test_split

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    index = np.arange(len(parts.y_train))
    stratify = parts.y_train if task == "classification" else None
    inner, valid = train_test_split(index, test_size=0.2, random_state=seed, stratify=stratify)
    x_fit, y_fit = parts.x_train.take(np.sort(inner)), parts.y_train[np.sort(inner)]
    x_val, y_val = parts.x_train.take(np.sort(valid)), parts.y_train[np.sort(valid)]
    lower = primary in ev.LOWER_IS_BETTER

    def objective(trial: Any) -> float:
        params = _suggest(trial, spec.search["space"])
        with client.runs.start(f"{spec.name}-trial-{trial.number}", parent=parent_id,
                              params={"kind": spec.kind, **params},
                              capture_environment=False) as run:  # fmt: skip
            candidate = make(spec.kind, task, {**spec.params, **params}, seed=seed)
            candidate.fit(x_fit, y_fit)
            proba = candidate.predict_proba(x_val)
            value = ev.score(task, primary, y_val, candidate.predict(x_val), proba,
                             candidate.classes_)  # fmt: skip
            if value is None:
                raise InvalidInputError(
                    f"{spec.name}: {primary} needs probabilities {spec.kind} does not give",
                    field="primary_metric",
                )
            run.log_metric(f"val_{primary}", value, step=0)
        return value

    study = optuna.create_study(
        direction="minimize" if lower else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    total = spec.search["trials"]
    counted = on_trial or (lambda done, total: None)
    counted(0, total)
    study.optimize(objective, n_trials=total,
                   callbacks=[lambda study, _: counted(len(study.trials), total)])  # fmt: skip
    return {"trials": len(study.trials), "best_params": study.best_params,
            f"best_val_{primary}": study.best_value}  # fmt: skip
