"""Read one section of params.yaml into its frozen dataclass, refusing what does not fit it.

A key the dataclass does not declare is refused with the closest key it does (a misspelling);
a key it needs and the file lacks, or a value of the wrong kind, is refused naming the key and
what it must be. Values are kept as YAML gives them (an int where a float is declared stays an
int), so what the pipeline writes back as data is the file's own.
"""

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass
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


def nested_home(cls: type, key: Any, where: str) -> str:
    """` (it belongs under x)` when `key` is a key of a section nested in `cls`, or nothing."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            home, section = child(where, field.name), hint
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            home, section = child(where, field.name) + ".<name>", typing.get_args(hint)[1]
        else:
            continue
        if key in {nested.name for nested in dataclasses.fields(section)}:
            return f" (it belongs under {home})"
    return ""


# A number in exponent form without a dot, which YAML 1.1 (PyYAML) reads as text.
DOTLESS_EXPONENT = re.compile(r"([-+]?\d+)([eE][-+]?\d+)")


def text_number_hint(hint: Any, value: Any) -> str:
    """How to write `value` so that YAML reads it as a number, when a number was expected."""
    if not isinstance(value, str) or not (hint is float or float in typing.get_args(hint)):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    dotless = DOTLESS_EXPONENT.fullmatch(value.strip())
    if dotless:
        written = f"{dotless.group(1)}.0{dotless.group(2)}"
        return f"; YAML reads {value} as text; write {written}"
    return "; write it without quotes"


@dataclass(frozen=True)
class Bounds:
    """The range a number must lie in: above (or at) `low`, at or below `high`."""

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None

    def problem(self, value: float) -> str:
        """Why `value` is out of range, or nothing."""
        if self.low is not None and self.low_inclusive and value < self.low:
            return f"must be at least {self.low}"
        if self.low is not None and not self.low_inclusive and value <= self.low:
            return f"must be more than {self.low}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high}"
        return ""


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


def read_value(hint: Any, value: Any, where: str, bounds: Bounds | None = None) -> Any:
    """`value` as type `hint`, or a ParamsError naming `where` and what it must be."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    wrong = refuse(
        where, f"must be {kind_in_words(hint)}, got {value!r}{text_number_hint(hint, value)}"
    )
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
        return read_value(fitting[0], value, where, bounds)
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
    problem = bounds.problem(value) if bounds is not None and value is not None else ""
    if problem:
        raise refuse(f"{where}={value!r}", f"is not usable: it {problem}")
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
            hint = closest(key, list(declared)) or nested_home(cls, key, where)
            raise refuse(where, f"has no key {key!r}{hint}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in declared.items():
        if name in data:
            bounds = field.metadata.get("bounds")
            values[name] = read_value(hints[name], data[name], child(where, name), bounds)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise refuse(where, f"lacks {name} ({kind_in_words(hints[name])})")
    return cls(**values)


def at_least(minimum: float, at_most: float | None = None, **kwargs: Any) -> Any:
    """A dataclass field whose value must be at least `minimum` (and at most `at_most`)."""
    return dataclasses.field(metadata={"bounds": Bounds(minimum, True, at_most)}, **kwargs)


def more_than(minimum: float, at_most: float | None = None, **kwargs: Any) -> Any:
    """A dataclass field whose value must be above `minimum` (and at most `at_most`): a
    timeout, an interval or a rate, where `minimum` itself means nothing."""
    return dataclasses.field(metadata={"bounds": Bounds(minimum, False, at_most)}, **kwargs)
