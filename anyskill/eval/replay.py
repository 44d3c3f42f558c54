"""Replay of a recorded trajectory through MuJoCo's kinematics and collision detection, frame by frame.

A rollout stores the generalised coordinates of every frame (``qpos`` (T, 35 + K)); setting them in an ``MjData``
and calling ``mj_forward`` gives back what the simulation saw: the bodies' positions and every contact. The replay
model is a copy of the simulated one with two changes that only affect what is *measured*:

* every humanoid geom collides with every other humanoid geom (MuJoCo still skips a body's own geoms and
  parent-child pairs) — the training backends switch self-collision off, so the simulation lets limbs pass through
  each other, and the replay is where that shows;
* the floor planes get a contact margin of ``contact_tolerance``: MuJoCo then reports every humanoid geom closer to
  the floor than that, with its signed distance (``contact.dist``, negative inside the floor).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np

from anyskill.humanoid.model import HumanoidModel, load_humanoid

CONTACT_TOLERANCE = 0.02
"""m; a humanoid geom whose lowest point is closer to the floor than this touches the floor."""


@dataclass(frozen=True)
class Replay:
    """T frames of B humanoid bodies, as MuJoCo computes them from the recorded ``qpos``.

    body_names (B,); body_pos (T, B, 3) m, world frame; floor_clearance (T, B) m: the smallest signed distance
    between one of the body's geoms and a floor plane (negative: inside the floor), +inf when every geom of the body
    is farther than ``contact_tolerance``; self_depth (T,) m: the deepest interpenetration of two humanoid bodies in
    the frame (0 when none touch); self_pairs: the distinct (body, body) pairs that interpenetrated in some frame.
    """

    body_names: tuple[str, ...]
    body_pos: np.ndarray
    floor_clearance: np.ndarray
    self_depth: np.ndarray
    self_pairs: tuple[tuple[str, str], ...]
    contact_tolerance: float

    def body_ids(self, names: tuple[str, ...]) -> list[int]:
        return [self.body_names.index(n) for n in names]

    @property
    def on_floor(self) -> np.ndarray:
        """(T, B) bool: the body touches the floor (some geom within ``contact_tolerance`` of it)."""
        return self.floor_clearance <= self.contact_tolerance


def replay(qpos: np.ndarray, mj_model: mujoco.MjModel | None = None, model: HumanoidModel | None = None,
           contact_tolerance: float = CONTACT_TOLERANCE) -> Replay:
    """Replay ``qpos`` (T, nq) (root position m, root quaternion wxyz, hinge angles rad, then any objects'
    coordinates) in ``mj_model`` (default: the humanoid's own; a scene's ``Scene.mj_model()`` for a rollout in a
    scene). ``model``: the humanoid whose bodies are measured (default: the bundled one)."""
    model = model or load_humanoid()
    m = copy.deepcopy(mj_model if mj_model is not None else model.mj_model())
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.ndim != 2 or qpos.shape[1] != m.nq:
        raise ValueError(f"qpos must be (T, {m.nq}) for this model (humanoid + objects), got {qpos.shape}")
    bodies = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n) for n in model.body_names])
    if (bodies < 0).any():
        raise ValueError(f"the MuJoCo model lacks humanoid bodies {np.array(model.body_names)[bodies < 0].tolist()}")
    slot = np.full(m.nbody, -1)
    slot[bodies] = np.arange(len(bodies))
    geom_slot = slot[m.geom_bodyid]  # (ngeom,) humanoid body index of each geom, -1 for others
    floor = m.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
    if not floor.any():
        raise ValueError("the MuJoCo model has no floor plane")
    humanoid = geom_slot >= 0
    m.geom_contype[humanoid | floor] = 1
    m.geom_conaffinity[humanoid | floor] = 1
    m.geom_margin[floor] = contact_tolerance
    d = mujoco.MjData(m)

    t_count, b_count = len(qpos), len(bodies)
    body_pos = np.empty((t_count, b_count, 3))
    clearance = np.full((t_count, b_count), np.inf)
    self_depth = np.zeros(t_count)
    pairs: set[tuple[int, int]] = set()
    for t in range(t_count):
        d.qpos[:] = qpos[t]
        mujoco.mj_forward(m, d)
        body_pos[t] = d.xpos[bodies]
        geoms = d.contact.geom[: d.ncon]
        dist = d.contact.dist[: d.ncon]
        a, b = geom_slot[geoms[:, 0]], geom_slot[geoms[:, 1]]
        for body, is_floor in ((a, floor[geoms[:, 1]]), (b, floor[geoms[:, 0]])):
            hit = (body >= 0) & is_floor
            np.minimum.at(clearance[t], body[hit], dist[hit])
        own = (a >= 0) & (b >= 0) & (a != b) & (dist < 0)
        if own.any():
            self_depth[t] = -dist[own].min()
            pairs.update((int(min(i, j)), int(max(i, j))) for i, j in zip(a[own], b[own], strict=True))
    names = model.body_names
    return Replay(names, body_pos, clearance, self_depth,
                  tuple((names[i], names[j]) for i, j in sorted(pairs)), contact_tolerance)
