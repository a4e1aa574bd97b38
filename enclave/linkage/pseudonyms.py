"""Per-project pseudonyms (pure): ``pseudo_p = base32(HMAC-SHA256(K_p, "person:" + id))``.

``K_p = HKDF-SHA256(IKM = K_master, salt = project salt, info = "enclave/project/<p>/v<ver>")``
(RFC 5869). The salt is 32 random bytes kept in the project's key file, so the master key
alone cannot re-derive ``K_p``: destroying the key file when the project closes makes its
pseudonyms impossible to recompute, and so impossible to map to anyone, or to any other
project's pseudonyms (crypto-shredding). Pseudonyms are 26 base32 characters (130 bits).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

HASH_LENGTH = 32
PSEUDONYM_LENGTH = 26
MIN_KEY_BYTES = 32


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int = HASH_LENGTH) -> bytes:
    """RFC 5869 HKDF with SHA-256: extract with ``salt``, then expand to ``length`` bytes.

    Raises:
        ValueError: ``length`` outside 1..8160 (255 blocks of 32 bytes).
    """
    if not 0 < length <= 255 * HASH_LENGTH:
        raise ValueError("HKDF output length must be between 1 and 8160 bytes")
    prk = hmac.new(salt or b"\0" * HASH_LENGTH, ikm, hashlib.sha256).digest()
    okm, block = b"", b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def project_info(project: str, version: int) -> bytes:
    """The HKDF ``info`` that binds a key to one project and key version."""
    return f"enclave/project/{project}/v{version}".encode()


def project_key(master_key: bytes, project: str, *, salt: bytes, version: int = 1) -> bytes:
    """``K_p`` for ``project``.

    Raises:
        ValueError: a master key or salt shorter than 32 bytes, or a version below 1.
    """
    if len(master_key) < MIN_KEY_BYTES or len(salt) < MIN_KEY_BYTES:
        raise ValueError("the master key and the project salt must be at least 32 bytes")
    if version < 1:
        raise ValueError("key versions start at 1")
    return hkdf_sha256(master_key, salt=salt, info=project_info(project, version))


def pseudonym(key: bytes, person_id: str) -> str:
    """The project's pseudonym of ``person_id`` (26 upper-case base32 characters)."""
    mac = hmac.new(key, b"person:" + person_id.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode("ascii")[:PSEUDONYM_LENGTH]


def pseudonyms(key: bytes, person_ids: Iterable[str]) -> list[str]:
    """``pseudonym`` of each id, in order."""
    return [pseudonym(key, person_id) for person_id in person_ids]
