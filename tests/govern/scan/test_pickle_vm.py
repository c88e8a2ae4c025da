"""The pickle machine: imports, calls and errors exactly where CPython would see them."""

from __future__ import annotations

import io
import pickle
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stoa.govern.scan.budget import Budget
from stoa.govern.scan.context import Blob, Context
from stoa.govern.scan.pickle_vm import scan_pickle
from stoa.govern.scan.policy import default_policy, load_policy
from stoa.govern.scan.scanner import scan_paths

POLICY = default_policy()
# What the pickle machine may say about a file: every one of these blocks it.
BLOCKING_REASONS = ("malicious", "unknown-global", "parse-error", "budget")


def run(data: bytes, policy=POLICY) -> Context:
    ctx = Context(policy=policy, budget=Budget(policy.limits))
    scan_pickle(Blob("x.pkl", io.BytesIO(data), len(data)), ctx)
    return ctx


def blocking(ctx: Context) -> list[str]:
    return [f.message for f in ctx.findings if f.blocks]


def s(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def test_allowed_globals_pass_and_others_name_global_offset_and_opcode():
    ctx = run(b"\x80\x04" + s("collections") + s("OrderedDict") + b"\x93)R.")
    assert blocking(ctx) == []
    ctx = run(b"\x80\x04" + s("os") + s("system") + b"\x93" + s("id") + b"\x85R.")
    [finding] = ctx.findings
    assert finding.location.offset == 14 and finding.location.opcode == "STACK_GLOBAL"
    assert "os.system" in finding.message and finding.severity == "critical"


def test_an_unknown_harmless_looking_global_still_blocks():
    ctx = run(b"cmypkg.models\nNet\n)R.")
    assert blocking(ctx) == [
        "GLOBAL at offset 0 imports mypkg.models.Net, which the scan policy does not allow"
    ]
    assert ctx.findings[0].severity == "high"


def test_protocol_2_names_are_mapped_like_python_2_pickles():
    ctx = run(b"\x80\x02c__builtin__\neval\n" + b"X\x01\x00\x00\x001\x85R.")
    assert "builtins.eval" in blocking(ctx)[0]


def test_memo_confusion_resolves_names_through_the_memo():
    # "collections" is memoized, then index 0 is overwritten with "os" before the import.
    data = (
        b"\x80\x04" + s("collections") + b"\x94" + b"0"  # memo[0] = "collections"; POP
        + s("os") + b"q\x00" + b"0"  # BINPUT 0 overwrites memo[0] with "os"
        + b"h\x00" + s("system") + b"\x93" + s("id") + b"\x85R."
    )  # fmt: skip
    assert "os.system" in blocking(run(data))[0]


def test_a_global_memoized_then_fetched_and_called_is_seen():
    data = b"\x80\x02cos\nsystem\nq\x010h\x01X\x02\x00\x00\x00id\x85R."
    assert "os.system" in blocking(run(data))[0]


def test_payload_before_a_corrupt_tail_still_counts():
    data = b"\x80\x04" + s("os") + s("system") + b"\x93" + s("id") + b"\x85R" + b"\xff\xfe"
    ctx = run(data)
    reasons = {f.reason for f in ctx.findings}
    assert reasons == {"malicious", "parse-error"}
    assert any("invalid load key" in m for m in blocking(ctx))
    [report] = scan_paths_bytes(data).files
    assert report.reason == "malicious"


def test_truncated_stream_without_stop_is_a_parse_error():
    ctx = run(b"\x80\x04" + s("collections"))
    assert [f.reason for f in ctx.findings] == ["parse-error"]
    assert "truncated" in ctx.findings[0].message


def test_second_stream_after_stop_is_scanned():
    data = pickle.dumps([1, 2]) + b"cos\nsystem\n(S'id'\ntR."
    assert "os.system" in blocking(run(data))[0]


def test_stack_global_without_proto_and_with_non_string_operands():
    assert "os.system" in blocking(run(s("os") + s("system") + b"\x93)R."))[0]
    ctx = run(b"\x80\x04K\x01" + s("system") + b"\x93.")
    assert ctx.findings[0].reason == "parse-error"
    assert "STACK_GLOBAL requires str" in ctx.findings[0].message


def test_a_name_computed_at_load_time_blocks():
    # The module name is the result of calling an allowed function: unknowable statically.
    data = b"\x80\x04" + s("_codecs") + s("encode") + b"\x93" + s("os") + s("ascii")
    data += b"\x86R" + s("system") + b"\x93."
    assert any("computed at load time" in m for m in blocking(run(data)))


def test_extension_codes_block():
    ctx = run(b"\x80\x02\x82\x07)R.")
    assert "extension code 7" in blocking(ctx)[0]
    assert run(b"\x80\x02\x82\x00.").findings[0].reason == "parse-error"


def test_inst_obj_newobj_ex_are_imports_and_calls():
    assert "os.system" in blocking(run(b"(S'id'\nios\nsystem\n."))[0]
    assert "subprocess.Popen" in blocking(run(b"(csubprocess\nPopen\nS'id'\no."))[0]
    data = b"\x80\x04" + s("subprocess") + s("Popen") + b"\x93" + s("id") + b"\x85}\x92."
    assert "subprocess.Popen" in blocking(run(data))[0]


def test_calling_a_call_result_blocks():
    data = b"\x80\x04" + s("collections") + s("OrderedDict") + b"\x93)R)R."
    assert "calls the result of calling collections.OrderedDict" in blocking(run(data))[0]


def test_build_on_an_imported_object_and_dunder_state_block():
    # BUILD straight onto an allowed function: it would change it for the whole process.
    data = b"\x80\x04" + s("collections") + s("OrderedDict") + b"\x93}" + s("__builtins__")
    data += b"K\x01sb."
    messages = blocking(run(data))
    assert any("sets attributes on collections.OrderedDict itself" in m for m in messages)
    assert any("__builtins__" in m for m in messages)


def test_setitems_on_non_builtin_objects_blocks_but_ordered_dict_is_fine():
    ok = b"\x80\x04" + s("collections") + s("OrderedDict") + b"\x93)R(" + s("a") + b"K\x01u."
    assert blocking(run(ok)) == []
    bad = b"\x80\x04" + s("sklearn.pipeline") + s("Pipeline") + b"\x93)R(" + s("a") + b"K\x01u."
    assert "calls a method of the result of calling sklearn" in blocking(run(bad))[0]


def test_nested_pickle_loads_and_numpy_object_arrays_block(tmp_path):
    inner = b"cos\nsystem\n(S'id'\ntR."
    outer = b"\x80\x04" + s("pickle") + s("loads") + b"\x93C" + bytes([len(inner)]) + inner
    outer += b"\x85R."
    assert "pickle.loads" in blocking(run(outer))[0]


def test_real_benign_pickles_are_allowed():
    import collections

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.random.rand(20, 3), [0, 1] * 10)
    for obj in (model, collections.OrderedDict(a=np.arange(3)), {"k": {1, 2}, "c": 1j}):
        for proto in range(6):
            assert blocking(run(pickle.dumps(obj, protocol=proto))) == [], (obj, proto)


