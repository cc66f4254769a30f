"""Read one section of params.yaml into its frozen dataclass, refusing what does not fit it.

A key the dataclass does not declare is refused with the closest key it does (a misspelling);
a key it needs and the file lacks, or a value of the wrong kind, is refused naming the key and
what it must be. Values are kept as YAML gives them (an int where a float is declared stays an
int), so what the pipeline writes back as data is the file's own.
"""

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union

from service.errors import Refusal


class ParamsError(Refusal):
    """params.yaml has a key the project does not know, lacks one it needs, or holds a value
    of the wrong kind; the message names the key."""


def refuse(where: str, problem: str) -> ParamsError:
    """The refusal for key `where` (a dotted path; empty for the file itself)."""
    return ParamsError(f"params.yaml: {where} {problem}" if where else f"params.yaml {problem}")


def child(where: str, key: Any) -> str:
    """The dotted path of `key` below `where`."""
    return f"{where}.{key}" if where else str(key)


def closest(key: Any, known: list[str]) -> str:
    """` (did you mean x?)` for the known key most like `key`, or nothing."""
    match = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def kind_in_words(hint: Any) -> str:
    """What a value of type `hint` is, as the refusal says it."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(str(argument) for argument in arguments)
    if origin in (Union, types.UnionType):
        words = [kind_in_words(argument) for argument in arguments]
        return ", ".join(words[:-1]) + " or " + words[-1]
    if origin is dict or dataclasses.is_dataclass(hint):
        return "a mapping of keys to values"
    if origin in (list, tuple):
        return "a list"
    words = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    return words.get(hint, "null" if hint is type(None) else getattr(hint, "__name__", str(hint)))


def _fits(hint: Any, value: Any) -> bool:
    """Whether a scalar fits `hint` (a bool is no number, though Python makes it an int)."""
    if typing.get_origin(hint) is Literal:
        return not isinstance(value, bool) and value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


def read_value(hint: Any, value: Any, where: str, minimum: float | None = None) -> Any:
    """`value` as type `hint`, or a ParamsError naming `where` and what it must be."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    wrong = refuse(where, f"must be {kind_in_words(hint)}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        return read_section(hint, value, where)
    if origin is Literal:
        if not _fits(hint, value):
            raise wrong
        return value
    if origin in (Union, types.UnionType):  # of scalars: read as the first that fits
        fitting = [argument for argument in arguments if _fits(argument, value)]
        if not fitting:
            raise wrong
        return read_value(fitting[0], value, where, minimum)
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong
        key_hint, value_hint = arguments
        return {
            read_value(key_hint, key, f"{where} key {key!r}"): read_value(
                value_hint, item, child(where, key)
            )
            for key, item in value.items()
        }
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise wrong
        return tuple(
            read_value(arguments[0], item, f"{where}[{i}]") for i, item in enumerate(value)
        )
    if not _fits(hint, value):
        raise wrong
    if minimum is not None and value < minimum:
        raise refuse(f"{where}={value!r}", f"is not usable: it must be at least {minimum}")
    return value


def read_section(cls: type, data: Any, where: str) -> Any:
    """An instance of dataclass `cls` from the mapping `data` at key `where`."""
    if not isinstance(data, dict):
        raise refuse(where, f"must be a mapping of keys to values, got {data!r}")
    if hasattr(cls, "prepared"):
        data = cls.prepared(data, where)
    declared = {
        field.name: field
        for field in dataclasses.fields(cls)
        if field.init and not field.metadata.get("not_a_key")
    }
    for key in data:
        if key not in declared:
            raise refuse(where, f"has no key {key!r}{closest(key, list(declared))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in declared.items():
        if name in data:
            minimum = field.metadata.get("minimum")
            values[name] = read_value(hints[name], data[name], child(where, name), minimum)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise refuse(where, f"lacks {name} ({kind_in_words(hints[name])})")
    return cls(**values)


def at_least(minimum: float, **kwargs: Any) -> Any:
    """A dataclass field whose value must be at least `minimum`."""
    return dataclasses.field(metadata={"minimum": minimum}, **kwargs)
