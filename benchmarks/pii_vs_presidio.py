"""Stoa's personal-data detector against Microsoft Presidio, offline, on one labelled corpus.

Run from the repository root with Stoa's virtualenv::

    .venv/bin/pip install --target benchmarks/.presidio-peers presidio-analyzer
    .venv/bin/python benchmarks/pii_vs_presidio.py [--docs N] [--seed S] [--show K]

What it measures:

* Detection. A seeded corpus of support-ticket and documentation paragraphs is generated with
  planted, valid values of every kind Stoa detects (emails; phone numbers in international,
  North-American and national formats; mod-97-valid IBANs; Luhn-valid Visa, Mastercard (51-55
  and 2221-2720), Amex and Discover numbers; public IPv4 and IPv6 addresses; US SSNs, UK NINOs
  and French INSEE numbers with valid ranges and keys), next to hard distractors that are not
  personal data: dates, timestamps, Unix epochs, version numbers (four-part ones shaped like
  IPv4), semver, order, ticket and tracking ids, Luhn-invalid card-like numbers, IBANs with a
  wrong check, SSNs in never-issued ranges, bad NINO prefixes or suffixes, INSEE numbers with
  a wrong key, git hashes, UUIDs, MAC addresses, ISBNs and loopback addresses. Per kind the
  table gives precision and recall for each tool; a finding counts when it overlaps a planted
  value of the same kind, and "exact" is the share of planted values found with exactly their
  span. Recall is also split by national-id scheme. Up to ``--show`` false positives and
  false negatives of each tool are printed with the matched text.
* Throughput. Every document is scanned one by one; the corpus size (UTF-8 bytes, 10^6 per MB)
  over the median of 3 full passes gives MB/s, with Stoa's ratio to each Presidio variant.

Presidio runs with its default recognizers (UK NINO, disabled by default, is switched on) and,
since ``en_core_web_lg`` downloads from GitHub at first use and no English spaCy model is on
PyPI under its official name, with a blank English spaCy pipeline (``spacy.blank("en")``, plus
a component that sets each token's lemma to its lower-case text so that Presidio's context
words still raise scores). Its pattern, checksum and ``phonenumbers`` recognizers all work
that way; its spaCy NER recognizer finds nothing, so PERSON, LOCATION, NRP and ORGANIZATION
are lost. ``--spacy-model PATH`` runs it with a real pipeline instead (an unpacked model
folder or an installed package name). tldextract, used by Presidio's email recognizer, is
kept on its bundled public-suffix snapshot instead of fetching the list.

Presidio types map to Stoa kinds: EMAIL_ADDRESS, PHONE_NUMBER, IBAN_CODE, CREDIT_CARD,
IP_ADDRESS, and US_SSN / UK_NINO / FR_NIR (when the installed version has it) to
national_id. Its other types (DATE_TIME, URL, US_BANK_NUMBER, ...) are counted separately.
Presidio is scored at its default threshold (every score > 0) and at score >= 0.5.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import ipaddress
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / ".presidio-peers"

sys.path.insert(0, str(ROOT / "src"))
from stoa.develop.rag.pii import find_pii  # noqa: E402

KINDS = ("email", "phone", "iban", "credit_card", "ip_address", "national_id")
PRESIDIO_TO_STOA = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "IBAN_CODE": "iban",
    "CREDIT_CARD": "credit_card",
    "IP_ADDRESS": "ip_address",
    "US_SSN": "national_id",
    "UK_NINO": "national_id",
    "FR_NIR": "national_id",
}
MB = 1_000_000
REPEATS = 3


# --- corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    kind: str  # a Stoa kind, or "" for a distractor
    scheme: str  # finer label: "ssn", "nino", "insee", "mc2", ... or the distractor's name
    start: int
    end: int


@dataclass
class Doc:
    text: str
    gold: list[Span] = field(default_factory=list)  # planted personal data
    decoys: list[Span] = field(default_factory=list)  # planted distractors


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        value = int(ch) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def _group(text: str, sizes: Iterable[int], sep: str) -> str:
    parts, pos = [], 0
    for size in sizes:
        parts.append(text[pos : pos + size])
        pos += size
    return sep.join(parts)


def _card_number(rng: random.Random) -> tuple[str, str]:
    brand = rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover"])
    prefix, length = {
        "visa": ("4", 16),
        "mc": (str(rng.randint(51, 55)), 16),
        "mc2": (str(rng.randint(2221, 2720)), 16),
        "amex": (rng.choice(["34", "37"]), 15),
        "discover": ("6011", 16),
    }[brand]
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + _luhn_digit(body), brand


def _format_card(rng: random.Random, number: str) -> str:
    style = rng.choice(["space", "space", "dash", "compact"])
    if style == "compact":
        return number
    sizes = (4, 6, 5) if len(number) == 15 else (4, 4, 4, 4)
    return _group(number, sizes, " " if style == "space" else "-")


def gen_card(rng: random.Random) -> tuple[str, str]:
    number, brand = _card_number(rng)
    return _format_card(rng, number), brand


def gen_bad_card(rng: random.Random) -> tuple[str, str]:
    number, _ = _card_number(rng)
    wrong = str((int(number[-1]) + rng.randint(1, 9)) % 10)
    return _format_card(rng, number[:-1] + wrong), "luhn_invalid_card"


_IBAN_BBAN: dict[str, Callable[[random.Random], str]] = {
    "DE": lambda r: _digits(r, 18),
    "FR": lambda r: _digits(r, 23),
    "GB": lambda r: r.choice(["NWBK", "BARC", "LOYD", "HBUK"]) + _digits(r, 14),
    "NL": lambda r: r.choice(["ABNA", "INGB", "RABO"]) + _digits(r, 10),
    "ES": lambda r: _digits(r, 20),
    "BE": lambda r: _digits(r, 12),
    "IT": lambda r: r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + _digits(r, 22),
    "CH": lambda r: _digits(r, 17),
}


def _iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    value = int("".join(str(int(ch, 36)) for ch in rearranged))
    return f"{98 - value % 97:02d}"


def _format_iban(rng: random.Random, compact: str) -> str:
    if rng.random() < 0.7:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def gen_iban(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(_IBAN_BBAN))
    bban = _IBAN_BBAN[country](rng)
    return _format_iban(rng, country + _iban_check(country, bban) + bban), country


def gen_bad_iban(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(_IBAN_BBAN))
    bban = _IBAN_BBAN[country](rng)
    good = int(_iban_check(country, bban))
    bad = f"{rng.choice([c for c in range(2, 99) if c != good]):02d}"
    return _format_iban(rng, country + bad + bban), "iban_bad_check"


_FIRST = ["jane", "john", "maria", "li", "ahmed", "sofia", "lucas", "emma", "noah", "chloe"]
_LAST = ["doe", "smith", "garcia", "wang", "khan", "rossi", "martin", "nguyen", "muller", "okafor"]
_DOMAINS = [
    "example.com", "mail.example.co.uk", "acme-corp.io", "contoso.org", "fabrikam.de",
    "university.edu", "gmail.com", "outlook.fr", "support.initech.net",
]  # fmt: skip


def gen_email(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice(
        [f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}",
         f"{first}.{last}+billing", f"{last}.{first}", f"{first}.o'brien"]
    )  # fmt: skip
    return f"{local}@{rng.choice(_DOMAINS)}", "email"


def gen_phone(rng: random.Random) -> tuple[str, str]:
    d = lambda n: _digits(rng, n)  # noqa: E731
    area = f"{rng.randint(2, 9)}{d(2)}"
    line = f"555-01{d(2)}"
    style = rng.choice(
        ["intl_us", "paren", "nanp_dash", "nanp_dot", "intl_uk", "nat_uk", "intl_fr", "nat_fr",
         "intl_de", "nat_de", "mob_de", "mob_uk", "e164", "00_uk"]
    )  # fmt: skip
    value = {
        "intl_us": f"+1 {area}-{line}",
        "paren": f"({area}) {line}",
        "nanp_dash": f"{area}-{line}",
        "nanp_dot": f"{area}.555.01{d(2)}",
        "intl_uk": f"+44 20 7946 0{d(3)}",
        "nat_uk": f"020 7946 0{d(3)}",
        "intl_fr": f"+33 {rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        "nat_fr": f"0{rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        "intl_de": f"+49 30 {rng.randint(1, 9)}{d(7)}",
        "nat_de": f"030 {rng.randint(1, 9)}{d(7)}",
        "mob_de": f"+49 151 {rng.randint(1, 9)}{d(7)}",
        "mob_uk": f"07700 900{d(3)}",
        "e164": f"+1{area}55501{d(2)}",
        "00_uk": f"0044 20 7946 0{d(3)}",
    }[style]
    return value, style


def gen_ipv4(rng: random.Random) -> tuple[str, str]:
    while True:
        addr = ipaddress.IPv4Address(rng.getrandbits(32))
        if addr.is_global:
            return str(addr), "ipv4"


def gen_ipv6(rng: random.Random) -> tuple[str, str]:
    while True:
        addr = ipaddress.IPv6Address((0x2 << 125) | rng.getrandbits(125))
        if addr.is_global:
            if rng.random() < 0.5:  # a run of zero groups, written compressed
                groups = addr.exploded.split(":")
                groups[4:6] = ["0000", "0000"]
                addr = ipaddress.IPv6Address(":".join(groups))
            return addr.compressed, "ipv6"


def gen_ssn(rng: random.Random) -> tuple[str, str]:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}", "ssn"


def gen_bad_ssn(rng: random.Random) -> tuple[str, str]:
    area, group, serial = f"{rng.randint(1, 665):03d}", f"{rng.randint(1, 99):02d}", "0000"
    match rng.randint(0, 4):
        case 0 | 1 | 2:  # area 000 or 666, or 9xx (ITINs, not SSNs)
            area = rng.choice(["000", "666", f"9{_digits(rng, 2)}"])
            serial = f"{rng.randint(1, 9999):04d}"
        case 3:
            group, serial = "00", f"{rng.randint(1, 9999):04d}"
    return f"{area}-{group}-{serial}", "ssn_never_issued"


_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def _format_nino(rng: random.Random, prefix: str, digits: str, suffix: str) -> str:
    if rng.random() < 0.5:
        return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{prefix}{digits}{suffix}"


def gen_nino(rng: random.Random) -> tuple[str, str]:
    while (prefix := rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)) in {
        "BG", "GB", "KN", "NK", "NT", "TN", "ZZ"
    }:  # fmt: skip
        pass
    return _format_nino(rng, prefix, _digits(rng, 6), rng.choice("ABCD")), "nino"


def gen_bad_nino(rng: random.Random) -> tuple[str, str]:
    prefix, suffix = rng.choice(["QQ", "GB", "DA", "AO", "ZZ"]), rng.choice("ABCD")
    if rng.random() < 0.4:
        prefix, suffix = "AB", rng.choice("EFXZ")
    return _format_nino(rng, prefix, _digits(rng, 6), suffix), "nino_invalid"


def _insee(rng: random.Random, *, valid: bool) -> str:
    dept = rng.choice([f"{rng.randint(1, 95):02d}", "2A", "2B", "75", "69", "13"])
    if dept == "20":
        dept = "21"
    body = (
        f"{rng.randint(1, 2)}{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{dept}"
        f"{rng.randint(1, 990):03d}{rng.randint(1, 999):03d}"
    )
    key = 97 - int(body.replace("2A", "19").replace("2B", "18")) % 97
    if not valid:
        key = (key + rng.randint(1, 96) - 1) % 97 + 1
    text = body + f"{key:02d}"
    if rng.random() < 0.5:
        return _group(text, (1, 2, 2, 2, 3, 3, 2), " ")
    return text


def gen_insee(rng: random.Random) -> tuple[str, str]:
    return _insee(rng, valid=True), "insee"


def gen_bad_insee(rng: random.Random) -> tuple[str, str]:
    return _insee(rng, valid=False), "insee_bad_key"


def _distractor(name: str, *choices: Callable[[random.Random], str]):
    def gen(rng: random.Random) -> tuple[str, str]:
        return rng.choice(choices)(rng), name

    return gen


def _date(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(2015, 2027), rng.randint(1, 12), rng.randint(1, 28)


gen_date = _distractor(
    "date",
    lambda r: "{}-{:02d}-{:02d}".format(*_date(r)),
    lambda r: "{2:02d}/{1:02d}/{0}".format(*_date(r)),
    lambda r: "{2:02d}.{1:02d}.{0}".format(*_date(r)),
    lambda r: "{1:02d}-{2:02d}-{0}".format(*_date(r)),
    lambda r: "{}.{:02d}.{:02d}".format(*_date(r)),
)
gen_timestamp = _distractor(
    "timestamp",
    lambda r: (
        "{}-{:02d}-{:02d}T".format(*_date(r)) + f"{r.randint(0, 23):02d}:{_digits(r, 1)}"
        f"{r.randint(0, 9)}:{r.randint(10, 59)}Z"
    ),
    lambda r: (
        "{}-{:02d}-{:02d} ".format(*_date(r)) + f"{r.randint(10, 23)}:{r.randint(10, 59)}"
        f":{r.randint(10, 59)}.{_digits(r, 3)}"
    ),
    lambda r: str(r.randint(1_500_000_000, 1_800_000_000)),
    lambda r: str(r.randint(1_500_000_000_000, 1_800_000_000_000)),
)
gen_version = _distractor(
    "version",
    lambda r: f"v{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 20)}",
    lambda r: f"{r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 99)}",
    lambda r: f"10.0.{r.randint(17000, 26000)}.{r.randint(100, 4000)}",
    lambda r: f"{r.randint(1, 4)}.{r.randint(0, 9)}.0-rc.{r.randint(1, 5)}",
    lambda r: f"{r.randint(1, 4)}.{r.randint(0, 9)}.{r.randint(0, 9)}+build.{_digits(r, 8)}",
)
gen_order = _distractor(
    "order_id",
    lambda r: f"ORD-{r.randint(2019, 2026)}-{_digits(r, 6)}",
    lambda r: f"#{r.randint(3, 6)}{_digits(r, r.randint(9, 12))}",
    lambda r: f"INC{_digits(r, 7)}",
    lambda r: f"PO-{_digits(r, 5)}-{_digits(r, 2)}",
    lambda r: f"SR-{r.randint(2019, 2026)}-{_digits(r, 6)}",
    lambda r: f"{r.randint(3, 6)}{_digits(r, 3)} {_digits(r, 4)} {_digits(r, 4)}",
)
gen_tracking = _distractor(
    "tracking_number",
    lambda r: f"{r.randint(3, 6)}{_digits(r, r.randint(13, 17))}",
    lambda r: f"1Z{_digits(r, 3)}AA1{_digits(r, 10)}",
)
gen_hash = _distractor(
    "hex_id",
    lambda r: f"{r.getrandbits(160):040x}",
    lambda r: f"{r.getrandbits(28):07x}",
    lambda r: f"{r.getrandbits(256):064x}",
    lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    lambda r: ":".join(f"{r.getrandbits(8):02X}" for _ in range(6)),
    lambda r: f"0x{r.getrandbits(32):08X}",
)
gen_loopback = _distractor(
    "loopback",
    lambda r: "127.0.0.1",
    lambda r: f"127.0.0.1:{r.choice([5432, 8000, 8080, 6379])}",
    lambda r: "0.0.0.0",
    lambda r: "::1",
    lambda r: f"localhost:{r.choice([3000, 8443])}",
)
gen_misc_number = _distractor(
    "misc_number",
    lambda r: f"978-{r.randint(0, 1)}-{_digits(r, 3)}-{_digits(r, 5)}-{r.randint(0, 9)}",
    lambda r: f"${r.randint(1, 99)},{_digits(r, 3)}.{_digits(r, 2)}",
    lambda r: f"{r.randint(1, 64)} GB",
    lambda r: f"{r.randint(40, 52)}.{_digits(r, 4)}, {r.randint(1, 9)}.{_digits(r, 4)}",
    lambda r: f"{r.randint(2015, 2022)}-{r.randint(2023, 2026)}",
    lambda r: f"pages {r.randint(10, 99)}-{r.randint(100, 300)}",
)
gen_imei = _distractor(
    "imei",
    lambda r: (lambda body: body + _luhn_digit(body))("35" + _digits(r, 12)),
)

GENERATORS: dict[str, tuple[str, Callable[[random.Random], tuple[str, str]]]] = {
    "email": ("email", gen_email),
    "phone": ("phone", gen_phone),
    "iban": ("iban", gen_iban),
    "card": ("credit_card", gen_card),
    "ipv4": ("ip_address", gen_ipv4),
    "ipv6": ("ip_address", gen_ipv6),
    "ssn": ("national_id", gen_ssn),
    "nino": ("national_id", gen_nino),
    "insee": ("national_id", gen_insee),
    "date": ("", gen_date),
    "ts": ("", gen_timestamp),
    "version": ("", gen_version),
    "order": ("", gen_order),
    "tracking": ("", gen_tracking),
    "hash": ("", gen_hash),
    "loopback": ("", gen_loopback),
    "num": ("", gen_misc_number),
    "imei": ("", gen_imei),
    "badcard": ("", gen_bad_card),
    "badiban": ("", gen_bad_iban),
    "badssn": ("", gen_bad_ssn),
    "badnino": ("", gen_bad_nino),
    "badinsee": ("", gen_bad_insee),
}

# Sentences with slots: ``{name}`` is filled by GENERATORS[name].
TEMPLATES = (
    # support tickets
    "Customer {email} reports that the export job failed on {date} with error {hash}.",
    "Please call me back at {phone} about ticket {order}; I tried twice on {date}.",
    "Refund for order {order} was sent to card {card} on {date}, confirmation {hash}.",
    "My card {card} was charged twice ({num}); the receipt mentions {order}.",
    "The payment from IBAN {iban} bounced, reference {order}, value date {date}.",
    "Wire the deposit to {iban} and quote invoice {order} in the transfer note.",
    "Login attempts from {ipv4} were blocked at {ts}; the proxy itself is {loopback}.",
    "Our firewall saw traffic from {ipv6} at {ts} targeting build {version}.",
    "Employee SSN {ssn} was pasted into the HR form by mistake, see {order}.",
    "Her National Insurance number is {nino} and the payroll run is {order}.",
    "Numero de securite sociale {insee}, dossier {order}, recu le {date}.",
    "You can reach our on-call engineer on {phone} or by mail at {email}.",
    "The contractor's details: {email}, {phone}, national insurance {nino}.",
    "Ship the replacement device (IMEI {imei}) with tracking number {tracking}.",
    "Card ending in the number {badcard} was declined, which is expected for a test card.",
    "The IBAN {badiban} in the template is a placeholder and fails validation.",
    "Form validation rejects {badssn} because that SSN range is never issued.",
    "Test fixtures use {badnino} as a NINO that must be rejected.",
    "The sample INSEE number {badinsee} has a wrong key on purpose.",
    "A second card, {card}, was added by {email} from {ipv4}.",
    # documentation
    "Upgrade from {version} to {version} before {date}; the migration id is {hash}.",
    "Set the bind address to {loopback} for local runs and pin the image to {hash}.",
    "Release {version} (commit {hash}) fixes the crash reported in {order}.",
    "The service listens on {loopback}; metrics are scraped every 15 s since {ts}.",
    "Assembly version {version} ships with schema {version} and needs {num} of RAM.",
    "Example: curl -H 'X-Request-Id: {hash}' http://{loopback}/v1/items?since={ts}",
    "Partition keys look like {tracking} and are retained for {num} days after {date}.",
    "See ISBN {num} for the background, chapter on identifiers, published {date}.",
    "Logs are rotated at {ts}; rows older than {date} are dropped by job {order}.",
    "The gateway at {ipv4} forwards to {ipv6} when the primary at {loopback} is down.",
    "Card tokens such as {hash} replace numbers like {badcard} in every log line.",
    "Contact {email} or dial {phone}; outside office hours use {phone}.",
    "Direct debit mandate for {iban} was signed on {date} by the account holder.",
    "SSN {ssn}, NINO {nino} and NIR {insee} all belong to the same relocated employee.",
    "Billing contact {email} uses card {card} and IBAN {iban}.",
)
_SLOT = re.compile(r"\{(\w+)\}")


def make_corpus(n_docs: int, seed: int) -> list[Doc]:
    """``n_docs`` paragraphs of 3-7 sentences drawn from TEMPLATES, with their labels."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_docs):
        doc = Doc("")
        parts: list[str] = []
        pos = 0
        for template in rng.choices(TEMPLATES, k=rng.randint(3, 7)):
            last = 0
            for match in _SLOT.finditer(template):
                parts.append(template[last : match.start()])
                pos += match.start() - last
                kind, generate = GENERATORS[match.group(1)]
                value, scheme = generate(rng)
                span = Span(kind, scheme, pos, pos + len(value))
                (doc.gold if kind else doc.decoys).append(span)
                parts.append(value)
                pos += len(value)
                last = match.end()
            parts.append(template[last:] + " ")
            pos += len(template) - last + 1
        doc.text = "".join(parts).rstrip()
        docs.append(doc)
    return docs


