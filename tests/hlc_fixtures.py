"""A hand-built low-level controller for the high-level policy tests, and helpers.

No trained CALM controller can be made in seconds, and an untrained one falls whatever its latent, which gives the
high-level policy nothing to choose. :func:`build_arm_llc` writes a CALM checkpoint (the real network classes,
loadable by :func:`anyskill.llc.load_llc`) whose weights are set by hand so that the mean action is

    a = a_stand + C tanh(g P z)

independent of the observation: the straight standing pose held by the PD controllers, plus arm (shoulder and
elbow) targets that depend on the latent through 16 fixed orthonormal directions P. The humanoid stands, the
latent moves its arms, and the pose reached under a latent z* is a reachable goal with a known optimum.
"""

from __future__ import annotations

from pathlib import Path

import torch

from anyskill.config import CALMNetworkConfig
from anyskill.humanoid.model import load_humanoid
from anyskill.llc.controller import LowLevelController

STYLE_DIM = 16
ARM_JOINTS = ("right_shoulder_x", "right_shoulder_y", "right_shoulder_z", "right_elbow",
              "left_shoulder_x", "left_shoulder_y", "left_shoulder_z", "left_elbow")


def arm_llc_config() -> dict:
    net = CALMNetworkConfig(enc_units=(64,), style_units=(2 * STYLE_DIM,), style_dim=STYLE_DIM,
                            actor_units=(2 * STYLE_DIM, 2 * STYLE_DIM), critic_units=(32,), disc_units=(32,))
    return {"network": net.to_params(), "obs_dim": 223, "actions_num": 28, "normalize_input": True,
            "normalize_value": True, "calm": {}}


@torch.no_grad()
def build_arm_llc(path: Path, gain: float = 3.0, arm_scale: float = 0.6, seed: int = 0) -> Path:
    """Write the hand-built controller (module docstring) to ``path`` (.pth); returns the path."""
    gen = torch.Generator().manual_seed(seed)
    cfg = arm_llc_config()
    llc = LowLevelController(cfg)
    actor = llc.model.calm.actor
    latent, obs_dim, s = 64, cfg["obs_dim"], STYLE_DIM
    proj = torch.linalg.qr(torch.randn(latent, s, generator=gen))[0].T  # (16, 64) orthonormal rows
    eye = torch.eye(s)
    actor.style_trunk[0].weight.copy_(gain * torch.cat([proj, -proj]))
    actor.style_trunk[0].bias.zero_()
    actor.style_head.weight.copy_(torch.cat([eye, -eye], dim=1))
    actor.style_head.bias.zero_()
    first = torch.zeros(2 * s, obs_dim + s)
    first[:s, obs_dim:] = eye
    first[s:, obs_dim:] = -eye
    actor.trunk[0].weight.copy_(first)
    actor.trunk[0].bias.zero_()
    actor.trunk[2].weight.copy_(torch.eye(2 * s))
    actor.trunk[2].bias.zero_()
    model = load_humanoid()
    offset, scale = (torch.as_tensor(x, dtype=torch.float32) for x in model.pd_offset_scale)
    stand = (-offset / scale).clamp(-1, 1)
    mix = torch.zeros(28, s)
    arm = [model.dof_names.index(n) for n in ARM_JOINTS]
    mix[arm] = arm_scale * torch.randn(len(arm), s, generator=gen) / s**0.5
    actor.out.weight.copy_(torch.cat([mix, -mix], dim=1))
    actor.out.bias.copy_(stand)
    path = Path(path)
    torch.save({"model": llc.model.state_dict(), "calm_config": cfg, "latent_basis": proj}, path)
    return path


class DecreasingGoal:
    """Fake goal whose similarity falls by 0.01 at every call, the same for every env."""

    description = "decreasing (test)"
    spec = {"kind": "test"}

    def __init__(self):
        self.calls = 0

    def similarity(self, states) -> torch.Tensor:
        self.calls += 1
        return torch.full((states.body_pos.shape[0],), 1.0 - 0.01 * self.calls)


class HeightGoal:
    """Fake goal: similarity = pelvis height (m), so rising is rewarded and every env differs."""

    description = "pelvis height (test)"
    spec = {"kind": "test"}

    def similarity(self, states) -> torch.Tensor:
        return states.body_pos[:, 0, 2].clone()


@torch.no_grad()
def reachable_pose_goal(llc_path: Path, sigma: float = 0.1, candidates: int = 16, seed: int = 1):
    """A pose the hand-built controller reaches: among ``candidates`` latents in its latent subspace, the one whose
    pose after 1 s is farthest from the standing pose while the humanoid still stands at 2 s. Returns
    (PoseGoal of that pose, its distance to the standing pose in m)."""
    import torch.nn.functional as F

    from anyskill.hlc.goal import HumanoidStates
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.llc import load_llc
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    llc = load_llc(llc_path)
    basis = torch.load(llc_path, weights_only=True)["latent_basis"]
    gen = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(candidates, STYLE_DIM, generator=gen), dim=1) @ basis
    env = HumanoidEnv(EnvConfig(num_envs=candidates, fall_init_prob=0.0, enable_early_termination=False))
    obs = env.reset()["obs"]
    rest = HumanoidStates.from_backend(env.backend)
    for t in range(60):
        obs = env.step(llc.act(obs, z))[0]["obs"]
        if t == 29:
            pose, pose_rot = env.backend.body_pos().clone(), env.backend.body_rot().clone()
    standing = env.backend.body_pos()[:, 2, 2] > 1.2
    dist = torch.stack([PoseGoal(pose[i], pose_rot[i, 0]).error(rest)[0] for i in range(candidates)])
    dist[~standing] = -1.0
    i = int(dist.argmax())
    return PoseGoal(pose[i], pose_rot[i, 0], sigma=sigma, name=f"hand-built LLC latent {i}"), float(dist[i])
