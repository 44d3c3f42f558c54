"""What a frame of this humanoid shows, measured from its body positions: the captioner of the domain model.

The domain model (:mod:`anyskill.domain.model`, "domain model of this humanoid, closed vocabulary — not
CLIP") is trained on renders paired with captions written by the rules here, and evaluated with the same rules: a
high-level policy trained on "raise both arms above the head" is judged by the fraction of its frames with both
hands above the head (:func:`measure_facts`).

Measurements are made in the **heading frame** (pelvis at the horizontal origin, x forward, y to the humanoid's
left, z up, m) from the 15 body positions and the root rotation; speed is the root's horizontal speed, m/s.

A frame's content is a set of **facts** (:data:`FACTS`, bits of an int64 mask): ``both_arms_up`` (both hands
0.1 m above the head), ``right_hand_raised`` (right hand above its shoulder, left hand below its own), ``deep_squat``,
``bent_forward``, ... plus one bit per bundled clip for clip descriptions. A caption names some facts
(:class:`Caption`); it **matches** a frame when all of its facts are true there — the positives of the
multi-positive InfoNCE loss of :mod:`anyskill.domain.train`.

Phrasings: every fact has several phrasings (:data:`PHRASES`); the last one of each, and the last sentence
templates, are **held out** of training (``split="heldout"``) to measure generalisation to unseen wordings. The
vocabulary is closed, so held-out phrasings are new combinations of words the training captions use; synonyms the
model never saw (:data:`OOV_PHRASES`, ``split="oov"``) measure what it cannot do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import load_humanoid

Tensor = torch.Tensor

FACTS: tuple[str, ...] = (
    "both_arms_up", "right_arm_up", "left_arm_up", "any_arm_up", "right_hand_raised", "left_hand_raised",
    "both_arms_forward", "right_arm_forward", "left_arm_forward", "arms_to_sides", "arms_down", "arms_crossed",
    "right_knee_up", "left_knee_up", "right_kick", "left_kick", "legs_apart", "half_squat", "deep_squat", "squat",
    "bent_forward", "walking", "running", "still", "standing_still", "fallen", "upright",
)
"""Measured facts, in bit order. Clip bits follow from bit :data:`CLIP_BIT0` on."""
FACT_BIT = {name: i for i, name in enumerate(FACTS)}
CLIP_BIT0 = 32
MAX_CLIPS = 31

# thresholds, m (heading frame) and m/s; calibrated on the bundled clips (see the model card)
HAND_ABOVE_HEAD = 0.10
ARM_REACH = 0.35  # horizontal reach of a hand from its shoulder for "forward" / "to the side"
SHOULDER_BAND = 0.25  # |hand height - shoulder height| for an arm held out at shoulder height
HAND_DOWN = 0.35  # hand this far below its shoulder: hanging
KNEE_UP = 0.22  # knee within this of the pelvis height: thigh near horizontal
KNEE_OVER_OTHER = 0.15  # ... and this much higher than the other knee
KICK_REACH, KICK_HEIGHT = 0.40, 0.30  # foot forward of the pelvis and above the ground
LEGS_APART = 0.50  # lateral distance between the feet
HALF_SQUAT, DEEP_SQUAT = 0.78, 0.62  # pelvis height above the lower foot, standing ~0.86
BENT_FORWARD_DEG = 35.0  # pelvis->head forward tilt from vertical
FALLEN_HEAD = 0.55  # head height above the ground
WALK_SPEED, RUN_SPEED = 0.35, 1.8


@dataclass(frozen=True)
class BodyIds:
    """Indices of the bodies the captioner reads, in :class:`~anyskill.humanoid.model.HumanoidModel` order."""

    pelvis: int
    torso: int
    head: int
    r_shoulder: int
    l_shoulder: int
    r_hand: int
    l_hand: int
    r_knee: int
    l_knee: int
    r_foot: int
    l_foot: int

    @classmethod
    def of_humanoid(cls) -> BodyIds:
        m = load_humanoid()
        names = ("pelvis", "torso", "head", "right_upper_arm", "left_upper_arm", "right_hand", "left_hand",
                 "right_shin", "left_shin", "right_foot", "left_foot")
        return cls(*m.body_indices(names))


def heading_frame(body_pos: Tensor, root_rot: Tensor) -> Tensor:
    """(N, B, 3) world body positions, (N, 4) wxyz root rotation -> (N, B, 3) in the heading frame (pelvis at the
    horizontal origin, x forward; heights unchanged)."""
    inv = rot.heading_quat_inverse(root_rot.to(body_pos.dtype))  # (N, 4)
    rel = body_pos.clone()
    rel[..., :2] -= body_pos[:, :1, :2]
    return rot.quat_rotate(inv[:, None].expand(-1, body_pos.shape[1], -1), rel)


def measure_quantities(body_pos: Tensor, root_rot: Tensor, root_vel: Tensor) -> dict[str, Tensor]:
    """Continuous measurements of N frames: body_pos (N, 15, 3) m, root_rot (N, 4) wxyz, root_vel (N, 3) m/s ->
    dict of (N,) tensors: heights (m) of hands over the head / shoulders, reaches (m), pelvis height over the lower
    foot (m), forward tilt (deg), horizontal speed (m/s), head height (m)."""
    ids = BodyIds.of_humanoid()
    p = heading_frame(body_pos.float(), root_rot.float())
    ground = torch.minimum(p[:, ids.r_foot, 2], p[:, ids.l_foot, 2]) - 0.08  # foot origins sit ~8 cm up
    head_z = p[:, ids.head, 2]
    q: dict[str, Tensor] = {"head_height": body_pos[:, ids.head, 2].float()}  # above the floor
    for side, hand, sh in (("right", ids.r_hand, ids.r_shoulder), ("left", ids.l_hand, ids.l_shoulder)):
        outward = -1.0 if side == "right" else 1.0
        q[f"{side}_hand_over_head"] = p[:, hand, 2] - head_z
        q[f"{side}_hand_over_shoulder"] = p[:, hand, 2] - p[:, sh, 2]
        q[f"{side}_hand_forward"] = p[:, hand, 0] - p[:, sh, 0]
        q[f"{side}_hand_outward"] = outward * (p[:, hand, 1] - p[:, sh, 1])
        q[f"{side}_hand_y"] = p[:, hand, 1]
        q[f"{side}_hand_x"] = p[:, hand, 0]
    for side, knee, foot in (("right", ids.r_knee, ids.r_foot), ("left", ids.l_knee, ids.l_foot)):
        q[f"{side}_knee_below_pelvis"] = p[:, ids.pelvis, 2] - p[:, knee, 2]
        q[f"{side}_knee_height"] = p[:, knee, 2] - ground
        q[f"{side}_foot_forward"] = p[:, foot, 0]
        q[f"{side}_foot_height"] = p[:, foot, 2] - ground
    q["feet_apart"] = (p[:, ids.r_foot, 1] - p[:, ids.l_foot, 1]).abs()
    q["pelvis_height"] = p[:, ids.pelvis, 2] - ground
    up = p[:, ids.head] - p[:, ids.pelvis]
    q["forward_tilt_deg"] = torch.rad2deg(torch.atan2(up[:, 0], up[:, 2]))
    q["chest_height"] = p[:, ids.torso, 2]
    q["shoulder_height"] = 0.5 * (p[:, ids.r_shoulder, 2] + p[:, ids.l_shoulder, 2])
    q["speed"] = root_vel[:, :2].float().norm(dim=-1)
    return q


def facts_from_quantities(q: dict[str, Tensor]) -> dict[str, Tensor]:
    """The boolean facts (N,) of :data:`FACTS` from :func:`measure_quantities`' output (thresholds above)."""
    f: dict[str, Tensor] = {}
    fallen = q["head_height"] < FALLEN_HEAD
    upright = ~fallen
    f["fallen"], f["upright"] = fallen, upright
    arm: dict[str, dict[str, Tensor]] = {}
    for side in ("right", "left"):
        at_shoulder = (q[f"{side}_hand_over_shoulder"]).abs() < SHOULDER_BAND
        arm[side] = {
            "up": upright & (q[f"{side}_hand_over_head"] > HAND_ABOVE_HEAD),
            "raised": upright & (q[f"{side}_hand_over_shoulder"] > 0.10),
            "forward": upright & at_shoulder & (q[f"{side}_hand_forward"] > ARM_REACH),
            "side": upright & at_shoulder & (q[f"{side}_hand_outward"] > ARM_REACH),
            "down": upright & (q[f"{side}_hand_over_shoulder"] < -HAND_DOWN) & (q[f"{side}_hand_forward"].abs() < 0.25),
        }
    r, lft = arm["right"], arm["left"]
    f["both_arms_up"] = r["up"] & lft["up"]
    f["right_arm_up"] = r["up"] & ~lft["up"]
    f["left_arm_up"] = lft["up"] & ~r["up"]
    f["any_arm_up"] = r["up"] | lft["up"]
    f["right_hand_raised"] = r["raised"] & ~lft["raised"]
    f["left_hand_raised"] = lft["raised"] & ~r["raised"]
    f["both_arms_forward"] = r["forward"] & lft["forward"]
    f["right_arm_forward"] = r["forward"] & ~lft["forward"]
    f["left_arm_forward"] = lft["forward"] & ~r["forward"]
    f["arms_to_sides"] = r["side"] & lft["side"]
    f["arms_down"] = r["down"] & lft["down"]
    chest = (q["right_hand_x"] > 0.08) & (q["left_hand_x"] > 0.08)
    height = (q["right_hand_over_shoulder"] < 0.05) & (q["left_hand_over_shoulder"] < 0.05) & \
        (q["right_hand_over_shoulder"] > -0.45) & (q["left_hand_over_shoulder"] > -0.45)
    crossed = (q["right_hand_y"] > q["left_hand_y"] - 0.05)  # each hand at or past the midline toward the other side
    f["arms_crossed"] = upright & chest & height & crossed
    for side, other in (("right", "left"), ("left", "right")):
        higher = q[f"{side}_knee_height"] - q[f"{other}_knee_height"] > KNEE_OVER_OTHER  # one knee up, not a squat
        f[f"{side}_knee_up"] = upright & (q[f"{side}_knee_below_pelvis"] < KNEE_UP) & higher
        kick = (q[f"{side}_foot_forward"] > KICK_REACH) & (q[f"{side}_foot_height"] > KICK_HEIGHT)
        f[f"{side}_kick"] = upright & kick
    f["legs_apart"] = upright & (q["feet_apart"] > LEGS_APART)
    upright_torso = q["forward_tilt_deg"].abs() < BENT_FORWARD_DEG
    f["deep_squat"] = upright & upright_torso & (q["pelvis_height"] < DEEP_SQUAT) & (q["pelvis_height"] > 0.2)
    f["half_squat"] = upright & upright_torso & (q["pelvis_height"] < HALF_SQUAT) & ~f["deep_squat"] & \
        (q["pelvis_height"] > 0.2)
    f["squat"] = f["deep_squat"] | f["half_squat"]
    f["bent_forward"] = upright & (q["forward_tilt_deg"] > BENT_FORWARD_DEG)
    f["walking"] = upright & (q["speed"] > WALK_SPEED) & (q["speed"] <= RUN_SPEED)
    f["running"] = upright & (q["speed"] > RUN_SPEED)
    f["still"] = upright & (q["speed"] < 0.15)
    legs_calm = ~(f["right_knee_up"] | f["left_knee_up"] | f["right_kick"] | f["left_kick"] | f["legs_apart"])
    f["standing_still"] = f["still"] & f["arms_down"] & legs_calm & ~f["squat"] & ~f["bent_forward"]
    return {name: f[name] for name in FACTS}


