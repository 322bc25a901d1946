-- The CPU preset's network (configs/small.lua: base 32, 3 levels, attention only at 8x8 and in the
-- 4x4 bottleneck, cosine schedule, EMA, 10% label dropout) with the recipe the fast-preset ablation
-- in docs/training.md favours: v-prediction and L2 with no loss weighting (min-SNR-5, which
-- configs/small-v.lua uses, trained the fast preset about half as fast per step). Steps and
-- learning rate as small-v.lua: 10 000 steps, about 4 hours on 2 cores, annealed (cosine, to
-- lr/10) over the last 2 500.
--   ddpm train --config configs/small-v-l2.lua --out runs/small-v-l2
return {
  model = {base = 32, levels = 3, time_dim = 128, attention = {false, false, true}, attention_mid = true,
           image_size = 32},
  schedule = {kind = "cosine", steps = 1000},
  train = {batch = 64, lr = 2e-4, steps = 10000, lr_decay_start = 7500, lr_min = 2e-5,
           objective = "v", loss = "l2", loss_weight = "none",
           ema = 0.999, label_dropout = 0.1, clip_norm = 1.0, checkpoint_every = 250, sample_every = 1000,
           eval_every = 1000, seed = 0},
  sample = {steps = 50, guidance = 1.5},
}
