"""The general (multi-prompt) high-level policy (reference facts §8): one π_H for a weighted set of prompts,
conditioned on the normalised CLIP text feature of its env's prompt.

* :class:`PromptSetGoal` — each env's frame against the CLIP text feature of that env's own prompt (the first term
  of Eq. 3, per env); prompts and weights come from a :class:`~anyskill.text.PromptSet`;
* :class:`GeneralHighLevelEnv` — a :class:`~anyskill.hlc.env.HighLevelEnv` on that goal whose observation is the
  223-D policy observation followed by the E-D (512) unit text feature of the env's prompt. Each episode draws its
  env's prompt by weight; reward (Eq. 3), early termination and resets are the per-prompt policy's, per env;
* :func:`~anyskill.hlc.train.train_hlc` trains the general policy when given a :class:`PromptSetGoal`;
  :meth:`~anyskill.hlc.policy.HighLevelPolicy.condition_on` fixes the prompt of the trained policy, so rollouts and
  :func:`evaluate_prompts` work for any prompt, in the set or not.

Two departures from the authors' general env, on purpose:

* their env never stores the current similarity, so a "decrease" is measured against 0 and the early-termination
  counter only grows while cos < 0 (which pretrained CLIP hardly ever gives). Here, as in the per-prompt policy,
  each env's similarity is compared with its own previous one, and the comparison restarts with the episode and so
  with the prompt;
* they re-draw an env's prompt mid-episode every U{30..89} LLC steps without ending the episode (facts §3.5), so
  a transition's reward and the next state's value can belong to different prompts; here the prompt is drawn at
  each episode start and held for the episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from anyskill.config.hlc import HLCEnvConfig
from anyskill.hlc.clip_goals import ClipFeatureGoal, RewardSource, TextGoal
from anyskill.hlc.env import HighLevelEnv
from anyskill.hlc.policy import HighLevelPolicy, load_hlc
from anyskill.hlc.rollout import evaluate
from anyskill.llc.controller import LowLevelController, load_llc
from anyskill.reward.clip_target import ClipTargetBank
from anyskill.text.enhancer import Enhancement
from anyskill.text.prompt_set import PromptSet

if TYPE_CHECKING:
    from anyskill.reward.clip_model import ClipModel
    from anyskill.reward.projection import StateProjection
    from anyskill.sim.render import StateRenderer

Tensor = torch.Tensor


class PromptSetGoal(ClipFeatureGoal):
    """cos(CLIP image feature of env n's frame, CLIP text feature of env n's prompt) for N envs pursuing prompts of
    ``prompts``. The env assigns the prompts (:meth:`assign`, ``prompt_ids`` (N,)); ``enhancements`` (optional)
    record how the texts were made, for the provenance. With ``render_interval``/``render_envs`` an env whose prompt
    changed keeps its held similarity until it is rendered again, as after a reset."""

    def __init__(self, clip_model: ClipModel, renderer: StateRenderer | None, prompts: PromptSet,
                 reward_source: RewardSource = "render", projection: StateProjection | None = None,
                 render_interval: int = 1, render_envs: int | None = None,
                 enhancements: Sequence[Enhancement] = ()):
        super().__init__(clip_model, renderer, None, reward_source, projection, render_interval, render_envs)
        self.prompt_set = prompts
        self.bank = ClipTargetBank(clip_model.encode_text(list(prompts.texts)))
        self.prompt_ids = torch.zeros(0, dtype=torch.long)
        self.enhancements = list(enhancements)
        self.description = (f"prompt set {prompts.name or 'custom'} ({len(prompts)} prompts) | CLIP "
                            f"{self.clip_weights} | reward source {reward_source}")
        self.spec = {"kind": "prompt_set", "prompts": prompts.record(), "reward_source": reward_source,
                     "clip_weights": clip_model.spec.weights}
        if self.enhancements:
            self.spec["enhancements"] = [e.record() for e in self.enhancements]

    @property
    def text_features(self) -> Tensor:
        """(P, E) unit CLIP text features of the prompts, in the set's order."""
        return self.bank.targets

    @property
    def condition_dim(self) -> int:
        """E, the size of the text feature appended to the policy observation."""
        return int(self.bank.targets.shape[1])

    def assign(self, env_ids: Tensor | None, prompt_ids: Tensor) -> None:
        """Envs ``env_ids`` (M,) now pursue prompts ``prompt_ids`` (M,) (indices into the set); ``env_ids`` None:
        all envs, as many as ``prompt_ids``."""
        prompt_ids = prompt_ids.detach().to("cpu", torch.long)
        if prompt_ids.numel() and (prompt_ids.min() < 0 or prompt_ids.max() >= len(self.prompt_set)):
            raise ValueError(f"prompt ids must be in [0, {len(self.prompt_set)}), got {prompt_ids.tolist()}")
        if env_ids is None:
            self.prompt_ids = prompt_ids.clone()
        else:
            self.prompt_ids[env_ids.detach().cpu()] = prompt_ids

    def _score(self, image_features: Tensor, env_ids: Tensor | None) -> Tensor:
        ids = self.prompt_ids if env_ids is None else self.prompt_ids[env_ids.cpu()]
        if len(ids) != len(image_features):
            raise RuntimeError(f"{len(image_features)} frames but {len(ids)} prompts assigned; the env assigns each "
                               "env's prompt (PromptSetGoal.assign) before it scores frames")
        return self.bank(image_features, ids)


