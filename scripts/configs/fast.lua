-- The fast CPU preset (weights/mnist-fast.safetensors): the small preset at half the width (base 16,
-- 1.15 M parameters), so a no-grad forward costs a quarter of the multiply-adds and the demo's
-- 100-digit DDIM-50 sheet takes under 10 s on 2 cores. Same layout as configs/small.lua (attention
-- only at 8x8 and in the 4x4 bottleneck, cosine schedule, EMA, 10% label dropout); a higher
-- learning rate for the narrower network, annealed (cosine, to lr/10) over the last 3 000 steps.
--   ddpm train --config configs/fast.lua --out runs/fast
return {
  model = {base = 16, levels = 3, time_dim = 128, attention = {false, false, true}, attention_mid = true,
           image_size = 32},
  schedule = {kind = "cosine", steps = 1000},
  train = {batch = 64, lr = 3e-4, steps = 14000, lr_decay_start = 11000, lr_min = 3e-5, loss = "l1",
           ema = 0.999, label_dropout = 0.1, clip_norm = 1.0, checkpoint_every = 250, sample_every = 1000,
           eval_every = 1000, seed = 0},
  sample = {steps = 50, guidance = 1.5},
}
