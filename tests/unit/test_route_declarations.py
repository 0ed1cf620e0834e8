"""A declared route gets its inputs checked and must answer what it declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, Field

from signaling.api.declare import OPERATIONS, ApiRoutes
from signaling.errors import problem_middleware
from signaling.schemas import Strict

AiohttpClient = Callable[[web.Application], Awaitable[TestClient]]


class GreetingIn(Strict):
    """Whom to greet."""

    name: str = Field(min_length=1)


class LoudQuery(BaseModel):
    """How to greet."""

    loud: bool = False


class GreetingOut(BaseModel):
    """A greeting."""

    text: str


def greeting_app() -> web.Application:
    routes = ApiRoutes("greetings")

    @routes.post(
        "/api/rooms/{room}/greetings",
        body=GreetingIn,
        query=LoudQuery,
        response=GreetingOut,
        status=201,
        bearer=False,
    )
    async def greet(
        request: web.Request, room: str, query: LoudQuery, body: GreetingIn
    ) -> GreetingOut:
        """Greet someone in a room."""
        text = f"hello {body.name} in {room}"
        return GreetingOut(text=text.upper() if query.loud else text)

    @routes.get("/api/broken", response=GreetingOut)
    async def broken(request: web.Request, identity: Any) -> Any:
        """Answers what it does not declare."""
        return {"unexpected": True}

    app = web.Application(middlewares=[problem_middleware])
    routes.add_to(app)
    return app


async def test_a_valid_request_reaches_the_handler_with_its_inputs(
    aiohttp_client: AiohttpClient,
) -> None:
    client = await aiohttp_client(greeting_app())
    response = await client.post("/api/rooms/r1/greetings?loud=true", json={"name": "li"})
    assert response.status == 201
    assert await response.json() == {"text": "HELLO LI IN R1"}


async def test_invalid_input_is_the_usual_invalid_payload_problem(
    aiohttp_client: AiohttpClient,
) -> None:
    client = await aiohttp_client(greeting_app())
    for url, body in (
        ("/api/rooms/r1/greetings", {"name": ""}),
        ("/api/rooms/r1/greetings", {"name": "li", "extra": 1}),
        ("/api/rooms/r1/greetings?loud=maybe", {"name": "li"}),
    ):
        response = await client.post(url, json=body)
        assert response.status == 422
        assert (await response.json())["error"]["code"] == "invalid_payload"
    response = await client.post("/api/rooms/r1/greetings", data=b"{not json")
    assert (response.status, (await response.json())["error"]["code"]) == (422, "invalid_payload")


def test_a_handler_must_take_what_its_declaration_gives() -> None:
    routes = ApiRoutes("greetings")
    with pytest.raises(TypeError, match="room"):

        @routes.get("/api/rooms/{room}", bearer=False)
        async def room(request: web.Request) -> web.Response:
            """A room."""
            return web.json_response({})


async def test_an_answer_other_than_declared_is_a_server_fault(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("signaling.api.declare.caller", lambda request: "someone")
    app = greeting_app()
    client = await aiohttp_client(app)
    response = await client.get("/api/broken")
    assert (response.status, (await response.json())["error"]["code"]) == (500, "internal_error")
    assert [op.operation_id for op in app[OPERATIONS]] == ["greet", "broken"]


def test_a_handler_says_what_it_does_in_its_docstring() -> None:
    routes = ApiRoutes("greetings")
    with pytest.raises(TypeError, match="docstring"):

        @routes.get("/api/rooms", bearer=False)
        async def rooms(request: web.Request) -> web.Response:
            return web.json_response([])
