"""Small real artifacts that tests write on the fly; nothing binary is committed."""

import json
import struct
from pathlib import Path
from typing import Any


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


#: A five-step support solution over a ``tickets@champion`` classifier
#: (``ticket_classifier``): rules, classify with a routing threshold, and three responds.
SUPPORT_SPEC = """\
name: support
steps:
  - id: policy
    kind: rules
    rules:
      - when: 'input.text.contains("password") && input.text.contains("send")'
        reject: We never ask for your password.
      - when: size(input.text) > 60
        tag: long
      - when: input.text == "hi"
        respond: "Hello {{ input.text }}! How can I help?"
  - id: intent
    kind: classify
    model: tickets@champion
    thresholds:
      - below: 0.45
        route: human
  - id: canned
    kind: respond
    when: intent.label == "account"
    template: "Reset it under Settings > Security."
  - id: final
    kind: respond
    data: {label: intent.label, tags: tags}
    template: "Routing your {{ intent.label }} question."
  - id: human
    kind: respond
    status: handoff
    template: A colleague will answer shortly.
"""


def ticket_classifier() -> Any:
    """A real TF-IDF + logistic-regression classifier of three support intents."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = ["reset my password", "forgot my password", "locked out of my account",
             "refund my order", "charged twice", "invoice is wrong",
             "app crashes on start", "error when saving", "button does nothing"] * 4  # fmt: skip
    labels = (["account"] * 3 + ["billing"] * 3 + ["bug"] * 3) * 4
    return make_pipeline(TfidfVectorizer(), LogisticRegression(C=10)).fit(texts, labels)