def measure_facts(body_pos: Tensor, root_rot: Tensor, root_vel: Tensor) -> dict[str, Tensor]:
    """Boolean facts (N,) of N frames: body_pos (N, 15, 3) m, root_rot (N, 4) wxyz, root_vel (N, 3) m/s."""
    return facts_from_quantities(measure_quantities(body_pos, root_rot, root_vel))


def fact_masks(facts: dict[str, Tensor], clip_ids: Tensor | None = None) -> Tensor:
    """(N,) int64 bit masks of the facts (bit i: :data:`FACTS`\\[i]) and, where ``clip_ids`` (N,) >= 0, the clip's bit
    :data:`CLIP_BIT0` + id."""
    n = next(iter(facts.values())).shape[0]
    mask = torch.zeros(n, dtype=torch.int64)
    for name, value in facts.items():
        mask |= value.to(torch.int64).cpu() << FACT_BIT[name]
    if clip_ids is not None:
        ids = clip_ids.cpu().long()
        if ids.numel() and int(ids.max()) >= MAX_CLIPS:
            raise ValueError(f"at most {MAX_CLIPS} clips have a caption bit")
        has = ids >= 0
        mask[has] |= torch.ones_like(ids[has]) << (CLIP_BIT0 + ids[has])
    return mask


def root_velocity(root_pos: Tensor, dt: float, starts: Tensor | None = None) -> Tensor:
    """(T, 3) m/s central differences of root positions (T, 3) m sampled every ``dt`` s; ``starts`` (T,) bool marks
    the first frame of each sequence (no difference is taken across a sequence boundary)."""
    t = root_pos.shape[0]
    if t < 2:
        return torch.zeros_like(root_pos)
    starts = torch.zeros(t, dtype=torch.bool) if starts is None else starts.clone()
    starts[0] = True
    ends = torch.roll(starts, -1)
    ends[-1] = True
    nxt = torch.where(ends[:, None], root_pos, torch.roll(root_pos, -1, 0))
    prv = torch.where(starts[:, None], root_pos, torch.roll(root_pos, 1, 0))
    steps = (~ends).float() + (~starts).float()
    return (nxt - prv) / (steps.clamp_min(1.0)[:, None] * dt)


