"""Per-project pseudonyms: HKDF against RFC 5869's vectors, the pseudonym's shape, and that
projects, salts and key versions never share pseudonyms."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from enclave.linkage.pseudonyms import (
    PSEUDONYM_LENGTH,
    hkdf_sha256,
    project_info,
    project_key,
    pseudonym,
    pseudonyms,
)

MASTER = bytes(range(32))
SALT_A = b"a" * 32
SALT_B = b"b" * 32


def test_hkdf_rfc5869_case_1() -> None:
    okm = hkdf_sha256(
        bytes.fromhex("0b" * 22),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_rfc5869_case_3_empty_salt_and_info() -> None:
    okm = hkdf_sha256(bytes.fromhex("0b" * 22), salt=b"", info=b"", length=42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_hkdf_refuses_impossible_lengths() -> None:
    with pytest.raises(ValueError, match="between 1 and 8160"):
        hkdf_sha256(b"k", salt=b"s", info=b"", length=255 * 32 + 1)


def test_pseudonym_is_base32_of_the_hmac_of_person_colon_id() -> None:
    key = project_key(MASTER, "study", salt=SALT_A)
    expected = base64.b32encode(hmac.new(key, b"person:p-1", hashlib.sha256).digest())
    value = pseudonym(key, "p-1")
    assert value == expected.decode()[:PSEUDONYM_LENGTH]
    assert len(value) == 26 and set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert pseudonyms(key, ["p-1", "p-2"]) == [value, pseudonym(key, "p-2")]


def test_key_binds_project_salt_and_version() -> None:
    base = project_key(MASTER, "study", salt=SALT_A)
    assert project_key(MASTER, "study", salt=SALT_A) == base  # deterministic
    others = {
        project_key(MASTER, "other", salt=SALT_A),
        project_key(MASTER, "study", salt=SALT_B),
        project_key(MASTER, "study", salt=SALT_A, version=2),
        project_key(bytes(reversed(MASTER)), "study", salt=SALT_A),
    }
    assert base not in others and len(others) == 4
    assert project_info("study", 2) == b"enclave/project/study/v2"


def test_two_projects_share_no_pseudonym() -> None:
    ids = [f"person-{i}" for i in range(5000)]
    a = set(pseudonyms(project_key(MASTER, "a", salt=SALT_A), ids))
    b = set(pseudonyms(project_key(MASTER, "b", salt=SALT_B), ids))
    assert len(a) == len(b) == 5000
    assert not a & b


@pytest.mark.parametrize("master,salt", [(b"short", SALT_A), (MASTER, b"short")])
def test_short_keys_are_refused(master: bytes, salt: bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        project_key(master, "study", salt=salt)


def test_versions_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        project_key(MASTER, "study", salt=SALT_A, version=0)
