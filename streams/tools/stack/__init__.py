"""The local stack: Kafka (KRaft), Redis and PostgreSQL on loopback, started by delaycast itself.

``StackManager`` is what the ``delaycast stack`` commands and the integration tests use::

    manager = StackManager(Path(".delaycast"))
    result = manager.up()              # idempotent; result.endpoints has the three URLs
    for status in manager.status():
        print(status.line())
    manager.down()                     # stops only what up started

Linux only: processes are recognised through /proc.
"""

from streams.tools.stack.config import External, Ports
from streams.tools.stack.endpoints import Endpoints, redact_url
from streams.tools.stack.errors import StackError
from streams.tools.stack.install import install
from streams.tools.stack.kafka_jars import default_libs_dir
from streams.tools.stack.manager import StackManager
from streams.tools.stack.results import ServerStatus, UpResult

__all__ = [
    "Endpoints",
    "External",
    "Ports",
    "ServerStatus",
    "StackError",
    "StackManager",
    "UpResult",
    "default_libs_dir",
    "install",
    "redact_url",
]
