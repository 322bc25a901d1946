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
--   mpirun -np 4 ddpm train ...       data-parallel: the batch split over 4 ranks, the same training
--                                     up to float rounding (docs/scaling.md)
--
-- The data: the config's train.data (lib/datasets.lua: MNIST, Fashion-MNIST, an IDX pair or a folder
-- of PNGs; none: MNIST), checked against the model's classes before the first step.
--
-- Writes into --out: checkpoint.safetensors (model, optimizer, EMA, step, random state),
-- model.safetensors (EMA weights + config + schedule), loss.csv, loss.png, samples/step-N.png,
-- and with train.eval_every = N an eval.csv (accuracy and Fréchet distance every N steps).
local args = require("lib.args")
local common = require("lib.common")
local datasets = require("lib.datasets")
local dist = require("lib.dist")
local evaluation = require("lib.evaluation")
local objective = require("lib.objective")
local plot = require("lib.plot")
local T = ddpm.tensor

local opts = args.parse(arg, {config = "", steps = "config", out = "runs/default", resume = false,
                              override_config = false, data = "", batch = "config", lr = "config", quiet = false,
                              init = "", precision = "config", schedule = args.optional("string"),
                              sampler = args.optional("string"), sampler_opt = args.list()}, {
  usage = "ddpm train [options]  (or: ddpm run scripts/train.lua [options])",
  summary = "Trains a diffusion model; --out gets checkpoints, model.safetensors (EMA), loss.csv, loss.png, samples/.",
  config = "config file, or a bare name such as tiny for scripts/configs/tiny.lua "
           .. "(none: configs/tiny.lua, or on --resume the run's own)",
  steps = "total training steps ('config': the config's train.steps)",
  out = "output folder (one run at a time: train.lock)",
  resume = "continue from --out's checkpoint, under the config it saved",
  override_config = "with --resume: continue under --config instead of the run's saved config",
  data = "the data's folder in place of train.data's path (MNIST, Fashion-MNIST or a PNG folder; "
         .. "none: the config's, for MNIST $DDPM_DATA, then data/mnist)",
  batch = "batch size ('config': the config's train.batch)",
  lr = "learning rate ('config': the config's train.lr)",
  quiet = "no sample sheet at the end",
  init = "start from these weights (fine-tuning: fresh optimizer, EMA starts there)",
  precision = "the products' precision: fp32, bf16 (mixed precision: bf16 operands, fp32 sums, weights, "
              .. "optimizer and norms; needs a CPU with AVX512-BF16) or auto (the faster here); 'config': on --resume "
              .. "the run's own, else the config's train.precision, else auto",
  schedule = "noise schedule NAME or FILE.lua, a plugin or linear, cosine, sigmoid (none: the config's); "
             .. "`ddpm schedules` lists them",
  sampler = "sampler NAME or FILE.lua of the sample sheets and the quality probe (none: ddim); "
            .. "`ddpm samplers` lists them",
  sampler_opt = "a sampler option key=value",
})
local out = opts.out
-- Under mpirun every rank runs this recipe on its share of each batch: every rank draws the whole
-- batch (images, labels, label dropout, timesteps, noise) from the same random stream and keeps
-- its slice, so sample j of a step is the same for any number of ranks; the gradients are summed
-- weighted by the slices' shares. Rank 0 alone writes files and prints.
local rank, ranks = ddpm.dist.rank(), ddpm.dist.size()
local lead = rank == 0
common.mkdir(out .. "/samples")
-- one training run per folder: a second one is refused while this one runs (the lock goes with
-- the process, so a lock left by a killed run is taken over); under mpirun rank 0 holds it
local lock = lead and ddpm.checkpoint.lock(out) or dist.silent
local checkpoint_path = out .. "/checkpoint.safetensors"

--- Config tables equal in their plain values (what a checkpoint stores of them).
local function same_config(a, b)
  local plain = {number = true, string = true, boolean = true, table = true}
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if plain[type(v)] and not same_config(v, b[k]) then return false end end
  for k, v in pairs(b) do if plain[type(v)] and a[k] == nil then return false end end
  return true
end