def test_memory_stays_bounded_when_the_memo_budget_runs_out():
    limits = {"max_kept_bytes": 2000}
    policy = _policy_with(limits)
    many = {f"k{i}": i for i in range(500)}
    assert blocking(run(pickle.dumps(many, protocol=4), policy)) == []
    # A name fetched from a memo entry forgotten after the budget ran out blocks as budget.
    data = b"\x80\x04" + b"".join(s(f"k{i}") + b"\x94" for i in range(100))
    data += b"0" * 100 + b"j\x5a\x00\x00\x00" + s("x") + b"\x93."
    ctx = run(data, policy)
    assert [f.reason for f in ctx.findings] == ["budget"]


def test_large_arguments_are_skipped_not_read():
    data = b"\x80\x04\x8e" + struct.pack("<Q", 50_000_000) + b"\x00" * 50_000_000 + b"."
    ctx = run(data)
    assert ctx.findings == [] and ctx.budget.bytes_used == 50_000_000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes_always_give_a_verdict(data):
    ctx = run(data)
    assert all(f.reason in BLOCKING_REASONS for f in ctx.findings)


_SEEDS = [
    pickle.dumps({"a": [1, 2.5, "x", (3, None)], "b": {True}}, protocol=p) for p in range(6)
] + [b"cos\nsystem\n(S'id'\ntR."]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255))))
def test_fuzz_mutated_pickles_never_crash_and_payloads_stay_visible(seed, edits):
    data = bytearray(seed)
    for at, value in edits:
        data[at % len(data)] = value
    ctx = run(bytes(data))
    assert all(f.reason in BLOCKING_REASONS for f in ctx.findings)


def _policy_with(limits: dict) -> object:
    import dataclasses

    return dataclasses.replace(POLICY, limits=dataclasses.replace(POLICY.limits, **limits))


def scan_paths_bytes(data: bytes):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.bin"
        path.write_bytes(data)
        return scan_paths([path])


