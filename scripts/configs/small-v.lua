-- The CPU preset's network (configs/small.lua: base 32, 3 levels, attention only at 8x8 and in the
-- 4x4 bottleneck, cosine schedule, EMA, 10% label dropout) with the recipe the ablations in
-- docs/training.md favour: v-prediction, L2 loss, min-SNR-5 weighting. Fewer steps than small.lua
-- (the 4-hour budget on a 2-core AVX2 machine), annealed (cosine, to lr/10) over the last 2 500.
--   ddpm train --config configs/small-v.lua --out runs/small-v
return {
  model = {base = 32, levels = 3, time_dim = 128, attention = {false, false, true}, attention_mid = true,
           image_size = 32},
  schedule = {kind = "cosine", steps = 1000},
  train = {batch = 64, lr = 2e-4, steps = 10000, lr_decay_start = 7500, lr_min = 2e-5,
           objective = "v", loss = "l2", loss_weight = "min_snr", gamma = 5,
           ema = 0.999, label_dropout = 0.1, clip_norm = 1.0, checkpoint_every = 250, sample_every = 1000,
           eval_every = 1000, seed = 0},
  sample = {steps = 50, guidance = 1.5},
}
