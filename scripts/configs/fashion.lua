-- Fashion-MNIST (Debian's dataset-fashion-mnist; scripts/setup.sh --dataset fashion installs it and
-- links it into data/fashion-mnist): the fast preset's model (base 16, 1.15 M parameters, attention
-- at 8x8 and in the 4x4 bottleneck, cosine schedule, EMA, 10% label dropout) on the ten clothing
-- classes, 28x28 resized to 32x32 as MNIST is. Labels: 0 T-shirt/top, 1 trouser, 2 pullover,
-- 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot. No eval_every: the quality
-- probe's classifier knows digits only.
--   ddpm train --config fashion --out runs/fashion
return {
  model = {base = 16, levels = 3, time_dim = 128, attention = {false, false, true}, attention_mid = true,
           image_size = 32},
  schedule = {kind = "cosine", steps = 1000},
  train = {data = {kind = "fashion"}, batch = 64, lr = 3e-4, steps = 14000, lr_decay_start = 11000, lr_min = 3e-5,
           loss = "l1", ema = 0.999, label_dropout = 0.1, clip_norm = 1.0, checkpoint_every = 250, sample_every = 1000,
           seed = 0},
  sample = {steps = 50, guidance = 2},
}