-- The run's config: a new run loads --config (default configs/tiny.lua); a resumed run continues
-- under the config and schedule its checkpoint saved, and a different --config is an error
-- unless --override-config.
local saved
if opts.resume then
  if not common.file_exists(checkpoint_path) then
    error("--resume: no checkpoint at " .. checkpoint_path .. " (start without --resume)", 0)
  end
  saved = ddpm.checkpoint.read(checkpoint_path)
end
local cfg, config_name
local run = saved and saved.run
if run and run.config and not opts.override_config then
  cfg, config_name = run.config, run.config_path or checkpoint_path
  if opts.config ~= "" and not same_config(common.load_config(opts.config), cfg) then
    error(string.format("--resume: --config %s differs from the config the run was started with (%s, saved in %s); "
                        .. "leave out --config to continue the run as it was, "
                        .. "or add --override-config to continue under %s",
                        opts.config, config_name, checkpoint_path, opts.config), 0)
  end
else
  -- checkpoints that predate saved configs hold the config's path
  config_name = opts.config ~= "" and opts.config or (saved and type(saved.config) == "string" and saved.config)
                or "configs/tiny.lua"
  cfg = common.load_config(config_name)
  if saved and opts.override_config and lead then
    print(string.format("--override-config: continuing %s under %s", checkpoint_path, config_name))
  end
end
local tc = cfg.train or {}
-- --precision, else the precision the run was started with (a resumed run keeps it, whatever made
-- it: flag or config), else the config's, else auto; "auto" is recorded as what it picked
local precision = ddpm.precision(opts.precision ~= "config" and opts.precision
                                 or (run and not opts.override_config and run.precision) or tc.precision or "auto")
local recipe = objective.options(tc)
local total = args.integer(opts, "steps", "config", 1) or tc.steps or 1000
local batch = args.integer(opts, "batch", "config", 1) or tc.batch or 64
if batch < ranks then
  error(string.format("batch %d is smaller than the number of ranks %d: every rank needs a sample", batch, ranks), 0)
end
local first, count = ddpm.dist.shard(batch)
dist.require_same({opts = opts, config = cfg},
                  {["--init weights"] = opts.init ~= "" and opts.init or nil,
                   ["the checkpoint to resume"] = opts.resume and checkpoint_path or nil})

ddpm.seed(tc.seed or 0)
local model = ddpm.unet(cfg.model)
model.objective = recipe.objective  -- the sample sheets and the probe read the output as trained (ema:model() too)
if opts.init ~= "" then model:load(opts.init) end
ddpm.dist.broadcast_parameters(model)  -- every rank starts from rank 0's weights
-- a resumed run keeps the schedule it trained with (its betas are in the checkpoint); a new one
-- takes --schedule NAME|FILE.lua (a plugin or a native kind) over the config's
local schedule, schedule_name
if run and run.schedule and not opts.override_config then
  schedule, schedule_name = common.schedule_from_metadata(run.schedule), run.schedule.schedule
  local asked = opts.schedule and common.schedule{kind = opts.schedule, steps = schedule.steps}.name
  if asked and asked ~= schedule_name then
    error(string.format("--schedule %s: the run in %s was trained with %s (leave out --schedule, "
                        .. "or add --override-config)", opts.schedule, out, schedule_name), 0)
  end
else
  schedule = common.schedule(opts.schedule and {kind = opts.schedule, steps = (cfg.schedule or {}).steps or 1000}
                             or cfg.schedule)
  schedule_name = schedule.name
end
-- --sampler NAME|FILE.lua (and --sampler-opt) for the sample sheets and the quality probe
local sampler = opts.sampler and common.sampler(opts.sampler) or "ddim"
local sampler_options = common.sampler_options(opts.sampler_opt)
if opts.lr ~= "config" and not ((tonumber(opts.lr) or 0) > 0) then
  error("--lr must be a number > 0 or 'config', got '" .. tostring(opts.lr) .. "'", 0)
end
local base_lr = opts.lr ~= "config" and tonumber(opts.lr) or tc.lr or 1e-4
local opt = ddpm.optim.adam(model, {lr = base_lr, clip_norm = tc.clip_norm, weight_decay = tc.weight_decay or 0})
local ema = ddpm.ema(model, tc.ema or 0.999, {warmup = recipe.ema_warmup})
local data_spec = datasets.with_folder(tc.data, opts.data)
if tc.eval_every and data_spec.kind ~= "mnist" then
  error(string.format("train.eval_every: the quality probe judges MNIST digits; leave it out to train on %s",
                      datasets.describe(data_spec)), 0)
