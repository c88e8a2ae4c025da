"""Known-dangerous imports: they raise a finding's severity and explain it.

This list never lets anything through; the allowlist in the policy decides. It
exists so that a security reviewer reading a report sees *why* ``pip.main`` is
worse than an unknown estimator class. Sources: the published advisories against
picklescan, modelscan and fickling, and the gadgets they describe.
"""

from __future__ import annotations

from dataclasses import dataclass

from stoa.govern.scan.findings import Reason, Severity
from stoa.govern.scan.policy import UnknownDecision

# Whole modules (and their submodules) whose import from a pickle means code execution,
# file or network access, or a way to reach one.
_MODULES: dict[str, str] = {
    "os": "runs shell commands and touches files",
    "posix": "runs shell commands and touches files (os on POSIX)",
    "nt": "runs shell commands and touches files (os on Windows)",
    "subprocess": "runs programs",
    "pty": "spawns a shell",
    "commands": "runs shell commands",
    "popen2": "runs shell commands",
    "platform": "runs programs (platform.popen)",
    "shutil": "deletes and moves files",
    "tempfile": "creates files",
    "importlib": "imports arbitrary modules",
    "pkgutil": "resolves arbitrary names (pkgutil.resolve_name)",
    "runpy": "runs modules and scripts",
    "code": "runs Python source",
    "codeop": "compiles Python source",
    "pip": "installs packages (pip.main)",
    "ensurepip": "installs packages",
    "venv": "creates environments and runs pip",
    "pydoc": "resolves arbitrary names (pydoc.locate) and runs pagers",
    "webbrowser": "opens URLs and runs browsers",
    "socket": "opens network connections",
    "ssl": "opens network connections",
    "http": "makes network requests",
    "urllib": "makes network requests",
    "urllib2": "makes network requests",
    "httplib": "makes network requests",
    "requests": "makes network requests",
    "aiohttp": "makes network requests",
    "smtplib": "sends mail",
    "ftplib": "opens FTP connections",
    "telnetlib": "opens telnet connections",
    "poplib": "opens mail connections",
    "imaplib": "opens mail connections",
    "xmlrpc": "makes network calls",
    "ctypes": "calls native code",
    "cffi": "calls native code",
    "_ctypes": "calls native code",
    "cloudpickle": "unpickles embedded code",
    "dill": "unpickles embedded code",
    "marshal": "loads code objects",
    "pickle": "unpickles a nested, unscanned payload",
    "_pickle": "unpickles a nested, unscanned payload",
    "shelve": "unpickles files",
    "joblib.load": "loads a nested, unscanned file",
    "asyncio": "runs subprocesses (asyncio.subprocess and base_events internals)",
    "multiprocessing": "starts processes",
    "concurrent": "starts processes",
    "threading": "starts threads running arbitrary callables",
    "signal": "changes process signal handling",
    "sys": "changes the interpreter (sys.modules, sys.path)",
    "builtins": "reaches eval, exec, getattr and open",
    "__builtin__": "reaches eval, exec, getattr and open",
    "operator": "calls attributes by name (attrgetter, methodcaller)",
    "_operator": "calls attributes by name (attrgetter, methodcaller)",
    "functools": "builds callables (partial, reduce) that chain gadgets",
    "inspect": "reaches attributes the sandbox hides (getattr_static)",
    "types": "builds functions and code objects (FunctionType, CodeType)",
    "timeit": "runs Python source",
    "cProfile": "runs Python source",
    "profile": "runs Python source",
    "trace": "runs Python source",
    "bdb": "runs Python source",
    "pdb": "runs Python source",
    "doctest": "runs Python source",
    "idlelib": "runs Python source and shell commands",
    "lib2to3": "runs programs",
    "distutils": "runs programs",
    "setuptools": "runs programs",
    "numpy.f2py": "compiles and runs Fortran and shell commands",
    "numpy.testing": "runs programs",
    "numpy.distutils": "runs programs",
    "numpy.load": "loads a nested file with pickles",
    "torch.load": "loads a nested, unscanned checkpoint",
    "torch.hub": "downloads and runs code",
    "torch.jit": "compiles and runs TorchScript",
    "torch._dynamo": "compiles and runs code",
    "torch._inductor": "compiles and runs code",
    "torch.utils.collect_env": "runs shell commands (collect_env.run)",
    "torch.utils.cpp_extension": "compiles and loads native code",
    "torch.utils.data.datapipes": "runs arbitrary callables",
    "torch.serialization": "loads nested checkpoints",
    "torch.testing._internal": "runs programs",
    "_io": "opens files",
    "io": "opens files",
    "codecs": "opens files (codecs.open)",
    "fileinput": "reads files",
    "glob": "lists files",
    "zipimport": "imports code from archives",
    "site": "changes the import path",
    "gc": "reaches every live object",
    "weakref": "reaches live objects",
    "copyreg": "registers reducers and extension codes",
    "copy_reg": "registers reducers and extension codes",
    "ast": "evaluates source (literal_eval is safe, the rest is not)",
    "jinja2": "renders templates that can reach Python objects",
    "yaml": "loads YAML that can construct Python objects",
    "keras": "loads models with Lambda layers",
    "antigravity": "opens a web browser when imported",
    "this": "prints to the terminal when imported",
    "tensorflow": "runs TensorFlow ops that touch files",
    # Gadgets from the published bypasses the corpus reproduces: private stdlib helpers and
    # library internals that run programs, evaluate source or read files.
    "_posixsubprocess": "forks and runs programs (fork_exec)",
    "_osx_support": "runs shell commands (_read_output)",
    "_aix_support": "runs programs (_read_cmd_output)",
    "_xxsubinterpreters": "runs Python source in a subinterpreter",
    "_interpreters": "runs Python source in a subinterpreter",
    "linecache": "reads files (getline)",
    "logging.config": "loads configurations that import and call any name",
    "logging.handlers": "writes files and sends records over the network",
    "test.support": "runs Python source and programs (CPython's test helpers)",
    "numpy.ctypeslib": "loads native libraries",
    "pandas.io": "reads and writes files and URLs (read_csv, read_pickle, ...)",
    "torch.fx": "compiles and runs Python source (GraphModule, guard expressions)",
    "torch.utils.bottleneck": "runs scripts under a profiler",
    "torch.utils._config_module": "loads pickled configurations (ConfigModule.load_config)",
    "mlflow.projects": "runs project entry points as shell commands",
}

