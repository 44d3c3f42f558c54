"""Ten keyframed gesture clips for prompts that the bundled mocap clips do not cover.

Each clip is data: a list of :class:`~anyskill.motion.author.KeyPose` (angles in degrees, see the sign
conventions in :mod:`anyskill.motion.author`), a one-line description (the clip's text) and a category.
All clips are 30 fps, 2.5-4 s, inside the joint limits, with the soles on the ground.
"""

from __future__ import annotations

from dataclasses import dataclass

from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.motion.author import KeyPose, author_clip, mirrored
from anyskill.motion.clip import MotionClip

FPS = 30.0


def _both(right: dict[str, float], **centre: float) -> dict[str, float]:
    """A symmetric pose from its right-side angles plus centre DoFs (abdomen, neck), deg."""
    return {**right, **mirrored(right), **centre}


# Recurring poses, deg.
REST = {"right_shoulder_x": -4.0, "left_shoulder_x": 4.0, "right_elbow": -8.0, "left_elbow": -8.0}
GUARD = _both({"right_shoulder_x": 12.0, "right_shoulder_y": -50.0, "right_shoulder_z": 35.0, "right_elbow": -125.0})
FIGHT_LEGS = _both({"right_hip_y": -14.0, "right_knee": 24.0, "right_ankle_y": -10.0})


@dataclass(frozen=True)
class AuthoredSpec:
    """Key poses and text of one authored clip."""

    name: str
    description: str
    category: str
    keys: tuple[KeyPose, ...]
    loop: bool = False
    anchor: str | None = "feet"


def _idle_stand() -> AuthoredSpec:
    sway_left = {"right_hip_x": -2.5, "left_hip_x": -2.5, "right_ankle_x": 2.5, "left_ankle_x": 2.5}
    sway_right = {k: -v for k, v in sway_left.items()}
    inhale = {"abdomen_y": -2.0, "neck_y": -2.0, "right_shoulder_x": -6.0, "left_shoulder_x": 6.0}
    keys = (
        KeyPose(0.0, REST),
        KeyPose(1.0, {**REST, **inhale, **sway_left}),
        KeyPose(2.0, {**REST, "neck_z": 8.0}),
        KeyPose(3.0, {**REST, **inhale, **sway_right, "neck_z": -4.0}),
        KeyPose(4.0, REST),
    )
    return AuthoredSpec("idle_stand", "a person stands still, breathing and swaying slightly", "idle", keys, loop=True)


def _wave_right_hand() -> AuthoredSpec:
    # Upper arm out to the side, turned so that the bent forearm points up; the elbow swings the hand sideways.
    # neck_z < 0 glances towards the waving hand.
    arm = {"right_shoulder_x": -85.0, "right_shoulder_z": -80.0, "left_shoulder_x": 4.0, "left_elbow": -8.0,
           "neck_z": -10.0}
    keys = [KeyPose(0.0, REST), KeyPose(0.7, {**arm, "right_elbow": -75.0})]
    for i, t in enumerate((1.0, 1.3, 1.6, 1.9, 2.2)):
        keys.append(KeyPose(t, {**arm, "right_elbow": -40.0 if i % 2 == 0 else -105.0}))
    keys += [KeyPose(2.5, {**arm, "right_elbow": -75.0}), KeyPose(3.2, REST)]
    return AuthoredSpec("wave_right_hand", "a person waves hello with the right hand raised", "gesture", tuple(keys))


def _wave_both_hands() -> AuthoredSpec:
    arms = _both({"right_shoulder_x": -95.0, "right_shoulder_z": -80.0}, neck_y=-8.0)
    keys = [KeyPose(0.0, REST), KeyPose(0.7, {**arms, **_both({"right_elbow": -70.0})})]
    for i, t in enumerate((1.0, 1.3, 1.6, 1.9, 2.2)):
        keys.append(KeyPose(t, {**arms, **_both({"right_elbow": -35.0 if i % 2 == 0 else -100.0})}))
    keys += [KeyPose(2.5, {**arms, **_both({"right_elbow": -70.0})}), KeyPose(3.2, REST)]
    return AuthoredSpec("wave_both_hands", "a person waves both hands above the shoulders", "gesture", tuple(keys))


def _raise_both_arms() -> AuthoredSpec:
    # Overhead, shoulder x > 0 splays the right arm outwards (the abduction sign flips above the head).
    up = _both({"right_shoulder_x": 10.0, "right_shoulder_y": -170.0, "right_elbow": -5.0}, abdomen_y=-6.0,
               neck_y=-15.0)
    keys = (KeyPose(0.0, REST), KeyPose(1.1, up), KeyPose(1.9, up), KeyPose(3.0, REST))
    text = "a person raises both arms straight up over the head and lowers them"
    return AuthoredSpec("raise_both_arms", text, "gesture", keys)


def _squat() -> AuthoredSpec:
    # Soles flat: root pitch + hip y + knee + ankle y = 25 - 105 + 115 - 35 = 0.
    legs = {"right_hip_y": -105.0, "right_knee": 115.0, "right_ankle_y": -35.0}
    down = _both({**legs, "right_shoulder_y": -100.0, "right_elbow": -5.0}, abdomen_y=15.0, neck_y=-15.0)
    keys = (KeyPose(0.0, REST), KeyPose(1.2, down, root_pitch=25.0), KeyPose(1.7, down, root_pitch=25.0),
            KeyPose(3.0, REST))
    return AuthoredSpec("squat", "a person does a deep squat with the arms forward and stands back up", "gesture", keys)


