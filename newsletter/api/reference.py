"""`/api/docs`: the API reference as one server-rendered page, made from the OpenAPI document.

The app's Content-Security-Policy forbids every script, and Swagger UI or Redoc are scripts
(loaded from a CDN at that). Rather than a CSP exception for one page, the page is plain HTML
generated from the same document `/api/v1/openapi.json` serves, so it cannot drift either,
and works without JavaScript like every other page here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .problems import PROBLEMS

METHODS = ("get", "post", "put", "patch", "delete")


def _schema_text(schema: dict[str, Any]) -> str:
    return escape(json.dumps(schema, ensure_ascii=False, indent=2))


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def _type_of(schema: dict[str, Any]) -> str:
    if name := _ref_name(schema):
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    if "format" in schema:
        kind += f" ({schema['format']})"
    if "pattern" in schema:
        kind += f" <code>{escape(schema['pattern'])}</code>"
    return escape(kind) if "<code>" not in kind else kind


def render_reference(document: dict[str, Any]) -> str:
    info = document["info"]
    server = document.get("servers", [{"url": ""}])[0]["url"]
    out: list[str] = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(info['title'])} {escape(info['version'])}</title>",
        '<link rel="stylesheet" href="/static/web.css"></head><body><main>',
        f"<h1>{escape(info['title'])} <small>{escape(info['version'])}</small></h1>",
        f"<p>Base URL: <code>{escape(server)}</code> · machine-readable: "
        f'<a href="{escape(server)}/openapi.json">openapi.json</a> (OpenAPI '
        f"{escape(document['openapi'])})</p>",
        f"<pre>{escape(info.get('description', ''))}</pre>",
        "<h2>Contents</h2><ul>",
    ]
    operations: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                operations.setdefault(tag, []).append((method, path, operation))
    for tag in operations:
        out.append(f'<li><a href="#tag-{escape(tag)}">{escape(tag)}</a></li>')
    out.append('<li><a href="#problems">Problem types</a></li>')
    out.append('<li><a href="#schemas">Schemas</a></li></ul>')
    for tag, items in operations.items():
        out.append(f'<h2 id="tag-{escape(tag)}">{escape(tag)}</h2>')
        for method, path, operation in items:
            anchor = escape(operation.get("operationId", f"{method}-{path}"))
            out.append(
                f'<h3 id="{anchor}"><code>{method.upper()} {escape(path)}</code></h3>'
                f"<p>{escape(operation.get('summary', ''))}</p>"
            )
            if operation.get("description"):
                out.append(f"<p>{escape(operation['description'])}</p>")
            parameters = operation.get("parameters", [])
            if parameters:
                out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>")
                for p in parameters:
                    required = "required" if p.get("required") else ""
                    out.append(
                        f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                        f"<td>{_type_of(p.get('schema', {}))}</td><td>{required} "
                        f"{escape(p.get('description', ''))}</td></tr>"
                    )
                out.append("</table>")
            body = operation.get("requestBody")
            if body:
                for media, content in body.get("content", {}).items():
                    out.append(
                        f"<p>Body <code>{escape(media)}</code>: "
                        f"{_type_of(content.get('schema', {}))}</p>"
                    )
            out.append("<ul>")
            for code, response in operation.get("responses", {}).items():
                if code.startswith(("4", "5")):
                    continue
                kinds = ", ".join(
                    f"<code>{escape(m)}</code> {_type_of(c.get('schema', {}))}"
                    for m, c in response.get("content", {}).items()
                )
                out.append(
                    f"<li>{escape(code)} {escape(response.get('description', ''))} {kinds}</li>"
                )
            out.append("<li>errors: problem details (see below)</li></ul>")
    out.append('<h2 id="problems">Problem types</h2><table>')
    out.append("<tr><th>type</th><th>status</th><th>title</th></tr>")
    for status, (slug, title) in PROBLEMS.items():
        out.append(
            f'<tr id="problem-{slug}"><td><code>/api/docs#problem-{slug}</code></td>'
            f"<td>{status}</td><td>{escape(title)}</td></tr>"
        )
    out.append("</table>")
    out.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        out.append(
            f'<h3 id="schema-{escape(name)}">{escape(name)}</h3><pre>{_schema_text(schema)}</pre>'
        )
    out.append("</main></body></html>")
    return "\n".join(out)


def reference_endpoint(document: Callable[[], dict[str, Any]]) -> Any:
    page: list[str] = []

    async def reference(request: Request) -> Response:
        if not page:
            page.append(render_reference(document()))
        return HTMLResponse(page[0], headers={"Cache-Control": "public, max-age=300"})

    return reference
