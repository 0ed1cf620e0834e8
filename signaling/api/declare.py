"""Route declarations: each REST route states once what it takes and answers; OpenAPI reads that.

A resource module declares its routes on an :class:`ApiRoutes` table and adds the table to the
application; the handler receives its inputs already checked::

    routes = ApiRoutes("notes")

    @routes.patch(
        "/api/notes/{note_id}",
        body=NoteIn,
        response=NoteOut,
        problems=(403, 404, 409),
    )
    async def update_note(
        request: web.Request, identity: Identity, note_id: str, body: NoteIn
    ) -> NoteOut:
        '''Save a draft note (its author).'''
        view = await notes(request).update(identity, note_id, draft(body), client_address(request))
        return NoteOut.model_validate(view.as_dict())

    routes.add_to(app)  # the routes, and their operations in /api/openapi.json

The operation's summary is the first line of the handler's docstring, unless ``summary=`` says
otherwise. The handler is called with the request and, by keyword: each path parameter (a
string); ``identity``, the bearer token's verified identity (unless ``bearer=False``; a join
link only where ``join_link=True``, for the consult in the path; refused and audited elsewhere);
``query``, the query string as the ``query`` model; ``body``, the JSON body as the ``body``
model. They are
checked in that order, so a missing token is refused before a bad body; bad input raises as it
always has and ``signaling.errors`` answers the usual 422 ``invalid_payload`` problem. A handler
whose parameters differ from its declaration is refused when it is declared.

The handler returns a value of the ``response`` type (a model, or a type such as
``list[Model]``), sent as JSON with ``status``; or a ``web.StreamResponse``, sent as it is (a
file, or an answer whose status depends on the outcome). ``problems`` are the refusal statuses
beyond those implied: 401 by a bearer, 422 by a body or a query, 429 by a write or a
``rate_limit`` (the name of a limit of the route's own, counted by
:func:`signaling.limits.rate_limit_middleware`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from rooms.errors import InvalidPayload
from signaling.api.bearer import caller, check_join_link
from signaling.errors import json_body
from signaling.limits import WRITES

H = TypeVar("H", bound=Callable[..., Awaitable[object]])
P = ParamSpec("P")
R = TypeVar("R")

_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Operation:
    """One declared route: its method and path, what it takes, what it answers, who may call it.

    :param method: The HTTP method (``GET``, ``POST``, …).
    :param path: The aiohttp path, with ``{name}`` path parameters.
    :param summary: One line for the OpenAPI document.
    :param tag: The resource the route belongs to.
    :param operation_id: The handler's name, unique in the document.
    :param response: The type of the success answer's JSON, or None when it is not JSON.
    :param status: The success status.
    :param description: What the success answer is.
    :param body: The model of the JSON body, if the route takes one.
    :param body_required: False when an empty body means the model's defaults.
    :param query: The model of the query string, if the route reads one.
    :param problems: Refusal statuses beyond the implied 401 (bearer), 422 (body or query)
        and 429 (a write, or a ``rate_limit``).
    :param other_statuses: Answers that are neither success nor problem, with their description.
    :param bearer: Whether the route needs a bearer token.
    :param join_link: Whether the join link of the consult in the path (``{consult_id}``) is
        accepted besides identity tokens; every other route refuses join links.
    :param rate_limit: The name of a limit of the route's own (:mod:`signaling.limits`), counted
        per caller besides the limits of every write.
    """

    method: str
    path: str
    summary: str
    tag: str
    operation_id: str
    response: Any = None
    status: int = 200
    description: str = "OK"
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    problems: tuple[int, ...] = ()
    other_statuses: Mapping[int, str] = field(default_factory=dict)
    bearer: bool = True
    join_link: bool = False
    rate_limit: str | None = None

    @property
    def path_parameters(self) -> list[str]:
        """The names of the path's parameters, in order."""
        return _PATH_PARAMETER.findall(self.path)

    @property
    def problem_statuses(self) -> list[int]:
        """Every refusal status the route may answer, the implied ones included."""
        implied = {401} if self.bearer else set()
        if self.body is not None or self.query is not None:
            implied.add(422)
        if self.method in WRITES or self.rate_limit is not None:
            implied.add(429)
        return sorted(implied | set(self.problems))

    @property
    def inputs(self) -> list[str]:
        """The keyword arguments the handler receives besides the request."""
        names = self.path_parameters
        for name, present in (
            ("identity", self.bearer),
            ("query", self.query is not None),
            ("body", self.body is not None),
        ):
            if present:
                names.append(name)
        return names


#: The operations an application serves, in the order their tables were added.
OPERATIONS = web.AppKey("operations", list[Operation])

#: The longest path parameter (an id, a hospital code, a file name) any route takes: the columns
#: that store them, the audit log's included, hold 64 characters.
PATH_PARAMETER_MAX = 64


