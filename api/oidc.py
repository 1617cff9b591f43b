"""Signing in through the council's identity provider (OpenID Connect), beside local accounts.

A council's staff already have an account at the council's identity provider (Microsoft Entra ID, say), with its
multi-factor sign-in, its leavers' process and its groups; carepath trusts it instead of keeping a second
password for each of them (docs/security.md "Signing in through the council's identity provider"). The flow is
OpenID Connect's authorization code flow with PKCE (RFC 7636, S256), `state` and `nonce`:

1. `GET /sign-in/oidc` keeps a pending sign-in (`oidc_sign_ins`: the state, the nonce and the PKCE verifier,
   under the SHA-256 of a random handle the browser holds in the `carepath_oidc` cookie) and sends the browser
   to the provider's authorization endpoint, read from its discovery document
   (`{issuer}/.well-known/openid-configuration`).
2. `GET /sign-in/oidc/callback` takes the pending sign-in (once: the row is deleted), checks `state`, exchanges
   the code (with the verifier and the client secret) at the token endpoint, and checks the ID token: its
   signature against the provider's published keys (JWKS; refreshed once when a key id is unknown, as after a
   key rotation), only asymmetric algorithms, then `iss`, `aud`, `azp`, `exp`, `iat`, `nbf` and `nonce` — time
   from the engine's injected clock with `leeway` seconds either way (default 60) for clocks that disagree.
3. The person is matched by the issuer and the `sub` claim (`user_identities`), never by e-mail address. On
   the first sign-in an account is made; on every sign-in its name, roles and teams are set from the groups
   claim through the council's mapping file, so a person whose groups no longer map loses their roles at their
   next sign-in and is refused. Each change is audited (`user.created`, `user.changed`, actor `oidc`) in the
   system history, in the same transaction. A deactivated account stays refused.

Protocol work is the libraries': Authlib's OAuth 2 client (authorization URL with PKCE, the code exchange,
`requests` underneath) and its OpenID Connect ID-token claims rules, joserfc for the JWS signature. Neither the
code, the tokens nor the claims are ever logged; the request log keeps the path without its query.

Configured by environment variables (`oidc_settings`, docs/operations.md); without CAREPATH_OIDC_ISSUER the
routes answer 404 and the sign-in page shows no button.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core import CodeIDToken
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import delete, insert, select, update
from starlette.concurrency import run_in_threadpool

from engine import history
from engine.clock import as_utc
from engine.errors import CarepathError
from engine.history import Event
from engine.schema import oidc_sign_ins, sessions, user_identities, users
from handlers.config_files import read_json

from . import page_kit as kit
from .auth import COOKIE, RESERVED_USERNAMES, ROLES, TEAMS, USERNAME_RE, AuthStore, User
from .errors import ApiError

ACTOR = "oidc"  # the actor of the accounts' audit events: the identity provider's groups, not a person
PENDING_COOKIE = "carepath_oidc"
PENDING_PATH = "/sign-in/oidc"
CALLBACK = "/sign-in/oidc/callback"
# a password hash no password matches (argon2 refuses it as malformed): an account made here has no password
NO_PASSWORD = "!oidc"
# only signatures made with the provider's private key: never "none", nor HS256 with the client secret
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


# ---------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Grant:
    """What one of the provider's groups gives in carepath."""

    roles: frozenset[str]
    teams: frozenset[str]


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    groups: Mapping[str, Grant] = field(default_factory=dict)  # the provider's group -> roles and teams
    name: str = "your council account"  # the button reads "Sign in with <name>"
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    groups_claim: str = "groups"  # Entra ID: "groups" (group object ids) or "roles" (app roles)
    redirect_uri: str | None = None  # None: this server's address + /sign-in/oidc/callback
    leeway: int = 60  # seconds either way on exp, iat and nbf
    timeout: float = 10.0  # seconds for each call to the provider
    pending: timedelta = timedelta(minutes=10)  # how long a sign-in may take at the provider

    def __repr__(self) -> str:  # never the secret
        return f"OidcSettings(issuer={self.issuer!r}, client_id={self.client_id!r}, groups={len(self.groups)})"


