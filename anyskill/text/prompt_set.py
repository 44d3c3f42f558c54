"""A weighted set of prompts for the general (multi-prompt) policy, read from YAML (reference facts §7):

    texts:
      - {weight: 0.5, text: "raise two arms"}
      - {weight: 0.5, text: "kick"}

Weights are relative sampling frequencies (>= 0, not all 0). ``PromptSet.load("general")`` reads the bundled
``texts_general.yaml`` (the authors' eight prompts). Every problem with a file raises one :class:`PromptSetError`
naming the file and the entry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from anyskill.text.enhancer import Enhancement, TextEnhancer

BUNDLED_DIR = Path(__file__).resolve().parent
MAX_FILE_BYTES = 1 << 20
MAX_PROMPTS = 10_000


class PromptSetError(ValueError):
    """A prompt file or prompt list that cannot be used; the message names it and what is wrong."""


@dataclass(frozen=True)
class PromptSet:
    """Prompts ``texts`` (P,) with sampling ``weights`` (P,); ``name`` says where they came from."""

    texts: tuple[str, ...]
    weights: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        where = f"prompt set {self.name!r}" if self.name else "prompt set"
        if not self.texts or len(self.texts) > MAX_PROMPTS:
            raise PromptSetError(f"{where} must hold 1 to {MAX_PROMPTS} prompts, got {len(self.texts)}")
        if len(self.weights) != len(self.texts):
            raise PromptSetError(f"{where}: {len(self.texts)} texts but {len(self.weights)} weights")
        for i, (text, weight) in enumerate(zip(self.texts, self.weights, strict=True)):
            if not isinstance(text, str) or not text.strip():
                raise PromptSetError(f"{where}, entry {i}: text must be a non-empty string, got {text!r}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                    or weight < 0:
                raise PromptSetError(f"{where}, entry {i} ({text!r}): weight must be a finite number >= 0, "
                                     f"got {weight!r}")
        if len(set(self.texts)) != len(self.texts):
            dup = sorted({t for t in self.texts if self.texts.count(t) > 1})
            raise PromptSetError(f"{where}: repeated prompts {dup}; give each once with the summed weight")
        if sum(self.weights) <= 0:
            raise PromptSetError(f"{where}: the weights sum to 0; at least one prompt needs a weight > 0")

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def from_texts(cls, texts: Sequence[str], weights: Sequence[float] | None = None, name: str = "") -> PromptSet:
        """Prompts with equal weights unless ``weights`` are given."""
        texts = tuple(texts)
        return cls(texts, tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(texts), name)

    @classmethod
    def load(cls, source: str | Path) -> PromptSet:
        """From a YAML file (module docstring), or a bundled set by name (``"general"``)."""
        path = Path(source)
        if not path.suffix and (BUNDLED_DIR / f"texts_{source}.yaml").is_file():
            path = BUNDLED_DIR / f"texts_{source}.yaml"
        if path.suffix not in (".yaml", ".yml"):
            bundled = sorted(p.stem.removeprefix("texts_") for p in BUNDLED_DIR.glob("texts_*.yaml"))
            raise PromptSetError(f"prompt file {path} must be YAML (.yaml or .yml) with a 'texts' list, or a bundled "
                                 f"set name {bundled}")
        if not path.is_file():
            raise PromptSetError(f"prompt file {path} does not exist")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PromptSetError(f"prompt file {path} is larger than {MAX_FILE_BYTES} bytes")
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise PromptSetError(f"prompt file {path} is not valid YAML: {e}") from None
        entries = data.get("texts") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise PromptSetError(f"prompt file {path} needs a top-level 'texts' list of {{weight, text}} entries")
        texts, weights = [], []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) != {"weight", "text"}:
                raise PromptSetError(f"prompt file {path}, entry {i}: expected {{weight, text}}, got {entry!r}")
            texts.append(entry["text"])
            weights.append(entry["weight"])
        try:
            return cls(tuple(texts), tuple(weights), name=str(source))
        except PromptSetError as e:
            raise PromptSetError(f"prompt file {path}: {e}") from None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PromptSet:
        """The set written by :meth:`record` (as stored in a general policy's checkpoint)."""
        return cls(tuple(record["texts"]), tuple(float(w) for w in record["weights"]), record.get("name", ""))

    def record(self) -> dict[str, Any]:
        """JSON-able: name, texts, weights."""
        return {"name": self.name, "texts": list(self.texts), "weights": list(self.weights)}

    @property
    def probabilities(self) -> torch.Tensor:
        """(P,) sampling probabilities (the weights normalised)."""
        w = torch.tensor(self.weights, dtype=torch.float64)
        return (w / w.sum()).float()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n,) long prompt indices drawn by weight, with replacement."""
        return torch.multinomial(self.probabilities, n, replacement=True, generator=generator)

    def enhanced(self, enhancer: TextEnhancer) -> tuple[PromptSet, list[Enhancement]]:
        """The set with every text enhanced (weights kept) and the enhancements. Prompts that become the same text
        are merged, their weights summed."""
        enhancements = [enhancer.enhance(t) for t in self.texts]
        merged: dict[str, float] = {}
        for e, w in zip(enhancements, self.weights, strict=True):
            merged[e.text] = merged.get(e.text, 0.0) + w
        name = f"{self.name} ({enhancer.kind}-enhanced)" if self.name else f"{enhancer.kind}-enhanced"
        return PromptSet(tuple(merged), tuple(merged.values()), name), enhancements