# --- detectors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    kind: str  # a Stoa kind, or the peer's own type when it maps to none
    start: int
    end: int
    score: float = 1.0


def run_stoa(text: str) -> list[Found]:
    return [Found(f.kind, f.start, f.end) for f in find_pii(text)]


def make_presidio(spacy_model: str | None) -> tuple[Callable[..., list[Found]], dict[str, str]]:
    """A Presidio analyzer that needs no network, and the versions it runs with."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # bundled snapshot only
    sys.path.insert(0, str(PEERS))
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import UkNinoRecognizer
    except ImportError as exc:
        sys.exit(f"Presidio is not installed in {PEERS}: {exc}\n{__doc__}")
    from spacy.language import Language

    @Language.component("lowercase_lemma")
    def lowercase_lemma(doc):  # no lemmatizer in a blank pipeline: approximate one
        for token in doc:
            token.lemma_ = token.lower_
        return doc

    class OfflineSpacyEngine(SpacyNlpEngine):
        def load(self) -> None:
            if spacy_model:
                self.nlp = {"en": spacy.load(spacy_model)}
            else:
                nlp = spacy.blank("en")
                nlp.add_pipe("lowercase_lemma")
                self.nlp = {"en": nlp}

    analyzer = AnalyzerEngine(nlp_engine=OfflineSpacyEngine())
    analyzer.registry.add_recognizer(UkNinoRecognizer())
    supported = set(analyzer.get_supported_entities())
    mapped = sorted(supported & set(PRESIDIO_TO_STOA))

    def run(text: str, *, mapped_only: bool = False) -> list[Found]:
        results = analyzer.analyze(text, language="en", entities=mapped if mapped_only else None)
        return [
            Found(PRESIDIO_TO_STOA.get(r.entity_type, r.entity_type), r.start, r.end, r.score)
            for r in results
        ]

    versions = {
        name: importlib.metadata.version(name)
        for name in ("presidio-analyzer", "spacy", "phonenumbers", "tldextract")
    }
    versions["nlp"] = spacy_model or "spacy.blank('en') + lowercase lemmas"
    versions["mapped types"] = ", ".join(mapped)
    versions["missing types"] = ", ".join(sorted(set(PRESIDIO_TO_STOA) - supported)) or "none"
    return run, versions


# --- scoring -----------------------------------------------------------------------------


@dataclass
class Score:
    tp: Counter = field(default_factory=Counter)  # findings overlapping a same-kind value
    fp: Counter = field(default_factory=Counter)
    found: Counter = field(default_factory=Counter)  # planted values found, by kind / scheme
    exact: Counter = field(default_factory=Counter)
    total: Counter = field(default_factory=Counter)
    other: Counter = field(default_factory=Counter)  # peer types with no Stoa kind
    fp_on: Counter = field(default_factory=Counter)  # (kind, what the false positive hit)
    fp_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    fn_examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def _overlaps(a: Span | Found, b: Span | Found) -> bool:
    return a.start < b.end and b.start < a.end


def _context(text: str, start: int, end: int, width: int = 25) -> str:
    left = text[max(0, start - width) : start].replace("\n", " ")
    right = text[end : end + width].replace("\n", " ")
    return f"...{left}[{text[start:end]}]{right}..."


def score(docs: list[Doc], results: list[list[Found]], min_score: float = 0.0) -> Score:
    s = Score()
    for doc, found in zip(docs, results, strict=True):
        found = sorted({f for f in found if f.score >= min_score}, key=lambda f: f.start)
        for f in found:
            if f.kind not in KINDS:
                s.other[f.kind] += 1
                continue
            if any(g.kind == f.kind and _overlaps(g, f) for g in doc.gold):
                s.tp[f.kind] += 1
                continue
            s.fp[f.kind] += 1
            hit = [d.scheme for d in doc.decoys + doc.gold if _overlaps(d, f)]
            label = f"{hit[0]}" if hit else "prose"
            s.fp_on[f.kind, label] += 1
            s.fp_examples[f.kind].append(f"({label}) {_context(doc.text, f.start, f.end)}")
        for g in doc.gold:
            for key in {g.kind, f"{g.kind}:{g.scheme}"}:
                s.total[key] += 1
            hits = [f for f in found if f.kind == g.kind and _overlaps(f, g)]
            if hits:
                for key in {g.kind, f"{g.kind}:{g.scheme}"}:
                    s.found[key] += 1
                if any((f.start, f.end) == (g.start, g.end) for f in hits):
                    s.exact[g.kind] += 1
                else:
                    spans = ", ".join(repr(doc.text[f.start : f.end]) for f in hits)
                    s.fn_examples[g.kind].append(
                        f"(partial: {spans}) {g.scheme}: {doc.text[g.start : g.end]!r}"
                    )
            else:
                other = [f.kind for f in found if _overlaps(f, g)]
                note = f" (reported as {other[0]})" if other else ""
                s.fn_examples[g.kind].append(f"{g.scheme}: {doc.text[g.start : g.end]!r}{note}")
    return s


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "-"


def print_table(scores: dict[str, Score]) -> None:
    """One block of columns per tool: false positives, precision, recall, exact-span recall.
    Rows by scheme (card brand, phone format, IBAN country, national id) give recall only."""
    names = list(scores)
    cols = f"{'fp':>5} {'P':>6} {'R':>6} {'exact':>6}"
    print(f"{'':<22}{'':>8}" + "".join(f" | {n:^27}" for n in names))
    print(f"{'kind':<22}{'planted':>8}" + f" | {cols}" * len(names))
    print("-" * (30 + 30 * len(names)))
    first = scores[names[0]]
    schemes = sorted(k for k in first.total if ":" in k and k.split(":")[0] != "email")
    for row in [*KINDS, *schemes]:
        line = f"{row:<22}{first.total[row]:>8}"
        for name in names:
            s = scores[name]
            recall = _ratio(s.found[row], s.total[row])
            if ":" in row:
                line += f" | {'':>5} {'':>6} {recall:>6} {'':>6}"
            else:
                precision = _ratio(s.tp[row], s.tp[row] + s.fp[row])
                exact = _ratio(s.exact[row], s.total[row])
                line += f" | {s.fp[row]:>5} {precision:>6} {recall:>6} {exact:>6}"
        print(line)
    print("fp: findings overlapping no planted value of their kind; exact: found with its span")
    for name in names:
        hits = ", ".join(f"{k}<-{label} {n}" for (k, label), n in scores[name].fp_on.most_common())
        print(f"  {name} false positives by what they hit: {hits or 'none'}")


def print_examples(name: str, s: Score, limit: int) -> None:
    if limit <= 0:
        return
    print(f"\n{name}: false positives / false negatives (up to {limit} per kind)")
    for kind in KINDS:
        for label, examples in (("FP", s.fp_examples[kind]), ("FN", s.fn_examples[kind])):
            by_shape = Counter(examples)
            for example, count in by_shape.most_common(limit):
                print(f"  {label} {kind:<12} {example}" + (f"  x{count}" if count > 1 else ""))
            if len(examples) > limit:
                print(f"  {label} {kind:<12} ... {len(examples)} in all")
    if s.other:
        print("  other types reported: " + ", ".join(f"{k} {v}" for k, v in s.other.most_common()))


def timed(fn: Callable[[str], list[Found]], docs: list[Doc]) -> tuple[float, list[list[Found]]]:
    """Median seconds of REPEATS full passes, and the findings of the first."""
    times, first = [], None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = [fn(doc.text) for doc in docs]
        times.append(time.perf_counter() - t0)
        first = first or out
    return statistics.median(times), first


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--docs", type=int, default=1000, help="paragraphs in the corpus")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=5, help="examples per kind and error type")
    parser.add_argument("--spacy-model", help="spaCy pipeline (path or package) for Presidio")
    args = parser.parse_args(argv)

    docs = make_corpus(args.docs, args.seed)
    size = sum(len(d.text.encode()) for d in docs) / MB
    planted = sum(len(d.gold) for d in docs)
    decoys = sum(len(d.decoys) for d in docs)
    print(f"corpus: {len(docs)} paragraphs, {size:.2f} MB, {planted} planted values, "
          f"{decoys} distractors (seed {args.seed})")  # fmt: skip

    t0 = time.perf_counter()
    presidio, versions = make_presidio(args.spacy_model)
    presidio("warm-up call 203.0.113.7")
    load_s = time.perf_counter() - t0
    print(f"python {sys.version.split()[0]}; " + "; ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"presidio start-up (import + engine + first call): {load_s:.1f} s\n")

    stoa_s, stoa_found = timed(run_stoa, docs)
    pres_s, pres_found = timed(presidio, docs)
    pres_mapped_s, _ = timed(lambda text: presidio(text, mapped_only=True), docs)

    scores = {
        "stoa": score(docs, stoa_found),
        "presidio (default)": score(docs, pres_found),
        "presidio score>=0.5": score(docs, pres_found, min_score=0.5),
    }
    print_table(scores)

    print(f"\nthroughput, median of {REPEATS} passes over {size:.2f} MB, one call per paragraph:")
    rows = (
        ("stoa find_pii", stoa_s),
        ("presidio, all default recognizers", pres_s),
        ("presidio, only the mapped entity types", pres_mapped_s),
    )
    for label, seconds in rows:
        ratio = "" if seconds is stoa_s else f"   stoa is {seconds / stoa_s:,.0f}x faster"
        print(f"  {label:<40} {size / seconds:9.3f} MB/s  ({seconds:.2f} s){ratio}")

    print_examples("stoa", scores["stoa"], args.show)
    print_examples("presidio (default)", scores["presidio (default)"], args.show)


if __name__ == "__main__":
    main()
