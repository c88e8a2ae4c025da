"""Personal data in ingested text: find it, redact it, or refuse the document.

Each kind is a compiled candidate regex plus a validator (checksum, ranges, shape rules),
because regexes alone flag every order number and version string; for IPv4 addresses,
phone and card numbers the text just before a candidate is checked too (``version 1.2.3.4``
names a release, digits after ``NL87 ABNA`` belong to an IBAN). IBANs and UK NI numbers
are found in upper or lower case (``de89 3704 ...``, ``ab123456c``), not in a mix. Findings
carry only kind and offsets, never the matched value, so a report or a log line cannot
leak it.

A per-knowledge-base policy decides what is stored: ``allow`` keeps the text and counts
the findings, ``redact`` stores the text with each finding replaced by a ``[KIND]``
placeholder (the original is never returned), ``block`` refuses the whole document.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

from stoa.core.errors import InvalidInputError

PiiPolicy = Literal["allow", "redact", "block"]

#: A validator gets a candidate match and answers how many of its leading characters form
#: a valid value (0: none), so it can trim a candidate that ran into neighbouring text.
Validator = Callable[[str], int]


@dataclass(frozen=True)
class PiiFinding:
    kind: str
    start: int  # character offsets into the text: the value is text[start:end]
    end: int


#: One placeholder of a redacted text: (redacted_start, redacted_end, original_start,
#: original_end), so that ``redacted[rs:re]`` is the label standing for ``original[os:oe]``.
Placeholder = tuple[int, int, int, int]


@dataclass(frozen=True)
class PolicyResult:
    text: str | None  # what to store: original (allow), redacted (redact), None (block)
    counts: dict[str, int]
    blocked: bool
    reason: str | None
    placeholders: tuple[Placeholder, ...] = ()  # sorted; empty unless redacted

    def original_offset(self, offset: int, *, end: bool = False) -> int:
        """Where ``offset`` in ``text`` points in the text the policy was given.

        Outside a placeholder an offset moves by what the placeholders before it added or
        took away. Strictly inside one it maps to the finding's original start, or with
        ``end`` (an offset that ends a span) to its original end, so a span that cuts a
        placeholder still covers the whole finding.
        """
        if self.text is None:
            raise ValueError("a blocked text has no offsets")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError("offset must be an int")
        if not 0 <= offset <= len(self.text):
            raise ValueError(f"offset {offset} is outside 0..{len(self.text)}")
        i = bisect.bisect_left(self.placeholders, offset, key=lambda p: p[0])
        if i == 0:
            return offset
        _, red_end, original_start, original_end = self.placeholders[i - 1]
        if offset < red_end:  # after the label's start: inside it
            return original_end if end else original_start
        return offset - red_end + original_end


def _boundary(first: str, not_after: str, rest: str) -> re.Pattern[str]:
    """Compile ``first rest``, where the first character must not follow ``not_after``.

    Written as ``first(?<!not_after.)rest`` rather than with a leading lookbehind: a pattern
    that begins with a character class lets the regex engine skip to candidate characters
    in C, which makes every scan several times faster on ordinary prose.
    """
    return re.compile(f"{first}(?<!{not_after}.){rest}")


# --- email -------------------------------------------------------------------------------

# Starts with a lookbehind, unlike the other patterns: its first character class is every
# word character, so there is nothing for the engine to skip to. It only runs on text
# holding an "@". An apostrophe may sit inside the local part (``jane.o'brien@...``, valid
# atext in RFC 5322) but not start or end it, so a quoted ``'jane@example.com'`` keeps its
# quotes out; ``(?<!\w')`` stops a match from starting after ``o'`` in ``o'brien``. The
# possessive quantifiers never backtrack: a word not followed by "@" fails at once.
_EMAIL = re.compile(
    r"(?<![\w.%+-])(?<!\w')[\w.%+-]++(?:'[\w.%+-]++)*+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"(?![\w-]|\.[A-Za-z0-9])"
)


def _valid_email(candidate: str) -> int:
    """The regex fixes the domain; the local part has at most 64 characters and must not
    start, end or double a dot."""
    local = candidate.split("@", 1)[0]
    if len(local) > 64 or len(candidate) > 254:
        return 0
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return 0
    return len(candidate)


# --- phone -------------------------------------------------------------------------------

# Groups of digits joined by one space, dash or dot, optionally a leading +CC or a
# parenthesised area code. The lookarounds keep it from starting or ending inside a
# longer number, word, path or dotted version, or in the middle of a run of digit groups.
# A group holds up to 8 digits: German and UK subscriber numbers are often written in one
# block (``030 12345678``, ``0151 23456789``, ``07700 900123``).
_PHONE_GROUP = r"(?:[ .-]?\(\d{1,4}\)|[ .-]\d{1,8}|(?<=\))\d{1,8})"
_PHONE = re.compile(
    r"[+(\d](?<![\w+./-].)(?<!\d[ .-][(\d])"
    rf"(?:(?<=\+)\d{{1,15}}{_PHONE_GROUP}{{0,7}}"  # +CC..., digits may run together
    rf"|(?:(?<=\()\d{{1,5}}\)|(?<=\d)\d{{0,4}}){_PHONE_GROUP}{{1,7}})"  # at least two groups
    r"(?![\w/]|[.-]\d)"
)
_PHONE_SEPARATORS = re.compile(r"[ .()-]+")
_DATE_SHAPE = re.compile(r"\d{4}([-. ])\d{1,2}\1\d{1,2}|\d{1,2}([-. ])\d{1,2}\2\d{2}(?:\d{2})?")
_SSN_SHAPE = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_NANP_SHAPE = re.compile(r"(?:1([-. ]))?\d{3}([-. ])\d{3}\2\d{4}")
_PAREN_AREA = re.compile(r"\((?:\d{3}|0\d{1,4})\) ?\d")
# ITU-T E.164 country codes: every code starting 1-9 is assigned or a zone of 3-digit codes,
# except the unassigned 28x, 83x and 89x; none starts with 0. North America (+1) and
# Russia/Kazakhstan (+7) always have exactly 10 digits after the code.
_UNASSIGNED_CC = ("0", "28", "83", "89")
_NATIONAL_LENGTH = {"1": 10, "7": 10}


def _valid_phone(candidate: str) -> int:
    """Accept only shapes people write phone numbers in; digit soup stays unflagged.

    Rules: 7-15 digits in all, and one of: international (``+CC`` or ``00`` prefix, digits
    may be run together, the country code must exist and fix the length where it does), a
    parenthesised area code of 3 digits or starting with 0 followed by at least 6 digits, a
    North-American ``NNN-NNN-NNNN`` with one consistent separator, or a national trunk
    number (leading 0, at least two groups of 2+ digits, 9-12 digits). Dates and numbers
    without any separator (order numbers, card and IBAN candidates) and the SSN shape
    ``NNN-NN-NNNN`` / ``NNN NN NNNN`` (an SSN with an invalid range is still not a phone)
    are rejected.
    """
    digits = sum(ch.isdigit() for ch in candidate)
    if not 7 <= digits <= 15:
        return 0
    if _DATE_SHAPE.fullmatch(candidate) or _SSN_SHAPE.fullmatch(candidate):
        return 0
    groups = [g for g in _PHONE_SEPARATORS.split(candidate.lstrip("+")) if g]
    if candidate.startswith("+"):
        return len(candidate) if _country_code_ok(candidate[1:]) else 0
    if len(groups) < 2:
        return 0  # a plain digit run: an order number, or a card/IBAN candidate
    if candidate.startswith("00") and digits >= 9:
        return len(candidate) if _country_code_ok(candidate[2:]) else 0
    if candidate.startswith("("):
        return len(candidate) if _PAREN_AREA.match(candidate) and digits - 3 >= 6 else 0
    if _NANP_SHAPE.fullmatch(candidate):
        return len(candidate)
    trunk = candidate.startswith("0") and "." not in candidate and 9 <= digits <= 12
    return len(candidate) if trunk and all(len(g) >= 2 for g in groups) else 0


def _country_code_ok(international: str) -> bool:
    """The digits after ``+`` or ``00`` start with an assigned country code, and +1 / +7
    numbers have their fixed length (so ``0012 3456 789`` is a reference, not a US number).
    A ``(0)`` trunk prefix, as in ``+44 (0)20 ...``, is not counted."""
    digits = "".join(ch for ch in international.replace("(0)", "") if ch.isdigit())
    if digits.startswith(_UNASSIGNED_CC):
        return False
    expected = _NATIONAL_LENGTH.get(digits[:1])
    return expected is None or len(digits) - 1 == expected


# --- IBAN --------------------------------------------------------------------------------

# Digits right after ``NL87 ABNA `` or ``CH79 `` (country, check digits, 4-character groups)
# are the rest of an IBAN, even one whose checksum fails: a phone or card number never
# continues such a code. Checked before phone and card findings.
_AFTER_IBAN_HEAD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4})* \Z")

_IBAN = _boundary(
    "[A-Z]",
    "[A-Za-z0-9]",
    r"[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
)
# The same in lower case (``de89 3704 ...``), run only where _LOWER_CASE_HINT finds a start.
_IBAN_LOWER = _boundary(
    "[a-z]",
    "[A-Za-z0-9]",
    r"[a-z]\d{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,3})?(?![A-Za-z0-9])",
)
#: IBAN lengths of the SEPA countries; others only need 15-34 characters and the checksum
#: (and upper case, see _valid_iban).
_IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27,
    "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "VA": 22,
}  # fmt: skip


def _iban_checksum_ok(compact: str) -> bool:
    """ISO 7064 mod 97-10: country and check digits moved to the end, letters as 10-35."""
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _valid_iban(candidate: str) -> int:
    """Exact length for known countries (trimming a trailing group that ran on), 15-34
    otherwise, and always the mod-97 checksum. A lower-case one must be from a listed
    country: chains of four-letter words in prose have the shape of a lower-case IBAN and
    pass the checksum one time in 97."""
    compact = candidate.replace(" ", "")
    expected = _IBAN_LENGTHS.get(compact[:2].upper())
    if expected is None and compact.islower():
        return 0
    if expected is None:
        ok = 15 <= len(compact) <= 34 and _iban_checksum_ok(compact)
        return len(candidate) if ok else 0
    if len(compact) < expected:
        return 0
    cut = _prefix_with_alnum(candidate, expected)
    if cut < len(candidate) and candidate[cut] != " ":
        return 0  # the extra characters are not a separate group
    return cut if _iban_checksum_ok(compact[:expected]) else 0


def _prefix_with_alnum(text: str, count: int) -> int:
    """Length of the shortest prefix of ``text`` holding ``count`` non-space characters."""
    seen = 0
    for i, ch in enumerate(text):
        if ch != " ":
            seen += 1
            if seen == count:
                return i + 1
    return len(text)


# --- credit card -------------------------------------------------------------------------

# Either 13-19 digits run together, or groups of 3-6 digits with one consistent separator.
_CARD = _boundary(
    "[2-6]", r"[\d-]", r"(?:\d{12,18}|\d{3,5}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{3,6}){1,4})(?!\d)"
)
_CARD_GROUP_END = re.compile(r"(?=[ -])|$")
# Issuer prefix ranges (first, last; compared as equal-length digit strings) and the number
# lengths each brand issues, after the published IIN tables (ISO/IEC 7812 ranges as listed
# by the networks and summarised in Wikipedia's "Payment card number"). A Luhn-valid number
# of a length its prefix never has (a 15-digit IMEI starting 35, a 13-digit order id
# starting 300) is not a card. Maestro is kept to its own prefixes and 13-19 digits (it
# also issues 12, below the scanner's 13-digit floor).
_CARD_BRANDS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (13, 16, 19)),  # Visa (Electron included)
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard 2-series
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("36", "36", (14, 15, 16, 17, 18, 19)),  # Diners Club International
    ("38", "39", (14, 15, 16, 17, 18, 19)),
    ("300", "305", (14, 15, 16, 17, 18, 19)),
    ("3095", "3095", (14, 15, 16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("2200", "2204", (16, 17, 18, 19)),  # Mir
    ("5018", "5018", (13, 14, 15, 16, 17, 18, 19)),  # Maestro
    ("5020", "5020", (13, 14, 15, 16, 17, 18, 19)),
    ("5038", "5038", (13, 14, 15, 16, 17, 18, 19)),
    ("5893", "5893", (13, 14, 15, 16, 17, 18, 19)),
    ("6304", "6304", (13, 14, 15, 16, 17, 18, 19)),
    ("6759", "6759", (13, 14, 15, 16, 17, 18, 19)),
    ("6761", "6763", (13, 14, 15, 16, 17, 18, 19)),
)


def _brand_length_ok(digits: str) -> bool:
    """Some brand issues numbers with this prefix at this length."""
    return any(
        first <= digits[: len(first)] <= last and len(digits) in lengths
        for first, last, lengths in _CARD_BRANDS
    )


def _luhn_ok(digits: str) -> bool:
    """The Luhn mod-10 checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        value = ord(ch) - 48
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _valid_card(candidate: str) -> int:
    """13-19 digits with a brand's prefix and length, passing Luhn; the longest prefix
    ending at a group boundary wins, so a trailing expiry or amount that the grouping
    swallowed is dropped again."""
    ends = sorted({m.start() for m in _CARD_GROUP_END.finditer(candidate)}, reverse=True)
    for end in ends:
        digits = candidate[:end].replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _brand_length_ok(digits) and _luhn_ok(digits):
            return end
    return 0


