"""Display names of the datasets' classes: the words a person reads ("angry", "fearful") for the codes a store
keeps ("ANG", "fear", "anger").

Stores, results.json and config.json's "classes" keep each release's own codes, so a store never changes meaning;
everything shown to a person (tables, plots, predictions.csv, predict / serve JSON "labels", the page) uses these
words. The datasets spell one emotion several ways (MELD "joy", MAFW "happiness", CREMA-D "HAP"); one word per
emotion lets their results be read side by side. A dataset not listed here (manifest, synthetic) shows its class
names as given.
"""

from __future__ import annotations

# dataset -> {class code as the adapter lists it: display name}; the adapters' CLASSES are the keys (tested)
DISPLAY_NAMES: dict[str, dict[str, str]] = {
    "ravdess": {name: name for name in
                ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")},  # already words
    "cremad": {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"},
    "dfew": {"happy": "happy", "sad": "sad", "neutral": "neutral", "angry": "angry", "surprise": "surprised",
             "disgust": "disgust", "fear": "fearful"},
    "mafw": {"anger": "angry", "disgust": "disgust", "fear": "fearful", "happiness": "happy", "neutral": "neutral",
             "sadness": "sad", "surprise": "surprised", "contempt": "contempt", "anxiety": "anxious",
             "helplessness": "helpless", "disappointment": "disappointed"},
    "meld": {"neutral": "neutral", "surprise": "surprised", "fear": "fearful", "sadness": "sad", "joy": "happy",
             "disgust": "disgust", "anger": "angry"},
}


def display_names(dataset: str, classes: list[str]) -> list[str]:
    """The display name of each of `classes` (a store's codes, in its order); a code without one stays as it is."""
    words = DISPLAY_NAMES.get(dataset, {})
    return [words.get(code, code) for code in classes]


# Other spellings of the display names' emotions (lower case), so a classifier trained elsewhere (an encoder's own
# labels, a manifest's classes) is matched to a store's classes by meaning: face-api says "disgusted", DFEW "disgust".
SYNONYMS: dict[str, str] = {
    "anger": "angry", "ang": "angry", "disgusted": "disgust", "dis": "disgust", "fear": "fearful", "fea": "fearful",
    "afraid": "fearful", "happiness": "happy", "joy": "happy", "hap": "happy", "neu": "neutral",
    "sadness": "sad", "surprise": "surprised", "contemptuous": "contempt",
}


def emotion_word(name: str) -> str:
    """One word per emotion: a display name, or any spelling in SYNONYMS, -> the display name's word."""
    word = name.strip().lower()
    return SYNONYMS.get(word, word)


def match_labels(labels: list[str], names: list[str]) -> list[int]:
    """For each of `labels` (a classifier's), the index of the class among `names` (a store's display names) that
    means the same emotion, or -1 where the store has no such class."""
    index = {emotion_word(name): i for i, name in enumerate(names)}
    return [index.get(emotion_word(label), -1) for label in labels]
