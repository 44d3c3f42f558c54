"""The humanoid as the rest of the library sees it: names, tree, limits, gains and the PD action map.

Everything is read from the MJCF (``anyskill/assets/humanoid.xml`` by default), so sizes are never
hard-coded: a different humanoid with the same conventions (hinges declared x, y, z per 3-DoF joint)
works unchanged.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "assets"
HUMANOID_XML = ASSETS / "humanoid.xml"

KEY_BODIES = ("right_hand", "left_hand", "right_foot", "left_foot")
"""Bodies whose root-relative positions enter the AMP observation (reference facts §1.5)."""
CONTACT_BODIES = ("right_foot", "left_foot")
"""Bodies allowed to touch the ground without counting as a fall (§2.5)."""


@dataclass(frozen=True)
class Joint:
    """A group of hinges moving one body: 3 for ball-like joints (x, y, z), 1 for elbows/knees."""

    name: str
    body: int  # index into HumanoidModel.body_names
    dofs: tuple[int, ...]  # indices into the 28-D DoF vector


@dataclass(frozen=True, eq=False)
class HumanoidModel:
    """Static description of the articulated humanoid.

    Arrays are numpy; angles in rad, lengths in m. ``B`` bodies (15), ``D`` hinge DoFs (28).
    """

    xml_path: Path
    body_names: tuple[str, ...]  # (B,) depth-first order; 0 is the root (pelvis)
    parents: np.ndarray  # (B,) int, -1 for the root
    offsets: np.ndarray  # (B, 3) m, body origin in the parent frame (root: spawn position in XML)
    dof_names: tuple[str, ...]  # (D,)
    dof_body: np.ndarray  # (D,) body index each hinge moves
    dof_axis: np.ndarray  # (D, 3) hinge axis in the body frame
    dof_lower: np.ndarray  # (D,) rad
    dof_upper: np.ndarray  # (D,) rad
    kp: np.ndarray  # (D,) N m / rad
    kd: np.ndarray  # (D,) N m s / rad
    joints: tuple[Joint, ...]
    timestep: float  # s, physics step
    total_mass: float  # kg
    spawn_height: float = 0.89  # m, root height of the default standing pose (§1.1)

    @property
    def num_bodies(self) -> int:
        return len(self.body_names)

    @property
    def num_dofs(self) -> int:
        return len(self.dof_names)

    def body_index(self, name: str) -> int:
        try:
            return self.body_names.index(name)
        except ValueError:
            raise KeyError(f"no body named {name!r}; bodies are {self.body_names}") from None

    def body_indices(self, names) -> list[int]:
        return [self.body_index(n) for n in names]

    @property
    def key_body_ids(self) -> list[int]:
        return self.body_indices(KEY_BODIES)

    @property
    def contact_body_ids(self) -> list[int]:
        return self.body_indices(CONTACT_BODIES)

    @functools.cached_property
    def pd_offset_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """PD target = offset + scale * a for actions a in [-1, 1] (reference facts §1.3); the env applies it
        (:meth:`anyskill.sim.env.HumanoidEnv.action_to_pd_target`).

        3-DoF joints: offset 0, scale = min(1.2 * max |limit| over the joint's axes, pi) on every axis.
        1-DoF joints: offset = mid-range, scale = 0.7 * (upper - lower).
        """
        offset = np.zeros(self.num_dofs)
        scale = np.zeros(self.num_dofs)
        for joint in self.joints:
            idx = list(joint.dofs)
            lo, hi = self.dof_lower[idx], self.dof_upper[idx]
            if len(idx) == 1:
                offset[idx] = 0.5 * (lo + hi)
                scale[idx] = 0.7 * (hi - lo)
            else:
                scale[idx] = min(1.2 * float(np.max(np.abs(np.concatenate([lo, hi])))), math.pi)
        return offset, scale

    @property
    def rest_action(self) -> np.ndarray:
        """(D,) the action whose PD targets are all zero (the straight standing pose): -offset / scale."""
        offset, scale = self.pd_offset_scale
        return -offset / scale

    def mj_model(self) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_path(str(self.xml_path))


def load_humanoid(xml_path: str | Path | None = None) -> HumanoidModel:
    """Read a :class:`HumanoidModel` from an MJCF file (default: the bundled humanoid)."""
    path = Path(xml_path) if xml_path is not None else HUMANOID_XML
    return _load_cached(str(path.resolve()))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> HumanoidModel:
    m = mujoco.MjModel.from_xml_path(path)
    # Bodies of the articulated tree rooted at the first body with a free joint.
    free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if not free:
        raise ValueError(f"{path}: the humanoid needs a free joint on its root body")
    root = int(m.jnt_bodyid[free[0]])
    bodies = [b for b in range(m.nbody) if _is_descendant(m, b, root)]
    local = {b: i for i, b in enumerate(bodies)}
    parents = np.array([-1 if b == root else local[int(m.body_parentid[b])] for b in bodies])
    offsets = np.array([m.body_pos[b] for b in bodies], dtype=np.float64)
    if not np.allclose([m.body_quat[b] for b in bodies], [1, 0, 0, 0]):
        raise ValueError(f"{path}: bodies must have identity rest orientation (no quat/euler on <body>)")

    hinges = [j for j in range(m.njnt)
              if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and int(m.jnt_bodyid[j]) in local]
    hinges.sort(key=lambda j: m.jnt_qposadr[j])
    dof_names = tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in hinges)
    dof_body = np.array([local[int(m.jnt_bodyid[j])] for j in hinges])
    dof_axis = np.array([m.jnt_axis[j] for j in hinges], dtype=np.float64)
    lower = np.array([m.jnt_range[j][0] for j in hinges], dtype=np.float64)
    upper = np.array([m.jnt_range[j][1] for j in hinges], dtype=np.float64)

    kp = np.zeros(len(hinges))
    kd = np.zeros(len(hinges))
    for a in range(m.nu):
        j = int(m.actuator_trnid[a][0])
        if j in hinges:
            k = hinges.index(j)
            kp[k] = m.actuator_gainprm[a][0]
            kd[k] = -m.actuator_biasprm[a][2]

    joints = []
    for b_local in range(len(bodies)):
        dofs = tuple(int(i) for i in np.nonzero(dof_body == b_local)[0])
        if dofs:
            name = dof_names[dofs[0]].rsplit("_", 1)[0] if len(dofs) > 1 else dof_names[dofs[0]]
            joints.append(Joint(name=name, body=b_local, dofs=dofs))

    return HumanoidModel(
        xml_path=Path(path),
        body_names=tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in bodies),
        parents=parents,
        offsets=offsets,
        dof_names=dof_names,
        dof_body=dof_body,
        dof_axis=dof_axis,
        dof_lower=lower,
        dof_upper=upper,
        kp=kp,
        kd=kd,
        joints=tuple(joints),
        timestep=float(m.opt.timestep),
        total_mass=float(sum(m.body_mass[b] for b in bodies)),
    )


def _is_descendant(m: mujoco.MjModel, body: int, root: int) -> bool:
    while body != 0:
        if body == root:
            return True
        body = int(m.body_parentid[body])
    return False
