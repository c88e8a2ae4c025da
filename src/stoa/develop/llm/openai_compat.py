"""Any OpenAI-compatible ``/chat/completions`` server as a generation provider.

OpenAI, vLLM, Ollama, a llama.cpp server and TGI all speak this wire format, so one
client serves them all. Everything that reaches the network comes from configuration
(``STOA_PROVIDERS``): the URL, the name of the variable holding the key, timeouts,
retries and prices. A solution spec or a request can pick only the model and a few
checked body extras (``options.extra_body``).

Failures are retried where waiting can help (HTTP 429 and 5xx, a refused connection, a
read timeout) with exponential backoff and jitter, honouring ``Retry-After``; a stream
is retried only before its first byte. The server's body is never echoed whole: it may
say anything, even repeat the key, so an error carries at most its short ``message``
field, cut and cleaned.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from stoa.core.errors import (
    ConfigurationError,
    InvalidInputError,
    RefusedError,
    StoaError,
    UnreachableError,
)
from stoa.develop.llm.cost import parse_prices, token_cost
from stoa.develop.llm.provider import (
    Chunk,
    Generation,
    GenerationParams,
    Message,
    Passage,
    Usage,
)

#: Every key a ``STOA_PROVIDERS`` entry of kind ``openai`` may hold.
SETTINGS = (
    "kind",
    "url",
    "api_key_env",
    "model",
    "timeout_s",
    "connect_timeout_s",
    "max_retries",
    "backoff_s",
    "prices",
    "headers",
)
#: What a spec's ``options`` may hold: body extras such as vLLM's ``guided_choice``.
OPTIONS = ("extra_body",)
#: Body keys Stoa writes itself; ``extra_body`` may not replace them.
RESERVED_BODY = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "temperature", "top_p"}
    | {"stop", "seed", "response_format", "n"}
)
RETRY_AFTER_CAP_S = 30.0  # the longest Stoa waits on a server's Retry-After
BACKOFF_CAP_S = 8.0
CHARS_PER_TOKEN = 4  # the approximation used when a server reports no usage
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]+")
_RETRIED_STATUS = frozenset({429}) | frozenset(range(500, 600))


def approximate_tokens(text: str) -> int:
    """About four characters per token (English BPE): used only when the server reports
    no usage and no tokenizer is known here, and marked ``tokens_estimated``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class OpenAIProvider:
    """A configured OpenAI-compatible server; one instance is shared per process."""

    kind = "openai"

    def __init__(
        self,
        name: str,
        *,
        url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        prices: Mapping[str, tuple[float, float]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ):
        self.name = name
        self.model = model
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/chat/completions"
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.prices = dict(prices or {})
        self.extra_body = dict(extra_body or {})
        self._key = api_key
        sent = dict(headers or {})
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._http = httpx.Client(headers=sent, timeout=timeout)

    @classmethod
    def from_settings(
        cls, name: str, values: Mapping[str, Any], model: str, options: Mapping[str, Any]
    ) -> OpenAIProvider:
        """Built from a ``STOA_PROVIDERS`` entry; the spec may only name the model and
        body extras. A bad setting is the operator's to fix, so a ConfigurationError."""
        where = f"STOA_PROVIDERS.{name}"
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(unknown)} for provider {name!r}",
                field=where,
                fix=f"use only {', '.join(SETTINGS)}",
            )
        url = values.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"provider {name!r} needs the base URL of an OpenAI-compatible server",
                field=f"{where}.url",
                fix='set "url": "http://host:8000/v1" (the part before /chat/completions)',
            )
        chosen = model or values.get("model") or ""
        if not isinstance(chosen, str) or not chosen:
            raise InvalidInputError(
                f"provider {name!r} needs a model and has no default one",
                field="model",
                fix=f'name the model in the spec, or set "model" in {where}',
            )
        return cls(
            name,
            url=url,
            model=chosen,
            api_key=_api_key(values.get("api_key_env"), f"{where}.api_key_env"),
            timeout_s=_number(values, "timeout_s", 60.0, where, low=0.001),
            connect_timeout_s=_number(values, "connect_timeout_s", 5.0, where, low=0.001),
            max_retries=int(_number(values, "max_retries", 3, where, low=0, high=10, whole=True)),
            backoff_s=_number(values, "backoff_s", 0.5, where, low=0.0, high=60.0),
            prices=_prices(values.get("prices"), f"{where}.prices"),
            headers=_headers(values.get("headers"), f"{where}.headers"),
            extra_body=_extra_body(options),
        )

    @property
    def identity(self) -> str:
        """What answers, for the response cache: the same model name on another server,
        or with other body extras, is another model."""
        extras = json.dumps(self.extra_body, sort_keys=True)
        return f"{self.name}|{self.url}|{self.model}|{extras}"

    def count_tokens(self, text: str) -> int:
        """An approximation (``approximate_tokens``): the server's tokenizer is not
        known here. Real counts come from the server's ``usage`` with each answer."""
        return approximate_tokens(text)

    def generate(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Generation:
        started = time.perf_counter()
        response = self._send(self._body(messages, params, stream=False))
        try:
            payload = response.json()
            choice = payload["choices"][0]
            text = choice["message"]["content"] or ""
            if not isinstance(text, str):
                raise TypeError("content is not text")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._bad_shape(exc) from None
        latency_ms = (time.perf_counter() - started) * 1000
        return self._finish(
            messages,
            params,
            text,
            payload.get("usage"),
            choice.get("finish_reason"),
            latency_ms=latency_ms,
            first_token_ms=latency_ms,
        )

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        *,
        passages: Sequence[Passage] = (),
    ) -> Iterator[Chunk]:
        started = time.perf_counter()
        body = self._body(messages, params, stream=True)
        response = self._send(body, stream=True)
        parts: list[str] = []
        usage: Any = None
        finish: Any = None
        first_token_ms: float | None = None
        events = 0
        try:
            for event in _events(response.iter_lines()):
                events += 1
                if "error" in event:
                    raise self._error_in_stream(len(parts))
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or ():
                    delta = (choice.get("delta") or {}).get("content")
                    finish = choice.get("finish_reason") or finish
                    if delta:
                        if first_token_ms is None:
                            first_token_ms = (time.perf_counter() - started) * 1000
                        parts.append(delta)
                        yield Chunk(text=delta)
        except httpx.HTTPError as exc:
            raise UnreachableError(
                self._clean(
                    f"provider {self.name!r} at {self.endpoint} broke off its stream after "
                    f"{len(parts)} piece(s): {type(exc).__name__}"
                ),
                field=f"STOA_PROVIDERS.{self.name}.url",
                fix="a stream is not retried once it has begun; try again",
            ) from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._bad_shape(exc) from None
        finally:
            response.close()
        if not events:  # a server that ignored stream=true, or not an SSE body at all
            raise self._bad_shape(ValueError("no server-sent events"))
        latency_ms = (time.perf_counter() - started) * 1000
        yield Chunk(
            final=self._finish(
                messages,
                params,
                "".join(parts),
                usage,
                finish,
                latency_ms=latency_ms,
                first_token_ms=first_token_ms,
            )
        )

    def close(self) -> None:
        self._http.close()

    # -- the request ---------------------------------------------------------

    def _body(
        self, messages: Sequence[Message], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.json_mode:
            body["response_format"] = {"type": "json_object"}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _send(self, body: dict[str, Any], *, stream: bool = False) -> httpx.Response:
        """The response once its status is 200, after the retries the policy allows."""
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                request = self._http.build_request("POST", self.endpoint, json=body)
                response = self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout):
                    last = "the connection timed out"
                else:
                    last = f"no answer within timeout_s={self.timeout_s:g} s"
            except httpx.TransportError as exc:
                last = f"the connection failed ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    return response
                response.read()
                response.close()
                if response.status_code not in _RETRIED_STATUS:
                    raise self._refused(response)
                last = f"HTTP {response.status_code}"
                wait = _retry_after(response.headers.get("retry-after"))
            if attempt < attempts:
                time.sleep(wait if wait is not None else self._backoff(attempt))
        raise UnreachableError(
            self._clean(
                f"provider {self.name!r} at {self.endpoint} failed after {attempts} "
                f"attempt(s); the last: {last}"
            ),
            field=f"STOA_PROVIDERS.{self.name}.url",
            fix="check that the server is up and not overloaded, or raise max_retries/timeout_s",
        )

    def _backoff(self, attempt: int) -> float:
        """Exponential with jitter, so many clients a server refused do not return in step."""
        return min(BACKOFF_CAP_S, self.backoff_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    # -- the answer ----------------------------------------------------------

    def _finish(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        text: str,
        reported: Any,
        finish: Any,
        *,
        latency_ms: float,
        first_token_ms: float | None,
    ) -> Generation:
        try:
            prompt = int(reported["prompt_tokens"])
            completion = int(reported["completion_tokens"])
            estimated = False
        except (TypeError, KeyError, ValueError):
            prompt = sum(approximate_tokens(m.content) for m in messages)
            completion = approximate_tokens(text)
            estimated = True
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=latency_ms,
            first_token_ms=first_token_ms,
            cost_usd=token_cost(self.prices, self.model, prompt, completion),
            tokens_estimated=estimated,
        )
        return Generation(
            text=snap_to_choices(text, params.choices),
            usage=usage,
            provider=self.name,
            model=self.model,
            finish_reason="length" if finish == "length" else "stop",
        )

    # -- errors --------------------------------------------------------------

    def _clean(self, text: str) -> str:
        """Printable, short, and without the key, whatever the server put in it."""
        text = _UNPRINTABLE.sub(" ", text)
        if self._key:
            text = text.replace(self._key, "***")
        return text

    def _refused(self, response: httpx.Response) -> StoaError:
        # Only the status: what a server answers is never echoed into an error (it may
        # hold a prompt, a key it was sent, or anything an attacker made it say).
        status = response.status_code
        if status in (401, 403):
            return ConfigurationError(
                f"provider {self.name!r} at {self.endpoint} refused the key: HTTP {status}",
                field=f"STOA_PROVIDERS.{self.name}.api_key_env",
                fix="check the key in the variable api_key_env names",
            )
        return RefusedError(
            f"provider {self.name!r} at {self.endpoint} refused the request "
            f"(model {self.model!r}): HTTP {status}",
            field="model" if status == 404 else "params",
            fix="not retried: the same request would be refused again; "
            "check the model name and the params",
        )

    def _error_in_stream(self, pieces: int) -> StoaError:
        return UnreachableError(
            f"provider {self.name!r} at {self.endpoint} reported an error in its stream "
            f"after {pieces} piece(s)",
            field=f"STOA_PROVIDERS.{self.name}.url",
            fix="see the server's own logs",
        )

    def _bad_shape(self, exc: Exception) -> StoaError:
        return UnreachableError(
            f"provider {self.name!r} at {self.endpoint} answered with something that is not "
            f"a chat completion ({type(exc).__name__})",
            field=f"STOA_PROVIDERS.{self.name}.url",
            fix="check that the URL points at an OpenAI-compatible /v1 base",
        )


