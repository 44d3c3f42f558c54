"""The `Backend` protocol: N independent humanoid worlds behind batched torch tensors.

A backend owns the physics (MuJoCo on CPU, MuJoCo Warp on GPU, ...); the environment
(:mod:`anyskill.sim.env`) only talks to it through this protocol, so observations, resets and
terminations are written once. Conventions shared by every backend:

* quaternions are **wxyz**; positions in m, velocities in m/s and rad/s, all in the **world** frame
  (z up), including the root's angular velocity (MuJoCo's free-joint ``qvel[3:6]`` is body-frame:
  backends convert);
* body arrays follow :attr:`HumanoidModel.body_names` (B = 15 bodies, body 0 = root), DoF arrays
  follow :attr:`HumanoidModel.dof_names` (D = 28 hinges);
* body linear velocities are those of the body **origins** (the points whose positions
  :meth:`Backend.body_pos` returns), so they equal finite differences of those positions;
* readers return the state after the last :meth:`Backend.step` or :meth:`Backend.set_state`;
* a scene's objects (:mod:`anyskill.sim.scene`: every coordinate of the ``mj_model`` outside the humanoid) are read
  and placed through ``object_qpos`` / ``object_qvel`` / ``set_object_state`` (K = Kv = 0 for the plain humanoid);
  :meth:`Backend.set_state` moves only the humanoid.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from anyskill.humanoid.model import HumanoidModel

Tensor = torch.Tensor


@runtime_checkable
class Backend(Protocol):
    """N humanoid worlds stepped together (shapes: N worlds, B bodies, D DoFs)."""

    @property
    def num_envs(self) -> int:
        """N, the number of independent worlds."""

    @property
    def model(self) -> HumanoidModel:
        """The humanoid simulated in every world."""

    @property
    def device(self) -> torch.device:
        """Where the tensors returned by the readers live."""

    @property
    def physics_dt(self) -> float:
        """s, duration of one physics step."""

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
        """Teleport worlds ``env_ids`` (M,) to a state and recompute everything the readers return.

        root_pos (M, 3) m; root_rot (M, 4) wxyz; root_vel (M, 3) m/s world; root_ang_vel (M, 3) rad/s
        world; dof_pos (M, D) rad; dof_vel (M, D) rad/s. Contact forces read zero until the next step.
        """

    def set_state_masked(
        self,
        mask: Tensor,
        root_pos: Tensor,
        root_rot: Tensor,
        root_vel: Tensor,
        root_ang_vel: Tensor,
        dof_pos: Tensor,
        dof_vel: Tensor,
    ) -> None:
        """:meth:`set_state` for the worlds where ``mask`` (N,) bool is set, from full-size (N, ...) state tensors
        (rows outside ``mask`` ignored). A GPU backend does it without waiting for the host."""

    def set_pd_targets(self, targets: Tensor) -> None:
        """(N, D) rad: PD position targets held during the following :meth:`step` calls."""

    def step(self, num_substeps: int) -> None:
        """Advance every world by ``num_substeps`` physics steps."""

    def qpos(self) -> Tensor:
        """(N, 7 + D): root position (3), root rotation wxyz (4), DoF positions (D)."""

    def qvel(self) -> Tensor:
        """(N, 6 + D): root linear velocity (3, world), root angular velocity (3, world), DoF velocities."""

    def root_state(self) -> Tensor:
        """(N, 13): root position (3), rotation wxyz (4), linear velocity (3), angular velocity (3), world."""

    def dof_pos(self) -> Tensor:
        """(N, D) rad."""

    def dof_vel(self) -> Tensor:
        """(N, D) rad/s."""

    def body_pos(self) -> Tensor:
        """(N, B, 3) m, body origins, world frame."""

    def body_rot(self) -> Tensor:
        """(N, B, 4) wxyz, world frame."""

    def body_vel(self) -> Tensor:
        """(N, B, 3) m/s, linear velocity of the body origins, world frame."""

    def body_ang_vel(self) -> Tensor:
        """(N, B, 3) rad/s, world frame."""

    def body_contact_force(self) -> Tensor:
        """(N, B, 3) N, net contact force on each body from the last physics step, world frame."""

    def object_qpos(self) -> Tensor:
        """(N, K): the scene objects' position coordinates in model order (a free joint: position m, rotation wxyz;
        a hinge: angle rad)."""

    def object_qvel(self) -> Tensor:
        """(N, Kv): the scene objects' velocity coordinates (a free joint: linear m/s world, angular rad/s local;
        a hinge: rad/s)."""

    def set_object_state(self, env_ids: Tensor, qpos: Tensor, qvel: Tensor) -> None:
        """Place the objects of worlds ``env_ids`` (M,): qpos (M, K), qvel (M, Kv); the humanoid is unchanged."""

    def object_contacts(self) -> Tensor:
        """(N, B) bool: humanoid bodies that touched a scene object in any physics step of the last :meth:`step`
        (all False after :meth:`set_state` and for the plain humanoid)."""

    def diverged(self) -> Tensor:
        """(N,) bool: worlds whose simulation blew up since their last :meth:`set_state`.

        A blow-up is a non-finite state, a speed beyond the backend's limit, or an engine-side reset
        for instability. Such worlds must be teleported with :meth:`set_state` before they are used.
        """

    def snapshot(self) -> dict:
        """The complete physics state of every world (enough to continue bit-identically after :meth:`restore`)."""

    def restore(self, state: dict) -> None:
        """Return every world to a :meth:`snapshot` of a backend with the same model and number of worlds."""
