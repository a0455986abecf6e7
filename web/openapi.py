"""The OpenAPI 3.1 description of the HTTP API, assembled from the routes themselves.

Every handler carries its description: ``@describe(...)`` next to ``@requires(...)`` names its
summary, the pydantic models of its request and response bodies, its query parameters and the
statuses it answers. ``openapi_document(app)`` walks ``app.router``: the path, the method and
the path parameters come from the route, the role (``security``, ``x-required-role``) from
``requires``, the schemas from the models (``components.schemas``). A route whose handler has
no ``@describe`` is listed by ``undescribed(app)`` (a unit test fails on any) and still appears
in the document, with its role, as "not described".

Describing a new route is one change: put ``@describe(...)`` on its handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

H = TypeVar("H", bound=Callable[..., Any])

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
REF_TEMPLATE = "#/components/schemas/{model}"
# methods aiohttp adds by itself (HEAD beside every GET) or that carry no operation of ours
_SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS", "*"})


class ErrorBody(BaseModel):
    """Every refusal: what is wrong, in words (``field``: the body's field at fault, when one is)."""

    error: str
    field: str | None = Field(default=None, description="the request body's field at fault")


class ReloadAnswer(BaseModel):
    """What a reload (dialplans, knowledge base, units) did: 200 when ``ok``, else 422 with ``problems``."""

    ok: bool
    version: str
    changed: bool
    problems: list[str]


@dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


def integer(minimum: int | None = None, maximum: int | None = None, default: int | None = None) -> dict[str, Any]:
    """The schema of a whole-number query parameter."""
    schema: dict[str, Any] = {"type": "integer"}
    for key, value in (("minimum", minimum), ("maximum", maximum), ("default", default)):
        if value is not None:
            schema[key] = value
    return schema


def one_of(*values: str, default: str | None = None) -> dict[str, Any]:
    """The schema of a query parameter that takes one of ``values``."""
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if default is not None:
        schema["default"] = default
    return schema


# a further status: when it comes (the body an ErrorBody), or (when, the model of its body)
ErrorSpec = str | tuple[str, type[BaseModel]]


@dataclass(frozen=True)
class Operation:
    """What ``@describe`` says about one handler."""

    summary: str
    response: type[BaseModel] | None = None  # the success body (JSON)
    status: int = 200  # the success status
    content: str = JSON  # the success body's media type
    body: type[BaseModel] | None = None  # the JSON request body
    query: Sequence[Param] = ()
    errors: Mapping[int, ErrorSpec] = field(default_factory=dict)  # further statuses: when they come
    description: str = ""
    role: str | None = None  # for a handler that checks its token itself (a websocket)
    websocket: bool = False


def describe(
    summary: str,
    *,
    response: type[BaseModel] | None = None,
    status: int = 200,
    content: str = JSON,
    body: type[BaseModel] | None = None,
    query: Sequence[Param] = (),
    errors: Mapping[int, ErrorSpec] | None = None,
    description: str = "",
    role: str | None = None,
    websocket: bool = False,
) -> Callable[[H], H]:
    """Describe a handler for the OpenAPI document (see the module's docstring)."""
    operation = Operation(
        summary, response, status, content, body, tuple(query), dict(errors or {}), description, role, websocket
    )

    def mark(handler: H) -> H:
        handler.openapi = operation  # type: ignore[attr-defined]
        return handler

    return mark


def _routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every route of ``app``, in registration order."""
    found = []
    for route in app.router.routes():
        if route.method in _SKIPPED_METHODS or route.resource is None:
            continue
        found.append((route.method, route.resource.canonical, route.handler))
    return found


def _handler_name(handler: Any) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"


def undescribed(app: web.Application) -> list[str]:
    """The routes of ``app`` whose handler has no ``@describe``: ``"GET /path (module.handler)"``."""
    return [
        f"{method} {path} ({_handler_name(handler)})"
        for method, path, handler in _routes(app)
        if not isinstance(getattr(handler, "openapi", None), Operation)
    ]


def _tag(handler: Any) -> str:
    """The operation's group: its feature package, or the app shell module's part (``api_calls`` → calls)."""
    module: str = getattr(handler, "__module__", "")
    top, _, rest = module.partition(".")
    return rest.removeprefix("api_") if top == "hotline" and rest else top


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1].partition(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": REF_TEMPLATE.format(model="ErrorBody")}}}}


class _Schemas:
    """The models the operations name, turned into ``components.schemas`` at the end."""

    def __init__(self) -> None:
        self._wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorBody, "serialization"): None}

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        self._wanted[(model, mode)] = None
        return {"$ref": REF_TEMPLATE.format(model=model.__name__)}

    def components(self) -> dict[str, Any]:
        names = {model.__name__: model for model, _ in self._wanted}
        clashes = [name for name in names if sum(model.__name__ == name for model, _ in self._wanted) > 1]
        if clashes:  # two models of one name (or one model read and written differently) would share a $ref
            raise ValueError(f"OpenAPI schema names used twice (rename one): {', '.join(sorted(clashes))}")
        _, top = models_json_schema(list(self._wanted), ref_template=REF_TEMPLATE)
        defs: dict[str, Any] = top.get("$defs", {})
        return defs


def _success(described: Operation | None, schemas: _Schemas) -> dict[str, Any]:
    """The success response of an operation."""
    if described is None:
        return {"default": {"description": "not described yet"}}
    if described.websocket:
        return {"101": {"description": "switched to a websocket: " + described.summary}}
    if described.response is not None:
        schema = schemas.ref(described.response, "serialization")
        return {str(described.status): {"description": described.summary, "content": {JSON: {"schema": schema}}}}
    return {str(described.status): {"description": described.summary, "content": {described.content: {}}}}


def _further(errors: Mapping[int, ErrorSpec], schemas: _Schemas) -> dict[str, Any]:
    """The further statuses ``@describe`` names."""
    responses: dict[str, Any] = {}
    for status, spec in errors.items():
        if isinstance(spec, tuple):
            when, model = spec
            schema = schemas.ref(model, "serialization")
            responses[str(status)] = {"description": when, "content": {JSON: {"schema": schema}}}
        else:
            responses[str(status)] = _error(spec)
    return responses


def _operation(path: str, handler: Any, schemas: _Schemas) -> dict[str, Any]:
    described: Operation | None = getattr(handler, "openapi", None)
    described = described if isinstance(described, Operation) else None
    role: str | None = getattr(handler, "required_role", None) or (described.role if described else None)
    op: dict[str, Any] = {
        "operationId": _handler_name(handler).replace(".", "_"),
        "tags": [_tag(handler)],
        "summary": described.summary if described else "(not described yet)",
    }
    if described and described.description:
        op["description"] = described.description
    parameters = _path_parameters(path)
    for param in described.query if described else ():
        parameters.append(
            {"name": param.name, "in": "query", "required": param.required, "description": param.description}
            | {"schema": dict(param.schema)}
        )
    if parameters:
        op["parameters"] = parameters
    responses = _success(described, schemas)
    if described and described.body is not None:
        op["requestBody"] = {
            "required": False,
            "content": {JSON: {"schema": schemas.ref(described.body, "validation")}},
        }
        responses["400"] = _error("the body is not a JSON object, or a field is wrong")
        responses["413"] = _error("the body is larger than 64 KiB")
    op["security"] = [{"bearer": []}] if role is not None else []  # [] : open
    if role is not None:
        op["x-required-role"] = role
        responses["401"] = _error("no valid bearer token")
        responses["403"] = _error(f"the token's role is below {role}, or it is another platform's")
    responses |= _further(described.errors if described else {}, schemas)
    op["responses"] = dict(sorted(responses.items()))
    return op


def openapi_document(app: web.Application, *, title: str, version: str, description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in _routes(app):
        paths.setdefault(path, {})[method.lower()] = _operation(path, handler, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas.components(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API token (hotline12345 token new); its role: seat < supervisor < admin",
                }
            },
        },
    }


@dataclass
class _Cached:
    title: str
    version: str
    description: str
    document: dict[str, Any] | None = None


OPENAPI_KEY: web.AppKey[_Cached] = web.AppKey("openapi", _Cached)


@describe("this API's OpenAPI 3.1 description (open: it holds no data)", content=JSON)
async def openapi_json(request: web.Request) -> web.Response:
    cached = request.app[OPENAPI_KEY]
    if cached.document is None:  # the router is frozen once the app serves: built once
        cached.document = openapi_document(
            request.app, title=cached.title, version=cached.version, description=cached.description
        )
    return web.json_response(cached.document)


def add_openapi_route(app: web.Application, *, title: str, version: str, description: str = "") -> None:
    """Serve the document of ``app`` at ``GET /api/v1/openapi.json`` (open)."""
    app[OPENAPI_KEY] = _Cached(title, version, description)
    app.router.add_get("/api/v1/openapi.json", openapi_json)
