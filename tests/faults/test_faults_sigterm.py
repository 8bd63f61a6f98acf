"""SIGTERM while requests are in flight: each of them is answered, then ``ipt serve`` exits with code 0."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from tests.faults.conftest import make_clinic
from tests.support.live import live_process

IN_FLIGHT = 20


def _wait_until_read(base: str, connections: int, timeout: float = 10) -> None:
    """Wait until the server has accepted ``connections`` connections and read all that was sent on them.

    Only then is every request in flight: a connection still in the listen queue when SIGTERM
    arrives is one the server never took, and closing the listening socket resets it. Read from
    /proc/net/tcp: the accept queue of the listening socket and the unread bytes of each connection.
    """
    port = f"{int(base.rsplit(':', 1)[1]):04X}"
    deadline = time.monotonic() + timeout
    while True:
        listening, established, unread = 0, 0, 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].split(":")[1] != port:
                continue
            queued = int(fields[4].split(":")[1], 16)
            if fields[3] == "0A":  # LISTEN: rx_queue is the accept backlog
                listening += queued
            elif fields[3] == "01":  # ESTABLISHED: rx_queue is bytes the server has not read
                established += 1
                unread += queued
        if listening == 0 and unread == 0 and established >= connections:
            return
        assert time.monotonic() < deadline, f"the server took {established} connections, {listening} wait, {unread} B unread"
        time.sleep(0.05)


def test_sigterm_answers_every_request_in_flight_and_exits_0(cluster, served_from):
    clinic = make_clinic(cluster.url, 0)
    headers = {**clinic.world.clinician.headers, "Content-Type": "application/json"}
    sent_first_half = threading.Semaphore(0)
    finish = threading.Event()

    def slow_body(marker: str) -> Iterator[bytes]:
        # The request line, headers and half the body are at the server: the request is in flight
        # (its handler is waiting for the rest) when SIGTERM arrives; the rest follows after it.
        yield b'{"display_name": '
        sent_first_half.release()
        finish.wait(timeout=10)
        yield f'"{marker}"}}'.encode()

    def post(marker: str) -> tuple[int | None, str]:
        with httpx.Client(base_url=server.base, timeout=10) as http:
            try:
                response = http.post("/v1/patients", content=slow_body(marker), headers=headers)
            except httpx.HTTPError as exc:
                return None, type(exc).__name__
            return response.status_code, response.json().get("id", response.text)

    with live_process(served_from, clinic.secret_key) as server, ThreadPoolExecutor(IN_FLIGHT) as pool:
        markers = [f"Inflight {i}" for i in range(IN_FLIGHT)]
        futures = [pool.submit(post, marker) for marker in markers]
        for _ in range(IN_FLIGHT):
            assert sent_first_half.acquire(timeout=10), "a request did not start"
        _wait_until_read(server.base, IN_FLIGHT)
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the server is shutting down while every request waits for its body
        assert server.process.poll() is None, "the server exited with requests in flight"
        finish.set()
        answers = [future.result(timeout=15) for future in futures]
        try:
            code = server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit within 5 s of SIGTERM\n{server.stderr()}") from None
        log = server.stderr()

    assert [status for status, _ in answers] == [201] * IN_FLIGHT, answers
    assert code == 0, f"ipt serve exited with {code} on SIGTERM\n{log}"
    with psycopg.connect(cluster.url) as conn:
        stored = conn.execute("SELECT count(*) FROM patient WHERE id = ANY(%s)", ([i for _, i in answers],)).fetchone()
    assert stored[0] == IN_FLIGHT
