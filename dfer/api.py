"""dfer from Python: every command of the pipeline as a function taking the command line's own argument names, and
returning what the command prints (with `--json`, the same object).

    from dfer import api
    api.extract("cremad", "samples/cremad", out="cache/demo", frames=4, keep_media=True)
    api.train("cache/demo", out="runs/demo", fold="none")
    api.finetune("cache/demo", init="runs/demo", out="runs/demo-tuned")
    api.evaluate("runs/demo", store="cache/demo")["UAR"]
    api.load("runs/demo").predict("clip.mp4")  # also `dfer.load`

The command line is a thin layer over these functions: it parses, calls one, and prints. Each imports what it needs
when called, so `import dfer.api` (and `dfer --help`) loads no torch. Settings left at None come from the `recipe`
YAML when one is given, else from the stage's defaults (`dfer.extract.pipeline.ExtractConfig`,
`dfer.train.config.TrainConfig`, ...); `**settings` sets any other field of the same config, as the recipe would.

The functions are named like the commands, so `extract`, `train` and `finetune` share their names with the
subpackages that implement them: they are reached as `dfer.api.train`, never as `dfer.train` (the package).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the return types, for readers and the API reference; imported by the functions when called
    from dfer.extract.pipeline import ExtractSummary
    from dfer.predict.model import Model
    from dfer.train.protocol import ProtocolResult

PathLike = str | Path


def load(model: PathLike | list[PathLike] | None = None, device: str = "cpu",
         weights: list[float] | None = None) -> Model:
    """A trained model, ready to predict, make timelines and explain (`dfer predict --model`).

    Args:
        model: a run folder (e.g. "runs/demo", one fold of a k-fold run) or a bundled model's name ("voice", "face",
            see `dfer models`); a list of them fuses their answers; None: the bundled voice + face pair.
        device: "cpu" or "cuda".
        weights: the fused runs' weights, one per run (default: equal).

    Returns:
        A `dfer.predict.model.Model`.

    Raises:
        FileNotFoundError: `model` is neither a folder nor a bundled model.
    """
    from dfer.predict.ensemble import load_model
    from dfer.predict.model import Model

    models = None if model is None else [model] if isinstance(model, (str, Path)) else list(model)
    return Model(load_model(models, device, weights))


def extract(dataset: str, root: PathLike, out: PathLike, recipe: PathLike | None = None, preset: str | None = None,
            vision: str | None = None, audio: str | None = None, frames: int | None = None, batch: int | None = None,
            device: str | None = None, limit: int | None = None, keep_media: bool | None = None,
            workers: int | None = None, seed: int | None = None, max_seconds: float | None = None,
            face_track: str | None = None, token_dtype: str | None = None, classes: str | list[str] | None = None,
            face_frames: str | None = None, streams: dict[str, str] | list[str] | None = None,
            **settings: object) -> ExtractSummary:
    """Decode, crop faces and run the frozen encoders once per clip, into a resumable Zarr cache (`dfer extract`).

    Args:
        dataset: ravdess, cremad, dfew, mafw, meld or manifest.
        root: the dataset's folder (for manifest: the CSV file).
        out: the Zarr store to create or resume.
        recipe: YAML of extraction settings; the arguments below override it.
        preset: encoder preset (tiny, lite, small, base, large, ...).
        vision: a vision encoder spec in place of the preset's (`dfer.encoders.build`).
        audio: an audio encoder spec in place of the preset's.
        frames: frames sampled uniformly per clip.
        batch: clips per encoder call.
        device: "cpu" or "cuda".
        limit: only the first N clips of the sorted listing.
        keep_media: store face crops and waveforms for fine-tuning.
        workers: decoding worker processes.
        seed: seed of random-init encoders, part of the fingerprint.
        max_seconds: longer clips are analysed over their central window.
        face_track: "largest" or "speaker".
        token_dtype: "float16" or "int8".
        classes: manifest only: the class order (a list, or comma-separated as on the command line).
        face_frames: dfew only: "original" or "precropped".
        streams: the store's streams in place of the preset's `video` and `audio`, any number: {name: spec}, or
            "NAME=SPEC" strings as `--stream` takes them. A named family says its input (`faceapi`, `ge2e`,
            `acoustic`, `egemaps`); any other spec starts with it, `face:SPEC` or `waveform:SPEC` (`dfer.streams`).
        **settings: any other `ExtractConfig` field.

    Returns:
        The `ExtractSummary`: store, clips, done, failures [(clip id, error)], problems (files the dataset adapter
        could not list) and is_main (False on the other ranks under torchrun).
    """
    from dfer.extract.pipeline import extract_config, run

    options = {"classes": classes.split(",") if isinstance(classes, str) else classes, "frames": face_frames}
    return run(extract_config(
        recipe, dataset=dataset, root=Path(root), out=Path(out), preset=preset, vision=vision, audio=audio,
        frames=frames, batch=batch, device=device, limit=limit, keep_media=keep_media, workers=workers, seed=seed,
        max_seconds=max_seconds, face_track=face_track, token_dtype=token_dtype, streams=parse_streams(streams),
        dataset_options={k: v for k, v in options.items() if v is not None} or None, **settings,
    ))


def parse_streams(streams: dict[str, str] | list[str] | None) -> dict[str, str] | None:
    """`--stream NAME=SPEC` values (or a dict already) -> {name: spec}; None stays None (the preset's streams)."""
    if streams is None or isinstance(streams, dict):
        return streams
    parsed = {}
    for value in streams:
        name, sep, spec = value.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(f"--stream {value!r}: give NAME=SPEC, e.g. --stream face=faceapi")
        if name.strip() in parsed:
            raise ValueError(f"--stream {value!r}: the stream {name.strip()!r} is named twice")
        parsed[name.strip()] = spec.strip()
    return parsed


def train(store: PathLike, out: PathLike, recipe: PathLike | None = None, fusion: str | None = None,
          modalities: str | None = None, fold: str | int | None = None, epochs: int | None = None,
          batch_size: int | None = None, lr: float | None = None, seed: int | None = None, balance: str | None = None,
          device: str | None = None, workers: int | None = None, in_memory: bool | None = None, resume: bool = False,
          show: bool = True, **settings: object) -> ProtocolResult:
    """Train the heads on a cache over the dataset's folds, with the zero-shot and probe rows beside (`dfer train`).

    Args:
        store: a dfer cache (Zarr store or .h5 export).
        out: the run folder (with several folds, one sub-folder per fold).
        recipe: YAML of training settings; the arguments below override it.
        fusion: liquid, late, concat, gated or xattn.
        modalities: av, audio or video.
        fold: a fold number, "all" (the default) or "none" (train on every clip).
        epochs: passes over the training clips.
        batch_size: clips per step.
        lr: the peak learning rate.
        seed: seeds the heads, the batches and the validation speakers.
        balance: none, sampler or loss.
        device: "cpu" or "cuda".
        workers: DataLoader workers reading the cache.
        in_memory: keep the training and validation clips on `device`, as stored.
        resume: continue an interrupted run where it stopped.
        show: print progress and the results tables.
        **settings: any other `TrainConfig` field, e.g. heads={"d_model": 64}.

    Returns:
        The `ProtocolResult`: runs (fold -> test metrics), folders (fold -> run folder), summary (mean and std over
        the folds, or None) and skipped (folds without clips).
    """
    from dfer import distributed
    from dfer.train.config import make_config
    from dfer.train.run import train as run_training

    cfg = make_config(recipe, fusion=fusion, modalities=modalities, fold=fold, epochs=epochs,
                      batch_size=batch_size, lr=lr, seed=seed, balance=balance, device=device, workers=workers,
                      in_memory=in_memory, **settings)
    distributed.init()  # under torchrun, gloo: the ranks exchange only their folds' metrics
    try:
        return run_training(Path(store), Path(out), cfg, resume=resume, show=show)
    finally:
        distributed.shutdown()


def probe(store: PathLike, out: PathLike, recipe: PathLike | None = None, modalities: str | None = None,
          fold: str | int | None = None, seed: int | None = None, show: bool = True,
          **settings: object) -> ProtocolResult:
    """The linear-probe baseline: logistic regression on each clip's pooled tokens, on `train`'s splits (`dfer probe`).

    Args:
        store: a dfer cache (Zarr store or .h5 export).
        out: the run folder.
        recipe: YAML of probe settings; the arguments below override it.
        modalities: av, audio or video.
        fold: a fold number, "all" (the default) or "none" (fit on every clip).
        seed: picks the validation speakers, as in `train`.
        show: print the results tables (the command line's `--json` turns them off).
        **settings: any other `ProbeConfig` field.

    Returns:
        The `ProtocolResult`; `dfer probe --json` prints its runs, summary and skipped.
    """
    from dfer import distributed
    from dfer.train.probe import make_probe_config, probe as run_probe

    cfg = make_probe_config(recipe, modalities=modalities, fold=fold, seed=seed, **settings)
    distributed.init()
    try:
        return run_probe(Path(store), Path(out), cfg, show=show)
    finally:
        distributed.shutdown()


def zeroshot(store: PathLike, out: PathLike, recipe: PathLike | None = None, fold: str | int | None = None,
             seed: int | None = None, show: bool = True, **settings: object) -> ProtocolResult:
    """What the pretrained face network knows: its own expression classifier on `train`'s splits (`dfer zeroshot`).

    Args:
        store: a dfer cache whose vision encoder has its own classifier (`preset="lite"`).
        out: the run folder (evaluate, predict, serve and explain take it like any other).
        recipe: YAML of zero-shot settings; the arguments below override it.
        fold: a fold number, "all" (the default) or "none" (every clip sets the class prior).
        seed: picks the validation speakers, as in `train`.
        show: print the results tables (the command line's `--json` turns them off).
        **settings: any other `ZeroShotConfig` field.

    Returns:
        The `ProtocolResult`; `dfer zeroshot --json` prints its runs, summary and skipped.
    """
    from dfer import distributed
    from dfer.train.zeroshot import make_zeroshot_config, zeroshot as run_zeroshot

    cfg = make_zeroshot_config(recipe, fold=fold, seed=seed, **settings)
    distributed.init()
    try:
        return run_zeroshot(Path(store), Path(out), cfg, show=show)
    finally:
        distributed.shutdown()


def evaluate(runs: PathLike | list[PathLike], store: PathLike | None = None, dataset: str | None = None,
             root: PathLike | None = None, device: str = "cpu", out: PathLike | None = None,
             adapt: str = "none") -> dict:
    """Score runs' best checkpoints on a cache, or on a dataset folder extracted like the first run (`dfer evaluate`).

    Args:
        runs: a run folder or bundled model's name, or a list of them (scored on the same clips).
        store: a cache made with the runs' encoders; or else `dataset` and `root`.
        dataset: with `root`: extract this dataset folder with the first run's encoders first (kept under cache/
            for next time).
        root: the dataset's folder.
        device: "cpu" or "cuda".
        adapt: "none" (every clip standardised with the training set's statistics) or "speaker" (each speaker's
            clips with their own statistics; refused for a dataset without speaker ids).
        out: write metrics.json, predictions.csv and the confusion, recall and reliability PNGs here (with several
            runs: into OUT/<run folder name>).

    Returns:
        What `dfer evaluate --json` prints: one run's metrics (WAR, UAR, macro_f1, weighted_f1, ece, nll, n,
        per_class keyed by the classes' display names with their codes beside, confusion, display_names, subset,
        run, store), or with several runs {run: metrics}.

    Raises:
        ValueError: neither `store` nor both `dataset` and `root` are given, or both are.
    """
    from dfer.adapt.settings import check_listed_speakers
    from dfer.evaluation.evaluate import evaluate_run
    from dfer.evaluation.raw_folder import cache_for_folder, extract_like_run
    from dfer.runs.load import load_run

    runs = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(run) for run in runs]
    if (store is None) == (dataset is None or root is None):
        raise ValueError("give either --store STORE or --dataset NAME --root DIR")
    if store is None:
        if adapt == "speaker":  # refused before an extraction that could take hours
            check_listed_speakers(dataset, Path(root))
        _, config = load_run(runs[0])
        store = extract_like_run(config, dataset, Path(root), cache_for_folder(config, dataset, Path(root)), device)
    several = len(runs) > 1
    out = None if out is None else Path(out)
    scored = {str(run): evaluate_run(run, Path(store), device, out / run.name if several and out else out, adapt)
              for run in runs}
    return scored if several else scored[str(runs[0])]


