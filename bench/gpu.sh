#!/usr/bin/env bash
# The GPU figures in one run, at most 8 minutes on one GPU; the last stdout line is one JSON object.
#
#     bash bench/gpu.sh                   # on a CUDA machine
#     bash bench/gpu.sh --quick           # a smoke run at tiny sizes on whatever device there is (CPU: ~2-3 min)
#     VENV=/path/to/venv bash bench/gpu.sh --quick   # use an installed environment instead of ./.venv
#
# Written for a lent GPU machine that gets a copy of the repository and may have a Python without this
# project's packages, so it first finds or makes an environment (see `setup` below), then runs each bench
# script with a timeout inside one overall budget (`BUDGET_S`, default 480 s):
#   extract         bench/extract.py: stage-1 clips/s at the base-random preset on CUDA (decode + MTCNN + both
#                   encoders + Zarr writes) over the bundled CREMA-D samples (samples/, repeated under new names);
#   train           bench/train.py: the stage-2 head step (cached tokens vs. recomputed by the encoders) and the
#                   loader's clips/s, at the base sizes;
#   finetune_base,  bench/finetune_memory.py: stage-3 peak GPU memory (torch.cuda.max_memory_allocated) at batch 8,
#   finetune_large  16 frames, bf16, gradient checkpointing, everything trainable, for the base-random and
#                   large-random architectures (the hub presets' shapes and parameter counts; no downloads), vs.
#                   the 12 GB goal.
# A step that fails or times out gives null and an error string; it never stops the others. Progress and every
# bench's own table go to stderr; stdout is the one JSON line: gpu, torch, commit, wall_s, setup, headline
# figures, and each step's full JSON. Without CUDA the full run's steps are null ("no CUDA device"); --quick
# runs extract and train at tiny sizes on the CPU and stage 3 as a tiny CPU run (its GPU figures null).
#
# The commit comes from git (-dirty: with uncommitted changes), or from DFER_COMMIT where the copy has no .git.
# Offline machines: put wheels of the packages requirements.txt lists (but torch) in .whl/ (or DFER_WHEELS), and
# the setup installs from there.
set -uo pipefail

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/gpu.sh: unknown argument $arg (only --quick)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
STARTED=$(date +%s)
BUDGET_S=${BUDGET_S:-$(( QUICK ? 600 : 480 ))}
DEADLINE=$(( STARTED + BUDGET_S ))
SETUP_S=${SETUP_S:-240}  # the most an installation may take of the budget
VENV=${VENV:-.venv}
WHEELS=${DFER_WHEELS:-.whl}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dfer-gpu-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this tree's dfer, whatever an environment has installed
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1  # and fail fast where no package index can be reached:
export PIP_DEFAULT_TIMEOUT=${PIP_DEFAULT_TIMEOUT:-20} PIP_RETRIES=${PIP_RETRIES:-1}

say() { echo "[gpu.sh $(( $(date +%s) - STARTED ))s] $*" >&2; }
left_s() { echo $(( DEADLINE - $(date +%s) )); }

# ------------------------------------------------------------------------------------------------ setup

# What the benches import (module names, not package names); checked without importing, so it is instant.
MODULES="torch torchvision transformers nemo zarr numcodecs h5py av facenet_pytorch soundfile safetensors yaml typer rich"

has_modules() {  # PYTHON: does it find every module the benches import?
    "$1" -c "import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in '$MODULES'.split()))" \
        2>/dev/null
}
has_cuda() { "$1" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; }

missing_requirements() {  # the lines of requirements.txt whose package python3 does not have, at any version
    python3 - <<'EOF'
import importlib.metadata
import re


def key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


have = {key(d.metadata["Name"]) for d in importlib.metadata.distributions() if d.metadata["Name"]}
for line in open("requirements.txt"):
    name = re.split(r"[\[=<>~ #]", line.strip())[0]
    if name and key(name) not in have:
        print(line.strip())
EOF
}

