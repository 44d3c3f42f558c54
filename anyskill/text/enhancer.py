"""Text enhancement (paper §4.3, Fig. 6): a vague instruction is rewritten as a specific description of body parts and
poses before CLIP encodes it ("wave hi" -> "raised arm bent at the elbow").

    enhancer = make_enhancer("llm")         # the LLM when one is configured, else the offline lexicon (warning)
    e = enhancer.enhance("wave hi")
    e.text, e.record()                      # what CLIP gets; the provenance (enhancer, model, note)

Three :class:`TextEnhancer` implementations: :class:`NoEnhancer` (the text as given), the
:class:`~anyskill.text.lexicon.OfflineEnhancer` (a curated lexicon of activity words, no network) and the
:class:`~anyskill.text.llm.LLMEnhancer` (an OpenAI-compatible chat-completions server; falls back to the offline
enhancer, with an :class:`EnhancementFallbackWarning`, whenever the server cannot give a valid reply in time).
This module is the interface both implement; :func:`anyskill.text.factory.make_enhancer` (``anyskill.text.
make_enhancer``) builds one by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

EnhancerKind = Literal["llm", "offline", "none"]
ENHANCER_KINDS: tuple[str, ...] = ("llm", "offline", "none")


class EnhancementFallbackWarning(UserWarning):
    """The requested enhancer could not be used (no LLM configured, or no valid reply in time); another was."""


@dataclass(frozen=True)
class Enhancement:
    """One prompt before and after enhancement.

    ``text`` is what CLIP encodes (fits its 77-token context); ``enhancer`` is the one that produced it ("llm",
    "offline" or "none"), ``model`` the LLM's name, "offline" or "none"; ``note`` says what happened (lexicon
    entries matched, why an LLM fell back); ``cached``: the LLM reply came from the disk cache.
    """

    original: str
    text: str
    enhancer: str
    model: str
    note: str = ""
    cached: bool = False

    @property
    def changed(self) -> bool:
        """The text differs from the original (beyond whitespace)."""
        return self.text != " ".join(self.original.split())

    def record(self) -> dict[str, Any]:
        """JSON-able provenance of this enhancement."""
        return {"original": self.original, "text": self.text, "enhancer": self.enhancer, "model": self.model,
                "note": self.note, "cached": self.cached}


@runtime_checkable
class TextEnhancer(Protocol):
    """Rewrites a prompt into a more specific one. ``kind``: "llm", "offline" or "none"; ``model``: the LLM's name,
    "offline" or "none"; ``description``: a provenance line (for an LLM: model and server, never the key)."""

    kind: str

    @property
    def model(self) -> str: ...

    @property
    def description(self) -> str: ...

    def enhance(self, prompt: str) -> Enhancement: ...


class NoEnhancer:
    """The prompt as given (the paper's "w/o text-enhance" ablation)."""

    kind = "none"
    model = "none"

    @property
    def description(self) -> str:
        return "none (prompts used as given)"

    def enhance(self, prompt: str) -> Enhancement:
        return Enhancement(prompt, check_prompt(prompt), "none", "none")


def enhancer_provenance(enhancer: TextEnhancer) -> dict[str, str]:
    """What a result records about its enhancer: ``enhancer`` (the description line), ``enhancer_kind`` and
    ``llm_model`` (the LLM's name, or "offline" / "none" when no LLM was asked). An LLM enhancer's per-prompt
    fallbacks show in each :meth:`Enhancement.record` (``enhancer``, ``model``, ``note``)."""
    return {"enhancer": enhancer.description, "enhancer_kind": enhancer.kind, "llm_model": enhancer.model}


def check_prompt(prompt: str) -> str:
    """``prompt`` stripped; a ValueError when it is empty."""
    text = " ".join(str(prompt).split())
    if not text:
        raise ValueError("cannot enhance an empty prompt; give the instruction as text, e.g. 'wave hi'")
    return text
