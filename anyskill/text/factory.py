"""Building an enhancer by name: :func:`make_enhancer` (``"llm"``, ``"offline"`` or ``"none"``), above the interface
(:mod:`anyskill.text.enhancer`) and both implementations (:mod:`anyskill.text.lexicon`, :mod:`anyskill.text.llm`)."""

from __future__ import annotations

import warnings
from typing import Any

from anyskill.text.enhancer import ENHANCER_KINDS, EnhancementFallbackWarning, NoEnhancer, TextEnhancer
from anyskill.text.lexicon import OfflineEnhancer


def make_enhancer(kind: str = "offline", **llm_options: Any) -> TextEnhancer:
    """The enhancer ``kind`` ("llm", "offline" or "none").

    ``"llm"`` reads its server from ``llm_options`` (``model``, ``base_url``, ``api_key``, ``timeout_s``,
    ``cache_path``, ... of :class:`~anyskill.text.llm.LLMSettings`) and the ``ANYSKILL_LLM_*`` environment
    variables; with no model configured it warns and returns the offline enhancer.
    """
    if kind == "none":
        return NoEnhancer()
    if kind == "offline":
        return OfflineEnhancer()
    if kind != "llm":
        raise ValueError(f"unknown enhancer {kind!r}; choose one of {ENHANCER_KINDS}")
    from anyskill.config.llm import ENV_MODEL, LLMSettings
    from anyskill.text.llm import LLMEnhancer

    settings = LLMSettings.from_env(**llm_options)
    if settings is None:
        warnings.warn(f"no LLM configured (set {ENV_MODEL}, and ANYSKILL_LLM_BASE_URL for a local server): "
                      "using the offline enhancer", EnhancementFallbackWarning, stacklevel=2)
        return OfflineEnhancer()
    return LLMEnhancer(settings)
