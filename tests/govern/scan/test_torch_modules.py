"""``torch.save(model)`` of a whole ``nn.Module``: torch's own classes, rebuilt from their
state, are allowed; a name nobody vetted blocks as ``unknown-global``, not ``malicious``."""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import pkgutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from stoa.core.errors import InvalidInputError
from stoa.govern.scan import scan_paths
from stoa.govern.scan.findings import FileReport
from stoa.govern.scan.policy import default_policy, load_policy
from stoa.govern.scan.scan_gate import ScanGate

MODULES: dict[str, Callable[[], nn.Module]] = {
    "linear": lambda: nn.Linear(4, 2),
    "mlp": lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
    "cnn": lambda: nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.MaxPool2d(2), nn.Dropout(), nn.Flatten()
    ),
    "rnn": lambda: nn.ModuleList(
        [nn.LSTM(3, 4), nn.GRU(3, 4), nn.Embedding(5, 3), nn.LayerNorm(3)]
    ),
    "encoder": lambda: nn.TransformerEncoderLayer(8, 2, 16),  # stores F.relu
    "encoder-gelu": lambda: nn.TransformerEncoderLayer(8, 2, 16, activation="gelu"),
    "params": lambda: nn.ParameterList([nn.Parameter(torch.zeros(2))]),
}


def blocking(file: FileReport) -> list[str]:
    return [f"{f.reason}: {f.message}" for f in file.findings if f.blocks]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("name", list(MODULES))
def test_torch_save_of_a_whole_nn_module_is_allowed(tmp_path: Path, name: str, legacy: bool):
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pt"
    torch.save(MODULES[name](), path, _use_new_zipfile_serialization=not legacy)
    [file] = scan_paths([path]).files
    expected = "torch-legacy" if legacy else "pytorch-zip"
    assert (file.format, file.verdict) == (expected, "allowed"), blocking(file)


def test_every_public_nn_module_class_is_on_the_default_allowlist():
    """The policy lists torch.nn's classes by name (no wildcards): check it against the
    installed torch, so an upgrade that adds a layer says so here."""
    expected = set()
    for info in pkgutil.iter_modules(nn.modules.__path__, "torch.nn.modules."):
        for cls in vars(importlib.import_module(info.name)).values():
            if (
                inspect.isclass(cls)
                and issubclass(cls, nn.Module)
                and cls.__module__ == info.name
                and not cls.__qualname__.startswith("_")
            ):
                expected.add((cls.__module__, cls.__qualname__))
    assert ("torch.nn.modules.linear", "Linear") in expected
    assert expected - default_policy().pickle_allow == set()


def test_a_module_class_from_outside_torch_is_an_unknown_global(tmp_path: Path):
    data = torch_zip_with(_module_pickle("acme.layers", "Fancy"))
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    [file] = scan_paths([path]).files
    assert (file.verdict, file.reason) == ("blocked", "unknown-global"), blocking(file)
    [finding] = [f for f in file.findings if f.blocks]
    assert (finding.rule, finding.severity) == ("pickle-global", "high")
    assert "imports acme.layers.Fancy, which the scan policy does not allow" in finding.message
    # The registry blocks it outright: no pending review, nothing unknown gets through.
    verdict = ScanGate().check(path)
    assert (verdict.verdict, verdict.status) == ("blocked", "blocked")


def test_malicious_stays_for_names_known_to_run_code(tmp_path: Path):
    path = tmp_path / "both.pkl"
    # An unknown class, then os.system: the file's reason is the more serious one.
    path.write_bytes(b"cacme.layers\nFancy\n)R0cos\nsystem\n(S'id'\ntR.")
    [file] = scan_paths([path]).files
    reasons = {
        name: [f.reason for f in file.findings if f.blocks and f" {name}" in f.message]
        for name in ("acme.layers.Fancy", "os.system")
    }
    assert reasons == {"acme.layers.Fancy": ["unknown-global"], "os.system": ["malicious"]}
    assert file.reason == "malicious"


def test_the_policy_can_send_unknown_globals_to_review(tmp_path: Path):
    policy_file = tmp_path / "review.yaml"
    policy_file.write_text("version: r/1\npickle: {unknown_globals: review}\n")
    policy = load_policy(policy_file)
    path = tmp_path / "model.pt"
    path.write_bytes(torch_zip_with(_module_pickle("acme.layers", "Fancy")))
    [file] = scan_paths([path], policy).files
    assert (file.verdict, file.reason) == ("blocked", "unknown-global")  # still fails closed
    [finding] = [f for f in file.findings if f.blocks]
    assert (finding.rule, finding.severity) == ("unknown-global-review", "medium")
    assert "needs a person's review" in finding.message
    # A known-dangerous name is never a matter for review.
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    [file] = scan_paths([evil], policy).files
    assert file.reason == "malicious"
    assert {f.rule for f in file.findings if f.blocks} == {"pickle-global"}
    policy_file.write_text("version: r/1\npickle: {unknown_globals: allow}\n")
    with pytest.raises(InvalidInputError, match="unknown_globals must be one of review, block"):
        load_policy(policy_file)


def test_a_zip_header_is_never_read_as_a_pickle_polyglot(tmp_path: Path):
    """A file that starts with a zip's local header is a zip to torch.load, and pickle.load
    refuses its first byte ("P" is PERSID). Whatever the member names spell after that,
    nothing runs, so nothing is reported."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a\ncollections\nOrderedDict\n)R.", b"plain text\n")
    path = tmp_path / "archive.zip"
    path.write_bytes(out.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        pickle.loads(path.read_bytes())  # calls only OrderedDict() if it ever got that far
    [file] = scan_paths([path]).files
    assert file.verdict == "allowed", blocking(file)


def _module_pickle(module: str, name: str) -> bytes:
    """What torch.save writes for a module: NEWOBJ of its class, then BUILD of its state."""
    return (
        b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81}X\x08\x00\x00\x00trainingq\x00"
        b"\x88sb."
    )


def torch_zip_with(data_pkl: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("model/data.pkl", data_pkl)
        archive.writestr("model/byteorder", "little")
        archive.writestr("model/version", "3\n")
    return out.getvalue()


def test_an_unknown_global_under_a_review_policy_waits_for_an_admin(tmp_path: Path):
    from stoa.client import LocalClient
    from stoa.core.settings import Settings
    from stoa.govern.scan.scan_gate import ScanGate

    policy_file = tmp_path / "review.yaml"
    policy_file.write_text("version: r/1\npickle: {unknown_globals: review}\n")
    gate = ScanGate(load_policy(policy_file))
    client = LocalClient(settings=Settings(home=tmp_path / "h"), gate=gate)
    path = tmp_path / "model.pt"
    path.write_bytes(torch_zip_with(_module_pickle("acme.layers", "Fancy")))
    held = client.models.register("fancy", path)
    assert held.status == "pending", held.findings
    assert client.models.approve("fancy@1", note="our own layer").status == "allowed"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'id'\ntR.")
    assert client.models.register("evil", evil).status == "blocked"  # never a review
    client.close()
