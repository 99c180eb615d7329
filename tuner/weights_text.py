"""One parser for ``<task>=<number>`` lists: ``--objective click=1,like=5`` and its kin.

The objective, the guardrails, the control weights and the estimator's
hyperparameters are all written ``name=number,name=number`` on the command
line (repeatable options join their values) and as a TOML table in a search
file. :func:`parse_task_numbers` reads the text and :func:`check_task_numbers`
checks a mapping (a TOML table, or the parsed text) against the same rules, so
every list refuses the same mistakes with the same words: a malformed term, a
name given twice, a name that is not valid (listing the valid ones), a value
outside what :class:`Numbers` allows, and, where asked, a list whose every
value is zero.

Only the standard library is imported: the CLI parses options before it loads
anything heavy.

Example:
    >>> parse_task_numbers("click=1, like=5", "--objective", names=["click", "like"])
    {'click': 1.0, 'like': 5.0}
    >>> parse_task_numbers("click=5%", "--guardrail", numbers=Numbers(0, 1, high_open=True,
    ...                    percent=True))
    {'click': 0.05}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ANY_FINITE", "Numbers", "check_task_numbers", "parse_task_numbers"]


@dataclass(frozen=True)
class Numbers:
    """Which values a ``<task>=<number>`` list accepts.

    Args:
        low: smallest valid value (None: no bound).
        high: largest valid value (None: no bound).
        low_open: ``low`` itself is not valid.
        high_open: ``high`` itself is not valid.
        finite: refuse ``inf`` (``nan`` is always refused).
        percent: read ``5%`` as 0.05.
        not_all_zero: refuse a list whose every value is 0 (an objective with nothing to
            maximise).

    Example:
        >>> Numbers(low=0).describe()
        'a finite number >= 0'
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    finite: bool = True
    percent: bool = False
    not_all_zero: bool = False

    def describe(self) -> str:
        """What is valid, in words (for messages)."""
        parts = ["a finite number" if self.finite else "a number (inf allowed)"]
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        text = " ".join(parts[:1]) + (" " + " and ".join(parts[1:]) if parts[1:] else "")
        return text + (" (or a percentage, e.g. 5%)" if self.percent else "")

    def valid(self, value: float) -> bool:
        if math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high
                                         or (self.high_open and value == self.high))


ANY_FINITE = Numbers()
"""Any finite number (the default)."""


def _number(text: str, percent: bool) -> float:
    text = text.strip()
    if percent and text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def parse_task_numbers(text: str | Iterable[str], what: str, *,
                       names: Sequence[str] | None = None,
                       numbers: Numbers = ANY_FINITE, require_all: bool = False,
                       kind: str = "task", value: str = "number",
                       example: str | None = None) -> dict[str, float]:
    """Read ``"click=1,like=5"`` (or several such strings, a repeated option) as name -> value.

    Args:
        text: the option's value, or its values when the option is repeatable.
        what: the option or setting, named in every message (``"--objective"``).
        names: the valid names (None: any name; then unknown ones are refused later).
        numbers: the valid values.
        require_all: every name of ``names`` needs a value.
        kind: what a name is, in messages (``task``, ``metric``, ``parameter``).
        value: what a value is, in messages (``weight``, ``max drop``).
        example: a valid list shown with a malformed term (default: from ``names``).

    Raises:
        ValueError: one line naming ``what``, the term or name at fault and what is valid.
    """
    texts = [text] if isinstance(text, str) else list(text)
    sample = example or f"{names[0] if names else 'click'}=1"
    out: dict[str, float] = {}
    for term in (t.strip() for chunk in texts for t in chunk.split(",")):
        if not term:
            continue
        name, sep, raw = term.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            number = _number(raw, numbers.percent)
        except ValueError:
            raise ValueError(f"{what} term {term!r} is not <{kind}>=<{value}>, e.g. "
                             f"{sample!r}") from None
        if name in out:
            raise ValueError(f"{what} gives {kind} {name!r} more than once; give each "
                             f"{kind} once")
        out[name] = number
    if not out:
        raise ValueError(f"{what} is empty; give <{kind}>=<{value}> terms, e.g. {sample!r}")
    return check_task_numbers(out, what, names=names, numbers=numbers,
                              require_all=require_all, kind=kind,
                              value="value" if value == "number" else value)


def check_task_numbers(values: Mapping[str, object], what: str, *,
                       names: Sequence[str] | None = None,
                       numbers: Numbers = ANY_FINITE, require_all: bool = False,
                       kind: str = "task", value: str = "value") -> dict[str, float]:
    """Check a name -> number mapping (a TOML table, parsed text) as :func:`parse_task_numbers`.

    Raises:
        ValueError: an empty mapping, an unknown or missing name (listing the valid ones),
            a value that is not a number or not valid, all values zero where refused.
    """
    if not values:
        raise ValueError(f"{what} is empty; give <{kind}> = <number> entries")
    valid = list(names) if names is not None else None
    if valid is not None:
        unknown = [n for n in values if n not in valid]
        if unknown:
            raise ValueError(f"{what} names unknown {kind}(s) {unknown}; valid: {valid}")
        missing = [n for n in valid if n not in values] if require_all else []
        if missing:
            raise ValueError(f"{what} lacks a {value} for {missing}; give one for each of "
                             f"{valid}")
    out: dict[str, float] = {}
    for name, number in values.items():
        if isinstance(number, bool) or not isinstance(number, int | float) or not numbers.valid(
                float(number)):
            raise ValueError(f"{what} {kind} {name!r} is {number!r}; its {value} must be "
                             f"{numbers.describe()}")
        out[str(name)] = float(number)
    if numbers.not_all_zero and all(v == 0 for v in out.values()):
        raise ValueError(f"{what} has only zero values {out}: nothing to maximise; give at "
                         "least one nonzero weight")
    return out
