"""The OpenAPI 3.1 document of the selection service.

Request bodies come from the declarations in :mod:`._schema`; responses are described
here, next to nothing else, so the document reads top to bottom like the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lowcarb.adapters.service._schema import CANDIDATE, COMPLETE_REQUEST, SELECT_REQUEST

if TYPE_CHECKING:
    from lowcarb.adapters.service._app import ServiceConfig

__all__ = ["openapi_document"]

_NUM = {"type": "number"}
_STR = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_NUM = {"type": ["number", "null"]}


def _obj(doc: str, props: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "description": doc,
        "properties": props,
        "required": list(props) if required else [],
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_RESOLUTION = _obj(
    "How a location became a zone.",
    {
        "query": _STR,
        "zone": _STR,
        "method": {"enum": ["zone", "name", "cloud-region", "nearest-zone", "provider"]},
        "distance_km": _NULLABLE_NUM,
    },
)

_SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        "A refused or failed request.",
        {
            "error": {"type": "string", "description": "What went wrong and what to do."},
            "field": {
                "type": ["string", "null"],
                "description": "The offending field, e.g. candidates[2].zone, or null.",
            },
        },
    ),
    "ClientDecision": _obj(
        "What the engine expects for one candidate now.",
        {
            "id": _STR,
            "zone": _STR,
            "selected": {"type": "boolean"},
            "intensity_g_per_kwh": {**_NUM, "description": "Expected gCO2eq/kWh now."},
            "energy_kwh": {**_NUM, "description": "Expected energy of its round (kWh)."},
            "emissions_g": {**_NUM, "description": "Expected gCO2eq of its round."},
            "available": {"type": "boolean"},
            "next_turn": {
                **_NULLABLE_TIME,
                "description": "A deferred candidate: the start of the slot where the plan "
                "next has it train; null when selected, or when the plan (a rolling day of "
                "rounds in an open-ended training) does not have it train within its horizon.",
            },
        },
    ),
    "Provenance": {
        **_obj(
            "Where the carbon signal came from.",
            {
                "provider": _STR,
                "issued_at": _TIME,
                "fallback": {
                    "type": ["string", "null"],
                    "description": "Set when anything but the primary provider answered.",
                },
                "sources": {"type": "object", "additionalProperties": _STR},
                "notes": {"type": "array", "items": _STR},
            },
        ),
    },
    "Resolution": {
        **_RESOLUTION,
        "properties": {"id": _STR, **_RESOLUTION["properties"]},
        "required": ["query", "zone", "method", "distance_km"],
    },
    "SelectResponse": _obj(
        "The decision for one round.",
        {
            "task": _STR,
            "round": {"type": "integer", "minimum": 1},
            "replayed": {"type": "boolean", "description": "True for a retried round."},
            "run_now": {"type": "boolean", "description": "False: wait until wait_until."},
            "wait_until": _NULLABLE_TIME,
            "selected": {"type": "array", "items": _STR},
            "deferred": {"type": "array", "items": _STR},
            "intensities": {
                "type": "object",
                "additionalProperties": _NUM,
                "description": "Intensity used per zone (gCO2eq/kWh).",
            },
            "expected_energy_kwh": _NUM,
            "expected_emissions_g": _NUM,
            "random_expected_g": {
                **_NUM,
                "description": "Expected gCO2eq had k candidates been drawn at random.",
            },
            "reason": _STR,
            "policy": _STR,
            "decided_at": _TIME,
            "start": _TIME,
            "end": _TIME,
            "provenance": _ref("Provenance"),
            "clients": {"type": "array", "items": _ref("ClientDecision")},
            "decision_ms": _NUM,
            "resolved": {"type": "array", "items": _ref("Resolution")},
        },
    ),
    "CompleteResponse": _obj(
        "The round as recorded in the task's ledger.",
        {
            "task": _STR,
            "round": {"type": "integer"},
            "completed_at": _NULLABLE_TIME,
            "energy_kwh": _NUM,
            "emissions_g": _NUM,
            "metrics": {"type": "object", "additionalProperties": _NUM},
        },
    ),
    "ForecastResponse": _obj(
        "Expected intensity per zone and hour: the signal the engine plans with.",
        {
            "zones": {"type": "array", "items": _STR},
            "unit": {"const": "gCO2eq/kWh"},
            "slot_minutes": {"type": "integer"},
            "provenance": _ref("Provenance"),
            "resolved": {"type": "array", "items": _RESOLUTION},
            "data": {
                "type": "object",
                "additionalProperties": {
                    "type": "array",
                    "items": _obj("", {"start": _TIME, "g_co2_per_kwh": _NUM}),
                },
            },
        },
    ),
    "ZonesResponse": _obj(
        "The zones the provider serves.",
        {
            "provider": _STR,
            "synthetic": {"type": "boolean"},
            "zones": {
                "type": "array",
                "items": _obj(
                    "",
                    {
                        "zone": _STR,
                        "name": _STR,
                        "country": _STR,
                        "continent": _STR,
                        "timezone": _STR,
                    },
                ),
            },
        },
    ),
    "TaskResponse": _obj(
        "A task's fairness state and carbon account.",
        {
            "task": _STR,
            "rounds_done": {"type": "integer"},
            "participation": {"type": "object", "additionalProperties": {"type": "integer"}},
            "energy_kwh": _NUM,
            "emissions_g": _NUM,
            "excluded_energy_kwh": _NUM,
            "excluded_emissions_g": _NUM,
            "random_g": _NULLABLE_NUM,
            "saving_vs_random": _NULLABLE_NUM,
            "fairness": {"type": "object", "additionalProperties": _NUM},
            "fallbacks": {"type": "integer"},
        },
    ),
    "HealthResponse": _obj(
        "Liveness, and what the service runs with. Answered without waiting for the "
        "selection workers; 503 (status degraded) while a task's ledger cannot be written.",
        {
            "status": {"enum": ["ok", "degraded"]},
            "version": _STR,
            "provider": _STR,
            "persistent": {"type": "boolean", "description": "Task state survives restarts."},
            "auth": {"type": "boolean", "description": "Whether a bearer token is required."},
            "tasks": {"type": "integer", "description": "Tasks the service holds."},
            "storage_faults": {
                "type": "integer",
                "description": "Tasks whose last ledger write failed.",
            },
            "storage": {
                "type": "object",
                "additionalProperties": _STR,
                "description": "Task -> its storage fault (the first ten).",
            },
        },
    ),
}


def _answer(doc: str, schema: str) -> dict[str, Any]:
    return {"description": doc, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON.",
        401: "Missing or wrong bearer token.",
        403: "A new task past the service's task limit.",
        404: "Unknown task.",
        408: "The request was not received within the request timeout.",
        409: "The round does not fit the task's state.",
        413: "Body larger than the configured limit.",
        415: "Body is not application/json.",
        422: "A field is invalid; `field` names it.",
        431: "Request head larger than the configured limit.",
        503: "No carbon signal at all (every fallback failed), the task's state cannot be "
        "stored (the message says why; Retry-After), or every connection is busy.",
    }
    return {str(c): _answer(text[c], "Error") for c in codes}


def _query(name: str, doc: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": doc, "schema": schema}


def openapi_document(config: ServiceConfig) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a service with this configuration.

    Args:
        config: Its limits (shown as ``maxItems``) and whether a token is required.
    """
    schemas: dict[str, Any] = {**_SCHEMAS}
    for shape in (CANDIDATE, SELECT_REQUEST, COMPLETE_REQUEST):
        schemas[shape.name] = shape.schema()
    schemas["SelectRequest"]["properties"]["candidates"]["maxItems"] = config.max_candidates
    schemas["SelectRequest"]["properties"]["k"]["maximum"] = config.max_candidates
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}] if config.auth else []

    def op(summary: str, answer: dict[str, Any], *codes: int, **more: Any) -> dict[str, Any]:
        responses = {"200": answer, **_errors(*codes)}
        if config.auth:
            responses.update(_errors(401))
        return {"summary": summary, "security": secured, "responses": responses, **more}

    def body(shape: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": _ref(shape)}}}

    hours = {"type": "integer", "minimum": 1, "maximum": config.max_forecast_hours, "default": 24}
    paths = {
        "/v1/select": {
            "post": op(
                "Choose the clients of a round",
                _answer("The decision.", "SelectResponse"),
                400,
                403,
                409,
                413,
                415,
                422,
                503,
                requestBody=body("SelectRequest"),
            )
        },
        "/v1/complete": {
            "post": op(
                "Report a round's measured energy and metrics",
                _answer("The recorded round.", "CompleteResponse"),
                400,
                404,
                409,
                413,
                415,
                422,
                503,
                requestBody=body("CompleteRequest"),
            )
        },
        "/v1/forecast": {
            "get": op(
                "Expected intensity per zone and hour",
                _answer("The forecast.", "ForecastResponse"),
                422,
                503,
                parameters=[
                    _query("zone", "Zone id (repeatable).", {"type": "array", "items": _STR}),
                    _query(
                        "location",
                        "LAT,LON, name or cloud region (repeatable).",
                        {"type": "array", "items": _STR},
                    ),
                    _query("hours", "Horizon (hours).", hours),
                ],
            )
        },
        "/v1/zones": {"get": op("Zones served", _answer("The zones.", "ZonesResponse"), 422)},
        "/v1/tasks/{task}": {
            "get": op(
                "A task's fairness state and carbon account",
                _answer("The task.", "TaskResponse"),
                404,
                422,
                503,
                parameters=[{"name": "task", "in": "path", "required": True, "schema": _STR}],
            )
        },
        "/v1/health": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {
                    "200": _answer("Alive.", "HealthResponse"),
                    "503": _answer("A task's state cannot be stored.", "HealthResponse"),
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document."}},
            }
        },
    }
    components: dict[str, Any] = {"schemas": schemas}
    if config.auth:
        components["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lowcarb selection service",
            "version": "1",
            "description": "Carbon-aware, fair client selection for federated learning.",
        },
        "paths": paths,
        "components": components,
    }
