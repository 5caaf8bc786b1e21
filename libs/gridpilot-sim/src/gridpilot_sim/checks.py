"""Range checks of the twin's frozen specs, each failing with an :class:`InvalidInput` that names the field.

A spec's ``__post_init__`` lists its fields by rule instead of writing the same loop again:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Dose:
...     dose_e_per_a2: float = 40.0
...     blur_a: float = -1.0
>>> require_positive(Dose(), ("dose_e_per_a2",))
>>> require_non_negative(Dose(), ("blur_a",))
Traceback (most recent call last):
...
gridpilot.errors.InvalidInput: blur_a must be >= 0, got -1.0
"""

from __future__ import annotations

from collections.abc import Iterable

from gridpilot.errors import InvalidInput

__all__ = ["require_fraction", "require_non_negative", "require_positive"]


def require_positive(spec: object, names: Iterable[str]) -> None:
    """Raise :class:`InvalidInput` for the first of ``spec``'s fields ``names`` that is not > 0."""
    for name in names:
        value = getattr(spec, name)
        if value <= 0:
            raise InvalidInput(f"{name} must be positive, got {value}", field=name)


def require_non_negative(spec: object, names: Iterable[str]) -> None:
    """Raise :class:`InvalidInput` for the first of ``spec``'s fields ``names`` that is < 0."""
    for name in names:
        value = getattr(spec, name)
        if value < 0:
            raise InvalidInput(f"{name} must be >= 0, got {value}", field=name)


def require_fraction(spec: object, names: Iterable[str]) -> None:
    """Raise :class:`InvalidInput` for the first of ``spec``'s fields ``names`` outside [0, 1]."""
    for name in names:
        value = getattr(spec, name)
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"{name} must be in [0, 1], got {value}", field=name)
