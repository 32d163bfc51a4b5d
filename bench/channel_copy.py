"""A copy of a folder of recordings through another channel or at another speed, to measure or train for the change.

    python bench/channel_copy.py ../shared/data/ravdess_speech_16k /tmp/ravdess-bright      # +10 dB treble
    dfer extract ravdess /tmp/ravdess-bright --out STORE --recipe recipes/ravdess_speech/extract-acoustic.yaml
    python bench/adapt_groups.py runs/ravdess_speech/acoustic-adapt --store STORE    # the folds on the copy

Why: RAVDESS's studio recordings fall off steeply above 1 kHz; CREMA-D's (Flash video and MP3) keep about 10-20 dB more
between 1 and 3 kHz. Another corpus is another channel as well as other speakers, and the RAVDESS cross-validation
alone cannot tell how much of a cross-corpus miss the channel makes. The copy keeps the clips, names and labels and
changes only the spectral tilt: a gain rising linearly in log frequency from 0 dB at 500 Hz to `--treble-db` at 3 kHz
and above, applied with zero phase, the clip's RMS level kept (and its peak below full scale), written as 16-bit FLAC.
`--speed` first plays the clip faster or slower, tempo and pitch together, as speech recognition's speed perturbation
does (Ko et al., Interspeech 2015: copies at 0.9 and 1.1): another speaker's voice and pace for the same words.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np
import soundfile

LOW, HIGH = 500.0, 3000.0  # Hz: where the tilt starts and where it reaches its full gain, unless asked otherwise


def brighter(wave: np.ndarray, rate: int, treble_db: float, low: float = LOW, high: float = HIGH) -> np.ndarray:
    """wave (S,) -> (S,) with the tilt applied, the RMS level kept. A negative `treble_db` makes it darker."""
    n = 1 << int(np.ceil(np.log2(len(wave) + 4096)))  # padding: the filter's circular wrap falls past the end
    frequencies = np.fft.rfftfreq(n, 1 / rate)
    ramp = np.clip(np.log2(np.maximum(frequencies, 1) / low) / np.log2(high / low), 0, 1)
    out = np.fft.irfft(np.fft.rfft(wave, n) * 10 ** (treble_db * ramp / 20), n)[: len(wave)]
    out *= np.sqrt(np.mean(wave ** 2) / max(np.mean(out ** 2), 1e-20))
    return out * min(1.0, 0.999 / max(np.abs(out).max(), 1e-20))


def faster(wave: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """wave (S,) -> (S / speed,): the clip as if played `speed` times as fast, then sampled at `rate` again."""
    return wave if speed == 1 else librosa.resample(wave, orig_sr=rate * speed, target_sr=rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a folder of recordings (.flac or .wav, in any subfolders)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--treble-db", type=float, default=10.0, help="the gain at --high and above (negative: darker)")
    parser.add_argument("--low", type=float, default=LOW, help="Hz where the tilt starts (0 dB below)")
    parser.add_argument("--high", type=float, default=HIGH, help="Hz where it reaches its full gain")
    parser.add_argument("--speed", type=float, default=1.0, help="play each clip this many times as fast, first")
    args = parser.parse_args()
    files = sorted(p for p in args.source.rglob("*") if p.suffix.lower() in (".flac", ".wav"))
    for path in files:
        wave, rate = soundfile.read(path, dtype="float64")
        if wave.ndim > 1:
            raise SystemExit(f"{path}: {wave.shape[1]} channels; this copies mono recordings")
        target = args.out / path.relative_to(args.source)
        target.parent.mkdir(parents=True, exist_ok=True)
        wave = brighter(faster(wave, rate, args.speed), rate, args.treble_db, args.low, args.high)
        soundfile.write(target, wave, rate, subtype="PCM_16")
    print(f"{len(files)} recordings at {args.speed:g}x speed, {args.treble_db:+g} dB above {args.high:g} Hz, from 0 at "
          f"{args.low:g} Hz: {args.out}")
    print(json.dumps({"recordings": len(files), "speed": args.speed, "treble_db": args.treble_db, "low": args.low,
                      "high": args.high, "out": str(args.out)}))


if __name__ == "__main__":
    main()
