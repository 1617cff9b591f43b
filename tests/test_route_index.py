"""The route index (api/route_index.py) answers every request with the route FastAPI's own walk would:
every route of the app, with every method, is looked up both ways; unknown paths, a wrong method and a
trailing slash get the same answers with and without it; no route is hidden from `app.routes` (what the
role matrix tests walk); a route added after the app was built is found."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from starlette.routing import Match

from api.app import create_app
from api.route_index import RouteIndex
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from tests.test_auditor_read_only import all_routes

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def app(tmp_path):
    eng = Engine(f"sqlite:///{tmp_path / 'carepath.db'}", registry=HandlerRegistry(), forms=FormLibrary())
    eng.init()
    yield create_app(eng, run_timers=False)
    eng.db.dispose()


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b""}


def _walk(app, scope) -> tuple[Match, object]:
    """FastAPI's own order: the first full match, else the first partial one (405), over every route."""
    partial = None
    for route in app.router.routes:
        if isinstance(route, RouteIndex):
            continue
        match, _ = route.matches(dict(scope))
        if match == Match.FULL:
            return match, route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def _sample(path: str) -> str:
    return re.sub(r"\{[^}:]+(:path)?\}", lambda m: "a/b" if m.group(1) else "1", path)


def test_the_index_picks_the_route_fastapi_would_for_every_route_and_method(app):
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    paths = sorted({_sample(r.path) for r in all_routes(app) if getattr(r, "path", None)})
    paths += ["/no/such/page", "/api/tasks/", "/api/cases/1/nothing", "/cases/1/", ""]
    assert len(paths) > 100
    checked = 0
    for path in paths:
        for method in METHODS:
            scope = _scope(method, path)
            want, route = _walk(app, scope)
            got, child = index.matches(dict(scope))
            if got == Match.FULL:  # only ever the route FastAPI's walk takes first
                assert want == Match.FULL and child["carepath.route_index.selected"] is route, (method, path)
                checked += 1
            else:  # FastAPI's walk carries on: a plain route, a 405, a redirect or a 404
                assert want != Match.FULL or not hasattr(route, "effective_route_contexts"), (method, path)
            if want != Match.NONE:  # whatever can match is a candidate
                assert route in index.candidates(path), (method, path)
    assert checked > 100


def test_answers_are_the_same_with_and_without_the_index(app):
    requests = [("GET", "/no/such/page"), ("POST", "/api/me"), ("GET", "/api/tasks/"), ("GET", "/api/health"),
                ("DELETE", "/api/health"), ("GET", "/api/me"), ("POST", "/api/cases/1/processes/x"),
                ("GET", "/cases/1"), ("GET", "/returns/cld"), ("GET", "/static/nothing.css")]
    with TestClient(app, follow_redirects=False) as c:
        with_index = [(c.request(m, p).status_code) for m, p in requests]
    index = app.router.routes.pop(0)
    assert isinstance(index, RouteIndex)
    with TestClient(app, follow_redirects=False) as c:
        without = [(c.request(m, p).status_code) for m, p in requests]
    assert with_index == without
    assert {401, 404, 405, 200, 307} <= set(with_index)


def test_no_route_is_hidden_and_a_route_added_later_is_found(app):
    listed = sorted((sorted(r.methods or ()), r.path) for r in all_routes(app) if getattr(r, "methods", None))
    index = app.router.routes[0]
    app.router.routes.remove(index)
    assert sorted((sorted(r.methods or ()), r.path) for r in all_routes(app)
                  if getattr(r, "methods", None)) == listed
    app.router.routes.insert(0, index)
    first, second = APIRouter(), APIRouter()
    app.include_router(first)
    app.include_router(second)

    @second.get("/late/{n}")
    def second_route(n: int) -> dict:
        return {"by": "second", "n": n}

    with TestClient(app) as c:
        assert c.get("/late/3").json() == {"by": "second", "n": 3}

    @first.get("/late/{n}")  # added to a router included earlier, once the index was built: it now answers
    def first_route(n: int) -> dict:
        return {"by": "first", "n": n}

    with TestClient(app) as c:
        assert c.get("/late/4").json() == {"by": "first", "n": 4}
    assert any(first_route is getattr(r, "endpoint", None) for r in all_routes(app))


def test_the_index_reads_each_router_s_paths_as_fastapi_joins_them(app):
    """The index reads paths from the routers and their prefixes (cheap), not from FastAPI's built routes (which
    build every route's dependencies): for every included router, at any depth, the two lists are the same."""
    from api.route_index import _leaf_paths

    included = [r for r in app.router.routes if hasattr(r, "effective_route_contexts")]
    assert len(included) > 20
    nested = APIRouter(prefix="/outer")
    inner = APIRouter(prefix="/inner")
    inner.add_api_route("/x/{n}", lambda n: n)
    nested.include_router(inner, prefix="/mid")
    nested.add_api_route("/y", lambda: 1)
    probe = create_app.__globals__["FastAPI"]()
    probe.include_router(nested, prefix="/top")
    included += [r for r in probe.router.routes if hasattr(r, "effective_route_contexts")]
    for route in included:
        assert _leaf_paths(route) == [ctx.path for ctx in route.effective_route_contexts()]
    assert _leaf_paths(included[-1]) == ["/top/outer/mid/inner/x/{n}", "/top/outer/y"]
