"""How a run adapts, as its training settings record it (`TrainConfig` and `ProbeConfig` share these fields)."""

from __future__ import annotations

TRAIN_MODES = ("none", "speaker")  # `dfer train / probe / evaluate --adapt`
PREDICT_MODES = ("none", "together", "folder")  # `dfer predict --adapt`
TIMELINE_ADAPT = ("none", "file")  # `dfer predict --timeline --adapt`: a file's own windows are one speaker
SHRINK = 2.0  # a group's statistics weigh clips / (clips + SHRINK) against the training set's (Moments.standardiser)
LONE = 0.25  # the share of adapted training clips standardised as lone clips (dfer.adapt.batches.MixedStatistics)


# How a protocol standardised the clips it scored, as results.json and `dfer evaluate` state it
PROTOCOLS = {"none": "unadapted: every clip standardised with the training set's statistics",
             "speaker": "adapted per speaker: each speaker's clips standardised with their own statistics (unlabelled)"}


def check_adapt(mode: str, shrink: float, lone: float) -> None:
    if mode not in TRAIN_MODES:
        raise ValueError(f"adapt must be one of {TRAIN_MODES}, not {mode!r}")
    if shrink < 0 or not 0 <= lone <= 1:
        raise ValueError(f"adapt_shrink must be >= 0 and adapt_lone within [0, 1], not {shrink} and {lone}")


def run_adaptation(config: dict) -> dict:
    """A run's config.json -> {"mode", "shrink"}: how it was trained to adapt ("none" for runs saved before
    adaptation existed, and for zero-shot runs)."""
    settings = config.get("train") or config.get("probe") or {}
    return {"mode": settings.get("adapt", "none"), "shrink": settings.get("adapt_shrink", SHRINK)}


def adaptation_summary(config: dict) -> str:
    """What `dfer models` says of a run's adaptation (from its config.json)."""
    mode = run_adaptation(config)["mode"]
    if config.get("model") == "zeroshot" or (config.get("model") == "probe" and mode == "none"):
        return "no: it reads its encoder's tokens as they are"
    if mode != "none":
        return (f"yes: trained per {mode} (--adapt {mode}); --adapt together / folder, a session, or saved --statistics "
                "standardise a speaker's clips with their own; timelines adapt over the file by default")
    return "on request (--adapt): its heads standardise tokens; trained on the training set's statistics alone"


def check_listed_speakers(dataset: str, root) -> None:
    """Refuse `--adapt speaker` for a dataset folder whose listing names no speaker (DFEW, MAFW), in one line and
    before anything is extracted."""
    from dfer.data import list_dataset

    if not any(clip.speaker for clip in list_dataset(dataset, root).clips):
        raise ValueError(f"{root}: --adapt speaker needs speaker ids, and the {dataset} listing has none (DFEW and "
                         "MAFW do not record who speaks); use --adapt none")
