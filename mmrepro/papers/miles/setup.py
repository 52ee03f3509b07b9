"""The MILES experimental setup (MILES Sec. IV-B): a joint-fusion network per dataset, the
balancing methods with their search spaces, and one training run as a search candidate.

* Architecture: one encoder per modality (ResNet-10 for image-like modalities, an MLP for
  tabular views), concatenation or summation fusion and a linear fusion head, trained by Adam
  (0.9, 0.999).
* Losses, as each method's paper trains: Vanilla ("two encoders, fused, a linear layer"), MSLR-K/S/D,
  MSES, OGM and OGM-GE optimise the fused loss only; MILES (eq. 3, an assumption of the method,
  Sec. III-D) and G-Blend (weighted unimodal and fused losses) add one linear head per modality
  with its own loss (:data:`UNIMODAL_LOSSES`).
* Unimodal accuracies (Tables II-III) come, for every method alike, from a linear probe fitted on the
  frozen embeddings of the selected checkpoint (:func:`probe_accuracy`): it measures what each
  encoder has learnt and feeds it no gradient. Probes trained alongside on the detached embeddings
  (``MultimodalNet(probes=True)``) give the per-epoch unimodal validation accuracies that MSES and
  MSLR-D monitor and Figure 1 plots; MILES's u (eq. 4) and G-Blend's weights read the unimodal heads
  their papers train.
* Methods: Vanilla, MSLR-K/S/D, OGM, OGM-GE, MSES, G-Blend and MILES (:data:`BALANCING_METHODS`), built from
  a sampled configuration by :func:`make_method`; their spaces come from :func:`method_space`.
* Selection: the checkpoint with the best validation accuracy of the fusion head; u (MILES eq. 4)
  uses accuracy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import torch

from mmrepro.core.balancing import MSES, MSLR, OGM, BalancingMethod, GBlend
from mmrepro.core.models import FUSION_HEAD, MLPEncoder, MultimodalNet, ResNetEncoder
from mmrepro.core.models.fusion import PROBE
from mmrepro.core.trainer import evaluate, fit_many
from mmrepro.papers.miles.scheduler import MILES
from mmrepro.runs.keys import dataset_fingerprint, fingerprint
from mmrepro.runs.space import Choice, LogUniform, Uniform

BALANCING_METHODS = ("vanilla", "mslr-k", "mslr-s", "mslr-d", "ogm", "ogm-ge", "mses", "gblend", "miles")
LABELS = {"vanilla": "Vanilla", "mslr-k": "MSLR-K", "mslr-s": "MSLR-S", "mslr-d": "MSLR-D", "ogm": "OGM",
          "ogm-ge": "OGM-GE", "mses": "MSES", "gblend": "G-Blend", "miles": "MILES"}
#: methods whose papers train a supervised head per modality beside the fused one (MILES eq. 3, G-Blend)
UNIMODAL_LOSSES = ("gblend", "miles")
IMAGE_KINDS = ("image", "spectrogram")
METRIC = "accuracy"


@dataclass(frozen=True)
class Arch:
    """Encoder settings: ResNet (depth, base width, stem) for image-like modalities, MLP hidden sizes
    for tabular ones. The paper's S-MNIST backbone is ResNet-10 (width 64); narrower widths keep the
    ``book`` profile on a laptop CPU."""

    resnet_depth: int = 10
    resnet_width: int = 64
    resnet_stem: str = "imagenet"
    mlp_hidden: tuple[int, ...] = (64,)


def flattened(data):
    """``data`` with every image-like modality flattened to a vector and standardised with the training
    rows' statistics (kind ``tabular``): MLP encoders in place of ResNet-10, the ``book`` profile's
    stand-in for the paper's backbone on a laptop CPU. Rows, targets and splits are unchanged."""
    from dataclasses import replace

    from mmrepro.core.data.splits import standardize

    kinds = dict(data.meta.get("modality_kinds", {}))
    x = dict(data.x)
    for m, kind in kinds.items():
        if kind in IMAGE_KINDS:
            x[m] = standardize(x[m].reshape(len(x[m]), -1), data.splits["train"])[0]
            kinds[m] = "tabular"
    return replace(data, x=x, meta={**data.meta, "modality_kinds": kinds, "flattened": True})


