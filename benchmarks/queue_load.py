"""Concurrent HTTP clients for ``bench_queue.py``: threads, each with its own keep-alive
connection (``http.client``), taking numbered jobs from a shared counter until a total is
reached, and timing every call from sending the request to reading the whole response."""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Errors that mean a kept-alive connection was closed by the server while idle: a GET is
# sent again on a new connection (as browsers and HTTP libraries do), anything else fails.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class Failed(Exception):
    """A call answered with an unexpected status (or not at all)."""


@dataclass
class Client:
    """One simulated client: a connection and the times of its calls, by label."""

    host: str
    port: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    connection: http.client.HTTPConnection | None = None
    last: http.client.HTTPResponse | None = None  # the last response (its headers)

    def _send(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.connection.request(method, path, body=body, headers=dict(headers))
        response = self.connection.getresponse()
        data = response.read()
        self.last = response
        if response.will_close:
            self.close()
        return response.status, data, response

    def call(
        self,
        label: str,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        expect: int = 200,
    ) -> bytes:
        """Send one request and return the response body; Failed unless status ``expect``."""
        start = time.perf_counter()
        try:
            status, data, _ = self._send(method, path, body, headers or {})
        except STALE:
            self.close()
            if method != "GET":
                raise
            start = time.perf_counter()
            status, data, _ = self._send(method, path, body, headers or {})
        self.samples.setdefault(label, []).append(time.perf_counter() - start)
        if status != expect:
            raise Failed(f"{label}: HTTP {status}: {data[:200]!r}")
        return data

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@dataclass(frozen=True)
class Outcome:
    """What a run measured: call times by label, failed jobs, jobs done and wall time."""

    samples: dict[str, list[float]]
    errors: list[str]
    done: int
    elapsed: float

    def stats(self, label: str) -> dict[str, float]:
        """Count, throughput over the run and percentiles (ms) of the calls labelled so."""
        times = np.array(self.samples.get(label, [])) * 1000
        if times.size == 0:
            return {"n": 0}
        p50, p95, p99 = np.percentile(times, [50, 95, 99])
        return {
            "n": int(times.size),
            "rate": times.size / self.elapsed,
            "p50": float(p50),
            "p95": float(p95),
            "p99": float(p99),
            "mean": float(times.mean()),
            "max": float(times.max()),
        }


def run(
    host: str,
    port: int,
    *,
    clients: int,
    total: int,
    job: Callable[[Client, int, int], None],
    think: float = 0.0,
    seed: int = 0,
) -> Outcome:
    """``clients`` threads run ``job(client, client_number, job_number)`` for job numbers
    0..total-1; the clock starts when every thread is ready. With ``think`` = 0 each client
    sends its next request as soon as the answer is read; otherwise it first waits a random
    time, exponential with mean ``think`` seconds (a person reading the page)."""
    counter = itertools.count()
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    errors: list[str] = []
    done = [0]
    pool = [Client(host, port) for _ in range(clients)]

    def work(number: int) -> None:
        client = pool[number]
        pause = random.Random(seed * 1_000 + number)
        ready.wait()
        while True:
            if think:
                time.sleep(pause.expovariate(1 / think))
            with lock:
                i = next(counter)
            if i >= total:
                break
            try:
                job(client, number, i)
                with lock:
                    done[0] += 1
            except Exception as error:  # every failure is counted and reported, none hidden
                client.close()
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
        client.close()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    samples: dict[str, list[float]] = {}
    for client in pool:
        for label, times in client.samples.items():
            samples.setdefault(label, []).extend(times)
    return Outcome(samples, errors, done[0], elapsed)


def multipart(
    fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes]]
) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, data) in files.items():
        parts.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def json_body(value: Any) -> tuple[bytes, dict[str, str]]:
    """A JSON body and its Content-Type header."""
    return json.dumps(value).encode(), {"Content-Type": "application/json"}
