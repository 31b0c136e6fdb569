"""`create_api(runtime)`: the HTTP API for admins' scripts, a FastAPI app mounted at /api/v1.

FastAPI because it is Starlette underneath (the web app mounts it as it is) and its pydantic
models both validate every request and generate the OpenAPI 3.1 document, so the published
contract is the code that checks requests and cannot drift from it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from newsletter import __version__
from newsletter.runtime import Runtime

from . import (
    routes_admin,
    routes_articles,
    routes_engagement,
    routes_issues,
    routes_lists,
    routes_subject_tests,
    routes_subscribers,
)
from .gate import ApiGate, RateLimiter
from .problems import PROBLEMS, exception_handlers
from .schemas import Problem

SERVER_URL = "/api/v1"
DESCRIPTION = """\
Everything the `newsletter` command line does, for scripts: lists, subscribers, articles,
issues, sending and statistics, over the same functions.

* **Authentication**: `Authorization: Bearer <token>`, a token from `newsletter tokens create`.
  Roles: `viewer` reads; `editor` also edits issues; `admin` does everything.
* **Errors**: RFC 9457 problem details (`application/problem+json`).
* **Retries**: send an `Idempotency-Key` header with a POST; the same key and body get the
  first answer again (24 hours), nothing is done twice.
* **Rate limit**: per token, announced in `RateLimit` and `RateLimit-Policy`; 429 beyond it.
"""

# Statuses every operation may answer with, beside its own success.
COMMON_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 503)


def create_api(runtime: Runtime, *, limiter: RateLimiter | None = None) -> FastAPI:
    api = FastAPI(
        title="AI日報 Newsletter API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": SERVER_URL}],
        root_path_in_servers=False,
        exception_handlers=exception_handlers(),
    )
    for module in (
        routes_lists,
        routes_subscribers,
        routes_articles,
        routes_issues,
        routes_subject_tests,
        routes_admin,
    ):
        api.include_router(module.router)
    api.include_router(routes_engagement.router)
    api.state.runtime = runtime
    api.add_middleware(
        ApiGate,
        runtime=runtime,
        limiter=limiter or RateLimiter(runtime.settings.api_rate_per_minute),
    )
    api.openapi = lambda: openapi_document(api)  # type: ignore[method-assign]
    return api


def openapi_document(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with problem details as every error answer."""
    if api.openapi_schema is not None:
        return api.openapi_schema
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(
        title=api.title,
        version=api.version,
        openapi_version="3.1.0",
        description=api.description,
        routes=api.routes,
        servers=api.servers,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in schemas["Problem"].pop("$defs", {}).items():
        schemas[name] = schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    text = {"schema": {"type": "string"}}
    rate_headers = {
        "RateLimit": {"description": 'Remaining quota: `"token";r=REMAINING;t=SECONDS`', **text},
        "RateLimit-Policy": {"description": 'The quota: `"token";q=PER_MINUTE;w=60`', **text},
    }
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if code.startswith("2"):
                    response.setdefault("headers", {}).update(rate_headers)
            for status in COMMON_ERRORS:
                responses[str(status)] = {
                    "description": PROBLEMS[status][1],
                    "content": {"application/problem+json": {"schema": problem_ref}},
                }
            responses["429"]["headers"] = {
                **rate_headers,
                "Retry-After": {"description": "Seconds until a request is allowed", **text},
            }
            if any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", [])):
                ok = next(code for code in responses if code.startswith("2"))
                responses[ok].setdefault("headers", {})["Idempotent-Replayed"] = {
                    "description": "`true` when this is the stored answer to an earlier request",
                    "schema": {"type": "string"},
                }
            operation["security"] = [{"HTTPBearer": []}]
    api.openapi_schema = document
    return document
