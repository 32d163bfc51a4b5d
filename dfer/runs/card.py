"""Model cards: RUN/README.md in the Hugging Face model-card format, for every run folder dfer writes.

`dfer train` (the heads), `dfer probe`, `dfer zeroshot` and `dfer finetune` call `write_card` once their run folder
is complete (rank 0 alone under torchrun), and `dfer card RUN` writes it again, for a run folder or a bundled model
(`dfer.models`). The card is what a reader of the folder, or of a Hub repository made from it, sees first:

- metadata (YAML, written by huggingface_hub's `ModelCardData`, never by hand): the licence of dfer's code, the
  store's dataset, the metrics (WAR = accuracy, UAR = macro recall, weighted and macro F1) and the model-index
  results (`EvalResult`s) of RUN/results.json, or the mean over folds of RUN/summary.json for a cross-validation,
  or for a bundled model without either the figures its model.json records (`scored`);
- body: what the model does, its classes and inputs, its training data (and that data's licence) and protocol, its
  results beside the zero-shot and linear-probe rows on the same splits (RUN/zeroshot, RUN/probe, as
  `dfer.train.compare` lays them out; a fine-tuned run also shows the stage-2 run it started from), limitations,
  and the commands that use it.

A run folder is either one run (RUN/config.json) or a cross-validation parent (RUN/summary.json + RUN/foldK/), whose
shared facts (classes, encoders, dataset) are read from its first fold's config.json. The body is a template
string rendered by `ModelCard.from_template(template_str=...)`: nothing is read from the network, not even the
library's default template.
"""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from dfer.adapt.settings import run_adaptation
from dfer.store.fingerprint import Fingerprint
from dfer.streams import INPUTS, mode_of, read_by
from dfer.models import MODEL_FILE, bundled
from dfer.runs.folder import fold_runs
from dfer.runs.report import BASELINES, markdown_header, markdown_row

CARD = "README.md"
LICENSE = "apache-2.0"  # dfer's code (pyproject.toml); the training data's own licence is in the body
# (results key, Hub metric id, averaging, name): what classification_metrics and summarise_folds report
METRICS = (("WAR", "accuracy", None, "WAR (accuracy)"), ("UAR", "recall", "macro", "UAR (macro recall)"),
           ("weighted_f1", "f1", "weighted", "weighted F1"), ("macro_f1", "f1", "macro", "macro F1"))
# modalities -> (Hub task id, task name)
TASKS = {"av": ("video-classification", "Audio-visual emotion recognition"),
         "video": ("video-classification", "Facial expression recognition"),
         "audio": ("audio-classification", "Speech emotion recognition")}
READS = {"av": "the face crops and the audio track of a clip", "video": "the face crops of a clip",
          "audio": "the audio track of a clip"}
DATASETS = {"ravdess": "RAVDESS", "cremad": "CREMA-D", "dfew": "DFEW", "mafw": "MAFW", "meld": "MELD"}
# The data sets' terms as the adapters' READMEs (recipes/<dataset>/README.md) and the sample's README give them.
DATA_LICENCES = {
    "ravdess": "CC BY-NC-SA 4.0 (non-commercial)",
    "cremad": "Open Database License (ODbL 1.0), contents under the Database Contents License (DbCL 1.0)",
    "dfew": "granted by the authors on request; non-commercial research and educational use only "
            "(recipes/dfew/README.md)",
    "mafw": "academic agreement: non-commercial research by university staff, no redistribution "
            "(recipes/mafw/README.md)",
    "meld": "no agreement is asked for, but the clips are excerpts of a copyrighted TV series: check the MELD "
            "repository's terms before redistributing (recipes/meld/README.md)",
}
GENERIC_LIMITATIONS = (
    "Its figures hold for the data described above. Expect lower figures on recordings unlike it (other "
    "corpora, languages, cultures, microphones, cameras, lighting or head poses, spontaneous rather than acted "
    "expression): cross-corpus shift is the rule, not the exception. It names the expression a clip shows among "
    "its classes, always one of them; it is not a measure of what a person feels, and must not be used to make "
    "decisions about people. A clip without an input it was trained on (no face found, no audio track) is read "
    "from what remains, or gets the class prior, which is a weaker answer.")

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}

## Classes and inputs

{{ inputs }}

## Training data and protocol

{{ training }}

## Results

{{ results }}

