"""One pattern for every dataset, site, capture and device name, checked at the boundary."""

from __future__ import annotations

import re

from iotlake.errors import IotlakeError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def check_name(kind: str, value: str, where: str | None = None) -> str:
    """Return `value` if it is a safe name (letters, digits, `. _ + -`), else raise naming the problem."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or ".." in value:
        raise IotlakeError(
            where or f"{kind} name",
            f"invalid {kind} name {value!r}: use letters, digits, '.', '_', '+' or '-' "
            "(start with a letter or digit, at most 128 characters)",
        )
    return value


def safe_name(value: str) -> str:
    """Turn a file stem into a valid name (other characters become '_'), for captures named after files."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]", "_", value).strip("._") or "capture"
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:128]
