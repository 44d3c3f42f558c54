"""One calibration of the state projection per CLIP model, humanoid, camera, scene and controller, cached on disk.

    cal = calibrated_projection(clip_model, "anyskill/checkpoints/llc_laptop.pth", scene=None, scale="laptop")
    TextGoal(clip_model, None, "wave hi", reward_source="projection", projection=cal.projection)
    cal.fidelity        # held-out feature cosine and text-similarity rank correlation (anyskill.reward.fidelity)

The first call for a set of inputs renders and encodes controller rollouts (:mod:`anyskill.hlc.calibration_data`),
fits the projection (object-aware in a scene) and writes it to the cache; every later call, in this process or any
other, reads it back without rendering anything. The **key** is a hash of everything that decides the result
(:func:`calibration_inputs`): the CLIP model's identity (:func:`clip_identity`: a file's content hash, the seed of
random weights, a model's own ``identity`` string, else a hash of its parameters), the encoder precision, the
humanoid MJCF's content hash, the scene's objects, the camera and render settings, the content hash of the LLC
checkpoint and the calibration sizes.

**Where.** ``cache_dir`` argument, else ``$ANYSKILL_CACHE/projection``, else ``~/.cache/anyskill/projection``. One
file per key, ``<scene>-<key>.pt``, with a readable ``.json`` beside it (inputs, provenance, timings, fidelity).

**Safety.** Files are written to a temporary name and moved into place (``os.replace``), so a crash leaves no
half-written cache file. A file that cannot be read, has another format version, was made from other inputs, or whose
tensors do not match their stored checksum gives a :class:`ProjectionCacheWarning` naming the file and the reason,
and is rebuilt; it is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from anyskill.config.hlc import CALIBRATION_SIZES, CalibrationSizes
from anyskill.hlc.calibration_data import CalibrationData
from anyskill.reward.projection import StateProjection, fit_projection

Tensor = torch.Tensor
FORMAT = "anyskill-projection-cache"
FORMAT_VERSION = 1
"""Bumped whenever the collection or fit changes what a key's file contains."""
FIDELITY_PROMPTS = {
    None: ["a person raising both arms above the head", "wave hi", "raised arm bent at the elbow", "Waltz dance",
           "kick", "do yoga", "walk in a circle", "throw a ball", "sit down, bent torso, legs folded at knees",
           "legs off the ground, wave hands", "coiling the arm, throw a ball", "a person squatting", "bow"],
    "ball": ["kick the ball", "a person kicks a soccer ball", "a person standing next to a ball", "wave hi"],
    "door": ["raise arms, open the door", "a person opens a door", "a person standing next to a closed door",
             "wave hi"],
}
"""The notebooks' prompts (04, 05, 07, 09, 10; 06/08 in the scenes) whose text-similarity rank correlation every
calibration reports."""


class ProjectionCacheWarning(UserWarning):
    """A cache file was unusable (corrupt, half-written, other inputs or version) and is being rebuilt."""


class _Unusable(Exception):
    """Why a cache file cannot be used."""


