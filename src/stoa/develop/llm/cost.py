"""What a generation costs: a price table for hosted models, CPU time for local ones.

Hosted prices are USD per million tokens, configured per provider name and model
(``STOA_PROVIDERS``); a model with no price costs 0 and says so in its usage, rather
than guessing. Local models cost the CPU-seconds they used at ``STOA_CPU_HOUR_USD``,
the same basis ``stoa select`` prices every other candidate on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stoa.core.errors import InvalidInputError

PER_MILLION = 1_000_000


def cpu_cost(cpu_seconds: float, cpu_hour_usd: float) -> float:
    return cpu_seconds * cpu_hour_usd / 3600


def parse_prices(values: Any, *, field: str) -> dict[str, tuple[float, float]]:
    """``{"MODEL": {"prompt": USD, "completion": USD}}`` per million tokens, checked."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InvalidInputError("must map model names to prices", field=field)
    prices = {}
    for model, price in values.items():
        try:
            prompt, completion = float(price["prompt"]), float(price["completion"])
        except (TypeError, KeyError, ValueError):
            raise InvalidInputError(
                f"the price of {model!r} is not {{prompt, completion}} in USD per million tokens",
                field=f"{field}.{model}",
                fix='write {"prompt": 0.15, "completion": 0.6}',
            ) from None
        if prompt < 0 or completion < 0:
            raise InvalidInputError("prices cannot be negative", field=f"{field}.{model}")
        prices[str(model)] = (prompt, completion)
    return prices


def token_cost(
    prices: Mapping[str, tuple[float, float]],
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> float:
    price = prices.get(model) or prices.get("*")
    if price is None:
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / PER_MILLION
