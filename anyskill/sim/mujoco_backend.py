"""`MujocoBackend`: N independent MuJoCo worlds on the CPU (the embedded default backend).

One ``MjModel``, N ``MjData``. A control step of ``n`` physics steps runs, per world,
``mj_step2`` (integrate with the new PD targets; the position/velocity stages were computed at the
end of the previous step), ``n - 1`` further ``mj_step`` calls, ``mj_rnePostConstraint`` (per-body
contact forces of the last solve, like PhysX reports them) and ``mj_step1`` (kinematics, velocities and
collisions of the new state, which the readers return and the next ``mj_step2`` reuses). So reading
fresh body states costs no extra forward pass; the sequence is bit-identical to ``n`` ``mj_step`` calls.

After stepping, each world's ``qpos``, ``qvel``, ``xpos``, ``xquat``, ``cvel``, ``subtree_com`` and
``cfrc_ext`` are copied into (N, ...) numpy buffers; the batched readers convert those to torch.

Stepping options measured on this project's 2-core CPU machine (humanoid under random PD targets,
64 worlds x 4 substeps, physics steps per second, same process, measured together while the machine
was shared (load average ~3.5); on a quieter machine the raw loop reached 32,000-38,000 steps/s):

===============================================  ==================
python loop of ``mj_step``                        ~17,000
``mj_step(m, d, nstep=4)`` per world              ~20,700
``mujoco.rollout.Rollout(nthread=2)``             ~20,800 (state only: body states would need an
                                                  extra kinematics pass per world afterwards)
ThreadPoolExecutor(2) over chunks of worlds       no gain over one thread on the shared 2 cores
===============================================  ==================

The per-world loop (``num_threads=1``) is therefore the default; ``num_threads > 1`` splits the worlds
into chunks stepped by a thread pool, which may pay off on machines with idle cores (on the shared
2-core machine two threads were within noise of one). Whole-env cost (``bench/run.py``, results/bench.json):
1.67x the raw ``mj_step`` loop at 64 worlds, 1.25x at 256; the extra is the per-world bookkeeping here
(~30 us/world) and a fixed ~2 ms of torch observation ops per control step.

Scenes (:mod:`anyskill.sim.scene`): an ``mj_model`` with objects beside the humanoid is stepped the same way;
:meth:`~MujocoBackend.set_state` teleports the humanoid and leaves the objects' state as it was,
:meth:`~MujocoBackend.set_object_state` places them. With objects, the physics steps of a control step run one at a
time (bit-identical to ``mj_step(m, d, n)``) so that the humanoid bodies touching an object in any of them are
recorded (:meth:`~MujocoBackend.object_contacts`).

MuJoCo's automatic reset of unstable worlds is disabled so that a blow-up stays visible (non-finite
state) and is reported by :meth:`MujocoBackend.diverged` instead of being silently replaced; MuJoCo's
warnings go to the ``anyskill.sim.mujoco`` logger (level INFO) instead of stderr and ``MUJOCO_LOG.TXT``.

Stability (measured, 30 episodes of 5 s from the standing pose, new i.i.d. random actions every control
step): with actions U(-1, 1) (PD targets up to the action bounds, far beyond the joint limits) the
humanoid flails, spins in the air and 10/30 episodes blow up with the MJCF's ``implicitfast``
integrator, 0/30 with ``integrator="implicit"`` (Coriolis derivatives implicit too; 1.75x slower:
13,800 vs 24,200 steps/s) and 0/30 with ``implicitfast`` at 240 Hz. With U(-0.7, 0.7) actions no
episode out of 40 blew up with ``implicitfast``. The default keeps ``implicitfast`` and relies on the
environment's blow-up guard; pass ``integrator="implicit"`` for robustness at that cost.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
import torch

from anyskill.humanoid.model import HumanoidModel, load_humanoid

Tensor = torch.Tensor

_LOG = logging.getLogger("anyskill.sim.mujoco")
_GATHERED = ("_ctrl", "_qpos", "_qvel", "_xpos", "_xquat", "_cvel", "_subtree_com", "_cfrc_ext")
INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
}
_FLOOR_CONTYPE = 1
_HUMANOID_CONTYPE = 2  # collides with the floor (conaffinity 1) but not with itself


class MujocoBackend:
    """N MuJoCo worlds of one humanoid; see :class:`anyskill.sim.backend.Backend` for the conventions.

    Args:
        num_envs: N, number of worlds.
        model: the humanoid (default: the bundled one).
        mj_model: the MuJoCo model to simulate (default: compiled from ``model.xml_path``); it may hold
            more than the humanoid (a scene), whose bodies are found by name.
        device, dtype: where and in which precision the readers return tensors.
        num_threads: worker threads stepping chunks of worlds (1 = step in the calling thread).
        self_collision: whether the humanoid's limbs collide with each other (Isaac Gym's AMP humanoid
            does); ``False`` keeps only contacts with the rest of the scene.
        max_speed: a world whose |qvel| exceeds this (m/s, rad/s) counts as diverged.
        integrator: one of :data:`INTEGRATORS` to override the MJCF's (see the module docstring).
    """

    def __init__(
        self,
        num_envs: int,
        model: HumanoidModel | None = None,
        *,
        mj_model: mujoco.MjModel | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        num_threads: int = 1,
        self_collision: bool = True,
        max_speed: float = 1e3,
        integrator: str | None = None,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self._model = model or load_humanoid()
        m = mj_model if mj_model is not None else self._model.mj_model()
        m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_AUTORESET)
        if integrator is not None:
            if integrator not in INTEGRATORS:
                raise ValueError(f"integrator must be one of {sorted(INTEGRATORS)}, got {integrator!r}")
            m.opt.integrator = INTEGRATORS[integrator]
        if mujoco.get_mju_user_warning() is None:
            mujoco.set_mju_user_warning(lambda msg: _LOG.info("MuJoCo: %s", msg))
        self.mj_model = m
        self._num_envs = num_envs
        self._device = torch.device(device)
        self._dtype = dtype
        self.max_speed = max_speed

        hm = self._model
        self._body_ids = np.array([name_id(m, mujoco.mjtObj.mjOBJ_BODY, n) for n in hm.body_names])
        self._root_of_body = m.body_rootid[self._body_ids]
        root_jnt = [j for j in range(m.njnt) if m.jnt_bodyid[j] == self._body_ids[0]]
        if len(root_jnt) != 1 or m.jnt_type[root_jnt[0]] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"body {hm.body_names[0]!r} must have exactly one free joint in the MuJoCo model")
        self._root_qpos = int(m.jnt_qposadr[root_jnt[0]])
        self._root_qvel = int(m.jnt_dofadr[root_jnt[0]])
        hinges = [name_id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in hm.dof_names]
        self._dof_qpos = m.jnt_qposadr[hinges]
        self._dof_qvel = m.jnt_dofadr[hinges]
        self._actuators = np.array([actuator_of_joint(m, j) for j in hinges])
        self._obj_qpos, self._obj_qvel = object_coordinates(m, root_jnt[0], hinges)
        self._geom_slot = geom_slots(m, self._body_ids)
        self._has_objects = bool((self._geom_slot == OBJECT_SLOT).any())
        if not self_collision:
            disable_self_collision(m, set(self._body_ids.tolist()))

        self.data = [mujoco.MjData(m) for _ in range(num_envs)]
        """The N ``MjData`` (for rendering or inspection; change states through :meth:`set_state`)."""
        self._ctrl = np.zeros((num_envs, m.nu))
        self._qpos = np.zeros((num_envs, m.nq))
        self._qvel = np.zeros((num_envs, m.nv))
        self._xpos = np.zeros((num_envs, m.nbody, 3))
        self._xquat = np.zeros((num_envs, m.nbody, 4))
        self._cvel = np.zeros((num_envs, m.nbody, 6))
        self._subtree_com = np.zeros((num_envs, m.nbody, 3))
        self._cfrc_ext = np.zeros((num_envs, m.nbody, 6))
        self._object_contacts = np.zeros((num_envs, self._model.num_bodies), dtype=bool)
        self._cache: dict[str, Tensor] = {}

        self._chunks = [c for c in np.array_split(np.arange(num_envs), min(num_threads, num_envs)) if len(c)]
        self._pool = ThreadPoolExecutor(len(self._chunks)) if len(self._chunks) > 1 else None

        for i, d in enumerate(self.data):
            mujoco.mj_forward(m, d)
            self._gather(i, d)

    # ------------------------------------------------------------------ protocol: sizes
    @property
    def num_envs(self) -> int:
        return self._num_envs

    @property
    def model(self) -> HumanoidModel:
        return self._model

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def physics_dt(self) -> float:
        return float(self.mj_model.opt.timestep)

    # ------------------------------------------------------------------ protocol: writers
    def set_state(
        self,
        env_ids: Tensor,
        root_pos: Tensor,
        root_rot: Tensor,
        root_vel: Tensor,
        root_ang_vel: Tensor,
        dof_pos: Tensor,
        dof_vel: Tensor,
    ) -> None:
        ids = _np(env_ids).astype(np.int64).reshape(-1)
        m = len(ids)
        pos, quat, vel, ang_vel = (_np(x) for x in (root_pos, root_rot, root_vel, root_ang_vel))
        qpos, qvel = _np(dof_pos), _np(dof_vel)
        d_ = self._model.num_dofs
        for name, x, shape in (
            ("root_pos", pos, (m, 3)),
            ("root_rot", quat, (m, 4)),
            ("root_vel", vel, (m, 3)),
            ("root_ang_vel", ang_vel, (m, 3)),
            ("dof_pos", qpos, (m, d_)),
            ("dof_vel", qvel, (m, d_)),
        ):
            if x.shape != shape:
                raise ValueError(f"set_state: {name} must have shape {shape} for {m} env ids, got {x.shape}")
        if m and (ids.min() < 0 or ids.max() >= self._num_envs):
            raise IndexError(f"set_state: env ids must be in [0, {self._num_envs}), got {ids.tolist()}")
        norm = np.linalg.norm(quat, axis=-1, keepdims=True)
        if np.any(norm < 1e-6):
            raise ValueError("set_state: root_rot contains zero quaternions; pass unit quaternions (wxyz)")
        quat = quat / norm
        ang_local = _rotate_inverse(quat, ang_vel)  # free-joint angular velocity is body-frame
        rq, rv = self._root_qpos, self._root_qvel
        for k, i in enumerate(ids.tolist()):
            d = self.data[i]
            objects = (d.qpos[self._obj_qpos].copy(), d.qvel[self._obj_qvel].copy()) if self._has_objects else None
            mujoco.mj_resetData(self.mj_model, d)
            if objects is not None:
                d.qpos[self._obj_qpos], d.qvel[self._obj_qvel] = objects
            d.qpos[rq : rq + 3] = pos[k]
            d.qpos[rq + 3 : rq + 7] = quat[k]
            d.qpos[self._dof_qpos] = qpos[k]
            d.qvel[rv : rv + 3] = vel[k]
            d.qvel[rv + 3 : rv + 6] = ang_local[k]
            d.qvel[self._dof_qvel] = qvel[k]
            d.ctrl[:] = self._ctrl[i]
            mujoco.mj_forward(self.mj_model, d)
            self._gather(i, d)
            self._cfrc_ext[i] = 0.0
            self._object_contacts[i] = False
        self._cache.clear()

    def set_state_masked(self, mask: Tensor, root_pos: Tensor, root_rot: Tensor, root_vel: Tensor,
                         root_ang_vel: Tensor, dof_pos: Tensor, dof_vel: Tensor) -> None:
        ids = torch.as_tensor(mask).nonzero().squeeze(-1)
        if len(ids):
            self.set_state(ids, *(torch.as_tensor(x)[ids] for x in (root_pos, root_rot, root_vel, root_ang_vel,
                                                                      dof_pos, dof_vel)))

    def set_object_state(self, env_ids: Tensor, qpos: Tensor, qvel: Tensor) -> None:
        ids = _np(env_ids).astype(np.int64).reshape(-1)
        q, v = _np(qpos), _np(qvel)
        shape_q, shape_v = (len(ids), len(self._obj_qpos)), (len(ids), len(self._obj_qvel))
        if q.shape != shape_q or v.shape != shape_v:
            raise ValueError(f"set_object_state: expected qpos {shape_q} and qvel {shape_v} for {len(ids)} env ids "
                             f"(the scene's object coordinates), got {q.shape} and {v.shape}")
        if len(ids) and (ids.min() < 0 or ids.max() >= self._num_envs):
            raise IndexError(f"set_object_state: env ids must be in [0, {self._num_envs}), got {ids.tolist()}")
        for k, i in enumerate(ids.tolist()):
            d = self.data[i]
            d.qpos[self._obj_qpos] = q[k]
            d.qvel[self._obj_qvel] = v[k]
            mujoco.mj_forward(self.mj_model, d)
            self._gather(i, d)
        self._cache.clear()

    def set_pd_targets(self, targets: Tensor) -> None:
        t = _np(targets)
        if t.shape != (self._num_envs, self._model.num_dofs):
            raise ValueError(f"set_pd_targets: expected ({self._num_envs}, {self._model.num_dofs}) rad, got {t.shape}")
        self._ctrl[:, self._actuators] = t

    def step(self, num_substeps: int) -> None:
        if num_substeps < 1:
            raise ValueError(f"step: num_substeps must be >= 1, got {num_substeps}")
        if self._pool is None:
            self._advance(self._chunks[0], num_substeps)
        else:
            list(self._pool.map(lambda c: self._advance(c, num_substeps), self._chunks))
        self._cache.clear()

    def _advance(self, env_ids: np.ndarray, n: int) -> None:
        m = self.mj_model
        for i in env_ids:
            d = self.data[i]
            d.ctrl[:] = self._ctrl[i]
            if self._has_objects:  # the same steps one at a time, noting the contacts each one's solve uses
                touched = self._touching(d)
                mujoco.mj_step2(m, d)
                for _ in range(n - 1):
                    mujoco.mj_step(m, d)
                    touched |= self._touching(d)
                self._object_contacts[i] = touched
            else:
                mujoco.mj_step2(m, d)
                if n > 1:
                    mujoco.mj_step(m, d, n - 1)
            mujoco.mj_rnePostConstraint(m, d)
            self._cfrc_ext[i] = d.cfrc_ext
            mujoco.mj_step1(m, d)
            self._gather(i, d)

    def _touching(self, d: mujoco.MjData) -> np.ndarray:
        """(B,) bool: humanoid bodies in a contact with an object among ``d``'s current contacts."""
        slots = self._geom_slot[d.contact.geom[: d.ncon]]  # (ncon, 2)
        out = np.zeros(self._model.num_bodies, dtype=bool)
        for a, b in ((0, 1), (1, 0)):
            hit = (slots[:, a] >= 0) & (slots[:, b] == OBJECT_SLOT)
            out[slots[hit, a]] = True
        return out

    def _gather(self, i: int, d: mujoco.MjData) -> None:
        self._qpos[i] = d.qpos
        self._qvel[i] = d.qvel
        self._xpos[i] = d.xpos
        self._xquat[i] = d.xquat
        self._cvel[i] = d.cvel
        self._subtree_com[i] = d.subtree_com

    # ------------------------------------------------------------------ protocol: readers
    def _tensor(self, key: str, array: np.ndarray) -> Tensor:
        t = self._cache.get(key)
        if t is None:
            t = torch.from_numpy(np.ascontiguousarray(array)).to(self._device, self._dtype)
            self._cache[key] = t
        return t

    def dof_pos(self) -> Tensor:
        return self._tensor("dof_pos", self._qpos[:, self._dof_qpos])

    def dof_vel(self) -> Tensor:
        return self._tensor("dof_vel", self._qvel[:, self._dof_qvel])

    def body_pos(self) -> Tensor:
        return self._tensor("body_pos", self._xpos[:, self._body_ids])

    def body_rot(self) -> Tensor:
        return self._tensor("body_rot", self._xquat[:, self._body_ids])

    def body_ang_vel(self) -> Tensor:
        return self._tensor("body_ang_vel", self._cvel[:, self._body_ids, :3])

    def body_vel(self) -> Tensor:
        t = self._cache.get("body_vel")
        if t is None:
            # cvel is the spatial velocity at the subtree centre of mass of each body's tree root
            # ([angular; linear], world axes); move its linear part to the body origin.
            cvel = self._cvel[:, self._body_ids]
            offset = self._xpos[:, self._body_ids] - self._subtree_com[:, self._root_of_body]
            t = self._tensor("body_vel", cvel[..., 3:] + _cross(cvel[..., :3], offset))
        return t

    def body_contact_force(self) -> Tensor:
        return self._tensor("contact", self._cfrc_ext[:, self._body_ids, 3:])

    def object_qpos(self) -> Tensor:
        return self._tensor("object_qpos", self._qpos[:, self._obj_qpos])

    def object_qvel(self) -> Tensor:
        return self._tensor("object_qvel", self._qvel[:, self._obj_qvel])

    def object_contacts(self) -> Tensor:
        return torch.from_numpy(self._object_contacts.copy()).to(self._device)

    def qpos(self) -> Tensor:
        rq = self._root_qpos
        return torch.cat([self._tensor("root_qpos", self._qpos[:, rq : rq + 7]), self.dof_pos()], dim=-1)

    def qvel(self) -> Tensor:
        rv = self._root_qvel
        root_lin = self._tensor("root_lin", self._qvel[:, rv : rv + 3])
        return torch.cat([root_lin, self.body_ang_vel()[:, 0], self.dof_vel()], dim=-1)

    def root_state(self) -> Tensor:
        q, v = self.qpos(), self.qvel()
        return torch.cat([q[:, :7], v[:, :6]], dim=-1)

    def diverged(self) -> Tensor:
        finite = np.isfinite(self._qpos).all(-1) & np.isfinite(self._qvel).all(-1)
        with np.errstate(invalid="ignore"):
            fast = (np.abs(self._qvel) > self.max_speed).any(-1)
        return torch.from_numpy(~finite | fast).to(self._device)

    def snapshot(self) -> dict:
        """Per-world MuJoCo integration state (``mj_getState``: time, qpos, qvel, act, warm start, controls, ...) and
        the gathered reader buffers (they hold the last step's contact forces, which the state does not)."""
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        size = mujoco.mj_stateSize(self.mj_model, spec)
        states = np.zeros((self._num_envs, size))
        for i, d in enumerate(self.data):
            mujoco.mj_getState(self.mj_model, d, states[i], spec)
        buffers = {k: getattr(self, k).copy() for k in _GATHERED}
        buffers["_object_contacts"] = self._object_contacts.copy()
        return {"mj_state": states, "buffers": buffers}

    def restore(self, state: dict) -> None:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        states = np.asarray(state["mj_state"])
        if states.shape != (self._num_envs, mujoco.mj_stateSize(self.mj_model, spec)):
            raise ValueError(f"snapshot holds states of shape {states.shape} for this backend's {self._num_envs} "
                             "worlds "
                             "of another size or model; restore into a backend built like the one snapshotted")
        for i, d in enumerate(self.data):
            mujoco.mj_setState(self.mj_model, d, states[i], spec)
            mujoco.mj_step1(self.mj_model, d)  # the stage each world is in after step(): kinematics of the new state
        for k in _GATHERED:
            getattr(self, k)[...] = state["buffers"][k]
        # snapshots written before scenes existed have no contact flags (a plain humanoid never touches an object)
        self._object_contacts[...] = state["buffers"].get("_object_contacts", False)
        self._cache.clear()

    def close(self) -> None:
        """Stop the worker threads (only needed when ``num_threads > 1``)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def name_id(m: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    i = mujoco.mj_name2id(m, kind, name)
    if i < 0:
        raise ValueError(f"the MuJoCo model has no {kind.name[6:].lower()} named {name!r}")
    return i


def actuator_of_joint(m: mujoco.MjModel, joint: int) -> int:
    for a in range(m.nu):
        if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and m.actuator_trnid[a][0] == joint:
            return a
    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, joint)
    raise ValueError(f"joint {name!r} has no actuator; every hinge needs a position actuator for PD control")


OBJECT_SLOT = -1
"""Slot of a geom of a scene object in :func:`geom_slots` (humanoid geoms: their body's index, the world: -2)."""
WORLD_SLOT = -2


def geom_slots(m: mujoco.MjModel, humanoid_bodies: np.ndarray) -> np.ndarray:
    """(ngeom,) int: for each geom the index (0..B-1) of the humanoid body it belongs to, :data:`OBJECT_SLOT` for a
    geom of any other body (a scene's objects, static ones such as a door frame included), :data:`WORLD_SLOT` for the
    world body's geoms (the floor)."""
    slot_of_body = np.full(m.nbody, OBJECT_SLOT)
    slot_of_body[0] = WORLD_SLOT
    slot_of_body[humanoid_bodies] = np.arange(len(humanoid_bodies))
    return slot_of_body[m.geom_bodyid]


def object_coordinates(m: mujoco.MjModel, root_joint: int, hinges: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(qpos indices, qvel indices) of every coordinate outside the humanoid's root joint and ``hinges``: a scene's
    objects, in model order (empty for the plain humanoid)."""
    humanoid_q = {int(m.jnt_qposadr[root_joint]) + k for k in range(7)} | {int(m.jnt_qposadr[j]) for j in hinges}
    humanoid_v = {int(m.jnt_dofadr[root_joint]) + k for k in range(6)} | {int(m.jnt_dofadr[j]) for j in hinges}
    return (np.array([i for i in range(m.nq) if i not in humanoid_q], dtype=np.int64),
            np.array([i for i in range(m.nv) if i not in humanoid_v], dtype=np.int64))


def disable_self_collision(m: mujoco.MjModel, bodies: set[int]) -> None:
    for g in range(m.ngeom):
        if int(m.geom_bodyid[g]) in bodies:
            m.geom_contype[g] = _HUMANOID_CONTYPE
            m.geom_conaffinity[g] = _FLOOR_CONTYPE


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float64, copy=False)
    return np.asarray(x, dtype=np.float64)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (np.cross costs ~10x more on small arrays)."""
    return a[..., [1, 2, 0]] * b[..., [2, 0, 1]] - a[..., [2, 0, 1]] * b[..., [1, 2, 0]]


def _rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate (M, 3) vectors by the inverse of (M, 4) wxyz unit quaternions."""
    w, u = q[:, :1], -q[:, 1:]
    t = 2.0 * _cross(u, v)
    return v + w * t + _cross(u, t)
