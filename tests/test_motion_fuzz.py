"""Fuzzing the motion readers: every mutant of a bundled file loads as a valid clip or raises one MotionFormatError
naming the file, within a per-file time and memory limit (issue 9).

Mutants are generated here, with a fixed seed, from the bundled ``.npz`` clips and BVH recordings (poselib ``.npy``
files are written from the bundled clips): byte flips, truncation, insertions, edited header fields, wrong types and
shapes, huge and non-finite numbers, nesting bombs, pickles asking for code.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import random
import resource
import signal
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from anyskill.motion import MotionFormatError, load_motion
from anyskill.motion.clip import MAX_FPS, MAX_FRAMES, MIN_FPS
from anyskill.motion.poselib import read_skeleton_motion, save_poselib

DATA = Path(__file__).resolve().parent.parent / "anyskill" / "data"
SEED = 20240909
MUTANTS = 300  # per format
TIME_LIMIT_S = 10.0  # per file
MEMORY_LIMIT = 512 * 2**20  # growth of the process's peak RSS over the whole run, bytes
MARKER = Path("/tmp/anyskill_fuzz_payload_ran")

Mutant = tuple[str, bytes]  # (kind, file bytes)


class _Overtime(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Overtime


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _check_contract(path: Path, model) -> tuple[str | None, bool]:
    """Load ``path`` under the time limit: (what broke the contract, or None; whether a clip loaded)."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    try:
        return _load_and_judge(path, model)
    except _Overtime:
        return f"still loading after {TIME_LIMIT_S} s", False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _load_and_judge(path: Path, model) -> tuple[str | None, bool]:
    try:
        clip = load_motion(path, model)
    except MotionFormatError as e:
        return (None if e.path == str(path) else f"MotionFormatError naming {e.path!r}, not the file"), False
    except _Overtime:
        raise
    except Exception as e:  # the contract: nothing but MotionFormatError
        return f"{type(e).__name__}: {str(e)[:200]}", False
    t = clip.num_frames
    shapes_ok = (clip.root_pos.shape == (t, 3) and clip.root_rot.shape == (t, 4)
                 and clip.dof_pos.shape == (t, model.num_dofs))
    values_ok = all(np.all(np.isfinite(a)) for a in (clip.root_pos, clip.root_rot, clip.dof_pos))
    if not (shapes_ok and values_ok and 2 <= t <= MAX_FRAMES and MIN_FPS <= clip.fps <= MAX_FPS):
        return f"invalid clip: {t} frames, fps {clip.fps}, finite {values_ok}", True
    return None, True


# ------------------------------------------------------------------------------------------------ byte mutations
def _mutate_bytes(rng: random.Random, raw: bytes, keep: tuple[int, int] = (0, 0)) -> Mutant:
    """A random byte-level change of ``raw`` outside the range ``keep``."""
    b = bytearray(raw)

    def pos() -> int:
        while True:
            i = rng.randrange(len(b))
            if not keep[0] <= i < keep[1]:
                return i

    kind = rng.choice(["flip", "flips", "byte", "truncate", "insert", "delete", "duplicate"])
    if kind in ("flip", "flips"):
        for _ in range(1 if kind == "flip" else rng.randint(2, 32)):
            b[pos()] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        b[pos()] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    elif kind == "truncate":
        del b[pos() :]
    elif kind == "insert":
        i = pos()
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    elif kind == "delete":
        i = pos()
        del b[i : i + rng.randint(1, 64)]
    else:
        i = pos()
        b[i:i] = b[i : i + rng.randint(1, 256)]
    return kind, bytes(b)


# ------------------------------------------------------------------------------------------------ .npz
_WEIRD = [np.array("30"), np.array(True), np.array(0.0), np.array(-30.0), np.array(np.nan), np.array(np.inf),
          np.array(1e308), np.array(1e-300), np.array([30.0, 30.0]), np.array(1.9), np.array(2), np.array("1"),
          np.zeros((0,)), np.zeros((2, 2)), np.array(1 + 2j), np.zeros(2, "V8"), np.zeros(2, [("a", "f8")]),
          np.array(10**18), np.array(1e9), np.array(np.uint64(2**64 - 1))]