install() {  # make or refresh $VENV: the Makefile's `install` recipe, unless python3's own CUDA torch can be reused
    local pip="$VENV/bin/python -m pip install --quiet"
    local index=()
    if [ -d "$WHEELS" ]; then index=(--no-index --find-links "$WHEELS"); fi
    if python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
        # A GPU image: its CUDA torch (gigabytes to download) and every other package it has are seen from $VENV
        # through a .pth file, at the image's versions; only the requirements it lacks are installed, pinned.
        say "setup: python3 has a CUDA torch; $VENV sees its packages and gets the requirements it lacks"
        # --without-pip: the image's pip comes through the .pth too (a venv-made venv may lack ensurepip)
        [ -x "$VENV/bin/python" ] || python3 -m venv --without-pip "$VENV" || return 1
        local site
        site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return 1
        python3 -c 'import sysconfig; print("\n".join(sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})))' \
            > "$site/python3-site-packages.pth" || return 1
        missing_requirements > "$WORK/requirements-missing.txt" || return 1
        say "setup: python3 lacks $(grep -c . "$WORK/requirements-missing.txt") of requirements.txt's packages"
        $pip "${index[@]}" -r "$WORK/requirements-missing.txt" || return 1
        $pip "${index[@]}" --no-deps -r requirements-nodeps.txt || return 1
        $pip --no-deps --no-build-isolation -e . || return 1
    elif command -v make >/dev/null && [ ${#index[@]} -eq 0 ]; then
        say "setup: make install VENV=$VENV"
        make --no-print-directory install VENV="$VENV" >&2 || return 1
    else
        say "setup: $VENV from requirements.txt"
        [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || return 1
        $pip "${index[@]}" -r requirements.txt || return 1
        $pip "${index[@]}" --no-deps -r requirements-nodeps.txt || return 1
        $pip --no-deps --no-build-isolation -e . || return 1
    fi
}

setup() {  # sets PY and SETUP_HOW, or SETUP_ERROR
    local candidate
    for candidate in "$VENV/bin/python" "$(command -v python3)"; do  # one with CUDA first, else any complete one
        if [ -x "$candidate" ] && has_modules "$candidate" && has_cuda "$candidate"; then
            PY=$candidate SETUP_HOW="found (CUDA)"; return
        fi
    done
    for candidate in "$VENV/bin/python" "$(command -v python3)"; do
        if [ -x "$candidate" ] && has_modules "$candidate"; then PY=$candidate SETUP_HOW="found (no CUDA)"; return; fi
    done
    export -f install missing_requirements say
    export VENV WHEELS WORK STARTED
    local limit=$(( SETUP_S < $(left_s) ? SETUP_S : $(left_s) ))
    say "setup: no Python with this project's packages; installing into $VENV (at most ${limit}s)"
    if timeout --kill-after=10 "$limit" bash -c install && has_modules "$VENV/bin/python"; then
        PY="$VENV/bin/python" SETUP_HOW="installed"
    else
        SETUP_ERROR="installing into $VENV failed or ran past ${limit}s (pip's messages are on stderr; offline, carry wheels in $WHEELS/)"
    fi
}

PY="" SETUP_HOW="" SETUP_ERROR=""
setup
say "setup: ${PY:-none} ${SETUP_HOW}${SETUP_ERROR}"
echo "$(( $(date +%s) - STARTED ))" > "$WORK/setup.s"
CUDA=0
if [ -n "$PY" ] && has_cuda "$PY"; then CUDA=1; fi

# ------------------------------------------------------------------------------------------------ steps

skip() { echo "$2" > "$WORK/$1.skip"; say "$1: skipped: $2"; }

step() {  # NAME CAP_S SCRIPT ARGS...: run one bench with a timeout; its stdout's last line is its JSON
    local name=$1 cap=$2; shift 2
    local limit=$(( cap < $(left_s) ? cap : $(left_s) ))
    if [ "$limit" -lt 20 ]; then skip "$name" "no time left in the ${BUDGET_S}s budget"; return; fi
    say "$name: $* (timeout ${limit}s)"
    local begun=$(date +%s)
    : > "$WORK/$name.out"; : > "$WORK/$name.err"
    timeout --kill-after=10 "$limit" "$PY" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
    local pid=$!
    tail -q -n +1 -f --pid=$pid "$WORK/$name.out" "$WORK/$name.err" >&2 &  # progress as it comes
    local tailer=$!
    wait $pid
    echo $? > "$WORK/$name.rc"
    wait $tailer
    echo $(( $(date +%s) - begun )) > "$WORK/$name.s"
    say "$name: exit $(cat "$WORK/$name.rc") after $(cat "$WORK/$name.s")s"
}

CONTENTION=(--quiet-wait 0 --retries 0)  # a lent machine is ours alone: no waiting for quiet, no repeats
if [ -z "$PY" ]; then
    for name in extract train finetune_base finetune_large; do skip "$name" "setup failed"; done
elif [ "$QUICK" = 1 ]; then
    DEVICE=$([ "$CUDA" = 1 ] && echo cuda || echo cpu)
    step extract 150 bench/extract.py --presets tiny --device "$DEVICE" --data samples --av-clips 2 --growth 1 \
        --audio-clips 0 --frames 4 --batch 2 "${CONTENTION[@]}"
    step train 150 bench/train.py --device "$DEVICE" --batch 1 --frames 2 --steps 1 --cached-steps 1 \
        --cached-warmup 0 --clips 4 --workers 0 --loader-batch 2 "${CONTENTION[@]}"
    if [ "$CUDA" = 1 ]; then
        step finetune_base 120 bench/finetune_memory.py --device cuda --cpu-presets "" --cuda-presets tiny \
            --batch 1 --frames 2 --seconds 1 --steps 1
    else
        step finetune_base 120 bench/finetune_memory.py --cpu-presets tiny --batch 1 --frames 2 --seconds 1 --steps 1
    fi
    skip finetune_large "not run with --quick"
elif [ "$CUDA" = 1 ]; then
    step extract 100 bench/extract.py --presets base-random --device cuda --data samples --av-clips 48 --growth 1 \
        --audio-clips 0 "${CONTENTION[@]}"
    step train 150 bench/train.py --device cuda --batch 32 --steps 5 --clips 128 --workers 0 2 4 "${CONTENTION[@]}"
    step finetune_base 90 bench/finetune_memory.py --device cuda --cpu-presets "" --cuda-presets base-random
    step finetune_large 120 bench/finetune_memory.py --device cuda --cpu-presets "" --cuda-presets large-random
else
    for name in extract train finetune_base finetune_large; do skip "$name" "no CUDA device"; done
fi

# ---------------------------------------------------------------------------------------------- report

COMMIT=${DFER_COMMIT:-$(git describe --always --dirty --abbrev=40 2>/dev/null || true)}
"${PY:-python3}" - "$WORK" "$QUICK" "$COMMIT" "$STARTED" "$PY" "$SETUP_HOW" "$SETUP_ERROR" <<'EOF'
"""Combine the steps' JSON lines into one object, with the machine, the commit and the headline figures."""
import json
import sys
import time
from pathlib import Path

work, quick, commit, started, python, how, setup_error = sys.argv[1:]
work = Path(work)
GOAL_GB = 12  # stage 3 at base, batch 8, bf16 + checkpointing must fit a 12 GB card


def read(name: str, suffix: str) -> str | None:
    path = work / f"{name}.{suffix}"
    return path.read_text().strip() if path.exists() else None


def last_json(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def run_step(name: str) -> dict:
    if read(name, "skip") is not None:
        return {"result": None, "error": read(name, "skip"), "s": None}
    rc, result = int(read(name, "rc")), last_json(read(name, "out") or "")
    error = None
    if rc != 0 or result is None:
        output = read(name, "err") or read(name, "out") or ""  # the traceback, else the bench's last progress
        tail = " | ".join(output.splitlines()[-5:])[-800:]
        why = f"timed out after {read(name, 's')} s" if rc in (124, 137) else f"exit {rc}"
        error = f"{why}{'' if result else ', no JSON line'}: {tail}"
    return {"result": result, "error": error, "s": int(read(name, "s"))}


steps = {name: run_step(name) for name in ("extract", "train", "finetune_base", "finetune_large")}


def figure(step: str, pick):
    result = steps[step]["result"]
    try:
        return pick(result) if result else None
    except (KeyError, IndexError, StopIteration, TypeError):
        return None


def cuda_peak(result: dict) -> dict:
    row = next(row for row in result["measured"] if row["device"].startswith("cuda"))
    return {"preset": row["preset"], "peak_allocated_gb": round(row["cuda_peak_allocated_gb"], 3),
            "peak_reserved_gb": round(row["cuda_peak_reserved_gb"], 3), "step_s": round(row["step_s"], 3),
            "within_goal": row["cuda_peak_allocated_gb"] <= GOAL_GB}


headline = {
    "extract_clips_per_s": figure("extract", lambda r: next(v for k, v in r.items() if k.endswith("_av_clips_per_s"))),
    "extract_gpu_peak_mib": figure("extract", lambda r: next(v for k, v in r.items() if k.endswith("_av_gpu_peak_mib"))),
    "head_step_cached_s": figure("train", lambda r: r["step_cached_s"]),
    "head_step_encoders_s": figure("train", lambda r: r["step_encoders_s"]),
    "head_step_ratio": figure("train", lambda r: r["step_ratio"]),
    "head_step_clips_per_s": figure("train", lambda r: r["step_cached_clips_per_s"]),
    "speedup_vs_zarr_av_2workers": figure("train", lambda r: r["speedup_vs_zarr_av_2workers"]),
    "loader_clips_per_s": figure("train", lambda r: {k.removeprefix("loader_").removesuffix("_clips_per_s"): v
                                                     for k, v in r.items() if k.startswith("loader_")
                                                     and k.endswith("_clips_per_s") and "first_pass" not in k}),
    "finetune_goal_gb": GOAL_GB,
    "finetune_base": figure("finetune_base", cuda_peak),
    "finetune_large": figure("finetune_large", cuda_peak),
}
machine = {"gpu": None, "torch": None, "cuda": None}
try:
    import torch

    machine = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "torch": torch.__version__, "cuda": torch.version.cuda}
except Exception as error:  # no torch at all: the setup failed, which `setup` says
    machine["error"] = f"{type(error).__name__}: {error}"
if machine["gpu"] is None:
    machine["gpu_error"] = "no CUDA device"
    for name in ("finetune_base", "finetune_large"):  # a CPU run of stage 3 has no GPU memory figure
        headline[f"{name}_error"] = "no CUDA device"

print(json.dumps({
    **machine, "commit": commit or None, "quick": quick == "1", "wall_s": round(time.time() - int(started), 1),
    "setup": {"python": python or None, "how": how or None, "error": setup_error or None,
              "s": int(read("setup", "s"))},
    "headline": headline, "steps": steps,
}))
EOF
