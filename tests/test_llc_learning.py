"""Learning signal of the low-level controller on the real humanoid: a short single-threaded CPU run must beat the
policy it started from, for any training seed.

One clip (raising both arms), reference-state starts, the ``smoke`` networks with a laptop-like rollout (32 envs x
16 steps), 150 epochs (77k samples, about a minute). On data the training never saw (an evaluation seed of its
own), the trained controller must

(a) have a discriminator that tells demonstration windows from its own: balanced held-out accuracy > 0.6, where the
    untrained discriminator is not (asserted < 0.6);
(b) imitate better: started in the clip's reference states at 16 held-out times and holding the clip's latent for
    1 s, its mean body-position error to the clip (root-relative, heading frame; the quantity its tracking reward
    scores) must be at least 10 % below that of the initial policy, which holds the standing pose and drops the arms.

Observed, training seeds 0-4 (one thread, ~75 s each on 2 shared cores): held-out accuracy 0.500 -> 0.669,
0.019 -> 0.750, 0.500 -> 0.707, 0.221 -> 0.776, 0.394 -> 0.697; imitation error 0.317 -> 0.232, 0.320 -> 0.226,
0.319 -> 0.254, 0.315 -> 0.247, 0.323 -> 0.224 m (20-31 % lower). ANYSKILL_LEARNING_SEEDS=0,1,2,3,4 repeats it.
"""

import os

import pytest
import torch
import yaml

from anyskill.config import LLCEnvSettings
from anyskill.data import MOTIONS_DIR
from anyskill.llc import load_llc
from anyskill.llc.calm.train import train_llc
from anyskill.llc.evaluate import clip_latents, learning_signals, rollout_llc, untrained_llc
from anyskill.llc.motions import load_motions
from anyskill.llc.skills import pose_features

pytestmark = pytest.mark.slow

NUM_ENVS = 32
EPOCHS = 150
MIN_ACCURACY = 0.6
MAX_ERROR_RATIO = 0.9


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("learning") / "motions.yaml"
    path.write_text(yaml.safe_dump({"motions": [{"file": str(MOTIONS_DIR / "authored_raise_both_arms.npz"),
                                                 "weight": 1.0}]}))
    return path


def imitation_error(llc, lib, n: int = 16, seconds: float = 1.0, seed: int = 1) -> float:
    """Mean body-position error (m) to the clip over ``seconds`` from its reference states at ``n`` random times."""
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    g = torch.Generator().manual_seed(seed)
    env = HumanoidEnv(EnvConfig(num_envs=n, fall_init_prob=0.0, episode_length=None, enable_early_termination=False,
                                seed=seed), motion_lib=lib)
    clips = torch.zeros(n, dtype=torch.long)
    t0 = torch.rand(n, generator=g) * (lib.durations[0] - seconds)
    env.start_from_reference(torch.arange(n), clips, t0)
    steps = int(round(seconds / env.dt))
    r = rollout_llc(llc, env, clip_latents(llc, lib, clips), steps)
    times = t0[None] + torch.arange(1, steps + 1)[:, None] * env.dt
    ref = lib.state_at(clips.repeat(steps), times.reshape(-1))
    ref_feats = pose_features(ref.body_pos, ref.root_rot).reshape(steps, n, -1, 3)
    return float((pose_features(r.body_pos, r.root_rot) - ref_feats).norm(dim=-1).mean())


@pytest.mark.parametrize("seed", [int(s) for s in os.environ.get("ANYSKILL_LEARNING_SEEDS", "0").split(",")])
def test_short_training_learns(manifest, tmp_path, seed):
    """ANYSKILL_LEARNING_SEEDS=0,1,2,3,4 runs it for several training seeds (one by default, for time)."""
    torch.set_num_threads(1)
    result = train_llc("smoke", motions=manifest, out_dir=tmp_path / "llc", num_envs=NUM_ENVS, max_epochs=EPOCHS,
                       seed=seed, progress=False, torch_threads=1,
                       env_settings=LLCEnvSettings(state_init="random", fall_init_prob=0.0),
                       overrides={"horizon_length": 16, "minibatch_size": 128, "mini_epochs": 4})
    assert result.epochs == EPOCHS and result.samples == EPOCHS * 16 * NUM_ENVS
    lib, _ = load_motions(manifest)
    trained = load_llc(result.checkpoint)
    untrained = untrained_llc(trained, seed=seed)

    before, after = learning_signals(untrained, lib, seed=1), learning_signals(trained, lib, seed=1)
    err_before, err_after = imitation_error(untrained, lib), imitation_error(trained, lib)
    report = (f"seed {seed}: held-out disc accuracy {before['disc_accuracy']:.3f} -> {after['disc_accuracy']:.3f}; "
              f"imitation error {err_before:.3f} -> {err_after:.3f} m")
    print(report)
    assert before["disc_accuracy"] < MIN_ACCURACY, report  # not passed by an untrained discriminator
    assert after["agent_windows"] > 100, report
    assert after["disc_accuracy"] > MIN_ACCURACY, report
    assert err_after < MAX_ERROR_RATIO * err_before, report
