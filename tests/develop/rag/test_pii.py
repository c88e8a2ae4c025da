"""PII detection: true positives per kind, false-positive guards, redaction and policies."""

from __future__ import annotations

from itertools import pairwise

import pytest

from stoa.core.errors import InvalidInputError
from stoa.develop.rag.pii import PiiFinding, apply_policy, find_pii, redact


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find_pii(text)]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("DE89370400440532013000", "iban"),
        ("DE89 3704 0044 0532 0130 00", "iban"),
        ("GB82WEST12345698765432", "iban"),
        ("GB82 WEST 1234 5698 7654 32", "iban"),
        ("FR1420041010050500013M02606", "iban"),
        ("NL91ABNA0417164300", "iban"),
        ("4111 1111 1111 1111", "credit_card"),
        ("4111-1111-1111-1111", "credit_card"),
        ("5500000000000004", "credit_card"),
        ("378282246310005", "credit_card"),
        ("jane.doe@example.com", "email"),
        ("a.b+tag@mail.example.co.uk", "email"),
        ("+44 20 7946 0958", "phone"),
        ("+1 (555) 555-0123", "phone"),
        ("+44 (0)20 7946 0958", "phone"),
        ("+447946095812", "phone"),
        ("(555) 555-0123", "phone"),
        ("555-555-0123", "phone"),
        ("555.555.0123", "phone"),
        ("020 7946 0958", "phone"),
        ("06 12 34 56 78", "phone"),
        ("192.168.0.1", "ip_address"),
        ("8.8.8.8", "ip_address"),
        ("2001:db8::8a2e:370:7334", "ip_address"),
        ("fe80::1", "ip_address"),
        ("::ffff:192.0.2.1", "ip_address"),
        ("123-45-6789", "national_id"),
        ("078-12-3456", "national_id"),
        ("AB123456C", "national_id"),
        ("AB 12 34 56 C", "national_id"),
        ("1 85 05 78 006 084 91", "national_id"),
    ],
)
def test_finds_each_kind_in_prose(value: str, kind: str) -> None:
    text = f"Contact details: {value}. Thanks!"
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "IBAN DE89370400440532013001 has a wrong check digit",
        "GB82 WEST 1234 5698 7654 33",
        "card 4111111111111112 fails Luhn",
        "not an IP: 999.999.1.1",
        "version 1.2.3.4.5 released",
        "released on 2024-01-02",
        "released on 02.01.2024",
        "SSNs 000-12-3456, 666-12-3456 and 912-12-3456 are never issued",
        "group 00 in 123-00-4567 and serial 0000 in 123-45-0000 are invalid",
        "order 123456789012 shipped",  # a plain digit run is never a phone
        "in 2023 about 1500 people came",
        "see Smith (2019) 123-130",
        "std::vector and A::B are code, 12:30:45 is a time",
        "BG123456C and DA123456C are not NI numbers",
        "address x@localhost has no dotted domain",
    ],
)
def test_false_positive_guards(text: str) -> None:
    assert find_pii(text) == []


