"""A gunicorn ``gthread`` worker that reads each whole request before a thread takes it, and serves ``/predict`` and
``/influence`` from pools of their own.

gunicorn's threaded worker hands a connection to a thread once its first bytes arrive; the thread then reads the
rest of the request with no deadline, so as many trickling clients as ``--threads`` took every thread (slow headers,
or a slow body on ``/webhook``). Here the worker's event loop reads every request itself, without blocking, into
memory: the header section (at most :data:`MAX_HEADER_BYTES`) and the body its ``Content-Length`` or chunked framing
announces (at most the app's ``MAX_CONTENT_LENGTH``). A thread gets the connection only when the whole request is
there, so a slow client holds a file descriptor, never a thread, and a client that has not sent its whole request
``read_timeout`` seconds after connecting is answered 408 and dropped. Answered in the event loop, without a thread:
431 (header section too large), 413 (a body over the limit, announced or chunked), 400 (framing the worker does not
take: ``Transfer-Encoding`` other than ``chunked`` alone, both framings, a bad length or chunk size) and 408.

Each connection serves one request (``keepalive = 0``, :func:`ml_backend.launch.gunicorn_options`): a kept-alive
connection's next request would be read by a thread again. The request line picks the pool: ``/predict`` the
prediction pool (``--threads`` threads), ``/influence`` the influence pool (:data:`INFLUENCE_THREADS`; an influence
query takes seconds of CPU; beyond :data:`INFLUENCE_QUEUE` queries waiting for it, 503 with ``Retry-After``),
everything else (webhooks, /health, jobs) the main pool. TLS (``certfile``) is left to
gunicorn's own reading: put TLS in the proxy in front (README, "The ML backend's security").
"""

from __future__ import annotations

import json
import re
import selectors
import socket
import time
from concurrent import futures
from dataclasses import dataclass, field
from functools import partial

from gunicorn import http
from gunicorn.workers.gthread import ThreadWorker

from hildif.errors import HildifError

PREDICT_PREFIX = b"/predict"
INFLUENCE_PREFIX = b"/influence"
INFLUENCE_THREADS = 2
INFLUENCE_QUEUE = 32  # /influence queries waiting for a thread at most; more are answered 503
MAX_HEADER_BYTES = 64 * 1024
DEFAULT_READ_TIMEOUT_S = 10.0
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
LINGER_S = 2.0
LINGER_BYTES = 8 * 1024 * 1024  # a refused large body is still arriving: read it away rather than reset the answer
_RECV_BYTES = 256 * 1024
_MAX_CHUNK_LINE = 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