# ---------------------------------------------------------------- phrasings
PHRASES: dict[str, tuple[str, ...]] = {
    # the last phrasing of each fact is held out of training
    "both_arms_up": ("both arms raised above the head", "raise both arms above the head", "both hands up over the head",
                     "arms stretched straight up", "hands up", "raising two arms overhead",
                     "two hands raised over the head"),
    "right_arm_up": ("right arm raised above the head", "raise the right arm", "right hand up over the head",
                     "only the right arm up", "right hand lifted high above the head"),
    "left_arm_up": ("left arm raised above the head", "raise the left arm", "left hand up over the head",
                    "only the left arm up", "left hand lifted high above the head"),
    "any_arm_up": ("one arm raised above the head", "a hand up over the head", "raise one hand",
                   "one hand lifted high"),
    "right_hand_raised": ("right hand raised", "wave with the right hand", "right hand up, left arm down",
                          "waving the right hand", "raising the right hand"),
    "left_hand_raised": ("left hand raised", "wave with the left hand", "left hand up, right arm down",
                         "waving the left hand", "raising the left hand"),
    "both_arms_forward": ("both arms stretched forward", "arms forward at shoulder height", "reach forward with both "
                          "arms", "both hands pointing forward"),
    "right_arm_forward": ("right arm stretched forward", "punch forward with the right fist", "right arm pointing "
                          "forward", "reach forward with the right arm"),
    "left_arm_forward": ("left arm stretched forward", "punch forward with the left fist", "left arm pointing forward",
                         "reach forward with the left arm"),
    "arms_to_sides": ("arms out to the sides", "arms spread wide like wings", "t pose", "stretch the arms sideways",
                      "both arms extended sideways"),
    "arms_down": ("arms down by the sides", "arms hanging down", "hands at the sides", "lower both arms",
                  "both arms relaxed at the sides"),
    "arms_crossed": ("arms crossed", "arms folded across the chest", "cross the arms", "crossing the arms",
                     "forearms crossed at the chest"),
    "right_knee_up": ("right knee raised", "lift the right knee", "right knee up high", "raising the right leg",
                      "right leg lifted to hip height"),
    "left_knee_up": ("left knee raised", "lift the left knee", "left knee up high", "raising the left leg",
                     "left leg lifted to hip height"),
    "right_kick": ("kicking with the right leg", "kick with the right leg", "right leg extended forward",
                   "a right front kick", "right leg kicking out in front"),
    "left_kick": ("kicking with the left leg", "kick with the left leg", "left leg extended forward",
                  "a left front kick", "left leg kicking out in front"),
    "legs_apart": ("legs apart", "feet wide apart", "standing with legs spread", "spread the legs",
                   "feet spread wide"),
    "half_squat": ("knees slightly bent", "a half squat", "bending the knees a little", "knees bent a little"),
    "deep_squat": ("a deep squat", "squat down", "squatting low", "hips low in a deep squat",
                   "squatting down low"),
    "squat": ("squatting", "squat", "knees bent, hips lowered", "crouch", "hips lowered, knees bent"),
    "bent_forward": ("torso bent forward", "bow", "bowing at the waist", "leaning forward", "bending over",
                     "body bent forward at the waist"),
    "walking": ("walking", "walk forward", "taking steps", "moving forward", "walking forward"),
    "running": ("running", "run", "running fast", "sprinting", "sprinting fast"),
    "still": ("not moving", "staying in place", "motionless", "staying motionless"),
    "standing_still": ("standing still", "stand still with arms down", "standing upright and relaxed",
                       "just standing", "standing relaxed with arms down"),
    "fallen": ("lying on the ground", "fallen down", "lie on the floor", "on the ground", "lying on the floor"),
    "upright": ("standing upright", "on its feet", "upright body", "upright on both feet"),
}
TEMPLATES: tuple[str, ...] = ("{x}", "a person, {x}", "the humanoid: {x}", "a humanoid robot with {x}",
                              "a person {x}", "the person, {x}", "a humanoid {x}")
