"""Front-end assets for the pages, served from an allow-list (no path from the URL reaches the disk).

govuk-frontend (the design system's CSS and JS) and bpmn-js's NavigatedViewer (the diagrams on
the case record) come from node_modules, installed from the locked package.json/package-lock.json
(`npm ci`); the modeller and the review page's diagram diff come from api/static/dist/, bundled
from modeller/src by `make setup`. The council is not GOV.UK, so the CSS is served without the GDS
Transport font (its @font-face rules are removed and the font names dropped, leaving Arial,
sans-serif) and no crown or GOV.UK images are served.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node_modules"
GOVUK = NODE / "govuk-frontend" / "dist" / "govuk"
BPMN_JS = NODE / "bpmn-js" / "dist"
STATIC = Path(__file__).resolve().parent / "static"
DIST = STATIC / "dist"  # the modeller and review bundles, built by `make setup` (modeller/build.mjs), not committed

# URL name -> (file, media type). Nothing else is served.
ALLOWED: dict[str, tuple[Path, str]] = {
    "govuk-frontend.min.css": (GOVUK / "govuk-frontend.min.css", "text/css; charset=utf-8"),
    "govuk-frontend.min.js": (GOVUK / "govuk-frontend.min.js", "text/javascript; charset=utf-8"),
    "app.css": (Path(__file__).resolve().parent / "static" / "app.css", "text/css; charset=utf-8"),
    "app.js": (Path(__file__).resolve().parent / "static" / "app.js", "text/javascript; charset=utf-8"),
    # the case record (api/case_pages.py): bpmn-js's read-only NavigatedViewer and its CSS, and our own files
    "bpmn-navigated-viewer.js": (BPMN_JS / "bpmn-navigated-viewer.production.min.js",
                                 "text/javascript; charset=utf-8"),
    "diagram-js.css": (BPMN_JS / "assets" / "diagram-js.css", "text/css; charset=utf-8"),
    "bpmn-js.css": (BPMN_JS / "assets" / "bpmn-js.css", "text/css; charset=utf-8"),
    "diagram_view.js": (STATIC / "diagram_view.js", "text/javascript; charset=utf-8"),  # shared by the two below
    "case_diagram.js": (STATIC / "case_diagram.js", "text/javascript; charset=utf-8"),
    "case.css": (STATIC / "case.css", "text/css; charset=utf-8"),
    # the replay page (api/replay_pages.py)
    "case_replay.js": (STATIC / "case_replay.js", "text/javascript; charset=utf-8"),
    "returns_cld.js": (STATIC / "returns_cld.js", "text/javascript; charset=utf-8"),  # the CLD return's waiting page
    "simulation.js": (STATIC / "simulation.js", "text/javascript; charset=utf-8"),  # a draft simulation's waiting page
    "case_replay.css": (STATIC / "case_replay.css", "text/css; charset=utf-8"),
    # our own icon (a path rising across a blue square), also served as /favicon.ico
    "favicon.svg": (STATIC / "favicon.svg", "image/svg+xml"),
    "favicon.ico": (STATIC / "favicon.ico", "image/x-icon"),
    # the modeller page and the review page's diagram diff (api/modeller.py, modeller/src/)
    "modeller.js": (DIST / "modeller.js", "text/javascript; charset=utf-8"),
    "modeller.css": (DIST / "modeller.css", "text/css; charset=utf-8"),
    "review.js": (DIST / "review.js", "text/javascript; charset=utf-8"),
    "review.css": (DIST / "review.css", "text/css; charset=utf-8"),
}
# the bundles' fonts (bpmn-js's and dmn-js's icon fonts), named by esbuild with a content hash
_BUNDLE_FONT = re.compile(r"^(bpmn|dmn)-[A-Z0-9]{8}\.(woff2|woff|ttf|eot|svg)$")
_FONT_TYPES = {"woff2": "font/woff2", "woff": "font/woff", "ttf": "font/ttf", "eot": "application/vnd.ms-fontobject",
               "svg": "image/svg+xml"}


def bundle_built() -> bool:
    """True when the modeller bundle is there (`make setup` builds it); pages say so when it is not."""
    return (DIST / "modeller.js").is_file() and (DIST / "modeller.css").is_file()

_FONT_FACE = re.compile(r"@font-face\{[^}]*\}")


def _without_gds_font(css: str) -> str:
    css = _FONT_FACE.sub("", css)
    return css.replace("font-family:GDS Transport,", "font-family:").replace("font-family:GDS Transport",
                                                                            "font-family:arial,sans-serif")


@lru_cache(maxsize=None)
def _load(name: str) -> bytes | None:
    path, _media = ALLOWED[name]
    if not path.is_file():
        return None
    if name == "govuk-frontend.min.css":
        return _without_gds_font(path.read_text(encoding="utf-8")).encode()
    return path.read_bytes()


router = APIRouter()


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    return static("favicon.ico")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    if _BUNDLE_FONT.match(name) and (DIST / name).is_file():
        return Response((DIST / name).read_bytes(), media_type=_FONT_TYPES[name.rsplit(".", 1)[1]],
                        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})
    if name not in ALLOWED:
        return Response("not found", status_code=404, media_type="text/plain")
    body = _load(name)
    if body is None:
        _load.cache_clear()  # look again next time (e.g. once `make setup` has built the bundle)
        return Response(f"{name} is missing: run `make setup` (npm ci and the modeller bundle)", status_code=404,
                        media_type="text/plain")
    return Response(body, media_type=ALLOWED[name][1], headers={"Cache-Control": "public, max-age=3600",
                                                                "X-Content-Type-Options": "nosniff"})
