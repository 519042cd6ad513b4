"""PostgreSQL table shapes (SQLAlchemy Core). Migrations in connectors/postgres/migrations."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

flag_changes = Table(
    "flag_changes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("old_ml_enabled", Boolean, nullable=False),
    Column("old_ml_traffic_percentage", Float, nullable=False),
    Column("new_ml_enabled", Boolean, nullable=False),
    Column("new_ml_traffic_percentage", Float, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("salt", String(64), nullable=False),
    Index("ix_flag_changes_changed_at", "changed_at"),
)
