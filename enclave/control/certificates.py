"""Signed deletion certificates (SATRE 1.4.04, 3.1.10): canonical bodies, the enclave's
Ed25519 certificate signing key, and offline verification.

A certificate's ``body`` is canonical JSON (the audit log's serialisation: sorted keys, no
whitespace) and its signature covers exactly those bytes, so anyone holding the public key
(``enclave admin certificate-public-key``) can check a certificate without the database.
The signing key lives at ``<data_dir>/keys/certificate-signing.pem`` (0600), created on
first use; its ``key_id`` is the first 16 hex digits of the sha256 of the raw public key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from enclave.control.audit import canonical_json

SIGNING_KEY_FILE = "certificate-signing.pem"
FORMAT = "enclave-deletion-certificate/1"
KEY_MODE = 0o600


class CertificateKeyError(Exception):
    """The signing key or a public key cannot be read, or is not an Ed25519 key."""


@dataclass(frozen=True)
class SignedBody:
    """A canonical body, its base64 Ed25519 signature and the signing key's id."""

    body: str
    signature: str
    key_id: str


def signing_key_path(data_dir: Path) -> Path:
    """``<data_dir>/keys/certificate-signing.pem``."""
    return data_dir / "keys" / SIGNING_KEY_FILE


def key_id(public_key: Ed25519PublicKey) -> str:
    """sha256 of the raw 32-byte public key, first 16 hex digits."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    """The enclave's certificate signing key, created (0600) if there is none yet.

    Raises CertificateKeyError if the file is not an Ed25519 private key or is readable by
    anyone but its owner (a key others could read can no longer prove anything).
    """
    path = signing_key_path(data_dir)
    if not path.exists():
        _create(path)
    return _load_private(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        # link, not rename: never replaces a key another process created meanwhile
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _load_private(path: Path) -> Ed25519PrivateKey:
    if path.stat().st_mode & 0o077:
        raise CertificateKeyError(f"{path} must be readable by its owner only (chmod 600)")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as error:
        raise CertificateKeyError(f"{path} is not a PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CertificateKeyError(f"{path} is not an Ed25519 key")
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo), for export."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM; CertificateKeyError otherwise."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise CertificateKeyError(f"not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CertificateKeyError("not an Ed25519 public key")
    return key


def sign_body(private_key: Ed25519PrivateKey, fields: dict[str, Any]) -> SignedBody:
    """Serialise ``fields`` canonically (with the format and key id inside) and sign it."""
    ident = key_id(private_key.public_key())
    body = canonical_json({**fields, "format": FORMAT, "key_id": ident})
    signature = private_key.sign(body.encode("utf-8"))
    return SignedBody(body, base64.b64encode(signature).decode("ascii"), ident)


def signature_valid(public_key: Ed25519PublicKey, body: str, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s signature of exactly ``body``."""
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
        public_key.verify(raw, body.encode("utf-8"))
    except (InvalidSignature, binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return True


def file_digest(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