# --- IP addresses ------------------------------------------------------------------------

_IPV4 = _boundary(r"\d", r"[\w.]", r"\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\.?\d|\w)")
# A candidate has two colons near its start; the standard library validates the rest.
_IPV6 = _boundary(
    "[0-9A-Fa-f:]",
    r"[\w:.]",
    r"(?=(?<=:)[0-9A-Fa-f]{0,4}:|(?<!:)[0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}:)"
    r"[0-9A-Fa-f:.]{1,44}(?!\w)",
)
_HEX_DIGIT = re.compile(r"[0-9A-Fa-f]")
# A four-part version (``1.2.3.4``) has the shape of an IPv4 address. One written right
# after a version word, optionally with ``.``, ``:`` or ``=`` and spaces (``version 1.2.3.4``,
# ``Release: 1.2.3.4``, ``v. 1.2.3.4``), is a version; straight after a letter
# (``v1.2.3.4``) the pattern's boundary already rules it out. Without such a word it stays
# an address: ``from 1.2.3.4`` could be either, and missing a host is the worse mistake.
_VERSION_WORD = re.compile(
    r"\b(?:v|ver|version|rel|release|rev|revision|build)[.:=]?[ \t]*\Z", re.IGNORECASE
)


def _valid_ipv4(candidate: str) -> int:
    """Each octet 0-255 and no leading zeros (``01.02.03.04`` is more likely a date).

    Addresses that never identify a machine are dropped, like ``::1`` for IPv6: loopback
    (127/8), "this network" (0/8, including ``0.0.0.0``) and netmasks (``255.255.255.0``,
    ones then zeros from a leading 255). Private ranges (10/8, 172.16/12, 192.168/16) and
    link-local ones are still reported: inside a network they name one machine, and leaked
    internal addressing is what a redaction policy is meant to catch.
    """
    value = 0
    for octet in candidate.split("."):
        if int(octet) > 255 or (len(octet) > 1 and octet[0] == "0"):
            return 0
        value = value << 8 | int(octet)
    first = value >> 24
    host_bits = ~value & 0xFFFFFFFF
    netmask = first == 255 and host_bits & (host_bits + 1) == 0  # 1s then 0s
    return 0 if first in (0, 127) or netmask else len(candidate)


