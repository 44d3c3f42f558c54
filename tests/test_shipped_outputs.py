"""The shipped checkpoints give the outputs recorded in ``tests/data/shipped_outputs.npz``.

The reference file was written by ``python tests/test_shipped_outputs.py --record`` (first before the architecture
redesign of issue 10, re-recorded when the retrained laptop controller was shipped and again when the tracking
route's distilled student replaced CALM as the shipped controller, when the robust student, distilled on
switched and random latents too, replaced that one, and when its RL fine-tune on random latents replaced it); this
test recomputes every entry with the current code. It checks the whole inference path of the shipped low-level
controller: the motion library's AMP windows and policy observations (humanoid FK, observation functions), the
encoder's latents, the policy's actions, the discriminator's logits (NaN for the student, which has none: NaN must
stay NaN), a short deterministic rollout in the MuJoCo env, and a few high-level env steps toward a pose goal on top
of it (Eq. 3 reward with early termination). Re-record only on purpose (a new shipped checkpoint, a deliberate
change of behaviour).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REFERENCE = Path(__file__).resolve().parent / "data" / "shipped_outputs.npz"
CLIP_IDS = (0, 3, 6, 9, 12, 15)
TIME_FRACTIONS = (0.9, 0.5, 0.75, 0.3, 1.0, 0.6)
ROLLOUT_ENVS, ROLLOUT_STEPS = 3, 10
HLC_ENVS, HLC_STEPS = 3, 2
NETWORK_TOL = dict(rtol=1e-5, atol=1e-6)
ROLLOUT_TOL = dict(rtol=1e-4, atol=1e-5)  # physics over 10 steps: allow float round-off of another CPU


def compute_outputs() -> dict[str, np.ndarray]:
    """Every recorded quantity, computed with the current code on one CPU thread."""
    from anyskill.data import default_library
    from anyskill.hlc.env import HighLevelEnv, HLCEnvConfig
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.humanoid.obs import policy_obs
    from anyskill.llc import load_llc
    from anyskill.llc.shipped import shipped_llc
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    torch.set_num_threads(1)
    llc = load_llc(shipped_llc("llc_laptop.pth"))
    lib = default_library()
    dt = 1.0 / 30.0
    ids = torch.tensor(CLIP_IDS)
    times = lib.durations[ids] * torch.tensor(TIME_FRACTIONS)
    out: dict[str, torch.Tensor] = {}

    # networks on library data
    out["enc_windows"] = lib.amp_obs_window(ids, times, llc.enc_steps, dt)
    out["latents"] = llc.encode(out["enc_windows"])
    s = lib.state_at(ids, times)
    out["policy_obs"] = policy_obs(s.body_pos, s.body_rot, s.body_vel, s.body_ang_vel)
    out["actions"] = llc.act(out["policy_obs"], out["latents"])
    out["disc_windows"] = lib.amp_obs_window(ids, times, llc.disc_steps, dt).reshape(len(ids), -1)
    out["disc_logits"] = llc.discriminator_score(out["disc_windows"], out["latents"])
    out["disc_logits_mismatched"] = llc.discriminator_score(out["disc_windows"], out["latents"].roll(1, 0))

    # a deterministic rollout from reference states
    env = HumanoidEnv(EnvConfig(num_envs=ROLLOUT_ENVS, state_init="start", fall_init_prob=0.0,
                                recovery_episode_prob=0.0, episode_length=None, seed=0), motion_lib=lib)
    env.start_from_reference(torch.arange(ROLLOUT_ENVS), ids[:ROLLOUT_ENVS], torch.zeros(ROLLOUT_ENVS))
    obs, z = env.policy_observation(), out["latents"][:ROLLOUT_ENVS]
    rollout_actions, rollout_obs, rollout_amp = [], [], []
    for _ in range(ROLLOUT_STEPS):
        a = llc.act(obs, z)
        step_obs, _, _, extras = env.step(a)
        obs = step_obs["obs"]
        rollout_actions.append(a)
        rollout_obs.append(obs)
        rollout_amp.append(extras["amp_obs"][:, : env.num_amp_obs_per_step])
    out["rollout_actions"] = torch.stack(rollout_actions)
    out["rollout_obs"] = torch.stack(rollout_obs)
    out["rollout_amp_frames"] = torch.stack(rollout_amp)

    # the high-level env on the shipped controller, toward a pose goal
    goal = PoseGoal.from_clip(lib.clips[lib.clip_names.index("raise_both_arms")])
    hlc_env = HighLevelEnv(HLCEnvConfig(num_envs=HLC_ENVS, num_reference_latents=16, seed=0), llc, goal, lib)
    hlc_env.reset()
    gen = torch.Generator().manual_seed(0)
    rewards, sims = [], []
    for _ in range(HLC_STEPS):
        _, reward, _, info = hlc_env.step(torch.rand(HLC_ENVS, llc.latent_dim, generator=gen) * 2 - 1)
        rewards.append(reward)
        sims.append(info["similarities"])
    out["hlc_reference_latents"] = hlc_env.reference_latents
    out["hlc_rewards"] = torch.stack(rewards)
    out["hlc_similarities"] = torch.stack(sims)
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def outputs() -> dict[str, np.ndarray]:
    with torch.random.fork_rng(devices=[]):
        return compute_outputs()


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return dict(data)


def test_reference_file_is_complete(outputs, reference):
    assert sorted(outputs) == sorted(reference)
    for key, value in outputs.items():
        assert value.shape == reference[key].shape, key


@pytest.mark.parametrize("key", ["enc_windows", "latents", "policy_obs", "actions", "disc_windows", "disc_logits",
                                 "disc_logits_mismatched", "hlc_reference_latents"])
def test_network_outputs_match_the_reference(outputs, reference, key):
    np.testing.assert_allclose(outputs[key], reference[key], **NETWORK_TOL, err_msg=key)


@pytest.mark.parametrize("key", ["rollout_actions", "rollout_obs", "rollout_amp_frames", "hlc_rewards",
                                 "hlc_similarities"])
def test_rollouts_match_the_reference(outputs, reference, key):
    np.testing.assert_allclose(outputs[key], reference[key], **ROLLOUT_TOL, err_msg=key)


def test_recorded_inputs_give_the_recorded_network_outputs(reference):
    """The networks alone, on the stored inputs (separates a change of the networks from one of the data path)."""
    from anyskill.llc import load_llc
    from anyskill.llc.shipped import shipped_llc

    llc = load_llc(shipped_llc("llc_laptop.pth"))
    latents = llc.encode(torch.from_numpy(reference["enc_windows"]))
    np.testing.assert_allclose(latents.numpy(), reference["latents"], **NETWORK_TOL)
    actions = llc.act(torch.from_numpy(reference["policy_obs"]), latents)
    np.testing.assert_allclose(actions.numpy(), reference["actions"], **NETWORK_TOL)
    logits = llc.discriminator_score(torch.from_numpy(reference["disc_windows"]), latents)
    np.testing.assert_allclose(logits.numpy(), reference["disc_logits"], **NETWORK_TOL)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_shipped_outputs.py --record   (overwrites tests/data/shipped_outputs.npz)")
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **compute_outputs())
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size / 1024:.0f} kB)")
