"""The one interface every generation provider implements.

``generate(messages, params) -> Generation`` (text plus usage) and ``stream(messages,
params)``, which yields text deltas and ends with the same ``Generation``. Solutions,
``stoa select``'s ``llm_prompt`` candidate and the judges call only this, so a local
model, an OpenAI-compatible server and the extractive generator are interchangeable.

Passages ride beside the messages rather than inside them: an LLM provider ignores them
(the prompt already quotes them), the extractive provider answers from nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stoa.core.errors import InvalidInputError

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat turn, as the OpenAI wire format spells it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class GenerationParams(BaseModel):
    """Decoding settings every provider understands; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=256, ge=1, le=32_768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: The answer must be one of these strings (classification): providers that can
    #: constrain decoding do, the others are checked after the fact.
    choices: tuple[str, ...] = ()
    #: Ask for a JSON object (judges); providers that support a JSON mode use it.
    json_mode: bool = False

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > 8 or any(not s for s in value):
            raise ValueError("give at most 8 non-empty stop strings")
        return value


@dataclass(frozen=True)
class Passage:
    """A retrieved passage a provider may answer from; ``n`` is its citation number."""

    n: int
    text: str
    source: str = ""
    score: float = 0.0


@dataclass
class Usage:
    """What one generation cost. Tokens are counted with the model's own tokenizer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    cpu_seconds: float | None = None  # local providers: measured, the basis of their cost
    cost_usd: float = 0.0
    #: True when the server reported no token counts and they were approximated
    #: (see ``openai_compat.approximate_tokens``), so a reader knows not to bill on them.
    tokens_estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "latency_ms": round(self.latency_ms, 3),
            "first_token_ms": None
            if self.first_token_ms is None
            else round(self.first_token_ms, 3),
            "cpu_seconds": self.cpu_seconds,
            "cost_usd": self.cost_usd,
            "tokens_estimated": self.tokens_estimated,
        }


@dataclass
class Generation:
    """A provider's answer."""

    text: str
    usage: Usage
    provider: str
    model: str
    finish_reason: Literal["stop", "length"] = "stop"
    cached: bool = False
    #: Citation numbers the text refers to (the extractive provider fills it).
    citations: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "provider": self.provider,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "cached": self.cached,
            "citations": self.citations,
            "usage": self.usage.to_dict(),
        }


@dataclass(frozen=True)
class Chunk:
    """One streamed piece: a text delta, or (last) the finished ``Generation``."""

    text: str = ""
    final: Generation | None = None


class Provider(Protocol):
    """A source of generations. ``kind`` is ``local``, ``openai`` or ``extractive``;
    ``model`` names what answers (a registry reference, a served model name)."""

    kind: str
    model: str

    def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Generation: ...

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Iterator[Chunk]: ...

    def count_tokens(self, text: str) -> int: ...


class StreamedProvider:
    """For providers whose stream builds the answer: ``generate`` is the stream collected,
    so the two can never disagree."""

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Iterator[Chunk]:
        raise NotImplementedError

    def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Generation:
        return collect(self.stream(messages, params, passages=passages))


def as_messages(value: Any, *, field_name: str = "messages") -> list[Message]:
    """Messages from what a user wrote: a string (one user turn), or a list of
    ``{"role", "content"}`` mappings. The error names the turn that is wrong."""
    if isinstance(value, str):
        return [Message(role="user", content=value)]
    if not isinstance(value, Sequence) or not value:
        raise InvalidInputError(
            "must be a non-empty list of {role, content} turns or a string",
            field=field_name,
        )
    out = []
    for i, turn in enumerate(value):
        if isinstance(turn, Message):
            out.append(turn)
            continue
        try:
            out.append(Message.model_validate(turn))
        except Exception:
            raise InvalidInputError(
                f"turn {i} is not a {{role, content}} mapping with role system, user or assistant",
                field=f"{field_name}[{i}]",
                fix='write {"role": "user", "content": "…"}',
            ) from None
    return out


def stream_from_generate(generation: Generation) -> Iterator[Chunk]:
    """A stream for providers whose answer arrives whole (extractive, a cache hit)."""
    if generation.text:
        yield Chunk(text=generation.text)
    yield Chunk(final=generation)


def collect(chunks: Iterator[Chunk]) -> Generation:
    """The ``Generation`` at the end of a stream, consuming it."""
    for chunk in chunks:
        if chunk.final is not None:
            return chunk.final
    raise RuntimeError("the stream ended without its final generation")