# Regressions found by benchmarks/pii_vs_presidio.py: each value must be found whole.
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        # Mastercard 2-series (2221-2720)
        ("2221 0000 0000 0009", "credit_card"),
        ("2720 9999 9999 9996", "credit_card"),
        ("2425 1760 3137 2155", "credit_card"),
        # other brands at their own lengths: Diners 14, JCB, Discover, UnionPay, Maestro, Mir
        ("36227206271667", "credit_card"),
        ("3530111333300000", "credit_card"),
        ("6011111111111117", "credit_card"),
        ("6200000000000005", "credit_card"),
        ("6759649826438453", "credit_card"),
        ("2200000000000004", "credit_card"),
        # phones whose last group is long
        ("+49 30 12345678", "phone"),
        ("+49 151 23456789", "phone"),
        ("0049 30 12345678", "phone"),
        ("+49-30-12345678", "phone"),
        ("030 12345678", "phone"),
        ("0151 23456789", "phone"),
        ("07700 900123", "phone"),
        ("+49 (0)30 1234567", "phone"),
        ("+7 495 123-45-67", "phone"),
        # apostrophe inside the local part
        ("jane.o'brien@fabrikam.de", "email"),
        # lower case
        ("ab123456c", "national_id"),
        ("ab 12 34 56 c", "national_id"),
        ("de89 3704 0044 0532 0130 00", "iban"),
        ("nl91abna0417164300", "iban"),
        # an SSN written with spaces
        ("078 05 1120", "national_id"),
        # private and link-local addresses name one machine in a network: still reported
        ("10.1.2.3", "ip_address"),
        ("172.16.0.5", "ip_address"),
        ("192.168.1.20", "ip_address"),
        ("169.254.10.20", "ip_address"),
    ],
)
def test_finds_values_once_missed(value: str, kind: str) -> None:
    text = f"Contact details: {value}. Thanks!"
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        # Luhn-valid, but no brand issues numbers of that prefix at that length
        "IMEI 356938035643809 registered",
        "IMEI 350308246281946 registered",
        "fixes the crash reported in #3001131270493.",
        "with tracking number 31125066874585.",
        "Amex prefix at 16 digits 3782822463100052, Visa at 15 digits 411111111111116",
        # not phones
        "reference 0012 3456 789 attached",  # +1 needs 10 more digits
        "The IBAN NL87 ABNA 0038 2065 75 in the template fails validation.",
        "The IBAN CH79 5430 9440 4824 9229 5 in the template fails validation.",
        "call +28 1234 5678",  # no country code starts with 28
        "SSN 000 12 3456 and 12 123 45 6789 are not SSNs",
        # addresses that identify no machine
        "The service listens on 127.0.0.1; metrics are scraped every 15 s.",
        "Example: psql -h 127.0.0.1:5432 -U app",
        "Set the bind address to 0.0.0.0 for local runs.",
        "netmask 255.255.255.0, or 255.255.0.0, broadcast 255.255.255.255",
        # four-part versions after a version word, or glued to a "v"
        "Upgrade to version 1.2.3.4 today.",
        "Tagged v1.2.3.4 and v 1.2.3.5, Release: 1.2.3.6, build=1.2.3.7, rev. 1.2.3.8",
        # mixed case is neither a NINO nor an IBAN
        "codes Ab123456c and De89 3704 0044 0532 0130 00",
    ],
)
def test_false_positives_once_reported(text: str) -> None:
    assert find_pii(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to jane.o'brien@fabrikam.de today", "Write to [EMAIL] today"),
        ("Write to 'jane@example.com' today", "Write to '[EMAIL]' today"),
        ("Write to 'o'brien@example.com'", "Write to '[EMAIL]'"),
        ("db 127.0.0.1:5432, via 10.0.0.7:5432", "db 127.0.0.1:5432, via [IP_ADDRESS]:5432"),
        ("version 1.2.3.4 runs on 1.2.3.4", "version 1.2.3.4 runs on [IP_ADDRESS]"),
    ],
)
def test_redaction_takes_whole_values_and_leaves_the_rest(text: str, expected: str) -> None:
    assert redact(text, find_pii(text)) == expected


def test_spaced_ssn_needs_its_own_digit_groups_but_a_dashed_one_does_not() -> None:
    assert found("row 1 123-45-6789") == [("national_id", "123-45-6789")]
    assert found("row 1 123 45 6789") == []  # part of a longer run of digit groups


def test_findings_carry_offsets_not_values() -> None:
    text = "mail jane@example.com now"
    [finding] = find_pii(text)
    assert finding == PiiFinding("email", 5, 21)
    assert "jane" not in repr(finding)


