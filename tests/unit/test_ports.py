"""A fault test's server gets a port that nothing else on the machine can be handed while it is
down: below the range the system gives to outgoing connections and to binds on port 0."""

import socket

from streams.tools.stack.ports import ephemeral_ports, is_free, pick_stable_port


def test_a_stable_port_is_free_and_below_the_ephemeral_range():
    ephemeral = ephemeral_ports()
    assert ephemeral.start > 1024 and ephemeral.stop > ephemeral.start
    for seed in (0, 12_345, 2**70 + 3):
        port = pick_stable_port(seed)
        assert 10_000 <= port < ephemeral.start and is_free(port)


def test_a_stable_port_skips_a_taken_one_and_those_to_avoid():
    first = pick_stable_port(777)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first))
        taken.listen()
        second = pick_stable_port(777)
        assert second != first and second < ephemeral_ports().start
    assert pick_stable_port(777, avoid={first}) != first


def test_ports_the_system_hands_out_are_in_the_ephemeral_range():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert sock.getsockname()[1] in ephemeral_ports()
