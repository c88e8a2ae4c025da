"""Generations replayed instead of paid for twice, keyed by what produced them.

The key is the sha256 of canonical JSON over the provider, the model's identity (for a
local model its weights' hash, for a server its URL and model name), the messages, the
params and the passages. Change any of them and the key changes, so a stale answer is
never served for a new question; nothing expires on its own.

A hit is an answer already paid for: it comes back with ``cached=True``, the token
counts it was made with, the lookup's own latency and a cost of 0. An answer sampled at
``temperature > 0`` is replayed as that one sample, which is what a cache is for.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from stoa.core.db import Database, for_dialect
from stoa.core.schema import GenerationCacheEntry, utcnow
from stoa.develop.llm.provider import (
    Generation,
    GenerationParams,
    Message,
    Passage,
    Provider,
    Usage,
)

C = GenerationCacheEntry.__table__
#: Bumped when the key's recipe changes, so old entries stop matching.
KEY_VERSION = 1


def cache_key(
    provider_label: str,
    model_identity: str,
    messages: Sequence[Message],
    params: GenerationParams,
    passages: Sequence[Passage] = (),
) -> str:
    """The sha256 (hex) of everything that decides the answer, as canonical JSON."""
    canonical = {
        "v": KEY_VERSION,
        "provider": provider_label,
        "model": model_identity,
        "messages": [[m.role, m.content] for m in messages],
        "params": params.model_dump(mode="json"),
        "passages": [[p.n, p.text, p.source, p.score] for p in passages],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class GenerationCache:
    """The ``generation_cache`` table of the metadata database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database):
        self.db = db

    def get(self, key: str) -> Generation | None:
        """The stored generation, counted as a hit, or None."""
        started = time.perf_counter()
        # Read first: a miss (the common case while a cache fills) takes no write lock.
        with self.db.engine.connect() as conn:
            response = conn.execute(select(C.c.response).where(C.c.key == key)).scalar()
        if response is None:
            return None
        with self.db.write_connection() as conn:
            conn.execute(
                update(C).where(C.c.key == key).values(hits=C.c.hits + 1, last_hit_at=utcnow())
            )
        generation = _from_json(response)
        generation.cached = True
        generation.usage.latency_ms = (time.perf_counter() - started) * 1000
        generation.usage.first_token_ms = generation.usage.latency_ms
        generation.usage.cpu_seconds = None
        generation.usage.cost_usd = 0.0
        return generation

    def put(self, key: str, generation: Generation) -> None:
        """Stored once: a second writer of the same key (a race) keeps the first answer."""
        row = {
            "key": key,
            "provider": generation.provider[:128],
            "model": generation.model[:512],
            "response": json.dumps(_to_json(generation), ensure_ascii=False),
            "created_at": utcnow(),
            "hits": 0,
            "last_hit_at": None,
        }
        with self.db.write_connection() as conn:
            conn.execute(for_dialect(conn, "generation_cache_put", _insert_once), row)

    def stats(self) -> dict[str, int]:
        """Entries and hits so far, for a report."""
        with self.db.engine.connect() as conn:
            query = select(func.count(), func.coalesce(func.sum(C.c.hits), 0)).select_from(C)
            entries, hits = conn.execute(query).one()
        return {"entries": int(entries or 0), "hits": int(hits or 0)}


def cached_generate(
    provider: Provider,
    messages: Sequence[Message],
    params: GenerationParams,
    *,
    passages: Sequence[Passage] = (),
    cache: GenerationCache | None,
    identity: str | None = None,
) -> Generation:
    """The provider's answer, from the cache when it holds one; a miss generates and
    stores. ``identity`` names the exact model (default: the provider's ``model``); a
    provider's own ``identity`` attribute, when it has one, is always part of the key.
    Errors are never cached."""
    if cache is None:
        return provider.generate(messages, params, passages=passages)
    # The provider's own identity (a server's URL) joins the caller's (a model's weights
    # hash): re-pointing a configured name at another server must not replay old answers.
    parts = [identity or provider.model, getattr(provider, "identity", None) or ""]
    key = cache_key(provider.kind, "|".join(parts), messages, params, passages)
    hit = cache.get(key)
    if hit is not None:
        return hit
    generation = provider.generate(messages, params, passages=passages)
    cache.put(key, generation)
    return generation


def _insert_once(_: str, insert: Any) -> Any:
    return insert(C).on_conflict_do_nothing(index_elements=[C.c.key])


def _to_json(generation: Generation) -> dict[str, Any]:
    usage = generation.usage
    return {
        "text": generation.text,
        "provider": generation.provider,
        "model": generation.model,
        "finish_reason": generation.finish_reason,
        "citations": list(generation.citations),
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "latency_ms": usage.latency_ms,
            "first_token_ms": usage.first_token_ms,
            "cpu_seconds": usage.cpu_seconds,
            "cost_usd": usage.cost_usd,
            "tokens_estimated": usage.tokens_estimated,
        },
    }


def _from_json(text: str) -> Generation:
    data = json.loads(text)
    return Generation(
        text=data["text"],
        usage=Usage(**data["usage"]),
        provider=data["provider"],
        model=data["model"],
        finish_reason=data["finish_reason"],
        citations=list(data["citations"]),
    )
