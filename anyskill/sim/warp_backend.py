"""`WarpBackend`: N humanoid worlds in one MuJoCo Warp model (GPU, or Warp's CPU device for tests).

All N worlds live in one ``mujoco_warp`` ``Data`` whose arrays have a leading world axis. The
environment sees them through zero-copy torch views (``wp.to_torch``), so nothing crosses between
host and device in a control step except the index checks of :meth:`WarpBackend.set_state`.

A control step of ``n`` physics steps runs ``n`` ``mjw.step`` calls (each a full ``forward`` plus
the integrator; bit-for-bit the sequence :class:`~anyskill.sim.mujoco_backend.MujocoBackend` runs),
then ``rne_postconstraint`` (per-body contact forces ``cfrc_ext`` of the last solve, like the CPU
backend) and ``kinematics``/``com_pos``/``com_vel`` for the new state, which the readers return. On
CUDA that sequence is captured once per ``n`` into a CUDA graph and replayed.

Contact buffers: :mod:`anyskill.sim.warp_buffers` sizes them for the model's worst case (223 contacts, 920 rows
per world for the bundled humanoid), so they cannot overflow; worlds whose buffers overflowed anyway count as
:meth:`~WarpBackend.diverged`, with a warning saying which size to raise.

Parity with the CPU backend (``tests/test_warp_backend.py``, Warp's CPU device). MuJoCo Warp computes
in float32, MuJoCo C in float64; over 120 steps (1 s) of standing, a fall from a random pose, lying on
the back and a walk frame, with the same PD targets, the two agree to 7e-6 in qpos and 1.4e-4 in qvel.
Two discrete events break this agreement (measured 1e-3 to 4e-2 in qpos within 1 s), both of them
legitimate physics in either engine: a joint sitting exactly at a limit (the knees and elbows at 0 rad),
whose limit row rounding switches on in one engine and off in the other; and a box sunk deep into the
floor (e.g. a state teleported into it), where MuJoCo Warp keeps a contact for every corner below the
plane and MuJoCo C at most 4.

Scenes (:mod:`anyskill.sim.scene`): as on the CPU backend, :meth:`~WarpBackend.set_state` moves only the humanoid,
:meth:`~WarpBackend.set_object_state` places the objects, and after each physics step a kernel notes the humanoid
bodies in contact with an object (:meth:`~WarpBackend.object_contacts`). The parity test covers both scenes (a ball
rolled into a foot, a door leaf swung into an arm): object coordinates within 4e-5 and velocities within 7e-4 of
MuJoCo C's, the same contacts. MuJoCo Warp
counts a contact only below distance 0 (MuJoCo C at 0 too), so objects are placed resting slightly inside the floor
(:attr:`~anyskill.sim.scene.SoccerBall.resting_depth`).

Speed on the 2-core CPU machine (random PD targets, control steps of 4 physics steps, physics steps per
second): Warp's CPU device 90 / 545 / 1,760 for N = 1 / 8 / 64 worlds, against 14,500 / 23,700 / 28,200
for :class:`~anyskill.sim.mujoco_backend.MujocoBackend`; Warp's CPU device is for tests only. Compiling
the kernels on first use took 7.5 s (construction) + 41 s (first step) there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator

import mujoco
import mujoco_warp as mjw
import numpy as np
import torch
import warp as wp

from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.humanoid.rotations import quat_rotate_inverse
from anyskill.sim.mujoco_backend import (
    INTEGRATORS,
    OBJECT_SLOT,
    actuator_of_joint,
    disable_self_collision,
    geom_slots,
    name_id,
    object_coordinates,
)
from anyskill.sim.warp_buffers import BUFFER_OVERFLOWS, ContactBufferSizes, contact_buffer_sizes

wp.config.quiet = True  # type: ignore[attr-defined]  # no start-up banner (set at run time; not in warp's stubs)
if hasattr(wp, "LOG_WARNING"):  # Warp >= 1.19 logs each kernel module load at INFO level
    wp.config.log_level = wp.LOG_WARNING

Tensor = torch.Tensor

@wp.kernel
def _note_object_contacts(
    nacon: wp.array(dtype=int),  # type: ignore[valid-type]
    contact_geom: wp.array(dtype=wp.vec2i),  # type: ignore[valid-type]
    contact_world: wp.array(dtype=int),  # type: ignore[valid-type]
    geom_slot: wp.array(dtype=int),  # type: ignore[valid-type]
    touched: wp.array2d(dtype=wp.int32),  # type: ignore[valid-type]
):
    """Per contact: flag (world, humanoid body) when it pairs a humanoid geom with a scene object's (slot -1)."""
    c = wp.tid()
    if c >= nacon[0]:
        return
    g = contact_geom[c]
    if g[0] < 0 or g[1] < 0:  # flex contacts
        return
    a = geom_slot[g[0]]
    b = geom_slot[g[1]]
    if a >= 0 and b == -1:
        touched[contact_world[c], a] = 1
    if b >= 0 and a == -1:
        touched[contact_world[c], b] = 1


