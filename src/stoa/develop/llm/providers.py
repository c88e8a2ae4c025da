"""Which provider answers: a name resolved once per process.

Three names are built in. ``local`` runs a registered model (``model: smollm2@champion``)
on this machine; ``extractive`` answers from retrieved passages and needs no model;
``openai`` is any OpenAI-compatible server configured in ``STOA_PROVIDERS``. More names
can be configured there, each with its own URL, key variable and prices:

    STOA_PROVIDERS='{"vllm": {"kind": "openai", "url": "http://gpu:8000/v1",
                     "api_key_env": "VLLM_KEY", "timeout_s": 60}}'

A request never carries a URL or a key: only configured names reach the network.
Loaded providers are kept per process, keyed by what they load, so a solution run, an
endpoint replica or a selection loads a model once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stoa.core.errors import InvalidInputError
from stoa.core.settings import Settings
from stoa.develop.llm.provider import Provider
from stoa.govern.registry import Registry

BUILTIN = ("local", "extractive")
KINDS = ("local", "openai", "extractive")


@dataclass(frozen=True)
class ProviderSpec:
    """What a generate block, a judge or a candidate names: a provider, the model it
    should run, and provider options (``dtype``, ``backend``…)."""

    provider: str = "local"
    model: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return json.dumps([self.provider, self.model, dict(self.options)], sort_keys=True)

    def label(self) -> str:
        return f"{self.provider}:{self.model}" if self.model else self.provider


def provider_names(settings: Settings) -> list[str]:
    """Every name a spec may use here."""
    return sorted(set(BUILTIN) | set(settings.providers))


def provider_kind(name: str, settings: Settings) -> str:
    """The kind behind a name; an unknown name is an error listing the known ones."""
    if name in settings.providers:
        kind = settings.providers[name].get("kind", "openai")
        if kind not in KINDS:
            raise InvalidInputError(
                f"provider {name!r} is configured with unknown kind {kind!r}",
                field=f"STOA_PROVIDERS.{name}.kind",
                fix=f"use one of {', '.join(KINDS)}",
            )
        return kind
    if name in BUILTIN:
        return name
    raise InvalidInputError(
        f"unknown provider {name!r}",
        field="provider",
        fix=f"use one of {', '.join(provider_names(settings))}, or configure it in STOA_PROVIDERS",
    )


_LOADED: dict[str, Provider] = {}
_LOCK = threading.Lock()


def load_provider(spec: ProviderSpec, *, registry: Registry, settings: Settings) -> Provider:
    """The provider for ``spec``, loaded once per process."""
    kind = provider_kind(spec.provider, settings)
    key = spec.key()
    if spec.provider in settings.providers:
        # A reconfigured name (another URL, key variable or price) is another provider.
        key += json.dumps(settings.providers[spec.provider], sort_keys=True, default=str)
    if kind == "local":
        # A moved alias must load the model it now points at, not the cached one.
        key += "@" + registry.get("model", spec.model).sha256 if spec.model else ""
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
    provider = _build(kind, spec, registry=registry, settings=settings)
    with _LOCK:
        return _LOADED.setdefault(key, provider)


def _build(kind: str, spec: ProviderSpec, *, registry: Registry, settings: Settings) -> Provider:
    if kind == "local":
        from stoa.develop.llm.local import LocalProvider

        if not spec.model:
            raise InvalidInputError(
                "the local provider needs a registered model",
                field="model",
                fix="name one, for example model: smollm2@champion",
            )
        return LocalProvider.from_registry(
            registry, spec.model, dict(spec.options), cpu_hour_usd=settings.cpu_hour_usd
        )
    if kind == "extractive":
        from stoa.develop.llm.extractive import ExtractiveProvider

        return ExtractiveProvider(dict(spec.options))
    from stoa.develop.llm.openai_compat import OpenAIProvider

    values = dict(settings.providers.get(spec.provider, {}))
    return OpenAIProvider.from_settings(spec.provider, values, spec.model, dict(spec.options))


def forget_loaded() -> None:
    """Drop every loaded provider (tests, and a server reloading its configuration)."""
    with _LOCK:
        _LOADED.clear()
