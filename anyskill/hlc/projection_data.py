"""Data and timing for the state projection (paper §3.3): (body positions -> CLIP image feature) pairs.

The paper replaces render + CLIP encode by an MLP from the agent's state to the CLIP image feature, fitted with an
MSE loss on states collected during rendered high-level training, and reports a 10.4x faster training. Here:

* :func:`collect_projection_pairs` renders rollouts of the frozen LLC under random latents (reference-window
  encodings, resampled every ``latent_steps`` LLC steps) and stores each frame's 15 body positions (m, env frame)
  with the CLIP feature of its render;
* :func:`train_projection` fits :class:`anyskill.reward.projection.StateProjection` on them and reports the
  held-out cosine similarity between predicted and true features;
* :func:`measure_projection_speedup` times whole HLC training iterations with ``reward_source="render"`` and
  ``"projection"`` on the same machine.

With random CLIP weights (``ClipSpec(weights="random")``) the image features are nearly constant across poses, so a
high held-out cosine says nothing about quality; the timings are real either way.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from anyskill.llc.controller import LowLevelController
from anyskill.reward.projection import ProjectionFit, StateProjection, fit_projection
from anyskill.sim.env import EnvConfig, HumanoidEnv

if TYPE_CHECKING:
    from anyskill.reward.clip_model import ClipModel
    from anyskill.sim.render import StateRenderer

Tensor = torch.Tensor

RANDOM_WEIGHTS_NOTE = ("CLIP weights are random: image features are nearly constant across poses, so the held-out "
                       "cosine is not a measure of projection quality")


@dataclass
class ProjectionData:
    """M collected pairs: body_pos (M, 15, 3) m, env frame; features (M, E) unit-norm CLIP image features."""

    body_pos: Tensor
    features: Tensor
    clip_weights: str

    def __len__(self) -> int:
        return int(self.body_pos.shape[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"body_pos": self.body_pos, "features": self.features, "clip_weights": self.clip_weights}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProjectionData:
        d = torch.load(path, weights_only=True)
        return cls(d["body_pos"], d["features"], d["clip_weights"])


@torch.no_grad()
def collect_projection_pairs(llc: LowLevelController, clip_model: ClipModel, renderer: StateRenderer,
                             num_frames: int = 2048, num_envs: int = 8, latent_steps: int = 30, seed: int = 0,
                             motion_lib=None, progress: bool = False) -> ProjectionData:
    """Render ``num_frames`` frames of LLC rollouts under random latents and CLIP-encode them.

    Envs start from the standing pose or a random library state (hybrid init) and reset on falls; each env's latent
    is the LLC encoding of a random 2-s library window, resampled every ``latent_steps`` LLC steps.
    """
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()
    env = HumanoidEnv(EnvConfig(num_envs=num_envs, state_init="hybrid", fall_init_prob=0.0, episode_length=300,
                                seed=seed), motion_lib=motion_lib)
    gen = torch.Generator().manual_seed(seed)

    def new_latents(n: int) -> Tensor:
        _, _, windows = motion_lib.sample_amp_windows(n, llc.enc_steps, env.dt, generator=gen)
        return llc.encode(windows)

    obs = env.reset()["obs"]
    z = new_latents(num_envs)
    body_pos, features = [], []
    steps = -(-num_frames // num_envs)
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="projection pairs")
    for t in it:
        if t and t % latent_steps == 0:
            z = new_latents(num_envs)
        obs = env.step(llc.act(obs, z))[0]["obs"]
        b = env.backend
        body_pos.append(b.body_pos().clone())
        features.append(clip_model.encode_images(renderer.render_qpos(b.qpos())).cpu())
    return ProjectionData(torch.cat(body_pos)[:num_frames], torch.cat(features)[:num_frames],
                          clip_model.spec.description)


def train_projection(data: ProjectionData, epochs: int = 50, hidden: tuple[int, ...] = (512,), lr: float = 1e-3,
                     batch_size: int = 256, seed: int = 0,
                     progress: bool = False) -> tuple[StateProjection, ProjectionFit]:
    """Fit a :class:`StateProjection` (45 -> hidden -> E, MSE) on ``data``; 20 % held out for the cosine report."""
    torch.manual_seed(seed)
    net = StateProjection(num_bodies=data.body_pos.shape[1], embed_dim=data.features.shape[1], hidden=hidden)
    fit = fit_projection(net, data.body_pos.float(), data.features.float(), epochs=epochs, batch_size=batch_size,
                         lr=lr, seed=seed, progress=progress)
    return net.eval(), fit


def measure_projection_speedup(llc_checkpoint: str | Path, clip_model: ClipModel, renderer: StateRenderer,
                               projection: StateProjection, prompt: str = "a person raises both arms",
                               num_envs: int = 8, epochs: int = 3, horizon_length: int = 4, seed: int = 0,
                               motion_lib=None, out_dir: str | Path | None = None) -> dict:
    """Wall time of one HLC training iteration (rollout of ``horizon_length`` HLC steps x ``num_envs`` envs + PPO
    update) with the rendered CLIP reward vs the projection MLP, same settings, same machine.

    Returns seconds per iteration (median over epochs after the first, which includes warm-up), the speed-up
    render / projection, the paper's 10.4x for comparison and what was measured.
    """
    from anyskill.config.hlc import HLCEnvConfig
    from anyskill.hlc.clip_goals import TextGoal
    from anyskill.hlc.train import train_hlc

    if epochs < 2:
        raise ValueError(f"epochs must be >= 2 (the first is warm-up and is not timed), got {epochs}")
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()
    overrides = {"horizon_length": horizon_length, "minibatch_size": horizon_length * num_envs}
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp)
        for source in ("render", "projection"):
            goal = TextGoal(clip_model, renderer, prompt, reward_source=source, projection=projection)
            result = train_hlc(goal, llc_checkpoint, "smoke", root / source, seed=seed, num_envs=num_envs,
                               max_epochs=epochs, motion_lib=motion_lib, overrides=overrides, progress=False)
            wall = [s["wall_time_s"] for s in result.epoch_stats]
            times[source] = statistics.median([b - a for a, b in itertools.pairwise(wall)])
    return {
        "render_s_per_iteration": times["render"],
        "projection_s_per_iteration": times["projection"],
        "speedup": times["render"] / times["projection"],
        "paper_speedup": 10.4,
        "num_envs": num_envs,
        "horizon_length": horizon_length,
        "frames_per_iteration": num_envs * horizon_length * HLCEnvConfig().llc_steps,
        "timed_epochs": epochs - 1,
        "clip_weights": clip_model.spec.description,
        "clip_device": str(clip_model.device),
    }
