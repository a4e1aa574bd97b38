"""Local login with password and TOTP: a secure fresh session, the control plane's lockout,
no open redirect after login, and a logout recorded server-side."""

from __future__ import annotations

from tests.enclave.control.web.conftest import Web
from tests.output_checker.queue.factories import QueueWorld


def test_local_login_starts_a_secure_session_and_goes_on(web: Web, qw: QueueWorld) -> None:
    response = web.login(qw.checker_a, next="/requests?status=submitted")
    assert response.status_code == 303
    assert response.headers["Location"] == "/requests?status=submitted"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("queue_session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert qw.checker_a in web.page("/requests")


def test_a_failed_login_says_little_and_locks_out(web: Web, qw: QueueWorld) -> None:
    for _ in range(5):
        refused = web.login(qw.author, code="000000")
        assert refused.status_code == 401
        assert "invalid credentials" in refused.get_data(as_text=True)
    locked = web.login(qw.author)  # right password and code, but locked out now
    assert locked.status_code == 401
    assert web.client.get("/requests").status_code == 302


def test_no_open_redirect_after_login(web: Web, qw: QueueWorld) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = web.login(qw.author, next=target)
        assert response.headers["Location"] == "/requests", target
        web.post("/logout")


def test_logout_is_server_side(web: Web, qw: QueueWorld) -> None:
    web.login(qw.author)
    with web.client.session_transaction() as session:
        copied = dict(session)
    assert web.post("/logout").status_code == 303
    with web.client.session_transaction() as session:
        session.update(copied)  # an attacker replays the old cookie
    assert web.client.get("/requests").status_code == 302
