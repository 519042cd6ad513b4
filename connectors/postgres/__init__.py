"""PostgreSQL: engine, migrations and the repositories that read and write delaycast's tables."""

from connectors.postgres.engine import make_engine
from connectors.postgres.flag_audit import recent_flag_changes, record_flag_change
from connectors.postgres.migrate import current_revision, head_revision, upgrade

__all__ = [
    "current_revision",
    "head_revision",
    "make_engine",
    "recent_flag_changes",
    "record_flag_change",
    "upgrade",
]
