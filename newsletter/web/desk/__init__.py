"""The editors' desk (`/desk/`): accounts sign in, read the day's issue and its explanation,
adjust it, preview it, approve it, and watch it go out. Server-rendered pages, plain forms,
no script; `routes()` is mounted by `newsletter.web.app`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.paths import templates_dir


async def stylesheet(request: Request) -> Response:
    css = (templates_dir() / "web" / "desk" / "desk.css").read_text(encoding="utf-8")
    return PlainTextResponse(
        css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


async def to_desk(request: Request) -> Response:
    return RedirectResponse("/desk/", status_code=308)


def routes() -> list[BaseRoute]:
    from newsletter.web.desk import actions, pages, signin

    issue = "/desk/lists/{slug}/{date}"
    sent = "/desk/issues/{issue_id}"
    return [
        Route("/desk", to_desk, methods=["GET"]),
        Route("/desk/", pages.home, methods=["GET"]),
        Route("/desk/static/desk.css", stylesheet, methods=["GET"]),
        Route("/desk/sign-in", signin.sign_in_page, methods=["GET"]),
        Route("/desk/sign-in", signin.sign_in_post, methods=["POST"]),
        Route("/desk/sign-in/link", signin.link_request, methods=["POST"]),
        Route("/desk/sign-in/link/{token}", signin.link_page, methods=["GET"]),
        Route("/desk/sign-in/link/{token}", signin.link_post, methods=["POST"]),
        Route("/desk/sign-out", signin.sign_out, methods=["POST"]),
        Route(issue, pages.issue_page, methods=["GET"]),
        Route(issue + "/note", actions.note_post, methods=["POST"]),
        Route(issue + "/build", actions.build_post, methods=["POST"]),
        Route(issue + "/approve", actions.approve_post, methods=["POST"]),
        Route(issue + "/test-send", actions.test_send_post, methods=["POST"]),
        Route(issue + "/articles/{action}", actions.selection_post, methods=["POST"]),
        Route(sent + "/frame/{variant}", pages.frame, methods=["GET"]),
        Route(sent + "/sending", pages.sending_page, methods=["GET"]),
        Route(sent + "/stats", pages.stats_page, methods=["GET"]),
        Route(sent + "/stats.csv", pages.stats_csv, methods=["GET"]),
        Route(sent + "/{action}", actions.sending_post, methods=["POST"]),
        Route("/desk/audit", pages.audit_page, methods=["GET"]),
    ]
