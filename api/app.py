"""The FastAPI application.

Everything that holds personal data sits behind sign-in and authorisation (api/auth.py,
api/access.py, docs/security.md); only /api/health is open (it holds no personal data).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from . import (
    admin,
    audit,
    break_glass,
    case_actions,
    case_pages,
    case_start,
    cases,
    cld_returns,
    errors,
    evidence,
    intake,
    integrity,
    letters_pdf,
    measures,
    messages,
    mfa,
    migrations,
    modeller,
    oidc,
    own_password,
    pages,
    processes,
    replay_pages,
    retention,
    route_index,
    simulation_pages,
    static_assets,
    subject_access,
    suspend,
    tasks,
    transition,
)
from . import trial as draft_trial
from .access import is_user
from .auth import AuthSettings, AuthStore, User, current_user
from .auth import router as auth_router
from .http_layer import HttpLayer

API_DOCS_ENV = "CAREPATH_API_DOCS"


def api_docs_setting() -> bool:
    """CAREPATH_API_DOCS=1 publishes the OpenAPI description (signed in only); off when unset (production)."""
    return os.environ.get(API_DOCS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def auth_settings_from_env(*, required_default: str = "administrator") -> AuthSettings:
    """Sign-in settings from the environment: CAREPATH_MFA_KEY (encrypts TOTP secrets at rest, api/mfa.py),
    CAREPATH_MFA_REQUIRED_ROLES (comma-separated roles that must use a second factor; `carepath serve` defaults
    to "administrator", an app made in Python to none) and CAREPATH_IDLE_MINUTES (a session unused for longer
    ends; 30). docs/security.md "Passwords, sign-in and lock-out", "Sessions and cookies"."""
    roles = os.environ.get("CAREPATH_MFA_REQUIRED_ROLES", required_default)
    return AuthSettings(mfa_key=os.environ.get("CAREPATH_MFA_KEY") or None,
                        mfa_required_roles=frozenset(r.strip() for r in roles.split(",") if r.strip()),
                        local_accounts=oidc.local_accounts_setting(),  # CAREPATH_LOCAL_ACCOUNTS (api/oidc.py)
                        idle_timeout=idle_timeout_setting())


IDLE_ENV = "CAREPATH_IDLE_MINUTES"


def idle_timeout_setting(env: Any = None) -> timedelta:
    """How long a session may go unused (CAREPATH_IDLE_MINUTES, whole minutes 5-480; 30 when unset). A value that
    cannot work stops the app, naming the setting."""
    raw = (os.environ if env is None else env).get(IDLE_ENV, "").strip() or "30"
    if not (raw.isascii() and raw.isdigit()) or not 5 <= int(raw) <= 480:
        from engine.errors import CarepathError

        raise CarepathError(f"{IDLE_ENV} must be a whole number of minutes from 5 to 480, not {raw!r}")
    return timedelta(minutes=int(raw))


def create_app(engine: Any, *, run_timers: bool = True, auth: AuthSettings | None = None,
               warm_measures: bool = False, api_docs: bool | None = None,
               identity_provider: oidc.OidcSettings | bool | None = None,
               simulations_ahead: bool = False) -> FastAPI:
    """The app. `api_docs` (default: the CAREPATH_API_DOCS setting, off) publishes the OpenAPI description at
    /api/openapi.json to signed-in users; FastAPI's /docs and /redoc pages, which load script and styles from
    a CDN, are never served (docs/security.md "API description").

    `identity_provider` (default: the CAREPATH_OIDC_* settings, off when CAREPATH_OIDC_ISSUER is unset; False:
    off) lets people sign in through the council's identity provider (api/oidc.py); without `auth`, password
    sign-in follows CAREPATH_LOCAL_ACCOUNTS (on when unset). Settings that cannot work stop the app here, with
    the setting named.

    `simulations_ahead` (the server: on; the tests' apps: off unless asked) makes the live version's simulation runs
    ahead of a comparison, in the background at the lowest priority, as CAREPATH_SIMULATION_AHEAD plans them
    (carepath/simulate_ahead.py; docs/simulation.md "The live runs made ahead")."""
    if identity_provider is None or identity_provider is True:
        identity_provider = oidc.oidc_settings()
    if auth is None:
        auth = auth_settings_from_env(required_default="")
    if not auth.local_accounts and not identity_provider:
        from engine.errors import CarepathError

        raise CarepathError("CAREPATH_LOCAL_ACCOUNTS is off but no identity provider is set "
                            "(CAREPATH_OIDC_ISSUER): nobody could sign in")
    ahead_plan = None
    if simulations_ahead:
        from carepath.simulate_ahead import plan_from_env

        ahead_plan = plan_from_env()  # a bad setting stops the app here, with its name

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        sched = None
        ahead = None
        if ahead_plan:
            from api.simulation_pages import STALE, scenario_path
            from carepath.simulate_ahead import Ahead

            ahead = Ahead(engine, scenario_path(), ahead_plan, user_stale=STALE)
            ahead.start()
        _app.state.simulations_ahead = ahead
        if run_timers:
            from engine.worker import background_scheduler

            sched = background_scheduler(engine)
            sched.start()
        if warm_measures:  # the measures' kept facts read once in the background (docs/measures.md, "Speed")
            from handlers.measures import warm_in_background

            _app.state.measures_warming = warm_in_background(engine)
        try:
            yield
        finally:
            if sched is not None:
                sched.shutdown(wait=False)
            if ahead is not None:
                ahead.stop()

    app = FastAPI(title="carepath", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, swagger_ui_oauth2_redirect_url=None)
    app.state.engine = engine
    if engine.registry.users is None:  # a computed candidate user must be a user (docs/diagram-attributes.md)
        engine.registry.users = lambda name: is_user(engine, name)
    app.state.auth = AuthStore(engine, auth)
    # how long a break-glass use lasts: a bad setting stops the app here, with its name (api/break_glass.py)
    app.state.break_glass_for = break_glass.duration(app.state.auth.settings.break_glass_for)
    app.state.oidc = oidc.Provider(identity_provider) if identity_provider else None
    errors.install(app)
    # one pure ASGI middleware (api/http_layer.py), outermost first: nosniff everywhere and no-store unless a
    # response sets its caching (api/security_headers.py); the request id, access and error lines without
    # personal data (api/request_log.py); body size while reading, strict JSON, no control characters
    # (api/inputs.py, docs/security.md); the page each case access is logged from (api/access.py)
    app.add_middleware(HttpLayer, routes_of=app)

    if api_docs_setting() if api_docs is None else api_docs:
        @app.get("/api/openapi.json", include_in_schema=False)
        async def openapi(_user: Annotated[User, Depends(current_user)]) -> dict[str, Any]:
            """The OpenAPI description, to signed-in users only (it maps every route an attacker could try)."""
            return app.openapi()

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        out = {"status": "ok", "database": engine.db.dialect, "clock": engine.clock_mode(),
               "now": engine.now().isoformat()}
        signing = getattr(engine, "heads_signing", None)  # engine/worker.sign_heads_once, when it runs here
        if signing:  # no personal data: the outcome, when, the file; a refusal is an alert (docs/auditing.md)
            out["heads_signing"] = {k: signing[k] for k in ("status", "at", "file")}
            if signing["status"] in ("refused", "failed"):
                out["status"] = "alert"
        return out

    def include(router: Any) -> None:  # every API route documents its refusals (api/errors.DOCUMENTED)
        app.include_router(router, responses=errors.DOCUMENTED)

    include(auth_router)
    include(tasks.router)
    include(cases.router)
    include(intake.router)  # find a person, new contact (api/intake.py)
    include(admin.router)  # users and case restriction (api/admin.py)
    include(break_glass.router)  # emergency reading of a restricted case, and its review (api/break_glass.py)
    include(retention.router)  # retention and erasure (api/retention.py)
    include(mfa.router)  # a second factor for local accounts (api/mfa.py)
    include(mfa.pages)
    include(own_password.router)  # changing one's own password (api/own_password.py)
    include(static_assets.router)  # allow-listed front-end files (api/static_assets.py)
    include(pages.router)  # HTML pages, same rules as the API (api/pages.py)
    include(oidc.router)  # signing in through the council's identity provider (api/oidc.py)
    include(case_pages.router)  # the case record pages (api/case_pages.py)
    include(case_actions.router)  # acting on a case, closing it (api/case_actions.py)
    include(case_start.router)  # starting a council's own process on a case by its id (api/case_start.py)
    include(suspend.router)  # hospital admissions: suspend and resume (api/suspend.py)
    include(suspend.pages)
    include(transition.router)  # referrals from children's services (api/transition.py)
    include(integrity.router)  # the integrity panel's "Check now" (api/integrity.py)
    include(integrity.api_router)
    include(modeller.router)  # the browser modeller and its checks (api/modeller.py)
    include(processes.router)  # process owners' workbench: versions, drafts, review (api/processes.py)
    include(replay_pages.router)  # replaying a case step by step on its diagrams (api/replay_pages.py)
    include(draft_trial.router)  # testing a draft: replay recent cases, run its example (api/trial.py)
    include(simulation_pages.router)  # simulating a draft against the live version (api/simulation_pages.py)
    include(audit.router)  # auditors: find cases, the access log (api/audit.py)
    include(evidence.router)  # evidence packs for investigators (api/evidence.py)
    include(subject_access.router)  # subject access exports (api/subject_access.py)
    include(subject_access.pages)
    include(letters_pdf.router)  # a letter's PDF, as posted (api/letters_pdf.py)
    include(measures.router)  # the published measures and the cases behind them (api/measures.py)
    include(migrations.router)  # moving running cases to another version (api/migrations.py)
    include(messages.router)  # delivering a message to a case (api/messages.py)
    include(cld_returns.router)  # the Client Level Data return's download page (api/cld_returns.py)
    route_index.install(app)  # a request asks only the routers that can match its path (api/route_index.py)
    return app
