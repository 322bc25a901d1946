#!/usr/bin/env python3
"""Convert a PyTorch checkpoint of the reference U-Net into ddpm-swift's safetensors format.

  python scripts/convert_pth.py model.pth weights/mnist-mine.safetensors
  python scripts/convert_pth.py ckpt.pt out.safetensors --heads 4 --image-size 32

Accepts {'model': state_dict, ...}, {'state_dict': ...}, {'ema': ...} (with --key) or a bare
state_dict; strips 'module.' and '_orig_mod.' prefixes. The model config (base, levels, time_dim,
classes, channels, attention per level, middle attention) is read off the tensor shapes and
stored as JSON in the `config` metadata entry, so `ddpm info`, `ddpm sample` and
`ddpm.load_model` accept the result. Needs torch and safetensors (pip install torch safetensors).
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--key", default=None,
                    help="entry of the checkpoint dict holding the state_dict (default: model/state_dict/bare)")
    ap.add_argument("--heads", type=int, default=4, help="attention heads (the shapes only give heads*head_dim)")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--schedule-steps", type=int, default=1000,
                    help="linear schedule length to record (the seed: 1000)")
    a = ap.parse_args()
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError:
        sys.exit("convert_pth.py needs torch and safetensors: pip install torch safetensors")

    ck = torch.load(a.checkpoint, map_location="cpu", weights_only=False)
    if isinstance(ck, dict) and a.key:
        sd = ck[a.key]
    elif isinstance(ck, dict) and "model" in ck and isinstance(ck["model"], dict):
        sd = ck["model"]
    elif isinstance(ck, dict) and "state_dict" in ck:
        sd = ck["state_dict"]
    else:
        sd = ck
    if hasattr(sd, "state_dict"):
        sd = sd.state_dict()
    clean = {}
    for k, v in sd.items():
        for p in ("module.", "_orig_mod."):
            if k.startswith(p):
                k = k[len(p):]
        if torch.is_tensor(v):
            clean[k] = v.detach().to(torch.float32).contiguous()
    need = "downsample.0.block1.block1.proj.weight"
    if need not in clean or "label_emb.weight" not in clean:
        sys.exit(f"{a.checkpoint}: not a reference U-Net state_dict (no {need} / label_emb.weight)")
    first = clean[need]
    levels = 0
    while f"downsample.{levels}.block1.block1.proj.weight" in clean:
        levels += 1
    attention = [f"downsample.{i}.attn.input_to_qkv.weight" in clean for i in range(levels)]
    hidden = None
    for k, v in clean.items():
        if k.endswith("input_to_qkv.weight"):
            hidden = v.shape[0] // 3
            break
    heads = a.heads
    head_dim = (hidden // heads) if hidden else 32
    config = dict(channels=int(first.shape[1]), classes=int(clean["label_emb.weight"].shape[0]),
                  base=int(first.shape[0]), levels=levels, time_dim=int(clean["label_emb.weight"].shape[1]),
                  groups=a.groups, heads=heads, head_dim=head_dim, attention=attention,
                  attention_mid="bottleneck.2.input_to_qkv.weight" in clean, image_size=a.image_size)
    meta = {"config": json.dumps(config, sort_keys=True), "format": "ddpm-swift", "source": a.checkpoint,
            "schedule": "linear", "schedule_steps": str(a.schedule_steps), "converted_by": "scripts/convert_pth.py"}
    save_file(clean, a.out, metadata=meta)
    n_params = sum(v.numel() for v in clean.values())
    print(f"wrote {a.out}: {len(clean)} tensors, {n_params:,} parameters, config {json.dumps(config)}")


if __name__ == "__main__":
    main()
