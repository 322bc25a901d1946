-- Training recipe: the whole loop in Lua, every heavy op native.
-- Data -> noise -> loss on the model's output -> backward -> Adam -> EMA, with label dropout for
-- classifier-free guidance, a checkpoint every N steps (atomic; Ctrl-C saves one and exits),
-- a sample sheet every N steps, a loss CSV and a loss-curve PNG.
--
-- The objective, from the config's train table (lib/objective.lua; docs/lua-api.md, "Training configs"):
--   objective = "eps" | "v" | "x0"      what the model outputs (default eps); saved as the weights'
--                                       `objective`, which every sampler reads
--   loss = "l1" | "l2" | "huber"        the penalty (default l1); huber_delta = 0.1 (quadratic below it)
--   loss_weight = "none" | "min_snr"    per-sample weights (default none); gamma = 5: min(SNR, gamma)/SNR
--                                       for eps, min(SNR, gamma)/(SNR+1) for v, min(SNR, gamma) for x0
--   ema_warmup = true | false           EMA decay min(ema, (1+n)/(10+n)) at update n (default true)
--   offset_noise = 0.1                  adds 0.1 x one normal value per image and channel to the noise
--
--   ddpm train --config configs/tiny.lua --steps 200 --out runs/tiny     (or: ddpm run scripts/train.lua ...)
--   ddpm train --out runs/tiny --resume                                   continue where it stopped
--   ddpm run scripts/train.lua --config configs/small.lua --init weights/mnist-small.safetensors --out runs/more
--                                     fine-tune from weights (model and EMA start there; fresh optimizer)
--
-- Writes into --out: checkpoint.safetensors (model, optimizer, EMA, step, random state),
-- model.safetensors (EMA weights + config + schedule), loss.csv, loss.png, samples/step-N.png,
-- and with train.eval_every = N an eval.csv (accuracy and Fréchet distance every N steps).
local args = require("lib.args")
local common = require("lib.common")
local evaluation = require("lib.evaluation")
local objective = require("lib.objective")
local plot = require("lib.plot")
local T = ddpm.tensor

local opts = args.parse(arg, {config = "configs/tiny.lua", steps = "config", out = "runs/default", resume = false,
                              data = "", batch = "config", lr = "config", quiet = false, init = ""}, {
  usage = "ddpm train [options]  (or: ddpm run scripts/train.lua [options])",
  summary = "Trains a diffusion model; --out gets checkpoints, model.safetensors (EMA), loss.csv, loss.png, samples/.",
  config = "config file, or a bare name such as tiny for scripts/configs/tiny.lua",
  steps = "total training steps ('config': the config's train.steps)",
  out = "output folder",
  resume = "continue from --out's checkpoint",
  data = "MNIST folder (none: $DDPM_DATA, then data/mnist)",
  batch = "batch size ('config': the config's train.batch)",
  lr = "learning rate ('config': the config's train.lr)",
  quiet = "no sample sheet at the end",
  init = "start from these weights (fine-tuning: fresh optimizer, EMA starts there)",
})
local cfg = common.load_config(opts.config)
local tc = cfg.train or {}
local recipe = objective.options(tc)
local total = args.integer(opts, "steps", "config", 1) or tc.steps or 1000
local batch = args.integer(opts, "batch", "config", 1) or tc.batch or 64
local out = opts.out
common.mkdir(out .. "/samples")

ddpm.seed(tc.seed or 0)
local model = ddpm.unet(cfg.model)
if opts.init ~= "" then model:load(opts.init) end
local schedule = common.schedule(cfg.schedule)
if opts.lr ~= "config" and not ((tonumber(opts.lr) or 0) > 0) then
  error("--lr must be a number > 0 or 'config', got '" .. tostring(opts.lr) .. "'", 0)
end
local base_lr = opts.lr ~= "config" and tonumber(opts.lr) or tc.lr or 1e-4
local opt = ddpm.optim.adam(model, {lr = base_lr, clip_norm = tc.clip_norm, weight_decay = tc.weight_decay or 0})
local ema = ddpm.ema(model, tc.ema or 0.999, {warmup = recipe.ema_warmup})
local data = ddpm.data.mnist{split = "train", size = cfg.model.image_size or 32,
                             resize = tc.resize or "bilinear", path = opts.data ~= "" and opts.data or nil}
local dropout = tc.label_dropout or 0
local checkpoint_path = out .. "/checkpoint.safetensors"

local step, seconds = 0, 0
if opts.resume then
  if not common.file_exists(checkpoint_path) then
    error("--resume: no checkpoint at " .. checkpoint_path .. " (start without --resume)", 0)
  end
  local state = ddpm.checkpoint.load(checkpoint_path, {model = model, optimizer = opt, ema = ema, data = data})
  step, seconds = state.step, state.seconds or 0
  print(string.format("resumed from %s at step %d", checkpoint_path, step))
end

-- The logs are rewritten up to the resumed step (a crash may have logged steps after the checkpoint).
local kept = common.log_lines_upto(out .. "/loss.csv", step)
local losses = {}
for i, line in ipairs(kept) do losses[i] = tonumber(line:match("^%d+,([^,]+)")) end
local log = common.open_log(out .. "/loss.csv", "step,loss,grad_norm,lr,seconds", kept)

