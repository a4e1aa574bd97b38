"""Revision files, applied in order by ``enclave.control.db.upgrade``."""
