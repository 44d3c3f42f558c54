"""The domain text–image model of this humanoid (**closed vocabulary — not CLIP**): a small text–image model the
project trains on renders of its own humanoid, so that the text reward means something offline, where no pretrained
CLIP weights can be fetched. One idea, one folder:

* :mod:`anyskill.domain.captions` — what a frame shows, measured from its body positions (facts, phrasings);
* :mod:`anyskill.domain.data` — captioned renders: clip replays and controller rollouts (:class:`DomainData`);
* :mod:`anyskill.domain.model` — the two towers, the checkpoint, :func:`load_domain_model`, and what notebooks use to
  pick and label the reward model (:func:`choose_clip_weights`, :func:`reward_model_note`);
* :mod:`anyskill.domain.train` — multi-positive InfoNCE training and the state projection fitted to the model;
* :mod:`anyskill.domain.evaluate` — held-out retrieval and per-attribute accuracy;
* :mod:`anyskill.domain.build` — data -> training -> metrics -> checkpoint + model card (``anyskill
  train-domain-clip``);
* :mod:`anyskill.domain.e2e` — the end-to-end check: high-level policies trained with the model's reward, the
  prompt's attribute measured (``anyskill domain-e2e``);
* :mod:`anyskill.domain.cli` — those two commands.

Its settings live in :mod:`anyskill.config.domain`. The reward layer below reaches it one way only: its weights
registry (:data:`anyskill.reward.clip_model.WEIGHT_PROVIDERS`) maps ``ClipSpec(weights="anyskill-domain")`` to
:mod:`anyskill.domain.model`, whose ``load_weights`` gives :class:`~anyskill.reward.clip_model.ClipModel` an
open_clip-like model.
"""

from anyskill.domain.model import (
    DOMAIN_LABEL,
    DOMAIN_WEIGHTS,
    SHIPPED_DOMAIN_MODEL,
    DomainTextImageModel,
    choose_clip_weights,
    load_domain_model,
    reward_model_note,
)

__all__ = ["DOMAIN_LABEL", "DOMAIN_WEIGHTS", "SHIPPED_DOMAIN_MODEL", "DomainTextImageModel", "choose_clip_weights",
           "load_domain_model", "reward_model_note"]
