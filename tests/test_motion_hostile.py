"""Regression tests for the hostile and broken motion files of issue 9: one per class of escape the fuzzing found.

Each file must raise one :class:`MotionFormatError` naming it and what is wrong, quickly and without large
allocations; the fuzz test (test_motion_fuzz.py) covers random mutants.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import resource
import struct
import subprocess
import sys
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from anyskill.motion import MotionFormatError, load_motion
from anyskill.motion.bvh import MAX_HIERARCHY_DEPTH
from anyskill.motion.clip import MAX_DURATION_S, MAX_FPS, MAX_FRAMES, MIN_FPS, clip_from_file
from anyskill.motion.poselib import read_skeleton_motion, save_poselib
from anyskill.motion.retarget import load_bvh

DATA = Path(__file__).resolve().parent.parent / "anyskill" / "data"

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct


def expect_error(path: Path, *words: str, seconds: float = 5.0) -> MotionFormatError:
    """Load ``path``: it must raise MotionFormatError naming it, with ``words`` in the reason, within ``seconds``
    and growing the peak RSS by less than 256 MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(MotionFormatError) as info:
        load_motion(path)
    assert time.perf_counter() - start < seconds
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024 < 256 * 2**20
    assert info.value.path == str(path), info.value
    for word in words:
        assert word in info.value.reason, info.value.reason
    return info.value


@pytest.fixture(scope="module")
def clip(model):
    return load_motion(DATA / "motions" / "amp_humanoid_run.npz", model).slice(0, 10)


# ---------------------------------------------------------------------------------------------- .npz
@pytest.fixture
def entries(clip, tmp_path) -> dict:
    with np.load(clip.save(tmp_path / "good.npz")) as f:
        return {k: f[k] for k in f.files}


def _save_npz(path: Path, entries: dict, compress: bool = True) -> Path:
    (np.savez_compressed if compress else np.savez)(path, **entries)
    return path


def test_npz_corrupt_compressed_entry(entries, tmp_path):
    raw = bytearray(_save_npz(tmp_path / "c.npz", entries).read_bytes())
    info = zipfile.ZipFile(tmp_path / "c.npz").getinfo("root_pos.npy")
    data_start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    raw[data_start + 5 : data_start + 40] = bytes(35)  # zlib.error ("invalid stored block lengths" or similar)
    (tmp_path / "zlib.npz").write_bytes(bytes(raw))
    expect_error(tmp_path / "zlib.npz", "not a readable .npz archive")


def test_npz_unsupported_compression_method(entries, tmp_path):
    raw = bytearray(_save_npz(tmp_path / "c.npz", entries).read_bytes())
    central = raw.find(b"PK\x01\x02")
    raw[8:10] = raw[central + 10 : central + 12] = struct.pack("<H", 99)  # NotImplementedError in zipfile
    (tmp_path / "method.npz").write_bytes(bytes(raw))
    expect_error(tmp_path / "method.npz", "not a readable .npz archive")


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_entry_header_claiming_a_huge_array_is_refused_before_allocating(entries, tmp_path, compression):
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000, 3), }"
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    with zipfile.ZipFile(tmp_path / "huge.npz", "w", compression) as z:
        for key, value in entries.items():
            buf = io.BytesIO()
            np.save(buf, value)
            data = buf.getvalue()
            if key == "root_pos":  # 10**8 rows claimed (2.4 GB), 10 stored
                data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + value.tobytes()
            z.writestr(f"{key}.npy", data)
    expect_error(tmp_path / "huge.npz", "entry 'root_pos' is corrupt", "(100000000, 3)")


def test_npz_plain_npy_renamed(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros((10, 3)))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    expect_error(tmp_path / "plain.npz", "not a readable .npz archive")


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("fps", np.array("30"), ["entry 'fps' must hold numbers"]),
        ("fps", np.array(True), ["entry 'fps' must hold numbers"]),
        ("fps", np.array([30.0, 30.0]), ["entry 'fps' must have 0 dimensions"]),
        ("fps", np.array(0.0), ["outside the supported range"]),
        ("fps", np.array(np.nan), ["outside the supported range"]),
        ("format_version", np.array(1.9), ["entry 'format_version' must hold an integer"]),
        ("format_version", np.array("1"), ["entry 'format_version' must hold an integer"]),
        ("format_version", np.array(2), ["format_version 2 is not supported"]),
        ("dof_names", np.arange(28), ["entry 'dof_names' must hold text"]),
        ("dof_names", np.array([["a"] * 7] * 4), ["entry 'dof_names' must have 1 dimensions"]),
        ("meta", np.array("{not json"), ["entry 'meta' is not valid JSON"]),
        ("meta", np.array("[" * 100_000 + "]" * 100_000), ["entry 'meta' is not valid JSON"]),
        ("meta", np.array("[1, 2]"), ["entry 'meta' must be a JSON object"]),
        ("meta", np.array(3), ["entry 'meta' must hold text"]),
        ("name", np.zeros((2, 2)), ["entry 'name' must hold text"]),
        ("root_pos", np.zeros(10, "V24"), ["entry 'root_pos' must hold numbers", "V24"]),
        ("root_rot", np.ones((10, 4), complex), ["entry 'root_rot' must hold numbers"]),
    ],
)
def test_npz_entries_of_the_wrong_type_shape_or_json(entries, tmp_path, key, value, words):
    entries[key] = value
    expect_error(_save_npz(tmp_path / "bad.npz", entries), *words)


