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
