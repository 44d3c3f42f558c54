"""Interaction trajectories and the scripted physics checks of the scenes (paper §4.4).

An :class:`InteractionTrajectory` is one world of a scene recorded at a fixed rate: the humanoid's and the objects'
coordinates (renderable with ``StateRenderer(scene.mj_model(), scene.camera)``), the objects' velocities and which
humanoid bodies touched an object; :meth:`InteractionTrajectory.metrics` gives the interaction metrics
(:meth:`anyskill.sim.scene.Scene.interaction_metrics`).

The checks drive a backend without any policy, to show that the physics of a scene is right before anything is
learnt in it (``tests/test_scene.py``, notebook 06):

* :func:`kick_check` — a clip replayed kinematically (every physics step the humanoid is set to the clip's
  interpolated state) with the ball at its default placement: the bundled ``kick`` clip's right foot hits the ball,
  which rolls away and comes to rest;
* :func:`door_push_check` — the humanoid stands still while the door leaf is pushed (its hinge set turning at
  ``angular_velocity``): the leaf opens, the hinge damping brings it to rest at ω0 · I / damping;
* :func:`stand_still_check` — the humanoid stands still (PD targets of the standing pose) beside the objects at their
  default placement: nothing moves and nothing is touched.

:func:`physics_checks` runs all of them on the bundled scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import mujoco
import numpy as np
import torch

from anyskill.motion.library import MotionLibrary
from anyskill.sim.backend import Backend
from anyskill.sim.env import EnvConfig
from anyskill.sim.scene import Door, Scene, get_scene


@dataclass
class InteractionTrajectory:
    """T frames of one world of ``scene``.

    times (T,) s; qpos (T, 35 + K): the humanoid's coordinates then the objects'; object_qvel (T, Kv); contacts
    (T, B) bool: humanoid bodies that touched an object during the physics steps that led to each frame;
    body_names (B,).
    """

    scene: Scene
    times: np.ndarray
    qpos: np.ndarray
    object_qvel: np.ndarray
    contacts: np.ndarray
    body_names: tuple[str, ...]

    @property
    def object_qpos(self) -> np.ndarray:
        """(T, K) the objects' coordinates."""
        return self.qpos[:, self.qpos.shape[1] - self.scene.object_qpos_size:]

    def metrics(self) -> dict[str, float | str]:
        """The scene's interaction metrics of this trajectory (:meth:`Scene.interaction_metrics`)."""
        return self.scene.interaction_metrics(self.times, self.object_qpos, self.object_qvel, self.contacts,
                                              self.body_names)


class _Recorder:
    """Collects frames of world 0 of a backend."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.rows: dict[str, list[np.ndarray]] = {"qpos": [], "object_qvel": [], "contacts": []}
        self.times: list[float] = []

    def add(self, time: float) -> None:
        b = self.backend
        self.rows["qpos"].append(torch.cat([b.qpos()[0], b.object_qpos()[0]]).cpu().double().numpy())
        self.rows["object_qvel"].append(b.object_qvel()[0].cpu().double().numpy())
        self.rows["contacts"].append(b.object_contacts()[0].cpu().numpy())
        self.times.append(time)

    def trajectory(self, scene: Scene) -> InteractionTrajectory:
        qpos, object_qvel, contacts = (np.stack(self.rows[k]) for k in ("qpos", "object_qvel", "contacts"))
        return InteractionTrajectory(scene, np.array(self.times), qpos, object_qvel, contacts,
                                     self.backend.model.body_names)


def _one_world(scene: Scene, backend: Backend | None) -> Backend:
    if backend is None:
        from anyskill.sim.mujoco_backend import MujocoBackend

        backend = MujocoBackend(1, mj_model=scene.mj_model())
    if backend.object_qpos().shape[-1] != scene.object_qpos_size:
        raise ValueError(f"the backend's model is not scene {scene.name!r}; build it from scene.mj_model()")
    return backend


def _stand(backend: Backend, scene: Scene) -> torch.Tensor:
    """Put world 0 in the standing spawn pose with the standing PD targets, the objects at their default placement;
    returns the env ids (1,)."""
    ids = torch.zeros(1, dtype=torch.long)
    d = backend.model.num_dofs
    root_pos = torch.tensor([[0.0, 0.0, EnvConfig.spawn_height]])
    zeros3 = torch.zeros(1, 3)
    backend.set_state(ids, root_pos, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), zeros3, zeros3, torch.zeros(1, d),
                      torch.zeros(1, d))
    backend.set_object_state(ids, *_default_placement(scene))
    backend.set_pd_targets(torch.zeros(backend.num_envs, d))
    return ids


def _default_placement(scene: Scene) -> tuple[torch.Tensor, torch.Tensor]:
    """The objects' default placement: qpos (1, K), qvel (1, Kv)."""
    return replace(scene, jitter=0.0).initial_object_state(1, torch.Generator())