class WarpBackend:
    """N MuJoCo Warp worlds of one humanoid; see :class:`anyskill.sim.backend.Backend` for the conventions.

    Readers return float32 tensors on ``device`` (MuJoCo Warp's precision).

    Args:
        num_envs: N, number of worlds.
        model: the humanoid (default: the bundled one).
        device: ``"cuda:0"``, ``"cpu"`` (Warp's CPU device: slow, for tests), ... (a Warp device name).
        nconmax: contacts per world (default: the worst case of :func:`contact_buffer_sizes`).
        njmax: constraint rows per world (default: the worst case of :func:`contact_buffer_sizes`).
        mj_model: the MuJoCo model to simulate (default: compiled from ``model.xml_path``).
        self_collision: whether the humanoid's limbs collide with each other (as in
            :class:`~anyskill.sim.mujoco_backend.MujocoBackend`).
        max_speed: a world whose |qvel| exceeds this (m/s, rad/s) counts as diverged.
        integrator: one of :data:`~anyskill.sim.mujoco_backend.INTEGRATORS` to override the MJCF's.
        cuda_graph: capture each control step in a CUDA graph (CUDA devices only).
    """

    def __init__(
        self,
        num_envs: int,
        model: HumanoidModel | None = None,
        device: str = "cuda:0",
        nconmax: int | None = None,
        njmax: int | None = None,
        *,
        mj_model: mujoco.MjModel | None = None,
        self_collision: bool = True,
        max_speed: float = 1e3,
        integrator: str | None = None,
        cuda_graph: bool = True,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self._model = model or load_humanoid()
        m = mj_model if mj_model is not None else self._model.mj_model()
        if integrator is not None:
            if integrator not in INTEGRATORS:
                raise ValueError(f"integrator must be one of {sorted(INTEGRATORS)}, got {integrator!r}")
            m.opt.integrator = INTEGRATORS[integrator]
        hm = self._model
        body_ids = np.array([name_id(m, mujoco.mjtObj.mjOBJ_BODY, n) for n in hm.body_names])
        root_jnt = [j for j in range(m.njnt) if m.jnt_bodyid[j] == body_ids[0]]
        if len(root_jnt) != 1 or m.jnt_type[root_jnt[0]] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"body {hm.body_names[0]!r} must have exactly one free joint in the MuJoCo model")
        hinges = [name_id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in hm.dof_names]
        actuators = [actuator_of_joint(m, j) for j in hinges]
        obj_qpos, obj_qvel = object_coordinates(m, root_jnt[0], hinges)
        slots = geom_slots(m, body_ids)
        self._has_objects = bool((slots == OBJECT_SLOT).any())
        if not self_collision:
            disable_self_collision(m, set(body_ids.tolist()))
        self.mj_model = m
        self.max_speed = max_speed

        try:
            self._wp_device = wp.get_device(device)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"Warp cannot use device {device!r} ({e}); pass device='cpu' or an available CUDA "
                             "device") from e
        self._device = torch.device(wp.device_to_torch(self._wp_device))
        self._num_envs = num_envs
        with wp.ScopedDevice(self._wp_device):
            self.mjw_model = mjw.put_model(m)
            worst = contact_buffer_sizes(m, self.mjw_model)
            self.buffer_sizes = ContactBufferSizes(nconmax or worst.nconmax, njmax or worst.njmax)
            """The contact/constraint buffer sizes in use (per world)."""
            self.mjw_model.opt.warn_overflow = 0  # reported by diverged() instead of kernel printf
            self.data = mjw.make_data(m, nworld=num_envs, nconmax=self.buffer_sizes.nconmax,
                                      njmax=self.buffer_sizes.njmax)
            """The MuJoCo Warp ``Data`` (change states through :meth:`set_state`)."""
            self._geom_slot: wp.array = wp.array(slots.astype(np.int32), dtype=int)
            self._touched = wp.zeros((num_envs, hm.num_bodies), dtype=wp.int32)
        self.views = WarpViews.of(self.data)
        """Zero-copy torch views of the state arrays of :attr:`data`."""

        def index(x) -> Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.int64), device=self._device)

        self._body_ids = index(body_ids)
        self._root_of_body = index(m.body_rootid[body_ids])
        rq, rv = int(m.jnt_qposadr[root_jnt[0]]), int(m.jnt_dofadr[root_jnt[0]])
        self._root_qpos = index(np.arange(rq, rq + 7))
        self._root_lin_qvel = index(np.arange(rv, rv + 3))
        self._root_ang_qvel = index(np.arange(rv + 3, rv + 6))
        self._dof_qpos = index(m.jnt_qposadr[hinges])
        self._dof_qvel = index(m.jnt_dofadr[hinges])
        self._actuators = index(actuators)
        self._obj_qpos = index(obj_qpos)
        self._obj_qvel = index(obj_qvel)
        self._use_graph = cuda_graph and self._wp_device.is_cuda
        self._graphs: dict[int, wp.Graph] = {}
        self._eager_done: set[int] = set()
        self._warned_overflow = False
        self._diverged_calls = 0
        self._cache: dict[str, Tensor] = {}

        with self._warp_scope():
            self._update_readers()

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
        ids = torch.as_tensor(env_ids, device=self._device).long().reshape(-1)
        m = ids.numel()
        d_ = self._model.num_dofs
        args = {}
        for name, x, shape in (
            ("root_pos", root_pos, (m, 3)),
            ("root_rot", root_rot, (m, 4)),
            ("root_vel", root_vel, (m, 3)),
            ("root_ang_vel", root_ang_vel, (m, 3)),
            ("dof_pos", dof_pos, (m, d_)),
            ("dof_vel", dof_vel, (m, d_)),
        ):
            x = torch.as_tensor(x).to(self._device, torch.float32)
            if tuple(x.shape) != shape:
                raise ValueError(f"set_state: {name} must have shape {shape} for {m} env ids, got {tuple(x.shape)}")
            args[name] = x
        if m and (int(ids.min()) < 0 or int(ids.max()) >= self._num_envs):
            raise IndexError(f"set_state: env ids must be in [0, {self._num_envs}), got {ids.tolist()}")
        norm = args["root_rot"].norm(dim=-1, keepdim=True)
        if bool((norm < 1e-6).any()):
            raise ValueError("set_state: root_rot contains zero quaternions; pass unit quaternions (wxyz)")
        root_rot = args["root_rot"] / norm
        v = self.views
        rows = ids[:, None]
        v.qpos[rows, self._root_qpos] = torch.cat([args["root_pos"], root_rot], dim=-1)
        v.qpos[rows, self._dof_qpos] = args["dof_pos"]
        v.qvel[rows, self._root_lin_qvel] = args["root_vel"]
        # the free joint's angular velocity is in the body frame
        v.qvel[rows, self._root_ang_qvel] = quat_rotate_inverse(root_rot, args["root_ang_vel"])
        v.qvel[rows, self._dof_qvel] = args["dof_vel"]
        # what else mj_resetData clears that this model's next step reads; contact forces read zero
        v.qacc_warmstart[ids] = 0.0
        v.time[ids] = 0.0
        v.cfrc_ext[ids] = 0.0
        v.overflow[ids] = 0
        wp.to_torch(self._touched)[ids] = 0
        with self._warp_scope():
            self._update_readers()
        self._cache.clear()

    def set_state_masked(self, mask: Tensor, root_pos: Tensor, root_rot: Tensor, root_vel: Tensor,
                         root_ang_vel: Tensor, dof_pos: Tensor, dof_vel: Tensor) -> None:
        n, d_ = self._num_envs, self._model.num_dofs
        m = torch.as_tensor(mask).to(self._device, torch.bool)
        args = {}
        for name, x, shape in (("mask", m, (n,)), ("root_pos", root_pos, (n, 3)), ("root_rot", root_rot, (n, 4)),
                               ("root_vel", root_vel, (n, 3)), ("root_ang_vel", root_ang_vel, (n, 3)),
                               ("dof_pos", dof_pos, (n, d_)), ("dof_vel", dof_vel, (n, d_))):
            if tuple(x.shape) != shape:
                raise ValueError(f"set_state_masked: {name} must have shape {shape}, got {tuple(x.shape)}")
            args[name] = x.to(self._device, torch.float32) if name != "mask" else x
        root_rot = args["root_rot"] / args["root_rot"].norm(dim=-1, keepdim=True).clamp_min(1e-6)
        v, m1 = self.views, m[:, None]

        def put(dst: Tensor, cols: Tensor, value: Tensor) -> None:
            dst[:, cols] = torch.where(m1, value, dst[:, cols])

        put(v.qpos, self._root_qpos, torch.cat([args["root_pos"], root_rot], dim=-1))
        put(v.qpos, self._dof_qpos, args["dof_pos"])
        put(v.qvel, self._root_lin_qvel, args["root_vel"])
        put(v.qvel, self._root_ang_qvel, quat_rotate_inverse(root_rot, args["root_ang_vel"]))
        put(v.qvel, self._dof_qvel, args["dof_vel"])
        v.qacc_warmstart.masked_fill_(m1, 0.0)
        v.time.masked_fill_(m, 0.0)
        v.cfrc_ext.masked_fill_(m[:, None, None], 0.0)
        v.overflow.masked_fill_(m, 0)
        wp.to_torch(self._touched).masked_fill_(m1, 0)
        with self._warp_scope():
            self._update_readers()
        self._cache.clear()

    def set_object_state(self, env_ids: Tensor, qpos: Tensor, qvel: Tensor) -> None:
        ids = torch.as_tensor(env_ids, device=self._device).long().reshape(-1)
        m = ids.numel()
        q = torch.as_tensor(qpos).to(self._device, torch.float32)
        v = torch.as_tensor(qvel).to(self._device, torch.float32)
        shape_q, shape_v = (m, self._obj_qpos.numel()), (m, self._obj_qvel.numel())
        if tuple(q.shape) != shape_q or tuple(v.shape) != shape_v:
            raise ValueError(f"set_object_state: expected qpos {shape_q} and qvel {shape_v} for {m} env ids (the "
                             f"scene's object coordinates), got {tuple(q.shape)} and {tuple(v.shape)}")
        if m and (int(ids.min()) < 0 or int(ids.max()) >= self._num_envs):
            raise IndexError(f"set_object_state: env ids must be in [0, {self._num_envs}), got {ids.tolist()}")
        rows = ids[:, None]
        self.views.qpos[rows, self._obj_qpos] = q
        self.views.qvel[rows, self._obj_qvel] = v
        with self._warp_scope():
            self._update_readers()
        self._cache.clear()

    def set_pd_targets(self, targets: Tensor) -> None:
        t = torch.as_tensor(targets)
        if tuple(t.shape) != (self._num_envs, self._model.num_dofs):
            raise ValueError(
                f"set_pd_targets: expected ({self._num_envs}, {self._model.num_dofs}) rad, got {tuple(t.shape)}"
            )
        self.views.ctrl[:, self._actuators] = t.to(self._device, torch.float32)

    def step(self, num_substeps: int) -> None:
        if num_substeps < 1:
            raise ValueError(f"step: num_substeps must be >= 1, got {num_substeps}")
        with self._warp_scope():
            graph = self._graphs.get(num_substeps)
            if graph is not None:
                wp.capture_launch(graph)
            elif self._use_graph and num_substeps in self._eager_done:  # kernels are compiled: capture
                with wp.ScopedCapture() as capture:
                    self._advance(num_substeps)
                self._graphs[num_substeps] = capture.graph
                wp.capture_launch(capture.graph)
            else:
                self._advance(num_substeps)
                self._eager_done.add(num_substeps)
        self._cache.clear()

    @contextlib.contextmanager
    def _warp_scope(self) -> Iterator[None]:
        """Run Warp work on this backend's device, ordered after and before torch's work on it.

        On CUDA, Warp launches on its own stream (CUDA graphs cannot be captured on torch's legacy
        default stream), which waits for torch's current stream before and is waited for after.
        """
        if not self._wp_device.is_cuda:
            with wp.ScopedDevice(self._wp_device):
                yield
            return
        torch_stream = wp.stream_from_torch(self._device)
        warp_stream = self._wp_device.stream
        warp_stream.wait_stream(torch_stream)
        with wp.ScopedStream(warp_stream):
            yield
        torch_stream.wait_stream(warp_stream)

    def _advance(self, n: int) -> None:
        if self._has_objects:
            self._touched.zero_()
        for _ in range(n):
            mjw.step(self.mjw_model, self.data)
            if self._has_objects:  # the contacts this step's solve used
                c = self.data.contact
                wp.launch(_note_object_contacts, dim=c.geom.shape[0],
                          inputs=[self.data.nacon, c.geom, c.worldid, self._geom_slot, self._touched])
        mjw.rne_postconstraint(self.mjw_model, self.data)
        self._update_readers()

    def _update_readers(self) -> None:
        """Body poses, subtree centres of mass and velocities of the current qpos/qvel."""
        mjw.kinematics(self.mjw_model, self.data)
        mjw.com_pos(self.mjw_model, self.data)
        mjw.com_vel(self.mjw_model, self.data)

    # ------------------------------------------------------------------ protocol: readers
    def _cached(self, key: str, compute) -> Tensor:
        t = self._cache.get(key)
        if t is None:
            t = compute()
            self._cache[key] = t
        return t

    def dof_pos(self) -> Tensor:
        return self._cached("dof_pos", lambda: self.views.qpos[:, self._dof_qpos])

    def dof_vel(self) -> Tensor:
        return self._cached("dof_vel", lambda: self.views.qvel[:, self._dof_qvel])

    def body_pos(self) -> Tensor:
        return self._cached("body_pos", lambda: self.views.xpos[:, self._body_ids])

    def body_rot(self) -> Tensor:
        return self._cached("body_rot", lambda: self.views.xquat[:, self._body_ids])

    def body_ang_vel(self) -> Tensor:
        return self._cached("body_ang_vel", lambda: self.views.cvel[:, self._body_ids, :3])

    def body_vel(self) -> Tensor:
        def compute() -> Tensor:
            # cvel is the spatial velocity at the subtree centre of mass of each body's tree root
            # ([angular; linear], world axes); move its linear part to the body origin.
            v = self.views
            cvel = v.cvel[:, self._body_ids]
            ref = v.subtree_com[:, self._root_of_body]
            return cvel[..., 3:] + torch.cross(cvel[..., :3], v.xpos[:, self._body_ids] - ref, dim=-1)

        return self._cached("body_vel", compute)

    def body_contact_force(self) -> Tensor:
        return self._cached("contact", lambda: self.views.cfrc_ext[:, self._body_ids, 3:])

    def object_qpos(self) -> Tensor:
        return self._cached("object_qpos", lambda: self.views.qpos[:, self._obj_qpos])

    def object_qvel(self) -> Tensor:
        return self._cached("object_qvel", lambda: self.views.qvel[:, self._obj_qvel])

    def object_contacts(self) -> Tensor:
        return wp.to_torch(self._touched) != 0

    def qpos(self) -> Tensor:
        return self._cached("qpos", lambda: torch.cat([self.views.qpos[:, self._root_qpos], self.dof_pos()], dim=-1))

    def qvel(self) -> Tensor:
        def compute() -> Tensor:
            root_lin = self.views.qvel[:, self._root_lin_qvel]
            return torch.cat([root_lin, self.body_ang_vel()[:, 0], self.dof_vel()], dim=-1)

        return self._cached("qvel", compute)

    def root_state(self) -> Tensor:
        q, v = self.qpos(), self.qvel()
        return torch.cat([q[:, :7], v[:, :6]], dim=-1)

    def diverged(self) -> Tensor:
        v = self.views
        finite = torch.isfinite(v.qpos).all(-1) & torch.isfinite(v.qvel).all(-1)
        fast = (v.qvel.abs() > self.max_speed).any(-1)
        overflow = (v.overflow & int(BUFFER_OVERFLOWS)) != 0
        self._diverged_calls += 1
        # on a GPU the check waits for the device: look once every 256 calls (each world's flag stays set)
        check = not self._wp_device.is_cuda or self._diverged_calls % 256 == 1
        if not self._warned_overflow and check and bool(overflow.any()):
            self._warned_overflow = True
            warnings.warn(self._overflow_message(overflow), RuntimeWarning, stacklevel=2)
        return ~finite | fast | overflow

    def snapshot(self) -> dict:
        raise NotImplementedError(
            "WarpBackend has no exact snapshot yet (its solver warm-start lives in Warp arrays); training on it "
            "resumes "
            "from weights, normalisers and optimisers with fresh episodes")

    def restore(self, state: dict) -> None:
        raise NotImplementedError("WarpBackend has no exact snapshot yet; see WarpBackend.snapshot")

    def _overflow_message(self, overflow: Tensor) -> str:
        bits = 0
        for b in self.views.overflow[overflow].tolist():
            bits |= b
        kinds = mjw.OverflowType(bits & int(BUFFER_OVERFLOWS))
        s = self.buffer_sizes
        return (
            f"MuJoCo Warp dropped contacts or constraint rows ({kinds!r}) in {int(overflow.sum())} of "
            f"{self._num_envs} worlds with nconmax={s.nconmax} contacts and njmax={s.njmax} rows per world; "
            f"those worlds count as diverged. Pass larger nconmax (contacts: BROADPHASE/NARROWPHASE) or njmax "
            f"(rows: NEFC) to WarpBackend, or leave them None for the model's worst case."
        )


@dataclasses.dataclass(frozen=True)
class WarpViews:
    """Zero-copy torch views (N worlds first) of the MuJoCo Warp ``Data`` arrays the backend uses."""

    qpos: Tensor
    """(N, nq)"""
    qvel: Tensor
    """(N, nv); free-joint angular velocity in the body frame"""
    ctrl: Tensor
    """(N, nu)"""
    qacc_warmstart: Tensor
    """(N, nv)"""
    time: Tensor
    """(N,) s"""
    xpos: Tensor
    """(N, nbody, 3) m, world frame"""
    xquat: Tensor
    """(N, nbody, 4) wxyz, world frame"""
    cvel: Tensor
    """(N, nbody, 6) [angular; linear] at the tree root's subtree centre of mass, world axes"""
    subtree_com: Tensor
    """(N, nbody, 3) m"""
    cfrc_ext: Tensor
    """(N, nbody, 6) [torque; force] of the last solve's external (contact) forces"""
    overflow: Tensor
    """(N,) int, ``mjw.OverflowType`` bits since the world's last reset"""

    @classmethod
    def of(cls, data: mjw.Data) -> WarpViews:
        return cls(**{f.name: wp.to_torch(getattr(data, f.name)) for f in dataclasses.fields(cls)})
