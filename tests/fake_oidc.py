"""A fake OpenID provider for the tests (the council's identity provider, Microsoft Entra ID say): a small ASGI
app served by uvicorn in a thread on a free port, started by the fixtures (`running`), never by hand.

It serves what carepath reads — the discovery document (`/.well-known/openid-configuration`), its signing keys
(`/jwks`), the authorization endpoint and the token endpoint — and checks what a real provider checks: the
client id, the registered redirect URI, `response_type=code`, the `openid` scope, PKCE (S256: the verifier sent
to the token endpoint must hash to the challenge sent to the authorization endpoint), the client secret (HTTP
Basic or in the form), a code used once and only by the client it was issued to. ID tokens are RS256 JWTs
signed with its key (joserfc), dated by its own clock (`now`, set by the tests).

The authorization endpoint signs in `user` (sub, name, preferred_username, groups) at once ("auto-consent"),
or — `interactive = True`, for the browser — shows a page with a "Continue as …" link, so that the way back to
carepath starts on the provider's site, as after a real sign-in there.

What the tests can break on purpose, one sign-in at a time: `deny_next` (the provider answers
`error=access_denied`), `audience` (a token for another client), `nonce` (another nonce), `sign_with` (a key
that is not the published one, same key id), `lifetime` (seconds until `exp`).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.browser import free_port, live_server

CLIENT_ID = "carepath-test-client"
CLIENT_SECRET = "a-client-secret-only-the-tests-know"


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class FakeProvider:
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.key = RSAKey.generate_key(2048, parameters={"kid": "fake-key-1", "use": "sig"})
        self.lock = threading.Lock()
        self.redirect_uris: set[str] = set()
        self.user: dict[str, Any] = {"sub": "sub-0001", "name": "Jo Bloggs",
                                     "preferred_username": "jo.bloggs@council.test", "groups": []}
        self.now = lambda: datetime.now(UTC)
        self.lifetime = 300
        self.interactive = False
        self.reset()
        self.codes: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, str] = {}  # interactive: ticket -> the redirect that finishes the sign-in
        self.token_requests = 0
        self.issued: dict[str, Any] = {}  # the last tokens issued (the tests look for them in the logs)
        self.app = Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks),
            Route("/authorize", self.authorize),
            Route("/authorize/continue", self.proceed),
            Route("/token", self.token, methods=["POST"]),
        ])

    def reset(self) -> None:
        """Back to an honest provider (the tests' tampering undone)."""
        self.deny_next = False
        self.audience: str | None = None
        self.nonce: str | None = None
        self.sign_with: RSAKey | None = None

    # -------------------------------------------------------------- endpoints
    async def discovery(self, _request: Request) -> Response:
        return JSONResponse({
            "issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]})

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    def _refuse(self, message: str, status: int = 400) -> Response:
        return JSONResponse({"error": "invalid_request", "error_description": message}, status_code=status)

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != CLIENT_ID:
            return self._refuse("unknown client_id")
        redirect = q.get("redirect_uri", "")
        if redirect not in self.redirect_uris:  # never redirect anywhere not registered (as Entra ID: AADSTS50011)
            return self._refuse(f"redirect_uri {redirect} is not registered for this client")
        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return self._refuse("response_type must be code and scope must include openid")
        if q.get("code_challenge_method") != "S256" or len(q.get("code_challenge", "")) != 43:
            return self._refuse("PKCE with S256 is required")
        state = q.get("state", "")
        if self.deny_next:
            self.deny_next = False
            return RedirectResponse(f"{redirect}?{urlencode({'error': 'access_denied', 'state': state})}", 302)
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {"redirect_uri": redirect, "challenge": q["code_challenge"], "nonce": q.get("nonce"),
                                "user": dict(self.user)}
        back = f"{redirect}?{urlencode({'code': code, 'state': state})}"
        if not self.interactive:
            return RedirectResponse(back, 302)
        ticket = secrets.token_urlsafe(16)
        self.pending[ticket] = back
        name = html.escape(self.user["name"])
        return HTMLResponse(
            "<!DOCTYPE html><html lang='en'><head><title>Fake council sign-in</title></head><body><main>"
            f"<h1>Fake council identity provider</h1><p>You are signed in as {name}.</p>"
            f"<a id='continue' href='/authorize/continue?ticket={ticket}'>Continue as {name}</a></main></body></html>")

    async def proceed(self, request: Request) -> Response:
        back = self.pending.pop(request.query_params.get("ticket", ""), None)
        return RedirectResponse(back, 302) if back else self._refuse("unknown ticket")

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        form = await request.form()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id != CLIENT_ID or secret != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        with self.lock:
            issued = self.codes.pop(str(form.get("code", "")), None)  # once only
        if issued is None or form.get("redirect_uri") != issued["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if _s256(str(form.get("code_verifier", ""))) != issued["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE verification failed"}, 400)
        user = issued["user"]
        now = self.now()
        claims = {"iss": self.issuer, "sub": user["sub"], "aud": self.audience or CLIENT_ID,
                  "iat": int(now.timestamp()), "exp": int((now + timedelta(seconds=self.lifetime)).timestamp()),
                  "nonce": self.nonce or issued["nonce"], "name": user["name"],
                  "preferred_username": user["preferred_username"], "groups": list(user["groups"])}
        key = self.sign_with or self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "fake-key-1"}, claims, key)
        self.reset()
        self.issued = {"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 3600,
                       "id_token": id_token}
        return JSONResponse(self.issued)


@contextmanager
def running(*, host: str = "127.0.0.1") -> Iterator[FakeProvider]:
    """The fake provider served on a free port (uvicorn in a thread, tests/browser.py `live_server`); `host` is
    the name carepath and the browser reach it by ("localhost" makes it another site than 127.0.0.1)."""
    port = free_port()
    fake = FakeProvider(f"http://{host}:{port}")
    with live_server(fake.app, port=port):
        yield fake
