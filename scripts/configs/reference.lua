-- The seed recipe exactly: base 64, 4 levels (attention at levels 0 and 2 and in the middle),
-- time_dim 128, T = 1000 linear betas, L1 noise loss, Adam 1e-4, batch 64, no EMA warm-up tricks.
-- ~51M parameters; needs a bigger machine than 2 cores to train in reasonable time.
--   ddpm train --config configs/reference.lua --out runs/reference
return {
  model = {base = 64, levels = 4, time_dim = 128, attention = "even", attention_mid = true, image_size = 32},
  schedule = {kind = "linear", steps = 1000, beta_start = 1e-4, beta_end = 0.02},
  train = {batch = 64, lr = 1e-4, steps = 100000, loss = "l1", ema = 0.9995, label_dropout = 0,
           checkpoint_every = 500, sample_every = 2000, seed = 0},
  sample = {steps = 1000, guidance = 1},
}
