"""Bypasses a red-team review found, each kept as a test so it stays closed.

Every payload here names ``os.system`` but is only scanned, never loaded.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

from stoa.govern.scan import scan_paths


def su(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def g(module: str, name: str) -> bytes:
    return su(module) + su(name) + b"\x93"


def scan_bytes(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    [file] = scan_paths([path]).files
    return file


def test_inst_in_text_counts_as_a_call(tmp_path):
    file = scan_bytes(tmp_path, "notes.txt", b"(S'text'\nimypkg\ntouch\n")  # no STOP
    assert (file.format, file.verdict) == ("pickle", "blocked")
    assert any("mypkg.touch" in f.message for f in file.findings)


def test_inst_after_a_gif_header_is_a_polyglot(tmp_path):
    data = b"GIF89a\x01\x00\x01" + b"(S'gif'\nimypkg\ntouch\n" + b"\x00;"
    file = scan_bytes(tmp_path, "cat.gif", data)
    assert file.verdict == "blocked"
    assert {"pickle-polyglot", "pickle-global"} <= {f.rule for f in file.findings}


def _hidden_payload() -> bytes:
    return b"0" + g("os", "system") + su("id") + b"\x85R."


def _wrapper_state(dtype_state: bytes) -> bytes:
    dtype = g("numpy", "dtype") + su("u1") + b"\x89\x88\x87R" + dtype_state
    return (
        b"}(" + su("subclass") + g("numpy", "ndarray") + su("shape") + b"K\x05\x85"
        + su("order") + su("C") + su("dtype") + dtype + su("allow_mmap") + b"\x89u"
    )  # fmt: skip


def test_a_joblib_wrapper_built_through_reconstructor_is_refused(tmp_path):
    payload = _hidden_payload()
    wrapper = g("copyreg", "_reconstructor") + g("joblib.numpy_pickle", "NumpyArrayWrapper")
    wrapper += g("builtins", "object") + b"N\x87R"
    data = b"\x80\x04" + wrapper + _wrapper_state(b"") + b"b"
    data += b"B" + struct.pack("<I", len(payload)) + payload + b"."
    file = scan_bytes(tmp_path, "model.joblib", data)
    assert (file.verdict, file.reason) == ("blocked", "parse-error")
    assert any("NumpyArrayWrapper is built in a way" in f.message for f in file.findings)


def test_a_joblib_dtype_state_cannot_change_a_number_s_size(tmp_path):
    # NumPy ignores a state element size of 2 for u1: joblib reads 5 bytes, not 10.
    payload = _hidden_payload()
    state = b"(K\x03" + su("|") + b"NNNK\x02K\x01K\x00tb"
    wrapper = g("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81"
    # No numpy_array_alignment_bytes key, so no padding byte: the array starts right here.
    data = b"\x80\x04" + wrapper + _wrapper_state(state) + b"b"
    data += b"B" + struct.pack("<I", len(payload)) + payload + b"."
    file = scan_bytes(tmp_path, "model.joblib", data)
    assert file.verdict == "blocked"
    assert any("os.system" in f.message for f in file.findings), file.findings


def test_a_torch_zip_saved_as_data_pt_has_its_pickle_scanned(tmp_path):
    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "data.pt")
    with zipfile.ZipFile(tmp_path / "data.pt") as src:
        names = src.namelist()
        assert "data/data.pkl" in names
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for name in names:
                evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R."
                dst.writestr(name, evil if name == "data/data.pkl" else src.read(name))
    file = scan_bytes(tmp_path, "evil.pt", out.getvalue())
    assert (file.format, file.verdict, file.reason) == ("pytorch-zip", "blocked", "malicious")
    clean = scan_paths([tmp_path / "data.pt"]).files[0]
    assert clean.verdict == "allowed", clean.findings


def test_the_real_joblib_formats_still_pass(tmp_path):
    import joblib
    import numpy as np

    value = {"u1": np.arange(5, dtype=np.uint8), "s": np.array([b"ab", b"c"]), "u": ["x"]}
    joblib.dump(value, tmp_path / "v.joblib")
    assert scan_paths([tmp_path / "v.joblib"]).files[0].verdict == "allowed"


def test_the_legacy_torch_tar_layout_is_refused_even_when_clean(tmp_path):
    import tarfile

    members = {"sys_info": pickle.dumps({"little_endian": True}), "pickle": pickle.dumps({}),
               "storages": pickle.dumps(0), "tensors": pickle.dumps(0)}  # fmt: skip
    with tarfile.open(tmp_path / "old.tar", "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    [file] = scan_paths([tmp_path / "old.tar"]).files
    assert (file.verdict, file.reason) == ("blocked", "parse-error")
    assert any("legacy tar checkpoint" in f.message for f in file.findings)


def test_string_escapes_decode_like_the_c_unpickler():
    from stoa.govern.scan.budget import Budget
    from stoa.govern.scan.context import Blob, Context
    from stoa.govern.scan.pickle_vm import scan_pickle
    from stoa.govern.scan.policy import default_policy

    # '\557' is octal 367, which _pickle.c wraps to 'o': the loader imports os.system.
    data = b"S'\\557s'\nS'system'\n\x93(S'id'\ntR."
    policy = default_policy()
    ctx = Context(policy=policy, budget=Budget(policy.limits))
    scan_pickle(Blob("x", io.BytesIO(data), len(data)), ctx)
    assert any("os.system" in f.message for f in ctx.findings), ctx.findings
