"""Validation of every user string that could reach a path, a query or a log line.

Names never become paths (blobs are addressed by hash), but they are validated as if
they could, so that a later feature cannot turn one into a traversal by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from stoa.core.errors import InvalidInputError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_DIGITS = re.compile(r"[0-9]+")
# Versions are stored as 32-bit integers on every back-end.
MAX_VERSION = 2**31 - 1
_NAME_RULE = "1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"


def _problem(value: str) -> str | None:
    """Why ``value`` cannot be a name, or None when it can."""
    if not isinstance(value, str) or value == "":
        return "is empty"
    if "\x00" in value:
        return "contains a NUL byte"
    if "/" in value or "\\" in value or ".." in value:
        return "looks like a path (contains '/', '\\' or '..')"
    if _DRIVE.match(value):
        return "looks like a Windows drive path"
    if not NAME_PATTERN.match(value):
        return f"is not a valid name: {_NAME_RULE}"
    return None


def validate_name(value: str, field: str = "name") -> str:
    """Return ``value`` when it is a safe name, else raise naming the field."""
    problem = _problem(value)
    if problem:
        raise InvalidInputError(
            f"{value!r} {problem}", field=field, fix=f"use {_NAME_RULE}, e.g. 'churn-model'"
        )
    return value


def validate_alias(value: str, field: str = "alias") -> str:
    """Aliases are names that cannot be mistaken for a version number."""
    validate_name(value, field)
    if value.isdigit():
        raise InvalidInputError(
            f"{value!r} is a number and would read as a version",
            field=field,
            fix="start the alias with a letter, e.g. 'champion'",
        )
    if value.lower() == "latest":
        raise InvalidInputError(
            "'latest' is reserved", field=field, fix="choose another alias name"
        )
    return value


def validate_tag_key(value: str, field: str = "tags") -> str:
    if not isinstance(value, str) or not (1 <= len(value) <= 250) or "\x00" in value:
        raise InvalidInputError(
            f"tag key {value!r} must be 1-250 characters without NUL bytes",
            field=field,
            fix="shorten or clean the tag key",
        )
    return value


def validate_tag_value(value: str, field: str = "tags") -> str:
    if not isinstance(value, str) or len(value) > 5000 or "\x00" in value:
        raise InvalidInputError(
            "tag values must be strings of at most 5000 characters without NUL bytes",
            field=field,
            fix="store large values in metadata instead",
        )
    return value


#: What file systems allow of one name, in bytes, and a depth no real artifact reaches.
MAX_PATH_PART = 255
MAX_PATH_DEPTH = 64


def safe_relpath(value: str, field: str = "path") -> str:
    """Canonicalise a relative artifact path, refusing anything that could leave its folder."""
    if not isinstance(value, str) or value.strip() == "":
        raise InvalidInputError(
            "is empty", field=field, fix="give a relative path such as 'a/b.json'"
        )
    if "\x00" in value:
        raise InvalidInputError("contains a NUL byte", field=field, fix="remove the NUL byte")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInputError(
            f"{value!r} contains a control character", field=field, fix="rename the file"
        )
    if "\\" in value:
        raise InvalidInputError(
            f"{value!r} contains a backslash", field=field, fix="use '/' as the separator"
        )
    if _DRIVE.match(value) or value.startswith("/"):
        raise InvalidInputError(
            f"{value!r} is an absolute path",
            field=field,
            fix="give a path relative to the artifact",
        )
    parts = [p for p in PurePosixPath(value).parts if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise InvalidInputError(
            f"{value!r} leaves the artifact folder", field=field, fix="remove '..' from the path"
        )
    long = next((p for p in parts if len(p.encode("utf-8")) > MAX_PATH_PART), None)
    if long is not None:
        raise InvalidInputError(
            f"the path component {long[:40]!r}… is over {MAX_PATH_PART} bytes",
            field=field,
            fix="shorten the file or folder name",
        )
    if len(parts) > MAX_PATH_DEPTH:
        raise InvalidInputError(
            f"{value[:60]!r}… is more than {MAX_PATH_DEPTH} folders deep", field=field
        )
    return "/".join(parts)


def validate_version(version: int, field: str = "version", shown: str | None = None) -> int:
    if not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidInputError(
            f"version {shown or version} does not exist; versions run from 1 to at most "
            f"{MAX_VERSION}",
            field=field,
            fix="give an existing version number",
        )
    return version


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``name``, ``name@3`` or ``name@champion``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str, field: str = "ref") -> Ref:
    """Parse a reference; a bare name means the latest version."""
    if not isinstance(text, str) or text == "":
        raise InvalidInputError(
            "is empty", field=field, fix="write NAME, NAME@VERSION or NAME@ALIAS"
        )
    name, sep, selector = text.partition("@")
    validate_name(name, field)
    if not sep:
        return Ref(name)
    if _DIGITS.fullmatch(selector):
        # Past 12 digits the number is out of range anyway; never hand int() a huge string.
        version = int(selector) if len(selector) <= 12 else MAX_VERSION + 1
        return Ref(name, version=validate_version(version, field, shown=selector))
    if selector.isdigit() or selector.isdecimal():  # superscripts and other scripts
        raise InvalidInputError(
            f"{selector!r} is not a version number", field=field, fix="write versions as 1, 2, 3…"
        )
    if selector == "latest":
        return Ref(name)
    validate_alias(selector, field)
    return Ref(name, alias=selector)
