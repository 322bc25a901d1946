-- Progressive distillation of the default model (scripts/distill.lua): the teacher's guided
-- DDIM at 32 trailing steps, halved each round to a 2-step student that needs no guidance
-- (the teacher's guidance is folded in). Each round starts from the previous round's student.
--   ddpm distill --config distill --out runs/distill
return {
  distill = {
    teacher = "weights/mnist-small.safetensors",  -- relative to the working folder or the repository
    start_steps = 32,       -- the first teacher's DDIM steps; each round halves them
    final_steps = 2,        -- the last student's steps
    round_steps = 1200,     -- training steps per round (a number, or one per round: {1000, 1200, 1500})
    batch = 64, lr = 1e-4,  -- Adam; the rate falls linearly to 0 over each round
    clip_norm = 1.0, ema = 0.999, seed = 0,
    objective = "v",        -- the student's output (v or x0; Salimans & Ho 2022)
    guidance = nil,         -- folded guidance w and its interval: nil = the teacher's recommended
    guidance_interval = nil,
    checkpoint_every = 100,
    eval_per_class = 20,    -- quality probe at the end of each round (0: none)
  },
}