def kick_check(motion_lib: MotionLibrary, clip: str = "kick", scene: Scene | None = None,
               settle_seconds: float = 3.0, backend: Backend | None = None) -> InteractionTrajectory:
    """Replay ``clip`` of ``motion_lib`` kinematically in ``scene`` (default: the ball scene) at every physics step,
    then hold its last pose for ``settle_seconds`` s while the objects come to rest. Recorded at every physics step.

    ``backend``: a one-world backend of ``scene.mj_model()`` (default: :class:`MujocoBackend`).
    """
    scene = scene or get_scene("ball")
    backend = _one_world(scene, backend)
    if clip not in motion_lib.clip_names:
        raise ValueError(f"no clip {clip!r} in the motion library; it has {motion_lib.clip_names}")
    ids = _stand(backend, scene)
    clip_id = torch.tensor([motion_lib.clip_names.index(clip)])
    duration = float(motion_lib.clips[int(clip_id)].duration)
    h = backend.physics_dt
    rec = _Recorder(backend)
    rec.add(0.0)
    for k in range(int(round((duration + settle_seconds) / h))):
        s = motion_lib.state_at(clip_id, torch.tensor([min(k * h, duration)]))
        backend.set_state(ids, s.root_pos, s.root_rot, s.root_vel, s.root_ang_vel, s.dof_pos, s.dof_vel)
        backend.set_pd_targets(s.dof_pos.expand(backend.num_envs, -1))
        backend.step(1)
        rec.add((k + 1) * h)
    return rec.trajectory(scene)


def door_push_check(angular_velocity: float = 2.0, seconds: float = 2.0, scene: Scene | None = None,
                    backend: Backend | None = None) -> InteractionTrajectory:
    """Push the door leaf of ``scene`` (default: the door scene) so that its hinge turns at ``angular_velocity``
    rad/s while the humanoid stands still, then let the damping stop it. Recorded at every physics step."""
    scene = scene or get_scene("door")
    backend = _one_world(scene, backend)
    if scene.object_qvel_size != 1:
        raise ValueError(f"door_push_check needs a scene whose only object is a door, got {scene.name!r}")
    ids = _stand(backend, scene)
    qpos, _ = _default_placement(scene)
    backend.set_object_state(ids, qpos, torch.tensor([[float(angular_velocity)]]))
    rec = _Recorder(backend)
    rec.add(0.0)
    h = backend.physics_dt
    for k in range(int(round(seconds / h))):
        backend.step(1)
        rec.add((k + 1) * h)
    return rec.trajectory(scene)


def door_settle_angle(scene: Scene, angular_velocity: float) -> float:
    """rad: where a door leaf pushed to ``angular_velocity`` rad/s comes to rest under its viscous hinge damping c:
    ω0 · I / c, with I the leaf's inertia about the hinge (the integral of ω0 exp(-c t / I); MuJoCo's implicit
    damping gives the same sum step by step, the hinge's tiny dry friction stops it marginally earlier)."""
    doors = [o for o in scene.objects if isinstance(o, Door)]
    if not doors:
        raise ValueError(f"scene {scene.name!r} has no door")
    m = scene.mj_model()
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    inertia = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, d, inertia)
    dof = int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, doors[0].joint)])
    return float(angular_velocity * inertia[dof, dof] / doors[0].damping)


def stand_still_check(scene: Scene, seconds: float = 3.0, control_freq_inv: int = 4,
                      backend: Backend | None = None) -> InteractionTrajectory:
    """The humanoid holds the standing pose for ``seconds`` s beside ``scene``'s objects at their default placement.
    Recorded every ``control_freq_inv`` physics steps (30 Hz)."""
    backend = _one_world(scene, backend)
    _stand(backend, scene)
    rec = _Recorder(backend)
    rec.add(0.0)
    dt = control_freq_inv * backend.physics_dt
    for k in range(int(round(seconds / dt))):
        backend.step(control_freq_inv)
        rec.add((k + 1) * dt)
    return rec.trajectory(scene)


def physics_checks(motion_lib: MotionLibrary, push_speed: float = 2.0, push_seconds: float = 2.0,
                   stand_seconds: float = 3.0) -> dict[str, InteractionTrajectory]:
    """The scripted checks on the bundled scenes, by label: ``"kick replay"`` (:func:`kick_check` of the ``kick``
    clip), ``"door push"`` (:func:`door_push_check` at ``push_speed`` rad/s for ``push_seconds`` s), ``"standing
    (ball)"`` and ``"standing (door)"`` (:func:`stand_still_check` for ``stand_seconds`` s)."""
    return {
        "kick replay": kick_check(motion_lib),
        "door push": door_push_check(push_speed, push_seconds),
        "standing (ball)": stand_still_check(get_scene("ball"), stand_seconds),
        "standing (door)": stand_still_check(get_scene("door"), stand_seconds),
    }
