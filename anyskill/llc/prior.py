"""The latent prior μ_p(s) of a low-level controller and the anchored high-level action (issue 27).

A high-level policy whose action is a free unit latent, z = normalize(a), explores the whole sphere S^63, where a
random direction has |cos| ≈ 1/8 with any code the encoder gives a real motion window: off the skill manifold, and a
distilled controller falls there (``anyskill eval-llc --random-latents``). The **anchored** action keeps π_H near
the repertoire from its first update, as PULSE's z = μ_prior(s) + a does:

    z = normalize(μ_p(s) + σ · a),     a ∈ [-1, 1]^64 the policy's action, σ the anchor scale,

where μ_p(s) is the unit latent of "the motion the character is performing from state s", a regression on the
223-D policy observation onto the encoder's latent E(window) of the window performed from there
(:class:`~anyskill.config.llc.LatentPriorSettings`): by default the latent of the nearest of the clips' reference
states (standardised observations; the window that starts at that frame), so μ_p(s) is always the code of a real
motion window; optionally an MLP fitted by least squares, on the reference states and/or the controller's own states
while it replays each clip with sliding latents. An untrained π_H (|a| ≈ 1.1: its initial mean, rms ≈ 0.09 per
dimension, plus noise e^-2.3 ≈ 0.1) then sends latents within cos ≈ 0.95 of μ_p(s) for σ = 0.3, and a trained one
can still reach any latent (|σ a| up to 8σ = 2.4 > 1). The option ``"anchored_previous"`` anchors on the env's
previous latent instead (z_t = normalize(z_{t-1} + σ a), z_0 from the prior): a random walk that π_H does not
observe.

Measured with the shipped student (``llc_laptop.pth``; 32 envs of 4 untrained π_H, from standing, 10 s, 5 seeds,
``anyskill eval-llc --random-latents``): free actions keep 0-3 % up; anchored on the nearest-state prior, σ 0.3,
97-100 % up with a pose spread of 0.07-0.11 m (the clips' own: 0.25 m; σ 0.1: 100 %, 0.08 m; σ 0.5: 81-97 %,
0.13 m). An MLP prior blends the latents of the clips that start from standing into one the student stands still
under (σ 0.1: 100 % up, spread 0.01 m) or falls under (σ 0.3: 50-91 % up). The CALM controller stays up either way
but stands still on its prior's latents (spread 0.004 m; free: 0.05 m).

The prior depends only on the controller and the motions, so it is fitted once per (controller, motion library,
settings) and cached like the state projection (:mod:`anyskill.hlc.projection_cache`): ``$ANYSKILL_CACHE/prior``
(default ``~/.cache/anyskill/prior``), one ``prior-<key>.pt`` per key (a hash of the controller's weights, the
library's frames and the settings) with a readable ``.json`` beside it; written atomically, and a file that cannot be
used is rebuilt with a warning. Works with both controller kinds :func:`anyskill.llc.load_llc` returns (``encode``,
``act``, ``reset_timing``).

    prior = latent_prior(llc, lib)                  # fitted now or read from the cache
    z = latent_from_action(a, "anchored", 0.3, prior(obs))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
import warnings
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anyskill.config.hlc import LATENT_ACTIONS
from anyskill.config.llc import LatentPriorSettings
from anyskill.llc.nets import mlp

if TYPE_CHECKING:
    from anyskill.motion.library import MotionLibrary

DEFAULT_PRIOR = LatentPriorSettings()
FORMAT = "anyskill-latent-prior"
FORMAT_VERSION = 1
"""Bumped whenever the data or the fit changes what a key's file contains."""


# ---------------------------------------------------------------- the action
def latent_from_action(actions: Tensor, mode: str = "free", scale: float = 0.3, anchor: Tensor | None = None
                       ) -> Tensor:
    """Unit latents (N, D) for high-level actions (N, D), clamped to [-1, 1]: ``"free"`` normalize(a);
    ``"anchored"`` / ``"anchored_previous"`` normalize(anchor + scale · a) around ``anchor`` (N, D) (the prior's
    unit latent μ_p(s), or the env's previous latent)."""
    if mode not in LATENT_ACTIONS:
        raise ValueError(f"latent action must be one of {LATENT_ACTIONS}, got {mode!r}")
    a = actions.clamp(-1.0, 1.0)
    if mode == "free":
        return F.normalize(a, dim=-1)
    if anchor is None:
        raise ValueError(f"the {mode!r} latent action needs its anchor latents")
    return F.normalize(F.normalize(anchor, dim=-1) + scale * a, dim=-1)


