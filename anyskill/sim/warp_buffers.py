"""Contact and constraint buffers of a MuJoCo Warp ``Data`` (:class:`~anyskill.sim.warp_backend.WarpBackend`).

MuJoCo Warp preallocates ``nconmax`` contacts and ``njmax`` constraint rows per world; what does not fit is dropped,
which silently changes the physics. :func:`contact_buffer_sizes` computes the model's worst case pair by pair, and
:data:`BUFFER_OVERFLOWS` names the overflow bits that mean something was dropped. The contact pool holds ``nconmax * N``
entries shared by all worlds; oversized buffers cost time (kernels launch over them): smaller ``nconmax``/``njmax``
trade safety for speed (64 worlds on Warp's CPU device: 1,610 physics steps/s with the worst case, 2,070 with 64/256).
"""

from __future__ import annotations

import dataclasses

import mujoco
import mujoco_warp as mjw

BUFFER_OVERFLOWS = (
    mjw.OverflowType.NEFC
    | mjw.OverflowType.NJMAX_NNZ
    | mjw.OverflowType.BROADPHASE
    | mjw.OverflowType.NARROWPHASE
    | mjw.OverflowType.CCD
)
"""Overflow bits of ``Data.overflow`` that mean dropped contacts or constraint rows."""

_G = mjw.GeomType
_MAX_CONTACTS_PER_PAIR = {
    frozenset({_G.PLANE, _G.SPHERE}): 1,
    frozenset({_G.PLANE, _G.CAPSULE}): 2,
    frozenset({_G.PLANE, _G.ELLIPSOID}): 1,
    frozenset({_G.PLANE, _G.CYLINDER}): 4,
    frozenset({_G.PLANE, _G.BOX}): 8,  # every corner below the plane (MuJoCo C keeps at most 4)
    frozenset({_G.SPHERE}): 1,
    frozenset({_G.SPHERE, _G.CAPSULE}): 1,
    frozenset({_G.SPHERE, _G.CYLINDER}): 1,
    frozenset({_G.SPHERE, _G.BOX}): 1,
    frozenset({_G.CAPSULE}): 2,
    frozenset({_G.CAPSULE, _G.BOX}): 2,
    frozenset({_G.BOX}): 8,
}
"""Most contacts MuJoCo Warp's primitive colliders emit for a geom pair; other pairs: ``mjMAXCONPAIR``."""


@dataclasses.dataclass(frozen=True)
class ContactBufferSizes:
    """Per-world buffer sizes of a MuJoCo Warp ``Data``."""

    nconmax: int
    """contacts per world (the pool holds ``nconmax * num_envs``)."""
    njmax: int
    """constraint rows per world (contacts, joint limits, friction loss, equalities, tendon limits)."""


def contact_buffer_sizes(mj_model: mujoco.MjModel, mjw_model: mjw.Model) -> ContactBufferSizes:
    """Worst-case contact and constraint-row counts of one world, pair by pair.

    Contacts: for every geom pair that passes MuJoCo's collision filter (``mjw_model`` holds the
    filtered pair list), the most contacts its collider emits (:data:`_MAX_CONTACTS_PER_PAIR`).
    Rows: each contact with contact dimension c takes ``2 (c - 1)`` rows in a pyramidal cone (1 when
    c = 1), ``c`` in an elliptic one; each limited joint or tendon 1 row, each DoF with friction loss 1,
    each equality constraint at most 6.
    """
    pairs = mjw_model.nxn_geom_pair_filtered.numpy()
    pair_ids = mjw_model.nxn_pairid_filtered.numpy()[:, 0]  # >= 0: explicit <pair>, -1: filter, -2: sensor only
    contact = pair_ids >= -1
    pyramidal = mj_model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    ncon = nrows = 0
    for (g1, g2), pid in zip(pairs[contact], pair_ids[contact], strict=True):
        kinds = frozenset({int(mj_model.geom_type[g1]), int(mj_model.geom_type[g2])})
        n = _MAX_CONTACTS_PER_PAIR.get(kinds, mujoco.mjMAXCONPAIR)
        condim = int(mj_model.pair_dim[pid]) if pid >= 0 else max(mj_model.geom_condim[g1], mj_model.geom_condim[g2])
        rows = (2 * (condim - 1) if condim > 1 else 1) if pyramidal else condim
        ncon += n
        nrows += n * rows
    nrows += int(mj_model.jnt_limited.sum()) + int(mj_model.tendon_limited.sum())
    nrows += int((mj_model.dof_frictionloss > 0).sum()) + 6 * mj_model.neq
    return ContactBufferSizes(nconmax=max(int(ncon), 1), njmax=max(int(nrows), 1))
