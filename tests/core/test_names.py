import pytest

from stoa.core.errors import InvalidInputError
from stoa.core.names import Ref, parse_ref, safe_relpath, validate_alias, validate_name


@pytest.mark.parametrize("name", ["churn", "churn-model", "a.b_c-1", "A" * 128, "7up"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is empty"),
        ("../etc", "looks like a path"),
        ("a/b", "looks like a path"),
        ("a\\b", "looks like a path"),
        ("..", "looks like a path"),
        ("a\x00b", "NUL byte"),
        ("C:", "Windows drive"),
        ("c:evil", "Windows drive"),
        ("bad name!", "not a valid name"),
        ("-leading", "not a valid name"),
        ("A" * 129, "not a valid name"),
    ],
)
def test_invalid_names_name_the_field_and_problem(name, message):
    with pytest.raises(InvalidInputError) as info:
        validate_name(name, "name")
    assert info.value.field == "name"
    assert message in info.value.message
    assert info.value.fix


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/b.json", "a/b.json"),
        ("./a//b", "a/b"),
        ("1_Pooling/config.json", "1_Pooling/config.json"),
    ],
)
def test_safe_relpath_canonicalises(path, expected):
    assert safe_relpath(path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../x", "leaves the artifact folder"),
        ("a/../../b", "leaves the artifact folder"),
        ("a/..", "leaves the artifact folder"),
        ("/etc/passwd", "absolute path"),
        ("C:/x", "absolute path"),
        ("c:x", "absolute path"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL byte"),
        ("", "is empty"),
        (".", "leaves the artifact folder"),
    ],
)
def test_safe_relpath_refuses_escapes(path, message):
    with pytest.raises(InvalidInputError) as info:
        safe_relpath(path, "paths")
    assert info.value.field == "paths"
    assert message in info.value.message


def test_parse_ref_forms():
    assert parse_ref("m") == Ref("m")
    assert parse_ref("m@3") == Ref("m", version=3)
    assert parse_ref("m@champion") == Ref("m", alias="champion")
    assert parse_ref("m@latest") == Ref("m")
    assert str(parse_ref("m@3")) == "m@3"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("m@0", "versions run from 1"),
        ("../m@1", "looks like a path"),
        ("m@bad alias", "not a valid"),
        ("", "is empty"),
        ("m@", "is empty"),
    ],
)
def test_parse_ref_errors(ref, message):
    with pytest.raises(InvalidInputError) as info:
        parse_ref(ref)
    assert message in info.value.message
    assert info.value.field == "ref"


def test_alias_cannot_be_a_number_or_latest():
    with pytest.raises(InvalidInputError, match="would read as a version"):
        validate_alias("3")
    with pytest.raises(InvalidInputError, match="reserved"):
        validate_alias("latest")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("m@\u00b2", "is not a version number"),  # "²" passes str.isdigit but not int()
        ("m@\u0661", "is not a version number"),  # an Arabic-Indic digit
        ("m@" + "9" * 5000, "versions run from 1 to at most 2147483647"),
        ("m@2147483648", "versions run from 1 to at most 2147483647"),
    ],
)
def test_parse_ref_odd_numbers_are_clean_errors(ref, message):
    with pytest.raises(InvalidInputError) as info:
        parse_ref(ref)
    assert message in info.value.message and info.value.field == "ref"