def build_encoder(data, modality: str, arch: Arch) -> torch.nn.Module:
    """ResNet for ``image``/``spectrogram`` modalities, MLP for ``tabular`` ones (``meta["modality_kinds"]``)."""
    kind = data.meta.get("modality_kinds", {}).get(modality)
    x = data.x[modality]
    if kind in IMAGE_KINDS:
        return ResNetEncoder(arch.resnet_depth, in_channels=x.shape[1] if x.dim() == 4 else 1,
                             width=arch.resnet_width, stem=arch.resnet_stem)
    if kind == "tabular":
        return MLPEncoder(x.shape[1], arch.mlp_hidden)
    raise ValueError(f"modality {modality!r} has kind {kind!r}; this setup handles {IMAGE_KINDS + ('tabular',)}")


def build_model(data, fusion: str, arch: Arch, modalities: Sequence[str] | None = None,
                multihead: bool = True, probes: bool = False) -> MultimodalNet:
    """The vanilla joint-fusion network of MILES Sec. IV-B on ``modalities`` (default: all of ``data``);
    ``multihead`` adds the supervised unimodal heads of eq. 3, ``probes`` the detached probes."""
    mods = list(modalities or data.modalities)
    task = next(iter(data.tasks.values()))
    return MultimodalNet({m: build_encoder(data, m, arch) for m in mods}, task.kind, task.n_outputs,
                         fusion=fusion, multihead=multihead, probes=probes)