class Refusal(HildifError):
    """A request the worker answers itself: ``status`` and a message naming what is at fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class IncomingRequest:
    """One request being read: the bytes so far and how far its framing is known. :meth:`feed` returns True once
    the whole request is there and raises :class:`Refusal` for a request the worker will not hand on."""

    max_body: int
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    body_start: int = -1  # offset after the header section; -1 = not complete yet
    length: int | None = None  # Content-Length, or None for a chunked body
    chunk_pos: int = 0  # chunked: where the next chunk-size line starts
    chunk_total: int = 0
    expect_continue: bool = False
    continued: bool = False  # the 100 Continue was sent

    def feed(self, data: bytes) -> bool:
        scanned = max(0, len(self.data) - 3)  # what was searched for the header's end already (no rescans)
        self.data += data
        if len(self.data) > MAX_HEADER_BYTES + 2 * self.max_body:  # chunk framing and trailers included
            raise Refusal(413, f"body: larger than {self.max_body} bytes")
        if self.body_start < 0:
            end = self.data.find(b"\r\n\r\n", scanned)
            if end < 0:
                if len(self.data) > MAX_HEADER_BYTES:
                    raise Refusal(431, f"header section: at most {MAX_HEADER_BYTES} bytes")
                return False
            if end + 4 > MAX_HEADER_BYTES:
                raise Refusal(431, f"header section: at most {MAX_HEADER_BYTES} bytes")
            self._frame(bytes(self.data[:end]))
            self.body_start = self.chunk_pos = end + 4
        return self._body_complete(len(data))

    def _frame(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        lengths, codings = [], []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                raise Refusal(400, "header section: obsolete line folding")
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings.append(value.lower())
            elif name == b"expect" and value.lower() == b"100-continue":
                self.expect_continue = True
        if codings:
            if lengths or codings != [b"chunked"]:
                raise Refusal(400, "Transfer-Encoding: only 'chunked' alone, without Content-Length")
            self.length = None
            return
        if len(set(lengths)) > 1 or any(not v.isdigit() or len(v) > 18 for v in lengths):
            raise Refusal(400, "Content-Length: one non-negative integer")
        self.length = int(lengths[0]) if lengths else 0
        if self.length > self.max_body:
            raise Refusal(413, f"body: larger than {self.max_body} bytes")

    def _body_complete(self, len_new: int) -> bool:
        if self.length is not None:
            return len(self.data) - self.body_start >= self.length
        data = self.data
        while True:  # chunked: walk the chunks that have arrived, from where the last call stopped
            eol = data.find(b"\r\n", self.chunk_pos)
            if eol < 0:
                if len(data) - self.chunk_pos > _MAX_CHUNK_LINE:
                    raise Refusal(400, "body: chunk size line too long")
                return False
            size_field = bytes(data[self.chunk_pos:eol]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_field):
                raise Refusal(400, "body: invalid chunk size")
            size = int(size_field, 16)
            if size == 0:  # last chunk, then trailer fields (at most MAX_HEADER_BYTES) up to an empty line
                scan_from = max(eol, len(data) - len_new - 3)  # trailer bytes of earlier calls were searched
                if data[eol + 2:eol + 4] == b"\r\n" or data.find(b"\r\n\r\n", scan_from) >= 0:
                    return True
                if len(data) - eol > MAX_HEADER_BYTES:
                    raise Refusal(431, f"trailer section: at most {MAX_HEADER_BYTES} bytes")
                return False
            self.chunk_total += size
            if self.chunk_total > self.max_body:
                raise Refusal(413, f"body: larger than {self.max_body} bytes")
            end = eol + 2 + size
            if len(data) < end + 2:
                return False
            if data[end:end + 2] != b"\r\n":
                raise Refusal(400, "body: chunk without its CRLF")
            self.chunk_pos = end + 2

    def head_without_expect(self) -> bytes:
        """The request as read, without an ``Expect: 100-continue`` field (it was answered while reading)."""
        if not self.expect_continue:
            return bytes(self.data)
        head = bytes(self.data[:self.body_start])
        kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"expect:")]
        return b"\r\n".join(kept) + bytes(self.data[self.body_start:])

    def target(self) -> bytes:
        parts = bytes(self.data[:self.data.find(b"\r\n")]).split(b" ", 2)
        return parts[1] if len(parts) > 1 else b""


def refusal_response(status: int, message: str) -> bytes:
    """The whole HTTP answer the worker sends itself (JSON ``{"error", "field"}``, as the app's errors are)."""
    body = json.dumps({"error": message, "field": message.split(":", 1)[0]}).encode()
    retry = "Retry-After: 5\r\n" if status == 503 else ""
    return (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{retry}Connection: close\r\n\r\n").encode() + body


def _close_socket(sock) -> None:
    try:
        sock.close()
    except OSError:
        pass


class SplitPoolWorker(ThreadWorker):
    def init_process(self) -> None:
        self.predict_pool = futures.ThreadPoolExecutor(max_workers=max(1, self.cfg.threads),
                                                       thread_name_prefix="predict")
        self.influence_pool = futures.ThreadPoolExecutor(max_workers=INFLUENCE_THREADS,
                                                         thread_name_prefix="influence")
        self.reading: dict[int, object] = {}  # id(conn) -> conn, while its request is read
        self.lingering: dict[socket.socket, list] = {}  # closed for writing: [deadline, bytes drained]
        self.influence_waiting = 0  # /influence queries handed to the influence pool and not finished
        super().init_process()

    def _app_setting(self, key: str, default: float) -> float:
        config = getattr(self.wsgi, "config", None) or {}
        value = config.get(key)
        return default if value is None else value

    # ------------------------------------------------------------------ reading in the event loop
    def enqueue_req(self, conn) -> None:
        if self.cfg.is_ssl or conn.initialized or conn.parser is not None:
            self._dispatch(conn, self.tpool)  # gunicorn's own reading (TLS; a kept-alive connection)
            return
        conn.incoming = IncomingRequest(
            max_body=int(self._app_setting("MAX_CONTENT_LENGTH", DEFAULT_MAX_BODY_BYTES)),
            deadline=time.monotonic() + float(self._app_setting("HILDIF_READ_TIMEOUT_S", DEFAULT_READ_TIMEOUT_S)))
        conn.sock.setblocking(False)
        conn.close = partial(self._close, conn)  # gunicorn's graceful close lingers in the event loop: not here
        self.reading[id(conn)] = conn
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn, _sock) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before its request was complete
            self._stop_reading(conn)
            self._drop(conn)
            return
        incoming = conn.incoming
        try:
            complete = incoming.feed(data)
        except Refusal as refusal:
            self._stop_reading(conn)
            self._refuse(conn, refusal.status, str(refusal))
            return
        if not complete:
            if incoming.expect_continue and incoming.body_start >= 0 and not incoming.continued:
                incoming.continued = True
                self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self._stop_reading(conn)
        conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(incoming.head_without_expect())
        conn.data_ready = True
        target = incoming.target()
        conn.incoming = None
        if target.startswith(INFLUENCE_PREFIX):
            if self.influence_waiting >= INFLUENCE_THREADS + INFLUENCE_QUEUE:
                self._refuse(conn, 503, f"influence: {INFLUENCE_QUEUE} queries are waiting already; ask again later")
                return
            self.influence_waiting += 1
            self._dispatch(conn, self.influence_pool, self._influence_done)
            return
        self._dispatch(conn, self.predict_pool if target.startswith(PREDICT_PREFIX) else self.tpool)

    def _influence_done(self) -> None:
        self.influence_waiting -= 1

    def _dispatch(self, conn, pool, then=None) -> None:
        def finished(fut) -> None:  # in the event loop (the method queue), like gunicorn's own finish_request
            if then is not None:
                then()
            self.finish_request(conn, fut)
        fs = pool.submit(self.handle, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(finished, fut))

    def _stop_reading(self, conn) -> None:
        self.reading.pop(id(conn), None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _send(self, conn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # small: fits the socket's send buffer; what does not is dropped with the client
        except OSError:
            pass

    def _refuse(self, conn, status: int, message: str) -> None:
        self.log.warning("refused a request from %s while reading it: %d %s", conn.client[0] if conn.client else "?",
                         status, message)
        self._send(conn, refusal_response(status, message))
        self._drop(conn)

    def _drop(self, conn) -> None:
        self.nr_conns -= 1
        conn.close(graceful=True)

    # ------------------------------------------------------------------ closing without blocking the event loop
    def _close(self, conn, graceful: bool = False) -> None:
        """Close ``conn`` (what ``TConn.close`` does), but a graceful close (RFC 9112 9.6: FIN, then read what the
        client still sends so that the kernel does not reset the answer away) lingers on the poller, at most
        :data:`LINGER_S` seconds and :data:`LINGER_BYTES` bytes, instead of blocking the event loop."""
        sock = conn.sock
        if not graceful:
            _close_socket(sock)
            return
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._on_linger, sock))
        except (OSError, KeyError, ValueError):
            _close_socket(sock)
            return
        self.lingering[sock] = [time.monotonic() + LINGER_S, 0]

    def _on_linger(self, sock, _fileobj) -> None:
        try:
            data = sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        state = self.lingering.get(sock)
        if state is None:
            return
        state[1] += len(data)
        if not data or state[1] > LINGER_BYTES:
            self._end_linger(sock)

    def _end_linger(self, sock) -> None:
        self.lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        _close_socket(sock)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in list(self.reading.values()):
            if not self.alive or conn.incoming.deadline <= now:
                self._stop_reading(conn)
                self._refuse(conn, 408, "request: not complete within the read timeout")
        for sock, (deadline, _) in list(self.lingering.items()):
            if deadline <= now:
                self._end_linger(sock)

    # ------------------------------------------------------------------ shutdown
    def _shutdown_pools(self) -> None:
        self.predict_pool.shutdown(wait=False)
        self.influence_pool.shutdown(wait=False)

    def handle_quit(self, sig, frame) -> None:
        self._shutdown_pools()
        super().handle_quit(sig, frame)

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._shutdown_pools()
