"""The motion library: a weighted set of clips with fast batched state look-up and AMP windows.

It serves demonstration data to the low-level controller (CALM): reference states for resets,
weighted random clips and times, and AMP / encoder observation windows (reference facts §1.5, §2.3, §2.6).

Manifest format (YAML)::

    motions:
      - file: amp_humanoid_walk.npy      # required; relative to the manifest's folder (or absolute)
        weight: 1.0                      # required; >= 0, renormalised over all entries to sum 1
        category: locomotion             # optional; default: the clip's meta "category" or ""
        description: walking forward     # optional; default: the clip's meta "description" or ""
        tags: [gait]                     # optional; secondary groups, stored in the clip's meta["tags"]
        source: CMU mocap via AMP        # optional; stored in the clip's meta["source"]
        licence: BSD-3-Clause            # optional; stored in the clip's meta["licence"]

Files are read with :func:`anyskill.motion.load_motion` (``.npz``, poselib ``.npy``, ``.bvh``). The
key ``text`` of the reference code's manifests is accepted and ignored, as the reference loader does;
any other key is an error, so a misspelt key does not pass silently.

Interpolation at a time t between frames f and f + 1: linear for root position and hinge angles (the
clips store continuous, unwrapped angles), slerp for the root rotation; body positions and rotations are
forward kinematics of that interpolated root and hinges, so setting the state in the simulator
reproduces them. Velocities are those of frame f: finite differences (x[f+1] - x[f]) * fps, which are
exactly the time derivatives of the linear/slerp path between f and f + 1 for the root and the hinges
(the reference code also takes frame f's velocities). The last frame copies the previous frame's.
Clips whose frames come in identical pairs (the IsaacGymEnvs AMP ``.npy`` files store 30 fps data at 60 fps)
give alternating 0 / double velocities; the library warns about them on construction.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import HumanoidModel
from anyskill.humanoid.obs import amp_frame_obs
from anyskill.motion.clip import MotionClip, MotionFormatError, describe, skeleton_for
from anyskill.motion.frame_grid import AmpFrameGrid
from anyskill.motion.load import load_motion

Tensor = torch.Tensor

_REQUIRED_KEYS = ("file", "weight")
_OPTIONAL_KEYS = ("category", "description", "tags", "source", "licence", "text")
_STRING_KEYS = ("category", "description", "source", "licence")
_MAX_WEIGHT = 1e300  # weights are renormalised; larger ones could overflow their sum
MAX_MANIFEST_BYTES = 2**20
"""Largest manifest read, in bytes."""

_FRAME_SNAP = 1e-3
"""Times within this many frames below a frame snap onto it, so that float32 round-off of an exact frame
time selects that frame's velocities rather than the previous frame's."""


class ManifestError(ValueError):
    """A motion manifest is invalid: names the manifest, the entry and the reason."""

    def __init__(self, manifest: str | Path, reason: str, entry: int | None = None, file: str | None = None):
        self.manifest = str(manifest)
        self.entry = entry
        self.reason = reason
        where = "" if entry is None else f" motions[{entry}]" + (f" (file {file!r})" if file is not None else "")
        super().__init__(f"{manifest}:{where}: {reason}")


@dataclass
class MotionState:
    """Batched kinematic state of the humanoid, world frame, z up; N samples, B bodies, D hinges.

    root_pos (N, 3) m; root_rot (N, 4) wxyz; root_vel (N, 3) m/s; root_ang_vel (N, 3) rad/s;
    dof_pos (N, D) rad; dof_vel (N, D) rad/s (hinge-angle rates, as MuJoCo's qvel);
    body_pos (N, B, 3) m; body_rot (N, B, 4) wxyz; body_vel (N, B, 3) m/s; body_ang_vel (N, B, 3) rad/s.
    Body 0 is the root: body_pos[:, 0] == root_pos.
    """

    root_pos: Tensor
    root_rot: Tensor
    root_vel: Tensor
    root_ang_vel: Tensor
    dof_pos: Tensor
    dof_vel: Tensor
    body_pos: Tensor
    body_rot: Tensor
    body_vel: Tensor
    body_ang_vel: Tensor


@dataclass
class EncoderDemoWindows:
    """A CALM training sample (reference facts §2.3): an encoder window and a demo window inside it.

    clip_ids (N,) long; enc_end_times (N,) s; enc_windows (N, enc_steps, F); demo_end_times (N,) s;
    demo_windows (N, disc_steps, F). Windows are AMP frames, newest first (slot k = end time - k dt).
    """

    clip_ids: Tensor
    enc_end_times: Tensor
    enc_windows: Tensor
    demo_end_times: Tensor
    demo_windows: Tensor


class MotionLibrary:
    """Clips with sampling weights, their per-frame states precomputed in flat float32 tensors on ``device``.
    Every tensor it holds or returns is on ``device`` (:meth:`to`: a copy on another); inputs are moved there.

    ``weights`` default to equal weights; they are renormalised to sum 1. ``categories`` and
    ``descriptions`` default to the clips' ``meta`` entries of the same name (or "").

    Attributes: ``clips`` (the MotionClips), ``model``, ``skeleton``, ``weights`` (C,), ``fps`` (C,) 1/s,
    ``num_frames`` (C,) long, ``durations`` (C,) s = (T - 1) / fps, ``frame_offsets`` (C,) long (first row of
    each clip in the flat per-frame tensors), ``key_body_ids`` (K,) long, ``categories``, ``descriptions``.
    """

    def __init__(
        self,
        clips: list[MotionClip],
        weights: list[float] | None = None,
        categories: list[str] | None = None,
        descriptions: list[str] | None = None,
        device: str | torch.device = "cpu",
    ):
        if not clips:
            raise ValueError("MotionLibrary needs at least one clip, got an empty list")
        self.clips = list(clips)
        self.model: HumanoidModel = self.clips[0].model
        for clip in self.clips[1:]:
            if clip.model.dof_names != self.model.dof_names or clip.model.body_names != self.model.body_names:
                raise ValueError(f"clip {clip.name!r} is for a different humanoid than clip {self.clips[0].name!r}")
        c = len(self.clips)
        weights = [1.0] * c if weights is None else [float(w) for w in weights]
        self.categories = _per_clip(categories, self.clips, "category")
        self.descriptions = _per_clip(descriptions, self.clips, "description")
        if len(weights) != c:
            raise ValueError(f"got {len(weights)} weights for {c} clips")
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"weights must be finite and >= 0, got {weights}")
        if sum(weights) <= 0:
            raise ValueError(f"weights must not all be zero, got {weights}")
        self.device = torch.device(device)
        self.skeleton = skeleton_for(self.model)
        self.key_body_ids = torch.as_tensor(self.model.key_body_ids, dtype=torch.long, device=self.device)
        self._joint_body_ids = torch.tensor([j.body for j in self.model.joints], dtype=torch.long, device=self.device)

        f32: dict[str, Any] = dict(dtype=torch.float32, device=self.device)
        self.weights = torch.tensor(weights, **f32) / sum(weights)  # (C,)
        self.fps = torch.tensor([clip.fps for clip in self.clips], **f32)  # (C,) 1/s
        self.num_frames = torch.tensor([clip.num_frames for clip in self.clips], dtype=torch.long, device=self.device)
        self.durations = torch.tensor([clip.duration for clip in self.clips], **f32)  # (C,) s
        self.frame_offsets = torch.cumsum(self.num_frames, 0) - self.num_frames  # (C,) first flat frame of each clip

        for clip in self.clips:
            _warn_if_repeated_frames(clip)
        frames = [_clip_frames(clip, self.skeleton) for clip in self.clips]
        self._frames = {key: torch.cat([f[key] for f in frames]).to(**f32) for key in frames[0]}  # (F, ...)

    @classmethod
    def from_manifest(
        cls, path: str | Path, model: HumanoidModel | None = None, device: str | torch.device = "cpu"
    ) -> MotionLibrary:
        """Build a library from a YAML manifest (format in the module docstring); raises :class:`ManifestError`."""
        path = Path(path)
        entries = _read_manifest(path)
        clips, weights, categories, descriptions = [], [], [], []
        for i, entry in enumerate(entries):
            try:
                clip = load_motion(path.parent / entry["file"], model)
            except MotionFormatError as e:
                raise ManifestError(path, f"cannot load {e.path}: {e.reason}", i, entry["file"]) from None
            for key in ("source", "licence"):
                if key in entry:
                    clip.meta[key] = str(entry[key])
            if "tags" in entry:
                clip.meta["tags"] = list(entry["tags"])
            clips.append(clip)
            weights.append(float(entry["weight"]))
            categories.append(str(entry.get("category", clip.meta.get("category", ""))))
            descriptions.append(str(entry.get("description", clip.meta.get("description", ""))))
        if sum(weights) <= 0:
            raise ManifestError(path, f"all {len(weights)} weights are zero; give at least one clip a positive weight")
        return cls(clips, weights, categories, descriptions, device=device)

    # ------------------------------------------------------------------ info
    @property
    def num_clips(self) -> int:
        return len(self.clips)

    @property
    def clip_names(self) -> list[str]:
        return [clip.name for clip in self.clips]

    @property
    def total_duration(self) -> float:
        """Sum of the clip durations, s."""
        return float(sum(clip.duration for clip in self.clips))

    def summary(self) -> pd.DataFrame:
        """One row per clip: name, category, tags, frames, fps, duration_s, weight, description, source, licence."""
        return pd.DataFrame(
            {
                "name": self.clip_names,
                "category": self.categories,
                "tags": [", ".join(str(t) for t in clip.meta.get("tags", [])) for clip in self.clips],
                "frames": [clip.num_frames for clip in self.clips],
                "fps": [clip.fps for clip in self.clips],
                "duration_s": [clip.duration for clip in self.clips],
                "weight": self.weights.cpu().tolist(),
                "description": self.descriptions,
                "source": [str(clip.meta.get("source", "")) for clip in self.clips],
                "licence": [str(clip.meta.get("licence", "")) for clip in self.clips],
            }
        )

    def __repr__(self) -> str:
        return f"MotionLibrary({self.num_clips} clips, {self.total_duration:.1f} s, device={self.device})"

    def to(self, device: str | torch.device) -> MotionLibrary:
        """This library with its tensors (per-frame states, clip tables, cached frame grids) on ``device``, sharing
        the clips and the skeleton; ``self`` when already there."""
        device = torch.device(device)
        if device == self.device:
            return self

        def move(v: Any) -> Any:
            return {k: move(x) for k, x in v.items()} if isinstance(v, dict) else (
                v.to(device) if isinstance(v, (Tensor, AmpFrameGrid)) else v)

        moved = object.__new__(MotionLibrary)
        moved.__dict__.update({k: move(v) for k, v in self.__dict__.items()}, device=device)
        return moved

    # ------------------------------------------------------------------ sampling
    def sample_clips(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n,) long clip indices drawn with replacement in proportion to the weights."""
        return torch.multinomial(self.weights, n, replacement=True, generator=generator)

    def sample_times(
        self, clip_ids: Tensor, truncate_time: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """(N,) s, uniform in [0, duration - truncate_time] of each clip (upper end clamped at 0)."""
        clip_ids = self._check_ids(clip_ids)
        span = self.durations[clip_ids]
        if truncate_time is not None:
            span = (span - truncate_time).clamp_min(0.0)
        u = torch.rand(clip_ids.shape, generator=generator, device=self.device)
        return u * span

    # ------------------------------------------------------------------ states
    def state_at(self, clip_ids: Tensor, times: Tensor) -> MotionState:
        """Kinematic state of clips ``clip_ids`` (N,) at ``times`` (N,) s, clamped to [0, duration]."""
        i0, i1, blend = self._frame_pair(clip_ids, times)
        fr = self._frames
        root_pos, root_rot, dof_pos = self._interpolate_pose(i0, i1, blend)
        body_pos, body_rot = self.skeleton.forward_kinematics(root_pos, root_rot, dof_pos)
        return MotionState(
            root_pos=root_pos,
            root_rot=root_rot,
            root_vel=fr["root_vel"][i0],
            root_ang_vel=fr["root_ang_vel"][i0],
            dof_pos=dof_pos,
            dof_vel=fr["dof_vel"][i0],
            body_pos=body_pos,
            body_rot=body_rot,
            body_vel=fr["body_vel"][i0],
            body_ang_vel=fr["body_ang_vel"][i0],
        )

    def amp_obs_at(self, clip_ids: Tensor, times: Tensor) -> Tensor:
        """(N, 125) AMP frame observations (:func:`anyskill.humanoid.obs.amp_frame_obs`) at ``times`` (N,) s."""
        i0, i1, blend = self._frame_pair(clip_ids, times)
        root_pos, root_rot, dof_pos = self._interpolate_pose(i0, i1, blend)
        local_rot = self.skeleton.local_rotations(dof_pos)  # composed once, for FK and the joint rotations
        body_pos, _ = self.skeleton.forward_kinematics_local(root_pos, root_rot, local_rot)
        fr = self._frames
        return amp_frame_obs(
            self.skeleton,
            root_pos,
            root_rot,
            fr["root_vel"][i0],
            fr["root_ang_vel"][i0],
            dof_pos,
            fr["dof_vel"][i0],
            body_pos[:, self.key_body_ids],
            joint_rot=local_rot[:, self._joint_body_ids],
        )

    def amp_obs_window(self, clip_ids: Tensor, end_times: Tensor, num_steps: int, dt: float) -> Tensor:
        """(N, num_steps, 125) AMP frames, newest first: slot k at end_times - k dt s, clipped at 0."""
        clip_ids = self._check_ids(clip_ids)
        end_times = torch.as_tensor(end_times, dtype=torch.float32, device=self.device)
        n = clip_ids.shape[0]
        steps = torch.arange(num_steps, dtype=torch.float32, device=self.device) * dt
        times = (end_times[:, None] - steps).clamp_min(0.0)  # (N, num_steps)
        ids = clip_ids[:, None].expand(n, num_steps)
        return self.amp_obs_at(ids.reshape(-1), times.reshape(-1)).reshape(n, num_steps, -1)

    def sample_amp_windows(
        self, n: int, num_steps: int, dt: float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Demonstration windows: clips by weight, end times uniform in [min((num_steps-1) dt, duration), duration].

        Returns clip_ids (n,) long, end_times (n,) s, windows (n, num_steps, 125) newest first.
        """
        clip_ids = self.sample_clips(n, generator)
        end_times = self._sample_end_times(clip_ids, (num_steps - 1) * dt, generator)
        return clip_ids, end_times, self.amp_obs_window(clip_ids, end_times, num_steps, dt)

    def sample_encoder_and_demo_windows(
        self,
        n: int,
        enc_steps: int,
        disc_steps: int,
        dt: float,
        generator: torch.Generator | None = None,
    ) -> EncoderDemoWindows:
        """CALM's paired sample (facts §2.3): an encoder window and a demo window ending inside it.

        Encoder end times as in :meth:`sample_amp_windows`; demo end time = encoder end time
        - U(0, 1) * max(min(duration, (enc_steps - 1) dt) - disc_steps dt, 0), clipped at 0.
        """
        clip_ids = self.sample_clips(n, generator)
        enc_window = (enc_steps - 1) * dt
        enc_end = self._sample_end_times(clip_ids, enc_window, generator)
        span = (self.durations[clip_ids].clamp_max(enc_window) - disc_steps * dt).clamp_min(0.0)
        u = torch.rand(n, generator=generator, device=self.device)
        demo_end = (enc_end - u * span).clamp_min(0.0)
        return EncoderDemoWindows(
            clip_ids=clip_ids,
            enc_end_times=enc_end,
            enc_windows=self.amp_obs_window(clip_ids, enc_end, enc_steps, dt),
            demo_end_times=demo_end,
            demo_windows=self.amp_obs_window(clip_ids, demo_end, disc_steps, dt),
        )

    def frame_grid(self, dt: float) -> AmpFrameGrid:
        """The clips' AMP frames precomputed at times k * dt (:class:`~anyskill.motion.frame_grid.AmpFrameGrid`),
        built once per ``dt`` and cached."""
        grids = self.__dict__.setdefault("_frame_grids", {})
        key = round(float(dt), 12)
        if key not in grids:
            grids[key] = AmpFrameGrid.from_library(self, dt)
        return grids[key]

    # ------------------------------------------------------------------ internals
    def _sample_end_times(self, clip_ids: Tensor, window: float, generator: torch.Generator | None) -> Tensor:
        """(N,) s uniform in [min(window, duration), duration]."""
        dur = self.durations[clip_ids]
        low = dur.clamp_max(window)
        u = torch.rand(clip_ids.shape, generator=generator, device=self.device)
        return low + u * (dur - low)

    def _check_ids(self, clip_ids: Tensor) -> Tensor:
        clip_ids = torch.as_tensor(clip_ids, dtype=torch.long, device=self.device)
        if clip_ids.ndim != 1:
            raise ValueError(f"clip_ids must be 1-D (N,), got shape {tuple(clip_ids.shape)}")
        if clip_ids.numel():
            low, high = torch.stack(torch.aminmax(clip_ids)).tolist()  # one host synchronisation
            if low < 0 or high >= self.num_clips:
                raise IndexError(f"clip ids must be in [0, {self.num_clips}), got range [{low}, {high}]")
        return clip_ids

    def _frame_pair(self, clip_ids: Tensor, times: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Flat indices of frames f and f + 1 around each time (N,), and the blend (N,) in [0, 1]."""
        clip_ids = self._check_ids(clip_ids)
        times = torch.as_tensor(times, dtype=torch.float32, device=self.device)
        if times.shape != clip_ids.shape:
            raise ValueError(
                f"times {tuple(times.shape)} and clip_ids {tuple(clip_ids.shape)} must have the same shape (N,)"
            )
        times = torch.minimum(times.clamp_min(0.0), self.durations[clip_ids])
        phase = times * self.fps[clip_ids]
        last = self.num_frames[clip_ids] - 2
        f0 = torch.minimum(torch.floor(phase + _FRAME_SNAP).long(), last)
        blend = (phase - f0).clamp(0.0, 1.0)
        i0 = self.frame_offsets[clip_ids] + f0
        return i0, i0 + 1, blend

    def _interpolate_pose(self, i0: Tensor, i1: Tensor, blend: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Root position (N, 3) and hinge angles (N, D) linearly, root rotation (N, 4) by slerp."""
        fr = self._frames
        w = blend[:, None]
        root_pos = torch.lerp(fr["root_pos"][i0], fr["root_pos"][i1], w)
        root_rot = rot.quat_slerp(fr["root_rot"][i0], fr["root_rot"][i1], blend)
        dof_pos = torch.lerp(fr["dof_pos"][i0], fr["dof_pos"][i1], w)
        return root_pos, root_rot, dof_pos


def _per_clip(values: list[str] | None, clips: list[MotionClip], meta_key: str) -> list[str]:
    if values is None:
        return [str(clip.meta.get(meta_key, "")) for clip in clips]
    if len(values) != len(clips):
        raise ValueError(f"got {len(values)} {meta_key} entries for {len(clips)} clips")
    return [str(v) for v in values]


def _read_manifest(path: Path) -> list[dict]:
    """The validated entries of a manifest (at most :data:`MAX_MANIFEST_BYTES`); raises :class:`ManifestError`."""
    if not path.is_file():
        raise ManifestError(path, "no such manifest file")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(path, f"larger than the limit MAX_MANIFEST_BYTES = {MAX_MANIFEST_BYTES // 2**10} KiB; "
                                  "a manifest lists motion files, it does not hold motion data")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ManifestError(path, f"not UTF-8 text ({e})") from None
    except OSError as e:
        raise ManifestError(path, f"cannot read the manifest ({e})") from None
    except (yaml.YAMLError, RecursionError) as e:  # PyYAML recurses into nested collections
        raise ManifestError(path, f"not valid YAML ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("motions"), list) or not doc["motions"]:
        raise ManifestError(path, "expected a top-level key 'motions' holding a non-empty list of entries")
    extra = sorted(describe(k) for k in doc if k != "motions")
    if extra:
        raise ManifestError(path, f"unknown top-level key(s) [{', '.join(extra)}]; a manifest holds only 'motions'")
    for i, entry in enumerate(doc["motions"]):
        if not isinstance(entry, dict):
            raise ManifestError(path, f"entry must be a mapping with keys {_REQUIRED_KEYS}, got {describe(entry)}", i)
        file = entry.get("file") if isinstance(entry.get("file"), str) else None
        missing = [k for k in _REQUIRED_KEYS if k not in entry]
        if missing:
            raise ManifestError(path, f"missing required key(s) {missing}", i, file)
        unknown = sorted(describe(k) for k in set(entry) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
        if unknown:
            raise ManifestError(path, f"unknown key(s) [{', '.join(unknown)}]; allowed: "
                                      f"{_REQUIRED_KEYS + _OPTIONAL_KEYS}",
                                i, file)
        if not file:
            raise ManifestError(path, f"'file' must be a non-empty path string, got {describe(entry['file'])}", i)
        tags = entry.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ManifestError(path, f"'tags' must be a list of strings, got {describe(tags)}", i, file)
        for key in _STRING_KEYS:
            if key in entry and not isinstance(entry[key], str):
                raise ManifestError(path, f"{key!r} must be a string (quote it), got {describe(entry[key])}", i, file)
        weight = entry["weight"]
        if isinstance(weight, bool) or not isinstance(weight, Real) or not 0 <= weight <= _MAX_WEIGHT:  # type: ignore[operator]  # Real orders; typeshed's Real does not say so
            raise ManifestError(path, f"'weight' must be a finite number >= 0, got {describe(weight)}", i, file)
    return doc["motions"]


def _warn_if_repeated_frames(clip: MotionClip) -> None:
    """Warn when frames come in identical pairs (data stored at twice its rate), which makes finite-difference
    velocities alternate between 0 and twice the true speed. Held poses (runs of still frames) are fine."""
    from anyskill.motion.quality import drop_repeated_frames

    if drop_repeated_frames(clip) is not clip:
        warnings.warn(
            f"clip {clip.name!r}: frames come in identical pairs ({clip.fps / 2:g} fps data stored at {clip.fps:g} "
            "fps), "
            "so its finite-difference velocities alternate between 0 and twice the true speed; fix it with "
            "anyskill.motion.quality.drop_repeated_frames (keeps every second frame at half the fps)",
            stacklevel=3,
        )


def _clip_frames(clip: MotionClip, skeleton) -> dict[str, Tensor]:
    """Per-frame states of one clip in float64: poses, FK body states and finite-difference velocities."""
    root_pos = torch.from_numpy(clip.root_pos)
    root_rot = torch.from_numpy(clip.root_rot)
    dof_pos = torch.from_numpy(clip.dof_pos)
    body_pos, body_rot = skeleton.forward_kinematics(root_pos, root_rot, dof_pos)
    return {
        "root_pos": root_pos,
        "root_rot": root_rot,
        "dof_pos": dof_pos,
        "root_vel": _linear_velocity(root_pos, clip.fps),
        "root_ang_vel": _angular_velocity(root_rot, clip.fps),
        "dof_vel": _linear_velocity(dof_pos, clip.fps),
        "body_vel": _linear_velocity(body_pos, clip.fps),
        "body_ang_vel": _angular_velocity(body_rot, clip.fps),
    }


def _linear_velocity(x: Tensor, fps: float) -> Tensor:
    """(T, ...) -> (T, ...) forward differences (x[t+1] - x[t]) * fps; the last frame copies the previous."""
    v = (x[1:] - x[:-1]) * fps
    return torch.cat([v, v[-1:]])


def _angular_velocity(q: Tensor, fps: float) -> Tensor:
    """(T, ..., 4) world rotations -> (T, ..., 3) rad/s world: axis-angle(q[t+1] q[t]^-1) * fps."""
    dq = rot.quat_mul(q[1:], rot.quat_conjugate(q[:-1]))
    w = rot.quat_to_exp_map(dq) * fps
    return torch.cat([w, w[-1:]])