def method_space(name: str, lr: LogUniform, epochs: int, taus: Sequence[float] | None = None) -> dict[str, Any]:
    """Random-search space of a method: the global learning rate plus the method's own settings, in the
    ranges its paper or reference code gives where they give them (OGM/OGM-GE alpha in [0.1, 0.8], the
    reference code's range; MSLR-D re-scales every 5 epochs, the public reimplementation's interval;
    MILES mu in {0.1, 0.25, 0.5, 0.75} from Table V's range). MILES's tau is drawn from ``taus``, which
    should span the gaps delta that training actually reaches (default: the paper's {0, 0.05, 0.1, 0.2,
    0.3}). Where no paper gives a range (MSLR-S's pull, MSES's patience, G-Blend's window) it is ours;
    window-type settings are capped at half the epochs."""
    if name not in BALANCING_METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(BALANCING_METHODS)}")
    if taus is not None and (len(taus) == 0 or any(not 0 <= t <= 1 for t in taus)):
        raise ValueError(f"taus must be a non-empty list of values in [0, 1] (MILES Sec. III-D), got {list(taus)}")
    cap = max(2, epochs // 2)
    windows = Choice([w for w in (2, 3, 5) if w <= cap])
    extra: dict[str, Any] = {
        "vanilla": {}, "mslr-k": {}, "mslr-s": {"smooth": Uniform(0.25, 1.0)}, "mslr-d": {"interval": min(5, cap)},
        "ogm": {"alpha": Uniform(0.1, 0.8)}, "ogm-ge": {"alpha": Uniform(0.1, 0.8)},
        "mses": {"patience": windows}, "gblend": {"window": windows},
        "miles": {"tau": Choice(list(taus) if taus is not None else [0.0, 0.05, 0.1, 0.2, 0.3]),
                  "mu": Choice([0.1, 0.25, 0.5, 0.75])},
    }[name]
    return {"lr": lr, **extra}


def make_method(name: str, config: Mapping[str, Any], unimodal_lr: Mapping[str, float] | None = None
                ) -> BalancingMethod | None:
    """The balancing method ``name`` for a sampled configuration (None for vanilla). MSLR needs the
    best unimodal learning rates (``unimodal_lr``, from the Table I search)."""
    if name == "vanilla":
        return None
    if name.startswith("mslr"):
        if not unimodal_lr:
            raise ValueError("MSLR keeps the best unimodal learning rates: pass unimodal_lr={modality: lr}")
        strategy = {"mslr-k": "keep", "mslr-s": "smooth", "mslr-d": "dynamic"}[name]
        return MSLR(dict(unimodal_lr), strategy=strategy, smooth=config.get("smooth", 0.5),
                    interval=config.get("interval", 5), metric=METRIC)
    if name in ("ogm", "ogm-ge"):
        return OGM(alpha=config["alpha"], ge=name == "ogm-ge")
    if name == "mses":
        return MSES(patience=config["patience"], metric=METRIC)
    if name == "gblend":
        return GBlend(window=config["window"])
    if name == "miles":
        return MILES(tau=config["tau"], mu=config["mu"], metric=METRIC, split=config.get("u_split", "val"))
    raise ValueError(f"unknown method {name!r}; valid: {', '.join(BALANCING_METHODS)}")


def probe_accuracy(model: MultimodalNet, train, test, modality: str) -> float:
    """Test accuracy of a linear probe (standardised features, multinomial logistic regression, L2 with
    C = 1) fitted on ``modality``'s frozen embeddings of the training rows. Solved by Newton-CG to a
    gradient tolerance of 1e-6: on these ReLU embeddings lbfgs stops at its default tolerance with
    coefficients 0.1 away from the optimum, after 10x the iterations (``bench/bench_probe.py``).

    A probe trained alongside the network is still far from converged at an early selected epoch
    (on AV digits 53 % against 80 % for the refitted probe at epoch 1), which would charge the probe's
    own slowness to the encoder; refitting on the selected checkpoint measures the encoder alone."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    task = next(iter(train.tasks))

    @torch.no_grad()
    def embed(split):
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        z = torch.cat([model.encode({m: v[i:i + 1024].to(dev) for m, v in split.x.items()},
                                    {m: v[i:i + 1024].to(dev) for m, v in split.present.items()})[0][modality]
                       for i in range(0, split.n, 1024)])
        model.train(was)
        return z.cpu().double().numpy(), split.y[task].long().numpy()

    x_tr, y_tr = embed(train)
    x_te, y_te = embed(test)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, solver="newton-cg", tol=1e-6, max_iter=1000))
    return float(probe.fit(x_tr, y_tr).score(x_te, y_te))


def report_name(head: str) -> str:
    """How a head's test accuracy is reported: fusion as is, a supervised unimodal head as ``head:m``,
    a probe trained alongside as ``probe:m`` (the refitted probe of :func:`probe_accuracy` is ``m``)."""
    return head if head == FUSION_HEAD or head.startswith(PROBE) else f"head:{head}"


@dataclass
class JointRun:
    """One trained configuration (a search candidate, plain data): validation score, selected epoch,
    per-epoch history and the balancing method's decisions. Every head's test accuracy is computed
    when training ends (``sealed_test``) and revealed once, by :meth:`evaluate_test`. Its keys:
    ``fusion``; per modality ``m`` the refitted probe (``m``: the unimodal accuracy every method
    reports, :func:`probe_accuracy`), the probe trained alongside (``probe:m``) and, for models trained
    with unimodal losses, the supervised head (``head:m``)."""

    config: dict[str, Any]
    seed: int
    score: float
    best_epoch: int
    history: list[dict[str, Any]]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    sealed_test: dict[str, float] = field(default_factory=dict, repr=False)
    tested: bool = False

    def evaluate_test(self) -> dict[str, float]:
        if self.tested:
            raise RuntimeError("this run was already evaluated on the test split (test is used once)")
        self.tested = True
        return {**self.sealed_test, "best_epoch": self.best_epoch}

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


class JointObjective:
    """``objective(config, seed) -> JointRun``: one method and fusion of a :class:`JointSetup` (or a
    unimodal model, ``method="unimodal"``), with the run key of :mod:`mmrepro.runs.protocol`."""

    def __init__(self, setup: JointSetup, method: str, fusion: str, modalities: Sequence[str], multihead: bool,
                 unimodal_lr: Mapping[str, float] | None = None) -> None:
        self.setup, self.method, self.fusion = setup, method, fusion
        self.modalities, self.multihead = list(modalities), multihead
        self.unimodal_lr = dict(unimodal_lr) if unimodal_lr else None

    @property
    def device(self) -> Any:
        return self.setup.device

    def __call__(self, config: dict[str, Any], seed: int) -> JointRun:
        return self.many([(config, seed)])[0]

    def many(self, jobs: Sequence[tuple[dict[str, Any], int]]) -> list[JointRun]:
        """Every ``(config, seed)`` job at once, as one stacked model (:func:`mmrepro.core.trainer.fit_many`);
        each run is the one ``objective(config, seed)`` trains (every job of this objective shares the
        architecture, so any of them may share a call)."""
        s = self.setup
        probes = self.method != "unimodal"
        models, methods = [], []
        for config, seed in jobs:
            torch.manual_seed(seed)
            models.append(build_model(s.data, self.fusion, s.arch, self.modalities, self.multihead, probes=probes))
            methods.append(None if self.method == "unimodal" else make_method(self.method, config, self.unimodal_lr))
        results = fit_many(models, s.train, s.val, methods=methods, lrs=[c["lr"] for c, _ in jobs],
                           seeds=[seed for _, seed in jobs], epochs=s.epochs, batch_size=s.batch_size,
                           metrics=(METRIC,), select_metric=METRIC, u_metric=METRIC, device=s.device, progress=False)
        runs = []
        for (config, seed), res in zip(jobs, results):
            ev = evaluate(res.model, s.test, metrics=(METRIC,))
            heads = [FUSION_HEAD] + [m for m in self.modalities if self.multihead] + res.model.probe_names
            sealed = {report_name(h): ev[f"{h}/{METRIC}"] for h in heads}
            if probes:
                sealed.update({m: probe_accuracy(res.model, s.train, s.test, m) for m in self.modalities})
            runs.append(JointRun(dict(config), seed, float(res.best_score), res.best_epoch, res.history,
                            list(getattr(res.method, "decisions", [])), sealed))
        return runs

    def key(self, config: dict[str, Any], seed: int) -> dict[str, Any]:
        s = self.setup
        return {"objective": "miles-joint", "method": self.method, "fusion": self.fusion,
                "modalities": self.modalities, "multihead": self.multihead, "unimodal_lr": self.unimodal_lr,
                "probes": "alongside + refitted" if self.method != "unimodal" else None,
                "arch": asdict(s.arch), "epochs": s.epochs, "batch_size": s.batch_size,
                "device": torch.device(s.device).type, "data": s.fingerprint, "config": config, "seed": seed}


class JointSetup:
    """Train/val/test splits of one dataset plus the fixed training settings; :meth:`objective` gives
    the search objective for a method and fusion, :meth:`unimodal_objective` for a unimodal model.

    ``train_rows`` (optional) keeps a random subset of that many training rows (fixed by ``data_seed``),
    the ``book`` profile's way of staying within its CPU budget.
    """

    def __init__(self, data, arch: Arch, epochs: int, batch_size: int = 64, device: Any = "cpu",
                 train_rows: int | None = None, data_seed: int = 0, modalities: Sequence[str] | None = None) -> None:
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"need epochs >= 1 and batch_size >= 1, got {epochs}, {batch_size}")
        self.data, self.arch, self.epochs, self.batch_size, self.device = data, arch, epochs, batch_size, device
        self.modalities = list(modalities or data.modalities)
        train = data.split("train")
        if train_rows:
            if train_rows > train.n:
                raise ValueError(f"train_rows={train_rows} exceeds the {train.n} training rows of {data.name}")
            perm = torch.randperm(train.n, generator=torch.Generator().manual_seed(data_seed))
            train = train.subset(perm[:train_rows].sort().values)
        self.train, self.val, self.test = train, data.split("val"), data.split("test")
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """Digest of the training, validation and test rows (part of every run key)."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(*(dataset_fingerprint(d) for d in (self.train, self.val, self.test)))
        return self._fingerprint

    def objective(self, method: str, fusion: str, unimodal_lr: Mapping[str, float] | None = None,
                  unimodal_losses: bool | None = None) -> JointObjective:
        """``objective(config, seed) -> JointRun`` for ``method`` with ``fusion`` ("concat" or "sum").

        The network gets the supervised unimodal heads of eq. 3 when the method's paper trains them
        (:data:`UNIMODAL_LOSSES`); ``unimodal_losses`` overrides that (e.g. vanilla training on eq. 3,
        which MILES with mu = 1 must equal)."""
        if fusion not in ("concat", "sum"):
            raise ValueError(f"MILES compares concatenation and summation fusion; got fusion={fusion!r}")
        if method not in BALANCING_METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(BALANCING_METHODS)}")
        multihead = method in UNIMODAL_LOSSES if unimodal_losses is None else bool(unimodal_losses)
        if method in UNIMODAL_LOSSES and not multihead:
            raise ValueError(f"{method} reads the unimodal heads its paper trains; it cannot run with unimodal_losses=False")
        return JointObjective(self, method, fusion, self.modalities, multihead, unimodal_lr)

    def unimodal_objective(self, modality: str) -> JointObjective:
        """``objective(config, seed) -> JointRun`` for a unimodal model of ``modality`` (Table I)."""
        if modality not in self.modalities:
            raise ValueError(f"unknown modality {modality!r}; valid: {self.modalities}")
        return JointObjective(self, "unimodal", "concat", [modality], False)
