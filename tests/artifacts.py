"""Small real artifacts that tests write on the fly; nothing binary is committed."""

import json
import struct
from pathlib import Path


def safetensors_bytes(value: float = 1.0) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + struct.pack("<f", value)


def write_safetensors(path: Path, value: float = 1.0) -> Path:
    """A valid one-tensor safetensors file whose bytes differ with ``value``."""
    path.write_bytes(safetensors_bytes(value))
    return path


def folder_model(root: Path, vocab_name: str = "vocab.txt", value: float = 2.0) -> Path:
    """A folder model as a hub would ship it: safetensors weights plus JSON and text files."""
    folder = root / "encoder"
    (folder / "tokenizer").mkdir(parents=True)
    write_safetensors(folder / "model.safetensors", value)
    (folder / "config.json").write_text('{"hidden_size": 1}')
    (folder / "tokenizer" / vocab_name).write_text("hello\nworld\n")
    return folder


def malicious_pickle() -> bytes:
    """A protocol 2 pickle that would run ``os.system('echo pwned')`` when loaded.

    Assembled from opcodes so that producing it never needs a dangerous object.
    """
    return b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
