"""How the backend's worker frames a request while reading it in its event loop (:class:`ml_backend.worker.
IncomingRequest`): complete only once the whole body its framing announces is there, fed byte by byte or at once;
refused (with the status the worker answers) for what it does not hand on. The served behaviour is tested against
real gunicorn in tests/test_security_hostile_clients.py."""

from __future__ import annotations

import pytest

from ml_backend.worker import MAX_HEADER_BYTES, IncomingRequest, Refusal, refusal_response


def _feed(raw: bytes, step: int | None = None, max_body: int = 1000) -> tuple[IncomingRequest, bool]:
    incoming = IncomingRequest(max_body=max_body, deadline=0.0)
    step = step or len(raw)
    done = False
    for i in range(0, len(raw), step):
        done = incoming.feed(raw[i:i + step])
        assert not done or i + step >= len(raw), "complete before its last byte"
    return incoming, done


GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
CHUNKED = (b"POST /jobs?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3;ext=1\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nX-Trailer: y\r\n\r\n")


@pytest.mark.parametrize("raw", [GET, POST, CHUNKED, CHUNKED.replace(b"0\r\nX-Trailer: y\r\n\r\n", b"0\r\n\r\n")])
@pytest.mark.parametrize("step", [1, 5, None])
def test_complete_only_with_its_last_byte(raw, step):
    incoming, done = _feed(raw, step)
    assert done and incoming.head_without_expect() == raw
    assert not _feed(raw[:-1], step)[1]


def test_the_target_picks_the_pool_and_expect_continue_is_answered_then_dropped():
    raw = POST.replace(b"Host: x\r\n", b"Host: x\r\nExpect: 100-continue\r\n")
    incoming = IncomingRequest(max_body=1000, deadline=0.0)
    assert not incoming.feed(raw[:raw.index(b"{")])
    assert incoming.expect_continue and incoming.body_start > 0
    assert incoming.feed(raw[raw.index(b"{"):])
    assert incoming.head_without_expect() == POST and incoming.target() == b"/webhook"
    assert _feed(CHUNKED)[0].target() == b"/jobs?x=1"


@pytest.mark.parametrize("raw, status, field", [
    (b"POST /jobs HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413, "body"),
    (b"POST /jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1f4\r\n" + b" " * 500 + b"\r\n" + b"1f4\r\n"
     + b" " * 500 + b"\r\n" + b"1\r\n", 413, "body"),
    (b"POST /jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, "Transfer-Encoding"),
    (b"POST /jobs HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "Transfer-Encoding"),
    (b"POST /jobs HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400, "Content-Length"),
    (b"POST /jobs HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 400, "Content-Length"),
    (b"POST /jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "body"),
    (b"POST /jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", 400, "body"),
    (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, "header section"),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEADER_BYTES, 431, "header section"),
])
def test_refused_with_the_status_the_worker_answers(raw, status, field):
    with pytest.raises(Refusal) as refused:
        _feed(raw)
    assert refused.value.status == status and str(refused.value).startswith(field)
    answer = refusal_response(status, str(refused.value))
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()) and b"Connection: close" in answer
    assert f'"field": "{field}"'.encode() in answer


def test_a_busy_influence_pool_says_when_to_ask_again():
    answer = refusal_response(503, "influence: 32 queries are waiting already; ask again later")
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"\r\nRetry-After: 5\r\n" in answer
    assert b"Retry-After" not in refusal_response(408, "request: not complete within the read timeout")
