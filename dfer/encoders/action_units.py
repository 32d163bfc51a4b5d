"""Face actions in FACS terms: MediaPipe's ARKit blendshapes as action units (AUs) and in plain words, and the
EMFACS emotion prototypes they match.

**One table, `ACTIONS`.** Each blendshape, its left and right halves merged into one action, gives the FACS action
unit it stands for and words a person reads. The AUs follow Melinda Ozel's "ARKit to FACS" cheat sheet
(https://melindaozel.com/arkit-to-facs-cheat-sheet, its quick table), checked against Apple's definition of each
shape (`ARFaceAnchor.BlendShapeLocation`, https://developer.apple.com/documentation/arkit/arfaceanchor/blendshapelocation)
and the AU names of the FACS manual (Ekman, Friesen & Hager 2002). A shape no single AU means (the lips moved
sideways, the eyes looking in or out) has no AU. AU23 (lip tightener) has no ARKit shape, so no blendshape gives it.

**Left and right merge by the larger** of the two, per frame: FACS scores an action present when it shows on either
side (a one-sided one is coded with L or R), so a one-sided smile is a smile at its own strength, not at half.

**Prototypes, `PROTOTYPES`:** the EMFACS-7 predictions of Friesen & Ekman (1983, "EMFACS-7: Emotional Facial Action
Coding System", unpublished manual, University of California), as tabulated in the literature, e.g. the emotions
table of Wikipedia's "Facial Action Coding System" article: happiness 6+12, sadness 1+4+15, surprise 1+2+5B+26, fear
1+2+4+5+7+20+26 (some copies of the table leave out 7), anger 4+5+7+23, disgust
9+15+16, contempt R12A+R14A. Intensity letters are not used; contempt's R (one side only) is read as the difference
between the sides. A prototype's **match** is the mean intensity (0..1) of its AUs that a blendshape gives (anger:
4, 5 and 7; AU23 has none): how far the face shows that prototype, 1 when every action is at full strength.
Neutral has no actions: its match is 1 minus the best match of the others (a face that shows none of them).
"""

from __future__ import annotations

import torch

from dfer.encoders.face_actions import BLENDSHAPES

# merged action (a blendshape without Left/Right) -> (its FACS AU or None, what it looks like in words)
ACTIONS: dict[str, tuple[int | None, str]] = {
    "browInnerUp": (1, "inner brows raised"),
    "browOuterUp": (2, "outer brows raised"),
    "browDown": (4, "brows lowered"),
    "eyeWide": (5, "upper lids raised (eyes wide)"),
    "cheekSquint": (6, "cheeks raised"),
    "eyeSquint": (7, "lids tightened"),
    "mouthClose": (8, "lips closed over an open jaw"),
    "noseSneer": (9, "nose wrinkled"),
    "mouthUpperUp": (10, "upper lip raised"),
    "mouthSmile": (12, "lip corners pulled up (smile)"),
    "mouthDimple": (14, "dimpled lip corners"),
    "mouthFrown": (15, "lip corners pulled down"),
    "mouthLowerDown": (16, "lower lip pulled down"),
    "mouthShrugLower": (17, "chin raised"),
    "mouthShrugUpper": (None, "upper lip pushed up"),
    "mouthPucker": (18, "lips puckered"),
    "mouthStretch": (20, "lips stretched sideways"),
    "mouthFunnel": (22, "lips funnelled"),
    "mouthPress": (24, "lips pressed together"),
    "mouthRollLower": (28, "lower lip sucked in"),
    "mouthRollUpper": (28, "upper lip sucked in"),
    "jawOpen": (26, "jaw dropped"),
    "jawForward": (29, "jaw thrust forward"),
    "jawLeft": (30, "jaw moved to the left"),
    "jawRight": (30, "jaw moved to the right"),
    "cheekPuff": (34, "cheeks puffed"),
    "eyeBlink": (45, "eyes closed (blink)"),
    "eyeLookUp": (63, "eyes looking up"),
    "eyeLookDown": (64, "eyes looking down"),
    "eyeLookIn": (None, "eyes looking in"),
    "eyeLookOut": (None, "eyes looking out"),
    "mouthLeft": (None, "mouth moved to the left"),
    "mouthRight": (None, "mouth moved to the right"),
}

# emotion -> the AUs of its EMFACS prototype (module docstring); contempt's are one-sided
PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 7, 20, 26),
    "anger": (4, 5, 7, 23),
    "disgust": (9, 15, 16),
    "contempt": (12, 14),
}
ONE_SIDED = {"contempt"}
EMOTIONS = ("neutral", *PROTOTYPES)  # the prototype scores' order (`prototype_match`)


def sides(action: str) -> tuple[int, int]:
    """The BLENDSHAPES indices of an action's two halves (the same index twice for a shape of the whole face)."""
    if action in BLENDSHAPES:
        return BLENDSHAPES.index(action), BLENDSHAPES.index(action)
    return BLENDSHAPES.index(action + "Left"), BLENDSHAPES.index(action + "Right")


LEFT, RIGHT = (torch.tensor(index) for index in zip(*(sides(action) for action in ACTIONS)))  # (A,) each


def action_intensities(blendshapes: torch.Tensor) -> torch.Tensor:
    """blendshapes (..., 52) in BLENDSHAPES order -> (..., A) the ACTIONS, each the larger of its two sides."""
    return torch.maximum(blendshapes[..., LEFT], blendshapes[..., RIGHT])


def unit_of(actions: torch.Tensor, unit: int) -> torch.Tensor | None:
    """actions (..., A) -> (...,) one AU's intensity, the largest of the actions that give it; None where no
    blendshape gives the AU."""
    columns = [i for i, (au, _) in enumerate(ACTIONS.values()) if au == unit]
    return actions[..., columns].amax(-1) if columns else None


def prototype_match(blendshapes: torch.Tensor) -> torch.Tensor:
    """blendshapes (..., 52) -> (..., E) each EMOTIONS prototype's match in 0..1 (module docstring)."""
    actions = action_intensities(blendshapes)  # (..., A)
    one_sided = (blendshapes[..., LEFT] - blendshapes[..., RIGHT]).abs()  # (..., A) how much more one side moves
    matches = []
    for emotion, units in PROTOTYPES.items():
        source = one_sided if emotion in ONE_SIDED else actions
        given = [unit_of(source, unit) for unit in units]
        matches.append(torch.stack([g for g in given if g is not None], -1).mean(-1))  # (...,)
    matched = torch.stack(matches, -1)  # (..., E - 1)
    neutral = 1 - matched.amax(-1, keepdim=True)  # (..., 1)
    return torch.cat([neutral, matched], -1)
