"""Alembic migrations of the control-plane schema (run through ``enclave.control.db``)."""
