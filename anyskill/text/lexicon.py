"""The offline enhancer: common activity words rewritten as body-part descriptions from a small curated lexicon.

Used when no LLM is configured (paper §4.3 used GPT-4). Each :class:`LexiconEntry` names an activity, the phrases
that trigger it and one description of a single, recognisable pose of that activity, written for a CLIP image
model looking at one rendered frame: which body parts, where, bent or straight. The three pairs of the paper's
Fig. 6 are entries as published ("wave hi" -> "raised arm bent at the elbow", "Waltz dance" -> "left foot step
backward, right hand extends", "kick" -> "left leg forward, right leg retreats").

Matching is on whole words, case- and punctuation-insensitive; the longest trigger wins where triggers overlap
("raise both arms" before "raise"), and up to :data:`MAX_ACTIVITIES` descriptions are joined in the order their
activities appear in the prompt. A prompt without any trigger is kept as given (the note says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from anyskill.text.clip_context import fit_clip_context
from anyskill.text.enhancer import Enhancement, check_prompt

MAX_ACTIVITIES = 3


@dataclass(frozen=True)
class LexiconEntry:
    """An activity, its trigger phrases (lower case, whole words) and the pose description that replaces them."""

    activity: str
    triggers: tuple[str, ...]
    description: str


def _entry(activity: str, triggers: str, description: str) -> LexiconEntry:
    return LexiconEntry(activity, tuple(t.strip() for t in triggers.split("|")), description)


LEXICON: tuple[LexiconEntry, ...] = (
    # the paper's Fig. 6 pairs, verbatim
    _entry("wave", "wave hi|wave hello|wave goodbye|say hi|say hello|wave|waves|waving|waved|hi|hello|hey|greet|"
           "greets|greeting|goodbye", "raised arm bent at the elbow"),
    _entry("waltz", "waltz dance|dance a waltz|dance the waltz|waltz|waltzes|waltzing",
           "left foot step backward, right hand extends"),
    _entry("kick", "kick forward|kick it forward|kick|kicks|kicking|kicked", "left leg forward, right leg retreats"),
    # arms
    _entry("raise both arms", "raise both arms|raise two arms|raise arms|raise your arms|raises both arms|"
           "put hands up|put your hands up|put up two hands|put up both hands|hands up|raise both hands",
           "both arms raised straight above the head"),
    _entry("raise the left arm", "raise the left hand|raise left hand|raises the left hand|raise the left arm|"
           "raise left arm", "left arm raised straight above the head, right arm down"),
    _entry("raise the right arm", "raise the right hand|raise right hand|raises the right hand|raise the right arm|"
           "raise right arm", "right arm raised straight above the head, left arm down"),
    _entry("raise one arm", "raise one arm|raise one hand|put up one hand|put up your hand|raise a hand|"
           "raise your hand|raise hand|arm lift", "one arm raised straight above the head, other arm down"),
    _entry("lower the arms", "put hands down|put your hands down|lower arms|lower your arms|arms down|hands down",
           "both arms hanging straight down at the sides"),
    _entry("cross the arms", "cross arms|cross your arms|crossed arms|arms crossed|fold arms|folded arms|"
           "fold one arm over the other", "forearms folded across the chest"),
    _entry("clap", "clap|claps|clapping|applaud|applauds", "hands pressed together in front of the chest"),
    _entry("arm circles", "big circles|circles in the air|arm circles|circle the arms",
           "both arms stretched out, hands drawing large circles in the air"),
    _entry("fly", "flying motion|fly|flies|flying|flap|flaps|flapping",
           "arms spread wide to the sides like wings"),
    _entry("point", "point|points|pointing",
           "one arm extended straight forward at shoulder height"),
    _entry("salute", "salute|salutes|saluting", "right hand raised to the forehead, elbow out to the side"),
    _entry("shrug", "shrug|shrugs|shrugging", "shoulders raised, elbows bent, palms turned up"),
    _entry("celebrate", "celebrate|celebrates|celebrating|cheer|cheers|cheering",
           "both fists raised above the head, chest lifted"),
    _entry("stretch", "stretch|stretches|stretching|stretching out his arms",
           "arms stretched out wide to the sides, legs straight"),
    # striking and throwing
    _entry("punch", "punch|punches|punching|box|boxing|jab|jabs",
           "one fist thrust straight forward at shoulder height, other fist at the chin"),
    _entry("throw", "throw a ball|throw|throws|throwing",
           "throwing arm drawn back behind the head, other arm pointing forward"),
    _entry("golf swing", "golf swing|swing a golf club|golf", "both hands together over the back shoulder, torso "
           "twisted"),
    # locomotion
    _entry("walk", "walk forward|move forward|step forward|walk|walks|walking|stroll|strolling",
           "one leg stepping forward, opposite arm swinging forward, upright torso"),
    _entry("walk in a circle", "walk in a circle|walks in a circle|turn around|turn left|turn right|turn|turns|"
           "spin|spins|spinning", "body turned sideways, one foot crossing in front of the other"),
    _entry("run", "run|runs|running|sprint|sprints|sprinting|jog|jogs|jogging",
           "one knee lifted high, opposite arm swinging forward, torso leaning forward"),
    _entry("jump", "jump forward|jump up|jump|jumps|jumping|leap|leaps|leaping",
           "both feet off the ground, knees bent, arms swung upward"),
    _entry("jumping jack", "jumping jack|jumping jacks|star jump",
           "arms raised overhead and legs spread wide apart in a star shape"),
    _entry("hop", "hop on one foot|hop|hops|hopping", "standing on one bent leg, other foot lifted off the ground"),
    _entry("climb", "climb|climbs|climbing", "one knee raised high, both arms reaching up above the head"),
    _entry("crawl", "crawl|crawls|crawling", "hands and knees on the ground, back flat"),
    _entry("swim", "swim|swims|swimming", "arms stretched forward, body leaning forward, one arm circling back"),
    _entry("skate", "skateboarding|skateboard|skate|skates|skating",
           "knees bent, arms out to the sides, one foot pushing back"),
    # legs and whole body
    _entry("raise one leg", "raise one leg|lift one leg|stand on one leg|balance on one leg|one foot off-ground|"
           "one foot off the ground", "standing on one straight leg, other knee lifted to hip height"),
    _entry("stand", "stand up|stand still|stand|stands|standing", "upright body, legs straight, arms relaxed at the "
           "sides"),
    _entry("sit", "sit down|sit|sits|sitting", "hips lowered, knees bent at right angles, torso upright"),
    _entry("squat", "squat|squats|squatting|crouch|crouches|crouching",
           "deep knee bend with hips low, thighs level, arms forward"),
    _entry("kneel", "kneel down|kneeling down|kneel|kneels|kneeling",
           "one knee on the ground, other leg bent in front, torso upright"),
    _entry("bow", "bow at right angle|take a bow|takes a bow|bow|bows|bowing",
           "torso bent forward at the hips, head lowered, legs straight"),
    _entry("touch the ground", "hands touching the ground|touch the ground|touch your toes|touch toes",
           "torso folded forward, straight legs, fingertips touching the ground"),
    _entry("pick up", "picks something up|pick something up|pick up|picks up|picking up",
           "torso bent forward, knees bent, both hands reaching down to the ground"),
    _entry("lift overhead", "lifts something heavy|lift something heavy|lift weights|lifts|lift|lifting",
           "both arms locked straight overhead, legs apart and slightly bent"),
    _entry("push", "push|pushes|pushing|shove", "both arms extended forward at chest height, body leaning forward"),
    _entry("pull", "pull|pulls|pulling|tug", "both arms reaching forward, body leaning back, front foot braced"),
    _entry("open the door", "open the door|open a door|open|opens|opening",
           "one arm reaching forward at waist height, body leaning forward"),
    _entry("lie down", "lie down|lies down|lying down|lie|lying|fall down", "body lying flat on the back on the "
           "ground"),
    _entry("yoga", "do yoga|yoga pose|yoga", "standing on one leg, other foot against the knee, palms together above "
           "the head"),
    _entry("dance", "dance with arms|dance|dances|dancing", "arms raised and swinging, hips turned, one foot "
           "stepping to the side"),
    _entry("cartwheel", "cartwheel|cartwheels", "upside down on both hands, legs spread wide in the air"),
    _entry("backflip", "backflip|back flip|backflips|somersault|flip", "body tucked in the air, knees pulled to the "
           "chest"),
)


def _words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters, digits, apostrophes and inner hyphens)."""
    return re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text.lower())