-- Optional quality probe of the EMA weights every train.eval_every steps (eval.csv): accuracy of
-- the requested digit and the Fréchet distance to the test set, from the project's classifier.
local probe, eval_log
if tc.eval_every then
  probe = evaluation.probe{schedule = schedule, size = cfg.model.image_size or 32, per_class = tc.eval_per_class,
                           data = opts.data ~= "" and opts.data or nil, objective = recipe.objective}
  eval_log = common.open_log(out .. "/eval.csv", "step,accuracy,frechet",
                             common.log_lines_upto(out .. "/eval.csv", step))
end
local function evaluate()
  local accuracy, frechet = probe(ema:model())
  eval_log:write(string.format("%d,%.4f,%.3f\n", step, accuracy, frechet))
  eval_log:flush()
  print(string.format("\nstep %d: accuracy %.1f %%, Frechet %.2f (EMA weights, DDIM-20 unguided, %d digits)",
                      step, 100 * accuracy, frechet, 10 * (tc.eval_per_class or 20)))
end

local function weights_metadata()
  local meta = common.schedule_metadata(schedule)
  meta.steps = tostring(step)
  meta.ema_decay = tostring(tc.ema or 0.999)
  meta.data = "mnist train " .. (cfg.model.image_size or 32) .. "px " .. (tc.resize or "bilinear")
  meta.recipe = opts.config
  if opts.init ~= "" then
    local before = ddpm.safetensors.metadata(opts.init).steps
    meta.init = opts.init .. (before and (" (" .. before .. " steps)") or "")
  end
  for k, v in pairs(objective.metadata(recipe)) do meta[k] = v end
  meta.label_dropout = tostring(dropout)
  meta.guidance_convention = "eps_u + w * (eps_c - eps_u); w = 1 is no guidance"
  return meta
end

local function save_checkpoint()
  ddpm.checkpoint.save(checkpoint_path, {model = model, optimizer = opt, ema = ema, data = data,
                                         step = step, seconds = seconds, config = opts.config})
  ema:model():save(out .. "/model.safetensors", weights_metadata())
end

local function sample_sheet()
  local labels = {}
  for d = 0, 9 do labels[#labels + 1] = d end
  local sc = cfg.sample or {}
  local x = ddpm.sample{model = ema:model(), objective = recipe.objective, schedule = schedule, labels = labels,
                        sampler = "ddim",
                        steps = math.min(sc.steps or 20, schedule.steps), guidance = sc.guidance or 1, seed = 1234}
  ddpm.image.save(ddpm.image.grid(x, {cols = 10}), string.format("%s/samples/step-%06d.png", out, step), {scale = 2})
end

local function loss_curve()
  -- smoothed over windows so the curve shows the trend, not the per-batch noise
  local w = math.max(1, math.floor(#losses / 200))
  local pts = {}
  for i = 1, #losses, w do
    local s, n = 0, 0
    for j = i, math.min(i + w - 1, #losses) do s = s + losses[j]; n = n + 1 end
    pts[#pts + 1] = s / n
  end
  ddpm.image.save(plot.curve(pts, {x_last = #losses}), out .. "/loss.png")
end

local progress = ddpm.progress(total, "train", step)  -- rate and ETA from the steps run now
local interrupted = false
local every = tc.checkpoint_every or 500
while step < total do
  local t0 = ddpm.clock()
  opt.lr = common.learning_rate(tc, base_lr, total, step)
  local x0, labels = data:batch(batch)
  if dropout > 0 then
    local u = T.rand({batch}):totable()
    for i = 1, batch do if u[i] < dropout then labels[i] = -1 end end
  end
  local u = T.rand({batch}):totable()
  local t = {}
  for i = 1, batch do t[i] = math.min(math.floor(u[i] * schedule.steps), schedule.steps - 1) end
  local noise = objective.noise(x0:shape(), recipe.offset_noise)
  local x_t, target = ddpm.no_grad(function()
    return schedule:add_noise(x0, t, noise), objective.target(schedule, recipe.objective, x0, noise, t)
  end)
  local loss = objective.loss(recipe, schedule, model:forward(x_t, t, labels), target, t)
  local lv = loss:item()
  if lv ~= lv or lv == math.huge or lv == -math.huge then
    log:close()
    error(string.format("loss became %s at step %d; stopped without updating. The last good checkpoint is %s",
                        tostring(lv), step + 1, checkpoint_path), 0)
  end
  opt:zero_grad()
  loss:backward()
  local gn = opt:step()
  ema:update()
  step = step + 1
  seconds = seconds + (ddpm.clock() - t0)
  losses[#losses + 1] = lv
  log:write(string.format("%d,%.6f,%.4f,%.3g,%.1f\n", step, lv, gn, opt.lr, seconds))
  progress:update(step, string.format("loss %.4f", lv))
  if ddpm.interrupted() then interrupted = true break end
  if step % every == 0 or step == total then save_checkpoint(); log:flush() end
  if tc.sample_every and step % tc.sample_every == 0 then sample_sheet() end
  if probe and step % tc.eval_every == 0 then evaluate() end
end
if interrupted then
  save_checkpoint()
  log:close()
  loss_curve()
  print(string.format("\ninterrupted at step %d: checkpoint saved to %s (continue with --resume)", step, checkpoint_path))
  os.exit(130)
end
log:close()
save_checkpoint()
loss_curve()
if probe then
  if step % tc.eval_every ~= 0 then evaluate() end
  eval_log:close()
end
if not opts.quiet then sample_sheet() end
print(string.format("trained %d steps in %.1f s; EMA weights: %s/model.safetensors", step, seconds, out))
