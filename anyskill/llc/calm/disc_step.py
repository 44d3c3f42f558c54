"""One discriminator and encoder-regulariser minibatch of the CALM update (paper Eq. 1, reference facts §2.2-2.3;
step 3 of :meth:`~anyskill.llc.calm.agent.CALMAgent.train_epoch`).

The discriminator sees agent windows of this epoch under the latents they were played with, plus replay windows
under their current encodings (label 0), against demo windows drawn afresh from the grid under the encoding of the
encoder window they lie in (label 1); with ``negative_disc_samples`` also demo windows under another sample's latent
(label 0). The encoder's regulariser aligns nearby windows of a clip and spreads all latents over the sphere; the
encoder windows are encoded with gradient, so both terms shape E.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from anyskill.config.llc import CALMNetworkConfig, CALMSettings
from anyskill.llc.calm import losses
from anyskill.llc.calm.ppo import SampleBuffer
from anyskill.llc.calm.windows import MotionWindows


def discriminator_and_encoder_losses(model: Any, windows: MotionWindows, replay: SampleBuffer, data: dict[str, Tensor],
                                     cfg: CALMSettings, net_cfg: CALMNetworkConfig, log: dict[str, list[Any]]
                                     ) -> tuple[losses.DiscriminatorLossTerms, Tensor]:
    """(discriminator terms, encoder regulariser) of one minibatch of ``amp_minibatch_size`` agent windows drawn
    from ``data`` (the epoch's ``amp_obs`` and ``latents``) and as many replay windows; appends every term, detached,
    to ``log`` (on the device: read at the end of the epoch, no host synchronisation here)."""
    net = model.calm
    n = cfg.amp_minibatch_size
    dev = windows.device
    pick = torch.randint(0, data["amp_obs"].shape[0], (n,), device=dev)
    agent_amp, z_agent = data["amp_obs"][pick], data["latents"][pick]
    if len(replay) > 0:
        rows = replay.sample(n)
        with torch.no_grad():
            z_replay = windows.encode(rows["window"])
        agent_amp = torch.cat([agent_amp, rows["amp_obs"]])
        z_agent = torch.cat([z_agent, z_replay.to(z_agent.dtype)])

    m = cfg.enc_batch_size or n
    enc_ends, demo_ends = windows.encoder_and_demo_ends(max(n, m), net_cfg.enc_steps, net_cfg.disc_steps)
    e0 = windows.encode(enc_ends[:m])  # with gradient: the uniformity and alignment terms shape E
    z_demo = e0[:n].detach()
    if n > m:
        with torch.no_grad():
            z_demo = torch.cat([z_demo, windows.encode(enc_ends[m:n])])
    demo_inputs = model.norm_amp(windows.demo_windows(demo_ends[:n], net_cfg.disc_steps))
    demo_inputs = demo_inputs.detach().requires_grad_(True)
    agent_logits = net.discriminator(model.norm_amp(agent_amp), z_agent)
    demo_logits = net.discriminator(demo_inputs, z_demo)
    negative_logits = None
    if cfg.negative_disc_samples:  # the paper's ternary term: demo windows under another sample's latent
        negative_logits = net.discriminator(demo_inputs.detach(), z_demo.roll(1, dims=0))
    disc = losses.conditional_discriminator_loss(
        agent_logits.float(), demo_logits.float(), demo_inputs, net.discriminator.logit_weight(),
        net.discriminator.weights(), None if negative_logits is None else negative_logits.float(),
        cfg.disc_logit_reg, cfg.disc_grad_penalty, cfg.disc_weight_decay,
    )
    e1 = windows.encode(windows.earlier(enc_ends[:m], cfg.align_max_shift))
    enc_loss, align, uniform = losses.encoder_regularization(
        e0.float(), e1.float(), e0.float(), cfg.enc_align_weight, cfg.enc_uniform_weight)
    for key, value in (("disc_loss", disc.total), ("disc_bce", disc.bce), ("disc_agent_bce", disc.agent_bce),
                       ("disc_demo_bce", disc.demo_bce), ("disc_grad_penalty", disc.grad_penalty),
                       ("disc_logit_reg", disc.logit_reg), ("disc_agent_accuracy", disc.agent_accuracy),
                       ("disc_demo_accuracy", disc.demo_accuracy), ("enc_align", align),
                       ("enc_uniform", uniform), ("enc_loss", enc_loss)):
        log[key].append(value.detach())
    if disc.negative_bce is not None:
        log["disc_negative_bce"].append(disc.negative_bce.detach())
    return disc, enc_loss
