"""CALM networks of the low-level controller (paper §3.1, reference facts §2.1).

* :class:`MotionEncoder` E: a window of AMP frames -> a unit latent z on S^(d-1).
* :class:`StyleCatMLP`: the "style-cat" net shared by the actor and the conditional discriminator:
  z -> MLP -> Linear -> tanh = style code; concat(input, style) -> MLP -> output.
* :class:`Critic`: concat(obs, z) -> MLP -> value.
* :class:`RunningNormalizer`: running mean/std with an explicit ``update`` (AMP frames).
* :class:`CALMNetwork`: the rl-games ``a2c_network`` holding all four nets; built by
  :class:`CALMBuilder` from the ``network`` section of an rl-games config.
* :class:`CALMModel`: the rl-games model wrapper (obs/value normalisers from rl-games plus the
  per-frame AMP normaliser), with ``encode``/``disc_logits`` helpers used by the agent and by
  :func:`anyskill.llc.controller.load_llc`.

Every size comes from the config; nothing about the humanoid is hard-coded here.
"""

from __future__ import annotations

from typing import Any

import torch
from rl_games.algos_torch.models import ModelA2CContinuousLogStd
from rl_games.algos_torch.network_builder import NetworkBuilder
from torch import Tensor, nn

from anyskill.config.llc import CALMNetworkConfig


def mlp(in_dim: int, units: tuple[int, ...] | list[int]) -> nn.Sequential:
    """Linear+ReLU stack; PyTorch default weight init, zero biases (rl-games "default" init)."""
    layers: list[nn.Module] = []
    for width in units:
        linear = nn.Linear(in_dim, width)
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers)


def _uniform_linear(in_dim: int, out_dim: int, scale: float) -> nn.Linear:
    linear = nn.Linear(in_dim, out_dim)
    nn.init.uniform_(linear.weight, -scale, scale)
    nn.init.zeros_(linear.bias)
    return linear


def _width(in_dim: int, units: tuple[int, ...]) -> int:
    return units[-1] if units else in_dim


class MotionEncoder(nn.Module):
    """E: normalised AMP window (N, steps * frame_dim) or (N, steps, frame_dim), newest frame first -> (N, latent)
    unit norm; reads every ``stride``-th frame of the window."""

    def __init__(self, frame_dim: int, num_steps: int, units: tuple[int, ...], latent_dim: int,
                 init_scale: float = 0.1, stride: int = 1):
        super().__init__()
        if stride < 1:
            raise ValueError(f"encoder stride must be >= 1, got {stride}")
        self.frame_dim = frame_dim
        self.num_steps = num_steps
        self.stride = stride
        in_dim = frame_dim * len(range(0, num_steps, stride))
        self.trunk = mlp(in_dim, units)
        self.head = _uniform_linear(_width(in_dim, units), latent_dim, init_scale)

    def forward(self, windows: Tensor) -> Tensor:
        if windows.reshape(windows.shape[0], -1).shape[1] != self.frame_dim * self.num_steps:
            raise ValueError(
                f"encoder expects windows of {self.num_steps} frames x {self.frame_dim} values, got shape "
                f"{tuple(windows.shape)}; pass (N, {self.num_steps}, {self.frame_dim}) newest frame first"
            )
        return self.forward_frames(windows.reshape(windows.shape[0], self.num_steps, self.frame_dim)[:, :: self.stride])

    @property
    def num_frames(self) -> int:
        """Frames the encoder reads from its window: ceil(num_steps / stride)."""
        return len(range(0, self.num_steps, self.stride))

    def forward_frames(self, frames: Tensor) -> Tensor:
        """The frames already picked from the window, (N, num_frames, frame_dim) newest first -> (N, latent)."""
        return nn.functional.normalize(self.head(self.trunk(frames.reshape(frames.shape[0], -1))), dim=-1)