def _method(
    method: str, route: Callable[Concatenate[ApiRoutes, str, str, P], R]
) -> Callable[Concatenate[ApiRoutes, str, P], R]:
    """``route`` with its method given: ``routes.get(path, …)`` for ``routes.route("GET", …)``."""

    def declare(routes: ApiRoutes, path: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return route(routes, method, path, *args, **kwargs)

    return declare


class ApiRoutes:
    """The declared routes of one resource, added to an application together.

    :param tag: The resource's name, grouping its operations in the OpenAPI document.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._routes: list[tuple[Operation, web.RouteDef]] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str | None = None,
        response: Any = None,
        status: int = 200,
        description: str = "OK",
        body: type[BaseModel] | None = None,
        body_required: bool = True,
        query: type[BaseModel] | None = None,
        problems: tuple[int, ...] = (),
        other_statuses: Mapping[int, str] | None = None,
        bearer: bool = True,
        join_link: bool = False,
        rate_limit: str | None = None,
    ) -> Callable[[H], H]:
        """Declare a route; the decorated handler is returned unchanged (see the module's doc)."""

        def declare(handler: H) -> H:
            operation = Operation(
                method=method,
                path=path,
                summary=summary or _summary(handler),
                tag=self.tag,
                operation_id=handler.__name__,
                response=response,
                status=status,
                description=description,
                body=body,
                body_required=body_required,
                query=query,
                problems=problems,
                other_statuses=other_statuses or {},
                bearer=bearer,
                join_link=join_link,
                rate_limit=rate_limit,
            )
            _check_parameters(operation, handler)
            self._routes.append((operation, web.route(method, path, _bind(operation, handler))))
            return handler

        return declare

    get = _method("GET", route)
    post = _method("POST", route)
    put = _method("PUT", route)
    patch = _method("PATCH", route)
    delete = _method("DELETE", route)

    @property
    def operations(self) -> list[Operation]:
        """The declarations, in the order they were made."""
        return [operation for operation, _ in self._routes]

    def add_to(self, app: web.Application) -> None:
        """Serve these routes from ``app`` and describe them in its OpenAPI document."""
        app.add_routes([route for _, route in self._routes])
        if OPERATIONS not in app:
            app[OPERATIONS] = []
        app[OPERATIONS].extend(self.operations)


def _summary(handler: Callable[..., object]) -> str:
    lines = (handler.__doc__ or "").strip().splitlines()
    if not lines:
        raise TypeError(f"{handler.__qualname__} needs a docstring: its first line is the summary")
    return lines[0].rstrip(".")


def _check_parameters(operation: Operation, handler: Callable[..., object]) -> None:
    if operation.join_link and "consult_id" not in operation.path_parameters:
        raise TypeError(f"{handler.__qualname__} accepts join links but names no {{consult_id}}")
    parameters = list(inspect.signature(handler).parameters)[1:]
    if sorted(parameters) != sorted(operation.inputs):
        raise TypeError(
            f"{handler.__qualname__} takes (request, {', '.join(parameters)}) but its declaration "
            f"gives (request, {', '.join(operation.inputs)})"
        )


def _bind(
    operation: Operation, handler: Callable[..., Awaitable[object]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of a declared route: inputs checked in, the answer checked out."""
    answer = TypeAdapter(operation.response) if operation.response is not None else None

    async def handle(request: web.Request) -> web.StreamResponse:
        # Before anything reads or audits them: no stored id is longer.
        too_long = [n for n, value in request.match_info.items() if len(value) > PATH_PARAMETER_MAX]
        if too_long:
            raise InvalidPayload(
                "A path parameter is too long",
                details=[
                    {"field": name, "message": f"at most {PATH_PARAMETER_MAX} characters"}
                    for name in too_long
                ],
            )
        inputs: dict[str, Any] = dict(request.match_info)
        if operation.bearer:
            identity = caller(request)
            consult_id = request.match_info["consult_id"] if operation.join_link else None
            await check_join_link(
                request, identity, operation.operation_id, operation.tag, consult_id
            )
            inputs["identity"] = identity
        if operation.query is not None:
            inputs["query"] = operation.query.model_validate(dict(request.query))
        if operation.body is not None:
            inputs["body"] = await _body(request, operation.body, operation.body_required)
        result = await handler(request, **inputs)
        if isinstance(result, web.StreamResponse):
            return result
        if answer is None:
            raise TypeError(f"{operation.operation_id} declares no response but answered one")
        try:
            value = answer.validate_python(result, strict=True)
        except ValidationError as exc:
            # The handler broke its declaration: a server fault, never the caller's invalid input.
            raise TypeError(f"{operation.operation_id} answered other than it declares") from exc
        return web.json_response(text=answer.dump_json(value).decode(), status=operation.status)

    return handle


async def _body(request: web.Request, model: type[BaseModel], required: bool) -> BaseModel:
    if not required and not request.can_read_body:
        return model.model_validate({})
    return model.model_validate(await json_body(request))
