"""Encoder weights in and out: HF ``transformers`` VideoMAE folders, the VideoMAE code base's checkpoints and
mmaction2's ``VisionTransformer`` (``vit_mae``) backbone checkpoints.

privvid's encoder and VideoMAE's are the same network up to three conventions, which the conversion
handles exactly:

* attention: privvid has one ``qkv`` linear with a bias on q, k and v; VideoMAE has q and v biases and no
  k bias. A bias on k adds the same number to every logit of a query, which softmax removes, so dropping
  it on export changes nothing and importing sets it to zero;
* position embeddings: VideoMAE's fixed 1-D table over the token index (``model.pos_embed = sincos1d``);
  an encoder trained with privvid's default 3-D table exports with a note that HF will use its own table;
* the final norm: HF ``use_mean_pooling=False`` keeps it as ``layernorm`` (privvid's ``encoder.norm``).

Nothing is downloaded; VideoMAE ``.pth`` files are read with torch's ``weights_only`` loader (no code runs).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from privvid.engine.config import EngineError, ModelConfig, TrainConfig

_BLOCK = {  # privvid block parameter -> HF VideoMAE layer parameter
    "norm1.weight": "layernorm_before.weight", "norm1.bias": "layernorm_before.bias",
    "norm2.weight": "layernorm_after.weight", "norm2.bias": "layernorm_after.bias",
    "attn.proj.weight": "attention.output.dense.weight", "attn.proj.bias": "attention.output.dense.bias",
    "fc1.weight": "intermediate.dense.weight", "fc1.bias": "intermediate.dense.bias",
    "fc2.weight": "output.dense.weight", "fc2.bias": "output.dense.bias",
}
_ORIG = {  # privvid block parameter -> VideoMAE code base block parameter
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias", "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias", "attn.proj.weight": "attn.proj.weight", "attn.proj.bias": "attn.proj.bias",
    "fc1.weight": "mlp.fc1.weight", "fc1.bias": "mlp.fc1.bias", "fc2.weight": "mlp.fc2.weight",
    "fc2.bias": "mlp.fc2.bias",
}


def hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """The ``transformers.VideoMAEConfig`` fields of an encoder."""
    return {"model_type": "videomae", "architectures": ["VideoMAEModel"], "image_size": cfg.image_size,
            "patch_size": cfg.patch, "num_channels": 3, "num_frames": cfg.frames, "tubelet_size": cfg.tubelet,
            "hidden_size": cfg.dim, "num_hidden_layers": cfg.depth, "num_attention_heads": cfg.heads,
            "intermediate_size": int(cfg.dim * cfg.mlp_ratio), "hidden_act": "gelu", "qkv_bias": True,
            "layer_norm_eps": 1e-6, "use_mean_pooling": False, "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0}


def to_hf(encoder: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """privvid ``encoder.*`` weights (without the prefix) -> HF ``VideoMAEModel`` state dict."""
    d = cfg.dim
    out = {"embeddings.patch_embeddings.projection.weight": encoder["patch_embed.weight"],
           "embeddings.patch_embeddings.projection.bias": encoder["patch_embed.bias"],
           "layernorm.weight": encoder["norm.weight"], "layernorm.bias": encoder["norm.bias"]}
    for i in range(cfg.depth):
        src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
        w, b = encoder[src + "attn.qkv.weight"], encoder[src + "attn.qkv.bias"]
        out[dst + "attention.attention.query.weight"] = w[:d]
        out[dst + "attention.attention.key.weight"] = w[d:2 * d]
        out[dst + "attention.attention.value.weight"] = w[2 * d:]
        out[dst + "attention.attention.query.bias"] = b[:d]
        out[dst + "attention.attention.value.bias"] = b[2 * d:]   # the k bias cannot change the output
        for ours, theirs in _BLOCK.items():
            out[dst + theirs] = encoder[src + ours]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def from_hf(state: dict[str, torch.Tensor], config: dict[str, Any]) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """HF ``VideoMAEModel`` (or ``VideoMAEForVideoClassification`` / ``ForPreTraining``: their ``videomae.``
    encoder) weights -> (ModelConfig, privvid encoder weights)."""
    prefix = "videomae." if any(k.startswith("videomae.") for k in state) else ""
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if config.get("use_mean_pooling", True) and "layernorm.weight" not in state:
        raise EngineError("this VideoMAE model ends in mean pooling + fc_norm (a fine-tuned classifier); privvid's "
                          "encoder ends in a token norm: import a pre-trained (use_mean_pooling=False) model")
    cfg = _model_config(config, "sincos1d")
    d = cfg.dim
    enc = {"patch_embed.weight": state["embeddings.patch_embeddings.projection.weight"],
           "patch_embed.bias": state["embeddings.patch_embeddings.projection.bias"],
           "norm.weight": state["layernorm.weight"], "norm.bias": state["layernorm.bias"]}
    for i in range(cfg.depth):
        src, dst = f"encoder.layer.{i}.", f"blocks.{i}."
        a = src + "attention.attention."
        enc[dst + "attn.qkv.weight"] = torch.cat([state[a + "query.weight"], state[a + "key.weight"],
                                                   state[a + "value.weight"]])
        q_bias = state.get(a + "query.bias", state.get(a + "q_bias", torch.zeros(d)))
        v_bias = state.get(a + "value.bias", state.get(a + "v_bias", torch.zeros(d)))
        enc[dst + "attn.qkv.bias"] = torch.cat([q_bias, torch.zeros(d, dtype=q_bias.dtype), v_bias])
        for ours, theirs in _BLOCK.items():
            enc[dst + ours] = state[src + theirs]
    return cfg, {k: v.detach().clone().float().contiguous() for k, v in enc.items()}


def _model_config(config: dict[str, Any], pos: str) -> ModelConfig:
    dim, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    depth = int(config["num_hidden_layers"])
    size = next((name for name, s in (("base", 768), ("small", 384), ("tiny", 192)) if s == dim), "custom")
    return ModelConfig(size=size, dim=dim, depth=depth, heads=heads,
                       mlp_ratio=float(config["intermediate_size"]) / dim, tubelet=int(config["tubelet_size"]),
                       patch=int(config["patch_size"]), frames=int(config["num_frames"]),
                       image_size=int(config["image_size"]), decoder_dim=max(32, dim // 2),
                       decoder_heads=max(1, heads // 2), pos_embed=pos)


def save_hf(folder: str | Path, encoder: dict[str, torch.Tensor], cfg: ModelConfig) -> Path:
    """An HF model folder (``config.json`` + ``model.safetensors``) that ``VideoMAEModel.from_pretrained`` loads."""
    from privvid.engine.checkpoint import write_tensors
    from privvid.io.atomic import write_text_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = hf_config(cfg)
    note = export_note(cfg, "hf")
    if note:
        config["privvid_note"] = note
    write_tensors(folder / "model.safetensors", to_hf(encoder, cfg), metadata={"format": "pt"})
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2))
    return folder


def _save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` into memory, then written atomically (a path the system refuses is its own one-line
    error, not the writer's)."""
    import io

    from privvid.io.atomic import write_bytes_atomic

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_hf(folder: str | Path, trust: bool = False) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"{folder} is not an HF model folder (config.json: {exc})") from None
    if isinstance(config, dict) and str(config.get("format", "")).startswith("privvid-engine"):
        raise EngineError(f"{folder} is a privvid checkpoint already: give it to --init as it is")
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
    elif (folder / "pytorch_model.bin").is_file():
        state = load_tensors(folder / "pytorch_model.bin", trust)
    else:
        raise EngineError(f"{folder} has neither model.safetensors nor pytorch_model.bin")
    return from_hf(state, config)