def test_policy_file_extends_the_allowlist_and_bad_files_are_clear(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("version: team/3\npickle:\n  allow:\n    mypkg.models: [Net]\n")
    policy = load_policy(good)
    assert policy.version.endswith("+team/3")
    assert blocking(run(b"cmypkg.models\nNet\n)R.", policy)) == []
    from stoa.core.errors import InvalidInputError

    cases = {
        "version: x\npickle:\n  allow:\n    os: ['*']\n": "wildcards are not allowed",
        "version: x\npickle:\n  allow:\n    'os.*': [system]\n": "wildcards are not allowed",
        "pickle: {}\n": "'version' must be a non-empty string",
        "version: x\nbogus: 1\n": "unknown key(s) bogus",
        "version: x\nlimits: {max_depth: -1}\n": "must be a positive number",
        "version: x\nextends: other\n": "extends must be 'default' or 'none'",
        "- a\n": "must be a YAML mapping",
        "version: [\n": "not valid YAML",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(
            InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            load_policy(bad)
    with pytest.raises(InvalidInputError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")


def test_an_opcode_running_past_its_frame_is_refused_like_pickle_py_does():
    body = b"\x8c\x05hello0"  # SHORT_BINUNICODE 'hello', POP: 8 bytes
    framed = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body + b"N."
    assert run(framed).findings == []
    straddle = b"\x80\x04\x95" + struct.pack("<Q", 4) + body + b"N."
    ctx = run(straddle)
    assert [f.reason for f in ctx.findings] == ["parse-error"]
    assert "runs past the end of its FRAME" in ctx.findings[0].message
    nested = b"\x80\x04\x95" + struct.pack("<Q", 11) + b"\x95" + struct.pack("<Q", 1) + b"N."
    assert "new frame before end of current frame" in run(nested).findings[0].message
    real = pickle.dumps({f"k{i}": list(range(50)) for i in range(2000)}, protocol=5)
    assert run(real).findings == []  # the pickler's own frames never straddle


def test_joblib_files_are_named_and_their_inline_arrays_skipped(tmp_path):
    import joblib
    import numpy as np

    value = {"w": np.arange(1000, dtype=np.float64), "names": np.array(["a", "bb"])}
    joblib.dump(value, tmp_path / "plain.joblib")
    joblib.dump(value, tmp_path / "packed.joblib", compress=("zlib", 3))
    report = scan_paths([tmp_path / "plain.joblib", tmp_path / "packed.joblib"])
    assert [(f.format, f.verdict) for f in report.files] == [
        ("joblib", "allowed"),
        ("joblib-zlib", "allowed"),
    ]


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_blocks_unless_the_policy_allows_it(tmp_path):
    import torch

    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    path = tmp_path / "model.pt"
    torch.jit.save(scripted, str(path))
    [file] = scan_paths([path]).files
    assert (file.format, file.verdict, file.reason) == ("torchscript", "blocked", "malicious")
    assert "carries a program that torch.jit.load runs" in file.findings[0].message
    policy = tmp_path / "p.yaml"
    policy.write_text("version: ts/1\ntorchscript: {allow: true}\n")
    [allowed] = scan_paths([path], load_policy(policy)).files
    assert allowed.verdict == "allowed", allowed.findings
    policy.write_text("version: ts/1\ntorchscript: {allow: yes please}\n")
    from stoa.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"torchscript\.allow must be true or false"):
        load_policy(policy)


def test_text_reads_as_a_pickle_only_when_loading_it_would_do_something(tmp_path):
    words = tmp_path / "vocab.txt"
    words.write_text("cat\ndog\nbird\n")  # GLOBAL cat.dog, then an invalid opcode: no call
    assert scan_paths([words]).files[0].format == "text"
    payload = tmp_path / "notes.txt"
    payload.write_text("cos\nsystem\n(S'id'\ntR.")
    [file] = scan_paths([payload]).files
    assert (file.format, file.reason) == ("pickle", "malicious")
    browser = tmp_path / "readme.txt"
    browser.write_text("cantigravity\nfly\nthen words")  # importing it opens a browser
    assert scan_paths([browser]).files[0].reason == "malicious"


def test_padding_a_build_state_does_not_hide_dunder_keys():
    padding = b"".join(s(f"k{i}") + b"K\x01" for i in range(300))
    data = b"\x80\x04" + s("collections") + s("OrderedDict") + b"\x93)R}(" + padding
    data += s("__builtins__") + b"K\x01ub."
    assert any("__builtins__" in m for m in blocking(run(data)))


def test_a_data_format_whose_first_bytes_are_a_pickle_is_a_polyglot(tmp_path):
    gif = tmp_path / "cat.gif"
    # BINFLOAT swallows "IF89a" plus 3 bytes of the GIF header; then the payload runs.
    gif.write_bytes(b"GIF89a\x01\x00\x01" + b"cos\nsystem\n(S'id'\ntR." + b"\x00" * 20)
    [file] = scan_paths([gif]).files
    assert (file.format, file.verdict, file.reason) == ("gif", "blocked", "malicious")
    rules = {f.rule for f in file.findings}
    assert {"pickle-polyglot", "pickle-global"} <= rules
    real = tmp_path / "real.gif"
    real.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    assert scan_paths([real]).files[0].verdict == "allowed"


def test_a_sentencepiece_model_is_data_and_other_protobufs_are_not(tmp_path):
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    model = tmp_path / "tokenizer.model"
    model.write_bytes(field(1, field(1, b"\xe2\x96\x81the")) * 3 + field(2, b"\x08\x01"))
    [file] = scan_paths([model]).files
    assert (file.format, file.verdict) == ("sentencepiece", "allowed")
    other = tmp_path / "other.model"
    other.write_bytes(field(9, b"\x00\xff\x10") * 3)  # field 9 is no SentencePiece field
    [file] = scan_paths([other]).files
    assert (file.format, file.reason) == ("unknown", "unknown-format")
