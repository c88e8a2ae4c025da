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