def test_npz_too_many_frames(entries, tmp_path):
    for key in ("root_pos", "root_rot", "dof_pos"):
        entries[key] = np.resize(entries[key], (MAX_FRAMES + 1, entries[key].shape[1]))
    expect_error(_save_npz(tmp_path / "long.npz", entries), "MAX_FRAMES")


def test_npz_too_long(entries, tmp_path):
    entries["fps"] = np.array(MIN_FPS)
    for key in ("root_pos", "root_rot", "dof_pos"):
        entries[key] = np.resize(entries[key], (int(MAX_DURATION_S) + 2, entries[key].shape[1]))
    expect_error(_save_npz(tmp_path / "slow.npz", entries), "MAX_DURATION_S")


def test_validation_errors_name_the_file_not_the_clip(entries, tmp_path, model):
    entries["root_rot"] = entries["root_rot"] * 2.0  # not unit quaternions: found by MotionClip.validate
    err = expect_error(_save_npz(tmp_path / "scaled.npz", entries), "root_rot is not unit quaternions")
    assert err.path == str(tmp_path / "scaled.npz")
    with pytest.raises(MotionFormatError) as info:
        clip_from_file("/data/x.npy", name="x", fps=30.0, root_pos=np.zeros((1, 3)), root_rot=np.zeros((1, 4)),
                       dof_pos=np.zeros((1, 28)), model=model)
    assert info.value.path == "/data/x.npy"


def test_clip_fps_of_the_wrong_type(clip):
    for fps in ("30", True, None):
        with pytest.raises(MotionFormatError, match="fps must be a number"):
            type(clip)(clip.name, fps, clip.root_pos, clip.root_rot, clip.dof_pos, model=clip.model)


# ---------------------------------------------------------------------------------------------- poselib .npy
@pytest.fixture
def state(clip, tmp_path) -> dict:
    return read_skeleton_motion(save_poselib(clip, tmp_path / "good.npy"))


def _save_state(path: Path, state: object) -> Path:
    holder = np.empty((), dtype=object)
    holder[()] = state
    np.save(path, holder, allow_pickle=True)
    return path