class GeneralHighLevelEnv:
    """N humanoids, each pursuing its own prompt of ``goal.prompt_set``; the observation is (policy obs (223),
    text feature (E)) per env (module docstring). Same API as :class:`HighLevelEnv` (the latent action of
    ``cfg.latent_action`` included, anchored on the policy observation alone); ``infos["prompt_ids"]`` (N,) are the
    prompts the step was scored against."""

    def __init__(self, cfg: HLCEnvConfig, llc: LowLevelController, goal: PromptSetGoal, motion_lib=None,
                 backend=None, prior=None):
        self.inner = HighLevelEnv(cfg, llc, goal, motion_lib, backend, prior)
        self.goal = goal
        self.cfg = cfg
        self.num_envs = cfg.num_envs
        self.dt = self.inner.dt
        self.latent_dim = self.inner.latent_dim
        self.action_space = self.inner.action_space
        self.num_policy_obs = int(self.inner.observation_space.shape[0])
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_policy_obs + goal.condition_dim,),
                                                np.float32)
        self._gen = torch.Generator().manual_seed(cfg.seed + 2)

    def reset(self) -> dict[str, Tensor]:
        """Reset every env and draw every env's prompt; ``{"obs": (N, 223 + E)}``."""
        obs = self.inner.reset()["obs"]
        self.goal.assign(None, self.goal.prompt_set.sample(self.num_envs, self._gen))
        return {"obs": self.observation(obs)}

    def step(self, actions: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor, dict]:
        """:meth:`HighLevelEnv.step`; envs whose episode ended draw a new prompt for the next one."""
        scored_against = self.goal.prompt_ids.clone()
        obs_dict, reward, dones, infos = self.inner.step(actions)
        infos["prompt_ids"] = scored_against
        ended = dones.nonzero().flatten().cpu()
        if ended.numel():
            self.goal.assign(ended, self.goal.prompt_set.sample(len(ended), self._gen))
        return {"obs": self.observation(obs_dict["obs"])}, reward, dones, infos

    def observation(self, policy_obs: Tensor) -> Tensor:
        """(N, 223) policy observations -> (N, 223 + E) with each env's prompt feature appended."""
        features = self.goal.text_features.to(policy_obs.device)[self.goal.prompt_ids.to(policy_obs.device)]
        return torch.cat([policy_obs, features], dim=-1)


def evaluate_prompts(hlc: str | Path | HighLevelPolicy, llc: str | Path | LowLevelController,
                     goals: Sequence[TextGoal], seconds: float = 2.0, num_envs: int = 8, seed: int = 0,
                     deterministic: bool = True, motion_lib=None) -> pd.DataFrame:
    """Similarity of the policy's motion to each goal's prompt (:func:`~anyskill.hlc.rollout.evaluate`, ``num_envs``
    rollouts of ``seconds`` s each). A general policy is conditioned on each prompt in turn; a per-prompt policy
    runs as it is. Columns: ``prompt``, ``mean_similarity``, ``std_similarity`` (over envs)."""
    policy = load_hlc(hlc) if isinstance(hlc, (str, Path)) else hlc
    controller = load_llc(llc) if isinstance(llc, (str, Path)) else llc
    rows = []
    for goal in goals:
        if policy.condition_dim:
            policy.condition_on(goal.text_feature)
        ev = evaluate(policy, controller, goal, seconds=seconds, num_envs=num_envs, seed=seed,
                      deterministic=deterministic, motion_lib=motion_lib)
        rows.append({"prompt": goal.prompt, "mean_similarity": ev.mean_similarity,
                     "std_similarity": float(ev.similarity.std())})
    return pd.DataFrame(rows)