"""Sentence templates; the last :data:`HELDOUT_TEMPLATES` are held out of training (their words are not)."""
HELDOUT_TEMPLATES = 2
OOV_PHRASES: dict[str, str] = {
    "both_arms_up": "both hands held high", "right_arm_up": "right fist thrust skyward",
    "left_arm_up": "left fist thrust skyward", "any_arm_up": "a single arm hoisted", "right_hand_raised":
    "lifting the right palm", "left_hand_raised": "lifting the left palm", "both_arms_forward": "both arms reaching "
    "ahead", "right_arm_forward": "right hand reaching ahead", "left_arm_forward": "left hand reaching ahead",
    "arms_to_sides": "arms outstretched horizontally", "arms_down": "arms dangling", "arms_crossed": "arms folded in "
    "front of the chest", "right_knee_up": "right thigh lifted", "left_knee_up": "left thigh lifted",
    "right_kick": "right foot kicking", "left_kick": "left foot kicking", "legs_apart": "a wide stance",
    "half_squat": "partly crouched", "deep_squat": "crouching all the way", "squat": "crouching",
    "bent_forward": "upper body tipped", "walking": "strolling", "running": "jogging quickly",
    "still": "holding still", "standing_still": "doing nothing", "fallen": "knocked over", "upright": "balanced",
}
"""Synonyms built mostly from words no training caption contains (``split="oov"``, template ``"someone, {x}"``): the
closed vocabulary maps them to the unknown token, so they measure the model's limit, not its skill."""
OOV_TEMPLATES: tuple[str, ...] = ("someone, {x}",)
FACT_WEIGHT = {"upright": 0.15, "still": 0.4, "any_arm_up": 0.6, "squat": 0.8}
"""Relative chance a true fact is mentioned (default 1): frequent, uninformative facts are mentioned less."""


