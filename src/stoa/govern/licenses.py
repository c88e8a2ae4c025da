"""A model's licence: where it is stated, its SPDX form, and what the policy decides about it.

A model's licence can be stated in four places, and they are trusted in this order:

1. ``declared``: the ``license`` argument given at registration, a statement by the
   person registering the model;
2. the model card (``README.md``) front-matter, ``license:``, as on the Hugging Face Hub;
3. a ``LICENSE``/``LICENCE``/``COPYING`` file, identified by phrases of its text;
4. hints other scanners collect inside files (safetensors ``__metadata__``, GGUF
   ``general.license``), which whoever converted the weights may have filled in.

Every statement is normalised to an SPDX expression. Licences SPDX does not list (the
Llama, Gemma and OpenRAIL families, ...) get ``LicenseRef-hf-<id>`` named after the
Hugging Face Hub's licence ids, the vocabulary model publishers already use
(``openrail++`` is ``LicenseRef-hf-openrail-plusplus``: SPDX ids allow only letters,
digits, ``.`` and ``-``). A
model card's ``license: other`` with a ``license_name`` that is not recognised becomes
``LicenseRef-hf-other-<name>``, so a policy can still name it.

Deprecated SPDX ids map to what SPDX defines them to mean: ``GPL-3.0`` is
``GPL-3.0-only`` and ``GPL-3.0+`` is ``GPL-3.0-or-later``. A GNU licence text on its
own grants no "or later" option, so a GPL text in a LICENSE file is ``-only`` too.

When sources disagree, the most trusted one that states a licence wins and the others
are kept as conflicts: a security review wants to see a model registered as MIT whose
card says CC-BY-NC-4.0.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from license_expression import (
    OR,
    ExpressionError,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    Licensing,
    build_spdx_licensing,
    get_license_index,
)

from stoa.govern.scan.links import inspect_link
from stoa.govern.scan.policy import DECISIONS, Decision, Policy

MAX_LICENSE_BYTES = 64 * 1024  # licence texts are identified by their opening pages
MAX_CARD_BYTES = 256 * 1024  # model-index front-matter with many eval results runs long
_MAX_EXPRESSION = 512  # longer than any real licence expression
_MAX_RAW = 200  # what a report shows of a source's own words
_LICENSE_FILES = ("license", "license.txt", "license.md", "licence", "licence.txt",
                  "licence.md", "copying", "copying.txt")  # fmt: skip
_CARD_FILE = "readme.md"
_NO_LICENSE = frozenset({"", "unknown", "other", "none", "noassertion", "n/a"})
_LICENSE_REF = re.compile(r"^LicenseRef-[A-Za-z0-9.-]+$", re.IGNORECASE)
_CC_SPACED = re.compile(r"\bcc[\s_-]+by((?:[\s_-]+(?:nc|nd|sa))*)[\s_-]+(\d\.\d)\b", re.IGNORECASE)

# Hub licence ids (https://huggingface.co/docs/hub/repositories-licenses) SPDX does not
# list. Hub ids SPDX does list (mit, apache-2.0, cc-by-nc-4.0, ...) need no entry: SPDX
# ids match case-insensitively. The bsd and cc families name no variant, and a guess
# could hide an advertising clause or a non-commercial term, so they keep their own id.
_HUB_ONLY = ("apple-amlr", "apple-ascl", "bigcode-openrail-m", "bigscience-bloom-rail-1.0",
             "bigscience-openrail-m", "bsd", "cc", "creativeml-openrail-m",
             "deepfloyd-if-license", "gemma", "intel-research", "lgpl-lr", "llama2", "llama3",
             "llama3.1", "llama3.2", "llama3.3", "llama4", "openrail", "openrail++")  # fmt: skip
# Hub family ids with one SPDX reading: the family has one member, or (GNU) the licence
# itself lets a work that names no version be used under any version ever published.
_HUB_SPDX = {
    "c-uda": "C-UDA-1.0",
    "odbl": "ODbL-1.0",
    "odc-by": "ODC-By-1.0",
    "pddl": "PDDL-1.0",
    "gpl": "GPL-1.0-or-later",
    "lgpl": "LGPL-2.0-or-later",
    "gfdl": "GFDL-1.1-or-later",
}
_LLAMA_VERSIONS = ("2", "3", "3.1", "3.2", "3.3", "4")
# How people write licences in model cards and metadata, besides SPDX ids.
_ALIASES: dict[str, tuple[str, ...]] = {
    "Apache-2.0": ("apache 2", "apache 2.0", "apache-2", "apache2", "apache v2", "asl 2.0",
                   "apache license 2.0", "apache license v2", "apache license version 2.0",
                   "apache license, version 2.0", "apache software license 2.0"),
    "MIT": ("mit license", "the mit license"),
    "BSD-2-Clause": ("bsd 2-clause", "2-clause bsd", "simplified bsd"),
    "BSD-3-Clause": ("bsd-3", "bsd 3-clause", "3-clause bsd", "new bsd", "modified bsd",
                     "revised bsd"),
    "GPL-2.0-only": ("gpl2", "gplv2", "gpl v2"),
    "GPL-3.0-only": ("gpl3", "gplv3", "gpl v3"),
    "AGPL-3.0-only": ("agpl3", "agplv3", "agpl v3"),
    "LGPL-2.1-only": ("lgpl2.1", "lgplv2.1"),
    "LGPL-3.0-only": ("lgpl3", "lgplv3"),
    "MPL-2.0": ("mpl 2.0", "mozilla public license 2.0"),
    "ISC": ("isc license",),
    "Unlicense": ("the unlicense",),
    "CC0-1.0": ("cc0", "cc0 1.0"),
    "BSL-1.0": ("boost software license 1.0",),
    "LicenseRef-hf-bsd": ("bsd license",),
    "LicenseRef-hf-gemma": ("gemma terms of use",),
    **{
        f"LicenseRef-hf-llama{v}": (f"llama-{v}", f"llama {v}", f"llama {v} community license",
                                    f"llama {v} community license agreement",
                                    f"meta llama {v} community license")
        for v in _LLAMA_VERSIONS
    },
}  # fmt: skip


@dataclass(frozen=True)
class LicenseClaim:
    """What one source says the licence is."""

    source: str  # "declared", "README.md front-matter", "LICENSE", "safetensors metadata", ...
    raw: str | None  # the source's own words, shortened; None for a licence text
    spdx: str | None  # normalised; None when the statement was not recognised


@dataclass
class LicenseInfo:
    """The licence the gate decides on, and every other source that disagrees with it."""

    spdx: str | None
    source: str  # the source ``spdx`` came from; "none" when no source states a licence
    raw: str | None
    conflicts: list[LicenseClaim] = field(default_factory=list)


def hub_ref(hub_id: str) -> str:
    """The ``LicenseRef-hf-…`` id for a Hub licence id SPDX does not list."""
    return "LicenseRef-hf-" + hub_id.lower().replace("++", "-plusplus").replace("+", "-plus")


@functools.cache
def _licensing() -> Licensing:
    """SPDX licensing (what ``get_spdx_licensing()`` builds) plus Hub ids and common aliases,
    so one parser resolves every spelling, inside expressions too."""
    index = [dict(entry) for entry in get_license_index()]
    by_key = {entry.get("spdx_license_key"): entry for entry in index}
    extra: dict[str, list[str]] = {hub_ref(h): [h] for h in _HUB_ONLY}
    for hub_id, spdx in _HUB_SPDX.items():
        extra.setdefault(spdx, []).append(hub_id)
    for key, aliases in _ALIASES.items():
        extra.setdefault(key, []).extend(aliases)
    for key, aliases in extra.items():
        entry = by_key.get(key)
        if entry is None:
            index.append({"spdx_license_key": key, "other_spdx_license_keys": aliases})
        else:
            entry["other_spdx_license_keys"] = [*entry.get("other_spdx_license_keys", []), *aliases]
    return build_spdx_licensing(index)


def normalize_license(text: str) -> str | None:
    """The SPDX expression for a licence as users and the Hub write it; None if unrecognised.

    A single unrecognised identifier makes the whole expression unrecognised: a policy
    cannot decide on ``MIT AND something-else`` without knowing what the rest means.
    ``LicenseRef-…`` ids pass through, so an organisation can name its own licences.
    """
    if len(text) > 4 * _MAX_EXPRESSION:  # checked first: the cache must not keep long texts
        return None
    return _normalize(" ".join(text.split()))


@functools.lru_cache(maxsize=4096)
def _normalize(text: str) -> str | None:
    if text.lower() in _NO_LICENSE or len(text) > _MAX_EXPRESSION:
        return None
    text = _CC_SPACED.sub(_cc_hyphenated, text)
    licensing = _licensing()
    try:
        expression = licensing.parse(text, validate=False)
    except (ExpressionError, TypeError, ValueError):
        return None
    if expression is None:
        return None
    for key in licensing.unknown_license_keys(expression):
        if not _LICENSE_REF.match(key):
            return None
    rendered = expression.render("{symbol.key}")
    return re.sub(r"\blicenseref-", "LicenseRef-", rendered, flags=re.IGNORECASE)


def _cc_hyphenated(match: re.Match[str]) -> str:
    """``CC BY-NC 4.0``, Creative Commons' own spelling, as the SPDX id ``CC-BY-NC-4.0``."""
    parts = match.group(1).replace("_", " ").replace("-", " ").split()
    return "-".join(["CC", "BY", *(p.upper() for p in parts), match.group(2)])