def snap_to_choices(text: str, choices: Sequence[str]) -> str:
    """The label a free-text answer means: the same text ignoring case and surrounding
    punctuation, else the label that appears first in it. None found: the text as it
    was, so the caller sees the model missed and decides (``llm_prompt`` scores it wrong).
    """
    if not choices:
        return text
    bare = text.strip().strip(".!\"'`*").strip()
    for choice in choices:
        if bare.casefold() == choice.casefold():
            return choice
    lowered = text.casefold()
    found = []
    for choice in choices:
        match = re.search(rf"(?<!\w){re.escape(choice.casefold())}(?!\w)", lowered)
        if match:
            found.append((match.start(), -len(choice), choice))
    return min(found)[2] if found else text


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Server-sent events' ``data:`` payloads, parsed, up to ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, event: names
        data = line[5:].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if not isinstance(event, dict):
            raise TypeError("an event is not a JSON object")
        yield event


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header, capped; an HTTP date is ignored (backoff)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP_S)


def _api_key(variable: Any, field: str) -> str | None:
    """Read once, when the provider is built, from the variable the settings name."""
    if variable is None:
        return None
    if not isinstance(variable, str) or not variable:
        raise ConfigurationError("must name an environment variable", field=field)
    key = os.environ.get(variable)
    if not key:
        raise ConfigurationError(
            f"the environment variable {variable} is not set",
            field=field,
            fix=f"export {variable}=… in the environment Stoa runs in",
        )
    return key


