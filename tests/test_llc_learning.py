"""Learning signal of CALM on the real humanoid: a short CPU run must beat an untrained controller.

Three clips (walk, idle stand, a wave), smoke-size networks with a laptop-like rollout (16 envs x 32 steps),
100 epochs (about 1.5-2 minutes on 2 cores). Afterwards, on held-out data drawn with a fixed seed
(:func:`anyskill.llc.evaluate.learning_signals`):

(a) the discriminator of the saved checkpoint (through ``load_llc(...).discriminator_score``) separates fresh
    demo windows from fresh agent windows: balanced accuracy > 0.6;
(b) the mean time to the first fall, from the training env's hybrid starts on random clip latents, is
    longer than the untrained controller's in the same env (by > 15 %).

The untrained controller of the same size fails both (asserted), so neither check passes without training.
Observed (training seed 0, evaluation seed 1): accuracy 1.00 vs 0.53 untrained; mean episode 0.95 s vs 0.67 s
untrained; 2 min 15 s wall on 2 shared cores.
"""

import pytest
import torch
import yaml

from anyskill.data import MOTIONS_DIR
from anyskill.llc import load_llc
from anyskill.llc.evaluate import learning_signals, untrained_llc
from anyskill.llc.train import load_motions, train_llc

pytestmark = pytest.mark.slow

CLIPS = ("amp_humanoid_walk", "authored_idle_stand", "authored_wave_right_hand")
NUM_ENVS = 16
EPOCHS = 100
MIN_ACCURACY = 0.6
MIN_EPISODE_GAIN = 1.15


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("learning") / "motions.yaml"
    entries = [{"file": str(MOTIONS_DIR / f"{name}.npz"), "weight": 1.0} for name in CLIPS]
    path.write_text(yaml.safe_dump({"motions": entries}))
    return path


def test_short_training_separates_demo_from_agent_and_survives_longer(manifest, tmp_path):
    torch.set_num_threads(1)
    result = train_llc("smoke", motions=manifest, out_dir=tmp_path / "llc", num_envs=NUM_ENVS, max_epochs=EPOCHS,
                       seed=0, progress=False,
                       overrides={"horizon_length": 32, "minibatch_size": 256, "learning_rate": 5e-4})
    assert result.epochs == EPOCHS and result.samples == EPOCHS * 32 * NUM_ENVS
    lib, _ = load_motions(manifest)
    trained = load_llc(result.checkpoint)
    untrained = untrained_llc(trained, seed=0)

    before = learning_signals(untrained, lib, seed=1)
    after = learning_signals(trained, lib, seed=1)
    print(f"untrained: {before}\ntrained:   {after}")

    assert before["disc_accuracy"] < MIN_ACCURACY  # the check is not passed by an untrained discriminator
    assert after["agent_windows"] > 100
    assert after["disc_accuracy"] > MIN_ACCURACY, after
    assert after["mean_episode_s"] > MIN_EPISODE_GAIN * before["mean_episode_s"], (before, after)