end
local classes = model:config().classes
local data = datasets.open(data_spec, cfg.model.image_size or 32, tc.resize or "bilinear")
datasets.check_labels(data, classes, data_spec)
local dropout = tc.label_dropout or 0
local init_text = run and run.init
if opts.init ~= "" then
  local before = ddpm.safetensors.metadata(opts.init).steps
  init_text = opts.init .. (before and (" (" .. before .. " steps)") or "")
end

local step, seconds = 0, 0

local function schedule_metadata()
  local meta = common.schedule_metadata(schedule)
  meta.schedule = schedule_name
  return meta
end

local function weights_metadata()
  local meta = schedule_metadata()
  meta.steps = tostring(step)
  meta.ema_decay = tostring(tc.ema or 0.999)
  meta.data = datasets.describe(data_spec) .. " " .. (cfg.model.image_size or 32) .. "px " .. (tc.resize or "bilinear")
  meta.recipe = config_name
  meta.init = init_text
  for k, v in pairs(objective.metadata(recipe)) do meta[k] = v end
  meta.label_dropout = tostring(dropout)
  meta.guidance_convention = "eps_u + w * (eps_c - eps_u); w = 1 is no guidance"
  if ranks > 1 then meta.ranks = tostring(ranks) end
  if precision ~= "fp32" then meta.precision = precision end  -- fp32 runs write what they always wrote
  return meta
end

-- model.safetensors (the EMA weights) is written after checkpoint.safetensors from the same
-- state, so it can lag the checkpoint only if the process dies between the two writes; --resume
-- trusts the checkpoint and rewrites model.safetensors from it first.
local function save_checkpoint()
  if not lead then return end
  ddpm.checkpoint.save(checkpoint_path, {model = model, optimizer = opt, ema = ema, data = data,
                                         step = step, seconds = seconds, run = {config = cfg, config_path = config_name,
                                         schedule = schedule_metadata(), init = init_text,
                                         precision = precision}})
  ema:model():save(out .. "/model.safetensors", weights_metadata())
end

if opts.resume then
  local state = ddpm.checkpoint.load(checkpoint_path, {model = model, optimizer = opt, ema = ema, data = data})
  step, seconds = state.step, state.seconds or 0
  if lead then
    ema:model():save(out .. "/model.safetensors", weights_metadata())
    print(string.format("resumed from %s at step %d", checkpoint_path, step))
  end
end

-- loss.csv: a new run starts it, a resumed run appends to it (never rewriting what an earlier
-- run saved); every line is flushed as it is written. After a hard kill the steps between the
-- last checkpoint and the kill appear twice: the later rows are the resumed run's.
local losses = {}  -- losses[s]: the loss of step s (a later row of a step replaces an earlier one)
for _, line in ipairs(lead and common.log_lines_upto(out .. "/loss.csv", step) or {}) do
  local s, v = line:match("^(%d+),([^,]+)")
  losses[tonumber(s)] = tonumber(v)
end
local log = lead and common.open_log(out .. "/loss.csv", "step,loss,grad_norm,lr,seconds", opts.resume) or dist.silent

-- Optional quality probe of the EMA weights every train.eval_every steps (eval.csv): accuracy of
-- the requested digit and the Fréchet distance to the test set, from the project's classifier.
-- Every rank makes the probe (it draws from the shared random stream); rank 0 alone runs it.
local probe, eval_log
if tc.eval_every then
  probe = evaluation.probe{schedule = schedule, size = cfg.model.image_size or 32, per_class = tc.eval_per_class,
                           sampler = sampler, options = sampler_options, data = data_spec.path}
  eval_log = lead and common.open_log(out .. "/eval.csv", "step,accuracy,frechet", opts.resume) or dist.silent
  if not lead then probe = nil end
end
local function evaluate()
  local accuracy, frechet = probe(ema:model())
  eval_log:write(string.format("%d,%.4f,%.3f\n", step, accuracy, frechet))
  eval_log:flush()
  print(string.format("\nstep %d: accuracy %.1f %%, Frechet %.2f (EMA weights, %s-20 unguided, %d digits)",
                      step, 100 * accuracy, frechet, type(sampler) == "table" and sampler.name or "DDIM",
                      10 * (tc.eval_per_class or 20)))
