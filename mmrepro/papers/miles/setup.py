"""The MILES experimental setup (MILES Sec. IV-B): a joint-fusion network per dataset, the
balancing methods with their search spaces, and one training run as a search candidate.

* Architecture: one encoder per modality (ResNet-10 for image-like modalities, an MLP for
  tabular views), concatenation or summation fusion and a linear fusion head, trained by Adam
  (0.9, 0.999).
* Losses, as each method's paper trains: Vanilla ("two encoders, fused, a linear layer"), MSLR-K/S/D,
  MSES, OGM and OGM-GE optimise the fused loss only; MILES (eq. 3, an assumption of the method,
  Sec. III-D) and G-Blend (weighted unimodal and fused losses) add one linear head per modality
  with its own loss (:data:`UNIMODAL_LOSSES`). The control ``"eq3"`` is eq. 3 without the scheduler
  (MILES with mu = 1): the same network and losses, so that MILES against it isolates Algorithm 1.
* Unimodal accuracies (Tables II-III, Figure 1) are read as the paper most plausibly reads them
  (:data:`READOUT`): a method with unimodal heads (MILES, G-Blend, the eq. 3 control) by those heads; a
  method trained on the fused loss alone by the **fusion-layer split** of OGM-GE's evaluation code,
  whose CREMA-D pipeline the paper uses (:func:`fusion_split_logits`: each modality's half of the
  concatenation layer with half its bias, ``W_m z_m + b/2``; for summation each embedding through the
  shared layer, ``W z_m + b``); a unimodal model by its own head (the split of a one-modality layer is
  the whole layer). Two other readouts are kept as robustness columns: a linear probe refitted on the
  frozen embeddings of the selected checkpoint (:func:`probe_accuracy`, the most generous linear
  readout) and probes trained alongside on the detached embeddings (``MultimodalNet(probes=True)``),
  which give the per-epoch unimodal validation accuracies that MSES and MSLR-D monitor.
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
from mmrepro.core.trainer import fit_many
from mmrepro.papers.miles.scheduler import MILES
from mmrepro.runs.keys import dataset_fingerprint, fingerprint
from mmrepro.runs.space import Choice, LogUniform, Uniform

BALANCING_METHODS = ("vanilla", "mslr-k", "mslr-s", "mslr-d", "ogm", "ogm-ge", "mses", "gblend", "miles")
#: eq. 3 training without the scheduler (MILES with mu = 1): the control that isolates Algorithm 1
CONTROL = "eq3"
METHODS = (*BALANCING_METHODS, CONTROL)
#: one name per method in every table and figure
LABELS = {"vanilla": "Vanilla", "mslr-k": "MSLR-K", "mslr-s": "MSLR-S", "mslr-d": "MSLR-D", "ogm": "OGM",
          "ogm-ge": "OGM-GE", "mses": "MSES", "gblend": "G-Blend", "miles": "MILES", CONTROL: "Eq. 3 only"}
#: methods whose papers train a supervised head per modality beside the fused one (MILES eq. 3, G-Blend)
UNIMODAL_LOSSES = ("gblend", "miles", CONTROL)
#: how each kind of model's unimodal accuracy is read (the key prefix of :class:`JointRun`'s numbers)
READOUT = {"heads": "its own unimodal heads", "split": "the fusion-layer split (OGM-GE's evaluation)",
           "alone": "the unimodal model's own head"}
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
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    if taus is not None and (len(taus) == 0 or any(not 0 <= t <= 1 for t in taus)):
        raise ValueError(f"taus must be a non-empty list of values in [0, 1] (MILES Sec. III-D), got {list(taus)}")
    cap = max(2, epochs // 2)
    windows = Choice([w for w in (2, 3, 5) if w <= cap])
    extra: dict[str, Any] = {
        "vanilla": {}, CONTROL: {}, "mslr-k": {}, "mslr-s": {"smooth": Uniform(0.25, 1.0)}, "mslr-d": {"interval": min(5, cap)},
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
    if name in ("vanilla", CONTROL):
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
    raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")


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


def fusion_split_logits(model: MultimodalNet, emb: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each modality's logits from its own part of the fusion layer, as OGM-GE's evaluation code scores
    the modalities of a model trained on the fused loss alone: concatenation, ``W_m z_m + b / 2`` (the
    modality's block of the weight, half the bias, :meth:`MultimodalNet.fusion_contributions`); summation,
    ``W z_m + b``, each embedding through the shared layer (OGM-GE's summation has one layer per modality,
    each with its bias; here the layer is shared). Either is the fused prediction with the other
    modality's embedding set to zero, up to the bias shared between the halves."""
    if model.fusion == "concat":
        return model.fusion_contributions(emb)
    if model.fusion == "sum":
        head = model.heads[FUSION_HEAD]
        return {m: head(model.proj[m](emb[m])) for m in model.modalities}
    raise ValueError(f"the fusion-layer split needs concatenation or summation, got fusion={model.fusion!r}")


