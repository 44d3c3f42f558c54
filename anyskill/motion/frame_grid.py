"""AMP frames of every clip precomputed on the control-rate time grid, for fast window sampling in training.

CALM draws thousands of motion windows per epoch: 60-frame encoder windows, 10-frame discriminator windows inside
them, pairs of nearby windows for the alignment loss (reference facts §2.2-2.3). Computing each from the clips
(interpolation + forward kinematics) costs far more than the networks that read them. On a grid of times
``k * dt`` (k = 0 .. floor(duration / dt)) per clip, a window ending at a grid point is just ``steps`` rows of a
precomputed table, and a window is named by one integer: the grid index of its newest frame. Grid windows are
exactly :meth:`MotionLibrary.amp_obs_window` at end times ``k * dt`` (tested); only end times between grid points
are not drawn (for 30 fps clips and the 30 Hz control rate the grid points are the clips' own frames).

Index conventions: ``G`` grid points in total; clip c owns the contiguous range
``[clip_start[c], clip_start[c] + clip_len[c])``; a window of ``steps`` frames ending at grid index g holds rows
g, g - 1, ..., g - steps + 1 (newest first), clamped at the clip's first row (times clipped at 0, as the library).

Device: every tensor of a grid lives on one device, :attr:`AmpFrameGrid.device` (the library's, or another through
:meth:`AmpFrameGrid.to`), and every method creates its tensors there. Index and time tensors passed in must already
be on that device: the grid moves nothing per call, so a training loop holds its grid where its networks are.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

Tensor = torch.Tensor


@dataclass
class AmpFrameGrid:
    """Per-clip AMP frames at times k * dt; see the module docstring.

    frames (G, F); clip_of (G,) long clip of each row; time_of (G,) s; clip_start, clip_len (C,) long;
    weights (C,) clip sampling weights summing to 1; dt s.
    """

    frames: Tensor
    clip_of: Tensor
    time_of: Tensor
    clip_start: Tensor
    clip_len: Tensor
    weights: Tensor
    dt: float

    @classmethod
    def from_library(cls, lib, dt: float) -> AmpFrameGrid:
        """Build the grid of a :class:`~anyskill.motion.library.MotionLibrary` (or any object with ``durations``,
        ``weights``, ``device`` and ``amp_obs_at(clip_ids, times)``) at spacing ``dt`` s."""
        if dt <= 0:
            raise ValueError(f"grid spacing dt must be > 0 s, got {dt}")
        dev = lib.device
        lengths = torch.floor(lib.durations.double() / dt + 1e-6).long() + 1  # (C,) grid points per clip
        clip_of = torch.repeat_interleave(torch.arange(len(lengths), device=dev), lengths)
        start = torch.cumsum(lengths, 0) - lengths
        k = torch.arange(len(clip_of), device=dev) - start[clip_of]
        times = (k.double() * dt).float().minimum(lib.durations[clip_of])
        frames = torch.cat([lib.amp_obs_at(clip_of[i:i + 4096], times[i:i + 4096])
                            for i in range(0, len(clip_of), 4096)])
        return cls(frames=frames.float(), clip_of=clip_of, time_of=times, clip_start=start, clip_len=lengths,
                   weights=lib.weights.float(), dt=float(dt))

    @property
    def device(self) -> torch.device:
        """The device of every tensor of the grid."""
        return self.frames.device

    def to(self, device: str | torch.device) -> AmpFrameGrid:
        """This grid with every tensor on ``device`` (``self`` when already there)."""
        if self.frames.device == torch.device(device):
            return self
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    @property
    def num_clips(self) -> int:
        return len(self.clip_len)

    @property
    def frame_dim(self) -> int:
        return self.frames.shape[1]

    def windows(self, end_ids: Tensor, steps: int, stride: int = 1) -> Tensor:
        """(n, steps, F) frames, newest first, of the windows ending at grid indices ``end_ids`` (n,): slot j holds
        grid row ``end - j * stride`` clamped at the clip's first row."""
        first = self.clip_start[self.clip_of[end_ids]]
        rows = end_ids[:, None] - torch.arange(steps, device=end_ids.device) * stride
        rows = torch.maximum(rows, first[:, None])
        return self.frames[rows]

    def sample_clips(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n,) clip indices drawn with replacement in proportion to the weights (``generator`` on :attr:`device`)."""
        return torch.multinomial(self.weights, n, replacement=True, generator=generator)

    def sample_window_ends(self, n: int, steps: int, generator: torch.Generator | None = None,
                           clip_ids: Tensor | None = None) -> Tensor:
        """(n,) grid indices of window ends: clips by weight (or ``clip_ids``), end uniform over the grid points
        at or after ``steps - 1`` steps into the clip (any point for clips shorter than the window)."""
        clips = self.sample_clips(n, generator) if clip_ids is None else clip_ids
        length = self.clip_len[clips]
        low = (length - 1).clamp_max(steps - 1)
        u = torch.rand(n, generator=generator, device=self.frames.device)
        offset = low + (u * (length - low).float()).long().minimum(length - 1 - low)
        return self.clip_start[clips] + offset

    def shift(self, ids: Tensor, steps: Tensor) -> Tensor:
        """Grid indices ``steps`` (n,) long rows later (negative: earlier) within the same clip, clamped to it."""
        start = self.clip_start[self.clip_of[ids]]
        end = start + self.clip_len[self.clip_of[ids]] - 1
        return torch.minimum(torch.maximum(ids + steps, start), end)

    def index_at(self, clip_ids: Tensor, times: Tensor) -> Tensor:
        """(n,) grid index of the last grid point at or before ``times`` (n,) s in clips ``clip_ids`` (n,)."""
        k = torch.floor(times.double() / self.dt + 1e-6).long()
        return self.clip_start[clip_ids] + k.clamp(min=0).minimum(self.clip_len[clip_ids] - 1)