def _truthy(raw: str, name: str, default: bool) -> bool:
    raw = raw.strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise CarepathError(f"{name} must be on or off (1/0, true/false, yes/no), not {raw!r}")


def load_groups(path: str | Path) -> dict[str, Grant]:
    """The council's mapping from the provider's groups to carepath's roles and teams, from a JSON file:

        {"groups": {"<group id or name>": {"roles": ["social_worker"], "teams": ["social_work"],
                                           "note": "optional: what the group is"}}}

    Every mistake is a clear error naming the file, the group and what is wrong (unknown role or team, a list
    that is not a list of names, a group that gives nothing)."""
    path = Path(path)
    data = read_json(path, "the groups file", CarepathError)
    if not isinstance(data, dict) or set(data) != {"groups"} or not isinstance(data["groups"], dict):
        raise CarepathError(f"the groups file {path} must be one JSON object with one key, \"groups\", whose value "
                            "maps each group to {\"roles\": [...], \"teams\": [...]}")
    out: dict[str, Grant] = {}
    problems: list[str] = []
    for group, grant in data["groups"].items():
        where = f"group {group!r}"
        if not group.strip():
            problems.append("a group with an empty name")
            continue
        if not isinstance(grant, dict):
            problems.append(f"{where}: must be an object with \"roles\" and \"teams\"")
            continue
        extra = sorted(set(grant) - {"roles", "teams", "note"})
        if extra:
            problems.append(f"{where}: unknown key(s) {', '.join(extra)} (only roles, teams and note)")
        lists = {}
        for key, known in (("roles", ROLES), ("teams", TEAMS)):
            value = grant.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{where}: {key} must be a list of names")
                value = []
            unknown = [v for v in value if v not in known]
            if unknown:
                problems.append(f"{where}: unknown {key[:-1]} {', '.join(map(repr, unknown))} "
                                f"(one of: {', '.join(known)})")
            lists[key] = frozenset(v for v in value if v in known)
        if not lists["roles"] and not lists["teams"] and not any(p.startswith(where) for p in problems):
            problems.append(f"{where}: gives no role and no team")
        out[group] = Grant(lists["roles"], lists["teams"])
    if problems:
        raise CarepathError(f"the groups file {path} is wrong: " + "; ".join(problems))
    return out