def to_videomae(encoder: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """privvid encoder -> the VideoMAE code base's ``VisionTransformer`` keys (``use_mean_pooling=False``)."""
    d = cfg.dim
    out = {"patch_embed.proj.weight": encoder["patch_embed.weight"], "patch_embed.proj.bias": encoder["patch_embed.bias"],
           "norm.weight": encoder["norm.weight"], "norm.bias": encoder["norm.bias"]}
    for i in range(cfg.depth):
        src, dst = f"blocks.{i}.", f"blocks.{i}."
        b = encoder[src + "attn.qkv.bias"]
        out[dst + "attn.qkv.weight"] = encoder[src + "attn.qkv.weight"]
        out[dst + "attn.q_bias"], out[dst + "attn.v_bias"] = b[:d], b[2 * d:]
        for ours, theirs in _ORIG.items():
            out[dst + theirs] = encoder[src + ours]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def _recorded(record: Any, key: str, given: int | None, default: int | None, path: Any) -> int | None:
    """A size: the one given, else what privvid's export recorded (a whole number >= 1), else ``default``."""
    if given is not None:
        return given
    value = record.get(key) if isinstance(record, dict) else None
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EngineError(f"{path}: its recorded {key} is {value!r}, not a whole number >= 1; pass the size")
    return value


def _recorded_sizes(record: Any, frames: int | None, image_size: int | None, heads: int | None,
                    path: Any) -> tuple[int, int, int | None]:
    """Frames, frame size and heads: those given, else the record's (VideoMAE's key names), else 16, 224 and
    width / 64."""
    frames = _recorded(record, "num_frames", frames, 16, path)
    image_size = _recorded(record, "img_size", image_size, 224, path)
    assert frames is not None and image_size is not None
    return frames, image_size, _recorded(record, "num_heads", heads, None, path)


def from_videomae(path: str | Path, frames: int | None = None, image_size: int | None = None,
                  heads: int | None = None, trust: bool = False) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """A VideoMAE code base checkpoint (``.pth``: ``{"model": state}``; pre-training keys ``encoder.*`` or
    fine-tuning keys) or an mmaction2 one (``{"state_dict": {"backbone.*"}}``) -> (ModelConfig, privvid
    encoder weights). Sizes not given come from what privvid's exports record, else 16 frames of 224 px."""
    raw = load_tensors(Path(path), trust)
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict) and any(
            k.startswith("backbone.") for k in raw["state_dict"]):
        meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
        try:   # privvid's own exports say what they fit
            backbone = json.loads(meta["backbone"]) if isinstance(meta.get("backbone"), str) else {}
        except ValueError:
            backbone = {}
        # an mmaction2 checkpoint
        return from_mmaction(raw["state_dict"], *_recorded_sizes(backbone, frames, image_size, heads, path))
    state = raw.get("model", raw.get("module", raw)) if isinstance(raw, dict) else None
    if not isinstance(state, dict):
        raise EngineError(f"{path} holds no state dict")
    shape = raw.get("privvid") if isinstance(raw.get("privvid"), dict) else {}   # privvid's own export
    frames, image_size, heads = _recorded_sizes(shape, frames, image_size, heads, path)
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    if "norm.weight" not in state:
        raise EngineError(f"{path}: no final token norm (norm.weight): a mean-pooling fine-tuned model; import a "
                          "pre-trained checkpoint")
    cfg, enc = _from_videomae_state(state, frames, image_size, heads)
    if shape.get("pos_embed") in ("sincos1d", "sincos3d"):
        cfg = replace(cfg, pos_embed=str(shape["pos_embed"]))
    return cfg, enc


