"""Compiled dependency plans: a route's FastAPI declarations, resolved without per-request introspection.

FastAPI 0.163 re-examines every parameter's annotation and every dependency's kind on each request:
about a fifth of the CPU of a list page, measured in process. A route whose dependencies are all
async functions taking only the Request, path and query parameters of single values, and whose
endpoint answers with a Response, is compiled once into a plan: per dependency, one pydantic model
validates its parameters together, then it is awaited with them. Errors are FastAPI's own
(RequestValidationError with ``("path" | "query", name)`` locations), and a dependency whose
parameters failed is not called, as in FastAPI. Any other route keeps FastAPI's handler; the
OpenAPI document is FastAPI's in every case.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError, create_model
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]
_SEQUENCES = (list, tuple, set, frozenset)


class _Step:
    """One dependency (or the endpoint): its validated parameters, its sub-steps, and how to call it."""

    __slots__ = ("call", "kinds", "model", "name", "request_name", "steps", "use_cache")

    def __init__(self, dependant: Dependant) -> None:
        self.call = dependant.call
        self.name = dependant.name
        self.use_cache = dependant.use_cache
        self.request_name = dependant.request_param_name
        self.steps = [_Step(sub) for sub in dependant.dependencies]
        fields = [("path", f) for f in dependant.path_params] + [("query", f) for f in dependant.query_params]
        self.kinds = {f.alias: kind for kind, f in fields}
        self.model: type[BaseModel] | None = None
        if fields:
            definitions = {f.name: (f.field_info.annotation, f.field_info) for _, f in fields}
            self.model = create_model(f"{getattr(self.call, '__name__', 'call')}_params", **definitions)

    async def solve(self, request: Request, cache: dict, errors: list) -> Any:
        """This step's value, after its sub-steps; None (and errors appended) when its parameters failed."""
        if self.use_cache and self.call in cache:
            return cache[self.call]
        values: dict[str, Any] = {}
        before = len(errors)
        for step in self.steps:
            value = await step.solve(request, cache, errors)
            if step.name is not None:  # a route's dependencies=[...] run for their effect only
                values[step.name] = value
        if self.model is not None:
            values.update(self._validate(request, errors))
        if len(errors) > before:  # as FastAPI: not called when its own parameters or sub-dependencies failed
            return None
        if self.request_name is not None:
            values[self.request_name] = request
        result = await self.call(**values)
        if self.use_cache:
            cache[self.call] = result
        return result

    def _validate(self, request: Request, errors: list) -> dict[str, Any]:
        path, query = request.path_params, request.query_params
        raw = {}
        for alias, kind in self.kinds.items():
            source = path if kind == "path" else query
            if alias in source:
                raw[alias] = source[alias]
        try:
            return dict(self.model.model_validate(raw))  # type: ignore[union-attr]
        except ValidationError as exc:
            # A field's error is located by its alias, the key kinds is built on.
            errors.extend({**e, "loc": (self.kinds[e["loc"][0]], *e["loc"])} for e in exc.errors(include_url=False))
            return {}


def _compilable(dependant: Dependant) -> bool:
    """Only what the plan reproduces exactly: async calls taking the Request, single-valued path and query parameters."""
    if dependant.header_params or dependant.cookie_params or dependant.body_params:
        return False
    if (dependant.websocket_param_name or dependant.http_connection_param_name or dependant.response_param_name
            or dependant.background_tasks_param_name or dependant.security_scopes_param_name):
        return False
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        return False
    for field in (*dependant.path_params, *dependant.query_params):
        annotation = field.field_info.annotation
        origins = {typing.get_origin(a) or a for a in (annotation, *typing.get_args(annotation))}
        if any(isinstance(o, type) and issubclass(o, (*_SEQUENCES, BaseModel)) for o in origins):
            return False
    return all(_compilable(sub) for sub in dependant.dependencies)


def _answers_with_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: leave the route to FastAPI
        return False
    return isinstance(returned, type) and issubclass(returned, Response)


def compiled_handler(dependant: Dependant) -> Handler | None:
    """A handler running the route's plan, or None when FastAPI's own handler must run it."""
    if not _compilable(dependant) or not _answers_with_response(dependant.call):
        return None
    plan = _Step(dependant)

    async def handler(request: Request) -> Response:
        errors: list[dict[str, Any]] = []
        response = await plan.solve(request, {}, errors)
        if errors:
            raise RequestValidationError(errors)
        return response

    return handler