# --- licence texts -------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextRule:
    family: str  # one licence per family: the first matching rule of a family wins
    spdx: str
    phrases: tuple[str, ...]  # all must occur in the normalised text


# Headings and clauses no other common licence contains. Within a family the more
# specific rule comes first: the LGPL-2.1 text cites "GNU General Public License,
# version 2", and the GPL-3.0 text cites the Affero and Lesser GPLs by name.
_BSD = (
    "redistribution and use in source and binary forms with or without modification are permitted"
)
_TEXT_RULES = (
    _TextRule("gemma", hub_ref("gemma"), ("gemma terms of use",)),
    _TextRule("deepfloyd", hub_ref("deepfloyd-if-license"), ("deepfloyd if license agreement",)),
    _TextRule("apple", hub_ref("apple-ascl"), ("apple sample code license",)),
    _TextRule("rail", hub_ref("openrail++"), ("open rail++ m license",)),
    _TextRule("rail", hub_ref("creativeml-openrail-m"), ("creativeml open rail m",)),
    _TextRule("rail", hub_ref("bigcode-openrail-m"), ("bigcode open rail m",)),
    _TextRule("rail", hub_ref("bigscience-bloom-rail-1.0"), ("bigscience rail license v1 0",)),
    _TextRule("rail", hub_ref("bigscience-openrail-m"), ("bigscience open rail m",)),
    _TextRule("rail", hub_ref("openrail"), ("open rail",)),
    _TextRule("rail", hub_ref("openrail"), ("responsible ai license",)),
    _TextRule("gnu", "AGPL-3.0-only", ("gnu affero general public license version 3",)),
    _TextRule("gnu", "LGPL-3.0-only", ("gnu lesser general public license version 3",)),
    _TextRule("gnu", "LGPL-2.1-only", ("gnu lesser general public license version 2 1",)),
    _TextRule("gnu", "LGPL-2.0-only", ("gnu library general public license version 2",)),
    _TextRule("gnu", "GPL-3.0-only", ("gnu general public license version 3",)),
    _TextRule("gnu", "GPL-2.0-only", ("gnu general public license version 2",)),
    _TextRule("mpl", "MPL-2.0", ("mozilla public license version 2 0",)),
    _TextRule("mpl", "MPL-1.1", ("mozilla public license version 1 1",)),
    _TextRule("apache", "Apache-2.0", ("apache license version 2 0",)),
    _TextRule("boost", "BSL-1.0", ("boost software license version 1 0",)),
    _TextRule("cc0", "CC0-1.0", ("cc0 1 0 universal",)),
    _TextRule("unlicense", "Unlicense",
              ("this is free and unencumbered software released into the public domain",)),
    _TextRule("mit", "MIT",
              ("permission is hereby granted free of charge to any person obtaining a copy",
               "the above copyright notice and this permission notice shall be included")),
    _TextRule("isc", "ISC",
              ("permission to use copy modify and or distribute this software for any purpose "
               "with or without fee is hereby granted",)),
    _TextRule("zlib", "Zlib",
              ("altered source versions must be plainly marked as such and must not be "
               "misrepresented as being the original software",)),
    _TextRule("bsd", "BSD-3-Clause-Clear",
              (_BSD, "no express or implied licenses to any party s patent rights are granted")),
    _TextRule("bsd", "BSD-4-Clause",
              (_BSD, "all advertising materials mentioning features or use of this software")),
    _TextRule("bsd", "BSD-3-Clause", (_BSD, "endorse or promote products derived from this")),
    _TextRule("bsd", "BSD-2-Clause", (_BSD, "redistributions in binary form must reproduce")),
)  # fmt: skip
_LLAMA_TEXT = re.compile(r"\bllama (\d+(?: \d+)?) community license agreement\b")
_CC_TEXT = re.compile(
    r"\battribution((?: non ?commercial)?)((?: share ?alike| no ?deriv(?:ative)?s)?) (\d) (\d) "
    r"(?:international|unported|generic|license)\b"
)