def test_trailing_punctuation_and_neighbours_are_not_part_of_a_value() -> None:
    assert found("Write to bob@example.org.") == [("email", "bob@example.org")]
    assert found("Host 10.0.0.1.") == [("ip_address", "10.0.0.1")]
    assert found("4111 1111 1111 1111 2025") == [("credit_card", "4111 1111 1111 1111")]


def test_overlaps_keep_the_longer_finding() -> None:
    # the IPv4 tail of an IPv6 address is not reported on its own
    assert found("ip ::ffff:192.0.2.1 ok") == [("ip_address", "::ffff:192.0.2.1")]


def test_findings_are_sorted_and_disjoint() -> None:
    text = "a@b.io +44 20 7946 0958 4111111111111111 10.1.2.3 AB123456C DE89370400440532013000"
    findings = find_pii(text)
    assert [f.kind for f in findings] == [
        "email", "phone", "credit_card", "ip_address", "national_id", "iban",
    ]  # fmt: skip
    assert all(a.end <= b.start for a, b in pairwise(findings))


def test_redact_replaces_every_span_with_its_label() -> None:
    text = "Mail a@b.io or call (555) 555-0123, card 4111 1111 1111 1111, SSN 123-45-6789."
    assert redact(text, find_pii(text)) == (
        "Mail [EMAIL] or call [PHONE], card [CREDIT_CARD], SSN [NATIONAL_ID]."
    )
    ip_text = "from 10.0.0.1 to DE89370400440532013000"
    assert redact(ip_text, find_pii(ip_text)) == "from [IP_ADDRESS] to [IBAN]"


VALUES = [
    "jane.doe@example.com",
    "+44 20 7946 0958",
    "GB82 WEST 1234 5698 7654 32",
    "4111 1111 1111 1111",
    "192.168.10.20",
    "123-45-6789",
    "AB123456C",
]
DOC = "Customer file. " + " ; ".join(f"item {i}: {v}" for i, v in enumerate(VALUES)) + " end."


def test_allow_keeps_text_and_counts() -> None:
    result = apply_policy(DOC, "allow")
    assert result.text == DOC
    assert not result.blocked and result.reason is None
    assert result.counts == {
        "credit_card": 1, "email": 1, "iban": 1, "ip_address": 1, "national_id": 2, "phone": 1,
    }  # fmt: skip


def test_redact_removes_every_value() -> None:
    result = apply_policy(DOC, "redact")
    assert result.text is not None and not result.blocked
    for value in VALUES:
        assert value not in result.text
    assert sum(result.counts.values()) == len(VALUES)
    assert result.text.startswith("Customer file. item 0: [EMAIL] ; item 1: [PHONE]")


def test_block_refuses_with_a_reason_that_names_kinds_not_values() -> None:
    result = apply_policy(DOC, "block")
    assert result.text is None and result.blocked
    assert result.reason is not None
    assert "national_id: 2" in result.reason and "email: 1" in result.reason
    for value in VALUES:
        assert value not in result.reason


def test_block_lets_clean_text_through() -> None:
    result = apply_policy("Nothing personal here, version 1.2.3.4.5.", "block")
    assert result.text == "Nothing personal here, version 1.2.3.4.5."
    assert not result.blocked and result.counts == {}


def test_unknown_policy_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError) as info:
        apply_policy("text", "mask")  # type: ignore[arg-type]
    assert info.value.field == "pii"


def test_a_megabyte_of_mixed_text_scans_without_blowing_up() -> None:
    # Not timed (the measured MB/s goes in the docs); this guards against quadratic paths:
    # long digit runs, long dotted numbers and long words next to an "@".
    filler = "Plain prose about releases 2.4.1 on 2024-03-15 at 12:30, order 123456789012. "
    pii = "Mail a.b@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111. "
    soup = "1" * 5000 + " " + "1." * 2000 + " " + "a" * 5000 + "@ " + "1 " * 2000
    text = (filler * 9 + pii) * 1300 + soup
    assert len(text) > 1_000_000
    findings = find_pii(text)
    assert len(findings) == 3 * 1300
