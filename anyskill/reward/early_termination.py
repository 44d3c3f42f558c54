"""Early termination of the high-level policy's episodes (paper §3.3 and Algorithm 1).

"The environment is reset with an 80% probability following eight successive reductions in CLIP similarity, or
deterministically if the agent's head height falls below 15 cm."

``mode="successive"`` (default, the paper's text): the counter counts consecutive decreases and restarts at 0
whenever the similarity does not decrease. ``mode="cumulative"`` follows Algorithm 1 literally, where the counter
is only cleared when it fires or the env resets. ``mode="off"`` keeps only the head-height rule (the "w/o ET"
ablation of Table 1 also drops that rule when ``head_rule=False``).
"""

from __future__ import annotations

import torch

from anyskill.config.reward import EarlyTerminationConfig

Tensor = torch.Tensor


class EarlyTermination:
    """Per-env counters over LLC steps. ``step`` returns which envs must reset and why."""

    def __init__(self, num_envs: int, cfg: EarlyTerminationConfig = EarlyTerminationConfig(), device="cpu",
                 generator: torch.Generator | None = None):
        self.cfg = cfg
        self.counter = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.last = torch.full((num_envs,), float("nan"), device=device)
        self.generator = generator

    def reset(self, env_ids: Tensor) -> None:
        """Clear the counters of envs that were reset (their next similarity has no predecessor)."""
        self.counter[env_ids] = 0
        self.last[env_ids] = float("nan")

    def step(self, similarity: Tensor, head_height: Tensor) -> dict[str, Tensor]:
        """similarity (N,), head height (N,) m after one LLC step -> dict of (N,) bool: ``reset``, ``similarity``
        (the decrease rule fired and the 80 % draw said reset), ``fallen`` (head below the threshold)."""
        cfg = self.cfg
        fallen = head_height < cfg.head_height if cfg.head_rule else torch.zeros_like(similarity, dtype=torch.bool)
        fired = torch.zeros_like(fallen)
        if cfg.mode != "off":
            decreased = similarity < self.last  # False where last is NaN
            if cfg.mode == "successive":
                self.counter = torch.where(decreased, self.counter + 1, torch.zeros_like(self.counter))
            else:
                self.counter = self.counter + decreased.long()
            hit = self.counter >= cfg.decreases
            self.counter[hit] = 0
            draw = torch.rand(similarity.shape, device=similarity.device, generator=self.generator)
            fired = hit & (draw < cfg.reset_prob)
        self.last = similarity.detach().clone()
        reset = fired | fallen
        self.reset(reset.nonzero().flatten())
        return {"reset": reset, "similarity": fired, "fallen": fallen}
