"""The linkage unit issues a project its mapping ``record key -> pseudonym``, and nothing else.

This is the only door between the person index and the content side: it takes the record
keys a project's extract needs, looks up their persons inside the linkage zone, and returns
each key's project pseudonym. Person ids never leave; every issue is logged (time, project,
key version, counts and a hash of the pseudonyms issued, never the pairs).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pandas as pd

from enclave.linkage.errors import LinkageError
from enclave.linkage.keys import derive_project_key, issue_project_key
from enclave.linkage.pseudonyms import pseudonyms
from enclave.linkage.zones import Zones

KEY = ["source", "record_key"]


def issue_mapping(
    zones: Zones,
    project: str,
    records: pd.DataFrame,
    *,
    master_key: bytes,
    now: datetime | None = None,
) -> pd.DataFrame:
    """``source``, ``record_key``, ``pseudonym`` for each of ``records`` (source,
    record_key) that the person index knows; unknown records are left out.

    The project's key file is created on first use. Raises LinkageError when there is no
    person index yet, KeyUnavailable for a missing or malformed master key.
    """
    if not zones.person_index.exists():
        raise LinkageError("no person index yet: run `enclave link run` first")
    index = pd.read_parquet(zones.person_index, columns=[*KEY, "person_id"])
    wanted = records[KEY].drop_duplicates()
    joined = wanted.merge(index, on=KEY, how="inner")
    record = issue_project_key(zones.keys, project)
    key = derive_project_key(master_key, record)
    persons = joined["person_id"].drop_duplicates()
    by_person = dict(zip(persons, pseudonyms(key, persons), strict=True))
    mapping = joined.assign(pseudonym=joined["person_id"].map(by_person)).drop(columns="person_id")
    issued = sorted(by_person.values())
    entry = {
        "at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        "project": project,
        "key_version": record.version,
        "records": len(mapping),
        "persons": len(issued),
        "pseudonyms_sha256": hashlib.sha256("\n".join(issued).encode()).hexdigest(),
    }
    zones.linkage.mkdir(parents=True, exist_ok=True)
    with zones.mapping_log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    return mapping.reset_index(drop=True)
