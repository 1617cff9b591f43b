"""A route lookup that does not walk every included router (issue 14 item 4, docs/performance.md).

FastAPI 0.165 keeps each `include_router` as one `_IncludedRouter` in `app.router.routes` and, for every
request, asks them in order whether they match — each one walking all of its own routes — and then
matches again inside the router it chose. With the application's ~25 routers that walk was a tenth of
the server's CPU time for a request to a router near the end of the list.

`RouteIndex` is put first in `app.router.routes`. It keeps, for every top-level route, the full path of each
route under it (Starlette's regex of it) and its methods. For a request it takes the first top-level route
that has a route whose path matches the request's path and that takes its method — a full match, so
FastAPI's walk would stop there too — without asking that router to walk its routes once more (it still
does, once, when it handles the request). Top-level routes it cannot index (a mount, a host) are asked as
FastAPI asks them, in their place. When nothing matches in full (a 404, a 405, a trailing-slash redirect),
or the first full match is a plain top-level route, it answers "no match" and FastAPI's own walk carries on
as before. Every route stays where it was (`app.routes`, the OpenAPI document, `url_path_for`, the role
matrix tests), with its dependencies; only the order of asking changes, and never which route answers:

* a top-level route none of whose routes matches the path and the method cannot match in full, so
  skipping it changes nothing; one that has such a route matches in full (FastAPI takes the first full
  match, whatever partial ones come before it);
* the candidates are taken in the order FastAPI asks them.

The routes with a parameter in their path are grouped by the text before it, cut after its last "/" and after the
third at most ("/api/cases/"): a request looks only at the groups named by its own path cut after each of its
first three "/" (the request to start a process on a case, `POST /api/cases/{id}/processes/{p}`: 16 -> 8.5 us,
a task's completion 15 -> 5 us).

The index is built from the routes when first needed and again whenever FastAPI's route version changes
(a route added to the app or to an included router after the app was built).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path
from starlette.types import Receive, Scope, Send

_SELECTED = "carepath.route_index.selected"


def _leaf_paths(route: Any) -> list[str] | None:
    """The full paths of the routes under a top-level route (`_leaves` without their methods)."""
    leaves = _leaves(route)
    return None if leaves is None else [path for path, _methods in leaves]


def _leaves(route: Any, prefix: str | None = None) -> list[tuple[str, frozenset[str] | None]] | None:
    """The full paths of the routes under a top-level route, each with its methods (None: any); None when it is
    not matched by path and method alone.

    Read from the included router's own routes and prefixes (as FastAPI's `path_for` joins them), not from
    its `effective_route_contexts()`: those build every route's dependencies and response models (about a
    quarter of a second for the app's routers), which FastAPI otherwise does only for a router a request
    reaches, when it first does."""
    if not hasattr(route, "effective_route_contexts"):  # not an included router (FastAPI 0.165)
        return None
    prefix = (prefix or "") + route.include_context.prefix
    paths: list[tuple[str, frozenset[str] | None]] = []
    for child in route.original_router.routes:
        if hasattr(child, "effective_route_contexts"):
            inner = _leaves(child, prefix)
            if inner is None:
                return None
            paths.extend(inner)
        elif type(child).__name__ in ("APIRoute", "Route") and isinstance(getattr(child, "path", None), str):
            paths.append((prefix + child.path, _methods(child)))
        else:
            return None  # a mount, a host or a front-end group inside: ask it every time
    return paths


def _methods(route: Any) -> frozenset[str] | None:
    methods = getattr(route, "methods", None)
    return frozenset(methods) if methods else None


_KEY_SLASHES = 3  # "/api/cases/": a route's text before its first parameter is grouped by up to three slashes


def _group_key(literal: str) -> str:
    """A path's text before its first parameter cut after its last "/", and after its third "/" at most: a request
    path that starts with `literal` has this key among its `_path_keys`."""
    end = 0
    for _ in range(_KEY_SLASHES):
        nxt = literal.find("/", end)
        if nxt < 0:
            break
        end = nxt + 1
    return literal[:end]


def _path_keys(path: str) -> list[str]:
    """Every text a `_group_key` of a prefix of `path` can be: "", and `path` cut after each of its first three "/"."""
    keys, end = [""], 0
    for _ in range(_KEY_SLASHES):
        nxt = path.find("/", end)
        if nxt < 0:
            break
        end = nxt + 1
        keys.append(path[:end])
    return keys


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
        self._exact: dict[str, tuple[tuple[int, frozenset[str] | None], ...]] = {}
        # the routes with a parameter in their path, grouped by `_group_key` of the text before the parameter
        self._prefixed: dict[str, tuple[tuple[str, int, Any, frozenset[str] | None], ...]] = {}
        self._always: frozenset[int] = frozenset()
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
        exact: dict[str, set[tuple[int, frozenset[str] | None]]] = {}
        prefixed: set[tuple[str, int, Any, frozenset[str] | None]] = set()
        always: list[int] = []
        routes = [r for r in self.router.routes if r is not self]
        for i, route in enumerate(routes):
            paths = _leaves(route)
            if paths is None:
                path = getattr(route, "path", None)
                paths = [(path, _methods(route))] if isinstance(path, str) \
                    and type(route).__name__ in ("APIRoute", "Route") else None
            if paths is None:
                always.append(i)
                continue
            for path, methods in paths:
                literal = path.split("{", 1)[0]
                if literal == path:
                    exact.setdefault(path, set()).add((i, methods))
                else:  # the path's regex as Starlette compiles it for the route
                    prefixed.add((literal, i, compile_path(path)[0], methods))
        self._routes = routes
        self._exact = {p: tuple(sorted(v, key=lambda x: x[0])) for p, v in exact.items()}
        groups: dict[str, list[tuple[str, int, Any, frozenset[str] | None]]] = {}
        for entry in sorted(prefixed, key=lambda x: (x[1], x[0])):
            groups.setdefault(_group_key(entry[0]), []).append(entry)
        self._prefixed = {k: tuple(v) for k, v in groups.items()}
        self._always = frozenset(always)

    def candidates(self, path: str, method: str | None = None) -> list[Any]:
        """The top-level routes that can match `path`, in their order: those asked every time (`_always`) and those
        with a route whose path matches `path` — and, given `method`, that takes it (a full match)."""
        if self._routes_version() is None:
            return [r for r in self.router.routes if r is not self]
        return [self._routes[i] for i in self._candidates(path, method)]

    def _candidates(self, path: str, method: str | None) -> list[int]:
        """Indexes into `_routes`; [] without FastAPI's route counters (its own walk then answers)."""
        version = self._routes_version()
        if version is None:
            return []
        if version != self._version:
            self._build()
            self._version = self._routes_version()
        found = set(self._always)
        found.update(i for i, methods in self._exact.get(path, ())
                     if method is None or methods is None or method in methods)
        for key in _path_keys(path):  # only the groups whose text can start the path
            for literal, i, regex, methods in self._prefixed.get(key, ()):
                if i not in found and path.startswith(literal) and regex.match(path) \
                        and (method is None or methods is None or method in methods):
                    found.add(i)
        return sorted(found)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") != "http" or scope.get("root_path"):
            return Match.NONE, {}  # FastAPI's own walk (a root path changes what is matched)
        for i in self._candidates(scope["path"], scope["method"]):
            route = self._routes[i]
            if i in self._always:  # not indexed: asked as FastAPI asks it
                match, child_scope = route.matches(scope)
                if match != Match.FULL:
                    continue
            else:  # a route under it matches the path and takes the method: FastAPI's walk finds it in full
                child_scope = {}
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