@dataclass(frozen=True)
class Caption:
    """A caption and the facts it names (bit mask). It matches a frame whose mask has every one of these bits."""

    text: str
    mask: int
    kind: str  # "facts" | "clip" | "lexicon"


def phrase_split(name: str, split: str) -> tuple[str, ...]:
    """Phrasings of fact ``name`` for ``split``: "train" (all but the last), "heldout" (the last) or "oov"."""
    if split == "oov":
        return (OOV_PHRASES[name],)
    phrases = PHRASES[name]
    return phrases[:-1] if split == "train" else phrases[-1:]


def template_split(split: str) -> tuple[str, ...]:
    if split == "oov":
        return OOV_TEMPLATES
    return TEMPLATES[:-HELDOUT_TEMPLATES] if split == "train" else TEMPLATES[-HELDOUT_TEMPLATES:]


def caption_frame(mask: int, rng: np.random.Generator, split: str = "train", max_facts: int = 2) -> Caption | None:
    """A random caption of a frame with fact bit mask ``mask``: 1..``max_facts`` of its true facts in random phrasings
    of ``split``. None when the frame has no fact to mention."""
    true = [n for n in FACTS if mask >> FACT_BIT[n] & 1]
    if not true:
        return None
    w = np.array([FACT_WEIGHT.get(n, 1.0) for n in true])
    k = int(rng.integers(1, min(max_facts, len(true)) + 1))
    chosen = list(rng.choice(len(true), size=k, replace=False, p=w / w.sum()))
    names = [true[i] for i in sorted(chosen)]
    parts = [str(rng.choice(phrase_split(n, split))) for n in names]
    text = str(rng.choice(template_split(split))).format(x=" and ".join(parts))
    return Caption(text, sum(1 << FACT_BIT[n] for n in names), "facts")


