"""Stage-3 memory: what fine-tuning the encoders end to end costs, measured and computed.

    python bench/finetune_memory.py                  # CPU: tiny + small measured, base + large computed (~2 min)
    python bench/finetune_memory.py --device cuda    # + base-random, batch 8, 16 frames, checkpointing, bf16
    python bench/finetune_memory.py --device cuda --cpu-presets '' --cuda-presets base-random,large-random

Measured, each in a fresh process (`python bench/finetune_memory.py --child PRESET ...`, so `ru_maxrss` and the
CUDA peak are that run alone): the modules `dfer finetune` trains — `EndToEnd` over the preset's encoders and
default-size heads, trainable as `--unfreeze` says, AdamW over the layer-decay parameter groups, gradient
checkpointing as `dfer.finetune.trainable` enables it — for `--steps` optimizer steps on a batch of the shapes a
store gives (B clips x T frames of S px uint8 crops, `--seconds` of 16 kHz audio per clip). Pixel and sample
values do not change memory, so the batch is random and no store is needed.
- CPU: peak RSS, and the RSS once the model is built (imports + weights), so the difference is training.
- CUDA: `torch.cuda.max_memory_allocated` / `max_memory_reserved` over the steps (target: <= 12 GB for base at
  batch 8 with checkpointing and bf16, docs/design.md).

Computed, for base and large (encoders built on the meta device, no weights allocated): bytes of parameters,
gradients and AdamW state with float32 master weights, i.e. 4 bytes per frozen parameter and 4 + 4 + 8 = 16 per
trainable one, for `--unfreeze` all, last:4 and lora:16. Activations come on top (the measured part).

The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MB = 2**20
GB = 2**30
CPU_PRESETS = ["tiny", "small"]
COMPUTED_PRESETS = {"base": "base-random", "large": "large-random"}  # same architectures as the hub models
COMPUTED_MODES = ["all", "last:4", "lora:16"]


def child(args: argparse.Namespace) -> dict:
    """A few fine-tune steps of one configuration in this process; the figures as a dict."""
    import torch

    from dfer.encoders import resolve_preset
    from dfer.encoders.audio import load_audio
    from dfer.encoders.vision import load_vision
    from dfer.finetune.config import FinetuneConfig
    from dfer.finetune.model import EndToEnd
    from dfer.finetune.trainable import count_trainable, enable_checkpointing, layer_groups, make_trainable
    from dfer.heads import DferHeads, HeadConfig
    from dfer.streams import historic

    device = torch.device(args.device)
    torch.manual_seed(0)
    vision_spec, audio_spec = resolve_preset(args.child)
    vision = load_vision(vision_spec, device=device)
    audio = load_audio(audio_spec, device=device)
    v, a = vision.describe(), audio.describe()
    heads = DferHeads(HeadConfig(streams=historic(v, a), num_classes=8))
    mode, number = FinetuneConfig(unfreeze=args.unfreeze).mode
    for encoder in (vision, audio):
        make_trainable(encoder, mode, number)
        if args.grad_checkpointing:
            enable_checkpointing(encoder)
    precision = args.precision if device.type == "cuda" else "fp32"
    model = EndToEnd(heads, vision, audio, precision).to(device)
    groups = [{"params": list(heads.parameters()), "lr": 3e-4}]
    groups += layer_groups(vision, 3e-5, 0.75, 0.05, "vision") + layer_groups(audio, 3e-5, 0.75, 0.05, "audio")
    optimizer = torch.optim.AdamW(groups)

    B, T, S, samples = args.batch, args.frames, vision.image_size, int(args.seconds * 16000)
    points = torch.tensor([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.72], [0.62, 0.72]]) * S  # (5, 2)
    batch = {
        "faces": torch.randint(0, 256, (B, T, 3, S, S), dtype=torch.uint8),
        "landmarks": points.expand(B, T, 5, 2).clone(),
        "face_found": torch.ones(B, T, dtype=torch.bool),
        "has_video": torch.ones(B, dtype=torch.bool),
        "has_audio": torch.ones(B, dtype=torch.bool),
        "frame_time": torch.linspace(0, args.seconds, T + 2)[1:-1].expand(B, T).clone(),
        "waveform": torch.randn(B, samples) * 0.1,
        "num_samples": torch.full((B,), samples, dtype=torch.int32),
        "label": torch.randint(0, 8, (B,)),
    }
    batch = {key: value.to(device) for key, value in batch.items()}
    built_rss = _current_rss()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        after_build = torch.cuda.memory_allocated()
    model.train()
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(batch)["logits"].float(), batch["label"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    result = {
        "preset": args.child, "device": str(device), "batch": B, "frames": T, "image_size": S,
        "seconds": args.seconds, "unfreeze": args.unfreeze, "grad_checkpointing": args.grad_checkpointing,
        "precision": precision, "steps": args.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable": sum(count_trainable(m) for m in (heads, vision, audio)),
        "step_s": min(times[1:] or times),  # the first step pays allocator and kernel warm-up
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "built_rss_mb": built_rss / MB,
    }
    if device.type == "cuda":
        result.update(gpu=torch.cuda.get_device_name(device), cuda_after_build_gb=after_build / GB,
                      cuda_peak_allocated_gb=torch.cuda.max_memory_allocated() / GB,
                      cuda_peak_reserved_gb=torch.cuda.max_memory_reserved() / GB)
    return result


def _current_rss() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * resource.getpagesize()


def computed(preset: str) -> dict:
    """Parameter + gradient + AdamW bytes of fine-tuning `preset` under each COMPUTED_MODES, from meta modules."""
    from torch import nn

    from dfer.encoders import resolve_preset
    from dfer.encoders.audio import load_audio
    from dfer.encoders.vision import load_vision
    from dfer.finetune.trainable import make_trainable

    vision_spec, audio_spec = resolve_preset(COMPUTED_PRESETS[preset])
    encoders = {"vision": load_vision(vision_spec, meta=True), "audio": load_audio(audio_spec, meta=True)}
    out = {"preset": preset, "vision": vision_spec, "audio": audio_spec,
           "parameters": {name: sum(p.numel() for p in e.parameters()) for name, e in encoders.items()}, "modes": {}}
    total = sum(out["parameters"].values())
    for unfreeze in COMPUTED_MODES:
        mode, number = unfreeze.split(":")[0], int(unfreeze.partition(":")[2] or 0)
        if mode == "lora":  # adapters add r x (in + out) per targeted linear; counted without building them
            trainable = sum(number * (m.in_features + m.out_features) for e in encoders.values()
                            for module_name, m in e.parts().root.named_modules()
                            if isinstance(m, nn.Linear) and module_name.rpartition(".")[2] in e.lora_targets())
            frozen = total
        else:
            for e in encoders.values():
                make_trainable(e, mode, number)
            trainable = sum(p.numel() for e in encoders.values() for p in e.parameters() if p.requires_grad)
            frozen = total - trainable
        out["modes"][unfreeze] = {"trainable": trainable, "frozen": frozen,
                                  "state_gb": (16 * trainable + 4 * frozen) / GB}
    return out


def run_child(preset: str, args: argparse.Namespace, device: str, grad_checkpointing: bool) -> dict:
    command = [sys.executable, __file__, "--child", preset, "--device", device, "--batch", str(args.batch),
               "--frames", str(args.frames), "--seconds", str(args.seconds), "--steps", str(args.steps),
               "--unfreeze", args.unfreeze, "--precision", args.precision]
    command += ["--grad-checkpointing"] if grad_checkpointing else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cuda: also measure base-random on the GPU")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0, help="audio per clip (CREMA-D ~2.5 s, RAVDESS ~3.7 s)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--unfreeze", default="all")
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--grad-checkpointing", action="store_true", help="(--child only)")
    parser.add_argument("--cpu-presets", default=",".join(CPU_PRESETS))
    parser.add_argument("--cuda-presets", default="base-random",
                        help="measured on the GPU with --device cuda (large-random: the large preset's architectures)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(args)
        print(json.dumps(result))
        return result

    measured = []
    for preset in filter(None, args.cpu_presets.split(",")):
        for checkpointing in (False, True):
            row = run_child(preset, args, "cpu", checkpointing)
            measured.append(row)
            print(f"cpu  {preset:6s} checkpointing {'on ' if checkpointing else 'off'}  "
                  f"peak RSS {row['peak_rss_mb']:7.0f} MB (built {row['built_rss_mb']:5.0f} MB, training "
                  f"+{row['peak_rss_mb'] - row['built_rss_mb']:5.0f} MB)  {row['step_s']:.2f} s/step  "
                  f"{row['trainable']:,} trainable", flush=True)
    if args.device == "cuda":
        for preset in filter(None, args.cuda_presets.split(",")):
            row = run_child(preset, args, "cuda", True)
            measured.append(row)
            print(f"cuda {preset} checkpointing on, {row['precision']}: peak allocated "
                  f"{row['cuda_peak_allocated_gb']:.2f} GB, reserved {row['cuda_peak_reserved_gb']:.2f} GB "
                  f"({'within' if row['cuda_peak_reserved_gb'] <= 12 else 'OVER'} 12 GB), {row['step_s']:.2f} s/step",
                  flush=True)
    else:
        print("no CUDA run (--device cuda measures --cuda-presets at batch 8 with checkpointing and bf16)")

    computed_rows = [computed(preset) for preset in COMPUTED_PRESETS]
    for row in computed_rows:
        for unfreeze, figures in row["modes"].items():
            print(f"computed {row['preset']:5s} {unfreeze:8s} {figures['trainable']:>12,} trainable  "
                  f"weights + grads + AdamW {figures['state_gb']:5.2f} GB")
    result = {"measured": measured, "computed": computed_rows,
              "settings": {"batch": args.batch, "frames": args.frames, "seconds": args.seconds, "steps": args.steps,
                           "unfreeze": args.unfreeze}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