def oidc_settings(env: Mapping[str, str] | None = None) -> OidcSettings | None:
    """The identity provider's settings from the environment, or None when CAREPATH_OIDC_ISSUER is not set.

    CAREPATH_OIDC_ISSUER (the issuer URL; discovery is read from it), CAREPATH_OIDC_CLIENT_ID,
    CAREPATH_OIDC_CLIENT_SECRET or CAREPATH_OIDC_CLIENT_SECRET_FILE, CAREPATH_OIDC_GROUPS_FILE (the mapping, see
    `load_groups`), and optionally CAREPATH_OIDC_NAME (the button's words), CAREPATH_OIDC_SCOPES (default
    "openid profile email"), CAREPATH_OIDC_GROUPS_CLAIM (default "groups"), CAREPATH_OIDC_REDIRECT_URI,
    CAREPATH_OIDC_LEEWAY (seconds, 0-300, default 60). A setting that cannot work is an error naming it; the
    secret's value is never shown."""
    env = os.environ if env is None else env
    issuer = env.get("CAREPATH_OIDC_ISSUER", "").strip().rstrip("/")
    if not issuer:
        return None
    if not issuer.startswith("https://") and not issuer.startswith(("http://127.0.0.1", "http://localhost")):
        raise CarepathError(f"CAREPATH_OIDC_ISSUER must be an https:// address, not {issuer!r}")
    client_id = env.get("CAREPATH_OIDC_CLIENT_ID", "").strip()
    if not client_id:
        raise CarepathError("CAREPATH_OIDC_CLIENT_ID is not set: copy the application (client) id from the "
                            "identity provider's app registration")
    secret = env.get("CAREPATH_OIDC_CLIENT_SECRET", "").strip()
    secret_file = env.get("CAREPATH_OIDC_CLIENT_SECRET_FILE", "").strip()
    if secret_file:
        try:
            secret = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CarepathError(f"CAREPATH_OIDC_CLIENT_SECRET_FILE {secret_file} cannot be read: "
                                f"{exc.strerror or exc}") from None
    if not secret:
        raise CarepathError("CAREPATH_OIDC_CLIENT_SECRET (or CAREPATH_OIDC_CLIENT_SECRET_FILE) is not set")
    groups_file = env.get("CAREPATH_OIDC_GROUPS_FILE", "").strip()
    if not groups_file:
        raise CarepathError("CAREPATH_OIDC_GROUPS_FILE is not set: name the JSON file mapping the provider's groups "
                            "to carepath's roles and teams (docs/operations.md)")
    scopes = tuple((env.get("CAREPATH_OIDC_SCOPES", "") or "openid profile email").split())
    if "openid" not in scopes:
        raise CarepathError(f"CAREPATH_OIDC_SCOPES must include openid, not {' '.join(scopes)!r}")
    raw = env.get("CAREPATH_OIDC_LEEWAY", "").strip() or "60"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 300:
        raise CarepathError(f"CAREPATH_OIDC_LEEWAY must be a whole number of seconds from 0 to 300, not {raw!r}")
    redirect = env.get("CAREPATH_OIDC_REDIRECT_URI", "").strip() or None
    if redirect is not None and not redirect.endswith(CALLBACK):
        raise CarepathError(f"CAREPATH_OIDC_REDIRECT_URI must be this server's address followed by {CALLBACK}")
    return OidcSettings(issuer=issuer, client_id=client_id, client_secret=secret, groups=load_groups(groups_file),
                        name=(env.get("CAREPATH_OIDC_NAME", "").strip() or OidcSettings.name)[:80], scopes=scopes,
                        groups_claim=env.get("CAREPATH_OIDC_GROUPS_CLAIM", "").strip() or "groups",
                        redirect_uri=redirect, leeway=int(raw))


def local_accounts_setting(env: Mapping[str, str] | None = None) -> bool:
    """CAREPATH_LOCAL_ACCOUNTS=off refuses every password sign-in (everyone signs in at the identity provider);
    on when unset."""
    env = os.environ if env is None else env
    return _truthy(env.get("CAREPATH_LOCAL_ACCOUNTS", ""), "CAREPATH_LOCAL_ACCOUNTS", True)