class _Given(torch.nn.Module):
    """An encoder that passes a given embedding through (the reference readout below starts from embeddings)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return x


def reference_split_accuracies(weight: Any, bias: Any, z_a: Any, z_b: Any, y: Any) -> tuple[float, float]:
    """The accuracy of each modality's part of a concatenation fusion layer (``weight`` (C, d_A + d_B),
    ``bias`` (C,)) on embeddings ``z_a`` (N, d_A), ``z_b`` (N, d_B) with labels ``y`` (N,): modality A
    predicts ``argmax(W_A z_A + b / 2)`` (:func:`fusion_split_logits` on a network built around the given
    layer). ValueError when the shapes do not fit together."""
    w, b = torch.as_tensor(weight, dtype=torch.float64), torch.as_tensor(bias, dtype=torch.float64)
    za, zb = torch.as_tensor(z_a, dtype=torch.float64), torch.as_tensor(z_b, dtype=torch.float64)
    labels = torch.as_tensor(y)
    if w.dim() != 2 or b.shape != (w.shape[0],) or za.dim() != 2 or zb.dim() != 2 or \
            w.shape[1] != za.shape[1] + zb.shape[1] or not len(za) == len(zb) == len(labels):
        raise ValueError(f"weight (C, d_A + d_B), bias (C,), z_a (N, d_A), z_b (N, d_B) and y (N,) must fit together; "
                         f"got {tuple(w.shape)}, {tuple(b.shape)}, {tuple(za.shape)}, {tuple(zb.shape)}, "
                         f"{tuple(labels.shape)}")
    model = MultimodalNet({"a": _Given(za.shape[1]), "b": _Given(zb.shape[1])}, "multiclass", w.shape[0],
                          fusion="concat", multihead=False).double()
    with torch.no_grad():
        model.heads[FUSION_HEAD].weight.copy_(w)
        model.heads[FUSION_HEAD].bias.copy_(b)
        logits = fusion_split_logits(model, {"a": za, "b": zb})
    return tuple(float((logits[m].argmax(-1) == labels).double().mean()) for m in ("a", "b"))


@torch.no_grad()
def readout_logits(model: MultimodalNet, split, batch_size: int = 1024) -> dict[str, torch.Tensor]:
    """Every readout's logits on the rows of ``split`` (eval mode): ``fusion``; per modality ``m`` of a
    multimodal model the fusion-layer split (``split:m``, :func:`fusion_split_logits`), the unimodal head
    (``head:m``, models with unimodal heads) and the probe trained alongside (``probe:m``, with probes)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, split.n, batch_size):
        x = {m: v[i:i + batch_size].to(dev) for m, v in split.x.items()}
        present = {m: v[i:i + batch_size].to(dev) for m, v in split.present.items()}
        out = model(x, present)
        found = {FUSION_HEAD: out.logits[FUSION_HEAD]}
        if len(model.modalities) > 1:
            found.update({f"split:{m}": z for m, z in fusion_split_logits(model, out.embeddings).items()})
        for h, z in out.logits.items():
            if h != FUSION_HEAD:
                found[h if h.startswith(PROBE) else f"head:{h}"] = z
        for h, z in found.items():
            parts.setdefault(h, []).append(z.cpu())
    model.train(was)
    return {h: torch.cat(v) for h, v in parts.items()}


def readout_of(modality: str, multihead: bool, unimodal: bool) -> str:
    """The key of the paper's readout of ``modality`` (:data:`READOUT`): a unimodal model's own head
    (``fusion``), the unimodal head of a model trained with unimodal losses, else the fusion-layer split."""
    return FUSION_HEAD if unimodal else f"head:{modality}" if multihead else f"split:{modality}"