def license_from_text(text: str) -> str | None:
    """The SPDX expression for a LICENSE file's text, or None if no licence is recognised.

    Phrases are matched on lowercase words, so line wrapping, Markdown and quote styles
    do not matter. A file holding several licence texts yields all of them joined with
    AND, since a file that ships several licences means each applies to some part.
    """
    words = f" {_words(text[:MAX_LICENSE_BYTES])} "
    found: dict[str, str] = {}
    llama = _LLAMA_TEXT.search(words)
    if llama:
        found["llama"] = hub_ref("llama" + llama.group(1).replace(" ", "."))
    for rule in _TEXT_RULES:
        if rule.family not in found and all(f" {p} " in words for p in rule.phrases):
            found[rule.family] = rule.spdx
    cc = _cc_from_words(words)
    if cc:
        found["cc"] = cc
    if not found:
        return None
    return normalize_license(" AND ".join(found.values()))


def _words(text: str) -> str:
    """Lowercase words and numbers separated by single spaces; ``+`` kept for RAIL++."""
    return " ".join(re.sub(r"[^a-z0-9+]+", " ", text.lower()).split())


def _cc_from_words(words: str) -> str | None:
    """A Creative Commons legal code's title, e.g. Attribution-NonCommercial 4.0 International."""
    if "creative commons" not in words:
        return None
    match = _CC_TEXT.search(words)
    if match is None:
        return None
    parts = ["CC-BY"]
    if match.group(1):
        parts.append("NC")
    variant = match.group(2).replace(" ", "")
    if variant:
        parts.append("SA" if variant.startswith("share") else "ND")
    return normalize_license("-".join(parts) + f"-{match.group(3)}.{match.group(4)}")


