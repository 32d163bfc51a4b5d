"""`dfer probe`: the linear-probe baseline, on exactly the splits, metrics and run folders of `dfer train`.

Each clip becomes the per-dimension mean and std of its valid tokens, per stream (`LinearProbe.pooled`: audio frames
inside audio/length, patch tokens of frames with a face), standardised with the fitting clips' statistics, and a
multinomial logistic regression (scikit-learn, lbfgs) maps that to the classes. A figure of the heads means little
without it: frozen-encoder tokens can carry most of what the heads find, and the probe says how much.

The inverse regularisation C is the value of `c_grid` with the best validation `select_metric`, fitted on the
training clips alone (ties go to the smaller C, the more regularised probe). The probe is then refitted with that C
on the training + validation clips, statistics included: once C is chosen the validation clips have done their
job, and a probe, unlike the heads, has no epoch left for them to pick, so they are simply more data. Without
validation clips (`--fold none`) C is `c_default`.

A run folder holds config.json (`dfer.train.protocol.run_config` with "model": "probe", "probe": these settings,
"heads": the LinearProbe's arguments, "fit": the chosen C and the validation scores of the grid), best.safetensors
(the LinearProbe), and with a test set results.json and the per-clip files (`dfer.train.protocol`). Every clip is
read and pooled once per store (`PooledClips`), whichever splits it is in, so there is no in-memory option, and
the fit takes seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from sklearn.linear_model import LogisticRegression
from torch.utils.data import DataLoader

from dfer import distributed
from dfer.adapt.batches import GroupStatistics, prior_of
from dfer.adapt.settings import LONE, PROTOCOLS, SHRINK, check_adapt
from dfer.adapt.store_moments import moments_by_speaker
from dfer.heads import LinearProbe
from dfer.streams import check_modalities, select
from dfer.heads.probe import adapt_features
from dfer.inference.batch import collate, to_device
from dfer.recipe import settings_from
from dfer.runs.card import write_card
from dfer.runs.files import save_weights, write_json
from dfer.store.reader import CacheReader
from dfer.train.config import SELECT_METRICS, TrainConfig
from dfer.train.data import CachedClips
from dfer.train.metrics import classification_metrics
from dfer.train.protocol import ProtocolResult, run_config, run_protocol, write_test_results
from dfer.train.splits import Split

console = Console()


@dataclass(kw_only=True)
class ProbeConfig:
    modalities: str = "av"
    fold: str = "all"  # a fold number, "all", or "none" (every clip fits: a final probe)
    seed: int = 0  # picks the validation speakers, as `dfer train`'s seed does; the fit itself is deterministic
    val_fraction: float = 0.15  # training speakers held out for validation when the protocol has none
    select_metric: str = "UAR"  # the validation metric that picks C
    c_grid: list[float] = field(default_factory=lambda: np.logspace(-4, 1, 11).tolist())  # 1e-4 ... 10, x 10^0.5
    c_default: float = 1.0  # C without validation clips: scikit-learn's default
    tol: float = 1e-8  # lbfgs's stopping tolerance. scikit-learn's 1e-4 stops large-C fits early, where a relative
    # change of 1e-6 in the features (rounding's size) moved clips and the chosen C; at 1e-8 the fit is the
    # loss's minimum, which rounding does not move (RESULTS.md of the speech recipe, "The probe's tolerance")
    max_iter: int = 20000  # lbfgs iterations, a bound the tolerance stops well before
    balance: str = "none"  # "loss": each class weighted inversely to its count (scikit-learn's "balanced", the
    # heads' --balance formula), so that a probe beside class-balanced heads is fitted to the same objective
    adapt: str = "none"  # "speaker": tokens standardised with each clip's speaker's statistics (dfer.adapt)
    adapt_shrink: float = SHRINK  # as TrainConfig's
    adapt_lone: float = LONE  # > 0: every fitting clip is fitted twice, as its speaker's and as a lone clip

    def __post_init__(self):
        check_modalities(self.modalities)
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(f"select_metric must be one of {SELECT_METRICS}, not {self.select_metric!r}")
        if not self.c_grid or min(self.c_grid) <= 0:
            raise ValueError(f"c_grid must hold positive values, not {self.c_grid!r}")
        check_adapt(self.adapt, self.adapt_shrink, self.adapt_lone)
        if self.balance not in ("none", "loss"):
            raise ValueError(f"the probe's balance must be none or loss, not {self.balance!r}")
        self.fold = str(self.fold)
        self.c_grid = sorted(float(c) for c in self.c_grid)  # increasing, so a tie goes to the smaller C

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_probe_config(recipe: Path | None = None, **overrides) -> ProbeConfig:
    return settings_from(ProbeConfig, recipe, "probe", **overrides)


def probe_config_for(train: TrainConfig) -> ProbeConfig:
    """The probe on the splits of a `dfer train` run (same fold, modalities, seed, validation share and metric).

    Heads trained without validation (val_fraction 0) still get a probe with its C chosen on held-out training
    speakers; refitted on training + validation, it ends up fitted on exactly the heads' training clips. Heads
    balanced by sampling or by loss get a probe balanced by loss: for a probe's full-batch fit the two are one."""
    val_fraction = train.val_fraction or ProbeConfig.val_fraction
    return ProbeConfig(modalities=train.modalities, fold=train.fold, seed=train.seed, val_fraction=val_fraction,
                       select_metric=train.select_metric, adapt=train.adapt, adapt_shrink=train.adapt_shrink,
                       adapt_lone=train.adapt_lone, balance="none" if train.balance == "none" else "loss")


