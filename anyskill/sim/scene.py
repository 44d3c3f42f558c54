"""Interaction scenes (paper §4.4): the humanoid plus a soccer ball or a door, composed with MuJoCo's model-editing API.

A :class:`Scene` is the bundled humanoid (``anyskill/assets/humanoid.xml``, read into a ``mujoco.MjSpec``) with
objects added to its world body, a camera that keeps the humanoid and the object in view, and the objects'
placement at resets. Nothing of the humanoid changes, so its bodies, observations and rules are those of the plain
humanoid; the objects stay out of the policy observation and the reward's 15 body positions, as in the paper
(facts §6). Both backends simulate the same compiled ``MjModel``:

    scene = get_scene("ball")
    backend = MujocoBackend(16, mj_model=scene.mj_model())        # or WarpBackend(16, mj_model=scene.mj_model())
    env = HumanoidEnv(EnvConfig(num_envs=16), backend=backend, scene=scene)

**Coordinates.** The objects are added after the humanoid, so a scene's ``qpos`` is the humanoid's 35 coordinates
(root position, root rotation wxyz, 28 hinges) followed by each object's, in the order of :attr:`Scene.objects`
(``qvel``: 34, then the objects'). The backends return the objects' part as ``object_qpos()`` (N, K) and
``object_qvel()`` (N, Kv).

**Adding a scene.** Write an object class with the :class:`SceneObject` members (``add_to`` builds its bodies in
the spec, ``initial_state`` places it, ``metrics`` summarises its trajectory) and register a :class:`Scene` of it
with a camera in :data:`SCENES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import mujoco
import numpy as np
import torch

from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.sim.camera import CameraSpec

Tensor = torch.Tensor

_HUMANOID_NQ = 7  # the root's free joint; the hinges follow
_JOINT_SIZES = {int(mujoco.mjtJoint.mjJNT_FREE): (7, 6), int(mujoco.mjtJoint.mjJNT_HINGE): (1, 1)}


def settled_time(times: np.ndarray, speed: np.ndarray, threshold: float) -> float:
    """s, the first time from which ``speed`` (T,) stays below ``threshold`` to the last frame (``times[0]`` if it
    always did; NaN if it is still at or above it at the last frame)."""
    moving = np.flatnonzero(np.asarray(speed) >= threshold)
    if len(moving) == 0:
        return float(times[0])
    return float("nan") if moving[-1] == len(times) - 1 else float(times[moving[-1] + 1])


@runtime_checkable
class SceneObject(Protocol):
    """An object of a scene: one body tree with one joint (free or hinge) whose coordinates the env resets."""

    @property
    def name(self) -> str:
        """Unique within its scene; prefixes the names of its bodies and geoms."""

    @property
    def joint(self) -> str:
        """Name of the object's joint in the compiled model."""

    @property
    def sizes(self) -> tuple[int, int]:
        """(position coordinates, velocity coordinates) of its joint: (7, 6) free, (1, 1) hinge."""

    def add_to(self, spec: mujoco.MjSpec) -> None:
        """Add the object's bodies, joint, geoms and materials to ``spec``'s world body."""

    def initial_state(self, n: int, jitter: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Placements of ``n`` resets: qpos (n, sizes[0]), qvel (n, sizes[1]) on the generator's device; ``jitter`` in
        [0, 1] scales the randomisation (0: the default placement)."""

    def metrics(self, times: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, float]:
        """Summary of one trajectory: times (T,) s, qpos (T, sizes[0]), qvel (T, sizes[1])."""


@dataclass(frozen=True)
class SoccerBall:
    """A size-5 soccer ball: a free hollow sphere on the floor in front of the humanoid (facts §6.1).

    A rolling ball comes to rest through rolling friction (``friction[2]``, m: a constant deceleration
    g·μ_roll / (r (1 + 2/3)) = 0.23 m/s² for μ_roll = 0.005 m; a thin shell has I = 2/3 m r²) and viscous damping of
    its free joint (``damping``: -c·v and -c·ω, a resistance growing with speed as on grass; in flight the drag
    c/m = 0.04 /s is that of air). Together they stop a ball rolling at 2 m/s within 1.1 m and 5 s. Rolling
    friction alone would have to be ten times larger for that, and MuJoCo's convex contact model then makes the
    ball hop (measured: 5 mm at μ_roll = 0.03 m, 0.3 mm with these values). The ball's ``priority`` makes its
    friction, not the floor's, that of its floor contact.
    """

    name: str = "soccer_ball"
    radius: float = 0.13
    """m (facts §6.1: diameter 0.259 m)."""
    mass: float = 0.45
    """kg."""
    position: tuple[float, float] = (0.35, -0.08)
    """m, x y of its centre in the env frame: in front of the right foot, where the bundled ``kick`` clip meets it
    (the humanoid spawns at the origin facing +x)."""
    max_offset: float = 0.15
    """m, the largest x and y offset of a randomised placement (``jitter`` 1)."""
    resting_depth: float = 6.35e-5
    """m, how far the ball rests inside the floor under MuJoCo's soft contact (measured at 120 Hz with the default
    solref/solimp). It is placed there, not exactly touching: MuJoCo C counts a contact at distance 0,
    MuJoCo Warp only below 0, so a ball placed at distance 0 falls for one step on Warp and bounces."""
    friction: tuple[float, float, float] = (0.7, 0.005, 0.005)
    """sliding (-), torsional (m), rolling (m) friction of its contacts (condim 6)."""
    damping: float = 0.02
    """N s/m and N m s/rad, viscous damping of the free joint's six velocities."""
    rgb: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.95, 0.95, 0.95), (0.1, 0.1, 0.1))
    """the two colours of its panels."""
    rest_speed: float = 0.01
    """m/s, below which the ball counts as at rest (``ball_settled_s``)."""

    @property
    def joint(self) -> str:
        return self.name

    @property
    def sizes(self) -> tuple[int, int]:
        return 7, 6

    def add_to(self, spec: mujoco.MjSpec) -> None:
        spec.add_texture(name=f"{self.name}_panels", type=mujoco.mjtTexture.mjTEXTURE_CUBE,
                         builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, rgb1=list(self.rgb[0]), rgb2=list(self.rgb[1]),
                         width=64, height=64)
        material = spec.add_material(name=f"{self.name}_panels", specular=0.3)
        material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f"{self.name}_panels"
        body = spec.worldbody.add_body(name=self.name, pos=[*self.position, self.radius - self.resting_depth])
        body.add_freejoint(name=self.joint).damping = [self.damping, 0.0, 0.0]  # linear term only
        body.add_geom(name=self.name, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[self.radius, 0, 0], mass=self.mass,
                      typeinertia=mujoco.mjtGeomInertia.mjINERTIA_SHELL, condim=6, friction=list(self.friction),
                      priority=1, material=f"{self.name}_panels", contype=1, conaffinity=1)

    def initial_state(self, n: int, jitter: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        dev = generator.device
        qpos = torch.zeros(n, 7, device=dev)
        qpos[:, :2] = torch.tensor(self.position, device=dev)
        qpos[:, :2] += (2 * torch.rand(n, 2, generator=generator, device=dev) - 1) * self.max_offset * jitter
        qpos[:, 2] = self.radius - self.resting_depth
        qpos[:, 3] = 1.0
        return qpos, torch.zeros(n, 6, device=dev)

    def metrics(self, times: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, float]:
        """``ball_displacement_m`` (horizontal, first to last frame), ``ball_path_m`` (horizontal distance travelled),
        ``ball_peak_speed_m_s`` and ``ball_final_speed_m_s`` (speed of its centre), ``ball_settled_s``
        (:func:`settled_time` of that speed below ``rest_speed``)."""
        xy = qpos[:, :2]
        speed = np.linalg.norm(qvel[:, :3], axis=-1)
        return {
            "ball_displacement_m": float(np.linalg.norm(xy[-1] - xy[0])),
            "ball_path_m": float(np.linalg.norm(np.diff(xy, axis=0), axis=-1).sum()),
            "ball_peak_speed_m_s": float(speed.max()),
            "ball_final_speed_m_s": float(speed[-1]),
            "ball_settled_s": settled_time(times, speed, self.rest_speed),
        }


@dataclass(frozen=True)
class Door:
    """A door: a frame fixed to the floor and a leaf on a vertical hinge, passive and damped (facts §6.2).

    The frame (two posts 0.1 x 0.1 x 2 m at x = 0.05 and 0.95 m of its own frame, a lintel at 1.95 m) stands at
    ``position`` turned by ``yaw`` about z: to the humanoid's left, the leaf 0.8 m away from it. The leaf (1 kg,
    collision box 0.75 x 0.05 x 1.6 m, drawn as 0.8 x 0.05 x 1.8 m) turns about the hinge at x = 0.05 m; a positive
    angle opens it away from the humanoid. Viscous hinge damping ``damping`` brings it to rest: after a push that
    leaves it turning at ω0 it stops at ω0 · I / damping (I = 0.25 kg m² about the hinge: a time constant of 0.25 s).
    """

    name: str = "door"
    position: tuple[float, float] = (-0.5, 0.7)
    """m, x y of the frame's origin (facts §6.2: 0.7 m to the spawn's left, 0.5 m behind it)."""
    yaw: float = 0.3 * math.pi
    """rad, the frame's rotation about z (facts §6.2: 0.3π)."""
    leaf_mass: float = 1.0
    """kg."""
    damping: float = 1.0
    """N m s / rad, hinge damping (facts §6.2)."""
    hinge_friction: float = 1e-5
    """N m, dry friction of the hinge (facts §6.2)."""
    max_angle: float = 0.3
    """rad, the largest initial opening of a randomised placement (``jitter`` 1)."""
    frame_rgb: tuple[float, float, float] = (0.45, 0.3, 0.2)
    leaf_rgb: tuple[float, float, float] = (0.8, 0.8, 0.3)
    rest_speed: float = 0.5
    """deg/s, below which the leaf counts as at rest (``door_settled_s``)."""

    @property
    def joint(self) -> str:
        return f"{self.name}_hinge"

    @property
    def leaf(self) -> str:
        """Name of the leaf body (its origin is the leaf's centre)."""
        return f"{self.name}_leaf"

    @property
    def sizes(self) -> tuple[int, int]:
        return 1, 1

    def add_to(self, spec: mujoco.MjSpec) -> None:
        half = self.yaw / 2
        frame = spec.worldbody.add_body(name=f"{self.name}_frame", pos=[*self.position, 0.0],
                                        quat=[math.cos(half), 0.0, 0.0, math.sin(half)])
        box = mujoco.mjtGeom.mjGEOM_BOX
        frame_rgba = [*self.frame_rgb, 1.0]
        for name, pos, size in ((f"{self.name}_post_hinge", [0.05, 0, 1.0], [0.05, 0.05, 1.0]),
                                (f"{self.name}_post_latch", [0.95, 0, 1.0], [0.05, 0.05, 1.0]),
                                (f"{self.name}_lintel", [0.5, 0, 1.95], [0.5, 0.05, 0.05])):
            frame.add_geom(name=name, type=box, pos=pos, size=size, rgba=frame_rgba, material="", contype=1,
                           conaffinity=1, condim=3, friction=[1.0, 0.005, 0.0001])
        # the leaf's origin is the centre of its collision box: the hinge (0.05, 0, 0.1) plus (0.45, 0, 0.9)
        leaf = frame.add_body(name=self.leaf, pos=[0.5, 0.0, 1.0])
        leaf.add_joint(name=self.joint, type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], pos=[-0.45, 0, -0.9],
                       limited=mujoco.mjtLimited.mjLIMITED_FALSE, damping=self.damping,
                       frictionloss=self.hinge_friction, armature=0.0)
        leaf.add_geom(name=f"{self.name}_leaf_collision", type=box, size=[0.375, 0.025, 0.8], mass=self.leaf_mass,
                      rgba=[*self.leaf_rgb, 1.0], material="", group=3, contype=1, conaffinity=1, condim=3,
                      friction=[1.0, 0.005, 0.0001])
        leaf.add_geom(name=f"{self.name}_leaf_visual", type=box, pos=[0.05, 0, 0], size=[0.4, 0.025, 0.9], density=0,
                      rgba=[*self.leaf_rgb, 1.0], material="", group=1, contype=0, conaffinity=0)

    def initial_state(self, n: int, jitter: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        dev = generator.device
        angle = (2 * torch.rand(n, 1, generator=generator, device=dev) - 1) * self.max_angle * jitter
        return angle, torch.zeros(n, 1, device=dev)

    def metrics(self, times: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, float]:
        """``door_max_angle_deg`` (largest |angle|), ``door_final_angle_deg``, ``door_final_speed_deg_s`` and
        ``door_settled_s`` (:func:`settled_time` of the angular speed below ``rest_speed``)."""
        angle = np.degrees(qpos[:, 0])
        speed = np.degrees(np.abs(qvel[:, 0]))
        return {
            "door_max_angle_deg": float(np.abs(angle).max()),
            "door_final_angle_deg": float(angle[-1]),
            "door_final_speed_deg_s": float(speed[-1]),
            "door_settled_s": settled_time(times, speed, self.rest_speed),
        }


@dataclass(frozen=True)
class Scene:
    """The humanoid with ``objects`` and a camera that keeps both in view (paper §4.4: the camera is placed per scene).

    ``jitter`` in [0, 1] scales the randomisation of the objects' placement at every reset (0: each object's
    default placement, as in the reference).
    """

    name: str
    objects: tuple[SceneObject, ...]
    camera: CameraSpec
    description: str = ""
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"scene {self.name!r}: jitter must be in [0, 1], got {self.jitter}")
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError(f"scene {self.name!r}: object names must differ, got {names}")

    @property
    def object_qpos_size(self) -> int:
        """K, the objects' position coordinates (after the humanoid's 35)."""
        return sum(o.sizes[0] for o in self.objects)

    @property
    def object_qvel_size(self) -> int:
        """Kv, the objects' velocity coordinates (after the humanoid's 34)."""
        return sum(o.sizes[1] for o in self.objects)

    def spec(self, model: HumanoidModel | None = None) -> mujoco.MjSpec:
        """The scene as an ``MjSpec``: the humanoid's MJCF with the objects added to its world body."""
        spec = mujoco.MjSpec.from_file(str((model or load_humanoid()).xml_path))
        spec.modelname = f"anyskill_{self.name}"
        for obj in self.objects:
            obj.add_to(spec)
        return spec

    def mj_model(self, model: HumanoidModel | None = None) -> mujoco.MjModel:
        """The compiled scene; raises if an object's coordinates do not follow the humanoid's in object order."""
        m = self.spec(model).compile()
        humanoid_nq = _HUMANOID_NQ + (model or load_humanoid()).num_dofs
        qadr = humanoid_nq
        for obj in self.objects:
            j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, obj.joint)
            if j < 0 or int(m.jnt_qposadr[j]) != qadr or _JOINT_SIZES.get(int(m.jnt_type[j])) != obj.sizes:
                raise ValueError(f"scene {self.name!r}: object {obj.name!r} must have one joint {obj.joint!r} of "
                                 f"size {obj.sizes} at qpos address {qadr}, after the humanoid and the objects "
                                 "before it")
            qadr += obj.sizes[0]
        if qadr != m.nq:
            raise ValueError(f"scene {self.name!r}: the model has {m.nq} coordinates, the humanoid and objects {qadr}")
        return m

    def initial_object_state(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Placements of ``n`` resets: object qpos (n, K), qvel (n, Kv), float32 on the generator's device."""
        parts = [o.initial_state(n, self.jitter, generator) for o in self.objects]
        return torch.cat([q for q, _ in parts], -1), torch.cat([v for _, v in parts], -1)

    def split(self, object_qpos: np.ndarray, object_qvel: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Object name -> (its qpos (..., sizes[0]), qvel (..., sizes[1])) from (..., K) and (..., Kv) arrays."""
        out, q, v = {}, 0, 0
        for obj in self.objects:
            nq, nv = obj.sizes
            out[obj.name] = (object_qpos[..., q:q + nq], object_qvel[..., v:v + nv])
            q, v = q + nq, v + nv
        return out

    def interaction_metrics(self, times: np.ndarray, object_qpos: np.ndarray, object_qvel: np.ndarray,
                            contacts: np.ndarray, body_names: tuple[str, ...]) -> dict[str, float | str]:
        """The interaction metrics of one trajectory of T frames.

        times (T,) s; object_qpos (T, K); object_qvel (T, Kv); contacts (T, B) bool, humanoid bodies touching an
        object (the backends' ``object_contacts()``); body_names (B,). Returns each object's
        :meth:`SceneObject.metrics` plus ``first_contact_s`` (time of the first frame with a contact, NaN if none),
        ``first_contact_body`` (the bodies touching then, joined by "+"; "" if none) and ``contact_s`` (time in
        contact: frames with a contact times the frame interval).
        """
        if not (len(times) == len(object_qpos) == len(object_qvel) == len(contacts)):
            raise ValueError(f"interaction_metrics needs T frames of each: times {len(times)}, object_qpos "
                             f"{len(object_qpos)}, object_qvel {len(object_qvel)}, contacts {len(contacts)}")
        metrics: dict[str, float | str] = {}
        for obj in self.objects:
            q, v = self.split(object_qpos, object_qvel)[obj.name]
            metrics.update(obj.metrics(times, q, v))
        touching = np.asarray(contacts, dtype=bool).any(-1)
        first = int(np.argmax(touching)) if touching.any() else None
        metrics["first_contact_s"] = float(times[first]) if first is not None else float("nan")
        metrics["first_contact_body"] = (
            "+".join(b for b, c in zip(body_names, contacts[first], strict=True) if c) if first is not None else "")
        dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        metrics["contact_s"] = float(touching.sum() * dt)
        return metrics


SCENES: dict[str, Scene] = {
    "ball": Scene(
        "ball", (SoccerBall(),),
        # from the humanoid's right, slightly in front: the kicking leg and the ball's path across the image
        CameraSpec(position=(1.2, -3.8, 1.2), target_bodies=("pelvis", "soccer_ball")),
        "a soccer ball (0.13 m, 0.45 kg) on the floor in front of the humanoid's right foot",
    ),
    "door": Scene(
        "door", (Door(),),
        # in front of the humanoid, facing the door across it: the leaf's opening is seen from its front
        CameraSpec(position=(2.6, -1.6, 1.4), target_bodies=("pelvis", "door_leaf")),
        "a door (1 x 2 m frame, 1 kg leaf on a damped hinge) to the humanoid's left",
    ),
}
"""The bundled scenes by name (``anyskill train-hlc --scene NAME``)."""


def get_scene(name: str, jitter: float = 0.0) -> Scene:
    """The scene registered as ``name`` in :data:`SCENES`, with placement randomisation ``jitter`` in [0, 1]."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; the scenes are {sorted(SCENES)} (anyskill.sim.scene.SCENES)")
    return replace(SCENES[name], jitter=jitter)
