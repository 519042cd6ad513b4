"""Building a SQLAlchemy engine with settings fit for short CLI calls and long workers."""

from __future__ import annotations

import time

import sqlalchemy as sa


def make_engine(url: str, *, connect_timeout_s: int = 5, pool_size: int = 4) -> sa.Engine:
    return sa.create_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": connect_timeout_s},
        hide_parameters=True,  # bound values stay out of error messages and logs
    )


def drop_database(admin: sa.Engine, name: str, *, timeout_s: float = 30.0) -> None:
    """Drop database ``name``, ending its sessions first (``WITH (FORCE)``).

    An autovacuum worker may be busy in a fresh database; it has no role, so a role that is not
    a superuser cannot end it and PostgreSQL refuses the drop (SQLSTATE 42501). The worker is done
    within moments: the drop is tried again until ``timeout_s`` has passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except sa.exc.ProgrammingError as exc:
            code = getattr(exc.orig, "pgcode", None)
            if code != "42501" or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
