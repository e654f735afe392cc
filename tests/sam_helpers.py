"""A tiny randomly initialised segment-anything model (no checkpoint is shipped or downloaded)."""

from __future__ import annotations


def tiny_sam():
    from functools import partial

    import torch

    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=1024, patch_size=16, embed_dim=16, depth=1, num_heads=1, mlp_ratio=1.0,
            out_chans=256, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), window_size=8,
        ),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                                     input_image_size=(1024, 1024), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=256, mlp_dim=32, num_heads=8),
                                 transformer_dim=256, iou_head_depth=1, iou_head_hidden_dim=16),
    )
    return sam.eval()
