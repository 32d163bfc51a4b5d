"""Classical acoustic baseline for RAVDESS speech emotion: openSMILE eGeMAPSv02 functionals + RBF SVM.

    python bench/egemaps_svm.py                                   # all folds, about 2 minutes on 2 cores
    python bench/egemaps_svm.py --folds 1,2 --out runs/bench-egemaps-svm

What is measured:
- features: the 88 eGeMAPSv02 functionals of each whole clip (Eyben et al., "The Geneva Minimalistic Acoustic
  Parameter Set (GeMAPS) for Voice Research and Affective Computing", IEEE TAC 7(2), 2016), computed by the
  `opensmile` Python package (`FeatureSet.eGeMAPSv02`, `FeatureLevel.Functionals`) from the file as stored.
  They are cached per clip id in a .npz (`--cache`, default OUT/egemaps_features.npz) together with the
  opensmile version, so a rerun only extracts clips the cache lacks.
- protocol: the clips come from dfer's own adapter (`dfer.data.list_dataset("ravdess", ROOT)`), so each clip's
  test fold is dfer's: fold = (actor - 1) // 4 + 1. Only folds with clips present are evaluated; a fold's model
  is trained on every other present clip (no actor is ever in training and test at once). By default only the
  speech channel (name field VC = 01) is kept.
- model: `StandardScaler` + `SVC(kernel="rbf")`. C and gamma are chosen per outer fold by `GridSearchCV` on the
  training clips only, with `GroupKFold` by actor (inner folds never split an actor, and never see the test
  fold), scored by balanced accuracy (= UAR); the best setting is then refit on all training clips.
- metrics: `dfer.train.metrics.classification_metrics` on one-hot "probabilities" of the SVM's predictions, and
  `summarise_folds` for mean +- sample std over folds, so WAR (accuracy) and UAR (mean recall over the classes
  present) are computed exactly as dfer computes them. ECE and NLL are meaningless for one-hot outputs and are
  left out.

Prints a per-fold table and the WAR/UAR mean +- std, writes OUT/egemaps_svm.json and OUT/results.md (a RESULTS.md
table row, as `dfer train` writes), and the last line of stdout is one JSON object with the figures. Without the
data folder it prints a SKIPPED line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "ravdess_speech_16k"
DEFAULT_OUT = REPO / "runs" / "bench-egemaps-svm"
C_GRID = [0.1, 1.0, 10.0, 100.0]
GAMMA_GRID = [1e-3, 3e-3, 1e-2, 3e-2]  # sklearn's "scale" is 1/88 ~ 0.011 on standardised eGeMAPS features
INNER_SPLITS = 4
CHANNELS = {"speech": {"01"}, "song": {"02"}, "all": {"01", "02"}}


# ----------------------------------------------------------------------------------------------- features


def make_smile(jobs: int):
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
        num_workers=max(1, jobs),
        multiprocessing=False,  # threads: the openSMILE C library does the work; a bit faster than processes here
    )


def load_cache(path: Path, version: str, root: Path) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """{clip_id: (88,) features} from a cache written by the same opensmile version for the same root, else empty."""
    if not path.is_file():
        return {}, None
    with np.load(path, allow_pickle=False) as z:
        if str(z["opensmile_version"]) != version or str(z["feature_set"]) != "eGeMAPSv02":
            print(f"[egemaps] cache {path} is from opensmile {z['opensmile_version']}; re-extracting")
            return {}, None
        if "root" in z.files and str(z["root"]) != str(root):
            print(f"[egemaps] cache {path} was built from {z['root']}, not {root}; re-extracting")
            return {}, None
        ids = [str(i) for i in z["clip_ids"]]
        return dict(zip(ids, z["features"])), [str(n) for n in z["feature_names"]]


def extract_features(clips, root: Path, cache: Path, jobs: int) -> tuple[np.ndarray, list[str], dict]:
    """(n, 88) eGeMAPSv02 functionals of `clips` in order, reusing and updating the .npz cache."""
    import opensmile

    version = opensmile.__version__
    cached, names = load_cache(cache, version, root)
    missing = [c for c in clips if c.clip_id not in cached]
    t0 = time.perf_counter()
    if missing:
        smile = make_smile(jobs)
        print(f"[egemaps] extracting {len(missing)} clips ({len(clips) - len(missing)} cached), "
              f"opensmile {version}, {jobs} worker(s)", flush=True)
        frame = smile.process_files([str(c.audio) for c in missing])  # rows in the order of the files given
        if len(frame) != len(missing):
            raise RuntimeError(f"opensmile returned {len(frame)} rows for {len(missing)} files")
        names = [str(n) for n in frame.columns]
        for clip, row in zip(missing, frame.to_numpy(dtype=np.float64)):
            cached[clip.clip_id] = row
        ids = sorted(cached)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, clip_ids=np.array(ids), features=np.stack([cached[i] for i in ids]),
                 feature_names=np.array(names), opensmile_version=np.array(version),
                 feature_set=np.array("eGeMAPSv02"), root=np.array(str(root)))
        os.replace(tmp, cache)
    else:
        print(f"[egemaps] all {len(clips)} clips' features read from {cache}", flush=True)
    extract_s = time.perf_counter() - t0
    x = np.stack([cached[c.clip_id] for c in clips])  # (n, 88)
    if not np.isfinite(x).all():
        raise RuntimeError("non-finite eGeMAPS features")
    info = {"opensmile_version": version, "extracted": len(missing), "from_cache": len(clips) - len(missing),
            "extract_s": round(extract_s, 2), "cache": str(cache)}
    return x, names, info


# ----------------------------------------------------------------------------------------------- model


def fit_fold(x_tr, y_tr, groups_tr, jobs: int):
    """GridSearchCV(StandardScaler + RBF SVC) with GroupKFold by actor on the training clips only."""
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    n_groups = len(np.unique(groups_tr))
    if n_groups < 2:
        raise ValueError("inner CV needs at least 2 training actors")
    pipe = make_pipeline(StandardScaler(), SVC(kernel="rbf"))
    search = GridSearchCV(
        pipe,
        {"svc__C": C_GRID, "svc__gamma": GAMMA_GRID},
        scoring="balanced_accuracy",
        cv=GroupKFold(n_splits=min(INNER_SPLITS, n_groups)),
        n_jobs=jobs,
        refit=True,
    )
    search.fit(x_tr, y_tr, groups=groups_tr)
    return search


# ----------------------------------------------------------------------------------------------- main


def parse_folds(text: str, present: list[int]) -> list[int]:
    if text == "all":
        return present
    folds = sorted({int(f) for f in text.split(",") if f.strip()})
    absent = [f for f in folds if f not in present]
    if absent:
        raise SystemExit(f"[egemaps] fold(s) {absent} have no clips; present: {present}")
    return folds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="RAVDESS folder (Actor_NN/*.flac|wav)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="egemaps_svm.json goes here")
    parser.add_argument("--folds", default="all", help="'all' or test folds, e.g. 1,2")
    parser.add_argument("--cache", type=Path, help="features .npz (default OUT/egemaps_features.npz)")
    parser.add_argument("--channel", default="speech", choices=sorted(CHANNELS), help="RAVDESS vocal channel")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="extraction / grid-search workers")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()

    if not args.root.is_dir():
        print(f"[egemaps] SKIPPED: no RAVDESS data folder at {args.root} (pass --root DIR); nothing measured")
        print(json.dumps({"skipped": f"no data at {args.root}"}))
        return 0

    from dfer.data import list_dataset
    from dfer.train.metrics import classification_metrics, summarise_folds
    from dfer.runs.report import markdown_header, markdown_row

    listing = list_dataset("ravdess", args.root)
    clips = [c for c in listing.clips
             if c.audio is not None and Path(c.audio).stem.split("-")[1] in CHANNELS[args.channel]]
    if not clips:
        print(f"[egemaps] SKIPPED: no RAVDESS {args.channel} clips with audio under {args.root}")
        print(json.dumps({"skipped": f"no {args.channel} clips at {args.root}"}))
        return 0
    if listing.problems:
        print(f"[egemaps] {len(listing.problems)} file(s) skipped by the adapter, e.g. {listing.problems[0]}")
    classes = listing.classes
    present = sorted({c.fold for c in clips})
    folds = parse_folds(args.folds, present)
    speakers_by_fold = {f: sorted({c.speaker for c in clips if c.fold == f}) for f in present}
    print(f"[egemaps] {len(clips)} {args.channel} clips, {len({c.speaker for c in clips})} actors, "
          f"folds present {present}; testing folds {folds}", flush=True)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or out / "egemaps_features.npz"
    x, feature_names, feat_info = extract_features(clips, args.root.resolve(), cache, args.jobs)
    y = np.array([c.label for c in clips])
    fold_of = np.array([c.fold for c in clips])
    speaker = np.array([c.speaker for c in clips])

    warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
    per_fold: list[dict] = []
    fold_metrics: list[dict] = []
    t_fit = time.perf_counter()
    for fold in folds:
        test = fold_of == fold
        train = ~test
        if not train.any():
            raise SystemExit(f"[egemaps] fold {fold}: no training clips (only one fold present)")
        assert not set(speaker[test]) & set(speaker[train])
        t0 = time.perf_counter()
        search = fit_fold(x[train], y[train], speaker[train], args.jobs)
        pred = search.predict(x[test])
        onehot = np.eye(len(classes))[pred]  # (n_test, C): argmax is the SVM's prediction
        m = classification_metrics(y[test], onehot, classes)
        for key in ("ece", "nll"):  # undefined for one-hot outputs
            m.pop(key)
        fold_metrics.append(m)
        row = {
            "fold": fold,
            "test_actors": speakers_by_fold[fold],
            "n_train": int(train.sum()),
            "n_test": int(test.sum()),
            "WAR": m["WAR"],
            "UAR": m["UAR"],
            "macro_f1": m["macro_f1"],
            "C": float(search.best_params_["svc__C"]),
            "gamma": float(search.best_params_["svc__gamma"]),
            "inner_cv_UAR": float(search.best_score_),
            "fit_s": round(time.perf_counter() - t0, 2),
        }
        per_fold.append({**row, "metrics": m})
        print(f"[egemaps] fold {fold} done: WAR {m['WAR']:.4f} UAR {m['UAR']:.4f} "
              f"(C={row['C']:g}, gamma={row['gamma']:g}, {row['fit_s']:.1f}s)", flush=True)
    fit_s = time.perf_counter() - t_fit

    summary = summarise_folds(fold_metrics)
    header = (f"{'fold':>4}  {'actors':<14} {'train':>5} {'test':>4}  {'WAR %':>6}  {'UAR %':>6}  {'C':>5}  "
              f"{'gamma':>6}  {'innerUAR %':>10}")
    print()
    print(header)
    print("-" * len(header))
    for r in per_fold:
        actors = f"{r['test_actors'][0]}-{r['test_actors'][-1]}"
        print(f"{r['fold']:>4}  {actors:<14} {r['n_train']:>5} {r['n_test']:>4}  {100 * r['WAR']:6.2f}  "
              f"{100 * r['UAR']:6.2f}  {r['C']:5g}  {r['gamma']:6g}  {100 * r['inner_cv_UAR']:10.2f}")
    print("-" * len(header))
    for key in ("WAR", "UAR"):
        print(f"{key}: {100 * summary[key]['mean']:.2f} ± {100 * summary[key]['std']:.2f} % "
              f"(mean ± sample std over {len(per_fold)} folds)")
    wall_s = time.perf_counter() - t_start
    print(f"wall {wall_s:.1f}s (features {feat_info['extract_s']:.1f}s, "
          f"{feat_info['extracted']} extracted / {feat_info['from_cache']} cached; SVM folds {fit_s:.1f}s)")

    result = {
        "bench": "egemaps_svm",
        "dataset": "ravdess",
        "root": str(args.root),
        "channel": args.channel,
        "features": {"set": "eGeMAPSv02", "level": "Functionals", "dim": int(x.shape[1]), **feat_info},
        "model": {"pipeline": "StandardScaler + SVC(kernel='rbf')",
                  "grid": {"C": C_GRID, "gamma": GAMMA_GRID},
                  "inner_cv": f"GroupKFold(n_splits<={INNER_SPLITS}) by actor on the training folds",
                  "inner_scoring": "balanced_accuracy (UAR)"},
        "protocol": "actor-independent folds, fold = (actor - 1) // 4 + 1 (dfer.data.ravdess)",
        "classes": classes,
        "n_clips": len(clips),
        "n_actors": len({c.speaker for c in clips}),
        "folds": [{k: v for k, v in r.items() if k != "metrics"} for r in per_fold],
        "WAR": summary["WAR"],
        "UAR": summary["UAR"],
        "macro_f1": summary["macro_f1"],
        "weighted_f1": summary["weighted_f1"],
        "fit_s": round(fit_s, 2),
        "wall_s": round(wall_s, 2),
        "jobs": args.jobs,
        "python": platform.python_version(),
    }
    import sklearn

    result["sklearn_version"] = sklearn.__version__
    full = {**result, "folds": per_fold, "feature_names": feature_names}
    (out / "egemaps_svm.json").write_text(json.dumps(full, indent=2) + "\n")
    (out / "results.md").write_text(markdown_header() + "\n" + markdown_row("eGeMAPS + SVM", summary) + "\n")
    print(f"[egemaps] wrote {out / 'egemaps_svm.json'} and {out / 'results.md'}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
