"""The local provider on the packaged SmolLM2-135M-Instruct GGUF, loaded once."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from stoa.core.errors import InvalidInputError, RefusedError
from stoa.develop.llm.cost import cpu_cost
from stoa.develop.llm.local import LocalProvider, packaged_gguf, parse_options
from stoa.develop.llm.provider import GenerationParams, Message, collect
from stoa.govern.flavors.causal_lm_flavor import CausalLM

pytestmark = pytest.mark.slow

FRANCE = [Message(role="user", content="What is the capital of France?")]
RATE = 0.36  # USD per CPU-hour: 0.0001 per CPU-second


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from stoa.client import LocalClient
    from stoa.core.settings import Settings

    home = tmp_path_factory.mktemp("local-provider") / "home"
    c = LocalClient(settings=Settings(home=home), actor="tester")
    info = c.models.register("smollm2", packaged_gguf())
    assert (info.status, info.flavor) == ("allowed", "causal-lm"), info.findings
    yield c
    c.close()


@pytest.fixture(scope="module")
def provider(client) -> LocalProvider:
    loaded = LocalProvider.from_registry(client.stores.registry, "smollm2", {}, cpu_hour_usd=RATE)
    assert isinstance(loaded, LocalProvider)
    return loaded


def test_generate_answers_and_counts_its_tokens(provider: LocalProvider) -> None:
    out = provider.generate(FRANCE, GenerationParams(max_tokens=12))
    assert "Paris" in out.text
    assert (out.provider, out.model) == ("local", "smollm2@1")
    usage = out.usage
    assert usage.prompt_tokens == len(provider.prompt_ids(FRANCE))
    assert usage.completion_tokens == provider.count_tokens(out.text)
    assert 0 < usage.first_token_ms <= usage.latency_ms
    assert usage.cpu_seconds > 0
    assert usage.cost_usd == pytest.approx(cpu_cost(usage.cpu_seconds, RATE))


def test_stream_deltas_join_to_the_final_text(provider: LocalProvider) -> None:
    chunks = list(provider.stream(FRANCE, GenerationParams(max_tokens=8)))
    deltas = [c.text for c in chunks if c.final is None]
    assert len(deltas) >= 3 and chunks[-1].final is not None
    assert "".join(deltas) == chunks[-1].final.text


def test_max_tokens_ends_with_finish_reason_length(provider: LocalProvider) -> None:
    out = provider.generate(FRANCE, GenerationParams(max_tokens=3))
    assert (out.finish_reason, out.usage.completion_tokens) == ("length", 3)


def test_stop_strings_cut_the_answer_and_never_leak_into_the_stream(
    provider: LocalProvider,
) -> None:
    params = GenerationParams(max_tokens=12, stop=(" is",))
    chunks = list(provider.stream(FRANCE, params))
    final = chunks[-1].final
    assert final.text == "The capital of France" and final.finish_reason == "stop"
    assert "".join(c.text for c in chunks[:-1]) == final.text


def test_sampling_is_seeded_and_leaves_the_callers_rng_alone(provider: LocalProvider) -> None:
    import torch

    torch.manual_seed(0)
    before = torch.get_rng_state()
    params = GenerationParams(max_tokens=4, temperature=1.2, seed=7)
    first, second = (provider.generate(FRANCE, params).text for _ in range(2))
    assert first == second
    assert torch.equal(before, torch.get_rng_state())


def test_choices_pick_one_and_scores_are_a_distribution(provider: LocalProvider) -> None:
    choices = ("London", "Paris", "Berlin")
    out = provider.generate(FRANCE, GenerationParams(choices=choices))
    assert out.text == "Paris"
    probs = provider.score_choices(FRANCE, choices)
    assert sum(probs) == pytest.approx(1.0)
    assert max(range(3), key=probs.__getitem__) == 1
    with pytest.raises(InvalidInputError, match="choices must be 1 to 64 non-empty strings"):
        provider.score_choices(FRANCE, ["yes", ""])


def test_a_model_without_chat_template_is_refused(provider: LocalProvider) -> None:
    tokenizer = copy.copy(provider.lm.tokenizer)
    tokenizer.chat_template = None
    bare = LocalProvider(CausalLM(provider.lm.model, tokenizer), model="bare:1")
    with pytest.raises(InvalidInputError, match="bare:1 has no chat template") as e:
        collect(bare.stream(FRANCE, GenerationParams()))
    assert e.value.field == "model"


def test_pending_blocked_and_wrong_flavor_models_are_refused(client, tmp_path: Path) -> None:
    registry = client.stores.registry
    # The GGUF says apache-2.0: declaring MIT sends it to review.
    held = client.models.register("held", packaged_gguf(), license="MIT")
    assert held.status == "pending"
    with pytest.raises(RefusedError, match="held@1 is pending"):
        LocalProvider.from_registry(registry, "held", {})

    from tests.govern.scan.corpus import SSTI_TEMPLATE, write_gguf

    write_gguf(SSTI_TEMPLATE)(tmp_path / "evil.gguf")
    evil = client.models.register("evil", tmp_path / "evil.gguf")
    assert evil.status == "blocked"
    with pytest.raises(RefusedError, match="evil@1 is blocked"):
        LocalProvider.from_registry(registry, "evil", {})

    from sklearn.linear_model import LogisticRegression

    client.models.log("clf", LogisticRegression().fit([[0.0], [1.0]], [0, 1]), license="MIT")
    with pytest.raises(InvalidInputError, match="clf@1 is a sklearn model, not a causal-lm") as e:
        LocalProvider.from_registry(registry, "clf", {})
    assert e.value.field == "model"


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"colour": "red"}, "options.colour", "unknown local provider option 'colour'"),
        ({"dtype": "float16"}, "options.dtype", "dtype 'float16' is not supported"),
        ({"backend": "vllm"}, "options.backend", "backend 'vllm' is not supported"),
        ({"threads": 0}, "options.threads", "threads must be a positive integer"),
    ],
)
def test_bad_options_name_the_field(options: dict, field: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as e:
        parse_options(options)
    assert e.value.field == field


def test_the_llama_cpp_backend_says_how_to_install_it(client) -> None:
    import importlib.util

    from stoa.core.errors import ConfigurationError

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    with pytest.raises(ConfigurationError, match="needs llama-cpp-python") as e:
        LocalProvider.from_registry(client.stores.registry, "smollm2", {"backend": "llama.cpp"})
    assert "pip install 'stoa[llamacpp]'" in e.value.fix
