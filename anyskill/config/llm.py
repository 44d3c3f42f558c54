"""Settings of the LLM text enhancer (:class:`anyskill.text.llm.LLMEnhancer`): where and how to ask
(:class:`LLMSettings`), read from arguments or the ``ANYSKILL_LLM_*`` environment variables, and where its replies
are cached (:func:`default_cache_path`, :mod:`anyskill.text.cache`)."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_MODEL = "ANYSKILL_LLM_MODEL"
ENV_BASE_URL = "ANYSKILL_LLM_BASE_URL"
ENV_API_KEY = "ANYSKILL_LLM_API_KEY"
ENV_TIMEOUT = "ANYSKILL_LLM_TIMEOUT"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
ENV_CACHE = "ANYSKILL_LLM_CACHE"


def default_cache_path() -> Path | None:
    """``$ANYSKILL_LLM_CACHE`` ("off" or empty: no cache), else ``$XDG_CACHE_HOME/anyskill/text_enhancement.jsonl``
    (``~/.cache`` when XDG_CACHE_HOME is unset)."""
    value = os.environ.get(ENV_CACHE)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "none") else Path(value).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "anyskill" / "text_enhancement.jsonl"


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to ask. ``timeout_s``: the most one prompt may take, all attempts and waits included."""

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 1.0
    max_reply_chars: int = 600
    temperature: float = 0.0
    max_tokens: int = 96
    cache_path: Path | None = field(default_factory=default_cache_path)

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ValueError(f"LLMSettings.model must name the server's model (or set {ENV_MODEL})")
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"LLM base URL must look like http://host:port/v1, got {self.base_url!r}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0 or self.max_reply_chars < 1:
            raise ValueError(f"need timeout_s > 0, max_retries >= 0, backoff_s >= 0, max_reply_chars >= 1; got "
                             f"{self.timeout_s}, {self.max_retries}, {self.backoff_s}, {self.max_reply_chars}")

    @classmethod
    def from_env(cls, **overrides: Any) -> LLMSettings | None:
        """Settings from ``overrides`` and, for what they leave out, the ``ANYSKILL_LLM_*`` environment variables;
        None when no model is configured."""
        model = overrides.pop("model", None) or os.environ.get(ENV_MODEL, "").strip()
        if not model:
            return None
        base_url = overrides.pop("base_url", None) or os.environ.get(ENV_BASE_URL, "").strip() or DEFAULT_BASE_URL
        api_key = overrides.pop("api_key", None) or os.environ.get(ENV_API_KEY, "").strip() or None
        timeout = overrides.pop("timeout_s", None)
        if timeout is None and os.environ.get(ENV_TIMEOUT, "").strip():
            try:
                timeout = float(os.environ[ENV_TIMEOUT])
            except ValueError:
                raise ValueError(f"{ENV_TIMEOUT} must be seconds, got {os.environ[ENV_TIMEOUT]!r}") from None
        if timeout is not None:
            overrides["timeout_s"] = float(timeout)
        return cls(model=model, base_url=base_url, api_key=api_key, **overrides)

    @property
    def endpoint(self) -> str:
        """The chat-completions URL: ``base_url`` + ``/chat/completions`` (unless it already ends so)."""
        base = self.base_url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"
