"""Value rules attached to schema fields: ranges and choices that types alone cannot express.

A :class:`Rule` decides whether a value is allowed and says what is (``expected``); the validator turns a
broken rule into the one-line ``<key>=<value>: <problem>; expected <what is allowed>``.  :func:`spec`
declares a dataclass field together with its rule, so a key's type, default and range live in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

RULE = "rule"  # dataclass field metadata key


@dataclass(frozen=True)
class Rule:
    """``ok(value)`` decides; ``expected`` says what is allowed; ``kind`` checks the type of ``Any`` fields."""

    ok: Callable[[Any], bool]
    expected: str
    kind: Callable[[Any], bool] = lambda v: True
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else "missing value"
        if not self.kind(value):
            return f"wrong type ({type(value).__name__})"
        return None if self.ok(value) else ("not supported" if self.expected.startswith("one of") else "out of range")

    def describe(self) -> str:
        return self.expected + (" or null" if self.nullable else "")


def spec(default: Any = None, rule: Rule | None = None) -> Any:
    """A dataclass field with ``default`` (lists and dicts are copied per instance) and a value ``rule``."""
    metadata = {RULE: rule} if rule is not None else {}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(minimum: int | None = None, maximum: int | None = None, nullable: bool = False) -> Rule:
    lo, hi = -math.inf if minimum is None else minimum, math.inf if maximum is None else maximum
    if minimum is not None and maximum is not None:
        text = f"an integer in [{minimum}, {maximum}]"
    else:
        text = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (f" <= {maximum}" if maximum is not None else "")
    return Rule(lambda v: lo <= v <= hi, text, is_int, nullable)


def number(
    gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None, nullable: bool = False
) -> Rule:
    bounds = [(">", gt), (">=", ge), ("<", lt), ("<=", le)]
    text = "a finite number " + " and ".join(f"{op} {b}" for op, b in bounds if b is not None)

    def ok(v: float) -> bool:
        return (
            math.isfinite(v) and (gt is None or v > gt) and (ge is None or v >= ge) and (lt is None or v < lt) and (le is None or v <= le)
        )

    return Rule(ok, text.strip(), is_num, nullable)


def choice(*allowed: Any, nullable: bool = False) -> Rule:
    return Rule(lambda v: v in allowed, "one of " + ", ".join(str(a) for a in allowed), lambda v: True, nullable)


def fraction_or_count(nullable: bool = True) -> Rule:
    """Lightning's ``limit_*_batches``: a fraction in [0, 1] or a number of batches >= 0."""
    return Rule(
        lambda v: (0 <= v <= 1) if isinstance(v, float) else v >= 0, "a fraction in [0.0, 1.0] or a batch count >= 0", is_num, nullable
    )


def pair(text: str, ok: Callable[[float, float], bool]) -> Rule:
    """Two numbers ``[a, b]`` for which ``ok(a, b)`` holds."""
    return Rule(lambda v: len(v) == 2 and all(is_num(b) for b in v) and ok(*v), text, lambda v: isinstance(v, (list, tuple)))


PRECISIONS = (
    "auto", "32", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64", "64-true", "16", "bf16",
    "transformer-engine", "transformer-engine-float16",
)  # fmt: skip

SEED = integer(0, 2**32 - 1)
PROBABILITY = number(ge=0, lt=1)
