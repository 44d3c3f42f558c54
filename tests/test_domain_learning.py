"""The text reward path learns what the text says: a high-level policy trained with the domain model's reward
("domain model of this humanoid, closed vocabulary — not CLIP") on "raise both arms above the head" lifts the hands,
and the same training on the opposite prompt does not.

Everything is the real pipeline — open_clip tokenizer -> domain text tower -> unit text feature, body positions ->
state projection -> unit image feature, cosine, Eq. 3 with the style term, early termination on similarity decreases,
rl-games PPO through the frozen controller — except the controller, the hand-built one of ``hlc_fixtures`` (the
humanoid stands, the latent moves the arms; ``arm_scale=1.5`` so that both hands can get above the head — at 0.6 the
highest of 64 random latents left them 2 cm below it), so that a minute of training can show an effect. The hands'
height is measured from the rollout's body positions (:func:`anyskill.domain.e2e.measure_policy`: the lower
hand's height over the head origin, m), before (the run's untrained policy) and after training.

A wrong sign, a broken text path, a missing normalisation or a reward that ignores the prompt fails one of the
assertions. Measured (2-core machine, nice 19, beside other jobs; :data:`MEASURED`) for training seeds 0-4.
"""

from __future__ import annotations

import pytest
import torch
from hlc_fixtures import build_arm_llc

from anyskill.domain.e2e import E2ESettings, train_and_measure
from anyskill.reward.clip_model import ClipModel, ClipSpec

pytestmark = pytest.mark.slow

SETTINGS = E2ESettings(num_envs=32, epochs=30, horizon=4, units=(64, 64), learning_rate=1e-3, episode_length=60,
                       eval_seconds=2.0, eval_envs=8, seed=0)
MARGIN = 0.2  # m
MEASURED = {  # seed: (lower hand over the head origin, m, before -> after) 'raise both arms' | 'arms down by the sides'
    0: ("-0.410 -> 0.356", "-0.410 -> -0.444"), 1: ("-0.389 -> 0.367", "-0.389 -> -0.467"),
    2: ("-0.222 -> 0.273", "-0.222 -> -0.361"), 3: ("-0.304 -> 0.234", "-0.304 -> -0.401"),
    4: ("-0.250 -> 0.185", "-0.250 -> -0.327"),
}  # 48-100 s per seed for both trainings


def _run(prompt: str, llc, out, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    model = ClipModel(ClipSpec(weights="anyskill-domain"))
    settings = E2ESettings(**{**SETTINGS.__dict__, "seed": seed})
    return train_and_measure(model, model.model.projection, prompt, "both_arms_up", llc, out, settings)


def test_text_prompt_moves_the_attribute_it_names(tmp_path):
    llc = build_arm_llc(tmp_path / "arm_llc.pth", gain=3.0, arm_scale=1.5)
    up = _run("raise both arms above the head", llc, tmp_path / "up")
    down = _run("arms down by the sides", llc, tmp_path / "down")
    gain_up = up["after_quantity"] - up["before_quantity"]
    gain_down = down["after_quantity"] - down["before_quantity"]
    print(f"hands over head, m: 'raise both arms' {up['before_quantity']:.3f} -> {up['after_quantity']:.3f}; "
          f"'arms down' {down['before_quantity']:.3f} -> {down['after_quantity']:.3f}")
    assert gain_up > MARGIN, up
    assert gain_down < gain_up - MARGIN, (up, down)
    assert gain_down < 0.5 * MARGIN, down
