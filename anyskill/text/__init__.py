"""Text for the high-level policy: prompt enhancement (paper §4.3, Fig. 6) and weighted prompt sets (the general
policy).

* :mod:`anyskill.text.enhancer` — :class:`Enhancement`, the :class:`TextEnhancer` interface;
* :mod:`anyskill.text.factory` — :func:`make_enhancer`, an enhancer by name;
* :mod:`anyskill.text.lexicon` — the offline enhancer and its curated lexicon;
* :mod:`anyskill.text.llm` — the OpenAI-compatible chat-completions enhancer (timeouts, retries, fallback);
* :mod:`anyskill.text.cache` — the JSONL cache of LLM replies;
* :mod:`anyskill.text.clip_context` — CLIP's 77-token context and cutting a text to fit it;
* :mod:`anyskill.text.prompt_set` — :class:`PromptSet`, YAML ``{weight, text}`` lists.
"""

from anyskill.text.enhancer import (
    ENHANCER_KINDS,
    Enhancement,
    EnhancementFallbackWarning,
    NoEnhancer,
    TextEnhancer,
    enhancer_provenance,
)
from anyskill.text.factory import make_enhancer
from anyskill.text.lexicon import LEXICON, OfflineEnhancer
from anyskill.text.llm import LLMEnhancer, LLMError, LLMSettings
from anyskill.text.prompt_set import PromptSet, PromptSetError

__all__ = [
    "ENHANCER_KINDS", "LEXICON", "Enhancement", "EnhancementFallbackWarning", "LLMEnhancer", "LLMError", "LLMSettings",
    "NoEnhancer", "OfflineEnhancer", "PromptSet", "PromptSetError", "TextEnhancer", "enhancer_provenance",
    "make_enhancer",
]
