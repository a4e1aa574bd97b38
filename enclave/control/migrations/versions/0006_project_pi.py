"""A project's principal investigator (SATRE 1.4.01-02): ``projects.pi_id``, nullable, a
person; changing it (or a dataset's custodian) is flagged for an admin's review.

SQLite: Alembic cannot add a foreign key there, but SQLite accepts a new column with an
inline REFERENCES clause. It cannot drop that column again, so the downgrade rebuilds the
table without it (see ``_sqlite_downgrade``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FK = "fk_projects_pi_id_people"
COLUMN = f"pi_id INTEGER CONSTRAINT {FK} REFERENCES people (id)"
ASIDE = "_projects_0006"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():
        op.execute(sa.text(f"ALTER TABLE projects ADD COLUMN {COLUMN}"))
        return
    op.add_column("projects", sa.Column("pi_id", sa.Integer(), nullable=True))
    op.create_foreign_key(FK, "projects", "people", ["pi_id"], ["id"])


def downgrade() -> None:
    if _sqlite():
        _sqlite_downgrade()
        return
    op.drop_constraint(FK, "projects", type_="foreignkey")
    op.drop_column("projects", "pi_id")


def _sqlite_downgrade() -> None:
    """Copy the rows aside, drop ``projects``, create it again from its own stored
    definition less the column, and copy the rows back, with foreign keys checked at commit.
    (Alembic's batch copy fills the new table before dropping the old one, so the rows of
    other tables that lose their project in the drop never find it again: SQLite counts a
    deferred violation as mended only when the referenced row is inserted afterwards.)"""
    bind = op.get_bind()
    create = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'projects'"
    ).scalar_one()
    stripped = create.replace(f" {COLUMN},", "", 1)
    if stripped == create:
        raise RuntimeError("projects.pi_id is not as migration 0006 added it; not downgrading")
    columns = ", ".join(
        row[1] for row in bind.exec_driver_sql("PRAGMA table_info(projects)") if row[1] != "pi_id"
    )
    op.execute(sa.text("PRAGMA defer_foreign_keys = ON"))  # until this transaction commits
    op.execute(sa.text(f"CREATE TABLE {ASIDE} AS SELECT {columns} FROM projects"))
    op.execute(sa.text("DROP TABLE projects"))
    op.execute(sa.text(stripped))
    op.execute(sa.text(f"INSERT INTO projects ({columns}) SELECT {columns} FROM {ASIDE}"))
    op.execute(sa.text(f"DROP TABLE {ASIDE}"))
    op.execute(sa.text("CREATE INDEX ix_projects_state ON projects (state)"))