# Single names whose danger is worth spelling out even inside otherwise harmless modules.
_NAMES: dict[tuple[str, str], str] = {
    ("builtins", "eval"): "evaluates Python source",
    ("builtins", "exec"): "executes Python source",
    ("builtins", "compile"): "compiles Python source",
    ("builtins", "open"): "opens files",
    ("builtins", "getattr"): "reaches any attribute, e.g. os.system",
    ("builtins", "setattr"): "changes any attribute",
    ("builtins", "__import__"): "imports any module",
    ("builtins", "globals"): "reaches the module namespace",
    ("builtins", "vars"): "reaches any namespace",
    ("builtins", "breakpoint"): "starts a debugger",
    ("builtins", "input"): "blocks on input",
    ("builtins", "apply"): "calls any callable",
    ("builtins", "memoryview"): "aliases memory",
    ("collections", "_collections_abc"): "reaches internals",
    ("numpy", "load"): "loads a nested file with pickles",
    ("numpy", "fromfile"): "reads files",
    ("numpy", "memmap"): "maps files",
    ("numpy.lib.npyio", "load"): "loads a nested file with pickles",
    ("pandas", "read_pickle"): "unpickles a nested, unscanned file",
    ("pandas.io.pickle", "read_pickle"): "unpickles a nested, unscanned file",
    ("torch", "load"): "loads a nested, unscanned checkpoint",
    ("joblib", "load"): "loads a nested, unscanned file",
    ("random", "_os"): "reaches os through a module attribute",
    ("uuid", "_get_command_stdout"): "runs programs",
    ("logging", "FileHandler"): "creates and appends to files",
    ("pandas", "read_csv"): "reads files and URLs",
    ("pandas", "read_table"): "reads files and URLs",
    ("pandas", "read_json"): "reads files and URLs",
    ("pandas", "read_html"): "reads files and URLs",
    ("pandas", "read_xml"): "reads files and URLs",
    ("pandas", "read_parquet"): "reads files and URLs",
}


def explain(module: str, name: str) -> str | None:
    """Why importing ``module.name`` is known to be dangerous, or None when it is not listed."""
    hit = _NAMES.get((module, name))
    if hit:
        return hit
    dotted = f"{module}.{name}"
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        reason = _MODULES.get(".".join(parts[:i]))
        if reason:
            return reason
    # Attribute chains that walk out of a module: x.os.system, y.__builtins__, z.__globals__
    dunder = next((p for p in name.split(".") if p.startswith("__") and p.endswith("__")), None)
    if dunder:
        return f"walks the attribute chain through {dunder}"
    for part in name.split(".")[:-1]:
        if part in _MODULES:
            return f"reaches {part} through an attribute chain: {_MODULES[part]}"
    return None


@dataclass(frozen=True)
class Refusal:
    """How an import outside the allowlist is reported."""

    severity: Severity
    reason: Reason
    why: str  # follows the imported name in the message
    review: bool = False

    def rule(self, blocked: str) -> str:
        """The finding's rule: the format's own, or the one a review queue looks for."""
        return "unknown-global-review" if self.review else blocked


def refusal(module: str, name: str, unknown: UnknownDecision) -> Refusal:
    """A known-dangerous name is ``malicious``; any other is ``unknown-global``, and the
    policy's ``pickle.unknown_globals`` says whether it waits for review or is refused.
    Both block: nothing unvetted is loaded."""
    danger = explain(module, name)
    if danger:
        return Refusal("critical", "malicious", f": {danger}")
    if unknown == "review":
        return Refusal("medium", "unknown-global", ", which is not on the scan policy's "
                       "allowlist and needs a person's review", review=True)  # fmt: skip
    return Refusal("high", "unknown-global", ", which the scan policy does not allow")
