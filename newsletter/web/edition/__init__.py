"""The web edition: every sent issue as a publication people read, share and subscribe from.

One module, one job:

- `model`: an issue's frozen article snapshots as the pages see them (pure);
- `queries`: what the public may see, read from the database (sent issues only, excluded
  articles left out);
- `reader`: the reader's language (a switch remembered in a cookie, else Accept-Language) and
  the content language of a page;
- `cache`: pages rendered once and kept in memory, answered with ETag / Last-Modified (304);
- `pages`: the home page, the paged index, issue pages and article pages;
- `feeds`: Atom feeds per list and language, `sitemap.xml`, `robots.txt`.

`routes()` is the route table the application mounts.
"""

from __future__ import annotations

from starlette.routing import Route


def routes() -> list[Route]:
    from newsletter.web.edition import feeds, pages

    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/issues/", pages.index, methods=["GET"]),
        Route("/issues/{date}", pages.issue, methods=["GET"]),
        Route("/articles/{article_id}", pages.article, methods=["GET"]),
        Route("/language/{code}", pages.switch_language, methods=["GET"]),
        Route("/feeds/{slug}/{lang}.atom", feeds.atom, methods=["GET"]),
        Route("/sitemap.xml", feeds.sitemap, methods=["GET"]),
        Route("/robots.txt", feeds.robots, methods=["GET"]),
    ]
