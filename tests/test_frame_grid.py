"""AmpFrameGrid: grid windows equal the motion library's windows, sampling stays inside clips, index helpers."""

import pytest
import torch

from anyskill.data import default_library
from anyskill.motion.frame_grid import AmpFrameGrid

DT = 1.0 / 30.0


@pytest.fixture(scope="module")
def lib():
    return default_library()


@pytest.fixture(scope="module")
def grid(lib):
    return lib.frame_grid(DT)


def test_grid_layout_covers_every_clip(lib, grid):
    assert grid.frames.shape == (int(grid.clip_len.sum()), 125)
    assert torch.equal(grid.clip_len, torch.floor(lib.durations.double() / DT + 1e-6).long() + 1)
    for c in range(lib.num_clips):
        rows = slice(int(grid.clip_start[c]), int(grid.clip_start[c] + grid.clip_len[c]))
        assert (grid.clip_of[rows] == c).all()
        assert grid.time_of[rows][0] == 0 and grid.time_of[rows][-1] <= lib.durations[c] + 1e-6
    assert lib.frame_grid(DT) is grid  # cached per spacing


@pytest.mark.parametrize("stride", [1, 3])
def test_windows_equal_library_windows(lib, grid, stride):
    g = torch.Generator().manual_seed(0)
    ends = grid.sample_window_ends(300, 60, g)
    ends[:4] = grid.clip_start[:4]  # windows ending at a clip's first frame repeat it (times clipped at 0)
    steps = len(range(0, 60, stride))
    got = grid.windows(ends, steps, stride)
    ref = lib.amp_obs_window(grid.clip_of[ends], grid.time_of[ends], 60, DT)[:, ::stride]
    assert got.shape == (300, steps, 125)
    assert (got - ref).abs().max().item() < 1e-4


def test_sampled_ends_lie_in_their_clip_and_leave_room_for_the_window(grid):
    g = torch.Generator().manual_seed(1)
    ends = grid.sample_window_ends(5000, 60, g)
    clip = grid.clip_of[ends]
    offset = ends - grid.clip_start[clip]
    assert (offset >= torch.minimum(grid.clip_len[clip] - 1, torch.tensor(59))).all()
    assert (offset < grid.clip_len[clip]).all()
    counts = torch.bincount(clip, minlength=grid.num_clips).float() / 5000
    assert torch.allclose(counts, grid.weights, atol=0.03)  # clips in proportion to their weights
    only = grid.sample_window_ends(10, 60, g, clip_ids=torch.full((10,), 2))
    assert (grid.clip_of[only] == 2).all()


def test_shift_and_index_at_stay_inside_the_clip(grid):
    start, length = int(grid.clip_start[3]), int(grid.clip_len[3])
    ids = torch.tensor([start, start + 5, start + length - 1])
    assert grid.shift(ids, torch.tensor([-4, 10, 7])).tolist() == [start, start + 15, start + length - 1]
    t = torch.tensor([0.0, 5.5 * DT, 1e3])
    assert grid.index_at(torch.tensor([3, 3, 3]), t).tolist() == [start, start + 5, start + length - 1]


def test_bad_spacing_is_an_error(lib):
    with pytest.raises(ValueError, match="dt"):
        AmpFrameGrid.from_library(lib, 0.0)
