"""Typed configuration of the training engine: model sizes, data, optimisation, and presets.

Presets: ``tiny`` runs in minutes on a 2-core CPU (small clips, a small ViT); ``ppma`` follows
Appendix A of the PPMA paper (ViT-B, 16 frames at 224x224, random masking with 4 masks per video,
RandAugment, 2 x 3 test views); ``m2m`` the Mask2Mesh recipe (VideoMAE: tube masking, one mask per
clip, batch 128, 5 x 3 test views). ``paper`` is the old name of ``ppma``. Every field can be set
with ``override(cfg, "section.field", value)`` (the CLI's ``--set section.field=value``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from privvid.errors import PrivvidError


class EngineError(PrivvidError):
    """Bad training input (data, checkpoint, configuration) found before training starts."""


@dataclass(frozen=True)
class ModelConfig:
    """A video ViT over 2x16x16 tubelets (sizes: nano, tiny, small, base)."""

    size: str = "tiny"
    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    tubelet: int = 2
    patch: int = 16
    frames: int = 16
    image_size: int = 224
    decoder_dim: int = 96
    decoder_depth: int = 4
    decoder_heads: int = 3
    drop_path: float = 0.0
    pos_embed: str = "sincos3d"   # sincos3d (channels split over t, h, w) | sincos1d (VideoMAE / HF: over the
                                  # token index, interleaved sin/cos)
    grad_checkpoint: bool = False  # recompute each block in the backward pass (less memory, ~30% slower)

    @property
    def grid(self) -> tuple[int, int, int]:
        return (self.frames // self.tubelet, self.image_size // self.patch, self.image_size // self.patch)

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def patch_dim(self) -> int:
        """Values in one tubelet: tubelet x patch x patch x 3."""
        return self.tubelet * self.patch * self.patch * 3

    def arch(self) -> dict[str, Any]:
        """The fields that decide parameter shapes (two checkpoints are compatible iff these match)."""
        return {k: getattr(self, k) for k in ("dim", "depth", "heads", "mlp_ratio", "tubelet", "patch", "pos_embed")}


ARCH_DEFAULTS = {"pos_embed": "sincos3d"}  # what checkpoints written before a field existed used


SIZES: dict[str, dict[str, Any]] = {
    # nano is for tests only: two blocks, seconds per step on a laptop
    "nano": dict(dim=64, depth=2, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2),
    "tiny": dict(dim=192, depth=12, heads=3, decoder_dim=96, decoder_depth=4, decoder_heads=3),
    "small": dict(dim=384, depth=12, heads=6, decoder_dim=192, decoder_depth=4, decoder_heads=3),
    "base": dict(dim=768, depth=12, heads=12, decoder_dim=384, decoder_depth=4, decoder_heads=6),
}


def model_config(size: str, **overrides: Any) -> ModelConfig:
    if size not in SIZES:
        raise EngineError(f"unknown model size {size!r}; choose one of: {', '.join(SIZES)}")
    return ModelConfig(size=size, **{**SIZES[size], **overrides})


def short_side_for(side: int) -> int:
    """The decode-time short side for square crops of ``side`` px: VideoMAE's 256 for 224, in proportion, to a
    multiple of 8 (72 for 64, 128 for 112)."""
    return max(side, 8 * round(side * 8 / 7 / 8))


@dataclass(frozen=True)
class DataConfig:
    frames: int = 16              # frames per clip
    stride: int = 4               # take every stride-th frame
    size: int = 224               # square crop side
    short_side: int = 256         # decode-time resize of the short side (train crops from this)
    scale: tuple[float, float] = (0.5, 1.0)   # random-resized-crop area range (train)
    flip: bool = True
    erase: float = 0.0            # random-erasing probability (train)
    workers: int = 2
    clips_per_video: int = 1      # test: temporal clips per video (evenly spaced), softmax averaged
    crops: int = 1                # test: spatial crops per clip (1 = centre, 3 = both ends and centre)
    randaug_n: int = 0            # train: RandAugment operations per clip (0 = off), same on every frame
    randaug_m: int = 0            # train: RandAugment magnitude (0..30)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 8e-4              # peak learning rate
    start_lr: float = 5e-7        # warmup starts here
    min_lr: float = 1e-6          # cosine ends here
    warmup_epochs: float = 10.0
    epochs: int = 200
    batch_size: int = 128         # global batch of loaded clips (split across DDP ranks; MAE x repeats)
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    clip_grad: float | None = None
    layer_decay: float = 1.0      # block i of L gets lr * layer_decay ** (L + 1 - i) (1 = off)
    accum: int = 1                # micro-batches per optimizer step (the step still sees batch_size clips)


@dataclass(frozen=True)
class MAEConfig:
    mask: str = "random"          # random | tube
    ratio: float = 0.9
    repeats: int = 1              # each clip repeated with different masks (OmniMAE: 4)
    norm_pix: bool = True
    target: str = "videomae"      # videomae: each patch normalised per channel on [0, 1] pixels (VideoMAE,
                                  # HF, PPMA); pooled: normalised over all channels of the normalised input


@dataclass(frozen=True)
class SupervisedConfig:
    label_smoothing: float = 0.1
    mixup: float = 0.8            # Beta(a, a); 0 = off
    cutmix: float = 1.0           # Beta(a, a); 0 = off
    mix_prob: float = 1.0
    linear_probe: bool = False


@dataclass(frozen=True)
class TrainConfig:
    task: str = "mae"             # mae | align | ft | lp
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    sup: SupervisedConfig = field(default_factory=SupervisedConfig)
    seed: int = 0
    bf16: bool = True             # precision "auto": bf16 autocast on CUDA and on CPUs with bf16 instructions
    precision: str = "auto"       # auto (see bf16; else fp32) | bf16 (CUDA or CPU) | fp16 (CUDA,
                                  # with a gradient scaler: GPUs without bf16) | fp32
    compile: bool = False         # torch.compile the model (CUDA: ~1.2x on ViT-B steps after ~30 s compiling)
    threads: int = 0              # torch threads per process (0 = torch's default)
    log_every: int = 10
    save_every_epochs: int = 1
    val_every: int = 0            # validate every N epochs and keep the best checkpoint in best/ (0 = last only)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    def check(self) -> "TrainConfig":
        """Raise :class:`EngineError` naming the first setting out of its range (before any work: a ratio of
        masked tokens of 0 would only show as a NaN loss at the first step, one of 2 as nothing)."""
        m, o, d = self.model, self.optim, self.data

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise EngineError(what)

        def numbers(value: Any, where: str) -> Any:
            if isinstance(value, dict):
                for key, item in value.items():
                    yield from numbers(item, f"{where}.{key}" if where else key)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    yield from numbers(item, where)
            elif isinstance(value, float):
                yield where, value

        for where, value in numbers(asdict(self), ""):   # inf and nan pass every comparison below that nan fails
            need(math.isfinite(value), f"{where} must be a finite number, got {value}")
        need(m.dim >= 1 and m.depth >= 1 and m.heads >= 1, f"model.dim, model.depth and model.heads must be at "
             f"least 1, got {m.dim}, {m.depth}, {m.heads}")
        need(m.dim % m.heads == 0, f"model.dim {m.dim} must split into model.heads {m.heads} equal heads")
        need(m.tubelet >= 1 and m.patch >= 1 and m.frames % m.tubelet == 0 and m.image_size % m.patch == 0,
             f"model.frames {m.frames} must be a multiple of model.tubelet {m.tubelet} and model.image_size "
             f"{m.image_size} of model.patch {m.patch}")
        need(m.mlp_ratio > 0 and 0 <= m.drop_path < 1, f"model.mlp_ratio must be > 0 and model.drop_path in "
             f"[0, 1), got {m.mlp_ratio}, {m.drop_path}")
        need(0 < self.mae.ratio < 1, f"mae.ratio (the share of tokens masked) must be in (0, 1), got {self.mae.ratio}")
        need(self.mae.repeats >= 1, f"mae.repeats must be at least 1, got {self.mae.repeats}")
        need(o.epochs >= 1, f"epochs must be at least 1, got {o.epochs}")
        need(o.batch_size >= 1 and o.accum >= 1, f"batch size and accum must be at least 1, got {o.batch_size}, "
             f"{o.accum}")
        need(o.lr > 0 and o.start_lr >= 0 and o.min_lr >= 0 and o.warmup_epochs >= 0 and o.weight_decay >= 0,
             "lr must be > 0; start_lr, min_lr, warmup_epochs and weight_decay >= 0")
        need(d.frames >= 1 and d.stride >= 1 and d.size >= 1, f"data.frames, data.stride and data.size must be at "
             f"least 1, got {d.frames}, {d.stride}, {d.size}")
        need(d.clips_per_video >= 1 and d.crops >= 1, f"data.clips_per_video and data.crops must be at least 1, got "
             f"{d.clips_per_video}, {d.crops}")
        need(m.decoder_dim >= 1 and m.decoder_heads >= 1 and m.decoder_depth >= 1
             and m.decoder_dim % m.decoder_heads == 0, f"model.decoder_dim {m.decoder_dim} must split into "
             f"model.decoder_heads {m.decoder_heads} equal heads (and decoder_depth {m.decoder_depth} >= 1)")
        need(0 < d.scale[0] <= d.scale[1] <= 1, f"data.scale (the crop's share of the frame's area, low,high) must "
             f"satisfy 0 < low <= high <= 1, got {d.scale[0]},{d.scale[1]}")
        need(0 <= d.erase <= 1, f"data.erase (a probability) must be in [0, 1], got {d.erase}")
        need(d.randaug_n >= 0 and 0 <= d.randaug_m <= 30, f"data.randaug_n must be >= 0 and data.randaug_m (the "
             f"magnitude) in 0..30, got {d.randaug_n}, {d.randaug_m}")
        sup = self.sup
        need(0 <= sup.label_smoothing < 1 and sup.mixup >= 0 and sup.cutmix >= 0 and 0 <= sup.mix_prob <= 1,
             f"sup.label_smoothing must be in [0, 1), sup.mixup and sup.cutmix >= 0, sup.mix_prob in [0, 1]; got "
             f"{sup.label_smoothing}, {sup.mixup}, {sup.cutmix}, {sup.mix_prob}")
        need(self.threads >= 0, f"threads must be 0 (torch's choice) or more, got {self.threads}")
        need(self.task in ("mae", "align", "ft", "lp"), f"task must be mae, align, ft or lp, got {self.task!r}")
        need(self.log_every >= 1 and self.save_every_epochs >= 1 and self.val_every >= 0,
             f"log_every and save_every_epochs must be at least 1 and val_every at least 0, got {self.log_every}, "
             f"{self.save_every_epochs}, {self.val_every}")
        return self

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        def build(tp: Any, value: dict[str, Any]) -> Any:
            kwargs = {}
            for f in fields(tp):
                if f.name not in value:
                    continue
                v = value[f.name]
                sub = _SUBCONFIGS.get(f.name)
                if sub is not None and isinstance(v, dict):
                    v = build(sub, v)
                elif isinstance(v, list):
                    v = tuple(v)
                kwargs[f.name] = v
            return tp(**kwargs)

        return build(cls, d)

    def with_(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)


_SUBCONFIGS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "mae": MAEConfig,
               "sup": SupervisedConfig}
_CHOICES = {"mae.mask": ("random", "tube"), "mae.target": ("videomae", "pooled"),
            "precision": ("auto", "bf16", "fp16", "fp32"), "model.pos_embed": ("sincos3d", "sincos1d")}


# settings a --set cannot change alone: the label would no longer say what runs
_SET_ELSEWHERE = {"task": "the command sets it (train mae|align, eval ft|lp)",
                  "model.size": "--size sets it, with the width, depth and heads it names (a protocol: \"size\")"}


def _parse(value: Any, kind: str, where: str) -> Any:
    """A CLI / protocol value for a field declared as ``kind`` (its annotation, e.g. ``"float | None"``,
    ``"tuple[float, float]"``): text is parsed, other values are checked; a mismatch is an EngineError."""
    optional = "None" in kind
    base = kind.replace("| None", "").replace("None |", "").strip()
    text = value.strip() if isinstance(value, str) else None
    if optional and (value is None or (text is not None and text.lower() in ("none", "null"))):
        return None
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if text is None or text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if base == "int":
            if isinstance(value, bool) or (not isinstance(value, (int, str))):
                raise ValueError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if base.startswith("tuple["):
            parts = [p.strip() for p in base[len("tuple["):-1].split(",")]
            items = value if isinstance(value, (list, tuple)) else str(value).replace("(", "").replace(")", "").split(",")
            if len(items) != len(parts):
                raise ValueError
            return tuple(_parse(v, t, where) for v, t in zip(items, parts))
        if base == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
    except (ValueError, TypeError):
        raise EngineError(f"--set {where}: {value!r} is not a valid {kind}") from None
    return value


def override(cfg: "TrainConfig", key: str, value: Any) -> "TrainConfig":
    """``cfg`` with ``section.field`` (or a top-level field) set to ``value`` (text is parsed to the field's
    type); an unknown name is an EngineError listing the valid ones."""
    parts = key.strip().split(".")
    if key.strip() in _SET_ELSEWHERE:
        raise EngineError(f"--set {key.strip()}: {_SET_ELSEWHERE[key.strip()]}")
    if len(parts) == 1:
        names = {f.name for f in fields(cfg)} - set(_SUBCONFIGS)
        if parts[0] not in names:
            raise EngineError(f"--set {key}: unknown field; top-level fields: {', '.join(sorted(names))}; "
                              f"sections: {', '.join(_SUBCONFIGS)}")
        new = _parse(value, _kind(cfg, parts[0]), key)
        _check_choice(key, new)
        return replace(cfg, **{parts[0]: new})
    if len(parts) != 2 or parts[0] not in _SUBCONFIGS:
        raise EngineError(f"--set {key}: want SECTION.FIELD with SECTION one of {', '.join(_SUBCONFIGS)}")
    section = getattr(cfg, parts[0])
    names = {f.name for f in fields(section)}
    if parts[1] not in names:
        raise EngineError(f"--set {key}: {parts[0]} has no field {parts[1]!r}; it has: {', '.join(sorted(names))}")
    new = _parse(value, _kind(section, parts[1]), key)
    _check_choice(key, new)
    return replace(cfg, **{parts[0]: replace(section, **{parts[1]: new})})


def _kind(obj: Any, name: str) -> str:
    kind = next(f.type for f in fields(obj) if f.name == name)
    return kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))


def _check_choice(key: str, value: Any) -> None:
    if key in _CHOICES and value not in _CHOICES[key]:
        raise EngineError(f"--set {key}: choose one of {', '.join(_CHOICES[key])}, got {value!r}")


def apply_overrides(cfg: "TrainConfig", items: Any) -> "TrainConfig":
    """``["optim.lr=1e-3", ...]`` or ``{"optim.lr": 1e-3}`` applied in order."""
    pairs = items.items() if isinstance(items, dict) else [_split(i) for i in items]
    for key, value in pairs:
        cfg = override(cfg, key, value)
    return cfg


def _split(item: str) -> tuple[str, str]:
    key, sep, value = str(item).partition("=")
    if not sep:
        raise EngineError(f"--set wants SECTION.FIELD=VALUE, got {item!r}")
    return key, value


def _tiny(task: str, size: str) -> TrainConfig:
    data = DataConfig(frames=8, stride=4, size=64, short_side=72, workers=2)
    model = model_config(size, frames=8, image_size=64)
    if task == "mae":
        optim = OptimConfig(lr=1.5e-3, warmup_epochs=1, epochs=10, batch_size=8, betas=(0.9, 0.95))
        return TrainConfig(task=task, model=model, data=data, optim=optim,
                           mae=MAEConfig(mask="tube", ratio=0.9, repeats=2))
    lr = 1.6e-2 if task == "lp" else 2e-3
    optim = OptimConfig(lr=lr, warmup_epochs=1, epochs=10, batch_size=8, betas=(0.9, 0.999))
    return TrainConfig(task=task, model=model, data=data, optim=optim,
                       sup=SupervisedConfig(label_smoothing=0.1, mixup=0.0, cutmix=0.0,
                                            linear_probe=task == "lp"))


def _ppma(task: str, size: str) -> TrainConfig:
    """PPMA, Appendix A: MAE (A.1.1), supervised alignment (A.1.2), FT / LP (A.2). Not in the paper's text and
    taken from its code base's settings: FT weight decay 1e-4, RandAugment m7 n4, layer-wise decay 0.75,
    2 clips x 3 crops at test."""
    data = DataConfig(frames=16, stride=4, size=224, short_side=256, workers=8, erase=0.25)
    model = model_config(size, frames=16, image_size=224)
    if task == "mae":
        # 32 distinct videos x 4 masks = 128 clips per step (OmniMAE-style repeated sampling);
        # batch_size counts loaded videos, the step sees batch_size * repeats clips
        optim = OptimConfig(lr=8e-4, start_lr=5e-7, warmup_epochs=10, epochs=200, batch_size=32, betas=(0.9, 0.95))
        return TrainConfig(task=task, model=model, data=replace(data, erase=0.0), optim=optim,
                           mae=MAEConfig(mask="random", ratio=0.9, repeats=4))
    augment = replace(data, randaug_n=4, randaug_m=7)
    if task == "align":
        optim = OptimConfig(lr=2e-3, start_lr=5e-7, warmup_epochs=6, epochs=50, batch_size=128, betas=(0.9, 0.999))
        return TrainConfig(task=task, model=replace(model, drop_path=0.1), data=augment, optim=optim,
                           sup=SupervisedConfig())
    lp = task == "lp"
    optim = OptimConfig(lr=1.6e-2 if lp else 2e-3, start_lr=5e-7, warmup_epochs=6, epochs=30, batch_size=32,
                        betas=(0.9, 0.999), weight_decay=1e-4, layer_decay=1.0 if lp else 0.75)
    sup = SupervisedConfig(linear_probe=lp, mixup=0.0 if lp else 0.8, cutmix=0.0 if lp else 1.0)
    return TrainConfig(task=task, model=replace(model, drop_path=0.0 if lp else 0.1),
                       data=replace(augment, clips_per_video=2, crops=3), optim=optim, sup=sup)


def _m2m(task: str, size: str) -> TrainConfig:
    """Mask2Mesh (SMPLy Private), its training table: VideoMAE pre-training for 200 epochs (10 warm-up), tube
    masking 0.9, batch 128, max lr 8e-4; alignment 50 epochs (6 warm-up), lr 2e-3; FT / LP 30 epochs. What the
    table leaves open follows VideoMAE's fine-tuning defaults (weight decay 0.05, layer decay 0.75, 5 clips x 3
    crops at test) and PPMA for the LP learning rate."""
    data = DataConfig(frames=16, stride=4, size=224, short_side=256, workers=8)
    model = model_config(size, frames=16, image_size=224)
    if task == "mae":
        optim = OptimConfig(lr=8e-4, start_lr=5e-7, warmup_epochs=10, epochs=200, batch_size=128, betas=(0.9, 0.95))
        return TrainConfig(task=task, model=model, data=data, optim=optim,
                           mae=MAEConfig(mask="tube", ratio=0.9, repeats=1))
    augment = replace(data, randaug_n=2, randaug_m=9, erase=0.25)
    if task == "align":
        optim = OptimConfig(lr=2e-3, start_lr=5e-7, warmup_epochs=6, epochs=50, batch_size=128, betas=(0.9, 0.999))
        return TrainConfig(task=task, model=replace(model, drop_path=0.1), data=augment, optim=optim,
                           sup=SupervisedConfig())
    lp = task == "lp"
    optim = OptimConfig(lr=1.6e-2 if lp else 2e-3, start_lr=5e-7, warmup_epochs=6, epochs=30,
                        batch_size=32, betas=(0.9, 0.999), weight_decay=0.05, layer_decay=1.0 if lp else 0.75)
    sup = SupervisedConfig(linear_probe=lp, mixup=0.0 if lp else 0.8, cutmix=0.0 if lp else 1.0)
    return TrainConfig(task=task, model=replace(model, drop_path=0.0 if lp else 0.1),
                       data=replace(augment, clips_per_video=5, crops=3), optim=optim, sup=sup)


PRESETS = {"tiny": _tiny, "ppma": _ppma, "m2m": _m2m, "paper": _ppma}
DEFAULT_SIZE = {"tiny": "tiny", "ppma": "base", "m2m": "base", "paper": "base"}


def preset(name: str, task: str, size: str | None = None) -> TrainConfig:
    if name not in PRESETS:
        raise EngineError(f"unknown preset {name!r}; choose one of: tiny, ppma, m2m (paper = ppma)")
    if task not in ("mae", "align", "ft", "lp"):
        raise EngineError(f"unknown task {task!r}; choose one of: mae, align, ft, lp")
    return PRESETS[name](task, size or DEFAULT_SIZE[name])
