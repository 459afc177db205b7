"""Names, ids and paths every part of an agreement checks the same way."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

DIMENSIONS = ("accuracy", "validity", "reliability", "timeliness", "relevance", "completeness")
Dimension = Literal["accuracy", "validity", "reliability", "timeliness", "relevance", "completeness"]
Policy = Literal["block", "quarantine", "warn"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_FLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_CONN_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _connection_id(value: str) -> str:
    if not _CONN_ID.match(value):
        raise ValueError(f"{value!r} is not a valid connection id (lower-case, digits, '_')")
    return value


#: An Airflow connection id as the agreement names it (never credentials).
ConnectionId = Annotated[str, AfterValidator(_connection_id)]
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_HEX40 = re.compile(r"^[0-9A-F]{40}$")


def pinned_fingerprint(value: str) -> str:
    """A pinned OpenPGP v4 fingerprint as 40 upper-case hex digits (spaces allowed, as gpg prints it)."""
    normal = value.replace(" ", "").upper()
    if not _HEX40.match(normal):
        raise ValueError(
            f"{value!r} is not an OpenPGP v4 fingerprint (40 hex digits; "
            "ask the key's owner for the output of `gpg --fingerprint`)"
        )
    return normal


class _Strict(BaseModel):
    # A typo in an agreement must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_slug(value: str, what: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{value!r} is not a valid {what} (lower-case letters, digits, '-')")
    return value


def check_relative_path(value: str, what: str = "path") -> str:
    """Refuse paths that could escape the directory they are joined to."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must not be empty")
    if any(ch in value for ch in ("\x00", "\n", "\r")):
        raise ValueError(f"{what} {value!r} contains a control character")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{what} {value!r} must be relative, not absolute")
    if any(part == ".." for part in re.split(r"[/\\]", value)):
        raise ValueError(f"{what} {value!r} must not contain '..'")
    return value