@dataclass
class ProbeFit:
    model: LinearProbe  # the final probe, in eval mode
    classifier: LogisticRegression  # its scikit-learn fit (on the training + validation clips)
    C: float
    validation: list[dict]  # {"C", select_metric} per value of the grid; empty without validation clips
    adapted: AdaptedPools | None  # the split's adaptation statistics, for an adapted probe


def pooled_features(model: LinearProbe, reader: CacheReader, indices: list[int]) -> tuple[torch.Tensor, ...]:
    """`model.pooled` over the clip rows `indices` (through the heads' dataset and collate): features (n, F),
    present (n, F) bool and labels (n,). Each clip is pooled alone: a batch's audio is trimmed to its longest clip,
    and a float sum over another length rounds differently, so a clip's features would depend on its batch-mates,
    which differ between folds, and between one process and torchrun ranks (`dfer.train.protocol`)."""
    loader = DataLoader(CachedClips(reader, indices, model.config["modalities"]), batch_size=1, collate_fn=collate)
    features, present, labels = [], [], []
    with torch.no_grad():
        for batch in loader:
            batch = to_device(batch, torch.device("cpu"))  # decodes int8 tokens
            x, p = model.pooled(batch)  # (B, F), (B, F)
            features.append(x)
            present.append(p)
            labels.append(batch["label"])
    return torch.cat(features), torch.cat(present), torch.cat(labels)


class PooledClips:
    """`pooled_features` of one store's clips, each clip pooled the first time a split asks for it and kept: the
    pooling does not depend on the split (no statistics, no weights), and a 5-fold cross-validation would otherwise
    read every clip's tokens about 6 times (4 folds' fitting clips or validation clips, 1 fold's test clips)."""

    def __init__(self, reader: CacheReader, modalities: str):
        self.model = LinearProbe(select(reader.streams, modalities), len(reader.classes), modalities)
        self.reader, self.rows = reader, {}  # clip row -> (features (F,), present (F,), label ())

    def __call__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        """features (n, F), present (n, F) bool and labels (n,) of the clip rows `indices`, in that order."""
        missing = sorted(set(indices) - self.rows.keys())
        if missing:
            self.rows.update(zip(missing, zip(*pooled_features(self.model, self.reader, missing))))
        return tuple(torch.stack(parts) for parts in zip(*(self.rows[i] for i in indices)))


