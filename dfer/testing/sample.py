"""A tiny trained run from the bundled CREMA-D sample, in seconds: for tests and benchmarks of predict and serve.

`make demo` builds the real demo run (all six clips, 16 frames, 30 epochs); this one is smaller still (a few clips,
4 frames, one epoch) because its callers care that the pipeline runs, not what it predicts. It is the same code
path: `dfer extract` with the tiny preset, then `dfer train`.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cremad"
SMALL_HEADS = {"d_model": 16, "roi_queries": 2, "temporal_layers": 1, "heads": 2, "cfc_units": 16}


def sample_run(folder: Path, clips: int = 2, frames: int = 4) -> Path:
    """`folder/run`, trained on `folder/store` (the first `clips` sample clips); reused when it is already there."""
    from dfer.extract.pipeline import ExtractConfig, run as extract
    from dfer.train.config import make_config
    from dfer.train.run import train

    folder = Path(folder)
    run = folder / "run"
    if (run / "best.safetensors").exists():
        return run
    summary = extract(ExtractConfig(dataset="cremad", root=SAMPLE, out=folder / "store", preset="tiny", frames=frames,
                                    limit=clips, progress=False))
    if summary.failures:
        raise RuntimeError(f"the bundled sample failed to extract: {summary.failures}")
    train(folder / "store", run, make_config(None, fold="none", epochs=1, heads=SMALL_HEADS), show=False)
    return run
