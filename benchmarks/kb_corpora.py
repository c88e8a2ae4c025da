"""Real documentation corpora of different shapes, with questions, for knowledge-base quality.

Three corpora, each assembled offline from a pinned package that ships documentation:

- ``python-library``: HTML reference pages, Debian ``python3.11-doc``
  (``/usr/share/doc/python3.11/html/library/*.html``), copied as they are.
- ``linux-syscalls``: man pages, Debian ``manpages-dev`` (section 2, system calls),
  rendered with ``man -l`` and written as Markdown, one heading per man-page section
  (the loader reads no roff). ``.so`` redirects and symlinked aliases are left out.
- ``django-docs``: reStructuredText guides from the Django sdist on PyPI
  (``docs/{intro,topics,howto,faq,ref}``), written as Markdown: section underlines
  become ``#`` headings and roles become their text; everything else is kept.

The questions are ``benchmarks/kb_corpora/<corpus>.jsonl``, in the format ``stoa kb
eval`` reads; a ``relevant`` entry is a document's path relative to its corpus folder.
They were written by hand from the documents, phrased as a user would ask.

    .venv/bin/python benchmarks/kb_corpora.py build --out /tmp/corpora [--sdists DIR]
    .venv/bin/python benchmarks/kb_corpora.py eval --corpora /tmp/corpora [--only NAME]

``build`` downloads nothing: a missing source is named with the command that installs
it, and the exit status is 2. ``eval`` ingests each corpus into a knowledge base with
Stoa's defaults in a temporary home and prints hit@5 and MRR per retrieval mode.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

QUESTIONS = Path(__file__).resolve().parent / "kb_corpora"

PYTHON_DOC = Path("/usr/share/doc/python3.11/html/library")
MAN2 = Path("/usr/share/man/man2")
DJANGO_SDIST = "Django-5.1.4.tar.gz"
DJANGO_SECTIONS = ("intro", "topics", "howto", "faq", "ref")


class MissingSource(Exception):
    """A corpus's package is not here; the message says how to install it."""


@dataclass(frozen=True)
class Corpus:
    name: str
    shape: str
    source: str
    build: Callable[[Path, argparse.Namespace], int]


def debian_version(package: str) -> str | None:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def require_debian(package: str, version: str, probe: Path) -> None:
    """Document ids come from file names, which a different Debian revision rarely changes:
    a mismatch warns; an absent package stops."""
    installed = debian_version(package)
    if installed is None or not probe.exists():
        raise MissingSource(f"{package} is not installed: apt-get install {package}={version}")
    if installed != version:
        print(f"warning: {package} {installed} is installed; questions were written for "
              f"{version}", file=sys.stderr)  # fmt: skip


# --- HTML reference pages ---------------------------------------------------------------


def build_python(out: Path, _args: argparse.Namespace) -> int:
    require_debian("python3.11-doc", "3.11.2-6+deb12u9", PYTHON_DOC)
    pages = sorted(PYTHON_DOC.glob("*.html"))
    for page in pages:
        shutil.copyfile(page, out / page.name)
    return len(pages)


# --- man pages --------------------------------------------------------------------------

_OVERSTRIKE = re.compile(r".\x08")
_SECTION = re.compile(r"^[A-Z][A-Z0-9 ,/_-]*$")
_SUBSECTION = re.compile(r"^   (\S.*)$")
_BODY_INDENT = 7


def is_man_page(path: Path) -> bool:
    if path.is_symlink():
        return False
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        return not handle.readline().startswith(".so ")


