"""The causal-lm flavor: GGUF files and safetensors folders through the real gate."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.llm.local import packaged_gguf
from stoa.govern.flavors import flavor_for_path
from stoa.govern.flavors.causal_lm_flavor import CausalLMFlavor, describe
from stoa.govern.formats import detect_format
from tests.govern.scan.corpus import SSTI_TEMPLATE

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def write_gguf(path: Path, *, arch: str = "llama", template: str | None = CHATML,
               tokenizer: bool = True) -> Path:  # fmt: skip
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_license("apache-2.0")
    writer.add_context_length(512)
    if tokenizer:
        writer.add_tokenizer_model("gpt2")
        writer.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "hello"])
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((3, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_hf_folder(folder: Path) -> Path:
    """A tiny, real LlamaForCausalLM with a word-level tokenizer and a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "hello", "world"])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = CHATML
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_packaged_gguf_registers_as_an_allowed_causal_lm(sqlite_client) -> None:
    info = sqlite_client.models.register("smollm2", packaged_gguf())
    assert (info.flavor, info.status, info.format) == ("causal-lm", "allowed", "gguf")
    # general.license in the GGUF's metadata is the licence recorded.
    assert info.license == "Apache-2.0"
    spec = describe(packaged_gguf())
    assert spec == {
        "format": "gguf",
        "architecture": "llama",
        "context_length": 8192,
        "parameters": 134_515_008,
        "weight_bytes": 96_576_768,
        "tokenizer": "gpt2",
        "chat_template": True,
    }
    assert info.spec == spec  # recorded with the version at registration


def test_a_gguf_with_a_malicious_chat_template_is_blocked(sqlite_client, tmp_path) -> None:
    path = write_gguf(tmp_path / "evil.gguf", template=SSTI_TEMPLATE)
    assert CausalLMFlavor().matches_path(path, "gguf")  # a decoder, yet never loadable
    info = sqlite_client.models.register("evil", path)
    assert info.status == "blocked" and info.flavor is None
    assert any("sandbox" in f["message"] or "__" in f["message"] for f in info.findings)


def test_ggufs_that_are_not_decoder_lms(tmp_path) -> None:
    decoder = write_gguf(tmp_path / "ok.gguf")
    no_template = write_gguf(tmp_path / "plain.gguf", template=None)
    encoder = write_gguf(tmp_path / "bert.gguf", arch="bert")
    no_tokenizer = write_gguf(tmp_path / "bare.gguf", tokenizer=False)
    assert flavor_for_path(decoder, detect_format(decoder)) == "causal-lm"
    # A base model without a template is still a causal LM; the spec says it cannot chat.
    assert describe(no_template)["chat_template"] is False
    assert flavor_for_path(encoder, "gguf") is None
    assert flavor_for_path(no_tokenizer, "gguf") is None
    # The format comes from the gate, never the file name.
    assert not CausalLMFlavor().matches_path(decoder, "pickle")


def test_a_safetensors_folder_is_a_causal_lm_and_loads(sqlite_client, tmp_path) -> None:
    folder = write_hf_folder(tmp_path / "tiny")
    assert describe(folder) == {
        "format": "hf",
        "architecture": "LlamaForCausalLM",
        "context_length": 64,
        "chat_template": True,
    }
    info = sqlite_client.models.register("tiny", folder, license="MIT")
    assert (info.flavor, info.status) == ("causal-lm", "allowed"), info.findings
    lm = sqlite_client.models.load(info.ref)
    assert type(lm.model).__name__ == "LlamaForCausalLM" and lm.chat_template
    assert lm.source["format"] == "hf" and lm.context_length == 64


def test_folders_with_pickled_weights_or_no_tokenizer_are_not_causal_lms(tmp_path) -> None:
    folder = write_hf_folder(tmp_path / "tiny")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    assert not CausalLMFlavor().matches_path(folder, "folder")
    (folder / "pytorch_model.bin").unlink()
    (folder / "tokenizer.json").unlink()
    assert not CausalLMFlavor().matches_path(folder, "folder")
    encoder = write_hf_folder(tmp_path / "enc")
    config = json.loads((encoder / "config.json").read_text())
    (encoder / "config.json").write_text(json.dumps({**config, "architectures": ["BertModel"]}))
    assert not CausalLMFlavor().matches_path(encoder, "folder")


def test_live_objects_are_never_saved_as_causal_lms() -> None:
    flavor = CausalLMFlavor()
    assert not flavor.matches(object())
    with pytest.raises(InvalidInputError, match="does not save language models") as e:
        flavor.save(object(), Path("."))
    assert e.value.field == "model"