# --- model cards ---------------------------------------------------------------------------


def license_from_model_card(
    text: str, source: str = "model card front-matter"
) -> LicenseClaim | None:
    """What a model card's YAML front-matter says about the licence, or None if nothing.

    ``license`` may be one id or a list; a list means every listed licence applies (a
    converted model under its base model's licence plus the converter's), so its ids are
    joined with AND. ``license: other`` defers to ``license_name``. Malformed YAML says
    nothing rather than failing the scan: the card is documentation, not the artifact.
    """
    meta = _front_matter(text[:MAX_CARD_BYTES])
    if meta is None:
        return None
    value = meta.get("license", "other" if meta.get("license_name") else None)
    ids = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    name = _text(meta.get("license_name"))
    link = _text(meta.get("license_link"))
    said: list[str] = []
    parts: list[str | None] = []
    for raw in (i.strip() for i in ids[:16] if isinstance(i, str)):
        if raw.lower() == "other" and name:
            said.append(f"other: {name}" + (f" <{link}>" if link else ""))
            parts.append(normalize_license(name) or _other_ref(name))
        elif raw.lower() not in _NO_LICENSE:
            said.append(raw)
            parts.append(normalize_license(raw))
    if not said:
        return None
    spdx = None if None in parts else " AND ".join(_grouped(p) for p in parts if p)
    return LicenseClaim(source, _shorten(", ".join(said)), spdx and normalize_license(spdx))


