"""Video ViT over 2x16x16 tubelets, its MAE wrapper, and a classifier with one head per dataset.

Input clips are float tensors (B, 3, T, H, W), already normalised. Positions are fixed sinusoidal
space-time embeddings; blocks are pre-norm with ``scaled_dot_product_attention``; clip features are
the global average of the token features (no class token).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from privvid.engine.config import ModelConfig


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    angle = positions.double()[:, None] * freq[None]
    return torch.cat([angle.sin(), angle.cos()], dim=1)


def sincos_videomae(dim: int, n: int) -> torch.Tensor:
    """(n, dim) VideoMAE's table (also HF's): angle pos / 10000^(2 * (j // 2) / dim), sin on even channels,
    cos on odd ones, over the flattened token index."""
    j = torch.arange(dim, dtype=torch.float64)
    angle = torch.arange(n, dtype=torch.float64)[:, None] / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)[None]
    table = angle.clone()
    table[:, 0::2] = angle[:, 0::2].sin()
    table[:, 1::2] = angle[:, 1::2].cos()
    return table.float()


def position_table(kind: str, dim: int, grid: tuple[int, int, int]) -> torch.Tensor:
    if kind == "sincos1d":
        return sincos_videomae(dim, grid[0] * grid[1] * grid[2])
    if kind == "sincos3d":
        return sincos_3d(dim, grid)
    raise ValueError(f"unknown position embedding {kind!r}; choose sincos3d or sincos1d")


def sincos_3d(dim: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """(T*H*W, dim) fixed embedding: the channels are split between time, height and width."""
    t, h, w = grid
    d_t = (dim // 6) * 2           # even share for time, the rest split evenly for space
    d_s = ((dim - d_t) // 4) * 2
    d_t = dim - 2 * d_s
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    emb = torch.cat([sincos_1d(d_t, tt.flatten()), sincos_1d(d_s, hh.flatten()), sincos_1d(d_s, ww.flatten())], 1)
    return emb.float()


class DropPath(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


CPU_BF16_MATH_TOKENS = 128


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if q.dtype == torch.bfloat16 and q.device.type == "cpu":
            # the CPU's fused bf16 kernel is slower than the alternatives (forward + backward, ViT-tiny MAE on two
            # cores): two matrix products for short sequences (an MAE encoder's visible tokens, 2-2.5x), the
            # fp32 kernel for long ones (the decoder, ~15%)
            if n <= CPU_BF16_MATH_TOKENS:
                out = ((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)).softmax(-1) @ v
            else:
                out = F.scaled_dot_product_attention(q.float(), k.float(), v.float()).to(q.dtype)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class VideoViT(nn.Module):
    """Encoder. ``forward(x, visible=None)`` returns token features (B, N_visible, dim)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Conv3d(3, cfg.dim, kernel_size=(cfg.tubelet, cfg.patch, cfg.patch),
                                     stride=(cfg.tubelet, cfg.patch, cfg.patch))
        self.register_buffer("pos", position_table(cfg.pos_embed, cfg.dim, cfg.grid)[None], persistent=False)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.apply(_init_weights)
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))

    def embed(self, x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings plus positions; with ``visible`` only those tokens are embedded (the patch
        embedding is a linear map of each tubelet, so the masked 90% of an MAE clip costs nothing)."""
        cfg = self.cfg
        t, h, w = x.shape[-3:]
        n = (t // cfg.tubelet) * (h // cfg.patch) * (w // cfg.patch)
        if n != self.pos.shape[1] or t % cfg.tubelet or h % cfg.patch or w % cfg.patch:
            raise ValueError(f"clip {t}x{h}x{w} gives {n} tokens, the model expects {self.pos.shape[1]} "
                             f"(frames={cfg.frames}, size={cfg.image_size})")
        if visible is None:
            return self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos.to(x.dtype)
        patches = patchify(x, cfg, visible)
        weight = self.patch_embed.weight
        tokens = F.linear(patches, weight.permute(0, 2, 3, 4, 1).reshape(weight.shape[0], -1), self.patch_embed.bias)
        pos = torch.gather(self.pos.expand(len(x), -1, -1), 1, visible[..., None].expand(-1, -1, cfg.dim))
        return tokens + pos.to(tokens.dtype)

    def forward(self, x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(x, visible)
        for blk in self.blocks:
            if self.cfg.grad_checkpoint and self.training and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.norm(x)


def make_mask(cfg: ModelConfig, keys: torch.Tensor, ratio: float, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample masks drawn from per-sample seeds ``keys`` (so they do not depend on batch layout).

    Returns (visible index (B, n_vis) sorted, masked index (B, n_mask) sorted).
    """
    t, h, w = cfg.grid
    n_space = h * w
    rows = []
    for key in keys.tolist():
        g = torch.Generator().manual_seed(int(key) & 0x7FFF_FFFF_FFFF_FFFF)
        if kind == "tube":
            keep = max(1, int(round(n_space * (1 - ratio))))
            sp = torch.randperm(n_space, generator=g)
            vis_s = sp[:keep]
            vis = (torch.arange(t)[:, None] * n_space + vis_s[None]).flatten()
        elif kind == "random":
            n = t * n_space
            keep = max(1, int(round(n * (1 - ratio))))
            vis = torch.randperm(n, generator=g)[:keep]
        else:
            raise ValueError(f"unknown mask kind {kind!r}; choose random or tube")
        rows.append(vis.sort().values)
    visible = torch.stack(rows)
    n = t * n_space
    is_vis = torch.zeros(len(rows), n, dtype=torch.bool)
    is_vis.scatter_(1, visible, True)
    masked = torch.nonzero(~is_vis)[:, 1].view(len(rows), -1)
    return visible, masked


def patchify(x: torch.Tensor, cfg: ModelConfig, index: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B, N, tubelet*patch*patch*3), tokens in the patch-embedding order; with ``index``
    (B, n) only those tokens, copied straight from ``x``."""
    b, c, t, h, w = x.shape
    pt, p = cfg.tubelet, cfg.patch
    x = x.view(b, c, t // pt, pt, h // p, p, w // p, p)
    if index is None:
        x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)
        return x.reshape(b, (t // pt) * (h // p) * (w // p), pt * p * p * c)
    rows, cols = h // p, w // p
    ti, hi, wi = index // (rows * cols), (index // cols) % rows, index % cols
    picked = x[torch.arange(b, device=x.device)[:, None], :, ti, :, hi, :, wi, :]  # (B, n, c, pt, p, p)
    return picked.permute(0, 1, 3, 4, 5, 2).reshape(b, index.shape[1], pt * p * p * c)


class MAE(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoViT(cfg)
        self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.register_buffer("decoder_pos", position_table(cfg.pos_embed, cfg.decoder_dim, cfg.grid)[None],
                             persistent=False)
        self.decoder_blocks = nn.ModuleList(
            Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth))
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, cfg.tubelet * cfg.patch * cfg.patch * 3)
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            m.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, x: torch.Tensor, visible: torch.Tensor, masked: torch.Tensor,
                norm_pix: bool = True, target_kind: str = "videomae") -> torch.Tensor:
        """Mean squared error on the masked patches (targets: see :func:`mae_target`)."""
        latent = self.encoder(x, visible)
        y = self.decoder_embed(latent)
        b, n_vis, d = y.shape
        n_mask = masked.shape[1]
        pos = self.decoder_pos.to(y.dtype).expand(b, -1, -1)
        vis_pos = torch.gather(pos, 1, visible[..., None].expand(-1, -1, d))
        mask_pos = torch.gather(pos, 1, masked[..., None].expand(-1, -1, d))
        # attention is order-free with explicit positions: visible tokens first, then the masked ones
        y = torch.cat([y + vis_pos, self.mask_token.to(y.dtype).expand(b, n_mask, d) + mask_pos], 1)
        for blk in self.decoder_blocks:
            y = blk(y)
        pred = self.decoder_pred(self.decoder_norm(y[:, n_vis:]))
        with torch.no_grad():
            target = mae_target(x, self.cfg, norm_pix, target_kind, masked)
        return F.mse_loss(pred.float(), target)


def mae_target(x: torch.Tensor, cfg: ModelConfig, norm_pix: bool = True, kind: str = "videomae",
               index: torch.Tensor | None = None) -> torch.Tensor:
    """(B, N, tubelet*patch*patch*3) reconstruction targets of a normalised clip ``x`` (only the tokens
    ``index`` (B, n) when given).

    ``videomae``: back to [0, 1] pixels, then each patch normalised per channel over its tubelet*patch*patch
    pixels (mean, unbiased std + 1e-6), as VideoMAE, HF VideoMAE and PPMA do. ``pooled``: the normalised input
    patch normalised over all its values at once (channels pooled). ``norm_pix=False``: the raw patch
    ([0, 1] pixels for videomae).
    """
    from privvid.engine.data import MEAN, STD

    if kind not in ("videomae", "pooled"):
        raise ValueError(f"unknown MAE target {kind!r}; choose videomae or pooled")
    patches = patchify(x.float(), cfg, index)             # (B, N, pt*p*p*3), channel last
    b, n, d = patches.shape
    if kind == "pooled":
        return _standardise(patches, -1, eps_in_sqrt=True) if norm_pix else patches
    patches = patches.view(b, n, d // 3, 3)
    patches = (patches * (STD.to(x.device) / 255.0) + MEAN.to(x.device) / 255.0)
    if norm_pix:
        patches = _standardise(patches, -2)
    return patches.reshape(b, n, d)


def _standardise(v: torch.Tensor, dim: int, eps_in_sqrt: bool = False) -> torch.Tensor:
    """``(v - mean) / (unbiased std + 1e-6)`` along ``dim`` (``sqrt(var + 1e-6)`` with ``eps_in_sqrt``), the
    variance summed from the deviations (``Tensor.var`` is ~9x slower on CPU here)."""
    mean = v.mean(dim, keepdim=True)
    dev = v - mean
    var = dev.square().sum(dim, keepdim=True) / (v.shape[dim] - 1)
    return dev / ((var + 1e-6).sqrt() if eps_in_sqrt else var.sqrt() + 1e-6)


def head_key(name: str) -> str:
    """Dataset name -> a ModuleDict key that cannot clash with nn.Module attributes."""
    return "h_" + re.sub(r"[^0-9A-Za-z_]", "_", name)


class Classifier(nn.Module):
    """Shared encoder, mean pooling, one linear head per dataset (PPMA)."""

    def __init__(self, cfg: ModelConfig, heads: dict[str, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoViT(cfg)
        self.fc_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head_names = list(heads)
        self.heads = nn.ModuleDict({head_key(name): nn.Linear(cfg.dim, n) for name, n in heads.items()})
        for head in self.heads.values():
            nn.init.trunc_normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_norm(self.encoder(x).mean(1))

    def forward(self, x: torch.Tensor, head: str | None = None) -> torch.Tensor:
        feats = self.features(x)
        return self.head(head)(feats)

    def head(self, name: str | None = None) -> nn.Linear:
        return self.heads[head_key(name if name is not None else self.head_names[0])]


def count_flops_per_clip(cfg: ModelConfig, task: str, mask_ratio: float = 0.9, mask: str = "random") -> float:
    """Matmul FLOPs (2*MACs) of one forward pass; training (fwd+bwd) is ~3x this."""
    def blocks(n: int, d: int, depth: int) -> float:
        per = 2 * n * d * 3 * d + 2 * n * n * d * 2 + 2 * n * d * d + 2 * 2 * n * d * int(d * cfg.mlp_ratio)
        return per * depth

    n = cfg.num_tokens
    pdim = cfg.tubelet * cfg.patch * cfg.patch * 3
    embed = 2 * n * pdim * cfg.dim
    if task != "mae":
        return embed + blocks(n, cfg.dim, cfg.depth)
    t, h, w = cfg.grid
    if mask == "tube":
        n_vis = max(1, round(h * w * (1 - mask_ratio))) * t
    else:
        n_vis = max(1, round(n * (1 - mask_ratio)))
    n_mask = n - n_vis
    enc = embed + blocks(n_vis, cfg.dim, cfg.depth)
    dec = 2 * n_vis * cfg.dim * cfg.decoder_dim + blocks(n, cfg.decoder_dim, cfg.decoder_depth)
    return enc + dec + 2 * n_mask * cfg.decoder_dim * pdim
