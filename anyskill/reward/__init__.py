"""Reward of the high-level policy: CLIP model (``clip_model``: open_clip weights, and through its weights registry
``WEIGHT_PROVIDERS`` other text–image models such as :mod:`anyskill.domain`), Eq. 3 and variants (``similarity``,
``variants``), early termination, the state projection and its fidelity, the fast CPU image encoder. Their settings
(``RewardConfig``, ``EarlyTerminationConfig``) live in :mod:`anyskill.config.reward`."""