def fit_probe(reader: CacheReader, split: Split, cfg: ProbeConfig, pooled: PooledClips | None = None) -> ProbeFit:
    """Choose C on the split's validation clips, then fit the probe on its training + validation clips; `pooled`:
    the store's clips pooled so far (by the other splits of a protocol). Adapted (`cfg.adapt`), each clip's pooled
    features are standardised with its speaker's statistics (`adapted`), and with `adapt_lone` > 0 every fitting clip
    is fitted a second time as a lone clip, with the training set's: the probe's mixture, as the heads'."""
    pooled = pooled or PooledClips(reader, cfg.modalities)
    model = LinearProbe(pooled.model.inputs.values(), len(reader.classes), cfg.modalities, adapt=cfg.adapt != "none")
    parts = {"train": split.train, "val": split.val, "test": split.test}
    adapted = AdaptedPools(reader, model, parts, cfg) if model.adapts else None
    fitting = adapted.fitting("train", pooled) if adapted else pooled(split.train)
    validation, C = [], cfg.c_default
    if split.val:
        held = adapted("val", pooled) if adapted else pooled(split.val)
        model.set_statistics(*fitting[:2])
        x_train, x_val = (model.standardise(x, p).numpy() for x, p, _ in (fitting, held))  # (n, F) each
        for c in cfg.c_grid:
            fitted = logistic_regression(c, cfg).fit(x_train, fitting[2].numpy())
            model.set_classifier(fitted.coef_, fitted.intercept_, fitted.classes_)
            with torch.no_grad():
                probs = model.linear(torch.from_numpy(x_val)).softmax(-1).numpy()  # (n_val, classes)
            score = classification_metrics(held[2].numpy(), probs, reader.classes)[cfg.select_metric]
            validation.append({"C": c, cfg.select_metric: score})
        C = max(validation, key=lambda row: row[cfg.select_metric])["C"]  # the first best: the smallest such C
        held = adapted.fitting("val", pooled) if adapted else held
        fitting = tuple(torch.cat(parts) for parts in zip(fitting, held))
    features, present, labels = fitting
    model.set_statistics(features, present)
    classifier = logistic_regression(C, cfg).fit(model.standardise(features, present).numpy(), labels.numpy())
    model.set_classifier(classifier.coef_, classifier.intercept_, classifier.classes_)
    return ProbeFit(model.eval(), classifier, C, validation, adapted)


class AdaptedPools:
    """The pooled features of an adapted probe's split: each part's clips standardised with their speaker's
    statistics (a held-out speaker with their own clips alone), shrunk toward the prior, the fitting (training +
    validation) clips' token statistics, which the probe keeps for lone clips (`LinearProbe.set_input_statistics`)."""

    def __init__(self, reader: CacheReader, model: LinearProbe, parts: dict[str, list[int]], cfg: ProbeConfig):
        moments, groups = moments_by_speaker(reader, model.streams, parts, "train")
        self.prior = prior_of(moments.of(parts["train"] + parts["val"]))
        self.groups = {part: GroupStatistics(moments, groups[part], self.prior, cfg.adapt_shrink)
                       for part, rows in parts.items() if rows}
        self.model, self.parts, self.lone = model, parts, cfg.adapt_lone
        for stream, (mean, std) in self.prior.items():
            model.set_input_statistics(stream, torch.from_numpy(mean).float(), torch.from_numpy(std).float())

    def __call__(self, part: str, pooled: PooledClips) -> tuple[torch.Tensor, ...]:
        """features (n, F), present (n, F), labels (n,) of `part`'s clips, each with its speaker group's statistics."""
        rows = self.parts[part]
        return self._standardised(pooled(rows), [self.groups[part].table[row] for row in rows])

    def fitting(self, part: str, pooled: PooledClips) -> tuple[torch.Tensor, ...]:
        """A fitting part's clips with their speaker's statistics, and again as lone clips when `lone` > 0 (the whole
        group and the prior, not random groups as the heads draw: the fit stays deterministic)."""
        own = self(part, pooled)
        if not self.lone:
            return own
        lone = self._standardised(pooled(self.parts[part]), [self.prior] * len(self.parts[part]))
        return tuple(torch.cat(halves) for halves in zip(own, lone))

    def _standardised(self, pooled: tuple[torch.Tensor, ...], statistics: list[dict]) -> tuple[torch.Tensor, ...]:
        features, present, labels = pooled  # (n, F), (n, F), (n,)
        chunks, start = [], 0
        for stream in self.model.streams:  # the features are the streams' [mean, std] in this order
            width = self.model.widths[stream]
            mean, std = (torch.from_numpy(np.stack([s[stream][k] for s in statistics])).float() for k in (0, 1))
            chunks.append(adapt_features(features[:, start:start + width], mean, std))  # (n, 2D)
            start += width
        return torch.cat(chunks, -1), present, labels


