"""/api/openapi.json describes every REST route the server serves, with each route's schemas."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, get_args

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from pydantic import BaseModel

from config.settings import Settings
from migrations.runner import upgrade
from signaling.api.declare import OPERATIONS
from signaling.app import create_app


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[tuple[web.Application, dict[str, Any]]]:
    """The application and the document it serves."""
    await asyncio.to_thread(upgrade, settings.effective_database_url)
    app = create_app(settings)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/openapi.json")
        assert response.status == 200
        yield app, await response.json()


def served_api_routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path, handler module) of every route under /api/ (HEAD comes with GET)."""
    return [
        (route.method, route.resource.canonical, route.handler.__module__)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    ]


def models_in(kind: Any) -> list[type[BaseModel]]:
    """The models a declared type names: itself, or those inside e.g. ``list[Model]``."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return [kind]
    return [model for arg in get_args(kind) for model in models_in(arg)]


async def test_every_api_route_is_in_the_document_with_its_method(
    served: tuple[web.Application, dict[str, Any]],
) -> None:
    app, document = served
    routes = served_api_routes(app)
    assert len(routes) > 30
    missing = [
        (method, path)
        for method, path, _ in routes
        if method.lower() not in document["paths"].get(path, {})
    ]
    assert missing == []


async def test_every_api_route_is_declared(served: tuple[web.Application, dict[str, Any]]) -> None:
    app, _ = served
    declared = {(op.method, op.path) for op in app[OPERATIONS]}
    undeclared = {
        (method, path)
        for method, path, _ in served_api_routes(app)
        if (method, path) not in declared
    }
    assert undeclared == set()


async def test_each_declared_schema_is_in_the_components_and_named_by_its_route(
    served: tuple[web.Application, dict[str, Any]],
) -> None:
    app, document = served
    components = document["components"]["schemas"]
    for op in app[OPERATIONS]:
        described = document["paths"][op.path][op.method.lower()]
        text = json.dumps(described)
        for model in [*models_in(op.body), *models_in(op.response)]:
            assert model.__name__ in components, (op.operation_id, model.__name__)
            assert f'"#/components/schemas/{model.__name__}"' in text, op.operation_id
        parameters = {(p["in"], p["name"]) for p in described.get("parameters", [])}
        expected = {("path", name) for name in op.path_parameters}
        if op.query is not None:
            expected |= {("query", f.alias or name) for name, f in op.query.model_fields.items()}
        assert parameters == expected, op.operation_id
        assert set(described["responses"]) >= {str(s) for s in (op.status, *op.problem_statuses)}


async def test_the_document_is_valid_openapi_3_1(
    served: tuple[web.Application, dict[str, Any]],
) -> None:
    _, document = served
    assert document["openapi"] == "3.1.0"
    validate(document)
