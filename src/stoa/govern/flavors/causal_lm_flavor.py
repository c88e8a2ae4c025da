"""Decoder language models: a GGUF file, or a Hugging Face folder with safetensors weights.

Stoa never saves an LLM from a live object (it registers the files a model ships as),
so ``matches`` is always False. A GGUF file carries no code but its chat templates,
which the GGUF scanner checks before the gate allows it; a Hugging Face folder is
accepted only with safetensors weights, so loading it never unpickles anything.
Both load with transformers (a GGUF is de-quantized to the dtype asked for); the
``local`` provider (``stoa.develop.llm.local``) is what runs them.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stoa.core.errors import InvalidInputError

#: GGUF architectures that are encoders or other non-generative models.
_NOT_DECODERS = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "neo-bert", "modern-bert",
     "t5encoder", "clip", "whisper", "wavtokenizer-dec", "clip-vision"}
)  # fmt: skip
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
#: Weight files that are pickles (or may be): a folder with any of them is not ours.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class CausalLM:
    """A loaded decoder model, its tokenizer, and what it was loaded from."""

    model: Any
    tokenizer: Any
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def context_length(self) -> int:
        value = self.source.get("context_length")
        return (
            int(value)
            if value
            else int(getattr(self.model.config, "max_position_embeddings", 2048))
        )


# GGUF value types: scalar struct codes; 8 is a string, 9 an array.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
                 12: "d"}  # fmt: skip
_KEPT = ("general.architecture", "general.license", "general.name", "tokenizer.ggml.model")


class _GgufHeader:
    """A forward-only reader of a GGUF header: the few strings and numbers the spec
    needs, every other value (the vocabulary arrays) skipped unread, tensor data never
    touched. The gate's scanner has already checked the header strictly."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def unpack(self, code: str) -> Any:
        size = struct.calcsize("<" + code)
        data = self.stream.read(size)
        if len(data) != size:
            raise ValueError("truncated GGUF header")
        return struct.unpack("<" + code, data)[0]

    def string(self, keep: bool) -> str | None:
        length = self.unpack("Q")
        if not keep or length > 1 << 20:
            self.stream.seek(length, 1)
            return None
        return self.stream.read(length).decode("utf-8", "replace")

    def value(self, kind: int, keep: bool) -> Any:
        if kind == 8:
            return self.string(keep)
        if kind == 9:
            inner, count = self.unpack("I"), self.unpack("Q")
            if inner in _GGUF_SCALARS:
                self.stream.seek(count * struct.calcsize(_GGUF_SCALARS[inner]), 1)
            else:
                for _ in range(count):
                    self.value(inner, False)
            return None
        return self.unpack(_GGUF_SCALARS[kind])


def gguf_metadata(path: Path) -> dict[str, Any] | None:
    """What a GGUF says about itself (architecture, tokenizer, template, size), or None
    when it is not a GGUF this reader can parse."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    values: dict[str, Any] = {}
    parameters = weight_bytes = 0
    try:
        with open(path, "rb") as handle:
            reader = _GgufHeader(io.BufferedReader(handle, 1 << 16))  # type: ignore[arg-type]
            if reader.stream.read(4) != b"GGUF" or reader.unpack("I") not in (2, 3):
                return None
            tensors, count = reader.unpack("Q"), reader.unpack("Q")
            for _ in range(count):
                key = reader.string(True) or ""
                kind = reader.unpack("I")
                keep = key in _KEPT or key.endswith(".context_length")
                value = reader.value(kind, keep)
                if key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template."):
                    values["chat_template"] = True
                elif keep:
                    values[key] = value
            for _ in range(tensors):
                reader.string(False)
                dims = [reader.unpack("Q") for _ in range(reader.unpack("I"))]
                block, size = GGML_QUANT_SIZES[GGMLQuantizationType(reader.unpack("I"))]
                reader.unpack("Q")  # offset
                elements = math.prod(dims)
                parameters += elements
                weight_bytes += elements // block * size
    except (OSError, ValueError, KeyError, struct.error):
        return None
    arch = values.get("general.architecture")
    if not isinstance(arch, str):
        return None
    return {
        "format": "gguf",
        "architecture": arch,
        "context_length": values.get(f"{arch}.context_length"),
        "parameters": parameters,
        "weight_bytes": weight_bytes,
        "tokenizer": values.get("tokenizer.ggml.model"),
        "chat_template": bool(values.get("chat_template")),
        "license": values.get("general.license"),
        "name": values.get("general.name"),
    }


def _hf_config(path: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _hf_chat_template(path: Path) -> bool:
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def hf_metadata(path: Path) -> dict[str, Any] | None:
    """The same description for a Hugging Face folder, or None when it is not a decoder
    LM saved with safetensors weights and a tokenizer."""
    if not path.is_dir():
        return None
    config = _hf_config(path)
    if config is None:
        return None
    architectures = config.get("architectures") or []
    if not any(isinstance(a, str) and a.endswith("ForCausalLM") for a in architectures):
        return None
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        return None
    files = [p for p in path.rglob("*") if p.is_file()]
    if not any(p.suffix == ".safetensors" for p in files):
        return None
    if any(p.suffix in _PICKLE_SUFFIXES for p in files):
        return None
    return {
        "format": "hf",
        "architecture": architectures[0],
        "context_length": config.get("max_position_embeddings"),
        "chat_template": _hf_chat_template(path),
    }


def describe(path: Path) -> dict[str, Any] | None:
    """The spec worth recording for a causal-LM artifact, or None when it is not one."""
    if path.is_dir():
        return hf_metadata(path)
    meta = gguf_metadata(path)
    if meta is None or meta["architecture"] in _NOT_DECODERS or not meta["tokenizer"]:
        return None
    return {k: v for k, v in meta.items() if k not in ("license", "name")}


class CausalLMFlavor:
    name = "causal-lm"

    def matches(self, obj: Any) -> bool:
        return False

    def matches_path(self, path: Path, fmt: str) -> bool:
        if path.is_dir():
            return hf_metadata(path) is not None
        return fmt == "gguf" and describe(path) is not None

    def describe(self, path: Path) -> dict[str, Any]:
        """The spec to record at registration (format, architecture, context length,
        parameter count, whether a chat template is present)."""
        return describe(path) or {}

    def save(self, obj: Any, folder: Path) -> tuple[Path, dict[str, Any]]:
        raise InvalidInputError(
            "Stoa does not save language models from live objects",
            field="model",
            fix="save it as a GGUF file or a safetensors folder and `stoa models register` it",
        )

    def load(self, path: Path, spec: dict[str, Any], *, dtype: str = "float32") -> CausalLM:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # Loading is Stoa's step, with its own progress; transformers' per-tensor bars
        # would interleave with a command's output.
        hf_logging.disable_progress_bar()
        torch_dtype = getattr(torch, dtype)
        if path.is_dir():
            source = hf_metadata(path) or {"format": "hf"}
            kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=torch_dtype, use_safetensors=True, **kwargs
            )
        else:
            # transformers reads any file name (the registry materializes "artifact.bin").
            source = describe(path) or {"format": "gguf"}
            # transformers draws its GGUF de-quantizing bar with tqdm directly, on stderr.
            with contextlib.redirect_stderr(io.StringIO()):
                tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
                model = AutoModelForCausalLM.from_pretrained(
                    path.parent, gguf_file=path.name, dtype=torch_dtype
                )
        model.eval()
        source = {**spec, **source, "dtype": dtype}
        source.setdefault("parameters", sum(p.numel() for p in model.parameters()))
        return CausalLM(model=model, tokenizer=tokenizer, source=source)
