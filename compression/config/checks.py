"""The two checks every step config makes of its values: a condition with the message
that names the fix, and a number YAML may have given as a string."""

from __future__ import annotations

from compression.core.errors import ConfigError


def require(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition` holds."""
    if not condition:
        raise ConfigError(message)


def as_number(value: object, name: str) -> float:
    """`value` as a float (YAML reads 1e-2 as a string), or one line naming `name`."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number, got {value!r}") from exc