_TRUST_HINT = ("--trust-model-files loads it anyway, running what it holds: only for a file from a source you "
               "trust; or save its weights alone (torch.save(checkpoint['model'], 'weights.pth')) and import those")


def _starts_as_pickle(path: Path) -> bool:
    """Whether the file opens with pickle's protocol mark (protocol 2 and later), as pickle.dump writes."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load_tensors(path: Path, trust: bool = False) -> Any:
    """A ``.pth`` / ``.bin`` file read with torch's ``weights_only`` reader (tensors and plain containers, and the
    ``argparse.Namespace`` of training settings the VideoMAE code base saves beside its weights; no code runs).
    A file holding other objects is refused, one that is not a PyTorch file said to be so; ``trust`` (the user's
    ``--trust-model-files``) reads it with the full pickle reader instead."""
    import argparse
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():   # torch warns of the legacy format a raw pickle uses before refusing it
            warnings.simplefilter("ignore", UserWarning)
            if trust:
                return torch.load(path, map_location="cpu", weights_only=False)
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch's many ways of saying "not a checkpoint"
        full = str(exc)
        if not trust and isinstance(exc, pickle.UnpicklingError) and "unsupported global" in full.lower():
            raise EngineError(f"{path} holds objects other than tensors (a pickle that can run code when loaded): "
                              f"refused; privvid reads only tensors from .pth / .bin files. {_TRUST_HINT}") from None
        lines = [line.strip() for line in full.splitlines() if line.strip()]
        # torch's reader names what stopped it on the line after its own "WeightsUnpickler error:"
        told = next((lines[i + 1] for i, line in enumerate(lines[:-1]) if "WeightsUnpickler error" in line),
                    lines[0] if lines else type(exc).__name__)
        if ("unsupported operand" in told.lower() or "magic number" in told.lower()) and _starts_as_pickle(path):
            raise EngineError(f"{path} is a plain pickle, not a file torch.save wrote: privvid reads only those, "
                              "tensors only (nothing in them runs); load it where you trust it and torch.save its "
                              "weights") from None
        raise EngineError(f"cannot read {path} as a PyTorch checkpoint ({told})") from None


def _from_videomae_state(state: dict[str, torch.Tensor], frames: int, image_size: int,
                         heads: int | None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    w = state["patch_embed.proj.weight"]
    dim, depth = int(w.shape[0]), 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    hidden = int(state["blocks.0.mlp.fc1.weight"].shape[0])
    config = {"hidden_size": dim, "num_attention_heads": heads or max(1, dim // 64), "num_hidden_layers": depth,
              "intermediate_size": hidden, "tubelet_size": int(w.shape[2]), "patch_size": int(w.shape[3]),
              "num_frames": frames, "image_size": image_size}
    cfg = _model_config(config, "sincos1d")
    enc = {"patch_embed.weight": w, "patch_embed.bias": state["patch_embed.proj.bias"],
           "norm.weight": state["norm.weight"], "norm.bias": state["norm.bias"]}
    for i in range(depth):
        src = f"blocks.{i}."
        qkv = state[src + "attn.qkv.weight"]
        zeros = torch.zeros(dim, dtype=qkv.dtype)
        enc[src + "attn.qkv.weight"] = qkv
        enc[src + "attn.qkv.bias"] = torch.cat([state.get(src + "attn.q_bias", zeros), zeros,
                                                state.get(src + "attn.v_bias", zeros)])
        for ours, theirs in _ORIG.items():
            enc[src + ours] = state[src + theirs]
    return cfg, {k: v.detach().clone().float().contiguous() for k, v in enc.items()}


_MMACTION = {  # privvid block parameter -> mmaction2 ``VisionTransformer`` (vit_mae.py) block parameter
    **{k: v for k, v in _ORIG.items() if not k.startswith("fc")},
    "fc1.weight": "mlp.layers.0.0.weight", "fc1.bias": "mlp.layers.0.0.bias",   # mmcv FFN: (Linear, act, drop)
    "fc2.weight": "mlp.layers.1.weight", "fc2.bias": "mlp.layers.1.bias",       # then Linear
}


def mmaction_backbone(cfg: ModelConfig) -> dict[str, Any]:
    """The mmaction2 ``backbone`` config the exported weights fit (``use_mean_pooling=False``: the final
    token norm is ``backbone.norm``; with mean pooling mmaction2 starts a new ``fc_norm`` instead)."""
    return {"type": "VisionTransformer", "img_size": cfg.image_size, "patch_size": cfg.patch, "embed_dims": cfg.dim,
            "depth": cfg.depth, "num_heads": cfg.heads, "mlp_ratio": cfg.mlp_ratio, "qkv_bias": True,
            "num_frames": cfg.frames, "tubelet_size": cfg.tubelet, "norm_cfg": {"type": "LN", "eps": 1e-6},
            "use_mean_pooling": False}


def to_mmaction(encoder: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """privvid encoder -> mmaction2 recognizer keys (``backbone.*``). The position table goes in as
    ``backbone.pos_embed`` (mmaction2 keeps it as a buffer, so a 3-D table trained with privvid survives)."""
    from privvid.engine.model import position_table

    d = cfg.dim
    out = {"patch_embed.projection.weight": encoder["patch_embed.weight"],
           "patch_embed.projection.bias": encoder["patch_embed.bias"],
           "norm.weight": encoder["norm.weight"], "norm.bias": encoder["norm.bias"],
           "pos_embed": position_table(cfg.pos_embed, d, cfg.grid)[None]}
    for i in range(cfg.depth):
        src = f"blocks.{i}."
        b = encoder[src + "attn.qkv.bias"]
        out[src + "attn.qkv.weight"] = encoder[src + "attn.qkv.weight"]
        out[src + "attn.q_bias"], out[src + "attn.v_bias"] = b[:d], b[2 * d:]
        for ours, theirs in _MMACTION.items():
            out[src + theirs] = encoder[src + ours]
    return {"backbone." + k: v.detach().clone().contiguous() for k, v in out.items()}


def from_mmaction(state: dict[str, torch.Tensor], frames: int = 16, image_size: int = 224,
                  heads: int | None = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """mmaction2 ``backbone.*`` weights of a ``VisionTransformer`` -> (ModelConfig, privvid encoder weights)."""
    state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if "norm.weight" not in state:
        raise EngineError("this mmaction2 backbone ends in mean pooling + fc_norm (use_mean_pooling=True); privvid's "
                          "encoder ends in a token norm: import a pre-trained (use_mean_pooling=False) backbone")
    renamed = {"patch_embed.proj.weight": state["patch_embed.projection.weight"],
               "patch_embed.proj.bias": state["patch_embed.projection.bias"],
               "norm.weight": state["norm.weight"], "norm.bias": state["norm.bias"]}
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        src = f"blocks.{i}."
        for key in ("attn.qkv.weight", "attn.q_bias", "attn.v_bias"):
            if src + key in state:
                renamed[src + key] = state[src + key]
        for ours, theirs in _MMACTION.items():
            renamed[src + _ORIG[ours]] = state[src + theirs]
    cfg, enc = _from_videomae_state(renamed, frames, image_size, heads)
    table = state.get("pos_embed")
    if table is not None:
        from privvid.engine.model import position_table

        for kind in ("sincos1d", "sincos3d"):
            ref = position_table(kind, cfg.dim, cfg.grid)[None]
            if ref.shape == table.shape and torch.allclose(ref, table.float(), atol=1e-5):
                cfg = replace(cfg, pos_embed=kind)
                break
        else:
            raise EngineError("the checkpoint's backbone.pos_embed is neither VideoMAE's 1-D table nor privvid's "
                              f"3-D one for {cfg.frames} frames of {cfg.image_size} px: pass the --frames and "
                              "--image-size it was trained with (a learned table, use_learnable_pos_emb=True, "
                              "is not one privvid's encoder has)")
    return cfg, enc


def save_mmaction(path: str | Path, encoder: dict[str, torch.Tensor], cfg: ModelConfig) -> Path:
    """An mmengine-style checkpoint (``{"state_dict", "meta"}``) mmaction2's ``load_from`` / ``init_cfg`` reads,
    plus ``<name>.backbone.py`` with the ``backbone`` config it fits."""
    import privvid

    from privvid.io.atomic import write_text_atomic

    path = Path(path)
    backbone = mmaction_backbone(cfg)
    _save_torch({"state_dict": to_mmaction(encoder, cfg),
                 "meta": {"exported_by": f"privvid {privvid.__version__}", "backbone": json.dumps(backbone)}}, path)
    lines = ["# mmaction2 backbone config for " + path.name, "backbone = dict("]
    lines += [f"    {k}={v!r}," for k, v in backbone.items()]
    write_text_atomic(path.with_name(path.stem + ".backbone.py"), "\n".join(lines + [")", ""]))
    return path


def save_videomae(path: str | Path, encoder: dict[str, torch.Tensor], cfg: ModelConfig) -> Path:
    """``{"model": state}`` as the VideoMAE code base saves it, and ``privvid``: what the weights alone do not
    say (heads, frames, size, position table), which VideoMAE's loader does not read and an import does."""
    path = Path(path)
    shape = {"num_heads": cfg.heads, "num_frames": cfg.frames, "img_size": cfg.image_size,
             "tubelet_size": cfg.tubelet, "patch_size": cfg.patch, "pos_embed": cfg.pos_embed}
    _save_torch({"model": to_videomae(encoder, cfg), "privvid": shape}, path)
    return path