# ---------------------------------------------------------------- the network
class LatentPrior(nn.Module):
    """μ_p(s): raw policy observations (N, obs_dim) -> unit latents (N, latent_dim). The observation is standardised
    with fixed statistics of the data it was fitted on. ``config["kind"]`` "mlp": an MLP (hidden sizes
    ``config["units"]``); "nearest": the stored latent (``bank_z``) of the stored observation (``bank_obs``,
    standardised, ``config["bank_size"]`` of them) nearest to s. ``config`` rebuilds it."""

    obs_mean: Tensor
    obs_std: Tensor
    bank_obs: Tensor
    bank_z: Tensor

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = dict(config)
        self.record: dict[str, Any] = {}
        """the fit's numbers and timings (:func:`latent_prior`)"""
        self.kind = str(config.get("kind", "mlp"))
        obs_dim, latent_dim = int(config["obs_dim"]), int(config["latent_dim"])
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        if self.kind == "mlp":
            self.net = mlp([obs_dim, *[int(u) for u in config["units"]], latent_dim])
        elif self.kind == "nearest":
            size = int(config["bank_size"])
            self.register_buffer("bank_obs", torch.zeros(size, obs_dim))
            self.register_buffer("bank_z", torch.zeros(size, latent_dim))
        else:
            raise ValueError(f"unknown prior kind {self.kind!r}")

    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    def standardise(self, obs: Tensor) -> Tensor:
        return ((obs - self.obs_mean) / self.obs_std).clamp(-5.0, 5.0)

    def raw(self, obs: Tensor) -> Tensor:
        """The regression's output (N, latent_dim), before normalisation."""
        x = self.standardise(obs.to(self.obs_mean.dtype))
        if self.kind == "mlp":
            return self.net(x)
        nearest = torch.cat([torch.cdist(x[i:i + 4096], self.bank_obs).argmin(-1) for i in range(0, len(x), 4096)])
        return self.bank_z[nearest]

    def forward(self, obs: Tensor) -> Tensor:
        return F.normalize(self.raw(obs), dim=-1)


# ---------------------------------------------------------------- the data
@dataclass
class PriorData:
    """Samples for the prior: obs (N, 223) policy observations; z (N, D) unit target latents; group (N,) long, the
    trajectory a sample belongs to (held out together); rollout (N,) bool, from the controller's own rollouts."""

    obs: Tensor
    z: Tensor
    group: Tensor
    rollout: Tensor

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @staticmethod
    def cat(parts: list[PriorData]) -> PriorData:
        return PriorData(*(torch.cat([getattr(p, k) for p in parts]) for k in ("obs", "z", "group", "rollout")))


def _windows_from(lib: MotionLibrary, clip_ids: Tensor, start_times: Tensor, steps: int, dt: float) -> Tensor:
    """(N, steps, F) AMP windows that start at ``start_times``, newest first (past a clip's end: its last frame;
    :func:`anyskill.llc.latent_checks.forward_windows`)."""
    return lib.amp_obs_window(clip_ids, start_times + (steps - 1) * dt, steps, dt)


@torch.no_grad()
def reference_prior_data(llc: Any, lib: MotionLibrary, stride: int = 1, batch: int = 1024) -> PriorData:
    """Every ``stride``-th control step of every clip: the policy observation of the reference state and the latent
    of the window that starts there. Groups: 1-s blocks of a clip."""
    from anyskill.humanoid.obs import policy_obs

    dt = llc.motion_dt
    ids, times = [], []
    for c in range(lib.num_clips):
        n = int(float(lib.durations[c]) / dt + 1e-6) + 1
        t = torch.arange(0, n, stride, dtype=torch.float32) * dt
        ids.append(torch.full((len(t),), c, dtype=torch.long))
        times.append(t)
    clip_ids, ts = torch.cat(ids).to(lib.device), torch.cat(times).to(lib.device)
    obs, z = [], []
    for i in range(0, len(clip_ids), batch):
        cb, tb = clip_ids[i:i + batch], ts[i:i + batch]
        s = lib.state_at(cb, tb)
        obs.append(policy_obs(s.body_pos, s.body_rot, s.body_vel, s.body_ang_vel).float().cpu())
        z.append(llc.encode(_windows_from(lib, cb, tb, llc.enc_steps, dt).to(_device(llc))).float().cpu())
    group = clip_ids.cpu() * 10_000 + ts.cpu().floor().long()
    return PriorData(torch.cat(obs), torch.cat(z), group, torch.zeros(len(group), dtype=torch.bool))