def finetune(store: PathLike, init: PathLike, out: PathLike, recipe: PathLike | None = None,
             unfreeze: str | None = None, layer_decay: float | None = None, grad_checkpointing: bool | None = None,
             accumulate: int | None = None, precision: str | None = None, augment: bool | None = None,
             epochs: int | None = None, lr: float | None = None, head_lr: float | None = None,
             batch_size: int | None = None, fold: str | int | None = None, vision: str | None = None,
             audio: str | None = None, seed: int | None = None, device: str | None = None,
             workers: int | None = None, show: bool = True, **settings: object) -> dict:
    """Stage 3: the encoders and a stage-2 run's heads trained together on the cache's face crops and waveforms
    (`dfer finetune`).

    Args:
        store: a dfer cache extracted with `keep_media=True`.
        init: the stage-2 run whose best heads start (its split is reused); a `fold="all"` run fine-tunes every fold.
        out: the fine-tuned run folder (heads, vision/, audio/, results).
        recipe: YAML of fine-tune settings; the arguments below override it.
        unfreeze: "all", "last:N" blocks or "lora:R" adapters.
        layer_decay: block i of L trains at lr x decay^(L-i).
        grad_checkpointing: recompute activations in backward to save memory.
        accumulate: batches per rank per optimizer step.
        precision: "bf16" or "fp32" autocast on CUDA (a CPU runs fp32).
        augment: face and audio augmentation.
        epochs: passes over the training clips.
        lr: the learning rate of the encoders' last block.
        head_lr: the learning rate of the heads.
        batch_size: clips per rank under torchrun.
        fold: plan this fold instead of reusing the init run's split.
        vision: start from these vision weights (a spec or a folder) instead of the store's encoder.
        audio: likewise for the audio encoder.
        seed: initialisation and sampling.
        device: "cpu" or "cuda".
        workers: DataLoader workers reading and augmenting clips.
        show: print progress and the results tables.
        **settings: any other `FinetuneConfig` field.

    Returns:
        One run's test metrics ({} without test clips), or for a cross-validation `init` the summary over its folds,
        as `summary.json` holds it; {} on the other ranks under torchrun.
    """
    from dfer import distributed
    from dfer.finetune.config import make_finetune_config
    from dfer.finetune.run import finetune_folds

    cfg = make_finetune_config(
        recipe, unfreeze=unfreeze, layer_decay=layer_decay, grad_checkpointing=grad_checkpointing,
        accumulate=accumulate, precision=precision, augment=augment, epochs=epochs, lr=lr, head_lr=head_lr,
        batch_size=batch_size, fold=fold, vision=vision, audio=audio, seed=seed, device=device, workers=workers,
        **settings,
    )
    distributed.init(distributed.backend_for(cfg.device))
    try:
        result = finetune_folds(Path(store), Path(init), Path(out), cfg, show=show)
        distributed.barrier()  # the others wait while rank 0 scores the test clips and writes the summary
        return result
    finally:
        distributed.shutdown()