# ---------------------------------------------------------------- identities and keys
_FILE_HASHES: dict[tuple[str, int, int], str] = {}
_MODEL_HASHES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's content (remembered per path, size and modification time)."""
    p = Path(path).expanduser().resolve()
    st = p.stat()
    memo = (str(p), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_HASHES:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _FILE_HASHES[memo] = h.hexdigest()
    return _FILE_HASHES[memo]


def tensors_sha256(tensors: dict[str, Tensor]) -> str:
    """Hex SHA-256 over named tensors (sorted by name; dtype, shape and bytes)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def clip_identity(clip_model: Any) -> str:
    """What distinguishes ``clip_model``'s features from any other model's: its own ``identity`` or its wrapped
    model's (a string attribute or method, e.g. the domain model's content hash), else from its ``spec``: random
    weights by their seed, a weights file by its content hash; anything else (a pretrained tag, an untrained model) by
    a hash of its parameters. The preprocessing (``raw_pixels``) is included."""
    pixels = f"|raw_pixels={bool(getattr(clip_model, 'raw_pixels', False))}"
    spec = getattr(clip_model, "spec", None)
    arch = getattr(spec, "model", type(clip_model).__name__)
    weights = str(getattr(spec, "weights", ""))
    for holder in (clip_model, getattr(clip_model, "model", None)):  # the wrapper's, or the wrapped model's
        own = getattr(holder, "identity", None)
        own = own() if callable(own) else own
        if isinstance(own, str) and own and own != "untrained":
            return f"{weights}|{own}" + pixels
    if weights == "random":
        from anyskill.reward.clip_model import RANDOM_WEIGHTS_SEED

        return f"{arch}|random|seed={RANDOM_WEIGHTS_SEED}" + pixels
    if weights and Path(weights).expanduser().is_file():
        return f"{arch}|file sha256={file_sha256(weights)}" + pixels
    if clip_model not in _MODEL_HASHES:
        _MODEL_HASHES[clip_model] = tensors_sha256(dict(clip_model.state_dict()))
    return f"{arch}|{weights}|parameters sha256={_MODEL_HASHES[clip_model]}" + pixels


def default_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$ANYSKILL_CACHE/projection``, else ``~/.cache/anyskill/projection``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get("ANYSKILL_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "anyskill") / "projection"


def calibration_inputs(clip_model: Any, llc_checkpoint: str | Path, scene: str | None, sizes: CalibrationSizes,
                       encoder_precision: str, render_settings: dict) -> dict[str, Any]:
    """Everything the calibration's result depends on (JSON-able); its hash is the cache key."""
    from anyskill.humanoid.model import load_humanoid
    from anyskill.sim.camera import CameraSpec
    from anyskill.sim.scene import get_scene

    camera = get_scene(scene).camera if scene is not None else CameraSpec()
    return {
        "format_version": FORMAT_VERSION,
        "clip": clip_identity(clip_model),
        "encoder_precision": encoder_precision,
        "humanoid_mjcf_sha256": file_sha256(load_humanoid().xml_path),
        "scene": scene,
        "scene_objects": repr(get_scene(scene).objects) if scene is not None else None,
        "camera": json.loads(json.dumps(asdict(camera))),
        "render": dict(render_settings),
        "llc_sha256": file_sha256(llc_checkpoint),
        "sizes": json.loads(json.dumps(asdict(sizes))),
    }


def cache_key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


# ---------------------------------------------------------------- the cached result
@dataclass
class CalibratedProjection:
    """A calibrated projection: the net, its record (inputs, provenance, timings, fidelity), its cache file,
    where it came from this time (``"built"``, ``"disk"`` or ``"memory"``) and the held-out frames (body_pos,
    qpos, rendered features) that :meth:`fidelity_for` scores."""

    projection: StateProjection
    record: dict[str, Any]
    path: Path
    source: str
    heldout: dict[str, Tensor]

    @property
    def fidelity(self) -> dict[str, Any]:
        return self.record["fidelity"]

    @property
    def build_seconds(self) -> float:
        """Wall time of the calibration when it was built (collection + fit), s."""
        return float(self.record["timings"]["total_s"])

    def fidelity_for(self, clip_model: Any, prompts: list[str]) -> dict[str, Any]:
        """Fidelity (:func:`anyskill.reward.fidelity.projection_fidelity`) on the stored held-out frames for any
        prompts, without rendering."""
        from anyskill.reward.fidelity import projection_fidelity

        with torch.no_grad():
            pred = self.projection.predict(self.heldout["body_pos"], self.heldout["qpos"])
        return projection_fidelity(pred, self.heldout["features"], clip_model.encode_text(prompts).cpu(), prompts,
                                   bool(getattr(getattr(clip_model, "spec", None), "is_random", False)))

    def summary(self) -> str:
        f, t = self.fidelity, self.record["timings"]
        how = {"built": f"built in {t['total_s']:.0f} s", "disk": f"read from {self.path}",
               "memory": "already loaded"}[self.source]
        return (f"state projection ({self.record['inputs']['scene'] or 'humanoid'}, {t['frames']} frames, {how}): "
                f"held-out feature cosine {f['feature_cosine_mean']:.4f} (min {f['feature_cosine_min']:.4f}), "
                f"text-similarity rank correlation {f['text_rank_correlation_mean']:.3f} over "
                f"{len(f['text_rank_correlation'])} prompts [{f['meaning']}]")


_MEMORY: dict[str, CalibratedProjection] = {}


