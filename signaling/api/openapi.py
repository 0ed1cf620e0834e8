"""The OpenAPI description of the REST API, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from signaling.api.clinical_openapi import CLINICAL_SCHEMAS, clinical_paths
from signaling.api.recordings import RECORDING_SCHEMAS, recording_paths
from signaling.schemas import ConsultCreate, ConsultOut, ProblemOut

routes = web.RouteTableDef()

SCHEMAS: tuple[type[BaseModel], ...] = (
    ConsultCreate,
    ConsultOut,
    ProblemOut,
    *CLINICAL_SCHEMAS,
    *RECORDING_SCHEMAS,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(status): _json(ProblemOut, "refused, with a stable error code") for status in statuses
    }


CONSULT_ID = {"name": "consult_id", "in": "path", "required": True, "schema": {"type": "string"}}


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every REST route."""
    components: dict[str, Any] = {}
    for model in SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "teleconsult", "version": "0.1.0"},
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            **clinical_paths(),
            **recording_paths(),
            "/api/consults": {
                "post": {
                    "summary": "Schedule a consult (coordinator, doctor or hospital system)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(ConsultCreate)}},
                    },
                    "responses": {
                        "201": _json(ConsultOut, "the consult, with a join_url per participant"),
                        **_problems(401, 403, 422),
                    },
                }
            },
            "/api/consults/{consult_id}": {
                "get": {
                    "summary": "A consult and its participants",
                    "parameters": [CONSULT_ID],
                    "responses": {"200": _json(ConsultOut, "the consult"), **_problems(401, 404)},
                }
            },
            "/api/consults/{consult_id}/end": {
                "post": {
                    "summary": "End a consult for everyone (its host or hospital staff)",
                    "parameters": [CONSULT_ID],
                    "responses": {
                        "200": _json(ConsultOut, "the ended consult"),
                        **_problems(401, 403, 404, 409),
                    },
                }
            },
            "/api/consults/{consult_id}/timeline": {
                "get": {
                    "summary": "The consult's timeline: who did what, when",
                    "parameters": [CONSULT_ID],
                    "responses": {
                        "200": {"description": "the events, oldest first"},
                        **_problems(401, 404),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "up"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: database and Redis reachable",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
        },
    }


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI description."""
    return web.json_response(build_openapi())
