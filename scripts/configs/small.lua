-- The CPU preset (the shipped weights/mnist-small.safetensors): base 32, 3 levels, attention only
-- at 8x8 and in the 4x4 bottleneck (no attention at full 32x32 resolution, where it is 61% of the
-- reference's work), cosine schedule, EMA, 10% label dropout for classifier-free guidance; constant
-- learning rate, annealed (cosine, to lr/10) over the last 2 500 steps.
--   ddpm train --config configs/small.lua --out runs/small
return {
  model = {base = 32, levels = 3, time_dim = 128, attention = {false, false, true}, attention_mid = true,
           image_size = 32},
  schedule = {kind = "cosine", steps = 1000},
  train = {batch = 64, lr = 2e-4, steps = 12000, lr_decay_start = 9500, lr_min = 2e-5, loss = "l1",
           ema = 0.999, label_dropout = 0.1, clip_norm = 1.0, checkpoint_every = 250, sample_every = 1000,
           eval_every = 1000, seed = 0},
  sample = {steps = 50, guidance = 1.5},
}
