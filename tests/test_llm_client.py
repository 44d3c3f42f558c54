"""The LLM enhancer against a real HTTP server on 127.0.0.1: a small OpenAI-compatible ``/v1/chat/completions``
endpoint started by these tests, whose next replies each test scripts (success, slow, trickling, HTTP 429/500/401,
malformed JSON, empty or over-long replies). Every case either succeeds or falls back to the offline lexicon with a
warning, and none blocks longer than the client's timeout (plus a small scheduling margin)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from anyskill.text import EnhancementFallbackWarning, LLMEnhancer, LLMSettings, make_enhancer
from anyskill.text.clip_context import CONTEXT_LENGTH, clip_token_count

MODEL = "test-model"
KEY = "sk-test-not-a-secret"
MARGIN_S = 0.5  # thread scheduling on a loaded 2-core machine
DESCRIPTIONS = {"wave hi": "right arm raised, elbow bent, open hand beside the head",
                "kick": "right leg swung forward at hip height, arms out for balance"}


class Reply:
    """One scripted answer: ``kind`` "ok" (a chat completion of ``content``, default the description of the user's
    prompt), "status" (HTTP ``status`` with a JSON error body and optional ``retry_after``), "raw" (200 with ``body``
    as is), "slow" (an ok reply after ``delay`` s) or "trickle" (an ok reply sent one byte every ``delay`` s)."""

    def __init__(self, kind: str = "ok", content: str | None = None, status: int = 200,
                 retry_after: str | None = None, body: bytes = b"", delay: float = 0.0):
        self.kind, self.content, self.status, self.retry_after = kind, content, status, retry_after
        self.body, self.delay = body, delay


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # handlers still sleeping for a timed-out client are abandoned

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.script: list[Reply] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_reply(self) -> Reply:
        with self.lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def handle_error(self, request, client_address) -> None:  # a client that gave up closed its socket
        pass


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = json.loads(body)
        self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "json": request})
        if self.path != "/v1/chat/completions":
            return self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._send(401, b'{"error": {"message": "invalid api key"}}')
        reply = self.server.next_reply()
        if reply.kind == "status":
            headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
            return self._send(reply.status, b'{"error": {"message": "scripted error"}}', headers)
        if reply.kind == "raw":
            return self._send(200, reply.body)
        prompt = next(m["content"] for m in request["messages"] if m["role"] == "user")
        content = reply.content if reply.content is not None else DESCRIPTIONS.get(prompt, "arms at the sides")
        completion = json.dumps({
            "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }).encode()
        if reply.kind == "slow":
            time.sleep(reply.delay)
        if reply.kind == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(completion)))
            self.end_headers()
            for i in range(len(completion)):
                self.wfile.write(completion[i:i + 1])
                self.wfile.flush()
                time.sleep(reply.delay)
            return None
        return self._send(200, completion)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    srv = ChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def chat(server):
    """The server with a fresh script and request log; ``chat(*replies)`` scripts the next replies (the last one
    repeats)."""

    def script(*replies: Reply) -> ChatServer:
        server.script = list(replies)
        server.requests.clear()
        return server

    return script


def enhancer(server: ChatServer, tmp_path=None, **options) -> LLMEnhancer:
    settings = dict(model=MODEL, base_url=server.base_url, api_key=KEY, timeout_s=2.0, max_retries=2,
                    backoff_s=0.05, cache_path=tmp_path / "cache.jsonl" if tmp_path is not None else None)
    settings.update(options)
    return LLMEnhancer(LLMSettings(**settings))


def timed(fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0


def test_success_is_cached_and_sends_an_openai_request(chat, tmp_path):
    server = chat(Reply("ok"))
    llm = enhancer(server, tmp_path)
    e = llm.enhance("wave hi")
    assert (e.text, e.enhancer, e.model, e.cached, e.note) == (DESCRIPTIONS["wave hi"], "llm", MODEL, False, "")
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {KEY}"
    body = request["json"]
    assert body["model"] == MODEL and body["temperature"] == 0.0
    assert [m["role"] for m in body["messages"]] == ["system", "user"] and body["messages"][1]["content"] == "wave hi"
    assert "raised arm bent at the elbow" in body["messages"][0]["content"]  # the paper's pairs as examples
    again = enhancer(server, tmp_path).enhance("wave hi")  # a new client, the same cache file: no request
    assert again.cached and again.text == e.text and len(server.requests) == 1
    assert KEY not in repr(llm.settings) and KEY not in llm.description


def test_slow_reply_past_the_timeout_falls_back_in_time(chat):
    server = chat(Reply("slow", delay=5.0))
    with pytest.warns(EnhancementFallbackWarning, match="no reply within the 0.6 s timeout"):
        e, elapsed = timed(enhancer(server, timeout_s=0.6).enhance, "kick")
    assert e.enhancer == "offline" and e.text == "left leg forward, right leg retreats"
    assert e.note.startswith(f"LLM {MODEL} failed: no reply within") and elapsed < 0.6 + MARGIN_S


def test_a_reply_trickling_past_the_timeout_is_cut_off(chat):
    server = chat(Reply("trickle", delay=0.05))  # ~300 bytes at 20 bytes/s: 15 s
    with pytest.warns(EnhancementFallbackWarning):
        e, elapsed = timed(enhancer(server, timeout_s=0.8).enhance, "kick")
    assert e.enhancer == "offline" and elapsed < 0.8 + MARGIN_S


def test_429_with_retry_after_then_success(chat):
    server = chat(Reply("status", status=429, retry_after="0.2"), Reply("ok"))
    e, elapsed = timed(enhancer(server).enhance, "kick")
    assert e.enhancer == "llm" and e.text == DESCRIPTIONS["kick"] and len(server.requests) == 2
    assert elapsed >= 0.2  # waited as asked


def test_500_is_retried_with_exponential_backoff(chat):
    server = chat(Reply("status", status=500), Reply("status", status=503), Reply("ok"))
    e, elapsed = timed(enhancer(server, backoff_s=0.1).enhance, "kick")
    assert e.enhancer == "llm" and len(server.requests) == 3 and elapsed >= 0.1 + 0.2


def test_persistent_500_falls_back_after_the_retries(chat):
    server = chat(Reply("status", status=500))
    with pytest.warns(EnhancementFallbackWarning, match="HTTP 500.*after 3 attempts"):
        e = enhancer(server, max_retries=2).enhance("wave hi")
    assert e.enhancer == "offline" and e.text == "raised arm bent at the elbow" and len(server.requests) == 3


def test_backoff_never_sleeps_past_the_timeout(chat):
    server = chat(Reply("status", status=500))
    with pytest.warns(EnhancementFallbackWarning, match="would pass the 0.5 s timeout"):
        e, elapsed = timed(enhancer(server, timeout_s=0.5, backoff_s=2.0).enhance, "kick")
    assert e.enhancer == "offline" and len(server.requests) == 1 and elapsed < 0.5 + MARGIN_S  # not the 2 s backoff
    server = chat(Reply("status", status=429, retry_after="30"))
    with pytest.warns(EnhancementFallbackWarning, match="HTTP 429"):
        e, elapsed = timed(enhancer(server, timeout_s=1.0).enhance, "kick")
    assert e.enhancer == "offline" and elapsed < 1.0 + MARGIN_S  # not the 30 s Retry-After


def test_client_errors_are_not_retried(chat):
    server = chat(Reply("ok"))
    with pytest.warns(EnhancementFallbackWarning, match="HTTP 401"):
        e = enhancer(server, api_key="wrong").enhance("kick")
    assert e.enhancer == "offline" and len(server.requests) == 1
    server = chat(Reply("ok"))
    with pytest.warns(EnhancementFallbackWarning, match="HTTP 404"):
        enhancer(server, base_url=server.base_url.removesuffix("/v1") + "/other").enhance("kick")


@pytest.mark.parametrize("reply, message", [
    (Reply("raw", body=b'{"choices": [{"message": {"content": "arm up"'), "malformed JSON"),
    (Reply("raw", body=b"<html>Bad gateway</html>"), "malformed JSON"),
    (Reply("raw", body=b'{"object": "error"}'), "no choices"),
    (Reply("raw", body=b'{"choices": [{"message": {"content": null}}]}'), "not text"),
    (Reply("ok", content=""), "empty reply"),
    (Reply("ok", content="  \n <think>hmm</think> "), "empty reply"),
    (Reply("ok", content="arm " * 400), "longer than max_reply_chars"),
])
def test_invalid_replies_fall_back_with_a_warning(chat, reply, message):
    server = chat(reply)
    with pytest.warns(EnhancementFallbackWarning, match=message):
        e, elapsed = timed(enhancer(server).enhance, "kick")
    assert e.enhancer == "offline" and e.text == "left leg forward, right leg retreats" and message in e.note
    assert len(server.requests) == 1 and elapsed < 2.0 + MARGIN_S


def test_replies_are_cleaned_and_cut_to_clips_context(chat):
    reply = '<think>The user wants a wave.</think>\nEnhanced: "right arm raised,\nelbow bent"'
    server = chat(Reply("ok", content=reply))
    assert enhancer(server).enhance("wave hi").text == "right arm raised, elbow bent"
    long = ", ".join(f"left arm raised to position number {i}" for i in range(12))  # < 600 chars, > 77 tokens
    server = chat(Reply("ok", content=long))
    e = enhancer(server).enhance("wave hi")
    assert e.enhancer == "llm" and e.note == "cut to CLIP's context" and long.startswith(e.text)
    assert clip_token_count(e.text) <= CONTEXT_LENGTH < clip_token_count(long)


def test_nothing_listening_falls_back_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    llm = LLMEnhancer(LLMSettings(model=MODEL, base_url=f"http://127.0.0.1:{port}/v1", timeout_s=5.0, backoff_s=1.0,
                                  cache_path=None))
    with pytest.warns(EnhancementFallbackWarning, match="connection refused"):
        e, elapsed = timed(llm.enhance, "kick")
    assert e.enhancer == "offline" and elapsed < 1.0


def test_settings_come_from_arguments_and_the_environment(monkeypatch, server, tmp_path):
    monkeypatch.setenv("ANYSKILL_LLM_MODEL", "env-model")
    monkeypatch.setenv("ANYSKILL_LLM_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("ANYSKILL_LLM_API_KEY", KEY)
    monkeypatch.setenv("ANYSKILL_LLM_TIMEOUT", "3.5")
    monkeypatch.setenv("ANYSKILL_LLM_CACHE", str(tmp_path / "env.jsonl"))
    s = LLMSettings.from_env()
    assert (s.model, s.api_key, s.timeout_s, s.cache_path) == ("env-model", KEY, 3.5, tmp_path / "env.jsonl")
    assert s.endpoint == server.base_url + "/chat/completions"
    assert LLMSettings.from_env(model="arg-model", timeout_s=1.0).model == "arg-model"
    server.script, server.requests[:] = [Reply("ok")], []
    e = make_enhancer("llm").enhance("kick")  # configured by the environment alone
    assert e.enhancer == "llm" and e.model == "env-model" and server.requests[0]["json"]["model"] == "env-model"
    monkeypatch.setenv("ANYSKILL_LLM_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="ANYSKILL_LLM_TIMEOUT must be seconds"):
        LLMSettings.from_env()
    with pytest.raises(ValueError, match="base URL"):
        LLMSettings(model="m", base_url="localhost:8080")
    with pytest.raises(ValueError, match="timeout_s > 0"):
        LLMSettings(model="m", timeout_s=0)
