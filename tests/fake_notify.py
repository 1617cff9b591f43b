"""A fake GOV.UK Notify for the tests: a small HTTP server in a thread, started by the fixtures.

It answers what `notifications-python-client` calls — POST /v2/notifications/letter (precompiled
letters: a base64 PDF), POST /v2/notifications/email, GET /v2/notifications/{id} and
GET /v2/notifications?reference=... — after checking the client's JWT: HS256, signed with the test
key's secret, `iss` the service id, `iat` within 30 seconds. Like Notify, it does not refuse a
reference it has seen: counting what arrives per reference is how the tests prove nothing is sent twice.

`fail_next(status, times)` answers the next sends with that status (500, 400...) without keeping them;
`accept_then_fail(status)` keeps the next send but answers with an error (the send reached Notify, the
answer did not); `hang_next(seconds)` keeps it and answers too late (a time-out at the client).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt

SERVICE_ID = "26785a09-ab16-4eb0-8407-a37497a57506"
SECRET = "3d844edf-8d35-48ac-975b-e847b4f122b0"
API_KEY = f"carepath_test-{SERVICE_ID}-{SECRET}"
EMAIL_TEMPLATE = "f33517ff-2a88-4f6e-b855-c550268ce08a"


class FakeNotify:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notifications: dict[str, dict[str, Any]] = {}  # id -> what was received
        self.requests: list[dict[str, Any]] = []  # every request: method, path, reference, answered status
        self.plan: list[tuple[str, Any]] = []  # what to do with the next sends
        self.auth_failures = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -------------------------------------------------------------- control
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeNotify:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, status: int, times: int = 1, message: str = "Internal server error") -> None:
        self.plan.extend([("fail", (status, message))] * times)

    def accept_then_fail(self, status: int = 500) -> None:
        self.plan.append(("accept_then_fail", status))

    def hang_next(self, seconds: float) -> None:
        self.plan.append(("hang", seconds))

    def set_status(self, notification_id: str, status: str) -> None:
        self.notifications[notification_id]["status"] = status

    def sends(self, reference: str) -> list[dict[str, Any]]:
        """The sends Notify kept for this reference (more than one: the letter went twice)."""
        return [n for n in self.notifications.values() if n["reference"] == reference]

    def attempts(self, reference: str) -> int:
        return sum(1 for r in self.requests if r["method"] == "POST" and r.get("reference") == reference)

    # -------------------------------------------------------------- the server
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a time-out)
                    pass

            def _error(self, status: int, error: str, message: str) -> None:
                self._answer(status, {"status_code": status, "errors": [{"error": error, "message": message}]})

            def _authorised(self) -> bool:
                header = self.headers.get("Authorization", "")
                try:
                    token = header.removeprefix("Bearer ")
                    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["iss", "iat"]})
                    ok = claims["iss"] == SERVICE_ID and abs(time.time() - claims["iat"]) <= 30
                except jwt.PyJWTError:
                    ok = False
                if not ok:
                    fake.auth_failures += 1
                    self._error(403, "AuthError", "Invalid token: signature, api token not found")
                return ok

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                url = urlparse(self.path)
                fake.requests.append({"method": "GET", "path": url.path})
                if url.path == "/v2/notifications":
                    ref = parse_qs(url.query).get("reference", [None])[0]
                    found = [_public(n) for n in fake.notifications.values() if ref is None or n["reference"] == ref]
                    return self._answer(200, {"notifications": found, "links": {}})
                nid = url.path.rsplit("/", 1)[-1]
                if url.path.startswith("/v2/notifications/") and nid in fake.notifications:
                    return self._answer(200, _public(fake.notifications[nid]))
                return self._error(404, "NoResultFound", "No result found")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self._authorised():
                    return
                path = urlparse(self.path).path
                record = {"method": "POST", "path": path, "reference": body.get("reference")}
                with fake.lock:
                    fake.requests.append(record)
                    action = fake.plan.pop(0) if fake.plan else ("ok", None)
                if action[0] == "fail":
                    status, message = action[1]
                    record["answered"] = status
                    return self._error(status, "BadRequestError" if status < 500 else "Exception", message)
                if path == "/v2/notifications/letter":
                    problem = _letter_problem(body)
                    kind = "letter"
                elif path == "/v2/notifications/email":
                    problem = _email_problem(body)
                    kind = "email"
                else:
                    return self._error(404, "NotFound", "Not found")
                if problem:
                    record["answered"] = 400
                    return self._error(400, "ValidationError", problem)
                nid = str(uuid.uuid4())
                with fake.lock:
                    fake.notifications[nid] = {"id": nid, "type": kind, "reference": body.get("reference"),
                                               "status": "accepted" if kind == "letter" else "created",
                                               "body": body, "postage": body.get("postage")}
                if action[0] == "hang":
                    time.sleep(action[1])
                if action[0] == "accept_then_fail":
                    record["answered"] = action[1]
                    return self._error(action[1], "Exception", "Internal server error")
                record["answered"] = 201
                self._answer(201, {"id": nid, "reference": body.get("reference"), "postage": body.get("postage"),
                                   "content": {}, "uri": f"{fake.url}/v2/notifications/{nid}"})

        return Handler


def _public(n: dict[str, Any]) -> dict[str, Any]:
    return {"id": n["id"], "reference": n["reference"], "status": n["status"], "type": n["type"]}


def _letter_problem(body: dict[str, Any]) -> str | None:
    if not body.get("reference"):
        return "reference is a required property"
    try:
        pdf = base64.b64decode(body.get("content") or "", validate=True)
    except ValueError:
        return "content is not a base64 encoded string"
    if not pdf.startswith(b"%PDF-"):
        return "Letter content is not a valid PDF"
    if body.get("postage") not in (None, "first", "second", "economy"):
        return "postage invalid. It must be first, second or economy."
    return None


def _email_problem(body: dict[str, Any]) -> str | None:
    address = str(body.get("email_address") or "")
    if "@" not in address or "." not in address.split("@")[-1]:
        return "email_address Not a valid email address"
    if not body.get("template_id"):
        return "template_id is a required property"
    return None