def _npz(entries: dict, compress: bool = True) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **entries)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _lying_header(array: np.ndarray, rows: int) -> bytes:
    """``array`` as .npy bytes whose header claims ``rows`` rows."""
    header = repr({"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
                   "shape": (rows, *array.shape[1:])}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + array.tobytes()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return buf.getvalue()


def _npz_mutant(rng: random.Random, raw: bytes) -> Mutant:
    with np.load(io.BytesIO(raw)) as f:
        d = {k: f[k] for k in f.files}
    arrays = ("root_pos", "root_rot", "dof_pos")
    kind = rng.choice(["bytes", "bytes", "bytes", "scalar", "scalar", "array", "array", "values", "frames", "meta",
                       "dof_names", "missing", "lying_header", "plain_npy", "method", "object", "stored"])
    if kind == "bytes":
        return _mutate_bytes(rng, raw)
    if kind == "scalar":
        key = rng.choice(["fps", "format_version", "name", "format", "meta"])
        d[key] = rng.choice(_WEIRD)
        return f"scalar {key}", _npz(d)
    if kind == "array":
        key = rng.choice(arrays)
        a = d[key]
        d[key] = rng.choice([a.astype(complex), a.astype(str), a.astype(bool), np.zeros(len(a), f"V{8 * a.shape[1]}"),
                             a[:, :-1], a[..., None], a.ravel(), a.astype(np.float16), np.array(3.0), a.T])
        return f"array {key}", _npz(d)
    if kind == "values":
        key = rng.choice(arrays)
        a = d[key].copy()
        a.flat[rng.randrange(a.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e308, 1e30])
        d[key] = a
        return f"values {key}", _npz(d)
    if kind == "frames":
        n = rng.choice([0, 1, MAX_FRAMES + 1])
        for key in arrays:
            d[key] = np.resize(d[key], (n, d[key].shape[1]))
        return f"{n} frames", _npz(d)
    if kind == "meta":
        d["meta"] = np.array(rng.choice(["{bad", "[" * 50_000 + "]" * 50_000, "[1, 2]", "42", "null"]))
        return "meta", _npz(d)
    if kind == "dof_names":
        names = d["dof_names"]
        d["dof_names"] = rng.choice([names[::-1], np.arange(len(names)), names.reshape(4, 7), names[:0],
                                     names.astype("S")])
        return "dof_names", _npz(d)
    if kind == "missing":
        del d[rng.choice(sorted(d))]
        return "missing entry", _npz(d)
    if kind == "lying_header":
        members = {k: _npy(v) for k, v in d.items()}
        key = rng.choice(arrays)
        members[key] = _lying_header(d[key], rng.choice([10**8, 2**40, len(d[key]) + 1]))
        return "lying header", _zip(members, rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    if kind == "plain_npy":
        return "plain .npy", _npy(d[rng.choice(["root_pos", "fps"])])
    if kind == "method":  # an unknown or unsupported compression method in the first member's headers
        b = bytearray(raw)
        method = struct.pack("<H", rng.choice([1, 6, 9, 14, 99]))
        b[8:10] = method
        central = b.find(b"PK\x01\x02")
        b[central + 10 : central + 12] = method
        return "compression method", bytes(b)
    if kind == "object":
        d[rng.choice(["root_pos", "fps", "meta"])] = np.array([OrderedDict(a=1)] * 3, dtype=object)
        return "object array", _npz(d)
    kind, b = _mutate_bytes(rng, _npz(d, compress=False))
    return f"stored {kind}", b


# ------------------------------------------------------------------------------------------------ poselib .npy
class _Call:
    """Pickles as a call of ``fn(*args)`` (optionally followed by BUILD with ``state``)."""

    def __init__(self, fn: Callable, args: tuple, state: object = None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _holder_npy(state: object, protocol: int = 3) -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    holder = np.empty((), dtype=object)
    holder[()] = state
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + pickle.dumps(holder, protocol=protocol)


def _payloads() -> list[_Call]:
    import builtins
    import subprocess

    cmd = f"touch {MARKER}"
    return [_Call(os.system, (cmd,)), _Call(builtins.eval, (f"__import__('os').system({cmd!r})",)),
            _Call(subprocess.call, (cmd.split(),)), _Call(builtins.exec, (f"open({str(MARKER)!r}, 'w')",)),
            _Call(np.load, ("/etc/hostname",))]


def _npy_mutant(rng: random.Random, raw: bytes, keep: tuple[int, int], state: dict) -> Mutant:
    state = copy.deepcopy(state)
    tree = state["skeleton_tree"]
    kind = rng.choice(["bytes", "bytes", "bytes", "tree", "is_local", "names", "fps", "fps", "rotation", "strided",
                       "reconstruct", "header", "payload", "missing", "types", "protocol"])
    if kind == "bytes":
        return _mutate_bytes(rng, raw, keep)
    if kind == "tree":
        key = rng.choice(["local_translation", "parent_indices"])
        arr = tree[key]["arr"]
        tree[key]["arr"] = rng.choice([arr[:2], arr.ravel(), np.full(arr.shape, np.nan), arr.astype(complex),
                                       arr[None]])
    elif kind == "is_local":
        state["is_local"] = rng.choice([np.array([True, False]), np.zeros(3), "yes", False, None, [1]])
    elif kind == "names":
        bomb = ["x"]
        for _ in range(10):  # 10**10 leaves, 11 lists
            bomb = [bomb] * 10
        tree["node_names"] = rng.choice([42, None, "pelvis", list(range(15)), [b"x"] * 15, {"a": 1}, bomb,
                                         ["x" * 10**6] * 15])
    elif kind == "fps":
        state["fps"] = rng.choice(["30", True, np.bool_(True), 0, -60.0, float("nan"), float("inf"), 1e308, 10**400,
                                   None, [30], np.array([30.0, 1.0]), np.float32(1e-3), np.complex128(30),
                                   np.str_("30")])
    elif kind == "rotation":
        arr = state["rotation"]["arr"].copy()
        choice = rng.randrange(4)
        if choice == 0:
            arr.flat[rng.randrange(arr.size)] = np.nan
        elif choice == 1:
            arr[rng.randrange(len(arr)), rng.randrange(15)] = 0.0
        state["rotation"]["arr"] = [arr, arr, arr[:, :14], arr[:1]][choice]
    elif kind == "strided":  # a million frames from 16 bytes
        key, shape = rng.choice([("rotation", (10**6, 15, 4)), ("root_translation", (10**6, 3))])
        state[key]["arr"] = _Call(np.ndarray, (shape, np.float32, b"\0" * 16, 0, (0,) * len(shape)))
    elif kind == "reconstruct":
        from numpy._core.multiarray import _reconstruct

        if rng.random() < 0.5:
            state["rotation"]["arr"] = _Call(_reconstruct, (np.ndarray, (rng.choice([10**8, 10**10]),), b"O"))
        else:  # a float array whose state claims a billion elements
            state["rotation"]["arr"] = _Call(_reconstruct, (np.ndarray, (0,), b"b"),
                                             (1, (10**9,), np.dtype("f4"), False, b""))
    elif kind == "header":
        start = raw.index(b"\n") + 1
        header = rng.choice([b"{'descr': '<f8', 'fortran_order': False, 'shape': (), }", b"[1, 2]", b"not python",
                             b"{'descr': " + b"-" * 4000 + b"1, 'fortran_order': False, 'shape': (), }",
                             b"{'descr': '|O', 'fortran_order': False, 'shape': (10000000000,), }"])
        header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
        version = rng.choice([b"\x01", b"\x01", b"\x02", b"\x09"])
        length = struct.pack("<H" if version == b"\x01" else "<I", len(header) if rng.random() < 0.8 else 60_000)
        return "header", b"\x93NUMPY" + version + b"\x00" + length + header + raw[start:]
    elif kind == "payload":
        state[rng.choice(["rotation", "fps", "skeleton_tree"])] = rng.choice(_payloads())
    elif kind == "missing":
        state.pop(rng.choice(["rotation", "root_translation", "fps", "skeleton_tree"]))
    elif kind == "types":
        state[rng.choice(["rotation", "root_translation", "skeleton_tree"])] = rng.choice(
            [42, "x", None, [1, 2], OrderedDict(arr="x"), OrderedDict(nope=1), np.array("s")])
    return kind, _holder_npy(state, rng.choice([2, 3, 4, 5]))


# ------------------------------------------------------------------------------------------------ .bvh
def _short_bvh(text: str, frames: int) -> str:
    lines = text.splitlines()
    m = lines.index("MOTION")
    return "\n".join([*lines[: m + 1], f"Frames: {frames}", lines[m + 2], *lines[m + 3 : m + 3 + frames]]) + "\n"


def _bvh_mutant(rng: random.Random, text: str) -> Mutant:
    lines = text.splitlines()
    m = lines.index("MOTION")
    kind = rng.choice(["bytes", "bytes", "channels", "nesting", "frame_time", "frames", "value", "offset", "brace",
                       "joints", "root", "token", "empty"])
    if kind == "bytes":
        return _mutate_bytes(rng, text.encode())
    if kind == "channels":
        bad = rng.choice(["inf", "1e400", "nan", "-1", "2.5", "1e9", "7", "0", "3.0"])
        which = "CHANNELS 3" if rng.random() < 0.5 else "CHANNELS 6"
        text = text.replace(which, f"CHANNELS {bad}", 1)
    elif kind == "nesting":
        depth = rng.choice([70, 1000, 20_000])
        at = text.index("End Site")
        chain = "".join(f"JOINT n{j}\n{{\nOFFSET 0 0 1\n" for j in range(depth)) + "}\n" * depth
        text = text[:at] + chain + text[at:]
    elif kind == "frame_time":
        lines[m + 2] = "Frame Time: " + rng.choice(["0", "-1", "100", "250", "1e-320", "1e400", "nan", "inf", "1", "3",
                                                    "0.5", "1e-9"])
        text = "\n".join(lines) + "\n"
    elif kind == "frames":
        lines[m + 1] = "Frames: " + rng.choice(["0", "-1", "1", "2", "1000000000", "9" * 30, "abc", "3.5"])
        text = "\n".join(lines) + "\n"
    elif kind == "value":
        j = rng.randrange(m + 3, len(lines))
        values = lines[j].split()
        values[rng.randrange(len(values))] = rng.choice(["1e300", "-1e300", "1e400", "nan", "inf", "1e20", "0x10"])
        lines[j] = " ".join(values)
        text = "\n".join(lines) + "\n"
    elif kind == "offset":
        j = rng.choice([i for i, line in enumerate(lines) if line.strip().startswith("OFFSET")])
        v = rng.choice(["1e300", "nan", "1e400", "1e20", "0", "-1e300"])
        lines[j] = f"OFFSET {v} {v} {v}"
        text = "\n".join(lines) + "\n"
    elif kind == "brace":
        braces = [i for i, ch in enumerate(text[: text.index("MOTION")]) if ch in "{}"]
        i = rng.choice(braces)
        text = text[:i] + rng.choice(["", "{", "}}", "{}"]) + text[i + 1 :]
    elif kind == "joints":
        at = text.index("End Site")
        text = text[:at] + "End Site\n{\nOFFSET 0 0 1\n}\n" * rng.choice([300, 3000]) + text[at:]
    elif kind == "root":
        hierarchy = text[: text.index("MOTION")]
        text = hierarchy + hierarchy[len("HIERARCHY") :] + text[text.index("MOTION") :]
    elif kind == "token":
        lines.insert(rng.randrange(m), rng.choice(["{", "}", "JOINT", "ROOT", "End", "OFFSET", "CHANNELS", "MOTION"]))
        text = "\n".join(lines) + "\n"
    else:
        text = rng.choice(["", "HIERARCHY\n", "HIERARCHY\nMOTION\n", "MOTION\nFrames: 1\nFrame Time: 0.1\n1\n"])
    return kind, text.encode()


# ------------------------------------------------------------------------------------------------ the test
@pytest.fixture(scope="module")
def bases(tmp_path_factory, model) -> dict[str, list]:
    """Unmutated sources: bundled .npz bytes, short poselib .npy bytes written from them (with the byte range of
    their rotations, which byte mutations leave alone: changed rotations start the slow joint-limit fit), BVH texts."""
    folder = tmp_path_factory.mktemp("bases")
    npz = [p.read_bytes() for p in sorted((DATA / "motions").glob("*.npz"))]
    npy = []
    for p in sorted((DATA / "motions").glob("*.npz"))[::3]:
        raw = save_poselib(load_motion(p, model).slice(0, 8), folder / f"{p.stem}.npy").read_bytes()
        state = read_skeleton_motion(folder / f"{p.stem}.npy")
        rotation = state["rotation"]["arr"].tobytes()
        start = raw.index(rotation)
        npy.append((raw, (start, start + len(rotation)), state))
    texts = [p.read_text() for p in sorted((DATA / "bvh").glob("*.bvh"))]
    return {"npz": npz, "npy": npy, "bvh": [_short_bvh(t, 24) for t in texts] + texts}


def _mutants(fmt: str, bases: dict[str, list], rng: random.Random) -> Iterator[Mutant]:
    for _ in range(MUTANTS):
        if fmt == "npz":
            yield _npz_mutant(rng, rng.choice(bases["npz"]))
        elif fmt == "npy":
            yield _npy_mutant(rng, *rng.choice(bases["npy"]))
        else:  # mostly the short BVH texts: the full recordings take longer to retarget
            yield _bvh_mutant(rng, rng.choice(bases["bvh"][:2] if rng.random() < 0.9 else bases["bvh"]))


@pytest.mark.timeout(300, method="thread")  # the per-file limit uses SIGALRM
@pytest.mark.parametrize("fmt", ["npz", "npy", "bvh"])
def test_every_mutant_loads_or_raises_one_clear_error(fmt, bases, model, tmp_path):
    """Each mutant: a valid clip (finite, consistent shapes, within the limits) or a MotionFormatError naming it,
    within TIME_LIMIT_S and MEMORY_LIMIT; no pickle payload runs; both outcomes occur."""
    MARKER.unlink(missing_ok=True)
    rng = random.Random(f"{SEED}-{fmt}")
    start_rss = _peak_rss()
    failures, outcomes = [], {"valid": 0, "error": 0}
    for i, (kind, data) in enumerate(_mutants(fmt, bases, rng)):
        path = tmp_path / f"mutant_{i:03d}.{fmt}"
        path.write_bytes(data)
        problem, loaded = _check_contract(path, model)
        if problem is None and _peak_rss() - start_rss > MEMORY_LIMIT:
            problem = f"peak memory grew by {(_peak_rss() - start_rss) / 2**20:.0f} MiB"
        if problem:
            failures.append(f"{path.name} ({kind}): {problem}")
        else:
            outcomes["valid" if loaded else "error"] += 1
        path.unlink()
    assert not MARKER.exists(), "a pickle payload ran"
    assert not failures, f"{len(failures)} of {MUTANTS} mutants broke the contract:\n" + "\n".join(failures[:30])
    assert outcomes["valid"] > 0 and outcomes["error"] > MUTANTS // 2, outcomes  # the mutants exercise both outcomes
