"""A lean closed-loop request/reply load generator speaking the NATS text protocol directly.

pgbench drives PostgreSQL from C; driving the registry through nats-py's request() costs the
load generator tens of microseconds per request on the same two cores the service runs on. This
keeps the generator's share small so that the figure is about the service: each reply (MSG or
HMSG on a private inbox) immediately sends the next request (PUB with that inbox as reply).
"""

from __future__ import annotations

import asyncio
import json
import random
import time


class _Client(asyncio.Protocol):
    def __init__(self, subject: str, payloads: list[bytes], in_flight: int, deadline: float, seed: int) -> None:
        self.subject = subject.encode()
        self.payloads = payloads
        self.in_flight = in_flight
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.buffer = bytearray()
        self.started: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self.errors = 0
        self.next_id = 0
        self.ready = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.connected = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _send_request(self) -> None:
        if time.perf_counter() >= self.deadline:
            if not self.started and not self.done.done():
                self.done.set_result(None)
            return
        token = str(self.next_id).encode()
        self.next_id += 1
        payload = self.payloads[self.rng.randrange(len(self.payloads))]
        self.started[token] = time.perf_counter()
        self.transport.write(b"PUB %s _INBOX.bench.%s %d\r\n%s\r\n" % (self.subject, token, len(payload), payload))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[:end])
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                parts = line.split()
                size = int(parts[-1])
                header_size = int(parts[-2]) if line.startswith(b"HMSG ") else 0
                if len(self.buffer) < end + 2 + size + 2:
                    return
                body = bytes(self.buffer[end + 2 + header_size:end + 2 + size])
                del self.buffer[:end + 2 + size + 2]
                token = parts[1].rsplit(b".", 1)[1]
                started = self.started.pop(token, None)
                if started is None:
                    continue
                if header_size or b'"found":true' not in body:
                    self.errors += 1
                else:
                    self.latencies.append(time.perf_counter() - started)
                self._send_request()
                continue
            del self.buffer[:end + 2]
            if line.startswith(b"INFO ") and not self.connected:
                self.connected = True
                connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                           "name": "bench-registry-load", "lang": "python-raw", "version": "0"}
                self.transport.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB _INBOX.bench.* 1\r\nPING\r\n")
            elif line == b"PONG" and not self.ready.done():
                self.ready.set_result(None)
            elif line == b"PING":
                self.transport.write(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(line.decode()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def run(host: str, port: int, subject: str, payloads: list[bytes], seconds: float,
              in_flight: int, seed: int = 1) -> tuple[list[float], int]:
    """Keep `in_flight` requests outstanding for `seconds`; returns (latencies of good replies, errors)."""
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + seconds
    transport, client = await loop.create_connection(
        lambda: _Client(subject, payloads, in_flight, deadline, seed), host, port)
    try:
        await asyncio.wait_for(client.ready, 10)
        client.deadline = time.perf_counter() + seconds
        for _ in range(in_flight):
            client._send_request()
        try:
            await asyncio.wait_for(client.done, seconds + 10)
        except asyncio.TimeoutError:
            client.errors += len(client.started)  # unanswered requests
        return client.latencies, client.errors
    finally:
        transport.close()
