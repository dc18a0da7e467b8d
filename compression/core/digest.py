"""Reuse keys: a short stable hash of what a step's output depends on.

A finished step is reused when its key is unchanged, so a key must never change for an
unchanged run. An option added after runs existed joins the key only when it is set:
wrap it in `optional(value, absent)` (a dict value or a whole part) or name it in
`config_fields(config, added_later=...)`, returned by the config's `digest_fields()`
(which `config_digest` asks a part for); it then drops out while it holds its old
behaviour, and folders finished before the option keep their key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from typing import Any


class _Omitted:
    """Marks a part of a key that is left out (an added option at its old behaviour)."""

    def __repr__(self) -> str:
        return "OMITTED"


OMITTED = _Omitted()


def optional(value: Any, absent: Any = None) -> Any:
    """`value`, or OMITTED when it equals `absent` (the behaviour before the option)."""
    return OMITTED if value == absent else value


def config_fields(config: Any, added_later: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config dataclass as a dict, without the `added_later` fields that hold their
    declared default."""
    defaults = {f.name: f.default for f in fields(config)}
    values = asdict(config)
    for name in added_later:
        if values[name] == defaults[name]:
            del values[name]
    return values


def _payload(part: Any) -> Any:
    if hasattr(part, "digest_fields"):  # a config with options added later
        return part.digest_fields()
    if hasattr(part, "__dataclass_fields__"):
        return asdict(part)
    if isinstance(part, dict):
        return {k: v for k, v in part.items() if v is not OMITTED}
    return part


def config_digest(*parts: Any) -> str:
    """A stable short hash of configs (dataclasses, dicts, values), used to tell whether a
    finished step can be reused. OMITTED parts and dict values are left out."""
    payload = json.dumps([_payload(p) for p in parts if p is not OMITTED], sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def text_digest(texts: list[str]) -> str:
    """sha256 of texts joined by newlines: a key part for a step's input texts."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()
