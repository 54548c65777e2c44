"""A gunicorn ``gthread`` worker that serves ``/predict`` from its own thread pool.

Label Studio waits at most 1 s for a webhook while a burst of ``/predict`` calls (serialised on the model) can take
longer; with one shared pool the webhooks queue behind them. Here the request line is peeked (``MSG_PEEK``, nothing is
consumed) before a connection is handed to a pool: ``/predict`` goes to the prediction pool, everything else
(webhooks, /health, jobs) to the main one. A fresh connection whose request has not arrived yet waits on the poller
(no thread held), exactly as gunicorn does for a slow client. Any case it cannot tell (TLS, data already buffered,
an unexpected gunicorn version) goes to the main pool, which is gunicorn's own behaviour.
"""

from __future__ import annotations

import selectors
import socket
import time
from concurrent import futures
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

PREDICT_PREFIX = b"/predict"


class SplitPoolWorker(ThreadWorker):
    def init_process(self) -> None:
        self.predict_pool = futures.ThreadPoolExecutor(max_workers=max(1, self.cfg.threads),
                                                       thread_name_prefix="predict")
        super().init_process()

    def _peek(self, conn) -> bytes | None:
        """The first bytes waiting on the socket (b"" at EOF), None when nothing has arrived yet."""
        try:
            return conn.sock.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def enqueue_req(self, conn) -> None:
        pool = self.tpool
        if not self.cfg.is_ssl and hasattr(self, "pending_conns"):
            head = self._peek(conn)
            if head is None and not conn.initialized and not getattr(conn, "data_ready", False) and self.alive:
                conn.sock.setblocking(False)  # wait for the request line on the poller, without a thread
                conn.timeout = time.monotonic() + self.cfg.keepalive
                self.pending_conns.append(conn)
                self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
                return
            parts = (head or b"").split(b" ", 2)
            if len(parts) > 1 and parts[1].startswith(PREDICT_PREFIX):
                pool = self.predict_pool
        fs = pool.submit(self.handle, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def handle_quit(self, sig, frame) -> None:
        self.predict_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.predict_pool.shutdown(wait=False)