end

-- One image per class (the first 100 classes), ten to a row.
local function sample_sheet()
  if not lead then return end
  local labels = {}
  for c = 0, math.min(classes, 100) - 1 do labels[#labels + 1] = c end
  local sc = cfg.sample or {}
  local steps = opts.sampler and sampler.default_steps or sc.steps or 20
  local x = ddpm.sample{model = ema:model(), schedule = schedule, labels = labels, sampler = sampler,
                        options = sampler_options, steps = math.min(steps, schedule.steps), guidance = sc.guidance or 1,
                        seed = 1234}
  ddpm.image.save(ddpm.image.grid(x, {cols = math.min(#labels, 10)}),
                  string.format("%s/samples/step-%06d.png", out, step), {scale = 2})
end

local function loss_curve()
  if not lead then return end
  local values = {}
  for s = 1, step do values[#values + 1] = losses[s] end
  -- smoothed over windows so the curve shows the trend, not the per-batch noise
  local w = math.max(1, math.floor(#values / 200))
  local pts = {}
  for i = 1, #values, w do
    local s, n = 0, 0
    for j = i, math.min(i + w - 1, #values) do s = s + values[j]; n = n + 1 end
    pts[#pts + 1] = s / n
  end
  ddpm.image.save(plot.curve(pts, {x_last = #values}), out .. "/loss.png")
end

-- A --sampler plugin samples one digit in two steps before the first training step, so a broken
-- plugin stops the run before it writes a checkpoint rather than at the first sheet.
if opts.sampler and lead then
  ddpm.sample{model = ema:model(), schedule = schedule, labels = {0}, sampler = sampler, options = sampler_options,
              steps = math.min(2, schedule.steps), seed = 0}
end

local progress = lead and ddpm.progress(total, "train", step) or dist.silent  -- rate and ETA from the steps run now
local interrupted = false
local communication = 0  -- seconds in the gradient allreduce
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
  if ranks > 1 then
    x0, noise = x0:narrow(1, first, count), noise:narrow(1, first, count)
    labels, t = dist.slice(labels, first, count), dist.slice(t, first, count)
  end
  local x_t, target = ddpm.no_grad(function()
    return schedule:add_noise(x0, t, noise), objective.target(schedule, recipe.objective, x0, noise, t)
  end)
  local loss = objective.loss(recipe, schedule, model:forward(x_t, t, labels), target, t)
  local lv = loss:item()
  -- the whole batch's mean loss: the slices' means weighted by their shares
  if ranks > 1 then lv = ddpm.dist.allreduce(T.from({lv * count / batch})):item() end
  if lv ~= lv or lv == math.huge or lv == -math.huge then
    log:close()
    error(string.format("loss became %s at step %d; stopped without updating. The last good checkpoint is %s",
                        tostring(lv), step + 1, checkpoint_path), 0)
  end
  opt:zero_grad()
  loss:backward()
  if ranks > 1 then communication = communication + ddpm.dist.allreduce_gradients(model, count / batch) end
  local gn = opt:step()
  ema:update()
  step = step + 1
  seconds = seconds + (ddpm.clock() - t0)
  losses[step] = lv
  log:write(string.format("%d,%.6f,%.4f,%.3g,%.1f\n", step, lv, gn, opt.lr, seconds))
  progress:update(step, string.format("loss %.4f", lv))
  if ddpm.dist.any(ddpm.interrupted()) then interrupted = true break end  -- every rank stops at the same step
  if step % every == 0 or step == total then save_checkpoint() end
  if tc.sample_every and step % tc.sample_every == 0 then sample_sheet() end
  if probe and step % tc.eval_every == 0 then evaluate() end
end
if interrupted then
  save_checkpoint()
  log:close()
  loss_curve()
  if lead then
    print(string.format("\ninterrupted at step %d: checkpoint saved to %s (continue with --resume)", step,
                        checkpoint_path))
  end
  lock:release()
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
if lead then
  local on = ranks > 1 and string.format(" on %d ranks (gradient allreduce %.1f s)", ranks, communication) or ""
  print(string.format("trained %d steps in %.1f s%s; EMA weights: %s/model.safetensors", step, seconds, on, out))
end