@torch.no_grad()
def rollout_prior_data(llc: Any, lib: MotionLibrary, settings: LatentPriorSettings = DEFAULT_PRIOR,
                       num_threads: int = 1) -> PriorData:
    """The controller replaying every clip with sliding latents (``settings``: ``rollout_starts`` starts from random
    clip times in the clip's reference state and as many from the standing pose, the first of them at the clip's
    start; at most ``rollout_seconds`` s, at least 1 s, until the fall): each alive step's observation and the latent
    it was sent. Groups: one per rollout."""
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    c, r = lib.num_clips, settings.rollout_starts
    n = 2 * c * r
    gen = torch.Generator().manual_seed(settings.seed)
    env = HumanoidEnv(EnvConfig(num_envs=n, state_init="default", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                episode_length=None, enable_early_termination=False, seed=settings.seed,
                                num_threads=num_threads), motion_lib=lib)
    env.reset()
    dt = env.dt
    clip_ids = torch.arange(c).repeat_interleave(2 * r)
    from_clip = (torch.arange(n) % (2 * r)) < r
    durations = lib.durations.cpu()[clip_ids].float()
    t0 = torch.rand(n, generator=gen) * (durations - 1.0).clamp_min(0.0)
    t0[~from_clip & (torch.arange(n) % (2 * r) == r)] = 0.0  # the first standing start of each clip: its beginning
    ref = from_clip.nonzero().flatten()
    env.start_from_reference(ref.to(env.device), clip_ids[ref].to(lib.device), t0[ref].to(lib.device))
    horizon = ((durations - t0).clamp(1.0, settings.rollout_seconds) / dt).round().long()
    llc.reset_timing()
    obs = env.policy_observation()
    alive = torch.ones(n, dtype=torch.bool)
    out_obs, out_z, out_group = [], [], []
    dev = _device(llc)
    z = torch.zeros(n, llc.latent_dim, device=dev)
    for k in range(int(horizon.max())):
        if k % settings.llc_steps == 0:
            start = (t0 + k * dt).to(lib.device)
            z = llc.encode(_windows_from(lib, clip_ids.to(lib.device), start, llc.enc_steps, dt).to(dev))
        keep = alive & (k < horizon)
        if not keep.any():
            break
        out_obs.append(obs.cpu()[keep])
        out_z.append(z.cpu()[keep])
        out_group.append(keep.nonzero().flatten())
        obs_d, _, _, extras = env.step(llc.act(obs.to(dev), z).to(env.device))
        obs = obs_d["obs"]
        alive &= ~extras["fallen"].cpu()
    group = 1_000_000 + torch.cat(out_group)
    return PriorData(torch.cat(out_obs).float(), torch.cat(out_z).float(), group,
                     torch.ones(len(group), dtype=torch.bool))


def collect_prior_data(llc: Any, lib: MotionLibrary, settings: LatentPriorSettings = DEFAULT_PRIOR
                       ) -> PriorData:
    """The samples ``settings.source`` names (:class:`~anyskill.config.llc.LatentPriorSettings`)."""
    parts = []
    if settings.source in ("reference", "both"):
        parts.append(reference_prior_data(llc, lib, settings.reference_stride))
    if settings.source in ("rollout", "both"):
        parts.append(rollout_prior_data(llc, lib, settings))
    return PriorData.cat(parts)


