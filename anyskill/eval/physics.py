"""Physical plausibility of a motion, measured on its simulated trajectory (the "Physics" and "Smooth" columns of the
paper's user study, §4.2, as numbers).

Each metric is a function of arrays; :func:`physics_metrics` computes them all from a rollout's ``times`` and
``qpos`` through a :func:`anyskill.eval.replay.replay`:

* **foot sliding** (m/s): mean horizontal speed of a foot while it touches the floor;
* **ground penetration** (m): how deep the humanoid's lowest geom is inside the floor, per frame;
* **jerk** (m/s³): the third time derivative of the bodies' positions, and the fraction of frames in which some
  body's jerk exceeds :data:`HIGH_JERK`;
* **fall**: the env's fall rule (a body other than the feet touches the floor while some such body is below its
  termination height), at any frame; the fall rate of several rollouts is the fraction that fell;
* **self-collision**: the fraction of frames in which two humanoid bodies interpenetrate, and the deepest overlap.
"""

from __future__ import annotations

import mujoco
import numpy as np

from anyskill.eval.replay import CONTACT_TOLERANCE, Replay, replay
from anyskill.humanoid.model import CONTACT_BODIES, HumanoidModel, load_humanoid
from anyskill.sim.terms import termination_heights

HIGH_JERK = 2000.0
"""m/s³; a frame is high-jerk when some body's jerk exceeds this. About the 95th percentile of the per-frame maximum
over the bundled 30 Hz motion-capture clips (1402 frames of walking, running, hopping, dancing, cartwheels): one
captured human frame in 20 is above it. Finite-difference jerk grows with the frame rate; the value is for 30 Hz."""
TERMINATION_HEIGHT = 0.15
"""m; the env's default termination height (``anyskill.sim.env.EnvConfig.termination_height``)."""


def frame_interval(times: np.ndarray) -> float:
    """s, the constant interval of ``times`` (T,) s; raises when the frames are not evenly spaced."""
    steps = np.diff(np.asarray(times, dtype=np.float64))
    if len(steps) == 0 or steps.min() <= 0 or np.ptp(steps) > 1e-6 * steps.mean():
        raise ValueError(f"times must increase by a constant step (T >= 2), got steps {steps[:5]}...")
    return float(steps.mean())


def foot_sliding(times: np.ndarray, foot_pos: np.ndarray, in_contact: np.ndarray) -> float:
    """m/s, mean horizontal speed of the feet over the frame intervals in which the foot touches the floor at both
    ends. times (T,) s; foot_pos (T, F, 3) m; in_contact (T, F) bool. NaN when no foot touches the floor twice in a
    row (e.g. a jump)."""
    dt = frame_interval(times)
    speed = np.linalg.norm(np.diff(foot_pos[..., :2], axis=0), axis=-1) / dt  # (T-1, F)
    planted = in_contact[1:] & in_contact[:-1]
    return float(speed[planted].mean()) if planted.any() else float("nan")


def penetration_depth(floor_clearance: np.ndarray) -> np.ndarray:
    """(T,) m, depth of the humanoid's deepest point inside the floor per frame (0 above it), from the bodies'
    floor clearance (T, B) m (:attr:`Replay.floor_clearance`)."""
    return np.maximum(0.0, -floor_clearance.min(axis=1))


def jerk(times: np.ndarray, body_pos: np.ndarray) -> np.ndarray:
    """(T - 3, B) m/s³, the norm of the third finite difference of body_pos (T, B, 3) m at the constant interval of
    times (T,) s: |p[t+3] - 3 p[t+2] + 3 p[t+1] - p[t]| / dt³."""
    dt = frame_interval(times)
    return np.linalg.norm(np.diff(body_pos, n=3, axis=0), axis=-1) / dt**3


def high_jerk_fraction(body_jerk: np.ndarray, threshold: float = HIGH_JERK) -> float:
    """Fraction of frames of body_jerk (T', B) m/s³ in which some body's jerk exceeds ``threshold`` m/s³."""
    return float((body_jerk.max(axis=1) > threshold).mean())


def fall_frames(rep: Replay, model: HumanoidModel | None = None,
                termination_height: float = TERMINATION_HEIGHT) -> np.ndarray:
    """(T,) bool, the env's fall rule per frame (``anyskill.sim.terms.has_fallen``): a body other than the feet
    touches the floor and some body other than the feet is below its termination height (``termination_height``
    m, the head at least 0.15 m). Touching: a geom within the replay's contact tolerance of the floor."""
    model = model or load_humanoid()
    others = np.ones(len(rep.body_names), dtype=bool)
    others[rep.body_ids(CONTACT_BODIES)] = False
    heights = termination_heights(model, termination_height).numpy()
    low = rep.body_pos[..., 2] < heights
    return np.asarray((rep.on_floor & others).any(axis=1) & (low & others).any(axis=1))


def fall_rate(fell: list[bool] | np.ndarray) -> float:
    """Fraction of rollouts that fell (``physics_metrics(...)["fell"]`` of each)."""
    if len(fell) == 0:
        raise ValueError("fall_rate needs at least one rollout")
    return float(np.mean(np.asarray(fell, dtype=bool)))


def physics_metrics(times: np.ndarray, qpos: np.ndarray, mj_model: mujoco.MjModel | None = None,
                    contact_tolerance: float = CONTACT_TOLERANCE) -> dict[str, float | bool]:
    """Every plausibility metric of one trajectory: times (T,) s (constant step, T >= 4), qpos (T, nq) in
    ``mj_model`` (default the humanoid's; a scene's for a rollout in a scene).

    Keys: ``foot_sliding_m_s``, ``penetration_max_m``, ``penetration_mean_m``, ``jerk_mean_m_s3`` (over bodies and
    frames), ``high_jerk_fraction``, ``fell``, ``fall_time_s`` (first fallen frame, NaN if none),
    ``self_collision_fraction`` (frames with two bodies interpenetrating), ``self_collision_max_m`` (deepest
    overlap), ``self_collision_pairs`` (how many distinct body pairs overlapped).
    """
    if len(times) != len(qpos) or len(times) < 4:
        raise ValueError(f"need T >= 4 frames of times and qpos, got {len(times)} and {len(qpos)}")
    rep = replay(qpos, mj_model, contact_tolerance=contact_tolerance)
    feet = rep.body_ids(CONTACT_BODIES)
    depth = penetration_depth(rep.floor_clearance)
    body_jerk = jerk(times, rep.body_pos)
    fallen = fall_frames(rep)
    return {
        "foot_sliding_m_s": foot_sliding(times, rep.body_pos[:, feet], rep.on_floor[:, feet]),
        "penetration_max_m": float(depth.max()),
        "penetration_mean_m": float(depth.mean()),
        "jerk_mean_m_s3": float(body_jerk.mean()),
        "high_jerk_fraction": high_jerk_fraction(body_jerk),
        "fell": bool(fallen.any()),
        "fall_time_s": float(times[int(np.argmax(fallen))]) if fallen.any() else float("nan"),
        "self_collision_fraction": float((rep.self_depth > 0).mean()),
        "self_collision_max_m": float(rep.self_depth.max()),
        "self_collision_pairs": len(rep.self_pairs),
    }