# ---------------------------------------------------------------------- refusals
class Refused(Exception):
    """A sign-in the provider or carepath refused: shown on the GOV.UK error page, never a 500."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def _again(what: str) -> str:
    return f"{what} Go back to the sign-in page and try again."


# ---------------------------------------------------------------------- the provider
class Provider:
    """The identity provider's discovery document and signing keys, read when first needed and kept for an hour
    (keys read again at once when a token names a key id not among them)."""

    KEEP = 3600.0

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._read_at = 0.0

    def _get(self, url: str) -> dict[str, Any]:
        try:
            r = requests.get(url, timeout=self.settings.timeout, headers={"Accept": "application/json"})
            r.raise_for_status()
            data = r.json()
        except (requests.RequestException, ValueError):
            raise Refused(502, "The council's sign-in service is not answering",
                          _again("carepath could not reach the council's identity provider.")) from None
        if not isinstance(data, dict):
            raise Refused(502, "The council's sign-in service is not answering",
                          _again("The council's identity provider answered with something carepath cannot read."))
        return data

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None or time.monotonic() - self._read_at > self.KEEP:
                md = self._get(f"{self.settings.issuer}/.well-known/openid-configuration")
                needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
                missing = [k for k in needed if not isinstance(md.get(k), str) or not md[k]]
                if missing or md["issuer"].rstrip("/") != self.settings.issuer:
                    # OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was read from
                    raise Refused(502, "The council's sign-in service is set up wrongly",
                                  "The identity provider's discovery document does not match CAREPATH_OIDC_ISSUER "
                                  "or lacks an endpoint: tell the people who run carepath.")
                self._metadata, self._keys, self._read_at = md, None, time.monotonic()
            return self._metadata

    def keys(self, *, again: bool = False) -> KeySet:
        md = self.metadata()
        with self._lock:
            if self._keys is None or again:
                data = self._get(md["jwks_uri"])
                try:
                    self._keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError):
                    raise Refused(502, "The council's sign-in service is set up wrongly",
                                  "The identity provider's signing keys cannot be read: tell the people who run "
                                  "carepath.") from None
            return self._keys

    def client(self, redirect_uri: str) -> OAuth2Session:
        md = self.metadata()
        methods = md.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        return OAuth2Session(self.settings.client_id, self.settings.client_secret, scope=" ".join(self.settings.scopes),
                             redirect_uri=redirect_uri, code_challenge_method="S256",
                             token_endpoint_auth_method=method)


def _hash(handle: str) -> str:
    return hashlib.sha256(handle.encode()).hexdigest()


# ---------------------------------------------------------------------- the flow
def begin(engine: Any, provider: Provider, redirect_uri: str) -> tuple[str, str]:
    """A new pending sign-in: (the browser's handle, the provider's authorization URL to send it to)."""
    md = provider.metadata()
    handle, state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters of the 43-128 RFC 7636 allows
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        conn.execute(delete(oidc_sign_ins).where(oidc_sign_ins.c.expires_at <= now))  # tidy abandoned ones
        conn.execute(insert(oidc_sign_ins).values(handle_hash=_hash(handle), state=state, nonce=nonce,
                                                  code_verifier=verifier, created_at=now,
                                                  expires_at=now + provider.settings.pending))
    with provider.client(redirect_uri) as client:
        url, _state = client.create_authorization_url(md["authorization_endpoint"], state=state, nonce=nonce,
                                                      code_verifier=verifier)
    return handle, url


def finish(engine: Any, provider: Provider, handle: str | None, params: Mapping[str, str],
           redirect_uri: str) -> int:
    """The provider's answer: checks it and returns the id of the account to open a session for, or raises
    Refused. The pending sign-in is used up whatever happens."""
    pending = None
    if handle:
        with engine.db.transaction() as conn:
            now = engine.now(conn)
            pending = conn.execute(select(oidc_sign_ins).where(oidc_sign_ins.c.handle_hash == _hash(handle))).first()
            if pending is not None:
                conn.execute(delete(oidc_sign_ins).where(oidc_sign_ins.c.handle_hash == pending.handle_hash))
    if pending is None:
        raise Refused(400, "Sign-in was not started here",
                      _again("This answer from the council's identity provider does not belong to a sign-in "
                             "started in this browser, or it was already used."))
    if as_utc(pending.expires_at) <= now:
        raise Refused(400, "Sign-in took too long",
                      _again("The sign-in at the council's identity provider took more than "
                             f"{int(provider.settings.pending.total_seconds() // 60)} minutes."))
    if not hmac.compare_digest(params.get("state", "").encode(), pending.state.encode()):
        raise Refused(400, "Sign-in could not be checked",
                      _again("The answer from the council's identity provider does not match the sign-in started "
                             "in this browser (its state is wrong), so it was refused."))
    if params.get("error"):
        code = params["error"] if _ERROR_CODE.match(params["error"]) else "an error"
        raise Refused(401, "The council's sign-in service refused",
                      _again(f"The council's identity provider did not sign you in ({code})."))
    code = params.get("code", "")
    if not code or len(code) > 4096:
        raise Refused(400, "Sign-in could not be checked",
                      _again("The answer from the council's identity provider has no authorization code."))
    try:
        with provider.client(redirect_uri) as client:
            token = client.fetch_token(provider.metadata()["token_endpoint"], code=code,
                                       code_verifier=pending.code_verifier, timeout=provider.settings.timeout)
    except OAuth2Error:
        raise Refused(401, "The council's sign-in service refused",
                      _again("The council's identity provider refused to confirm the sign-in.")) from None
    except (requests.RequestException, ValueError):
        raise Refused(502, "The council's sign-in service is not answering",
                      _again("carepath could not reach the council's identity provider.")) from None
    claims = check_id_token(engine, provider, token, pending.nonce)
    return provision(engine, provider.settings, claims)


def check_id_token(engine: Any, provider: Provider, token: Mapping[str, Any], nonce: str) -> dict[str, Any]:
    """The ID token's claims once its signature, issuer, audience, time and nonce are checked (or Refused)."""
    s = provider.settings
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise Refused(401, "Sign-in could not be checked",
                      _again("The council's identity provider sent no ID token."))
    offered = provider.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in offered if a in ASYMMETRIC]
    bad_signature = Refused(401, "Sign-in could not be checked",
                            _again("The ID token's signature is not the council's identity provider's."))
    try:
        try:
            decoded = jwt.decode(id_token, provider.keys(), registry=JWSRegistry(algorithms=algorithms))
        except InvalidKeyIdError:  # a key the provider published since we read its keys
            decoded = jwt.decode(id_token, provider.keys(again=True), registry=JWSRegistry(algorithms=algorithms))
    except JoseError:
        raise bad_signature from None
    except ValueError:
        raise bad_signature from None
    options = {"iss": {"essential": True, "value": s.issuer}, "aud": {"essential": True, "value": s.client_id},
               "sub": {"essential": True}, "exp": {"essential": True}, "iat": {"essential": True},
               "nonce": {"essential": True, "value": nonce}}
    claims = CodeIDToken(decoded.claims, decoded.header, options,
                         {"nonce": nonce, "client_id": s.client_id, "access_token": token.get("access_token")})
    try:
        claims.validate(now=int(engine.now().timestamp()), leeway=s.leeway)
    except ExpiredTokenError:
        raise Refused(401, "Sign-in expired",
                      _again("The council's identity provider's confirmation of who you are has expired.")) from None
    except ClaimError as exc:
        what = {"aud": "was not issued for carepath (wrong audience)", "azp": "was issued for another application",
                "iss": "was not issued by the council's identity provider", "nonce": "belongs to another sign-in",
                "iat": "is dated in the future", "nbf": "is not valid yet",
                "at_hash": "does not match its access token"}.get(getattr(exc, "claim", ""), "is incomplete")
        raise Refused(401, "Sign-in could not be checked", _again(f"The ID token {what}.")) from None
    except JoseError:
        raise Refused(401, "Sign-in could not be checked", _again("The ID token is not valid.")) from None
    return dict(claims)


