"""Done-when check of `dfer predict --timeline`: does the timeline of a long file agree with predicting its parts?

    python bench/timeline_blocks.py                      # runs/demo (make demo)
    python bench/timeline_blocks.py --model RUN --repeat 3 --out runs/timeline-blocks

LONG.mp4 is the six bundled CREMA-D clips, each played `--repeat` times in a row (AAA BBB ...,
`dfer.testing.synth.write_concatenation`). Its timeline is made with the run's default window and hop; in each
block, the most common top emotion among the windows wholly inside it is compared with `dfer predict` on that
clip alone. The last line of stdout is one JSON object: per block both answers, and `agree` (how many match).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dfer.predict.predictor import Predictor  # noqa: E402
from dfer.testing.sample import SAMPLE  # noqa: E402
from dfer.predict.timeline import HOP_FRACTION, FileTimeline, default_window, segment_top  # noqa: E402
from dfer.testing.synth import write_concatenation  # noqa: E402


def check(model: Path, out: Path, repeat: int = 3) -> dict:
    """Build LONG.mp4 in `out`, make its timeline with `model`, and compare block by block."""
    clips = sorted((SAMPLE / "VideoFlash").glob("*.flv"))
    long = out / "LONG.mp4"
    blocks = write_concatenation(long, clips, repeat=repeat)
    predictor = Predictor(model)
    window, source = default_window(predictor.config)
    timeline = FileTimeline(predictor, long, window, window * HOP_FRACTION)
    rows, notes = list(timeline), timeline.notes
    per_block = []
    for clip, span in zip(clips, blocks):
        alone = predictor.predict_file(clip)["top1"]
        per_block.append({"clip": clip.name, "span": [round(s, 3) for s in span], "alone": alone,
                          "timeline": segment_top(rows, span)})
    return {"model": str(model), "window": window, "window_source": source, "windows": len(rows),
            "covered": [rows[0]["start"], rows[-1]["end"]], "duration": blocks[-1][1], "notes": notes,
            "blocks": per_block, "agree": sum(b["alone"] == b["timeline"] for b in per_block)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep LONG.mp4 here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        result = check(args.model, out, args.repeat)
    for block in result["blocks"]:
        print(f"{block['clip']:24} {block['span'][0]:7.2f}-{block['span'][1]:7.2f} s  alone {block['alone']:9} "
              f"timeline {block['timeline']}")
    print(f"{result['agree']}/{len(result['blocks'])} blocks agree; {result['windows']} windows of "
          f"{result['window']} s ({result['window_source']}) cover {result['covered']} of {result['duration']:.2f} s")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