def _front_matter(text: str) -> dict[str, Any] | None:
    """The mapping between a leading ``---`` line and the next ``---`` line, if any."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() in ("---", "..."))
    except StopIteration:
        return None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end]))
    except (yaml.YAMLError, RecursionError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _other_ref(name: str) -> str | None:
    """``LicenseRef-hf-other-<name>`` for a custom licence a card names, so a policy can list it."""
    slug = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.")[:64]
    return f"LicenseRef-hf-other-{slug}" if slug else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _grouped(expression: str) -> str:
    return f"({expression})" if " " in expression else expression


# --- detection -----------------------------------------------------------------------------


def detect_license(
    path: Path,
    *,
    declared: str | None = None,
    hints: Sequence[tuple[str, str]] = (),
    allow_outside_root: bool = True,
) -> LicenseInfo:
    """The licence of the artifact at ``path`` and the sources that disagree with it.

    ``hints`` are ``(licence, where)`` pairs found inside model files. A folder is also
    searched at its top level for a model card and LICENSE files; a single file has only
    ``declared`` and ``hints``. The most trusted source that states a licence wins, even
    one we do not recognise: "Proprietary" declared at registration is not overruled by
    an MIT tag some converter left in the metadata. ``allow_outside_root`` is the policy's
    ``symlinks.allow_outside_root``: the scanner's rule for links applies here too.
    """
    claims = [c for c in _claims(Path(path), declared, hints, allow_outside_root) if c is not None]
    if not claims:
        return LicenseInfo(spdx=None, source="none", raw=None)
    chosen, others = claims[0], claims[1:]
    covered = _keys(chosen.spdx)
    conflicts = [c for c in others if c.spdx is not None and not _keys(c.spdx) <= covered]
    return LicenseInfo(chosen.spdx, chosen.source, chosen.raw, conflicts)


def _claims(
    path: Path, declared: str | None, hints: Sequence[tuple[str, str]], outside: bool
) -> Iterator[LicenseClaim | None]:
    """Every source's claim, most trusted first; None for a source that says nothing."""
    yield _stated("declared", declared)
    if path.is_dir():
        files = _top_level_files(path, outside)
        card = files.get(_CARD_FILE)
        if card is not None:
            text = _read_head(card, MAX_CARD_BYTES)
            if text is not None:
                yield license_from_model_card(text, f"{card.name} front-matter")
        for name in _LICENSE_FILES:
            if name in files:
                yield _license_file(files[name])
    for value, where in hints:
        yield _stated(where, value)


def read_model_card(folder: Path, *, allow_outside_root: bool = True) -> str | None:
    """The head of the folder's model card, found as ``detect_license`` finds it, so a
    pull can check the licence it states before copying any model byte."""
    card = _top_level_files(folder, allow_outside_root).get(_CARD_FILE)
    return None if card is None else _read_head(card, MAX_CARD_BYTES)


def _stated(source: str, value: str | None) -> LicenseClaim | None:
    """A licence stated as a string; metadata sometimes holds a whole licence text."""
    if not isinstance(value, str) or value.strip().lower() in _NO_LICENSE:
        return None
    spdx = normalize_license(value)
    if spdx is None and len(value) > _MAX_RAW:
        spdx = license_from_text(value)
    return LicenseClaim(source, _shorten(value), spdx)


