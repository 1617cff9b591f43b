"""A route lookup that does not walk every included router (issue 14 item 4, docs/performance.md).

FastAPI 0.165 keeps each `include_router` as one `_IncludedRouter` in `app.router.routes` and, for every
request, asks them in order whether they match — each one walking all of its own routes — and then
matches again inside the router it chose. With the application's ~25 routers that walk was a tenth of
the server's CPU time for a request to a router near the end of the list.

`RouteIndex` is put first in `app.router.routes`. For a request's path it looks up which of the
top-level routes *can* match it — those with a route whose path is exactly the request's path or whose
literal start (the text before its first `{parameter}`) the request's path starts with — and asks only
those, in their original order. The first that matches fully is handled exactly as FastAPI would have
handled it; when none of them does (a 404, a 405, a trailing-slash redirect), or the first candidate is
not an included router, it answers "no match" and FastAPI's own walk carries on as before. Every route
stays where it was (`app.routes`, the OpenAPI document, `url_path_for`, the role matrix tests), with its
dependencies; only the order of asking changes, and never which route answers:

* a route that is not a candidate cannot match the path (its regex starts with its literal start and,
  without parameters, is the whole path), so skipping it changes nothing;
* the candidates are asked in the order FastAPI asks them, and only a full match is taken here.

The index is built from the routes when first needed and again whenever FastAPI's route version changes
(a route added to the app or to an included router after the app was built).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

_SELECTED = "carepath.route_index.selected"


def _leaf_paths(route: Any, prefix: str | None = None) -> list[str] | None:
    """The full paths of the routes under a top-level route; None when it is not matched by path alone.

    Read from the included router's own routes and prefixes (as FastAPI's `path_for` joins them), not from
    its `effective_route_contexts()`: those build every route's dependencies and response models (about a
    quarter of a second for the app's routers), which FastAPI otherwise does only for a router a request
    reaches, when it first does."""
    if not hasattr(route, "effective_route_contexts"):  # not an included router (FastAPI 0.165)
        return None
    prefix = (prefix or "") + route.include_context.prefix
    paths: list[str] = []
    for child in route.original_router.routes:
        if hasattr(child, "effective_route_contexts"):
            inner = _leaf_paths(child, prefix)
            if inner is None:
                return None
            paths.extend(inner)
        elif type(child).__name__ in ("APIRoute", "Route") and isinstance(getattr(child, "path", None), str):
            paths.append(prefix + child.path)
        else:
            return None  # a mount, a host or a front-end group inside: ask it every time
    return paths


def _routers(router: Any) -> list[Any]:
    """`router` and every router included in it, at any depth."""
    out, todo = [], [router]
    while todo:
        r = todo.pop()
        if any(r is o for o in out):
            continue
        out.append(r)
        todo.extend(route.original_router for route in r.routes if hasattr(route, "original_router"))
    return out


class RouteIndex(BaseRoute):
    """See the module's docstring. Not a route of its own: it has no path and no methods."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self._version: Any = object()
        self._exact: dict[str, tuple[int, ...]] = {}
        self._prefixed: tuple[tuple[str, int], ...] = ()
        self._always: tuple[int, ...] = ()
        self._routes: list[Any] = []
        self._routers: list[Any] = [router]

    def _routes_version(self) -> Any:
        """Changes whenever a route is added anywhere under the app: FastAPI counts the changes of each
        router (`_routes_version`); summed over the routers seen at the last build, plus how many
        top-level routes there are. Without those counters: no index (FastAPI's walk)."""
        try:
            return (len(self.router.routes), sum(r._routes_version for r in self._routers))
        except AttributeError:
            return None

    def _build(self) -> None:
        self._routers = _routers(self.router)
        exact: dict[str, set[int]] = {}
        prefixed: set[tuple[str, int]] = set()
        always: list[int] = []
        routes = [r for r in self.router.routes if r is not self]
        for i, route in enumerate(routes):
            paths = _leaf_paths(route)
            if paths is None:
                path = getattr(route, "path", None)
                paths = [path] if isinstance(path, str) and type(route).__name__ in ("APIRoute", "Route") else None
            if paths is None:
                always.append(i)
                continue
            for path in paths:
                literal = path.split("{", 1)[0]
                if literal == path:
                    exact.setdefault(path, set()).add(i)
                else:
                    prefixed.add((literal, i))
        self._routes = routes
        self._exact = {p: tuple(sorted(v)) for p, v in exact.items()}
        self._prefixed = tuple(sorted(prefixed, key=lambda x: x[1]))
        self._always = tuple(always)

    def candidates(self, path: str) -> list[Any]:
        """The top-level routes that can match `path`, in their order."""
        version = self._routes_version()
        if version is None:
            return [r for r in self.router.routes if r is not self]
        if version != self._version:
            self._build()
            self._version = self._routes_version()
        found = set(self._exact.get(path, ()))
        found.update(i for literal, i in self._prefixed if path.startswith(literal))
        found.update(self._always)
        return [self._routes[i] for i in sorted(found)]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") != "http" or scope.get("root_path"):
            return Match.NONE, {}  # FastAPI's own walk (a root path changes what is matched)
        for route in self.candidates(scope["path"]):
            match, child_scope = route.matches(scope)
            if match == Match.FULL:
                if not hasattr(route, "effective_route_contexts"):
                    return Match.NONE, {}  # a plain route: FastAPI's walk reaches it first, as before
                return Match.FULL, {**child_scope, _SELECTED: route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.pop(_SELECTED)
        await route.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # names no route: the routes themselves answer

    def __repr__(self) -> str:
        return "RouteIndex()"


def install(app: Any) -> None:
    """Put the index first in the app's routes (once)."""
    if not any(isinstance(r, RouteIndex) for r in app.router.routes):
        index = RouteIndex(app.router)
        app.router.routes.insert(0, index)
        index.candidates("/")  # built now rather than on the first request