class OfflineEnhancer:
    """Rewrites the activity words of a prompt into body-part descriptions from :data:`LEXICON` (module
    docstring); no network."""

    kind = "offline"
    model = "offline"

    def __init__(self, lexicon: tuple[LexiconEntry, ...] = LEXICON, max_activities: int = MAX_ACTIVITIES):
        if max_activities < 1:
            raise ValueError(f"max_activities must be >= 1, got {max_activities}")
        seen: dict[str, str] = {}
        for entry in lexicon:
            for trigger in entry.triggers:
                key = " ".join(_words(trigger))
                if key != trigger or not key:
                    raise ValueError(f"lexicon trigger {trigger!r} of {entry.activity!r} must be lower-case words")
                if key in seen:
                    raise ValueError(f"lexicon trigger {trigger!r} is in both {seen[key]!r} and {entry.activity!r}")
                seen[key] = entry.activity
        self.lexicon = lexicon
        self.max_activities = max_activities
        self._triggers = sorted(((tuple(t.split()), i) for i, e in enumerate(lexicon) for t in e.triggers),
                                key=lambda ti: -len(ti[0]))

    @property
    def description(self) -> str:
        return f"offline (lexicon of {len(self.lexicon)} activities, anyskill.text.lexicon)"

    def matches(self, prompt: str) -> list[LexiconEntry]:
        """The entries whose triggers occur in ``prompt``, in order of appearance, longest trigger first where
        triggers overlap, each entry once."""
        words = _words(prompt)
        taken = [False] * len(words)
        found: list[tuple[int, int]] = []  # (start word, entry index)
        for trigger, index in self._triggers:
            n = len(trigger)
            for start in range(len(words) - n + 1):
                if tuple(words[start:start + n]) == trigger and not any(taken[start:start + n]):
                    taken[start:start + n] = [True] * n
                    found.append((start, index))
        ordered = dict.fromkeys(index for _, index in sorted(found))
        return [self.lexicon[i] for i in ordered]

    def enhance(self, prompt: str) -> Enhancement:
        text = check_prompt(prompt)
        entries = self.matches(text)[: self.max_activities]
        if not entries:
            return Enhancement(prompt, text, "offline", "offline", note="no lexicon entry matched; prompt kept")
        enhanced = fit_clip_context(", ".join(e.description for e in entries))
        return Enhancement(prompt, enhanced, "offline", "offline",
                           note="lexicon: " + ", ".join(e.activity for e in entries))