def _license_file(path: Path) -> LicenseClaim | None:
    text = _read_head(path, MAX_LICENSE_BYTES)
    if text is None or not text.strip():
        return None
    return LicenseClaim(path.name, None, license_from_text(text))


def _top_level_files(folder: Path, outside: bool) -> dict[str, Path]:
    """Licence-bearing files at the folder's top level by lowercase name.

    A symlink counts when the scanner would scan its target in its place (a regular
    file; outside the folder only when ``outside``): Hugging Face's cache links every
    snapshot file, LICENSE and README.md included, into ``../../blobs/``.
    """
    wanted = {_CARD_FILE, *_LICENSE_FILES}
    found: dict[str, Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        name = entry.name.lower()
        if name not in wanted or name in found:
            continue
        if not entry.is_symlink() or inspect_link(entry, folder).follows(outside):
            found[name] = entry
    return found


def _read_head(path: Path, limit: int) -> str | None:
    """Up to ``limit`` bytes of a regular file as text; None for anything else.

    Opened without blocking so a FIFO named LICENSE cannot hang the scan, and checked to
    be a regular file after opening, so what is read is what was checked.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path.resolve(strict=True), flags)
    except (OSError, RuntimeError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_RAW else text[: _MAX_RAW - 1] + "…"


# --- decisions -----------------------------------------------------------------------------

_RANK = {decision: rank for rank, decision in enumerate(DECISIONS)}  # allow < review < block


def license_decision(spdx: str | None, policy: Policy) -> Decision:
    """What the policy decides for a licence expression.

    ``A OR B`` lets the user pick, so the most permissive option decides; ``A AND B``
    binds them to both, so the most restrictive decides. ``A WITH exception`` decides as
    ``A``: SPDX exceptions (Classpath, LLVM, ...) only grant extra permissions. An
    unknown licence, or an id the policy does not list, gets ``policy.license_default``.
    """
    if spdx is None:
        return policy.license_default
    try:
        expression = _licensing().parse(spdx, validate=False)
    except (ExpressionError, TypeError, ValueError):
        return policy.license_default
    if expression is None:
        return policy.license_default
    return _decide(expression, _policy_table(policy), policy.license_default)


def _decide(expression: Any, table: dict[str, Decision], default: Decision) -> Decision:
    if isinstance(expression, LicenseWithExceptionSymbol):
        return _decide(expression.license_symbol, table, default)
    if isinstance(expression, LicenseSymbol):
        return table.get(expression.key, default)
    decisions = [_decide(arg, table, default) for arg in expression.args]
    pick = min if isinstance(expression, OR) else max
    return pick(decisions, key=_RANK.__getitem__)


def _policy_table(policy: Policy) -> dict[str, Decision]:
    """The policy's licence map keyed by normalised id, so a policy may say ``apache-2.0``
    or ``llama3.1``.

    When two spellings of one licence disagree, the later entry wins: policies are merged
    default first, then the user's file, and within a file allow, review, block; so a
    user's ``llama3.1`` overrides the default's ``LicenseRef-hf-llama3.1``, and a licence
    one file both allows and blocks is blocked.
    """
    return {normalize_license(key) or key: decision for key, decision in policy.licenses.items()}


def _keys(spdx: str | None) -> frozenset[str]:
    """The licence ids an expression mentions, exceptions left out."""
    if spdx is None:
        return frozenset()
    try:
        expression = _licensing().parse(spdx, validate=False)
    except (ExpressionError, TypeError, ValueError):
        return frozenset({spdx})
    if expression is None:
        return frozenset()
    return frozenset(s.key for s in _licensing().license_symbols(expression, decompose=True)
                     if not s.is_exception)  # fmt: skip


__all__ = [
    "LicenseClaim",
    "LicenseInfo",
    "detect_license",
    "hub_ref",
    "license_decision",
    "license_from_model_card",
    "license_from_text",
    "normalize_license",
    "read_model_card",
]
