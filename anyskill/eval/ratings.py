"""The human-rating protocol of the paper's user study (§4.2, §4.5): raters score rollout videos from 0 to 10 on
Success, Natural, Smooth and Physics, blind to the method that made them.

    store = RatingStore("results/ratings.sqlite")
    store.register([StudyItem("kick", "ours_full", Path("runs/kick/full/rollout.mp4")), ...])
    session = RatingSession(store, rater="r07")   # what the rating UI (anyskill.eval.rating_ui) drives
    session.current                                # BlindItem: code, prompt, video bytes; no method, no path
    session.submit({"success": 7, "natural": 6, "smooth": 8, "physics": 7})
    store.ratings()                                # analysis: one row per rating, methods unblinded

Blinding: every (prompt, method) gets a random code (``secrets``); ratings refer to codes only, and the key
(code -> method) sits in its own table that only :meth:`RatingStore.ratings` reads. A rater sees the codes in an order
of their own (:func:`rating_order`, seeded by the rater id): the prompts shuffled, and within each prompt the methods
shuffled.

Storage: one SQLite file in WAL mode with a busy timeout, so several raters (processes or threads) write at once;
every submission is its own committed transaction with ``synchronous=FULL``, so a crash (a killed kernel, a closed
laptop) loses nothing that was submitted, and a new session of the same rater resumes after the last rated item.
"""

from __future__ import annotations

import contextlib
import hashlib
import numbers
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

CRITERIA = ("success", "natural", "smooth", "physics")
"""The four scores of the paper's user study, each an integer from 0 (worst) to 10 (best)."""
SCORE_RANGE = (0, 10)
BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another's lock before SQLite gives up, ms."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    code TEXT PRIMARY KEY,
    prompt TEXT NOT NULL,
    video TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blinding_key (
    code TEXT PRIMARY KEY REFERENCES items(code),
    method TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    rater TEXT NOT NULL,
    code TEXT NOT NULL REFERENCES items(code),
    timestamp TEXT NOT NULL,
    success INTEGER NOT NULL CHECK (success BETWEEN 0 AND 10),
    natural INTEGER NOT NULL CHECK (natural BETWEEN 0 AND 10),
    smooth INTEGER NOT NULL CHECK (smooth BETWEEN 0 AND 10),
    physics INTEGER NOT NULL CHECK (physics BETWEEN 0 AND 10),
    PRIMARY KEY (rater, code)
);
"""


@dataclass(frozen=True)
class StudyItem:
    """One video of the study: the rollout of ``method`` for ``prompt`` (an .mp4 or .gif file)."""

    prompt: str
    method: str
    video: Path


@dataclass(frozen=True)
class BlindItem:
    """What a rater is shown: the item's code, the instruction and the video's bytes (``video_format`` "mp4" or
    "gif"); ``position`` (1-based) of ``total`` items of the rater's session."""

    code: str
    prompt: str
    video: bytes
    video_format: str
    position: int
    total: int