def _valid_ipv6(candidate: str) -> int:
    """The standard library decides; at least 4 hex digits so ``A::B`` in code and the
    non-identifying ``::1`` / ``::`` are not reported."""
    trimmed = candidate.rstrip(".")
    if trimmed.endswith(":") and not trimmed.endswith("::"):
        trimmed = trimmed[:-1]
    if len(_HEX_DIGIT.findall(trimmed)) < 4:
        return 0
    try:
        ipaddress.IPv6Address(trimmed)
    except ValueError:
        return 0
    return len(trimmed)


# --- national identifiers ----------------------------------------------------------------

# Dashed, or spaced (``078 05 1120``); a spaced one must not sit inside a longer run of
# space-separated digit groups either.
_SSN = re.compile(
    r"\d(?<![\d-].)"
    r"(?:\d{2}-\d{2}-\d{4}(?!-?\d)|(?<!\d .)\d{2} \d{2} \d{4}(?![- ]?\d))"
)
# UK National Insurance: first letter not D F I Q U V, second not D F I O Q U V.
_NINO = _boundary(
    "[A-CEGHJ-PR-TW-Z]",
    "[A-Za-z0-9]",
    r"[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])",
)
_NINO_LOWER = _boundary(
    "[a-ceghj-pr-tw-z]",
    "[A-Za-z0-9]",
    r"[a-ceghj-npr-tw-z] ?\d{2} ?\d{2} ?\d{2} ?[a-d](?![A-Za-z0-9])",
)
# Lower-case IBANs and NINOs are rare, and a pattern starting with any lower-case letter
# would try every word of prose, so their passes run only on text where this search finds
# one of their shapes. It starts at the first digit (digits are far rarer than letters) and
# follows the whole shape, so hex ids such as ``ab12cdef...`` do not set it off.
_LOWER_NINO_TAIL = r"\d ?\d{2} ?\d{2} ?[a-d](?![A-Za-z0-9])"
_LOWER_CASE_HINT = re.compile(
    r"\d(?:(?<=(?<![A-Za-z0-9])[a-z]{2}\d)"
    r"(?:\d(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,3})?(?![A-Za-z0-9])|" + _LOWER_NINO_TAIL + ")"
    r"|(?<=(?<![A-Za-z0-9])[a-z]{2} \d)" + _LOWER_NINO_TAIL + ")"
)
_NINO_UNALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
# French INSEE (NIR): sex, year, month, department (2A/2B for Corsica), commune, order, key.
_INSEE = _boundary(
    "[12]", r"\w", r" ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?!\w)"
)


