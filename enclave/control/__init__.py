"""The control plane (layer 1): people, projects, datasets, grants, access decisions and the
hash-chained audit log, over SQLAlchemy with Alembic migrations.

Entry points: ``context.open_context(settings)`` for a ``Context``, then the functions of
``enclave.control.service.*``; ``db.upgrade`` creates the schema; ``audit.verify`` checks the
chain; ``hub.reconcile`` mirrors memberships to JupyterHub groups.
"""
