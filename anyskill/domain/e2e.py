"""End to end with the domain model's reward: does a text prompt make the humanoid do what the text says?

For each prompt a high-level policy is trained (:func:`anyskill.hlc.train.train_hlc`) on the frozen controller with
the text reward of a :class:`~anyskill.reward.clip_model.ClipModel` — the domain model ("domain model of this
humanoid, closed vocabulary — not CLIP", state-projection reward) or random ViT-B/32 weights (the floor, with a
projection fitted the same way to its features) — and the **attribute the prompt names** is measured from the rollout's
body positions by the captioner's rules (:func:`~anyskill.domain.captions.measure_facts`), e.g. the fraction of
frames with both hands above the head, before (the run's untrained ``initial.pth``) and after training.

:class:`RecordingGoal` wraps a goal and keeps the states it scored, so the measurement uses
:func:`anyskill.hlc.rollout.evaluate` unchanged.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyskill.config.domain import E2ESettings
from anyskill.config.hlc import HLCEnvConfig
from anyskill.config.reward import EARLY_TERMINATIONS
from anyskill.domain.captions import measure_facts, measure_quantities
from anyskill.domain.data import DomainData
from anyskill.hlc.clip_goals import TextGoal
from anyskill.hlc.goal import Goal, HumanoidStates
from anyskill.hlc.rollout import evaluate
from anyskill.hlc.train import train_hlc
from anyskill.reward.clip_model import ClipModel
from anyskill.reward.projection import StateProjection

Tensor = torch.Tensor

E2E_PROMPTS: dict[str, str] = {
    "raise both arms above the head": "both_arms_up",
    "squat down": "squat",
    "bow": "bent_forward",
    "kick with the right leg": "right_kick",
    "wave with the right hand": "right_hand_raised",
}
"""Prompt -> the fact (:data:`~anyskill.domain.captions.FACTS`) measured for it."""
OPPOSITES: dict[str, str] = {"raise both arms above the head": "arms down by the sides"}
QUANTITY: dict[str, str] = {"both_arms_up": "hands_over_head", "right_hand_raised": "right_hand_over_shoulder",
                            "squat": "pelvis_height", "bent_forward": "forward_tilt_deg",
                            "right_kick": "right_foot_forward"}
"""A continuous measurement per fact, reported beside the fraction of frames (m or deg, see measure_quantities)."""


class RecordingGoal:
    """A goal that scores with ``goal`` and keeps every state it was shown: body_pos (T, N, 15, 3), body_rot."""

    def __init__(self, goal: Goal):
        self.goal = goal
        self.description = goal.description
        self.spec = goal.spec
        self.body_pos: list[Tensor] = []
        self.body_rot: list[Tensor] = []

    def similarity(self, states: HumanoidStates) -> Tensor:
        self.body_pos.append(states.body_pos.detach().cpu().clone())
        self.body_rot.append(states.body_rot.detach().cpu().clone())
        return self.goal.similarity(states)


def rollout_facts(body_pos: Tensor, body_rot: Tensor, dt: float) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """States (T, N, 15, 3) m and (T, N, 15, 4) of N envs every ``dt`` s -> facts and quantities, each (T * N,)."""
    root = body_pos[:, :, 0]
    vel = torch.zeros_like(root)
    if len(root) > 1:
        vel[1:-1] = (root[2:] - root[:-2]) / (2 * dt)
        vel[0], vel[-1] = (root[1] - root[0]) / dt, (root[-1] - root[-2]) / dt
    flat = (body_pos.flatten(0, 1), body_rot[:, :, 0].flatten(0, 1), vel.flatten(0, 1))
    q = measure_quantities(*flat)
    q["hands_over_head"] = torch.minimum(q["right_hand_over_head"], q["left_hand_over_head"])
    return measure_facts(*flat), q


@torch.no_grad()
def measure_policy(checkpoint: str | Path, llc: str | Path, goal: Goal, fact: str, seconds: float = 4.0,
                   num_envs: int = 8, seed: int = 100, motion_lib=None,
                   upright: bool = False) -> dict[str, float | None]:
    """Deterministic rollouts of a policy: fraction of frames with ``fact``, the mean of its quantity, the goal's
    mean similarity and the fraction of frames fallen; ``upright``: also the fraction and the quantity over the
    frames that are not fallen (None when every frame is)."""
    rec = RecordingGoal(goal)
    ev = evaluate(checkpoint, llc, rec, seconds=seconds, num_envs=num_envs, seed=seed, motion_lib=motion_lib)
    facts, q = rollout_facts(torch.stack(rec.body_pos[1:]), torch.stack(rec.body_rot[1:]), 1.0 / 30.0)
    quantity = q[QUANTITY.get(fact, "speed")]
    out: dict[str, float | None] = {
        "fact_rate": float(facts[fact].float().mean()), "quantity": float(quantity.mean()),
        "similarity": ev.mean_similarity, "fallen_rate": float(facts["fallen"].float().mean())}
    if upright:
        up = ~facts["fallen"]
        out["upright_fact_rate"] = float(facts[fact][up].float().mean()) if up.any() else None
        out["upright_quantity"] = float(quantity[up].mean()) if up.any() else None
    return out


def train_and_measure(clip_model: ClipModel, projection: StateProjection, prompt: str, fact: str,
                      llc: str | Path, out_dir: str | Path, settings: E2ESettings = E2ESettings(),
                      motion_lib=None, reward_source: str = "projection", upright: bool = False) -> dict[str, Any]:
    """Train π_H on ``prompt`` with the ``reward_source`` ("projection" or "render": every frame rendered with the
    default camera and encoded) reward of ``clip_model`` and measure ``fact`` before / after (``upright``: also on the
    frames not fallen, :func:`measure_policy`). The measurement reads body positions only, so it always rolls out
    with the projection goal (its similarity column is the projection's)."""
    goal = TextGoal(clip_model, None, prompt, reward_source="projection", projection=projection)
    train_goal: Goal = goal
    if reward_source == "render":
        from anyskill.humanoid.model import load_humanoid
        from anyskill.sim.camera import CameraSpec
        from anyskill.sim.render import StateRenderer

        renderer = StateRenderer(load_humanoid().mj_model(), CameraSpec())  # as the training renders
        train_goal = TextGoal(clip_model, renderer, prompt, reward_source="render")
    elif reward_source != "projection":
        raise ValueError(f"reward_source must be 'projection' or 'render', not {reward_source!r}")
    s = settings
    overrides = {"network": {"units": s.units}, "learning_rate": s.learning_rate, "horizon_length": s.horizon,
                 "minibatch_size": s.num_envs * s.horizon // 2, "mini_epochs": 4}
    t0 = time.perf_counter()
    result = train_hlc(train_goal, llc, "laptop", out_dir, seed=s.seed, num_envs=s.num_envs, max_epochs=s.epochs,
                       env_config=HLCEnvConfig(episode_length=s.episode_length, latent_action=s.latent_action,
                                               anchor_scale=s.anchor_scale,
                                               early_termination=EARLY_TERMINATIONS[s.early_termination]),
                       overrides=overrides, motion_lib=motion_lib, progress=False)
    train_s = time.perf_counter() - t0
    row: dict[str, Any] = {"prompt": prompt, "fact": fact, "model": clip_model.spec.description,
                           "reward_source": reward_source, "latent_action": s.latent_action,
                           "anchor_scale": s.anchor_scale if s.latent_action != "free" else None,
                           "early_termination": s.early_termination, "num_envs": s.num_envs, "epochs": s.epochs,
                           "train_s": round(train_s, 1)}
    assert result.initial_checkpoint is not None  # train_hlc always writes it
    for tag, ckpt in (("before", result.initial_checkpoint), ("after", result.checkpoint)):
        m = measure_policy(ckpt, llc, goal, fact, s.eval_seconds, s.eval_envs, motion_lib=motion_lib, upright=upright)
        row.update({f"{tag}_{k}": None if v is None else round(v, 4) for k, v in m.items()})
    return row


def fit_random_projection(clip_model: ClipModel, frames: Tensor, body_pos: Tensor, epochs: int = 60,
                          seed: int = 0) -> tuple[StateProjection, float]:
    """A projection from body positions (N, 15, 3) to ``clip_model``'s features of ``frames`` (N, H, W, 3), fitted as
    for the domain model (for the random-weight floor). Returns it and its held-out cosine."""
    from anyskill.reward.projection import fit_projection

    feats = clip_model.encode_images(frames)
    torch.manual_seed(seed)
    net = StateProjection(body_pos.shape[1], feats.shape[1], (256,))
    fit = fit_projection(net, body_pos.float(), feats, epochs=epochs, seed=seed)
    return net.eval(), fit.final_val_cosine


def random_floor(data: DomainData, frames: int = 200, seed: int = 0) -> tuple[ClipModel, StateProjection, float]:
    """The random-weight floor of the table: random ViT-B/32 weights and a projection fitted to their features of
    ``frames`` training frames of ``data`` (a seeded draw), as the domain model's own. Returns the model, the
    projection and its held-out cosine."""
    from anyskill.reward.clip_model import ClipSpec

    train = (~data.heldout).nonzero().flatten()
    pick = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:frames]]
    model = ClipModel(ClipSpec(weights="random"))
    projection, cosine = fit_random_projection(model, data.frames[pick], data.body_pos[pick], seed=seed)
    return model, projection, cosine