def logistic_regression(C: float, cfg: ProbeConfig) -> LogisticRegression:
    """The probe's classifier at `C`, fitted to the penalised loss's minimum (`cfg.tol`), so that another machine's
    rounding cannot move a probe figure, as it must not move a baseline."""
    return LogisticRegression(C=C, solver="lbfgs", tol=cfg.tol, max_iter=cfg.max_iter,  # multinomial for 3+ classes
                              class_weight="balanced" if cfg.balance == "loss" else None)


def probe(store: Path, out: Path, cfg: ProbeConfig, show: bool = True) -> ProtocolResult:
    """Fit and test the probe on every split of `cfg.fold` into `out`, as `dfer train` lays out its runs; each clip
    is pooled once (`PooledClips`, of the one reader `run_protocol` opens)."""
    shared: dict[str, PooledClips] = {}

    def run_split(reader: CacheReader, split: Split, run: Path) -> dict:
        pooled = shared.setdefault("pooled", PooledClips(reader, cfg.modalities))
        return _probe_split(reader, split, run, cfg, show, pooled)

    result = run_protocol(store, out, cfg, "probe", run_split, show)
    if distributed.ranks().is_main:
        write_card(Path(out))
    return result


def _probe_split(reader: CacheReader, split: Split, run: Path, cfg: ProbeConfig, show: bool,
                 pooled: PooledClips) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    fitted = fit_probe(reader, split, cfg, pooled)
    fit = {"C": fitted.C, "select_metric": cfg.select_metric, "validation": fitted.validation,
           "fitted_on": ["train", "val"] if split.val else ["train"],
           "iterations": int(fitted.classifier.n_iter_.max())}  # lbfgs's, of the final fit
    write_json(run / "config.json", run_config(reader, split, model="probe", probe=cfg.to_dict(),
                                                          heads=fitted.model.config, fit=fit))
    save_weights(fitted.model, run / "best.safetensors")
    if show:
        chosen = (f"C {fitted.C:.3g} by validation {cfg.select_metric}" if split.val
                  else f"C {fitted.C:.3g} (no validation clips)")
        console.print(f"[bold]{run}[/]: linear probe on {len(split.train)} train + {len(split.val)} val clips, "
                      f"{len(split.test)} test clips; {chosen}")
        for note in split.notes:
            console.print(f"  {note}")
    if not split.test:
        return {}
    features, present, labels = fitted.adapted("test", pooled) if fitted.adapted else pooled(split.test)  # (n, F) ...
    with torch.no_grad():
        probs = fitted.model.linear(fitted.model.standardise(features, present)).softmax(-1)  # its forward, pooled
    return write_test_results(run, reader, split.name, split.test, labels.numpy(), probs.numpy(),
                              f"{reader.attrs['dataset']} {split.name} linear probe", show, C=fitted.C,
                              protocol=PROTOCOLS[cfg.adapt])
