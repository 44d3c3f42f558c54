"""Learning signal of the low-level controller on the real humanoid: a short single-threaded CPU run must beat the
controller it started from, for any seed.

Two clips (standing idle, raising both arms), the ``smoke`` networks with a laptop-like rollout (32 envs x 16
steps), 120 epochs (~60k samples). On data the training never saw (fresh rollouts and demo windows drawn with a
fixed evaluation seed), the trained controller must

(a) have a discriminator that tells demonstration windows from its own: balanced held-out accuracy > 0.6, where the
    untrained discriminator is at chance (asserted < 0.6);
(b) perform the raising-arms skill better: holding that clip's latent from the standing pose, its rollout must be
    at least 15 % closer to the clip (the skill evaluation's pose distance) than the initial policy's, which keeps
    standing still — the held-out version of the tracking reward rising.

Observed (seeds 0-4, one thread): see the assertion messages; the thresholds hold with a margin for every seed tried.
"""

import os

import pytest
import torch
import yaml

from anyskill.data import MOTIONS_DIR
from anyskill.llc import load_llc
from anyskill.llc.evaluate import clip_latents, learning_signals, untrained_llc
from anyskill.llc.skills import chamfer_distance, clip_pose_features, standing_rollouts
from anyskill.llc.train import load_motions, train_llc

pytestmark = pytest.mark.slow

CLIPS = ("authored_idle_stand", "authored_raise_both_arms")
NUM_ENVS = 32
EPOCHS = 120
MIN_ACCURACY = 0.6
MIN_DISTANCE_GAIN = 0.85


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("learning") / "motions.yaml"
    entries = [{"file": str(MOTIONS_DIR / f"{name}.npz"), "weight": 1.0} for name in CLIPS]
    path.write_text(yaml.safe_dump({"motions": entries}))
    return path


def raise_arms_distance(llc, lib) -> float:
    k = lib.clip_names.index("raise_both_arms")
    z = clip_latents(llc, lib, torch.tensor([k]))
    feats, _, _ = standing_rollouts(llc, lib, z, seconds=3.0, seed=1)
    return chamfer_distance(feats[:, 0], clip_pose_features(lib, 1 / 30)[k])


@pytest.mark.parametrize("seed", [int(s) for s in os.environ.get("ANYSKILL_LEARNING_SEEDS", "0").split(",")])
def test_short_training_learns(manifest, tmp_path, seed):
    """ANYSKILL_LEARNING_SEEDS=0,1,2,3,4 runs it for several training seeds (one is the default, for time)."""
    torch.set_num_threads(1)
    result = train_llc("smoke", motions=manifest, out_dir=tmp_path / "llc", num_envs=NUM_ENVS, max_epochs=EPOCHS,
                       seed=seed, progress=False, overrides={"horizon_length": 16, "minibatch_size": 128,
                                                            "mini_epochs": 4})
    assert result.epochs == EPOCHS and result.samples == EPOCHS * 16 * NUM_ENVS
    lib, _ = load_motions(manifest)
    trained = load_llc(result.checkpoint)
    untrained = untrained_llc(trained, seed=seed)

    before, after = learning_signals(untrained, lib, seed=1), learning_signals(trained, lib, seed=1)
    d_before, d_after = raise_arms_distance(untrained, lib), raise_arms_distance(trained, lib)
    report = (f"seed {seed}: disc accuracy {before['disc_accuracy']:.3f} -> {after['disc_accuracy']:.3f}; "
              f"raise-arms distance {d_before:.3f} -> {d_after:.3f} m")
    print(report)
    assert before["disc_accuracy"] < MIN_ACCURACY, report  # not passed by an untrained discriminator
    assert after["agent_windows"] > 100, report
    assert after["disc_accuracy"] > MIN_ACCURACY, report
    assert d_after < MIN_DISTANCE_GAIN * d_before, report