def _bow() -> AuthoredSpec:
    # Pelvis pitched 25 deg, hips flexed 33 deg: the legs lean 8 deg back (hips behind the feet), feet flat.
    legs = {"right_hip_y": -33.0, "right_ankle_y": 8.0}
    bent = _both({**legs, "right_shoulder_y": -20.0, "right_elbow": -10.0}, abdomen_y=50.0, neck_y=10.0)
    keys = (
        KeyPose(0.0, REST),
        KeyPose(1.2, bent, root_pitch=25.0),
        KeyPose(2.0, bent, root_pitch=25.0),
        KeyPose(3.2, REST),
    )
    return AuthoredSpec("bow", "a person bows deeply at the waist and straightens up", "gesture", keys)


def _punch() -> AuthoredSpec:
    stance = {**GUARD, **FIGHT_LEGS}
    punch = {
        **stance,
        "right_shoulder_x": 8.0,
        "right_shoulder_y": -85.0,
        "right_shoulder_z": 0.0,
        "right_elbow": -4.0,
        "abdomen_z": 25.0,
        "neck_z": -20.0,
    }
    keys = (
        KeyPose(0.0, REST),
        KeyPose(0.6, stance),
        KeyPose(0.9, stance),
        KeyPose(1.2, punch),
        KeyPose(1.35, punch),
        KeyPose(1.75, stance),
        KeyPose(2.1, stance),
        KeyPose(2.7, REST),
    )
    text = "a person throws a straight right punch forward, guarding with the left"
    return AuthoredSpec("punch", text, "martial", keys)


def _kick() -> AuthoredSpec:
    shift = {"right_hip_x": -7.0, "left_hip_x": -7.0, "right_ankle_x": 7.0, "left_ankle_x": 7.0}
    bent = _both({"right_hip_y": -10.0, "right_knee": 14.0, "right_ankle_y": -4.0}, abdomen_y=-8.0)
    guard = {**GUARD, **shift, **bent}
    lift = {**guard, "right_hip_y": -38.0, "right_knee": 60.0, "right_ankle_y": -12.0}
    chamber = {**guard, "right_hip_y": -95.0, "right_knee": 105.0, "right_ankle_y": 20.0}
    extend = {**guard, "right_hip_y": -85.0, "right_knee": 5.0, "right_ankle_y": 30.0, "abdomen_y": -14.0}
    keys = (
        KeyPose(0.0, REST),
        KeyPose(0.45, guard),
        KeyPose(0.55, guard),
        KeyPose(0.8, lift),
        KeyPose(1.0, chamber),
        KeyPose(1.25, extend),
        KeyPose(1.4, extend),
        KeyPose(1.65, chamber),
        KeyPose(1.85, lift),
        KeyPose(2.1, guard),
        KeyPose(2.2, guard),
        KeyPose(2.7, REST),
    )
    text = "a person does a front kick with the right leg and puts it back down"
    return AuthoredSpec("kick", text, "martial", keys, anchor="left_foot")


def _arms_crossed() -> AuthoredSpec:
    # Right forearm over and in front of the left one; hands near the opposite elbows.
    right = {"right_shoulder_x": 2.0, "right_shoulder_y": -31.0, "right_shoulder_z": 69.0, "right_elbow": -85.0}
    left = {"left_shoulder_x": -2.0, "left_shoulder_y": -23.0, "left_shoulder_z": -73.0, "left_elbow": -80.0}
    crossed = {**right, **left}
    breathe = {**crossed, "abdomen_y": -2.0, "neck_y": -3.0}
    keys = (KeyPose(0.0, REST), KeyPose(1.0, crossed), KeyPose(2.0, breathe), KeyPose(3.0, crossed))
    return AuthoredSpec("arms_crossed", "a person folds the arms across the chest and stands", "gesture", keys)


def _jumping_jack() -> AuthoredSpec:
    dip = _both({"right_hip_y": -12.0, "right_knee": 22.0, "right_ankle_y": -10.0, "right_shoulder_x": -20.0})
    spread = _both(
        {"right_hip_x": -16.0, "right_ankle_x": 16.0, "right_knee": 6.0, "right_hip_y": -3.0, "right_ankle_y": -3.0,
         "right_shoulder_x": -165.0, "right_elbow": -10.0}
    )
    keys = []
    for rep in range(2):
        t0 = 1.5 * rep
        keys += [KeyPose(t0, REST), KeyPose(t0 + 0.35, dip), KeyPose(t0 + 0.75, spread), KeyPose(t0 + 1.15, dip)]
    keys.append(KeyPose(3.0, REST))
    text = "a person does jumping jacks, arms over the head and legs apart, then back"
    return AuthoredSpec("jumping_jack", text, "acrobatics", tuple(keys), loop=True)


SPECS = (
    _idle_stand,
    _wave_right_hand,
    _wave_both_hands,
    _raise_both_arms,
    _squat,
    _bow,
    _punch,
    _kick,
    _arms_crossed,
    _jumping_jack,
)


def authored_specs() -> list[AuthoredSpec]:
    """The key-pose definitions of all authored clips."""
    return [make() for make in SPECS]


def authored_clips(model: HumanoidModel | None = None) -> list[MotionClip]:
    """All authored clips as :class:`MotionClip` (30 fps; meta carries description and category)."""
    model = model or load_humanoid()
    return [
        author_clip(
            s.name, s.keys, FPS, description=s.description, loop=s.loop, model=model, category=s.category,
            anchor=s.anchor
        )
        for s in authored_specs()
    ]
