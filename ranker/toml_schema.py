"""Pydantic models of TOML tables, and their errors as one line for people.

Every table of a config file is a :class:`Table`: unknown keys are refused
(``extra="forbid"``), scalars are strict (``"3"`` is not an integer, ``true`` is not
a number; an integer is a valid float), numbers are finite unless a field says
otherwise. :func:`validate` turns pydantic's :class:`~pydantic.ValidationError` into
one ``ValueError`` line that names the key with its section path (``[search.fusion]
low``) and what is valid, plus how many other problems the file has.

Example:
    >>> class Box(Table):
    ...     low: Finite = 0.0
    >>> validate(Box, {"low": "x", "lo": 1}, where="[box]")
    Traceback (most recent call last):
    ...
    ValueError: [box] low must be a number, got 'x' (and 1 more problem)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

__all__ = [
    "Finite",
    "Number",
    "Table",
    "choice",
    "dataclass_table",
    "validate",
]

Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number (an integer is fine)."""
Number = Annotated[float, Strict()]
"""A number, ``inf`` allowed."""

T = TypeVar("T", bound=BaseModel)


class Table(BaseModel):
    """A TOML table: unknown keys refused, values frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def choice(valid: Sequence[str]) -> Any:
    """A string that must be one of ``valid`` (the message lists them, sorted)."""
    names = sorted(valid)

    def check(value: str) -> str:
        if value not in valid:
            raise ValueError(f"{value!r} unknown; valid: {names}")
        return value

    return Annotated[StrictStr, AfterValidator(check)]


_STRICT: dict[Any, Any] = {int: StrictInt, float: Number, str: StrictStr, bool: StrictBool}


def _strict(tp: Any) -> Any:
    """``tp`` with its scalars made strict (``tuple[int, ...]`` -> ``tuple[StrictInt, ...]``)."""
    if tp in _STRICT:
        return _STRICT[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None or not args:
        return tp
    inner = tuple(a if a is Ellipsis else _strict(a) for a in args)
    if origin in (Union, types.UnionType):
        return Union[inner]  # noqa: UP007 (built at run time)
    return origin[inner] if origin is not tuple else tuple[inner]  # type: ignore[misc,valid-type]


def dataclass_table(cls: type, name: str, exclude: Sequence[str] = (),
                    extra: dict[str, Any] | None = None) -> type[Table]:
    """A :class:`Table` with the fields of a config dataclass (its own checks stay in it).

    Args:
        cls: a dataclass whose fields all have defaults.
        name: the model's name.
        exclude: fields a file may not set.
        extra: more fields, ``name -> (type, default)``.
    """
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = dict(extra or {})
    for f in dataclasses.fields(cls):
        if f.name not in exclude:
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory() if callable(f.default_factory) else None)
            fields[f.name] = (_strict(hints[f.name]), default)
    return create_model(name, __base__=Table, **fields)


_NEEDS = {
    "int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
    "finite_number": "a finite number", "string_type": "a string", "bool_type": "true or false",
    "list_type": "a list", "tuple_type": "a list", "dict_type": "a table",
    "model_type": "a table", "model_attributes_type": "a table",
}


def _sub_model(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``annotation`` (``Box``, ``Box | None``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _sub_model(arg)
        if found is not None:
            return found
    return None


def _locate(model: type[BaseModel], loc: tuple[int | str, ...]
            ) -> tuple[list[str], type[BaseModel], list[str]]:
    """Split an error location into its table path, that table's model and the key path."""
    tables: list[str] = []
    cls = model
    i = 0
    while i < len(loc) and isinstance(loc[i], str) and loc[i] in cls.model_fields:
        sub = _sub_model(cls.model_fields[str(loc[i])].annotation)
        if sub is None:
            break
        tables.append(str(loc[i]))
        cls = sub
        i += 1
    return tables, cls, [str(k) for k in loc[i:]]


def _describe(error: Any, key: str) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    got = f", got {error['input']!r}" if "input" in error else ""
    if kind == "missing":
        return f"needs {key}" if key else "table is missing"
    if kind == "value_error":
        return f"{key} {str(error['msg']).removeprefix('Value error, ')}".strip()
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "")
        return f"{key} must be {bounds[kind]} {limit}{got}".strip()
    if kind == "too_short":
        return f"{key} must hold at least {ctx.get('min_length')} item(s){got}".strip()
    if kind == "too_long":
        return f"{key} must hold at most {ctx.get('max_length')} item(s){got}".strip()
    if kind in _NEEDS:
        return f"{key} must be {_NEEDS[kind]}{got}".strip()
    return f"{key}: {error['msg']}{got}".strip()


def _message(model: type[BaseModel], err: ValidationError, where: str | None) -> str:
    lines: list[str] = []
    unknown: dict[tuple[str, ...], tuple[int, str, type[BaseModel], list[str]]] = {}
    for e in err.errors(include_url=False):
        tables, cls, keys = _locate(model, tuple(e["loc"]))
        if not tables and where is None and len(keys) > 1:
            tables, keys = keys[:1], keys[1:]  # a top-level table of free keys: [objective]
        section = (where if where is not None and not tables
                   else f"[{'.'.join(tables)}]" if tables else "the file")
        if e["type"] == "extra_forbidden" and len(keys) == 1:
            # one message per table, listing all its unknown keys
            at = unknown.setdefault(tuple(tables), (len(lines), section, cls, []))
            if at[0] == len(lines):
                lines.append("")
            at[3].append(keys[0])
            continue
        lines.append(f"{section} {_describe(e, '.'.join(keys))}")
    for i, section, cls, names in unknown.values():
        valid = sorted(f.alias or n for n, f in cls.model_fields.items())
        lines[i] = f"{section} has unknown key(s) {sorted(names)}; valid: {valid}"
    more = len(lines) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return lines[0] + tail


def validate(model: type[T], raw: Any, where: str | None = None) -> T:
    """``model`` from parsed TOML, or one ``ValueError`` line naming the key at fault.

    Args:
        model: the file's (or one table's) model.
        raw: ``tomllib`` output.
        where: how to name the top level in messages (None: ``the file``, or the table
            path of nested errors, e.g. ``[model]``).

    Raises:
        ValueError: the first problem (section, key, what is valid) and a count of others.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ValueError(_message(model, err, where)) from None

