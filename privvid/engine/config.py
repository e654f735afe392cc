"""Typed configuration of the training engine: model sizes, data, optimisation, and presets.

Presets: ``tiny`` runs in minutes on a 2-core CPU (small clips, a small ViT); ``paper`` follows
Appendix A of the PPMA paper (ViT-B, 16 frames at 224x224, batch 128, AdamW + warmup/cosine).
"""

from __future__ import annotations

import json
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

    @property
    def grid(self) -> tuple[int, int, int]:
        return (self.frames // self.tubelet, self.image_size // self.patch, self.image_size // self.patch)

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def arch(self) -> dict[str, Any]:
        """The fields that decide parameter shapes (two checkpoints are compatible iff these match)."""
        return {k: getattr(self, k) for k in ("dim", "depth", "heads", "mlp_ratio", "tubelet", "patch")}


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
    clips_per_video: int = 1      # eval: clips averaged per video


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


@dataclass(frozen=True)
class MAEConfig:
    mask: str = "random"          # random | tube
    ratio: float = 0.9
    repeats: int = 1              # each clip repeated with different masks (OmniMAE: 4)
    norm_pix: bool = True


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
    bf16: bool = True             # autocast on CUDA only
    compile: bool = False         # torch.compile the model (CUDA: ~1.2x on ViT-B steps after ~30 s compiling)
    log_every: int = 10
    save_every_epochs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

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


def _paper(task: str, size: str) -> TrainConfig:
    """Appendix A of the PPMA paper (and Table 5 of Mask2Mesh for tube masking)."""
    data = DataConfig(frames=16, stride=4, size=224, short_side=256, workers=8, erase=0.25)
    model = model_config(size, frames=16, image_size=224)
    if task == "mae":
        # 32 distinct videos x 4 masks = 128 clips per step (OmniMAE-style repeated sampling);
        # batch_size counts loaded videos, the step sees batch_size * repeats clips
        optim = OptimConfig(lr=8e-4, warmup_epochs=10, epochs=200, batch_size=32, betas=(0.9, 0.95))
        return TrainConfig(task=task, model=model, data=data, optim=optim,
                           mae=MAEConfig(mask="random", ratio=0.9, repeats=4))
    if task == "align":
        optim = OptimConfig(lr=2e-3, warmup_epochs=6, epochs=50, batch_size=128, betas=(0.9, 0.999))
        return TrainConfig(task=task, model=replace(model, drop_path=0.1), data=data, optim=optim,
                           sup=SupervisedConfig())
    lr = 1.6e-2 if task == "lp" else 2e-3
    optim = OptimConfig(lr=lr, warmup_epochs=6, epochs=30, batch_size=32, betas=(0.9, 0.999))
    sup = SupervisedConfig(linear_probe=task == "lp",
                           mixup=0.0 if task == "lp" else 0.8, cutmix=0.0 if task == "lp" else 1.0)
    return TrainConfig(task=task, model=replace(model, drop_path=0.0 if task == "lp" else 0.1),
                       data=data, optim=optim, sup=sup)


PRESETS = {"tiny": _tiny, "paper": _paper}
DEFAULT_SIZE = {"tiny": "tiny", "paper": "base"}


def preset(name: str, task: str, size: str | None = None) -> TrainConfig:
    if name not in PRESETS:
        raise EngineError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    if task not in ("mae", "align", "ft", "lp"):
        raise EngineError(f"unknown task {task!r}; choose one of: mae, align, ft, lp")
    return PRESETS[name](task, size or DEFAULT_SIZE[name])
