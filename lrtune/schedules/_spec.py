"""Text specs: ``family:key=value,key=value``.

``wsd:steps=24000,peak=3e-4,warmup=2160,cooldown=0.2,shape=1-sqrt,min=0.1``.
Lists (``milestones``, ``factors``) are written with ``/`` between values.
Keys left out take their defaults; :func:`format_spec` writes ``steps``, ``peak``, the
family's own keys and every shared key whose value differs from its default, so specs
round-trip exactly.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np

from lrtune.schedules._families import FAMILIES, Schedule


def _fields(cls: type[Schedule]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _kind(cls: type[Schedule], name: str) -> str:
    hint = typing.get_type_hints(cls)[name]
    if hint in (int, float, str):
        return hint.__name__
    args = typing.get_args(hint)
    return "ints" if args and args[0] is int else "floats"


def _parse_value(family: str, key: str, kind: str, text: str) -> object:
    try:
        if kind == "int":
            try:  # exact beyond 2**53, where a float is not
                return int(text)
            except ValueError:
                pass
            v = float(text)
            if not v.is_integer():
                raise ValueError
            return int(v)
        if kind == "float":
            v = float(text)
            if not math.isfinite(v):
                raise ValueError
            return v
        if kind == "str":
            return text
        items = [s for s in text.split("/") if s != ""]
        if kind == "ints":
            return tuple(_parse_value(family, key, "int", s) for s in items)
        return tuple(_parse_value(family, key, "float", s) for s in items)
    except ValueError:
        want = {"int": "an integer", "float": "a finite number", "ints": "integers separated by /",
                "floats": "numbers separated by /"}[kind]
        raise ValueError(f"schedule {family}: {key} must be {want}, got {text!r}") from None


def parse_schedule(spec: str | Schedule) -> Schedule:
    """Build a schedule from its text spec (a :class:`Schedule` is returned unchanged)."""
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        if hasattr(spec, "__len__") and not isinstance(spec, (str, bytes, dict)) and np.ndim(spec) > 0 and \
                len(spec) > 3:
            shown = f"an LR array of {len(spec)} values"  # the array itself would fill the message
            raise ValueError(f"schedule spec must be a non-empty string like 'cosine:steps=10000,peak=1e-3', got "
                             f"{shown}: an array (what lr_from_torch returns) has no spec; docs/schedules.md says "
                             f"which spec equals which torch or transformers scheduler, and laws predict from "
                             f"the array itself")
        raise ValueError(f"schedule spec must be a non-empty string like 'cosine:steps=10000,peak=1e-3', got {spec!r}")
    family, sep, rest = spec.strip().partition(":")
    family = family.strip().lower()
    if family not in FAMILIES:
        raise ValueError(f"unknown schedule family {family!r} in {spec!r}; known: {', '.join(FAMILIES)}")
    cls = FAMILIES[family]
    fields = _fields(cls)
    values: dict[str, object] = {}
    texts: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"schedule {family}: expected key=value, got {item!r}")
        if key not in fields:
            raise ValueError(f"schedule {family}: unknown key {key!r}; allowed: {', '.join(fields)}")
        if key in texts:
            raise ValueError(f"schedule {family}: key {key!r} given twice ({texts[key]!r} and {text.strip()!r})")
        texts[key] = text.strip()
        values[key] = _parse_value(family, key, _kind(cls, key), text.strip())
    for req in ("steps", "peak"):
        if req not in values:
            raise ValueError(f"schedule {family}: missing required key {req!r} in {spec!r}")
    return cls(**values)


def _format_value(v: object) -> str:
    if isinstance(v, tuple):
        return "/".join(_format_value(x) for x in v)
    if isinstance(v, float):
        return repr(float(v))  # shortest text that parses back to the same float
    return str(v)


def format_spec(schedule: Schedule) -> str:
    """The text spec of ``schedule``: ``steps``, ``peak``, the family's own keys and the
    shared keys (``warmup``, ``start``, ``min``) that differ from their defaults."""
    shared = {"warmup", "start", "min"}
    items = []
    for f in dataclasses.fields(schedule):
        v = getattr(schedule, f.name)
        if f.name not in shared or v != f.default:
            items.append(f"{f.name}={_format_value(v)}")
    return f"{schedule.family}:" + ",".join(items)
