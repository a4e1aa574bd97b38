"""The control plane's web faces: ``create_app(settings, *, context=None, testing=False)``.

Blueprints: ``auth`` (login with password and TOTP, logout), ``admin`` (server-rendered
pages), ``register`` (the public transparency register, HTML, JSON and CSV) and ``api`` (JSON
with bearer tokens, described at ``/api/openapi.json``).
"""

from enclave.control.web.app import create_app

__all__ = ["create_app"]