LEXICON_FACTS: dict[str, tuple[str, ...]] = {
    "raise both arms": ("both_arms_up",), "raise the left arm": ("left_arm_up",),
    "raise the right arm": ("right_arm_up",), "raise one arm": ("any_arm_up",), "lower the arms": ("arms_down",),
    "cross the arms": ("arms_crossed",), "fly": ("arms_to_sides",), "stretch": ("arms_to_sides",),
    "celebrate": ("both_arms_up",), "squat": ("squat",), "bow": ("bent_forward",), "stand": ("standing_still",),
    "lie down": ("fallen",), "raise one leg": ("upright",), "wave": ("any_arm_up",),
    "lift overhead": ("both_arms_up",), "jumping jack": ("both_arms_up", "legs_apart"), "walk": ("walking",),
    "run": ("running",), "push": ("both_arms_forward",), "point": ("upright",),
}
"""Offline-lexicon activities (:data:`anyskill.text.lexicon.LEXICON`) whose pose description the captioner can check,
and the facts it asserts; the lexicon's description text is paired with frames having all of them."""


def lexicon_captions() -> list[Caption]:
    """The offline lexicon's pose descriptions as captions (only the activities in :data:`LEXICON_FACTS`)."""
    from anyskill.text.lexicon import LEXICON

    out = []
    for entry in LEXICON:
        names = LEXICON_FACTS.get(entry.activity)
        if names:
            out.append(Caption(entry.description, sum(1 << FACT_BIT[n] for n in names), "lexicon"))
    return out


def clip_caption(description: str, clip_id: int) -> Caption:
    """A clip's manifest description as a caption matching the frames of that clip."""
    return Caption(description, 1 << (CLIP_BIT0 + clip_id), "clip")


def matches(caption_masks: Tensor, frame_masks: Tensor) -> Tensor:
    """(P,) caption masks, (N,) frame masks (int64) -> (P, N) bool: every fact of the caption is true in the frame."""
    return (caption_masks[:, None] & frame_masks[None, :]) == caption_masks[:, None]