class StyleCatMLP(nn.Module):
    """Style-cat net: z -> style code s = tanh(Linear(MLP(z))); (x, s) -> MLP -> Linear -> (N, out_dim)."""

    def __init__(self, input_dim: int, latent_dim: int, style_units: tuple[int, ...], style_dim: int,
                 units: tuple[int, ...], out_dim: int, style_init_scale: float = 1.0,
                 out_init_scale: float | None = None):
        super().__init__()
        self.style_trunk = mlp(latent_dim, style_units)
        self.style_head = _uniform_linear(_width(latent_dim, style_units), style_dim, style_init_scale)
        self.trunk = mlp(input_dim + style_dim, units)
        width = _width(input_dim + style_dim, units)
        if out_init_scale is None:
            self.out = nn.Linear(width, out_dim)
            nn.init.zeros_(self.out.bias)
        else:
            self.out = _uniform_linear(width, out_dim, out_init_scale)

    def style(self, z: Tensor) -> Tensor:
        """(N, latent) -> (N, style_dim) in (-1, 1)."""
        return torch.tanh(self.style_head(self.style_trunk(z)))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.out(self.trunk(torch.cat([x, self.style(z)], dim=-1)))


class Critic(nn.Module):
    """V(s, z): concat(obs, raw latent) -> MLP -> (N, 1)."""

    def __init__(self, obs_dim: int, latent_dim: int, units: tuple[int, ...]):
        super().__init__()
        self.trunk = mlp(obs_dim + latent_dim, units)
        self.out = nn.Linear(_width(obs_dim + latent_dim, units), 1)
        nn.init.zeros_(self.out.bias)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        return self.out(self.trunk(torch.cat([obs, z], dim=-1)))


class ConditionalDiscriminator(StyleCatMLP):
    """D(s, z): style-cat net on (AMP history, latent) -> (N, 1) logit."""

    def __init__(self, amp_dim: int, latent_dim: int, style_units: tuple[int, ...], style_dim: int,
                 units: tuple[int, ...], style_init_scale: float = 1.0, logit_init_scale: float = 1.0):
        super().__init__(amp_dim, latent_dim, style_units, style_dim, units, 1, style_init_scale,
                         logit_init_scale)

    def logit_weight(self) -> Tensor:
        return self.out.weight

    def weights(self) -> list[Tensor]:
        """Weight matrices of every Linear layer (for the weight-decay term)."""
        return [m.weight for m in self.modules() if isinstance(m, nn.Linear)]


