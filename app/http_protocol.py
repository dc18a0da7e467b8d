"""uvicorn's httptools protocol with the limits a server facing the internet needs.

uvicorn bounds neither the size of a request's head nor the time a client may take to
send a request: one 10 MB header was answered 200, eight 50 MB ones left 600 MB held,
and 1,100 connections that sent half a body stayed open past every time-out. The limits
belong where the bytes arrive, before the application sees a request:

- **Head size**: the request line and headers may take at most `max_header_bytes`; past
  it the client gets 431 and the connection is closed. The parser buffers a header value
  whole before handing it on, so a head still arriving is bounded by the bytes received,
  and a head that arrived within one read by the size of what was parsed.
- **Read time**: from its first byte (or from the connection's opening), a request must
  arrive whole, head and body, within `read_timeout_s`; else 408 and the connection is
  closed. A connection idle between requests is uvicorn's keep-alive time-out's.

- **Overload**: an inference request (POST /predict, or a V2 `.../infer`) that finds the
  admission's limit of requests in flight is answered 503 from here, before an ASGI task
  exists or its body is read: a refusal costs a few microseconds of the event loop, which
  the accepted requests need. (Behind a pipelined request still being answered it goes on
  to the application, whose admission middleware refuses it in order.) The connection is
  then not read again for the admission's `refused_pause_s`: a client that re-sends the
  moment it is refused (load generators, naive retry loops) would otherwise turn the fast
  refusal into a ping-pong of thousands of refusals a second that takes the CPU the
  accepted requests need. Its next request waits in the socket, as its `Retry-After`
  asked.

`python -m app` serves with it; the limits come from `Settings`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .admission import Admission, is_inference_path
from .errors import error_answer, http_response_bytes, is_oip_path


def error_response(
    status: int, reason: str, type_: str, message: str, path: str = "",
) -> bytes:
    """A whole HTTP/1.1 error response, closing the connection, in the error shape of the
    API `path` belongs to (the service's own when the path is not known yet)."""
    status, answer = error_answer(path, status, type_, message)
    body = json.dumps(answer).encode()
    return http_response_bytes(status, reason, body, [(b"connection", b"close")])


def _path(url: bytes | None) -> str:
    """The path of a request target as received (no query string)."""
    return (url or b"").partition(b"?")[0].decode("latin-1")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection. The limits are class attributes, set by `guarded_protocol()`."""

    max_header_bytes: int = 32 * 1024
    read_timeout_s: float = 15.0
    admission: Admission | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # bytes received since the current head began
        self._reading_head = True  # between requests, or inside a request's head
        self._read_deadline: asyncio.TimerHandle | None = None
        self._refused = False  # an error was sent: parse nothing more on this connection
        self._shed = False  # this request was refused for overload: drop its body
        self._paced: asyncio.TimerHandle | None = None  # reading again after a refusal

    # ---- the read deadline ----

    def _arm_read_deadline(self) -> None:
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        self._refuse(
            408, "Request Timeout", "request_timeout",
            f"the request did not arrive whole within {self.read_timeout_s:g} s",
        )

    def _refuse(self, status: int, reason: str, type_: str, message: str) -> None:
        """Answer with an error and close. When an earlier request on this connection is
        still being answered, only close: a response now would come out of order."""
        self._refused = True
        if self.transport.is_closing():
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy or not self.cycle.response_started:
            path = _path(getattr(self, "url", None))
            self.transport.write(error_response(status, reason, type_, message, path))
        self.transport.close()

    # ---- uvicorn's hooks ----

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_deadline()  # a connection that never sends a byte is timed out too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        if self._paced is not None:
            self._paced.cancel()
            self._paced = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing, so that a read holding a whole head and body bytes is not
        # counted against the head (on_headers_complete measures that head itself).
        if self._reading_head and self._head_bytes > self.max_header_bytes:
            self._head_too_large()

    def _head_too_large(self) -> None:
        self._refuse(
            431, "Request Header Fields Too Large", "header_too_large",
            f"the request line and headers are larger than {self.max_header_bytes} bytes",
        )

    def on_message_begin(self) -> None:
        if not self._refused:
            super().on_message_begin()
            self._arm_read_deadline()

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._reading_head = False
        self._head_bytes = 0
        # Request line and header lines as sent, give or take the spaces around ": ".
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:
            self._head_too_large()  # the application never sees this request
            return
        # Admission is decided here for an inference request answered at once (no earlier request
        # on this connection still being answered: an answer now would come out of
        # order). A request admitted here is counted in flight at once, so that a burst
        # of heads parsed in one turn of the event loop cannot all pass the check before
        # their ASGI tasks start; the middleware then only counts it out.
        decide = self.admission is not None and self._is_inference() and self._answers_now()
        if decide and self.admission.full:
            self._shed_request()
            return
        super().on_headers_complete()
        if decide:
            self.admission.reserve(self.scope)

    def _is_inference(self) -> bool:
        return self.parser.get_method() == b"POST" and is_inference_path(_path(self.url))

    def _answers_now(self) -> bool:
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _shed_request(self) -> None:
        assert self.admission is not None
        started = time.perf_counter()
        keep_alive = self.parser.should_keep_alive()
        oip = is_oip_path(_path(self.url))
        self.transport.write(
            self.admission.http_response(keep_alive, self.server_state.default_headers, oip)
        )
        if not keep_alive:
            self.transport.close()
        self._shed = True  # its body, if any, is parsed and dropped
        self.admission.count_refusal(time.perf_counter() - started)

    def on_body(self, body: bytes) -> None:
        if not self._refused and not self._shed:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        if self._shed:
            self._shed = False
            self._pace_after_refusal()
        else:
            super().on_message_complete()
        self._reading_head = True
        self._disarm_read_deadline()

    def _pace_after_refusal(self) -> None:
        """Leave the refused connection unread for a while, then carry on as after any
        answer (keep-alive timer, the next pipelined request)."""
        pause = self.admission.refused_pause_s if self.admission is not None else 0.0
        if pause <= 0 or self.transport.is_closing():
            self.on_response_complete()
            return
        self.flow.pause_reading()
        self._paced = self.loop.call_later(pause, self._resume_after_refusal)

    def _resume_after_refusal(self) -> None:
        self._paced = None
        self.on_response_complete()  # resumes reading


def guarded_protocol(
    max_header_bytes: int, read_timeout_s: float, admission: Admission | None = None,
) -> type[HttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, with these limits."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "read_timeout_s": read_timeout_s,
         "admission": admission},
    )
