"""The LLM enhancer: an OpenAI-compatible chat-completions client (OpenAI, or a local llama.cpp / vLLM / Ollama
server) that rewrites a vague instruction into a specific description of body parts and poses (paper §4.3, which
used GPT-4).

    enhancer = LLMEnhancer(LLMSettings(model="llama3.1", base_url="http://localhost:11434/v1"))
    enhancer.enhance("wave hi").text

Settings come from arguments or the environment: ``ANYSKILL_LLM_MODEL`` (required), ``ANYSKILL_LLM_BASE_URL``
(default OpenAI's), ``ANYSKILL_LLM_API_KEY`` (sent as a bearer token; local servers need none),
``ANYSKILL_LLM_TIMEOUT`` (s) and ``ANYSKILL_LLM_CACHE`` (:mod:`anyskill.text.cache`).

Robustness: one prompt takes at most ``timeout_s`` seconds in all — attempts, waits between them and reading the
reply (each exchange runs in a worker thread whose connection is shut down when the time is up). HTTP 408/409/425/
429/5xx and dropped connections are retried up to ``max_retries`` times with exponential backoff (``backoff_s``,
doubled each time; a ``Retry-After`` in seconds is honoured) while time is left; other HTTP errors, a refused
connection, malformed JSON, a reply without text, an empty or over-long reply are not. The reply is cleaned (one
line, no reasoning block, no label or quotes), bounded by ``max_reply_chars`` and cut to fit CLIP's context
(:func:`anyskill.text.clip_context.fit_clip_context`). Whenever no valid reply comes, :meth:`LLMEnhancer.enhance`
warns (:class:`~anyskill.text.enhancer.EnhancementFallbackWarning`) and returns the fallback enhancer's result
(default: the offline lexicon) with the reason in its note. Valid replies go to the disk cache.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
import warnings
from dataclasses import replace
from typing import Any

from anyskill.config.llm import DEFAULT_BASE_URL, ENV_API_KEY, ENV_BASE_URL, ENV_MODEL, ENV_TIMEOUT, LLMSettings
from anyskill.text.cache import EnhancementCache, cache_key
from anyskill.text.clip_context import fit_clip_context
from anyskill.text.enhancer import Enhancement, EnhancementFallbackWarning, TextEnhancer, check_prompt

__all__ = ["DEFAULT_BASE_URL", "ENV_API_KEY", "ENV_BASE_URL", "ENV_MODEL", "ENV_TIMEOUT", "LLMEnhancer", "LLMError",
           "LLMSettings", "MAX_REPLY_BYTES", "RETRY_STATUSES", "SYSTEM_PROMPT", "post_json", "reply_text"]

MAX_REPLY_BYTES = 1 << 20
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

SYSTEM_PROMPT = """\
You rewrite short instructions for a simulated humanoid into one specific description of its body in a single pose \
that a camera sees in one frame: which body parts are where, bent or straight. Name body parts (arms, elbows, hands, \
legs, knees, feet, torso, head) and sides (left, right). Answer with the description only: one line, at most 20 \
words, no quotes.
Examples:
wave hi -> raised arm bent at the elbow
Waltz dance -> left foot step backward, right hand extends
kick -> left leg forward, right leg retreats"""


class LLMError(RuntimeError):
    """No valid reply from the LLM server; the message says why."""


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, dict[str, str], bytes]:
    """POST ``body`` to ``url``: (status, lower-case headers, reply body). Returns or raises within ``timeout`` s
    (TimeoutError): the exchange runs in a daemon thread whose socket is shut down when the time is up."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = connection(parts.hostname or "", parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    outcome: dict[str, Any] = {}

    def exchange() -> None:
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_REPLY_BYTES + 1)
            outcome["reply"] = (response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        except Exception as e:  # handed to the calling thread
            outcome["error"] = e

    worker = threading.Thread(target=exchange, name="anyskill-llm-request", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        if conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the worker's blocked read
            except OSError:
                pass
        conn.close()
        raise TimeoutError(f"no reply within {timeout:.2f} s")
    conn.close()
    if "error" in outcome:
        raise outcome["error"]
    status, reply_headers, data = outcome["reply"]
    if len(data) > MAX_REPLY_BYTES:
        raise LLMError(f"reply larger than {MAX_REPLY_BYTES} bytes")
    return status, reply_headers, data


def reply_text(data: bytes, max_chars: int) -> str:
    """The description in a chat-completions reply body: ``choices[0].message.content`` without a reasoning block
    (``<think>...</think>``), a leading label or quotes, on one line; LLMError when the JSON is malformed, the text
    is missing or empty, or longer than ``max_chars``."""
    try:
        reply = json.loads(data)
    except ValueError:
        raise LLMError(f"malformed JSON reply: {_snippet(data)}") from None
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMError(f"reply has no choices[0].message.content: {_snippet(data)}") from None
    if not isinstance(content, str):
        raise LLMError(f"reply content is {type(content).__name__}, not text")
    text = " ".join(re.sub(r"<think>.*?</think>", " ", content, flags=re.S).split())
    text = re.sub(r"^(enhanced(\s+(text|description|prompt))?|description)\s*:\s*", "", text, flags=re.I)
    text = text.strip().strip("\"'`\u201c\u201d").strip()
    if not text:
        raise LLMError("empty reply")
    if len(text) > max_chars:
        raise LLMError(f"reply of {len(text)} characters is longer than max_reply_chars={max_chars}")
    return text


def _snippet(data: bytes, n: int = 120) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return repr(text[:n] + ("..." if len(text) > n else ""))


def _retry_after(headers: dict[str, str]) -> float | None:
    """Seconds of a numeric ``Retry-After`` header (an HTTP date is ignored)."""
    try:
        return max(0.0, float(headers["retry-after"]))
    except (KeyError, ValueError):
        return None


class LLMEnhancer:
    """Enhancement by an OpenAI-compatible chat-completions server (module docstring); ``fallback`` (default the
    offline lexicon) answers whenever the server does not."""

    kind = "llm"

    def __init__(self, settings: LLMSettings, fallback: TextEnhancer | None = None,
                 system_prompt: str = SYSTEM_PROMPT):
        from anyskill.text.lexicon import OfflineEnhancer

        self.settings = settings
        self.fallback: TextEnhancer = fallback if fallback is not None else OfflineEnhancer()
        self.system_prompt = system_prompt
        self.cache = EnhancementCache(settings.cache_path) if settings.cache_path is not None else None

    @property
    def model(self) -> str:
        """The LLM's name (``settings.model``)."""
        return self.settings.model

    @property
    def description(self) -> str:
        return f"llm {self.settings.model} at {self.settings.base_url} (fallback: {self.fallback.description})"

    def enhance(self, prompt: str) -> Enhancement:
        text = check_prompt(prompt)
        model = self.settings.model
        key = cache_key(model, self.system_prompt, text)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return Enhancement(prompt, cached, "llm", model, note="from the cache", cached=True)
        try:
            reply = self.request(text)
            fitted = fit_clip_context(reply)
            if not fitted:
                raise LLMError("reply does not fit CLIP's context even cut to one word")
        except LLMError as e:
            warnings.warn(f"LLM enhancement of {text!r} by {model} failed ({e}); using the {self.fallback.kind} "
                          "enhancer", EnhancementFallbackWarning, stacklevel=2)
            fallback = self.fallback.enhance(prompt)
            return replace(fallback, note=f"LLM {model} failed: {e}" + (f"; {fallback.note}" if fallback.note else ""))
        if self.cache is not None:
            self.cache.put(key, model, text, fitted)
        return Enhancement(prompt, fitted, "llm", model, note="" if fitted == reply else "cut to CLIP's context")

    def request(self, prompt: str) -> str:
        """The server's validated description of ``prompt`` (:func:`reply_text`), with the retries of the module
        docstring, within ``timeout_s``; LLMError otherwise."""
        s = self.settings
        deadline = time.monotonic() + s.timeout_s
        body = json.dumps({"model": s.model, "temperature": s.temperature, "max_tokens": s.max_tokens,
                           "messages": [{"role": "system", "content": self.system_prompt},
                                        {"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if s.api_key:
            headers["Authorization"] = f"Bearer {s.api_key}"
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LLMError(f"no valid reply within the {s.timeout_s:g} s timeout")
            wait: float | None = None
            try:
                status, reply_headers, data = post_json(s.endpoint, body, headers, remaining)
            except TimeoutError:
                raise LLMError(f"no reply within the {s.timeout_s:g} s timeout") from None
            except ConnectionRefusedError:
                raise LLMError(f"nothing listens at {s.base_url} (connection refused)") from None
            except (OSError, http.client.HTTPException) as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if 200 <= status < 300:
                    return reply_text(data, s.max_reply_chars)
                problem = f"HTTP {status} {_snippet(data)}"
                if status not in RETRY_STATUSES:
                    raise LLMError(problem)
                wait = _retry_after(reply_headers)
            if attempt >= s.max_retries:
                raise LLMError(f"{problem} after {attempt + 1} attempts")
            wait = s.backoff_s * 2**attempt if wait is None else wait
            if time.monotonic() + wait >= deadline:
                raise LLMError(f"{problem}; a retry in {wait:g} s would pass the {s.timeout_s:g} s timeout")
            time.sleep(wait)
            attempt += 1
