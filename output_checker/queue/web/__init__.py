"""The review queue's web faces: ``create_app(settings, *, context=None, testing=False,
options=None)``.

Blueprints: ``auth`` (local login with password and TOTP, or JupyterHub OAuth with PKCE;
logout), ``requests`` (the queue overview, request and file pages, diffs, activity, released
downloads), ``author`` (the researcher's actions), ``reviews`` (the checkers' actions and the
comments of both sides) and ``api`` (JSON under ``/api/v1`` with bearer tokens, described at
``/api/v1/openapi.json``).
"""

from output_checker.queue.web.app import create_app

__all__ = ["create_app"]
