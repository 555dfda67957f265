"""Class lists and the mapping from FER2013 expressions to classroom states (defined once)."""

FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
STATES = ("Angry", "Neutral", "Engaged", "Bored")
# The engagement index is the share of faces in this state.
ENGAGED = "Engaged"
# Box and chart colours per classroom state (annotated photos and the web app's charts).
STATE_COLOURS = {
    "Angry": "#c62828",
    "Neutral": "#616161",
    "Engaged": "#2e7d32",
    "Bored": "#1565c0",
}
# For labels of a model whose classes map to no known state.
OTHER_COLOUR = "#ff7f0e"
FER_TO_STATE: dict[str, str] = {
    "angry": "Angry",
    "disgust": "Angry",
    "neutral": "Neutral",
    "happy": "Engaged",
    "surprise": "Engaged",
    "sad": "Bored",
    "fear": "Bored",
}


# FER+ crowd-vote categories (Barsoum et al. 2016) that name a FER2013 class. The others
# (contempt, unknown, not_face) have no FER2013 class: their votes are left out of soft targets.
FERPLUS_TO_FER: dict[str, str] = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprise": "surprise",
}


def default_state_mapping(classes) -> dict[str, str]:
    """Map each class name to a classroom state.

    FER2013 names use FER_TO_STATE and state names map to themselves, both case-insensitively.
    Classes that are neither map to themselves, so nothing is silently merged.
    """
    states = {s.lower(): s for s in STATES}
    mapping = {}
    for name in classes:
        key = str(name).lower()
        mapping[name] = FER_TO_STATE.get(key) or states.get(key) or str(name)
    return mapping


def to_state(label: str, mapping: dict[str, str]) -> str:
    """The classroom state of one predicted label (the label itself when unmapped)."""
    return mapping.get(label, label)


def states_of(mapping: dict[str, str]) -> list[str]:
    """The states a mapping leads to: those of STATES in their order, then any others sorted."""
    targets = set(mapping.values())
    return [s for s in STATES if s in targets] + sorted(targets - set(STATES))
