"""What `newsletter serve` says when it starts: the URLs it serves, and a base URL that differs.

Pure functions over the application's route table and the address uvicorn listens on, so the
command line prints what the app really has (the editors' desk only when it is mounted).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.applications import Starlette

_WILDCARD = ("0.0.0.0", "::", "")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")

# (label, path): printed in this order when the application has the path.
_ANNOUNCED = (
    ("home", "/"),
    ("archive", "/issues/"),
    ("desk", "/desk/"),
    ("webhook", "/webhooks/sendgrid"),
)


def listen_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _has(paths: set[str], path: str) -> bool:
    bare = path.rstrip("/")
    return path in paths or (bare != "" and bare in paths)  # a Mount("/desk") serves /desk/


def served_urls(app: Starlette, host: str, port: int) -> list[tuple[str, str]]:
    """(label, URL) for the home page, archive, desk (if mounted) and webhook."""
    paths = {getattr(route, "path", "") for route in app.routes}
    base = listen_url(host, port)
    return [(label, base + path) for label, path in _ANNOUNCED if _has(paths, path)]


def base_url_warning(base_url: str, host: str, port: int) -> str | None:
    """A sentence when NEWSLETTER_BASE_URL is not this server's address, else None.

    Behind a TLS proxy that is expected (the base URL is the proxy's); on a laptop it usually
    means the links in emails and pages lead nowhere.
    """
    parts = urlsplit(base_url)
    base_host = (parts.hostname or "").lower()
    try:
        base_port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        base_port = -1
    same_host = (
        host in _WILDCARD
        or base_host == host.lower()
        or (base_host in _LOOPBACK and host in _LOOPBACK)
    )
    if parts.scheme == "http" and same_host and base_port == port:
        return None
    return (
        f"NEWSLETTER_BASE_URL is {base_url} but this server listens on {listen_url(host, port)}: "
        "links in emails and pages point to the base URL (expected behind a reverse proxy "
        "that forwards it here; otherwise set NEWSLETTER_BASE_URL or --host/--port)"
    )
