"""Soak: 100,000 one-sentence requests against a real server; its memory must not grow.

The client speaks HTTP/1.1 with pipelining over a few keep-alive connections: a Python
client like httpx costs as much CPU per request as the server (FACTS.md), and this test
measures memory, not speed, on two shared cores."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from service_helpers import ServerProcess, rss_bytes

TOTAL = 100_000
WARM_UP = 10_000
CONNECTIONS = 16
WINDOW = 8  # requests in flight per connection
GROWTH_BOUND = 50 * 2**20  # bytes of RSS growth allowed after the warm-up

WORDS = "the film was a very good fun boring dull story and the actor weak but funny".split()


def sentences(n: int) -> list[str]:
    return [" ".join(WORDS[(i * 7) % len(WORDS):][: 3 + i % 9] + [str(i)]) for i in range(n)]


def encode_requests(texts: list[str]) -> list[bytes]:
    out = []
    for text in texts:
        body = json.dumps({"text": text}).encode()
        head = (
            "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


async def _connection(port: int, requests: list[bytes], statuses: Counter[int],
                      problems: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for start in range(0, len(requests), WINDOW):
            window = requests[start : start + WINDOW]
            writer.write(b"".join(window))  # pipelined: the server answers in order
            await writer.drain()
            for _ in window:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=120)
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = next(int(line.split(":", 1)[1]) for line in lines
                              if line.lower().startswith("content-length:"))
                body = await asyncio.wait_for(reader.readexactly(length), timeout=120)
                statuses[status] += 1
                if status != 200 or b'"label"' not in body:
                    problems.append(f"{status} {body[:200]!r}")
    finally:
        writer.close()
        await writer.wait_closed()


def send(port: int, requests: list[bytes]) -> tuple[Counter[int], list[str]]:
    """Send every request, spread over CONNECTIONS pipelined keep-alive connections."""
    statuses: Counter[int] = Counter()
    problems: list[str] = []

    async def main() -> None:
        shares = [requests[i::CONNECTIONS] for i in range(CONNECTIONS)]
        await asyncio.gather(*(_connection(port, s, statuses, problems) for s in shares))

    asyncio.run(main())
    return statuses, problems


def test_soak_100k_requests_without_memory_growth(
    make_registry: Callable[..., Path], tmp_path: Path,
) -> None:
    requests = encode_requests(sentences(500))
    with ServerProcess(make_registry({"tiny": {"1": 100}}), tmp_path / "server.log") as server:
        start = time.monotonic()
        statuses, problems = send(server.port, (requests * (WARM_UP // len(requests) + 1))
                                  [:WARM_UP])
        before = rss_bytes(server.pid)
        samples = [before]
        rest = TOTAL - WARM_UP
        chunk = 10_000
        for done in range(0, rest, chunk):
            n = min(chunk, rest - done)
            more, more_problems = send(server.port, (requests * (n // len(requests) + 1))[:n])
            statuses.update(more)
            problems.extend(more_problems)
            samples.append(rss_bytes(server.pid))
        after = samples[-1]
        seconds = time.monotonic() - start
        print(f"soak: {sum(statuses.values())} requests in {seconds:.0f} s, RSS after warm-up "
              f"{before / 2**20:.1f} MiB, at the end {after / 2**20:.1f} MiB, "
              f"peak {max(samples) / 2**20:.1f} MiB")
        log = server.log()
    assert problems == [], problems[:5]
    assert statuses == Counter({200: TOTAL})
    assert after - before < GROWTH_BOUND, [s // 2**20 for s in samples]
    assert "Traceback" not in log