## Limitations

{{ limitations }}

## How to use

{{ usage }}
"""


def write_card(run: Path, extra: dict | None = None) -> Path:
    """Write RUN/README.md, the model card of the run folder (or cross-validation parent, or bundled model folder)
    `run`, and return its path. `extra` adds to or overrides a bundled model's model.json facts: "description",
    "training_data", "training_data_licence", "headline", "protocol", "limitations"."""
    run = Path(run)
    facts = {**_read(run / MODEL_FILE), **(extra or {})}
    config, folds = _config(run)
    figures = _figures(run)
    # a fine-tuned run's stage-2 run (a cross-validation's: the parent, each fold starting from its own fold)
    init = (_read(run / "summary.json").get("config", {}) if folds else config.get("finetune", {})).get("init")
    kind = _kind(config)
    task_type, task_name = TASKS[run_mode(config)]
    title = _title(run, config, kind)
    data = ModelCardData(
        license=LICENSE, library_name="dfer", pipeline_tag=task_type, datasets=[config["dataset"]],
        metrics=sorted({metric for _, metric, _, _ in METRICS}),
        tags=["dfer", "emotion-recognition", task_name.lower().replace(" ", "-"), kind.replace(" ", "-")],
        model_name=title, eval_results=_eval_results(config, figures, folds, facts, task_type, task_name) or None)
    card = ModelCard.from_template(
        data, template_str=TEMPLATE, title=title, summary=_summary(config, kind, folds, facts, init),
        inputs=_inputs(config, folds), training=_training(config, folds, facts),
        results=_results(run, config, figures, folds, kind, facts, init), limitations=_limitations(config, facts),
        usage=_usage(run, config, folds))
    path = run / CARD
    card.save(path)
    return path


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _config(run: Path) -> tuple[dict, list[str]]:
    """(the config.json that holds the run's shared facts, the fold names of a cross-validation, else [])."""
    if (run / "config.json").exists():
        return _read(run / "config.json"), []
    summary = _read(run / "summary.json")
    folds = list(summary.get("folds", [])) or fold_runs(run)
    if not folds:
        raise FileNotFoundError(f"{run}: not a dfer run (no config.json, and no fold runs with one)")
    return _read(run / folds[0] / "config.json"), folds


def _figures(run: Path) -> tuple[dict, bool] | None:
    """(test figures, whether they are a fold summary {key: {"mean", "std", "values"}}) of a run folder: its
    summary.json or results.json; None when it has neither (trained on every clip, or not finished)."""
    if (run / "summary.json").exists():
        return _read(run / "summary.json")["summary"], True
    if (run / "results.json").exists():
        return _read(run / "results.json")["test"], False
    return None


def _kind(config: dict) -> str:
    if config.get("finetune"):
        return "fine-tuned"
    return {"probe": "linear probe", "zeroshot": "zero-shot"}.get(config.get("model", "heads"), "heads")


def _title(run: Path, config: dict, kind: str) -> str:
    name = _bundled_name(run)
    if name:
        return f"dfer {name}"
    fusion = f" {config['heads']['fusion']}" if "fusion" in config["heads"] else ""
    return f"dfer {config['dataset']} {config['heads']['modalities']}{fusion} {kind}"


def _bundled_name(run: Path) -> str | None:
    """The name of the bundled model whose folder `run` is, else None."""
    return next((name for name, folder in bundled().items() if folder.resolve() == run.resolve()), None)


def _dataset_title(dataset: str) -> str:
    return DATASETS.get(dataset, dataset)


def _eval_results(config: dict, figures: tuple[dict, bool] | None, folds: list[str], facts: dict, task_type: str,
                  task_name: str) -> list[EvalResult]:
    """The model-index results: the test figures of results.json / summary.json (the mean over folds), or the
    `scored` figures of a bundled model's model.json."""
    dataset = config["dataset"]
    common = {"task_type": task_type, "task_name": task_name}
    if figures is not None:
        values, nested = figures
        mean = f", mean of {len(folds)} folds" if nested else ""
        split = f"{len(folds)}-fold cross-validation" if nested else config["split"]["name"]
        return [EvalResult(**common, dataset_type=dataset, dataset_name=_dataset_title(dataset), dataset_config=split,
                           dataset_split="test", metric_type=metric, metric_config=average,
                           metric_name=name + mean,
                           metric_value=float(values[key]["mean"] if nested else values[key]))
                for key, metric, average, name in METRICS if key in values]
    scored = facts.get("scored")
    if scored:
        store = scored.get("store", dataset)
        return [EvalResult(**common, dataset_type=store, dataset_name=store, dataset_split=scored.get("subset"),
                           metric_type=metric, metric_config=average, metric_name=name,
                           metric_value=float(scored[key]))
                for key, metric, average, name in METRICS if key in scored]
    return []


def run_streams(config: dict) -> list[tuple[str, str, dict]]:
    """The streams a run reads: (name, its encoder's kind, its encoder's fingerprint entry), in name order."""
    encoders = Fingerprint.from_dict(config["fingerprint"]).encoders
    return [(name, *encoders[name]) for name in read_by(config["heads"])]


def run_mode(config: dict) -> str:
    """The mode naming the inputs a run reads ("av", "audio" or "video"): what its card says it takes."""
    return mode_of(INPUTS[kind] for _, kind, _ in run_streams(config))


def _streams(config: dict) -> str:
    """What a run hears and sees, in words: "voice and face" for the historic streams, else the streams' names."""
    words = {"video": "face", "audio": "voice"}
    names = [name for name, _, _ in run_streams(config)]
    if set(names) <= set(words):
        return " and ".join(words[name] for name in names)
    return ", ".join(f"`{name}`" for name in names) + " streams"


def _summary(config: dict, kind: str, folds: list[str], facts: dict, init: str | None) -> str:
    """What the model does."""
    heads, modalities = config["heads"], config["heads"]["modalities"]
    if kind == "linear probe":
        chosen = config.get("fit", {}).get("C")
        what = ("A linear probe: a multinomial logistic regression (scikit-learn, lbfgs) on each clip's pooled "
                "frozen-encoder tokens (per-dimension mean and std of the valid tokens of each stream, "
                f"standardised){f', C = {chosen:.3g}' if chosen is not None and not folds else ''}. It is the "
                "baseline a heads figure is read against (`dfer probe`).")
    elif kind == "zero-shot":
        what = (f"A zero-shot classifier: the vision encoder's own expression classifier "
                f"(`{config['fingerprint']['vision']['id']}`) over each face frame, its probabilities averaged over "
                "the clip's frames with a face; its labels are matched to the classes by meaning. Nothing was "
                "trained but the class prior a clip without a face gets (`dfer zeroshot`).")
    else:
        statistics = " with statistics pooling" if heads.get("statistics_width", 0) else ""
        what = (f"Emotion recognition from the {_streams(config)}: dfer's heads ({heads.get('fusion')} fusion"
                f"{statistics}) on frozen-encoder tokens (`dfer train`).")
        if kind == "fine-tuned":
            tuned = config["finetune"]
            what = (f"Emotion recognition from the {_streams(config)}: dfer's heads ({heads.get('fusion')} "
                    f"fusion{statistics}) and their encoders fine-tuned end to end (`dfer finetune`, unfreeze "
                    f"`{tuned.get('unfreeze')}`), starting from the stage-2 run `{init}`"
                    f"{' (each fold from its own fold)' if folds else ''}.")
    if folds:
        what += (f" This folder is a {len(folds)}-fold cross-validation: one model per fold ({', '.join(folds)}), "
                 "each in its own run folder, trained on its own split.")
    return "\n\n".join(part for part in (facts.get("description"), what) if part)


def _inputs(config: dict, folds: list[str]) -> str:
    """Classes (display names) and inputs (modalities, encoders, frames, crop margin)."""
    fingerprint, modalities = config["fingerprint"], config["heads"]["modalities"]
    names, codes = config.get("display_names") or config["classes"], config["classes"]
    classes = ", ".join(name if name == code else f"{name} ({code})" for name, code in zip(names, codes))
    streams = run_streams(config)
    read = READS[run_mode(config)]
    lines = [f"- **Classes** ({len(names)}): {classes}.", f"- **Input**: {read} (`{modalities}`)."]
    encoders = config.get("finetune", {}).get("encoders") or {}
    for name, kind, spec in sorted(streams, key=lambda stream: stream[1] != "vision"):  # faces first, as always
        title = ("Vision encoder" if kind == "vision" else "Audio encoder") + (
            "" if name in ("video", "audio") else f" of the `{name}` stream")
        where = f"{'foldK/' if folds else ''}{encoders.get(kind)}/"
        tuned = f"; fine-tuned weights in `{where}`" if encoders.get(kind) else " (frozen)"
        revision = f" @ {spec['revision']}" if spec.get("revision") else ""
        if kind == "vision":
            lines.append(f"- **{title}**: `{spec['id']}`{revision}, {spec.get('dim')}-dim tokens{tuned}; "
                         f"{fingerprint.get('frames')} frames per clip, face crops with margin "
                         f"{fingerprint.get('crop_margin')} at {spec.get('image_size')} px.")
        else:
            lines.append(f"- **{title}**: `{spec['id']}`{revision}, {spec.get('dim')}-dim tokens{tuned}; "
                         f"{fingerprint.get('sample_rate')} Hz audio.")
    if config.get("clip_seconds"):
        lines.append(f"- **Clip length**: the training clips' analysed spans have a median of "
                     f"{config['clip_seconds']} s (`dfer predict --timeline` reads a long file in windows of that "
                     "length).")
    return "\n".join(lines)


def _training(config: dict, folds: list[str], facts: dict) -> str:
    """Training data, its licence, and the protocol: split, clip counts, fold, settings."""
    dataset = config["dataset"]
    licence = facts.get("training_data_licence") or DATA_LICENCES.get(dataset) or (
        "not recorded by dfer: see the data set's own terms")
    lines = [f"- **Data set**: {_dataset_title(dataset)} (store `{config['store']}`)."]
    if facts.get("training_data"):
        lines.append(f"- **Training data**: {facts['training_data'].rstrip('.')}.")
    lines.append(f"- **Licence of the training data**: {licence.rstrip('.')}. The `license` of this card's metadata ({LICENSE}) "
                 "is dfer's code's; what the model may be used for is bounded by its training data's too.")
    split = config["split"]
    counts = f"{len(split['train'])} training, {len(split['val'])} validation and {len(split['test'])} test clips"
    if folds:
        lines.append(f"- **Protocol**: {len(folds)}-fold cross-validation by the data set's own folds "
                     f"({', '.join(folds)}); each fold's test speakers are unseen in its training. {folds[0]}: "
                     f"{counts}.")
    else:
        lines.append(f"- **Split**: `{split['name']}`, {counts}.")
    for note in split.get("notes", []):
        lines.append(f"  - {note}")
    if facts.get("protocol"):
        lines.append(f"- **Protocol of the bundled model**: {facts['protocol'].rstrip('.')}.")
    lines.append(f"- **Training**: {_settings(config)}")
    lines.append(f"- **dfer version**: {config.get('dfer_version')}.")
    return "\n".join(lines)


def _settings(config: dict) -> str:
    if config.get("model") == "probe":
        fit = config.get("fit", {})
        chosen = (f"C = {fit['C']:.3g}, chosen by validation {fit.get('select_metric')}" if fit.get("validation")
                  else f"C = {fit.get('C')} (no validation clips)")
        balanced = config.get("probe", {}).get("balance") == "loss"
        weighted = ", each class weighted inversely to its count" if balanced else ""
        return (f"logistic regression{weighted}, {chosen}, refitted on the "
                f"{' + '.join(fit.get('fitted_on', ['train']))} clips.")
    if config.get("model") == "zeroshot":
        return ("nothing trained; the class prior for clips without a face is the class frequencies of the "
                "training + validation clips.")
    # without validation clips there is nothing to pick an epoch by: the last one is kept
    kept = (f"the best epoch by validation {(config.get('finetune') or config.get('train', {})).get('select_metric')}"
            if config["split"]["val"] else "the last epoch") + " is kept."
    if config.get("finetune"):
        tuned = config["finetune"]
        return (f"stage 3, epochs {tuned.get('epochs')}, unfreeze `{tuned.get('unfreeze')}`, encoder lr "
                f"{tuned.get('lr')} (layer decay {tuned.get('layer_decay')}), heads lr {tuned.get('head_lr')}, batch "
                f"{tuned.get('batch_size')} x {tuned.get('accumulate')}, {tuned.get('precision')}, augmentation "
                f"{'on' if tuned.get('augment') else 'off'}; {kept}")
    train = config.get("train", {})
    views = train.get("views") or []
    read_from = (f"; each batch read from the store or one of {len(views)} views of it "
                 f"({', '.join(f'`{view}`' for view in views)})" if views else "")
    members, seed = train.get("members", 1), train.get("seed")
    seeds = (f"{members} members trained alike from seeds {seed} to {seed + members - 1}, answering with their mean "
             "log-probability" if members > 1 else f"seed {seed}")
    return (f"stage 2, AdamW, epochs {train.get('epochs')} (patience {train.get('patience')}), lr {train.get('lr')}, "
            f"batch {train.get('batch_size')}, label smoothing {train.get('label_smoothing')}, balance "
            f"`{train.get('balance')}`, adaptation `{run_adaptation(config)['mode']}`, {seeds}"
            f"{read_from}; {kept}")


def _results(run: Path, config: dict, figures: tuple[dict, bool] | None, folds: list[str], kind: str,
             facts: dict, init: str | None) -> str:
    """This model's test figures in a table beside the zero-shot and linear-probe rows of the same splits."""
    parts = []
    if facts.get("headline"):
        parts.append(f"**Headline**: {facts['headline']}")
    if facts.get("scored"):
        scored = facts["scored"]
        where = f" on `{scored['store']}`" if scored.get("store") else ""  # a cross-validation's figures name no store
        parts.append(f"**Scored**{where} ({scored.get('subset')}, n = {scored.get('n')}): "
                     f"WAR {100 * scored['WAR']:.2f}, UAR {100 * scored['UAR']:.2f} (%).")
    if figures is None:
        if not parts:
            parts.append("No test figures: this run has no test clips (`--fold none` trains on every clip). Score it "
                         "with `dfer evaluate` on a store of other clips.")
        return "\n\n".join(parts)
    rows = [markdown_row(title, values) for title, values in _beside(run, init)]
    fusion = config["heads"].get("fusion")
    rows.append(markdown_row(f"**this model** ({f'{fusion} ' if fusion else ''}{kind})", figures[0]))
    where = (f"mean ± std over {len(folds)} folds' test clips" if folds
             else f"test clips of `{config['split']['name']}`")
    parts.append(f"Test figures (%), {where}, beside the baselines on the same splits:\n\n"
                 + markdown_header() + "\n" + "\n".join(rows))
    return "\n\n".join(parts)


def _beside(run: Path, init: str | None) -> list[tuple[str, dict]]:
    """(row title, figures) of the baselines beside `run`: RUN/zeroshot and RUN/probe (or, for one fold of a
    cross-validation, PARENT/zeroshot/foldK and PARENT/probe/foldK); a fine-tuned run also gets the stage-2 run it
    started from (`init`) and that run's baselines."""
    rows = []
    for place in [run, *([Path(init)] if init else [])]:
        for model, title in BASELINES.items():
            for folder in (place / model, place.parent / model / place.name):
                figures = _figures(folder) if folder.is_dir() else None
                if figures is not None:
                    rows.append((title, figures[0]))
                    break
    if init and _figures(Path(init)) is not None:
        rows.append(("stage-2 heads (the init run)", _figures(Path(init))[0]))
    return rows


def _limitations(config: dict, facts: dict) -> str:
    parts = [GENERIC_LIMITATIONS]
    if config.get("unmatched"):
        parts.append(f"It never predicts {', '.join(config['unmatched'])}: its classifier has no such label, so "
                     "those clips count as errors in UAR.")
    if facts.get("limitations"):
        parts.append(facts["limitations"])
    return "\n\n".join(parts)


def _usage(run: Path, config: dict, folds: list[str]) -> str:
    name = _bundled_name(run) or str(run)
    model = f"{name}/{folds[0]}" if folds else name
    files = {"av": "a video or audio file", "video": "a video file", "audio": "an audio or video file"}
    lines = ["```bash",
             f"dfer predict FILE --model {model}          # {files[run_mode(config)]}, or a folder",
             f"dfer predict FILE --model {model} --json   # labels and probabilities as JSON",
             f"dfer evaluate {model} --store {config['store']}   # scores its test clips again",
             f"dfer serve --model {model}                 # a page and an HTTP API",
             "```"]
    if folds:
        lines.append(f"\nEach fold is a model of its own (`{name}/fold1` … `{name}/{folds[-1]}`); the figures above "
                     "are over all of them.")
    lines.append(f"\n`dfer card {name}` writes this card again.")
    return "\n".join(lines)