def _valid_ssn(candidate: str) -> int:
    """US SSN: area never 000, 666 or 9xx; group never 00; serial never 0000."""
    area, group, serial = candidate[:3], candidate[4:6], candidate[7:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return 0
    return len(candidate)


def _valid_nino(candidate: str) -> int:
    """The letter rules are in the regex; a few prefixes are never allocated."""
    return 0 if candidate[:2].upper() in _NINO_UNALLOCATED else len(candidate)


def _valid_insee(candidate: str) -> int:
    """Key = 97 - (first 13 digits mod 97), with Corsica's 2A/2B counted as 19/18."""
    compact = candidate.replace(" ", "")
    body = compact[:13].replace("2A", "19").replace("2B", "18")
    return len(candidate) if 97 - int(body) % 97 == int(compact[13:]) else 0


# --- scanning ----------------------------------------------------------------------------

#: How far back a detector's ``not_after`` pattern looks: a grouped IBAN's head is shorter.
_CONTEXT_CHARS = 48


@dataclass(frozen=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    validate: Validator
    # what the text must hold for the pass to run at all: a character or a pattern's match
    required: str | re.Pattern[str] | None = None
    not_after: re.Pattern[str] | None = None  # rejects a value whose preceding text matches


# Order is specificity: on a tie in length the earlier kind wins (an SSN is also a dashed
# or spaced run of digit groups, as is a spaced INSEE number).
_DETECTORS: tuple[_Detector, ...] = (
    _Detector("national_id", _SSN, _valid_ssn),
    _Detector("national_id", _NINO, _valid_nino),
    _Detector("national_id", _NINO_LOWER, _valid_nino, _LOWER_CASE_HINT),
    _Detector("national_id", _INSEE, _valid_insee),
    _Detector("iban", _IBAN, _valid_iban),
    _Detector("iban", _IBAN_LOWER, _valid_iban, _LOWER_CASE_HINT),
    _Detector("credit_card", _CARD, _valid_card, None, _AFTER_IBAN_HEAD),
    _Detector("email", _EMAIL, _valid_email, "@"),
    _Detector("ip_address", _IPV6, _valid_ipv6, ":"),
    _Detector("ip_address", _IPV4, _valid_ipv4, ".", _VERSION_WORD),
    _Detector("phone", _PHONE, _valid_phone, None, _AFTER_IBAN_HEAD),
)
_RANK = {d.kind: rank for rank, d in reversed(list(enumerate(_DETECTORS)))}
_LABELS = {d.kind: f"[{d.kind.upper()}]" for d in _DETECTORS}


def find_pii(text: str) -> list[PiiFinding]:
    """Non-overlapping findings sorted by start; where two overlap the longer one wins,
    then the more specific kind."""
    candidates: list[PiiFinding] = []
    hints: dict[re.Pattern[str], bool] = {}
    for detector in _DETECTORS:
        required = detector.required
        if isinstance(required, re.Pattern):
            if required not in hints:
                hints[required] = required.search(text) is not None
            if not hints[required]:
                continue
        elif required is not None and required not in text:
            continue  # skip a whole pass when it cannot match
        candidates.extend(_scan(text, detector))
    return _resolve_overlaps(candidates)


def _scan(text: str, detector: _Detector) -> list[PiiFinding]:
    """Validated matches of one pattern. After a rejected candidate the search resumes one
    character in, so a valid value right behind digit soup is still found; the patterns'
    lookbehinds stop that from re-scanning inside the same number. ``not_after`` is only
    tried on values the validator accepted, over the few characters before them."""
    found: list[PiiFinding] = []
    pos = 0
    while (match := detector.pattern.search(text, pos)) is not None:
        start = match.start()
        length = detector.validate(match.group())
        if length and _preceded_by(text, start, detector.not_after):
            length = 0
        if length:
            found.append(PiiFinding(detector.kind, start, start + length))
            pos = start + length
        else:
            pos = start + 1
    return found


def _preceded_by(text: str, start: int, pattern: re.Pattern[str] | None) -> bool:
    """Whether the characters before ``start`` end with a match of ``pattern``."""
    return pattern is not None and bool(pattern.search(text, max(0, start - _CONTEXT_CHARS), start))


def _resolve_overlaps(candidates: list[PiiFinding]) -> list[PiiFinding]:
    """Greedy by length, then kind rank: keeps the most informative label for each span."""
    ordered = sorted(candidates, key=lambda f: (f.start - f.end, _RANK[f.kind], f.start))
    starts: list[int] = []
    kept: list[PiiFinding] = []  # kept sorted by start, parallel to ``starts``
    for finding in ordered:
        i = bisect.bisect_left(starts, finding.start)
        if i > 0 and kept[i - 1].end > finding.start:
            continue
        if i < len(kept) and kept[i].start < finding.end:
            continue
        starts.insert(i, finding.start)
        kept.insert(i, finding)
    return kept


def redact(text: str, findings: list[PiiFinding]) -> str:
    """Replace each finding with its ``[KIND]`` placeholder; findings must not overlap."""
    return _redacted(text, findings)[0]


def _redacted(text: str, findings: list[PiiFinding]) -> tuple[str, tuple[Placeholder, ...]]:
    """The redacted text and where each placeholder sits in it and in ``text``."""
    parts: list[str] = []
    placeholders: list[Placeholder] = []
    cursor = 0
    length = 0  # of the redacted text so far
    for finding in sorted(findings, key=lambda f: f.start):
        kept = text[cursor : finding.start]
        label = _LABELS.get(finding.kind, f"[{finding.kind.upper()}]")
        parts += [kept, label]
        length += len(kept)
        placeholders.append((length, length + len(label), finding.start, finding.end))
        length += len(label)
        cursor = finding.end
    parts.append(text[cursor:])
    return "".join(parts), tuple(placeholders)


def apply_policy(text: str, policy: PiiPolicy) -> PolicyResult:
    """What to store for one text under a knowledge base's policy, with counts by kind."""
    if policy not in get_args(PiiPolicy):
        raise InvalidInputError(
            f"unknown PII policy {policy!r}", field="pii", fix="use allow, redact or block"
        )
    findings = find_pii(text)
    counts = dict(sorted(Counter(f.kind for f in findings).items()))
    if policy == "allow" or not findings:
        return PolicyResult(text, counts, blocked=False, reason=None)
    if policy == "redact":
        redacted, placeholders = _redacted(text, findings)
        return PolicyResult(redacted, counts, blocked=False, reason=None, placeholders=placeholders)
    summary = ", ".join(f"{kind}: {n}" for kind, n in counts.items())
    return PolicyResult(None, counts, blocked=True, reason=f"personal data found ({summary})")
