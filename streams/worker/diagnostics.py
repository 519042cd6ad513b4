"""What a worker is waiting on, for an operator whose worker has stopped making progress.

``kill -USR2 <pid>`` makes a running worker log a report: the state of its Kafka consumer's flow
(stopped or running, paused partitions, records queued per agent) and where each of its asyncio
tasks is suspended. A worker that reads nothing while its lag grows shows there why.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("delaycast.diagnostics")

REPORT_SIGNAL = signal.SIGUSR2


def awaited_frames(coro: Any) -> list[str]:
    """Where a suspended coroutine waits: one ``file:line in function`` per coroutine along its
    chain of awaits, outermost first (a task's own stack shows only the outermost)."""
    lines: list[str] = []
    seen = 0
    while coro is not None and seen < 64:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        seen += 1
    return lines


def describe_tasks(tasks: Iterable[asyncio.Task[Any]], frames: int = 6) -> str:
    """Each task's name and the innermost ``frames`` places where it waits, sorted by name."""
    lines: list[str] = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", repr(coro))
        state = "done" if task.done() else "waiting"
        lines.append(f"task {task.get_name()} ({name}, {state})")
        lines += ["    " + line for line in awaited_frames(coro)[-frames:]]
    return "\n".join(lines)


def describe_consumer(app: Any) -> str:
    """The Faust consumer's flow, paused partitions and the records queued for each agent."""
    consumer = app.consumer
    parts = [
        f"consumer flow {'running' if consumer.flow_active else 'STOPPED'}",
        f"app flow control {'running' if app.flow_control.is_active() else 'SUSPENDED'}",
        f"generation {app.consumer_generation_id}",
    ]
    for label, attribute in (
        ("paused", "_paused_partitions"),
        ("fetched (active)", "_active_partitions"),
        ("held back for a full queue", "_buffered_partitions"),
    ):
        tps = getattr(consumer, attribute, None) or ()
        parts.append(
            f"{label}: " + (", ".join(sorted(f"{t.topic}[{t.partition}]" for t in tps)) or "none")
        )
    for channel in list(app.topics):  # the channels the consumer delivers to, one per agent
        names = "+".join(sorted(channel.topics)) if getattr(channel, "topics", None) else "?"
        queue = channel.queue
        waiting = len(getattr(queue, "_pending_pressure_drop_callbacks", ()))
        parts.append(
            f"queued for {names}: {queue.qsize()} (maxsize {queue.maxsize}, "
            f"{waiting} partition(s) waiting for it to drain)"
        )
    parts.append(f"producer buffer: {app.producer.buffer.size} table write(s) unsent")
    parts.append("offsets: " + (describe_offsets(consumer) or "none assigned"))
    return "; ".join(parts)


def describe_offsets(consumer: Any) -> str:
    """Per assigned partition: committed, last read and highwater offsets, and how many records
    are delivered but not acknowledged. A partition read to its end whose committed offset
    stays behind, with nothing in flight, holds records that no agent will see until a seek."""
    try:
        assigned = sorted(consumer.assignment())
    except Exception:  # not started, or between two rebalances
        return ""
    in_flight: dict[Any, int] = {}
    for message in list(getattr(consumer, "_unacked_messages", ())):
        if not message.acked:
            in_flight[message.tp] = in_flight.get(message.tp, 0) + 1
    rows = []
    for tp in assigned:
        committed = consumer._committed_offset.get(tp)
        read = consumer._read_offset.get(tp)
        rows.append(
            f"{tp.topic}[{tp.partition}] committed {committed} read {read} "
            f"highwater {consumer.highwater(tp)} in flight {in_flight.get(tp, 0)}"
        )
    return ", ".join(rows)


def report(app: Any) -> str:
    return (
        f"{describe_consumer(app)}\n{describe_tasks(asyncio.all_tasks(asyncio.get_running_loop()))}"
    )


def install(app: Any, emit: Callable[[str], None] | None = None) -> None:
    """Log :func:`report` whenever the process receives ``REPORT_SIGNAL``."""
    loop = asyncio.get_running_loop()
    say = emit or (lambda text: log.warning("[Worker] state on SIGUSR2:\n%s", text))

    def on_signal() -> None:
        try:
            say(report(app))
        except Exception:  # a report must never take the worker down
            log.exception("[Worker] could not describe the worker's state")

    loop.add_signal_handler(REPORT_SIGNAL, on_signal)