def export_note(cfg: ModelConfig, fmt: str) -> str | None:
    """What the user must know about an export: an encoder trained with privvid's 3-D position table gets the
    VideoMAE code's own 1-D table in HF and VideoMAE (mmaction2 keeps the table in the checkpoint)."""
    if fmt in ("hf", "videomae") and cfg.pos_embed != "sincos1d":
        return (f"the encoder was trained with privvid's {cfg.pos_embed} position table; {fmt} models add their own "
                "1-D table, so its features differ there until fine-tuned (--format mmaction keeps the table; "
                "train with --set model.pos_embed=sincos1d for an exact export)")
    return None


def imported_config(cfg: ModelConfig) -> TrainConfig:
    """The training settings an imported encoder is recorded with: the defaults, with clips of the model's shape
    (its frames and side; the short side in VideoMAE's 256 : 224 proportion)."""
    from privvid.engine.config import DataConfig, short_side_for

    return TrainConfig(model=cfg, data=DataConfig(frames=cfg.frames, size=cfg.image_size,
                                                  short_side=short_side_for(cfg.image_size)))


def import_checkpoint(source: str | Path, out: str | Path, frames: int | None = None, image_size: int | None = None,
                      heads: int | None = None, overwrite: bool = False, trust: bool = False) -> Path:
    """An HF folder or a VideoMAE ``.pth`` -> a privvid checkpoint folder (task ``imported``) that ``--init``
    takes. ``trust`` reads a pickle that holds more than tensors (:func:`load_tensors`)."""
    from privvid.engine import checkpoint as ckpt
    from privvid.engine.model import Classifier

    source = Path(source)
    if not source.exists():
        raise EngineError(f"checkpoint to import not found: {source}")
    if source.is_file() and source.suffix == ".safetensors":
        raise EngineError(f"{source}: an HF VideoMAE model is imported as its folder (config.json + "
                          f"model.safetensors): pass {source.parent}")
    ckpt.claim_output(out, (source,), overwrite, "the imported checkpoint")
    try:
        cfg, enc = load_hf(source, trust) if source.is_dir() else from_videomae(source, frames, image_size, heads, trust)
    except (KeyError, ValueError) as exc:   # a weight the layout needs is not there
        what = exc.args[0] if exc.args else type(exc).__name__
        raise EngineError(f"{source} is not a VideoMAE / mmaction2 ViT checkpoint privvid can read ({what})") from None
    settings = imported_config(cfg).check()   # sizes that do not fit the weights (heads that do not split the width)
    model = Classifier(cfg, {})
    ckpt.load_into(model.encoder, enc, f"encoder of {source}")
    ckpt.clear_run_state(Path(out))
    ckpt.save_checkpoint(Path(out), model, {"task": "imported", "arch": cfg.arch(),
                                            "train_config": settings.to_dict(), "heads": {},
                                            "progress": {}, "imported_from": source.name})
    return Path(out)