def run_domain_e2e(domain: ClipModel, llc: str | Path, out_dir: str | Path, prompts: dict[str, str] | None = None,
                   random_model: ClipModel | None = None, random_projection: StateProjection | None = None,
                   settings: E2ESettings = E2ESettings(), motion_lib=None, render_prompts: tuple[str, ...] = (),
                   render_settings: E2ESettings | None = None, notes: list[str] | None = None,
                   opposites: dict[str, str] | None = None, upright: bool = False) -> dict[str, Any]:
    """Train and measure every prompt with the domain model's projection reward (and the random floor when given),
    each of ``opposites`` (prompt -> its opposite, measured on the prompt's fact, which it should lower) and each of
    ``render_prompts`` with its rendered reward (``render_settings``, default ``settings``); ``upright``: also the
    rates on the frames not fallen. Writes ``e2e.json`` in ``out_dir`` and returns the record."""
    prompts = prompts or E2E_PROMPTS
    projection = getattr(domain.model, "projection", None)
    if projection is None:
        raise ValueError("the domain model checkpoint has no state projection")
    out = Path(out_dir)
    rows = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        print(row, flush=True)

    for i, (prompt, fact) in enumerate(prompts.items()):
        add(train_and_measure(domain, projection, prompt, fact, llc, out / f"domain_{i}", settings, motion_lib,
                              upright=upright))
        if random_model is not None and random_projection is not None:
            add(train_and_measure(random_model, random_projection, prompt, fact, llc, out / f"random_{i}",
                                  settings, motion_lib, upright=upright))
    for i, (prompt, opposite) in enumerate((opposites or {}).items()):
        add(train_and_measure(domain, projection, opposite, {**E2E_PROMPTS, **prompts}[prompt], llc,
                              out / f"opposite_{i}", settings, motion_lib, upright=upright))
    rs = render_settings or settings
    for i, prompt in enumerate(render_prompts):
        add(train_and_measure(domain, projection, prompt, prompts[prompt], llc, out / f"render_{i}", rs, motion_lib,
                              reward_source="render", upright=upright))

    def plain(x: E2ESettings) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in x.__dict__.items()}

    record = {"rows": rows, "settings": plain(settings), "llc": Path(llc).name,
              "domain_model": domain.spec.description, "notes": list(notes or [])}
    if render_prompts:
        record["render_settings"] = plain(rs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.json").write_text(json.dumps(record, indent=1, default=lambda o: np.asarray(o).tolist()))
    return record