# ---------------------------------------------------------------------- accounts from claims
def grants(settings: OidcSettings, claims: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The roles and teams the person's groups give (sorted); groups the mapping does not name give nothing."""
    raw = claims.get(settings.groups_claim)
    if raw is None:
        names = claims.get("_claim_names")
        if isinstance(names, dict) and settings.groups_claim in names:  # Entra ID's "groups overage"
            raise Refused(403, "Too many groups to read",
                          "The council's identity provider left your groups out of the sign-in because you are in "
                          "too many. Ask the people who run the identity provider to send only the groups "
                          "assigned to carepath.")
        raw = []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
        raise Refused(401, "Sign-in could not be checked",
                      _again(f"The ID token's {settings.groups_claim} claim is not a list of groups."))
    roles: set[str] = set()
    teams: set[str] = set()
    for group in raw:
        grant = settings.groups.get(group)
        if grant is not None:
            roles |= grant.roles
            teams |= grant.teams
    return sorted(roles), sorted(teams)


def _printable(text: str) -> str:
    """The text on one line without control characters (NUL, ESC, C1: PostgreSQL cannot store NUL, and the others
    forge log lines and drive terminals), Unicode format characters (zero-width spaces, bidirectional overrides:
    a name in the history must read as what it is) or lone surrogates (no database can encode them)."""
    return " ".join("".join(c if unicodedata.category(c) not in ("Cc", "Cf", "Cs") else " " for c in text).split())


def _display_name(claims: Mapping[str, Any]) -> str:
    """The person's name as the provider gives it, made printable: the claims are the provider's, but a name is
    often the person's own to edit there, so it is treated as any other input."""
    for key in ("name", "preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and _printable(value):
            return _printable(value)[:255]
    return "Council user"


def _username(conn: Any, claims: Mapping[str, Any]) -> str:
    """A free username for a new account, from the person's user name at the provider (the part before any '@');
    taken names get -2, -3... It is a label in carepath's history, never how the person is matched."""
    base = ""
    for key in ("preferred_username", "email", "name"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            base = value.strip().lower().split("@")[0]
            break
    base = re.sub(r"[^a-z0-9._-]+", "-", base).strip("-._")[:56] or "user"
    if len(base) < 2:
        base = f"{base}-user"
    taken = set(conn.execute(select(users.c.username).where(users.c.username.like(f"{base}%"))).scalars())
    candidate, n = base, 1
    while candidate in taken or candidate in RESERVED_USERNAMES or not USERNAME_RE.match(candidate):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _audit(conn: Any, engine: Any, now: Any, type_: str, data: dict[str, Any]) -> None:
    history.append(conn, history.SYSTEM_CHAIN, None, now, [Event(type_, data, actor=ACTOR)],
                   lock=engine.db.is_postgres)


def provision(engine: Any, settings: OidcSettings, claims: Mapping[str, Any]) -> int:
    """The account for the person the claims name (issuer + sub), made or brought up to date; its id.

    Roles and teams come only from the groups mapping: whatever an administrator set in carepath is replaced at
    every sign-in. A person whose groups give no role is refused — and an existing account's roles are taken away
    first, so a session still open loses its access at once too. A deactivated account is refused unchanged."""
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    if len(subject) > 255 or len(issuer) > 255:
        raise Refused(401, "Sign-in could not be checked", _again("The ID token's subject is too long."))
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in subject):  # NUL cannot be kept in PostgreSQL's text
        raise Refused(401, "Sign-in could not be checked", _again("The ID token's subject holds control characters."))
    roles, teams = grants(settings, claims)
    name = _display_name(claims)
    with engine.db.transaction() as conn:
        now = engine.now(conn)
        found = conn.execute(select(user_identities.c.user_id).where(
            user_identities.c.issuer == issuer, user_identities.c.subject == subject)).scalar()
        if found is None:
            if not roles:
                raise Refused(403, "You do not have access to carepath",
                              "You signed in at the council's identity provider, but none of your groups gives "
                              "access to carepath. Ask your manager to have you added to carepath's groups.")
            username = _username(conn, claims)
            user_id = conn.execute(insert(users).values(
                username=username, display_name=name, password_hash=NO_PASSWORD, roles=roles, teams=teams,
                failed_attempts=0, locked_until=None, active=True, created_at=now).returning(users.c.id)).scalar_one()
            conn.execute(insert(user_identities).values(issuer=issuer, subject=subject, user_id=user_id,
                                                        created_at=now, last_sign_in_at=now))
            _audit(conn, engine, now, "user.created", {"username": username, "display_name": name, "roles": roles,
                                                       "teams": teams, "identity_provider": issuer})
            return user_id
        query = select(users).where(users.c.id == found)
        row = conn.execute(query.with_for_update() if conn.dialect.name == "postgresql" else query).first()
        if row is None or not row.active:
            raise Refused(403, "Your account is deactivated",
                          "Your carepath account has been deactivated, so you cannot sign in. Ask an administrator "
                          "if you think this is wrong.")
        was = {"display_name": row.display_name, "roles": sorted(_list(row.roles)), "teams": sorted(_list(row.teams))}
        now_is = {"display_name": name, "roles": roles, "teams": teams}
        changes = {k: {"from": was[k], "to": now_is[k]} for k in was if was[k] != now_is[k]}
        conn.execute(update(users).where(users.c.id == row.id).values(**now_is))
        conn.execute(update(user_identities).where(user_identities.c.user_id == row.id).values(last_sign_in_at=now))
        if changes:
            _audit(conn, engine, now, "user.changed", {"username": row.username, "changes": changes,
                                                       "identity_provider": issuer})
        if not roles:
            conn.execute(delete(sessions).where(sessions.c.user_id == row.id))
    if not roles:
        raise Refused(403, "You no longer have access to carepath",
                      "You signed in at the council's identity provider, but none of your groups gives access to "
                      "carepath any more, so your roles in carepath were removed. Ask your manager if you still "
                      "need access.")
    return row.id


def _list(value: Any) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def is_linked(conn: Any, user_id: int) -> bool:
    """Whether the account signs in through the identity provider (its roles and teams come from its groups)."""
    return conn.execute(select(user_identities.c.id).where(user_identities.c.user_id == user_id)).first() is not None


def linked_username(engine: Any, username: str) -> bool:
    """Whether the account of this name signs in through the identity provider (the admin page says so)."""
    with engine.db.engine.connect() as conn:
        return conn.execute(select(user_identities.c.id).join(users, users.c.id == user_identities.c.user_id)
                            .where(users.c.username == username)).first() is not None


# ---------------------------------------------------------------------- routes
router = APIRouter(include_in_schema=False)


def _state(request: Request) -> tuple[OidcSettings, Provider] | None:
    provider: Provider | None = getattr(request.app.state, "oidc", None)
    return (provider.settings, provider) if provider is not None else None


def _redirect_uri(request: Request, settings: OidcSettings) -> str:
    return settings.redirect_uri or str(request.base_url).rstrip("/") + CALLBACK


def _not_configured(request: Request) -> Response:
    return kit.error_page(request, None, 404, "Page not found",
                          "Signing in through the council's identity provider is not set up here.")


def _landing(user: User) -> str:
    return kit.landing(user)


@router.get(PENDING_PATH, response_class=HTMLResponse)
async def start(request: Request) -> Response:
    """Send the browser to the council's identity provider."""
    configured = _state(request)
    if configured is None:
        return _not_configured(request)
    settings, provider = configured
    user = await run_in_threadpool(kit.session_user, request)
    if user is not None:
        return kit.redirect(_landing(user))
    try:
        handle, url = await run_in_threadpool(begin, request.app.state.engine, provider,
                                              _redirect_uri(request, settings))
    except Refused as exc:
        return kit.error_page(request, None, exc.status, exc.title, exc.message)
    resp = kit.redirect(url)
    # SameSite=Lax, not Strict: the provider sends the browser back by a cross-site top-level GET, which must
    # carry this cookie; it opens nothing by itself (it names a pending sign-in, used once)
    resp.set_cookie(PENDING_COOKIE, handle, httponly=True, samesite="lax", path=PENDING_PATH,
                    max_age=int(settings.pending.total_seconds()),
                    secure=kit.use_secure_cookie(request, request.app.state.auth))
    return resp


@router.get(CALLBACK, response_class=HTMLResponse)
async def callback(request: Request) -> Response:
    """The provider's answer: a session, or the GOV.UK error page saying what went wrong."""
    configured = _state(request)
    if configured is None:
        return _not_configured(request)
    settings, provider = configured
    store: AuthStore = request.app.state.auth
    params = {k: v for k, v in request.query_params.items() if k in ("code", "state", "error")}
    try:
        user_id = await run_in_threadpool(finish, request.app.state.engine, provider,
                                          request.cookies.get(PENDING_COOKIE), params,
                                          _redirect_uri(request, settings))
        user, token = await run_in_threadpool(store.open_session, user_id)
    except Refused as exc:
        resp = kit.error_page(request, None, exc.status, exc.title, exc.message)
    except ApiError:  # open_session's refusal: the account was deactivated a moment ago
        resp = kit.error_page(request, None, 403, "Your account is deactivated",
                              "Your carepath account has been deactivated, so you cannot sign in.")
    else:
        old = request.cookies.get(COOKIE)
        if old:
            await run_in_threadpool(store.sign_out, old)  # a new session on every sign-in (no fixation)
        # a page, not a redirect: the browser arrived here from the provider's site, and a redirect in that same
        # cross-site navigation would not carry the SameSite=Strict session cookie; this page's own navigation does
        resp = kit.render(request, "signed_in.html", {"user": None, "next": _landing(user),
                                                      "display_name": user.display_name})
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=kit.use_secure_cookie(request, store),
                        path="/")
    resp.delete_cookie(PENDING_COOKIE, path=PENDING_PATH)
    return resp