def export_checkpoint(run: str | Path, out: str | Path, fmt: str, overwrite: bool = False) -> tuple[Path, str | None]:
    """A privvid checkpoint's encoder -> ``hf`` (a folder), ``videomae`` or ``mmaction`` (a .pth file); the
    path written and :func:`export_note`'s note for it."""
    from privvid.engine import checkpoint as ckpt

    if fmt not in ("hf", "videomae", "mmaction"):
        raise EngineError(f"unknown export format {fmt!r}; choose hf, videomae or mmaction")
    meta = ckpt.read_meta(Path(run))
    cfg = TrainConfig.from_dict(meta.get("train_config", {})).model
    enc = ckpt.encoder_state(Path(run), cfg)   # whole, before anything is made at --out
    # the run's own files are never written over; a file or an HF folder already at --out only with --overwrite
    ckpt.claim_output(out, (run,), overwrite, f"the {fmt} export", folder=fmt == "hf")
    if fmt == "hf":
        ckpt.clear_run_state(Path(out))
        return save_hf(out, enc, cfg), export_note(cfg, fmt)
    if fmt == "videomae":
        return save_videomae(out, enc, cfg), export_note(cfg, fmt)
    if fmt == "mmaction":
        return save_mmaction(out, enc, cfg), export_note(cfg, fmt)
    raise EngineError(f"unknown export format {fmt!r}; choose hf, videomae or mmaction")
