"""The OpenAPI 3.1 document of the REST API, built from the route declarations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from signaling.api.declare import OPERATIONS, PATH_PARAMETER_MAX, ApiRoutes, Operation
from signaling.schemas import ProblemOut

REF = "#/components/schemas/{model}"

routes = ApiRoutes("openapi")


class Components:
    """The document's named schemas: each model once, under its class name."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        """Name ``schema``; two different schemas under one name are a mistake."""
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name}")

    def inline(self, schema: dict[str, Any]) -> dict[str, Any]:
        """``schema`` with its ``$defs`` moved into the components."""
        for name, definition in schema.pop("$defs", {}).items():
            self.add(name, definition)
        return schema

    def schema(self, kind: Any) -> dict[str, Any]:
        """The JSON Schema of a type: a reference for a model, inline for e.g. ``list[Model]``."""
        schema = self.inline(TypeAdapter(kind).json_schema(ref_template=REF))
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            self.add(kind.__name__, schema)
            return {"$ref": REF.format(model=kind.__name__)}
        return schema


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _parameters(operation: Operation, components: Components) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": PATH_PARAMETER_MAX},
        }
        for name in operation.path_parameters
    ]
    if operation.query is not None:
        schema = components.inline(operation.query.model_json_schema(ref_template=REF))
        required = set(schema.get("required", ()))
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": field}
            for name, field in schema["properties"].items()
        ]
    return parameters


def _responses(operation: Operation, components: Components) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.description}
    if operation.response is not None:
        success = _json(operation.description, components.schema(operation.response))
    responses = {str(operation.status): success}
    for status, text in operation.other_statuses.items():
        responses[str(status)] = {"description": text}
    problem = _json("refused, with a stable error code", components.schema(ProblemOut))
    for status in operation.problem_statuses:
        responses[str(status)] = problem
    return responses


def _operation(operation: Operation, components: Components) -> dict[str, Any]:
    described: dict[str, Any] = {
        "summary": operation.summary,
        "operationId": operation.operation_id,
        "tags": [operation.tag],
    }
    if parameters := _parameters(operation, components):
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": components.schema(operation.body)}},
        }
    described["responses"] = _responses(operation, components)
    if not operation.bearer:
        described["security"] = []
    return described


def build_openapi(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    components = Components()
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, components
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "teleconsult", "version": "0.1.0"},
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


@routes.get(
    "/api/openapi.json",
    response=dict[str, Any],
    description="the OpenAPI 3.1 document of every REST route",
    bearer=False,
)
async def openapi(request: web.Request) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the REST routes this application serves."""
    operations = request.app[OPERATIONS]
    return build_openapi(operations)
