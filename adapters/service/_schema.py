"""Request shapes of the selection service.

Each request body is declared once, as a :class:`Shape` of :class:`Prop` entries; the same
declaration validates incoming JSON (errors name the offending field, e.g.
``candidates[3].energy_kwh``) and produces the JSON Schema in the OpenAPI document, so
the two cannot drift apart. This module knows no HTTP.

Every number is bounded (the plausibility bounds of the core, e.g. at most
``MAX_CLIENT_ROUND_KWH`` kWh per client-round) and every string must be encodable as
UTF-8, so a request the schema accepts can be recorded and read back: no stored value can
overflow a later sum or break a later JSON answer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lowcarb import (
    MAX_CLIENT_ROUND_KWH,
    MAX_METRIC,
    MAX_PLAUSIBLE_G_PER_KWH,
    MAX_POWER_W,
    MAX_ROUND,
    MAX_UTILITY,
    TASK_ID_PATTERN,
    check_text,
)
from lowcarb.exceptions import InvalidInputError

__all__ = [
    "CANDIDATE",
    "COMPLETE_REQUEST",
    "SELECT_REQUEST",
    "Prop",
    "RequestError",
    "Shape",
]

#: Longest client id, zone or location accepted (characters).
MAX_NAME = 256
#: Most entries in a map (measured energies, metrics, actual intensities).
MAX_ENTRIES = 100_000


class RequestError(InvalidInputError):
    """A request the service refuses, with the HTTP status and the field to blame.

    Attributes:
        status: HTTP status code (4xx).
        field: Path of the offending field (``candidates[2].zone``), or None.
    """

    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Prop:
    """One property of a JSON object.

    Attributes:
        kind: ``string``, ``integer``, ``number``, ``array`` (of ``item`` objects) or
            ``map`` (string keys to numbers).
        doc: What it means, with its unit.
        required: Whether it must be present.
        minimum: Least value (numbers, and a map's values) or least number of items
            (arrays).
        maximum: Greatest value (numbers, and a map's values).
        max_items: Greatest number of items (arrays) or entries (maps).
        max_length: Longest string.
        pattern: Regular expression a string must match in full.
        item: The shape of an array's items.
        example: A value for the documentation.
    """

    kind: str
    doc: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    max_items: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    item: Shape | None = None
    example: Any = None

    def schema(self) -> dict[str, Any]:
        """JSON Schema (2020-12, as OpenAPI 3.1 uses) of this property."""
        out: dict[str, Any] = {"description": self.doc}
        if self.kind == "array":
            assert self.item is not None
            out.update(type="array", items={"$ref": f"#/components/schemas/{self.item.name}"})
            if self.minimum is not None:
                out["minItems"] = int(self.minimum)
            if self.max_items is not None:
                out["maxItems"] = self.max_items
        elif self.kind == "map":
            out.update(
                type="object",
                additionalProperties={"type": "number", **self._bounds()},
                propertyNames={"minLength": 1, "maxLength": MAX_NAME},
            )
            if self.max_items is not None:
                out["maxProperties"] = self.max_items
        else:
            out["type"] = self.kind
            out.update(self._bounds())
            if self.kind == "string":
                out["minLength"] = 1
                # Unanchored \S: at least one character that is not white space.
                out["pattern"] = f"^{self.pattern}$" if self.pattern else r"\S"
            if self.max_length is not None:
                out["maxLength"] = self.max_length
        if self.example is not None:
            out["example"] = self.example
        return out

    def _bounds(self) -> dict[str, float]:
        """``minimum``/``maximum`` of a number (integers written as integers)."""
        cast = int if self.kind == "integer" else float
        out: dict[str, float] = {}
        if self.minimum is not None:
            out["minimum"] = cast(self.minimum)
        if self.maximum is not None:
            out["maximum"] = cast(self.maximum)
        return out


@dataclass(frozen=True)
class Shape:
    """A JSON object with declared properties; anything undeclared is refused.

    Attributes:
        name: Name of its schema in the OpenAPI document.
        doc: What it is.
        props: Its properties by name, in documentation order.
        one_of: Groups of properties of which exactly one must be present.
    """

    name: str
    doc: str
    props: Mapping[str, Prop]
    one_of: tuple[tuple[str, ...], ...] = field(default=())

    def schema(self) -> dict[str, Any]:
        """JSON Schema of the object."""
        out: dict[str, Any] = {
            "type": "object",
            "description": self.doc,
            "properties": {name: prop.schema() for name, prop in self.props.items()},
            "required": [name for name, prop in self.props.items() if prop.required],
            "additionalProperties": False,
        }
        if self.one_of:
            out["allOf"] = [
                {"oneOf": [{"required": [name]} for name in group]} for group in self.one_of
            ]
        return out

    def parse(
        self, value: Any, path: str = "", *, limits: Mapping[str, int] | None = None
    ) -> dict[str, Any]:
        """Validate a decoded JSON value; return its properties (absent ones omitted).

        Args:
            value: What ``json.loads`` produced.
            path: Where the object sits in the request, for error messages.
            limits: Configured limits by property name: ``max_items`` of an array or
                map, ``maximum`` of a number.

        Raises:
            RequestError: Naming the first offending field.
        """
        where = path or "body"
        if not isinstance(value, dict):
            raise RequestError(f"{where} must be a JSON object", field=path or None)
        for name in value:
            if name not in self.props:
                allowed = ", ".join(self.props)
                raise RequestError(
                    f"unknown field {_join(path, name)!r}; allowed: {allowed}",
                    field=_join(path, name),
                )
        for group in self.one_of:
            present = [name for name in group if name in value]
            if len(present) != 1:
                names = " or ".join(repr(n) for n in group)
                raise RequestError(
                    f"{where} needs exactly one of {names}",
                    field=_join(path, present[1] if present else group[0]),
                )
        out: dict[str, Any] = {}
        for name, prop in self.props.items():
            here = _join(path, name)
            if name not in value:
                if prop.required:
                    raise RequestError(f"missing required field {here!r}", field=here)
                continue
            limit = (limits or {}).get(name)
            if limit is not None and prop.kind in ("array", "map"):
                prop = replace(prop, max_items=limit)
            elif limit is not None:
                prop = replace(prop, maximum=limit)
            out[name] = _check(prop, value[name], here)
        return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _number(prop: Prop, value: Any, where: str) -> float:
    """A JSON number within the property's bounds (an int for ``integer``)."""
    integer = prop.kind == "integer"
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise RequestError(f"{where} must be {kind}, got {value!r}", field=where)
    # Compared as given: an int of 400 digits is out of range, not an OverflowError.
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError(f"{where} must be finite, got {value!r}", field=where)
    low, high = prop.minimum, prop.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        shown = (
            str(value)
            if len(str(value)) <= 40
            else f"{str(value)[:20]}... ({len(str(value))} digits)"
        )
        bounds = (
            f"between {low:g} and {high:g}"
            if low is not None and high is not None
            else (f">= {low:g}" if low is not None else f"<= {high:g}")
        )
        raise RequestError(f"{where} must be {bounds}, got {shown}", field=where)
    if integer:
        # JSON Schema counts 2.0 as an integer; so do we.
        if isinstance(value, float) and not value.is_integer():
            raise RequestError(f"{where} must be an integer, got {value!r}", field=where)
        return int(value)
    return float(value)


def _text(value: str, where: str) -> str:
    """``value`` if UTF-8 can encode it (SQLite and JSON cannot store a lone surrogate)."""
    try:
        return check_text(where, value)
    except InvalidInputError as exc:
        raise RequestError(str(exc), field=where) from None


def _check(prop: Prop, value: Any, where: str) -> Any:
    if prop.kind in ("integer", "number"):
        return _number(prop, value, where)
    if prop.kind == "string":
        if not isinstance(value, str) or not value.strip():
            raise RequestError(f"{where} must be a non-empty string", field=where)
        if prop.max_length is not None and len(value) > prop.max_length:
            raise RequestError(f"{where} is longer than {prop.max_length} characters", field=where)
        _text(value, where)
        if prop.pattern is not None and not re.fullmatch(prop.pattern, value):
            raise RequestError(f"{where}={value!r} must match {prop.pattern}", field=where)
        return value
    if prop.kind == "array":
        assert prop.item is not None
        if not isinstance(value, list):
            raise RequestError(f"{where} must be a JSON array", field=where)
        if prop.minimum is not None and len(value) < prop.minimum:
            raise RequestError(f"{where} needs at least {prop.minimum:g} items", field=where)
        if prop.max_items is not None and len(value) > prop.max_items:
            raise RequestError(
                f"{where} has {len(value)} items; this service accepts at most {prop.max_items}",
                field=where,
            )
        return [prop.item.parse(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if prop.kind == "map":
        if not isinstance(value, dict):
            raise RequestError(f"{where} must be a JSON object of numbers", field=where)
        if prop.max_items is not None and len(value) > prop.max_items:
            raise RequestError(f"{where} has more than {prop.max_items} entries", field=where)
        out: dict[str, float] = {}
        for key, item in value.items():
            if not key or len(key) > MAX_NAME:
                raise RequestError(f"{where} has an empty or overlong key", field=where)
            here = f"{where}.{_text(key, f'a key of {where}')}"
            out[key] = _number(prop, item, here)
        return out
    raise AssertionError(f"unknown kind {prop.kind}")  # pragma: no cover - declarations


_TASK = Prop(
    "string",
    "Task (training run) id; each task keeps its own fairness state.",
    required=True,
    max_length=128,
    pattern=TASK_ID_PATTERN,
    example="mnist",
)

CANDIDATE = Shape(
    "Candidate",
    "A client that could take part in the round. Give exactly one of zone or location.",
    {
        "id": Prop("string", "Client id, unique in the request.", True, max_length=MAX_NAME),
        "zone": Prop(
            "string",
            "Grid zone (e.g. DE, US-CAL-CISO). Zones no provider serves get the mean of the "
            "others (or an error, if the service is configured so).",
            max_length=MAX_NAME,
            example="DE",
        ),
        "location": Prop(
            "string",
            "Where the client runs: 'LAT,LON' in degrees, a zone or country name, or a "
            "cloud region such as 'aws:eu-central-1'. Resolved to a served zone.",
            max_length=MAX_NAME,
            example="47.37,8.54",
        ),
        "energy_kwh": Prop(
            "number",
            "Energy of one round for this client (kWh), if known.",
            minimum=0,
            maximum=MAX_CLIENT_ROUND_KWH,
        ),
        "power_w": Prop(
            "number",
            "Device power while training (W), for the energy model.",
            minimum=0,
            maximum=MAX_POWER_W,
        ),
        "utility": Prop(
            "number",
            "Value of the client's data (e.g. samples); traded against carbon.",
            minimum=0,
            maximum=MAX_UTILITY,
        ),
    },
    one_of=(("zone", "location"),),
)

SELECT_REQUEST = Shape(
    "SelectRequest",
    "Ask which candidates take part in a round.",
    {
        "task": _TASK,
        "round": Prop(
            "integer",
            "Round the caller means (1-based). The next round is decided; an earlier one "
            "returns its recorded decision (safe retries); a later one is a 409.",
            minimum=1,
            maximum=MAX_ROUND,
            example=1,
        ),
        "k": Prop(
            "integer",
            "Clients wanted this round (at most the candidates given).",
            True,
            minimum=1,
            example=2,
        ),
        "candidates": Prop("array", "The clients available now.", True, minimum=1, item=CANDIDATE),
    },
)

COMPLETE_REQUEST = Shape(
    "CompleteRequest",
    "Report what became known after a round ran.",
    {
        "task": _TASK,
        "round": Prop(
            "integer", "The round (1-based).", True, minimum=1, maximum=MAX_ROUND, example=1
        ),
        "energy_kwh": Prop(
            "map",
            "Measured energy per selected client (kWh); replaces the estimate.",
            minimum=0,
            maximum=MAX_CLIENT_ROUND_KWH,
            max_items=MAX_ENTRIES,
            example={"hospital-7": 0.031},
        ),
        "excluded_energy_kwh": Prop(
            "map",
            "Energy (kWh) that candidates left out of the round spent anyway, because the "
            "framework could not hold them back; counted in the task's footprint, not in "
            "its selection.",
            minimum=0,
            maximum=MAX_CLIENT_ROUND_KWH,
            max_items=MAX_ENTRIES,
            example={"hospital-3": 0.028},
        ),
        "metrics": Prop(
            "map",
            "Metrics of the round, e.g. accuracy (fraction) or loss.",
            minimum=-MAX_METRIC,
            maximum=MAX_METRIC,
            max_items=64,
            example={"accuracy": 0.91},
        ),
        "actual": Prop(
            "map",
            "Actual mean intensity per zone over the round (gCO2eq/kWh), if known; "
            "otherwise fetched from the provider once the round has ended.",
            minimum=0,
            maximum=MAX_PLAUSIBLE_G_PER_KWH,
            max_items=MAX_ENTRIES,
        ),
    },
)