class RunningNormalizer(nn.Module):
    """Running mean/variance of (…, dim) samples; ``forward`` normalises and clamps to ±clip.

    Statistics change only through :meth:`update` (never as a side effect of ``forward``), and are
    buffers, so they travel in ``state_dict`` and therefore in checkpoints.
    """

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(self, dim: int, epsilon: float = 1e-5, clip: float = 5.0):
        super().__init__()
        self.epsilon = epsilon
        self.clip = clip
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))
        self._cast: dict[torch.dtype, tuple[Tensor, Tensor]] = {}  # mean and 1/std per dtype, until the next update

    def _load_from_state_dict(self, *args, **kwargs):
        self._cast.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):
        self._cast.clear()
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merge the statistics of x (…, dim) into the running ones (parallel-variance formula)."""
        x = x.reshape(-1, self.mean.shape[0]).to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)
        self._cast.clear()

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        flat = x.reshape(-1, self.mean.shape[0])
        if x.dtype not in self._cast:
            self._cast[x.dtype] = (self.mean.to(x.dtype), torch.rsqrt(self.var + self.epsilon).to(x.dtype))
        mean, inv_std = self._cast[x.dtype]
        return ((flat - mean) * inv_std).clamp(-self.clip, self.clip).reshape(shape)


class CALMNetwork(NetworkBuilder.BaseNetwork):
    """rl-games a2c_network: actor π(a|s,z), critic V(s,z), encoder E, conditional discriminator D.

    ``forward(input_dict)`` reads ``obs`` (N, obs_dim, already normalised by the model wrapper) and
    ``latents`` (N, latent_dim), and returns (mu, log_std, value, None) as rl-games expects.
    The log-std is a fixed buffer (not learned).
    """

    def __init__(self, cfg: CALMNetworkConfig, obs_dim: int, actions_num: int):
        super().__init__()
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.actions_num = actions_num
        self.actor = StyleCatMLP(obs_dim, cfg.latent_dim, cfg.style_units, cfg.style_dim, cfg.actor_units,
                                 actions_num, cfg.style_init_scale, cfg.actor_out_init_scale)
        if cfg.actor_out_bias is not None:
            if len(cfg.actor_out_bias) != actions_num:
                raise ValueError(f"actor_out_bias has {len(cfg.actor_out_bias)} values for {actions_num} actions")
            with torch.no_grad():
                self.actor.out.bias.copy_(torch.tensor(cfg.actor_out_bias))
        self.critic = Critic(obs_dim, cfg.latent_dim, cfg.critic_units)
        self.encoder = MotionEncoder(cfg.amp_frame_dim, cfg.enc_steps, cfg.enc_units, cfg.latent_dim,
                                     cfg.enc_init_scale, cfg.enc_stride)
        self.discriminator = ConditionalDiscriminator(
            cfg.amp_frame_dim * cfg.disc_steps, cfg.latent_dim, cfg.style_units, cfg.style_dim, cfg.disc_units,
            cfg.style_init_scale, cfg.disc_logit_init_scale,
        )
        self.register_buffer("log_std", torch.full((actions_num,), float(cfg.init_log_std)))

    def get_value_layer(self) -> nn.Module:
        return self.critic.out

    def forward(self, input_dict: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor, None]:
        obs = input_dict["obs"]
        z = input_dict.get("latents")
        if z is None:
            raise KeyError(
                "CALM network needs input_dict['latents'] (N, latent_dim) besides 'obs'; the CALM agent "
                "adds them, other callers must encode a motion window first (LowLevelController.encode)"
            )
        mu = self.actor(obs, z)
        value = self.critic(obs, z)
        return mu, self.log_std.expand_as(mu), value, None


class CALMBuilder(NetworkBuilder):
    """rl-games network builder registered as ``calm``: ``load(params)`` then ``build(name, **kwargs)``."""

    def __init__(self, **kwargs: Any):
        super().__init__()
        self.cfg = CALMNetworkConfig()

    def load(self, params: dict[str, Any]) -> None:
        self.cfg = CALMNetworkConfig.from_params(params)

    def build(self, name: str, **kwargs: Any) -> CALMNetwork:
        input_shape = kwargs["input_shape"]
        if len(input_shape) != 1:
            raise ValueError(f"CALM expects a flat observation vector, got observation shape {input_shape}")
        return CALMNetwork(self.cfg, int(input_shape[0]), int(kwargs["actions_num"]))


class CALMModel(ModelA2CContinuousLogStd):
    """rl-games model registered as ``calm``: the Gaussian policy wrapper plus the AMP normaliser."""

    class Network(ModelA2CContinuousLogStd.Network):
        def __init__(self, a2c_network: CALMNetwork, **kwargs: Any):
            super().__init__(a2c_network, **kwargs)
            self.amp_norm = RunningNormalizer(a2c_network.cfg.amp_frame_dim)

        @property
        def calm(self) -> CALMNetwork:
            return self.a2c_network

        def norm_amp(self, frames: Tensor) -> Tensor:
            """Normalise AMP data (…, k * frame_dim) frame by frame (no statistics update)."""
            return self.amp_norm(frames.reshape(*frames.shape[:-1], -1, self.calm.cfg.amp_frame_dim)).reshape(
                frames.shape)

        def encode(self, windows: Tensor) -> Tensor:
            """Raw encoder windows (N, enc_steps * frame_dim) or (N, enc_steps, frame_dim) -> unit z (N, latent)."""
            flat = windows.reshape(windows.shape[0], -1)
            return self.calm.encoder(self.norm_amp(flat))

        def encode_frames(self, frames: Tensor) -> Tensor:
            """Raw frames already picked from encoder windows (N, encoder.num_frames, frame_dim) -> unit z
            (N, latent)."""
            return self.calm.encoder.forward_frames(self.amp_norm(frames))

        def disc_logits(self, amp_obs: Tensor, z: Tensor) -> Tensor:
            """Raw AMP history (N, disc_steps * frame_dim), latents (N, latent) -> logits (N, 1)."""
            return self.calm.discriminator(self.norm_amp(amp_obs), z)