def _device(llc: Any) -> torch.device:
    p = next(iter(llc.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


# ---------------------------------------------------------------- the fit
def heldout_mask(group: Tensor, fraction: float, seed: int) -> Tensor:
    """(N,) bool: the samples of a ``fraction`` of the groups, drawn with ``seed`` (at least one group when
    ``fraction`` > 0 and there are two or more)."""
    groups = torch.unique(group)
    k = int(round(fraction * len(groups)))
    if fraction > 0 and len(groups) > 1:
        k = min(max(k, 1), len(groups) - 1)
    gen = torch.Generator().manual_seed(seed)
    held = groups[torch.randperm(len(groups), generator=gen)[:k]]
    return torch.isin(group, held)


def regression_errors(prior: LatentPrior, obs: Tensor, z: Tensor, mean_latent: Tensor) -> dict[str, float]:
    """On samples (obs, z): ``error`` E‖μ_raw(s) - z‖² (the loss), ``baseline_error`` E‖z̄ - z‖² (predicting the
    training data's mean latent), ``cosine`` E cos(μ_p(s), z) and ``baseline_cosine`` E cos(z̄, z)."""
    with torch.no_grad():
        raw = prior.raw(obs)
        return {"error": float((raw - z).square().sum(-1).mean()),
                "baseline_error": float((mean_latent - z).square().sum(-1).mean()),
                "cosine": float((F.normalize(raw, dim=-1) * z).sum(-1).mean()),
                "baseline_cosine": float((F.normalize(mean_latent, dim=-1) * z).sum(-1).mean())}


def fit_latent_prior(data: PriorData, settings: LatentPriorSettings = DEFAULT_PRIOR,
                     on_step: Callable[[int, float], None] | None = None) -> tuple[LatentPrior, dict[str, Any]]:
    """Fit μ_p of ``settings.kind`` on ``data`` with ``settings.heldout_fraction`` of the groups held out ("mlp": mean
    squared error to the unit targets, Adam; "nearest": the training samples stored); returns the prior (eval mode)
    and a record: sample counts, ``train``/``heldout`` errors (:func:`regression_errors`, against the training mean
    latent) and the loss curve (every 100 steps)."""
    held = heldout_mask(data.group, settings.heldout_fraction, settings.seed)
    train = ~held
    obs, z = data.obs.float(), data.z.float()
    x_train, z_train = obs[train], z[train]
    config: dict[str, Any] = {"kind": settings.kind, "obs_dim": obs.shape[1], "latent_dim": z.shape[1]}
    config.update({"units": list(settings.units)} if settings.kind == "mlp" else {"bank_size": len(obs)})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        prior = LatentPrior(config)
    prior.obs_mean.copy_(x_train.mean(0))
    prior.obs_std.copy_(x_train.std(0).clamp_min(1e-3))
    mean_latent = z_train.mean(0)
    curve = []
    if settings.kind == "nearest":  # the held-out samples are looked up only after they have been scored
        prior.bank_obs.copy_(prior.standardise(obs))
        prior.bank_z.copy_(z)
        prior.bank_obs[held] = 1e4  # far from every standardised observation (clamped to +-5)
    else:
        opt = torch.optim.Adam(prior.parameters(), lr=settings.lr)
        gen = torch.Generator().manual_seed(settings.seed + 1)
        prior.train()
        for step in range(settings.steps):
            for g in opt.param_groups:  # cosine decay
                g["lr"] = settings.lr * 0.5 * (1.0 + math.cos(math.pi * step / settings.steps))
            idx = torch.randint(len(x_train), (min(settings.batch_size, len(x_train)),), generator=gen)
            loss = (prior.raw(x_train[idx]) - z_train[idx]).square().sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 100 == 0 or step == settings.steps - 1:
                curve.append({"step": step, "loss": float(loss.detach())})
                if on_step is not None:
                    on_step(step, float(loss.detach()))
    prior.eval()
    for p in prior.parameters():
        p.requires_grad_(False)
    record = {"kind": settings.kind, "samples": len(data), "rollout_samples": int(data.rollout.sum()),
              "heldout_samples": int(held.sum()),
              "train": regression_errors(prior, x_train, z_train, mean_latent),
              "heldout": (regression_errors(prior, obs[held], z[held], mean_latent) if held.any() else None),
              "curve": curve}
    if settings.kind == "nearest":
        prior.bank_obs.copy_(prior.standardise(obs))  # every sample, held-out ones included, for use
    return prior, record


# ---------------------------------------------------------------- the cache
_PARAM_HASHES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _tensors_sha256(tensors: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def controller_identity(llc: Any) -> str:
    """SHA-256 of a controller's weights and buffers (remembered per object)."""
    if llc not in _PARAM_HASHES:
        _PARAM_HASHES[llc] = _tensors_sha256(dict(llc.state_dict()))
    return _PARAM_HASHES[llc]


def library_identity(lib: MotionLibrary) -> str:
    """SHA-256 of a motion library's clip names, durations and per-frame arrays."""
    if lib not in _PARAM_HASHES:
        frames = {f"frames.{k}": v for k, v in lib._frames.items() if isinstance(v, Tensor)}
        h = hashlib.sha256(json.dumps(lib.clip_names).encode())
        h.update(_tensors_sha256({"durations": lib.durations, **frames}).encode())
        _PARAM_HASHES[lib] = h.hexdigest()
    return _PARAM_HASHES[lib]


def prior_inputs(llc: Any, lib: MotionLibrary, settings: LatentPriorSettings) -> dict[str, Any]:
    """Everything the prior depends on (JSON-able); its hash is the cache key."""
    return {"format_version": FORMAT_VERSION, "controller_sha256": controller_identity(llc),
            "controller": type(llc).__name__, "motions_sha256": library_identity(lib),
            "settings": json.loads(json.dumps(asdict(settings)))}


def default_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$ANYSKILL_CACHE/prior``, else ``~/.cache/anyskill/prior``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get("ANYSKILL_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "anyskill") / "prior"


class PriorCacheWarning(UserWarning):
    """A prior cache file was unusable (corrupt, other inputs or version) and is being rebuilt."""


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_prior(path: str | Path, prior: LatentPrior, inputs: dict[str, Any], record: dict[str, Any]) -> Path:
    """Write a prior atomically (``.pt``, then its readable ``.json``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in prior.state_dict().items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "inputs": json.dumps(inputs, sort_keys=True),
               "config": json.dumps(prior.config), "record": json.dumps(record), "weights": weights,
               "checksum": _tensors_sha256(weights)}
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    _atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(
        {"inputs": inputs, **record}, indent=1)))
    return path


def load_prior(path: str | Path, inputs: dict[str, Any] | None = None) -> tuple[LatentPrior, dict[str, Any]]:
    """A prior written by :func:`save_prior` and its record; ValueError saying why when it cannot be used (for
    ``inputs``, when given)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle errors, ...
        raise ValueError(f"cannot be read ({type(e).__name__}: {str(e)[:120]})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError("is not a latent prior file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"has format version {payload.get('format_version')}, this code writes {FORMAT_VERSION}")
    try:
        stored, config, record = (json.loads(payload[k]) for k in ("inputs", "config", "record"))
        weights, checksum = payload["weights"], payload["checksum"]
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"is incomplete ({type(e).__name__}: {e})") from e
    if inputs is not None and stored != json.loads(json.dumps(inputs, sort_keys=True)):
        changed = sorted(k for k in set(stored) | set(inputs) if stored.get(k) != inputs.get(k))
        raise ValueError(f"was made from other inputs (differ: {changed})")
    if _tensors_sha256(weights) != checksum:
        raise ValueError("has weights that do not match their checksum (corrupt)")
    prior = LatentPrior(config)
    prior.load_state_dict(weights)
    for p in prior.parameters():
        p.requires_grad_(False)
    return prior.eval(), record


_MEMORY: dict[str, tuple[LatentPrior, dict[str, Any]]] = {}


def latent_prior(llc: Any, lib: MotionLibrary | None = None, settings: LatentPriorSettings | None = None,
                 cache_dir: str | Path | None = None, rebuild: bool = False,
                 on_status: Callable[[str], None] | None = None) -> LatentPrior:
    """The latent prior of ``llc`` on ``lib`` (default: the bundled motions): from memory, from the cache, or fitted
    now (:func:`collect_prior_data`, :func:`fit_latent_prior`) and cached (module docstring). The prior's ``record``
    attribute holds its fit's numbers and timings; it is on ``llc``'s device."""
    if lib is None:
        from anyskill.data import default_library

        lib = default_library()
    settings = settings or DEFAULT_PRIOR
    say = on_status or (lambda _: None)
    inputs = prior_inputs(llc, lib, settings)
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]
    path = default_cache_dir(cache_dir) / f"prior-{key}.pt"
    memo = str(path.resolve())
    found = None if rebuild else _MEMORY.get(memo) if path.exists() else None
    if found is None and not rebuild and path.exists():
        try:
            found = load_prior(path, inputs)
        except ValueError as e:
            msg = f"latent prior cache file {path} {e}; it is not used and is being rebuilt"
            warnings.warn(msg, PriorCacheWarning, stacklevel=2)
            say(msg)
    if found is None:
        say(f"fitting the latent prior of this controller ({settings.source} data); cached in {path.parent}")
        t0 = time.perf_counter()
        data = collect_prior_data(llc, lib, settings)
        t1 = time.perf_counter()
        prior, record = fit_latent_prior(data, settings)
        record["timings"] = {"data_s": round(t1 - t0, 2), "fit_s": round(time.perf_counter() - t1, 2)}
        save_prior(path, prior, inputs, record)
        found = (prior, record)
        h = record["heldout"] or record["train"]
        say(f"latent prior fitted in {time.perf_counter() - t0:.0f} s on {len(data)} samples: held-out cos "
            f"{h['cosine']:.2f} (mean latent {h['baseline_cosine']:.2f})")
    _MEMORY[memo] = found
    prior, record = found
    prior = prior.to(_device(llc))
    prior.record = record
    return prior