def clear_memory_cache() -> None:
    """Forget the projections loaded in this process (the disk cache stays)."""
    _MEMORY.clear()


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_cache_file(path: Path, projection: StateProjection, inputs: dict, record: dict,
                     heldout: dict[str, Tensor]) -> Path:
    """Write one calibration atomically (``.pt`` then its ``.json`` sidecar)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {**{f"net.{k}": v for k, v in projection.state_dict().items()},
               **{f"heldout.{k}": v for k, v in heldout.items()}}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "key": cache_key(inputs),
               "inputs": json.dumps(inputs, sort_keys=True), "record": json.dumps(record),
               "projection_config": json.dumps(projection.config()), "tensors": tensors,
               "checksum": tensors_sha256(tensors)}
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    _atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return path


def read_cache_file(path: Path, inputs: dict) -> tuple[StateProjection, dict, dict[str, Tensor]]:
    """The projection, record and held-out frames of ``path``; :class:`_Unusable` saying why when it cannot be
    used for ``inputs``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle errors, ...: many types
        raise _Unusable(f"cannot be read ({type(e).__name__}: {str(e)[:120]})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _Unusable("is not a projection cache file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise _Unusable(f"has format version {payload.get('format_version')}, this code writes {FORMAT_VERSION}")
    try:
        stored = json.loads(payload["inputs"])
        record = json.loads(payload["record"])
        config = json.loads(payload["projection_config"])
        tensors = payload["tensors"]
        checksum = payload["checksum"]
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise _Unusable(f"is incomplete ({type(e).__name__}: {e})") from e
    if stored != json.loads(json.dumps(inputs, sort_keys=True)) or payload.get("key") != cache_key(inputs):
        changed = sorted(k for k in set(stored) | set(inputs) if stored.get(k) != inputs.get(k))
        raise _Unusable(f"was made from other inputs (differ: {changed})")
    if tensors_sha256(tensors) != checksum:
        raise _Unusable("has tensors that do not match their checksum (corrupt)")
    net = StateProjection.from_config(config)
    try:
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    except RuntimeError as e:
        raise _Unusable(f"holds a projection of another shape ({str(e)[:120]})") from e
    heldout = {k[8:]: v for k, v in tensors.items() if k.startswith("heldout.")}
    return net.eval(), record, heldout


# ---------------------------------------------------------------- building
def _object_layout(scene_name: str | None) -> tuple[tuple[str, int], ...]:
    if scene_name is None:
        return ()
    from anyskill.sim.scene import get_scene

    layout, offset = [], 0
    for obj in get_scene(scene_name).objects:
        kind = {(7, 6): "free", (1, 1): "hinge"}.get((int(obj.sizes[0]), int(obj.sizes[1])))
        if kind is None:
            raise ValueError(f"object {obj.name!r} has joint sizes {obj.sizes}; the projection reads free or hinge")
        layout.append((kind, offset))
        offset += obj.sizes[0]
    return tuple(layout)


def fit_calibration(data: CalibrationData, sizes: CalibrationSizes, scene_name: str | None,
                    humanoid_nq: int) -> tuple[StateProjection, dict[str, Any], dict[str, Tensor]]:
    """Fit the projection on the frames of all but the last ``sizes.heldout_envs`` envs; returns the net, the fit's
    curves and the held-out frames."""
    from anyskill.reward.projection import object_features

    layout = _object_layout(scene_name)
    heldout = data.env >= sizes.num_envs - sizes.heldout_envs
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(sizes.seed)
        net = StateProjection(data.body_pos.shape[1], data.features.shape[1], sizes.hidden, layout, humanoid_nq)
    objects = object_features(data.qpos[:, humanoid_nq:].float(), layout) if layout else None
    fit = fit_projection(net, data.body_pos.float(), data.features.float(), epochs=sizes.epochs,
                         batch_size=sizes.batch_size, lr=sizes.lr, seed=sizes.seed, objects=objects,
                         val_mask=heldout)
    held = {"body_pos": data.body_pos[heldout], "qpos": data.qpos[heldout], "features": data.features[heldout]}
    curves = {"train_loss": fit.train_loss, "val_loss": fit.val_loss, "val_cosine": fit.val_cosine}
    return net.eval(), curves, held


def calibrated_projection(clip_model: Any, llc_checkpoint: str | Path, scene: str | None = None,
                          scale: str = "laptop", sizes: CalibrationSizes | None = None,
                          cache_dir: str | Path | None = None, motion_lib=None, precision: str = "auto",
                          progress: bool = False, on_status: Callable[[str], None] | None = None,
                          rebuild: bool = False) -> CalibratedProjection:
    """The state projection for ``clip_model`` on the LLC at ``llc_checkpoint`` (in ``scene``), from memory, from the
    cache, or calibrated now and cached (module doc). ``sizes``: default the ``scale``'s
    (:data:`~anyskill.config.hlc.CALIBRATION_SIZES`); ``precision``: the encoder's ("auto": bfloat16 on
    CPUs that support it); ``on_status(text)`` hears what happens (first use, the time it takes, rebuilds);
    ``rebuild``: calibrate even when a usable file exists."""
    from anyskill.reward.fast_encode import BatchedImageEncoder
    from anyskill.sim.render import FAST_RENDER

    say = on_status or (lambda _: None)
    sizes = sizes or CALIBRATION_SIZES[scale]
    encoder = BatchedImageEncoder(clip_model, precision, sizes.encode_batch)  # type: ignore[arg-type]
    render_settings = {"fast": True, **FAST_RENDER}
    inputs = calibration_inputs(clip_model, llc_checkpoint, scene, sizes, encoder.precision, render_settings)
    key = cache_key(inputs)
    path = default_cache_dir(cache_dir) / f"{scene or 'humanoid'}-{key}.pt"
    memo = str(path.resolve())
    if not rebuild and memo in _MEMORY and _MEMORY[memo].path.exists():
        hit = _MEMORY[memo]
        return replace(hit, source="memory")
    if not rebuild and path.exists():
        try:
            net, record, heldout = read_cache_file(path, inputs)
        except _Unusable as e:
            msg = f"projection cache file {path} {e}; it is not used and is being rebuilt"
            warnings.warn(msg, ProjectionCacheWarning, stacklevel=2)
            say(msg)
        else:
            cal = CalibratedProjection(net, record, path, "disk", heldout)
            _MEMORY[memo] = cal
            return cal
    cal = _build(clip_model, encoder, llc_checkpoint, scene, sizes, inputs, path, motion_lib, progress, say)
    _MEMORY[memo] = cal
    return cal


def _build(clip_model, encoder, llc_checkpoint, scene, sizes, inputs, path, motion_lib, progress,
           say) -> CalibratedProjection:
    from anyskill.hlc.calibration_data import collect_calibration_data
    from anyskill.humanoid.model import load_humanoid
    from anyskill.llc.controller import load_llc
    from anyskill.provenance import Provenance
    from anyskill.reward.fast_encode import max_cosine_error
    from anyskill.sim.camera import CameraSpec
    from anyskill.sim.render import StateRenderer
    from anyskill.sim.scene import get_scene

    spec = getattr(clip_model, "spec", None)
    weights = getattr(spec, "description", clip_identity(clip_model))
    say(f"calibrating the state projection for CLIP {weights} ({scene or 'humanoid'}): first use of these inputs, "
        f"{sizes.frames} frames to render and encode; cached in {path.parent} for every later run")
    prov = Provenance("anyskill.hlc.projection_cache", config={"inputs": inputs, "llc": str(llc_checkpoint)},
                      seed=sizes.seed, device=str(getattr(clip_model, "device", "cpu")), clip_weights=weights)
    t0 = time.perf_counter()
    scene_obj = get_scene(scene, jitter=1.0) if scene is not None else None
    mj_model = scene_obj.mj_model() if scene_obj is not None else load_humanoid().mj_model()
    renderer = StateRenderer(mj_model, scene_obj.camera if scene_obj is not None else CameraSpec(), fast=True)
    try:
        llc = load_llc(llc_checkpoint)
        data = collect_calibration_data(llc, encoder, renderer, sizes, motion_lib, scene_obj, progress, say)
        probe = renderer.render_qpos(data.qpos[:2])  # bf16 vs fp32 check (fp32 ViT: ~0.1-1 s a frame)
    finally:
        renderer.close()
    precision_error = max_cosine_error(encoder.encode(probe), clip_model.encode_images(probe))
    t_fit = time.perf_counter()
    net, curves, heldout = fit_calibration(data, sizes, scene, 7 + load_humanoid().num_dofs)
    fit_s = time.perf_counter() - t_fit
    prov.finish()
    record: dict[str, Any] = {
        "inputs": inputs, "key": cache_key(inputs), "provenance": prov.as_dict(),
        "data": {"frames": len(data), "heldout_frames": len(heldout["features"]),
                 "heldout": f"the whole trajectories of {sizes.heldout_envs} of {sizes.num_envs} envs",
                 "latents": "per env: LLC encodings of random library windows or random unit latents, each held "
                            "5-60 LLC steps", "objects": "placed at random at resets, moved/kicked/pushed at random"
                 if scene else None, "render": "FAST_RENDER (no multisampling, shadows, reflections)",
                 "encoder": encoder.description, "encoder_max_cosine_error_vs_fp32": precision_error},
        "timings": {**data.timings, "fit_s": round(fit_s, 2), "total_s": round(time.perf_counter() - t0, 2),
                    "frames": len(data)},
        "fit": curves,
    }
    cal = CalibratedProjection(net, record, path, "built", heldout)
    prompts = FIDELITY_PROMPTS.get(scene, FIDELITY_PROMPTS[None])
    record["fidelity"] = cal.fidelity_for(clip_model, prompts)
    write_cache_file(path, net, inputs, record, heldout)
    say(f"calibration took {record['timings']['total_s']:.0f} s ({data.timings['frames_per_s']:.1f} frames/s); "
        + cal.summary().split(": ", 1)[1])
    return cal