def _number(
    values: Mapping[str, Any],
    key: str,
    default: float,
    where: str,
    *,
    low: float,
    high: float = 3600.0,
    whole: bool = False,
) -> float:
    value = values.get(key, default)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise ConfigurationError(f"must be {kind} from {low:g} to {high:g}", field=f"{where}.{key}")
    return float(value)


def _prices(values: Any, field: str) -> dict[str, tuple[float, float]]:
    try:
        return parse_prices(values, field=field)
    except InvalidInputError as exc:
        raise ConfigurationError(exc.message, field=exc.field, fix=exc.fix) from None


def _headers(values: Any, field: str) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise ConfigurationError("must map header names to text", field=field)
    if any(k.lower() == "authorization" for k in values):
        # Settings are shown in places a key must not be: it belongs in api_key_env.
        raise ConfigurationError(
            "must not carry the Authorization header",
            field=field,
            fix="put the key in an environment variable and name it in api_key_env",
        )
    return dict(values)


def _extra_body(options: Mapping[str, Any]) -> dict[str, Any]:
    """Spec options: only body extras, never a key Stoa sets (model, messages, params)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InvalidInputError(
            f"unknown option(s) {', '.join(unknown)} for an openai provider",
            field="options",
            fix=f"use only {', '.join(OPTIONS)}; URLs, keys and timeouts live in STOA_PROVIDERS",
        )
    extra = options.get("extra_body") or {}
    if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
        raise InvalidInputError("must be an object", field="options.extra_body")
    clash = sorted(RESERVED_BODY & set(extra))
    if clash:
        raise InvalidInputError(
            f"cannot set {', '.join(clash)}: Stoa writes these from the spec and params",
            field="options.extra_body",
            fix="set them as the model or params instead",
        )
    try:
        json.dumps(extra)
    except (TypeError, ValueError):
        raise InvalidInputError("must be plain JSON", field="options.extra_body") from None
    return dict(extra)