class RatingStore:
    """The ratings database at ``path`` (created with its tables when missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one unit of work: committed on success, rolled back on error, always closed."""
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
            with con:  # one transaction
                yield con
        finally:
            con.close()

    def register(self, items: Iterable[StudyItem]) -> list[str]:
        """Add the study's videos; returns their codes in order. A (prompt, method) registered before keeps its
        code (its video path is updated)."""
        codes = []
        with self._connect() as con:
            for item in items:
                if not Path(item.video).is_file():
                    raise FileNotFoundError(f"video of {item.method!r} for {item.prompt!r} not found: {item.video}")
                row = con.execute("SELECT i.code FROM items i JOIN blinding_key k USING (code) "
                                  "WHERE i.prompt = ? AND k.method = ?", (item.prompt, item.method)).fetchone()
                code = row[0] if row else secrets.token_hex(6)
                con.execute("INSERT INTO items (code, prompt, video) VALUES (?, ?, ?) "
                            "ON CONFLICT (code) DO UPDATE SET video = excluded.video",
                            (code, item.prompt, str(item.video)))
                con.execute("INSERT OR IGNORE INTO blinding_key (code, method) VALUES (?, ?)", (code, item.method))
                codes.append(code)
        return codes

    def prompts(self) -> dict[str, list[str]]:
        """Prompt -> the codes of its videos (sorted), the blinded view of the study."""
        out: dict[str, list[str]] = {}
        with self._connect() as con:
            for code, prompt in con.execute("SELECT code, prompt FROM items ORDER BY prompt, code"):
                out.setdefault(prompt, []).append(code)
        return out

    def blind_item(self, code: str, position: int, total: int) -> BlindItem:
        """The rater's view of item ``code``: its prompt and video bytes."""
        with self._connect() as con:
            row = con.execute("SELECT prompt, video FROM items WHERE code = ?", (code,)).fetchone()
        if row is None:
            raise KeyError(f"no study item with code {code!r}")
        video = Path(row[1])
        return BlindItem(code, row[0], video.read_bytes(), video.suffix.lstrip(".").lower(), position, total)

    def submit(self, rater: str, code: str, scores: dict[str, int]) -> None:
        """Store ``rater``'s scores (integers 0–10 for each of :data:`CRITERIA`) of item ``code``, time-stamped
        (UTC). A second submission of the same rater and item replaces the first."""
        if not rater.strip():
            raise ValueError("the rater id must not be empty")
        if set(scores) != set(CRITERIA):
            raise ValueError(f"scores must have exactly the keys {CRITERIA}, got {sorted(scores)}")
        values: list[int] = []
        for criterion in CRITERIA:
            value = scores[criterion]
            if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                    or not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]):
                raise ValueError(f"score {criterion}={value!r} must be an integer in {SCORE_RANGE}")
            values.append(int(value))
        stamp = datetime.now(timezone.utc).isoformat()
        with self._connect() as con:
            if con.execute("SELECT 1 FROM items WHERE code = ?", (code,)).fetchone() is None:
                raise KeyError(f"no study item with code {code!r}")
            con.execute("INSERT INTO ratings (rater, code, timestamp, success, natural, smooth, physics) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rater, code) DO UPDATE SET "
                        "timestamp = excluded.timestamp, success = excluded.success, natural = excluded.natural, "
                        "smooth = excluded.smooth, physics = excluded.physics", (rater, code, stamp, *values))

    def rated_codes(self, rater: str) -> set[str]:
        """The codes ``rater`` has scored."""
        with self._connect() as con:
            return {c for (c,) in con.execute("SELECT code FROM ratings WHERE rater = ?", (rater,))}

    def ratings(self) -> pd.DataFrame:
        """Every rating, unblinded: rater, timestamp, prompt, method, code and the four scores, one row each."""
        with self._connect() as con:
            return pd.read_sql_query(
                "SELECT r.rater, r.timestamp, i.prompt, k.method, r.code, "
                + ", ".join(f"r.{c}" for c in CRITERIA)
                + " FROM ratings r JOIN items i USING (code) JOIN blinding_key k USING (code) "
                "ORDER BY r.timestamp, r.rowid", con)


def rater_seed(rater: str) -> int:
    """A stable 64-bit seed from a rater id (SHA-256; Python's ``hash`` differs between processes)."""
    return int.from_bytes(hashlib.sha256(rater.encode()).digest()[:8], "little")


def rating_order(prompts: dict[str, list[str]], rater: str) -> list[str]:
    """The codes in ``rater``'s order: the prompts shuffled, then the codes (methods) of each prompt shuffled,
    seeded by :func:`rater_seed`; every rater gets their own order and always the same one."""
    rng = np.random.default_rng(rater_seed(rater))
    order = []
    for p in rng.permutation(sorted(prompts)):
        order += [str(c) for c in rng.permutation(sorted(prompts[str(p)]))]
    return order


class RatingSession:
    """One rater working through the study: the items they have not rated yet, in their :func:`rating_order`.

    Knows codes, prompts and videos, never methods. A new session of the same rater resumes where the last one
    stopped (after a crash too): items already in the store are skipped.
    """

    def __init__(self, store: RatingStore, rater: str):
        if not rater.strip():
            raise ValueError("the rater id must not be empty")
        self.store = store
        self.rater = rater
        self.order = rating_order(store.prompts(), rater)
        rated = store.rated_codes(rater)
        self._pending = [c for c in self.order if c not in rated]

    @property
    def done(self) -> int:
        """Items of the study this rater has rated."""
        return len(self.order) - len(self._pending)

    @property
    def finished(self) -> bool:
        """The rater has rated every item."""
        return not self._pending

    @property
    def current(self) -> BlindItem | None:
        """The item to rate now, None when the rater has rated every item."""
        if not self._pending:
            return None
        return self.store.blind_item(self._pending[0], self.done + 1, len(self.order))

    def submit(self, scores: dict[str, int]) -> BlindItem | None:
        """Store the scores of :attr:`current` and return the next item (None when finished)."""
        if not self._pending:
            raise RuntimeError(f"rater {self.rater!r} has rated every item of the study")
        self.store.submit(self.rater, self._pending[0], scores)
        self._pending.pop(0)
        return self.current