class _Call:
    """Pickles as ``fn(*args)``, then BUILD with ``state`` if given."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


@pytest.mark.parametrize("value", [np.zeros((15, 2)), np.zeros(3), np.zeros((2, 3))])
def test_poselib_wrong_shaped_local_translation(state, tmp_path, value):
    state["skeleton_tree"]["local_translation"]["arr"] = value
    expect_error(_save_state(tmp_path / "lt.npy", state), "'local_translation' must have shape (15, 3)")


def test_poselib_nan_bone_offsets(state, tmp_path):
    # passed the offset check before: nan > 0.02 is False
    state["skeleton_tree"]["local_translation"]["arr"][3, 1] = np.nan
    expect_error(_save_state(tmp_path / "nan.npy", state), "'local_translation' contains NaN")


@pytest.mark.parametrize("value, words", [(np.array([True, False]), "must be a boolean"), ("yes", "must be a boolean"),
                                          (False, "is_local=True")])
def test_poselib_is_local(state, tmp_path, value, words):
    state["is_local"] = value
    expect_error(_save_state(tmp_path / "local.npy", state), words)


def _shared_bomb() -> list:
    names: list = ["pelvis"]
    for _ in range(10):  # 10**10 leaves in 11 lists: str() of it never ends
        names = [names] * 10
    return names


@pytest.mark.parametrize("names", [42, None, "pelvis", _shared_bomb(), list(range(15))])
def test_poselib_node_names_of_the_wrong_type(state, tmp_path, names):
    state["skeleton_tree"]["node_names"] = names
    expect_error(_save_state(tmp_path / "names.npy", state), "'node_names' must be a list of body names")


def test_poselib_deeply_nested_node_names(state, tmp_path):
    state["skeleton_tree"]["node_names"] = "PLACEHOLDER"
    holder = np.empty((), dtype=object)
    holder[()] = state
    payload = pickle.dumps(holder, protocol=3)
    string = b"X" + struct.pack("<I", 11) + b"PLACEHOLDER"  # BINUNICODE (protocol 3: no frames)
    payload = payload.replace(string, b"]" * 100_001 + b"a" * 100_000)  # a list nested 100,000 deep
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    path = tmp_path / "deep.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload)
    expect_error(path, "'node_names' must be a list of body names")


def test_npy_header_of_unary_minus_signs(state, tmp_path):
    raw = _save_state(tmp_path / "good2.npy", state).read_bytes()
    header = b"{'descr': " + b"-" * 60_000 + b"1, 'fortran_order': False, 'shape': (), }\n"
    path = tmp_path / "minus.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header + raw[raw.index(b"\n") + 1 :])
    expect_error(path, "malformed .npy header")
    header = b"{'descr': " + b"-" * 2_000 + b"1, 'fortran_order': False, 'shape': (), }\n"  # under the length limit
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + raw[raw.index(b"\n") + 1 :])
    expect_error(path, "malformed .npy header")


def test_poselib_a_million_frames_from_a_few_bytes(state, tmp_path):
    state["rotation"]["arr"] = _Call(np.ndarray, ((10**6, 15, 4), np.float32, b"\0" * 16, 0, (0, 0, 0)))
    expect_error(_save_state(tmp_path / "million.npy", state), "refusing to unpickle")


def test_poselib_too_many_frames(state, tmp_path):
    for key in ("rotation", "root_translation"):
        arr = state[key]["arr"]
        state[key]["arr"] = np.resize(arr, (MAX_FRAMES + 1, *arr.shape[1:]))
    expect_error(_save_state(tmp_path / "long.npy", state), "MAX_FRAMES")


@pytest.mark.parametrize("shape", [(10**8,), (10**10,)])
def test_poselib_huge_object_array(state, tmp_path, shape):
    state["rotation"]["arr"] = _Call(_reconstruct, (np.ndarray, shape, b"O"))
    expect_error(_save_state(tmp_path / "objects.npy", state), "refusing to unpickle")


def test_poselib_array_state_inconsistent_with_its_shape(state, tmp_path):
    state["rotation"]["arr"] = _Call(_reconstruct, (np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("f4"), False, b""))
    expect_error(_save_state(tmp_path / "claims.npy", state), "refusing to unpickle")


def test_poselib_object_array_with_a_short_list_does_not_crash(state, tmp_path):
    """numpy fills an object array from a list without checking its length: reading it crashed the process."""
    state["rotation"]["arr"] = _Call(_reconstruct, (np.ndarray, (0,), b"b"), (1, (1000,), np.dtype("O"), False, [None]))
    path = _save_state(tmp_path / "short_list.npy", state)
    code = ("import sys; from anyskill.motion import load_motion, MotionFormatError\n"
            "try:\n    load_motion(sys.argv[1])\nexcept MotionFormatError as e:\n    print(e.reason)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refusing to unpickle" in result.stdout


def test_poselib_pickle_cannot_alter_numpy_dtypes(state, tmp_path):
    """A pickled dtype is always built as a copy: BUILD with fields must not reach numpy's own float32."""
    fields = (3, "<", None, ("a",), {"a": (np.dtype("f4"), 1000)}, -1, -1, 0)
    state["fps"] = _Call(np.dtype, ("f4", False, False), fields)
    path = _save_state(tmp_path / "dtype.npy", state)
    with pytest.raises(MotionFormatError):
        load_motion(path)
    assert np.dtype("f4").fields is None


@pytest.mark.parametrize("fps", [0, -30.0, float("nan"), float("inf"), "30", True, None, 10**400, MAX_FPS * 2])
def test_poselib_bad_fps_is_refused_before_the_joint_limit_fit(state, tmp_path, monkeypatch, fps):
    import anyskill.motion.poselib as poselib

    def no_fit(*args, **kwargs):
        raise AssertionError("the joint-limit fit ran before fps was checked")

    monkeypatch.setattr(poselib, "fit_within_limits", no_fit)
    state["fps"] = fps
    expect_error(_save_state(tmp_path / "fps.npy", state), "fps")


def test_poselib_fps_as_a_0d_array_is_accepted(state, tmp_path):
    state["fps"] = np.array(30, dtype=np.int32)  # as in the IsaacGymEnvs AMP files
    assert load_motion(_save_state(tmp_path / "fps0d.npy", state)).fps == 30.0


# ---------------------------------------------------------------------------------------------- .bvh
@pytest.fixture(scope="module")
def bvh_text() -> str:
    lines = (DATA / "bvh" / "cmu_131_01.bvh").read_text().splitlines()
    m = lines.index("MOTION")
    return "\n".join([*lines[: m + 1], "Frames: 24", lines[m + 2], *lines[m + 3 : m + 27]]) + "\n"


