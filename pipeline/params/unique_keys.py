"""YAML read with each key of a mapping given once: PyYAML keeps the last of a repeated key
without a word, so a threshold written twice would silently be the one further down."""

from typing import Any

import yaml

# libyaml's parser where PyYAML has it: the same values as yaml.safe_load, faster.
BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RepeatedKey(yaml.YAMLError):
    """A mapping names one key twice; the message says which (its dotted path) and where."""


def first_repeat(node: yaml.Node, where: str = "") -> str:
    """`key is given twice (lines a and b)` for the first key a mapping in `node` repeats, or
    nothing."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            path = f"{where}.{key}" if where else str(key)
            line = key_node.start_mark.line + 1
            if key is not None and key in seen:
                return f"{path} is given twice (lines {seen[key]} and {line})"
            if key is not None:
                seen[key] = line
            repeat = first_repeat(value_node, path)
            if repeat:
                return repeat
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            repeat = first_repeat(item, f"{where}[{index}]")
            if repeat:
                return repeat
    return ""


class UniqueKeyLoader(BASE_LOADER):
    """yaml's safe loader that refuses a key repeated in one mapping, naming it and its lines."""

    def construct_document(self, node: yaml.Node) -> Any:
        repeat = first_repeat(node)
        if repeat:
            raise RepeatedKey(f"{repeat}; keep one")
        return super().construct_document(node)


def load_unique(stream: Any) -> Any:
    """The YAML document in `stream`, as yaml.safe_load reads it; RepeatedKey for a key given
    twice in one mapping."""
    return yaml.load(stream, Loader=UniqueKeyLoader)