@dataclass
class JointRun:
    """One trained configuration (a search candidate, plain data): validation score, selected epoch,
    per-epoch history and the balancing method's decisions. Every readout's test accuracy is computed
    when training ends (``sealed_test``) with each test row's correctness (``sealed_rows``, bool per
    row, for intervals that count the test rows) and revealed once, by :meth:`evaluate_test` (the rows
    by :meth:`test_rows` after it). Keys (:func:`readout_logits`): ``fusion``, ``split:m``, ``head:m``,
    ``probe:m``; ``m``, the refitted probe (:func:`probe_accuracy`); ``readout:m``, the paper's readout
    (:func:`readout_of`). ``val_readout`` holds the same accuracies on the validation rows (what a
    search may look at)."""

    config: dict[str, Any]
    seed: int
    score: float
    best_epoch: int
    history: list[dict[str, Any]]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    sealed_test: dict[str, float] = field(default_factory=dict, repr=False)
    sealed_rows: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    val_readout: dict[str, float] = field(default_factory=dict)
    tested: bool = False

    def evaluate_test(self) -> dict[str, float]:
        if self.tested:
            raise RuntimeError("this run was already evaluated on the test split (test is used once)")
        self.tested = True
        return {**self.sealed_test, "best_epoch": self.best_epoch}

    def test_rows(self, key: str) -> torch.Tensor:
        """Whether each test row is predicted correctly by readout ``key`` (after :meth:`evaluate_test`)."""
        if not self.tested:
            raise RuntimeError("the test rows are revealed with the test evaluation: call evaluate_test() first")
        if key not in self.sealed_rows:
            raise KeyError(f"no per-row test record {key!r}; this run has {sorted(self.sealed_rows)}")
        return self.sealed_rows[key]

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
        task = next(iter(s.test.tasks))
        unimodal = self.method == "unimodal"
        runs = []
        for (config, seed), res in zip(jobs, results):
            rows, val = {}, {}
            for split, out in ((s.test, rows), (s.val, val)):
                y = split.y[task].long()
                out.update({h: z.argmax(-1) == y for h, z in readout_logits(res.model, split).items()})
                for m in self.modalities:
                    out[f"readout:{m}"] = out[readout_of(m, self.multihead, unimodal)]
            sealed = {h: float(v.float().mean()) for h, v in rows.items()}
            sealed.update({m: probe_accuracy(res.model, s.train, s.test, m) for m in self.modalities})
            runs.append(JointRun(dict(config), seed, float(res.best_score), res.best_epoch, res.history,
                                 list(getattr(res.method, "decisions", [])), sealed, rows,
                                 {h: float(v.float().mean()) for h, v in val.items()}))
        return runs

    def key(self, config: dict[str, Any], seed: int) -> dict[str, Any]:
        s = self.setup
        return {"objective": "miles-joint", "method": self.method, "fusion": self.fusion,
                "modalities": self.modalities, "multihead": self.multihead, "unimodal_lr": self.unimodal_lr,
                "probes": "alongside + refitted" if self.method != "unimodal" else "refitted",
                "readouts": "fusion-layer split, heads, per-row",
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

    def objective(self, method: str, fusion: str, unimodal_lr: Mapping[str, float] | None = None) -> JointObjective:
        """``objective(config, seed) -> JointRun`` for ``method`` (one of :data:`METHODS`) with ``fusion``
        ("concat" or "sum"). The network gets the supervised unimodal heads of eq. 3 when the method's
        paper trains them (:data:`UNIMODAL_LOSSES`; the eq. 3 control too, which MILES with mu = 1 equals)."""
        if fusion not in ("concat", "sum"):
            raise ValueError(f"MILES compares concatenation and summation fusion; got fusion={fusion!r}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
        return JointObjective(self, method, fusion, self.modalities, method in UNIMODAL_LOSSES, unimodal_lr)

    def unimodal_objective(self, modality: str) -> JointObjective:
        """``objective(config, seed) -> JointRun`` for a unimodal model of ``modality`` (Table I)."""
        if modality not in self.modalities:
            raise ValueError(f"unknown modality {modality!r}; valid: {self.modalities}")
        return JointObjective(self, "unimodal", "concat", [modality], False)