def _write(tmp_path: Path, text: str, name: str = "bad.bvh") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize("count", ["inf", "1e400", "nan", "-1", "2.5", "7"])
def test_bvh_channel_count(tmp_path, bvh_text, count):
    expect_error(_write(tmp_path, bvh_text.replace("CHANNELS 6", f"CHANNELS {count}", 1)), "CHANNELS count", "0 to 6")


@pytest.mark.parametrize("depth", [MAX_HIERARCHY_DEPTH, 1000, 100_000])
def test_bvh_deep_hierarchy(tmp_path, bvh_text, depth):
    at = bvh_text.index("End Site")
    chain = "".join(f"JOINT n{j}\n{{\nOFFSET 0 0 1\n" for j in range(depth)) + "}\n" * depth
    expect_error(_write(tmp_path, bvh_text[:at] + chain + bvh_text[at:]), "MAX_HIERARCHY_DEPTH")


def test_bvh_many_joints(tmp_path, bvh_text):
    at = bvh_text.index("End Site")
    expect_error(_write(tmp_path, bvh_text[:at] + "End Site\n{\nOFFSET 0 0 1\n}\n" * 300 + bvh_text[at:]), "MAX_JOINTS")


@pytest.mark.parametrize(
    "frame_time, words",
    [("100", "MIN_FPS"), ("250", "MIN_FPS"), ("2", "MIN_FPS"), ("1e-320", "MAX_FPS"), ("0.0001", "MAX_FPS"),
     ("1e400", "Frame Time > 0"), ("nan", "Frame Time > 0"), ("0", "Frame Time > 0")],
)
def test_bvh_frame_time_out_of_range(tmp_path, bvh_text, frame_time, words):
    expect_error(_write(tmp_path, bvh_text.replace("Frame Time: .0083333", f"Frame Time: {frame_time}")), words)


def test_bvh_slow_frame_time_over_the_duration_limit(tmp_path):
    """Frame Time 1 s on a 994-frame recording: 993 s, which at 30 fps gave 30,000 frames and gigabytes."""
    text = (DATA / "bvh" / "cmu_131_01.bvh").read_text().replace("Frame Time: .0083333", "Frame Time: 1")
    expect_error(_write(tmp_path, text), "MAX_DURATION_S")


def test_bvh_resampling_over_the_frame_limit(tmp_path, bvh_text):
    """A recording within the limits whose clip at the requested rate would not be is refused before resampling."""
    lines = bvh_text.splitlines()
    m = lines.index("MOTION")
    frames = MAX_FRAMES // 60 + 2  # at 1 fps; at 60 fps over MAX_FRAMES
    rows = (lines[m + 3 + i % 24] for i in range(frames))
    path = _write(tmp_path, "\n".join([*lines[: m + 1], f"Frames: {frames}", "Frame Time: 1", *rows]) + "\n")
    with pytest.raises(MotionFormatError, match="MAX_FRAMES") as info:
        load_bvh(path, fps=60.0)
    assert info.value.path == str(path)


@pytest.mark.parametrize("value", ["1e300", "1e20", "-2e6"])
def test_bvh_huge_values(tmp_path, bvh_text, value):
    lines = bvh_text.splitlines()
    m = lines.index("MOTION")
    row = lines[m + 5].split()
    row[4] = value
    lines[m + 5] = " ".join(row)
    expect_error(_write(tmp_path, "\n".join(lines) + "\n"), "MAX_ABS_VALUE")
    offset = re.sub(r"OFFSET [^\n]*", f"OFFSET 0 {value} 0", bvh_text, count=1)
    expect_error(_write(tmp_path, offset), "OFFSET", "MAX_ABS_VALUE")


def test_bvh_short_recording_still_loads(tmp_path, bvh_text):
    clip = load_motion(_write(tmp_path, bvh_text, "short.bvh"))
    assert clip.num_frames == 6 and clip.fps == 30.0


# ---------------------------------------------------------------------------------------------- json helper sanity
def test_meta_round_trip_keeps_json_objects(entries, tmp_path):
    entries["meta"] = np.array(json.dumps({"source": "test", "nested": {"a": [1, 2]}}))
    assert load_motion(_save_npz(tmp_path / "ok.npz", entries)).meta["nested"] == {"a": [1, 2]}


def test_entries_other_than_the_format_are_ignored(entries, tmp_path):
    entries["extra"] = np.array([OrderedDict(a=1)], dtype=object)  # would need a pickle: never read
    assert load_motion(_save_npz(tmp_path / "extra.npz", entries)).num_frames == 10
