"""How recipe values are read: YAML scalars keep their text (:class:`_Text`) and are
converted by the type of the field they set (:func:`_coerce`); :func:`_build` makes a
config dataclass from a nested dict. The rules are described in :mod:`g2res.config`."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from typing import Any

import yaml


class ConfigError(ValueError):
    """A recipe or override that does not fit :class:`Config`."""


class _Text(str):
    """A value as written in a recipe or an override, with what YAML makes of it.

    ``str(self)`` is the text; ``parsed`` the YAML 1.1 value (a scalar, or a list or
    dict of :class:`_Text`); ``quoted`` tells a quoted YAML scalar (``"off"``).
    """

    parsed: Any
    quoted: bool

    def __new__(cls, text: str, parsed: Any, quoted: bool = False) -> _Text:
        self = super().__new__(cls, text)
        self.parsed, self.quoted = parsed, quoted
        return self


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose scalars are :class:`_Text`: the field type decides."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        value = super().construct_object(node, deep=deep)
        if isinstance(node, yaml.ScalarNode):
            return _Text(node.value, value, quoted=node.style in ("'", '"'))
        return value


def _load_yaml(text: str) -> Any:
    """YAML text -> dicts and lists of :class:`_Text` scalars."""
    return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader: no Python objects


# A number YAML 1.1 leaves as a string ("3e-4", "1e5": no dot in the mantissa).
_NUMBER = re.compile(r"[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?")
_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0")


def _plain(value: Any) -> Any:
    """The Python value of loaded YAML (numbers with exponents as floats)."""
    if isinstance(value, _Text):
        parsed = value.parsed
        if isinstance(parsed, str) and not value.quoted and _NUMBER.fullmatch(parsed):
            return float(parsed)
        return _plain(parsed)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _structure(value: Any) -> Any:
    """A list or dict given as text (an override) -> the list or dict; else unchanged."""
    if isinstance(value, _Text) and isinstance(value.parsed, (list, dict)):
        return value.parsed
    return value


def _type_name(tp: Any) -> str:
    names = {bool: "a boolean (true/false, on/off, yes/no, 1/0)", int: "an integer"}
    names |= {float: "a number", str: "a string", dict: "a mapping"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a value (Python, or :class:`_Text` from YAML) to the annotated type ``tp``."""
    tp, optional = _strip_optional(tp)
    plain = _plain(value)
    if plain is None:
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed here (expected {_type_name(tp)})")
    got = f"got {str(value)!r}" if isinstance(value, _Text) else f"got {value!r}"
    if dataclasses.is_dataclass(tp):
        value = _structure(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, {got}")
        return _build(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        # A value that already has one of the types keeps it (2 stays 2 in str | int).
        exact = [a for a in args if isinstance(a, type) and type(plain) is a]
        for arg in exact + [a for a in args if a not in exact]:
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, {got}")
    if origin is tuple:
        args = typing.get_args(tp)
        items = _structure(value)
        if not isinstance(items, (list, tuple)) or len(items) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, {got}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args)))
    if origin is list:
        (arg,) = typing.get_args(tp)
        items = _structure(value)
        if not isinstance(items, (list, tuple)):
            items = [value]
        return [_coerce(v, arg, f"{where}[{i}]") for i, v in enumerate(items)]
    if tp is dict or origin is dict:
        if not isinstance(plain, dict):
            raise ConfigError(f"{where}: expected a mapping, {got}")
        return copy.deepcopy(plain)
    if tp is bool:
        if isinstance(plain, bool):
            return plain
        if isinstance(plain, int) and plain in (0, 1):
            return bool(plain)
        word = str(value).strip().lower() if isinstance(value, str) else None
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ConfigError(f"{where}: expected {_type_name(bool)}, {got}")
    if tp is int:
        if isinstance(plain, str):
            plain = _number(plain)
        if isinstance(plain, bool) or not isinstance(plain, (int, float)) or int(plain) != plain:
            raise ConfigError(f"{where}: expected an integer, {got}")
        return int(plain)
    if tp is float:
        if isinstance(plain, str):
            plain = _number(plain)
        if isinstance(plain, bool) or not isinstance(plain, (int, float)):
            raise ConfigError(f"{where}: expected a number, {got}")
        return float(plain)
    if tp is str:
        if isinstance(value, _Text):
            # The text as written: `off` stays "off"; a quoted scalar loses its quotes.
            return str(value.parsed) if value.quoted else str(value)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, {got}")
    return plain


def _number(text: str) -> int | float | str:
    """``"1000"`` -> 1000, ``"3e-4"`` -> 0.0003; text that is no number stays text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _build(cls: type, data: dict, where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        path = f"{where}.{key}" if where else key
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown recipe field {path!r}{hint}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)
