-- A tiny CPU config for tests and smoke runs: 16x16 digits, base 8, 2 levels (~70k parameters).
-- Trains a few hundred steps in a minute; digits stay blurry.
--   ddpm train --config configs/tiny.lua --steps 200 --out runs/tiny
return {
  model = {base = 8, levels = 2, time_dim = 16, attention = {false, false}, attention_mid = true, image_size = 16},
  schedule = {kind = "cosine", steps = 1000},
  train = {batch = 32, lr = 2e-3, steps = 300, loss = "l1", ema = 0.99, label_dropout = 0.1, clip_norm = 1.0,
           checkpoint_every = 100, sample_every = 100, seed = 0},
  sample = {steps = 20, guidance = 2},
}
