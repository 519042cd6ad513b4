"""The flags' version a ramp's pending move was decided on: its flag change is written only
while the flags are still there (an operator's change meanwhile wins).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ramps", sa.Column("flag_version", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("ramps", "flag_version")
