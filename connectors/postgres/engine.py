"""Building a SQLAlchemy engine with settings fit for short CLI calls and long workers."""

from __future__ import annotations

import sqlalchemy as sa


def make_engine(url: str, *, connect_timeout_s: int = 5, pool_size: int = 4) -> sa.Engine:
    return sa.create_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": connect_timeout_s},
        hide_parameters=True,  # bound values stay out of error messages and logs
    )
