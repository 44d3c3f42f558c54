"""A disk cache of LLM enhancements: one JSON object per line (JSONL), keyed by model, system prompt and prompt.

A cached reply makes a run reproducible without the server and saves the request. Lines are only appended; a line
that does not parse (a write cut short) is skipped. Each record holds ``key``, ``model``, ``prompt``, ``text`` and
``created`` (UTC, ISO 8601).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

from anyskill.config.llm import ENV_CACHE, default_cache_path

__all__ = ["ENV_CACHE", "EnhancementCache", "cache_key", "default_cache_path"]


def cache_key(model: str, system_prompt: str, prompt: str) -> str:
    """sha256 of the model, system prompt and prompt."""
    return hashlib.sha256(json.dumps([model, system_prompt, prompt]).encode()).hexdigest()


class EnhancementCache:
    """JSONL file of enhanced prompts at ``path`` (created on the first :meth:`put`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._entries: dict[str, str] | None = None
        self.skipped_lines = 0

    def _load(self) -> dict[str, str]:
        if self._entries is None:
            self._entries = {}
            if self.path.is_file():
                with open(self.path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            record = json.loads(line)
                            self._entries[str(record["key"])] = str(record["text"])
                        except (ValueError, KeyError, TypeError):
                            self.skipped_lines += 1
        return self._entries

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def put(self, key: str, model: str, prompt: str, text: str) -> None:
        record = {"key": key, "model": model, "prompt": prompt, "text": text,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self._load()[key] = text