def render_man(path: Path) -> str:
    env = {**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(
        ["man", "--nh", "--nj", "-l", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return _OVERSTRIKE.sub("", done.stdout)


def man_to_markdown(name: str, rendered: str) -> str:
    """The header and footer lines go; NAME's line becomes the title."""
    lines = rendered.splitlines()[1:-1]
    out: list[str] = []
    title = name
    for index, line in enumerate(lines):
        if _SECTION.match(line):
            if line == "NAME" and index + 1 < len(lines):
                title = f"{name}: {lines[index + 1].strip()}"
            out += ["", f"## {line.title()}", ""]
        elif (sub := _SUBSECTION.match(line)) and not line.startswith(" " * _BODY_INDENT):
            out += ["", f"### {sub.group(1)}", ""]
        else:
            out.append(line[_BODY_INDENT:] if line.startswith(" " * _BODY_INDENT) else line)
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()
    return f"# {title}\n\n{text}\n"


def build_man(out: Path, _args: argparse.Namespace) -> int:
    require_debian("manpages-dev", "6.03-2", MAN2 / "open.2.gz")
    if shutil.which("man") is None:
        raise MissingSource("man is not installed: apt-get install man-db")
    pages = [p for p in sorted(MAN2.glob("*.2.gz")) if is_man_page(p)]
    for page in pages:
        name = page.name.removesuffix(".gz")  # open.2
        stem, section = name.rsplit(".", 1)
        text = man_to_markdown(f"{stem}({section})", render_man(page))
        (out / f"{name}.md").write_text(text, encoding="utf-8")
    return len(pages)


# --- reStructuredText guides ------------------------------------------------------------

_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_.:])\1{2,}\s*$")
_ROLE = re.compile(r":[\w:.+-]+:`([^`]*)`")
_TARGET = re.compile(r"^\s*(.*?)\s*<[^>]*>\s*$", re.S)
_LABEL = re.compile(r"^\.\. _[^:]+:\s*$")


def _role_text(match: re.Match[str]) -> str:
    text = match.group(1)
    target = _TARGET.match(text)
    text = target.group(1) if target and target.group(1) else text.strip("<>")
    return f"`{text.lstrip('~!')}`"


def rst_to_markdown(rst: str) -> str:
    """Heading levels follow the order in which adornment styles first appear, as in
    docutils; an overline and an underline make a style distinct from an underline alone."""
    lines = rst.splitlines()
    styles: list[str] = []
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        nxt = lines[index + 1] if index + 1 < len(lines) else ""
        after = lines[index + 2] if index + 2 < len(lines) else ""
        if _UNDERLINE.match(line) and nxt.strip() and _UNDERLINE.match(after):
            style, title, index = "over" + line[0], nxt.strip(), index + 3
        elif (
            line.strip()
            and not line.startswith(" ")
            and _UNDERLINE.match(nxt)
            and (len(nxt.rstrip()) >= len(line.rstrip()))
        ):
            style, title, index = nxt[0], line.strip(), index + 2
        else:
            if not _LABEL.match(line):
                out.append(_ROLE.sub(_role_text, line))
            index += 1
            continue
        if style not in styles:
            styles.append(style)
        level = min(styles.index(style) + 1, 6)
        out += ["", "#" * level + " " + _ROLE.sub(_role_text, title), ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def build_django(out: Path, args: argparse.Namespace) -> int:
    sdist = Path(args.sdists) / DJANGO_SDIST
    if not sdist.exists():
        raise MissingSource(
            f"{sdist} is missing: pip download --no-deps --no-binary :all: "
            f"Django==5.1.4 -d {args.sdists}"
        )
    count = 0
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if not (member.isfile() and len(parts) > 3 and parts[1] == "docs"):
                continue
            if parts[2] not in DJANGO_SECTIONS or not member.name.endswith(".txt"):
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            target = out / Path(*parts[2:]).with_suffix(".md")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rst_to_markdown(handle.read().decode("utf-8")), encoding="utf-8")
            count += 1
    return count


CORPORA = [
    Corpus("python-library", "HTML", "Debian python3.11-doc 3.11.2-6+deb12u9", build_python),
    Corpus("linux-syscalls", "man", "Debian manpages-dev 6.03-2, section 2", build_man),
    Corpus("django-docs", "reST", "PyPI Django 5.1.4 sdist, docs/", build_django),
]


def chosen(only: list[str] | None) -> list[Corpus]:
    names = {c.name for c in CORPORA}
    unknown = sorted(set(only or []) - names)
    if unknown:
        sys.exit(f"unknown corpus {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return [c for c in CORPORA if not only or c.name in only]


def build(args: argparse.Namespace) -> int:
    out = Path(args.out)
    status = 0
    for corpus in chosen(args.only):
        folder = out / corpus.name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        try:
            count = corpus.build(folder, args)
        except MissingSource as exc:
            print(f"{corpus.name}: {exc}", file=sys.stderr)
            shutil.rmtree(folder)
            status = 2
            continue
        missing = sorted(
            {r.partition("#")[0] for q in questions(corpus.name) for r in q["relevant"]}
            - {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
        )
        print(f"{corpus.name:<16} {corpus.shape:<5} {count:>4} documents  ({corpus.source})")
        if missing:
            print(f"  {len(missing)} relevant ids not built: {', '.join(missing[:5])}")
            status = 1
    return status


def questions(name: str) -> list[dict[str, object]]:
    path = QUESTIONS / f"{name}.jsonl"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- evaluation -------------------------------------------------------------------------

MODES = ("vector", "lexical", "hybrid")


def evaluate(args: argparse.Namespace) -> int:
    from stoa.client import LocalClient

    root = Path(args.corpora)
    rows = []
    for corpus in chosen(args.only):
        folder = root / corpus.name
        if not folder.is_dir():
            print(f"{corpus.name}: not built under {root}; run build first", file=sys.stderr)
            return 2
        qa = (QUESTIONS / f"{corpus.name}.jsonl").read_text(encoding="utf-8")
        with tempfile.TemporaryDirectory() as home:
            client = LocalClient(home=home)
            client.kbs.create(corpus.name)
            client.kbs.ingest(corpus.name, [folder])
            report = client.kbs.eval(corpus.name, qa, k=args.k)
        modes = report["modes"]
        rows.append((corpus.name, len(questions(corpus.name)), modes))
        print(f"{corpus.name}: done", file=sys.stderr)
    header = f"{'corpus':<16}{'qs':>4}" + "".join(f"{m + ' MRR/hit':>20}" for m in MODES)
    print(header.replace("hit", f"hit@{args.k}"))
    for name, count, modes in rows:
        cells = "".join(f"{modes[m]['mrr']:>13.3f} /{modes[m]['hit_at_k']:>5.2f}" for m in MODES)
        print(f"{name:<16}{count:>4}{cells}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="assemble the corpora into OUT/<corpus>/")
    make.add_argument("--out", required=True)
    make.add_argument("--sdists", default=".", help="folder holding the PyPI sdists")
    make.add_argument("--only", nargs="*")
    run = sub.add_parser("eval", help="ingest each corpus and print MRR and hit@k per mode")
    run.add_argument("--corpora", required=True)
    run.add_argument("--k", type=int, default=5)
    run.add_argument("--only", nargs="*")
    args = parser.parse_args()
    sys.exit(build(args) if args.command == "build" else evaluate(args))


if __name__ == "__main__":
    main()
