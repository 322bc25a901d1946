-- Progressive distillation (Salimans & Ho 2022, "Progressive Distillation for Fast Sampling of
-- Diffusion Models"), with classifier-free guidance folded into the student (Meng et al. 2023,
-- "On Distillation of Guided Diffusion Models", one fixed weight).
--
-- A round turns a teacher sampled with DDIM at N trailing steps into a student sampled with DDIM at
-- N/2: for a training image x0 and a student timestep t (noised to z_t), the teacher takes two
-- DDIM steps t -> t' -> t'' (its guided eps in the first round), and the student learns the x0
-- whose single DDIM step t -> t'' lands where the teacher's two did:
--   x~ = (z_t'' - (s''/s) z_t) / (a'' - (s''/s) a)      (a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar))
-- as a v-target (L2 on v is L2 on x0 weighted by SNR + 1). The student starts from the teacher; the
-- next round's teacher is this round's student (its EMA weights). The last student is a normal
-- weights file: its metadata names DDIM with trailing spacing at its steps and guidance 1.
--
--   ddpm distill --config distill --out runs/distill          (configs/distill.lua: 32 -> 4 steps)
--   ddpm distill --out runs/distill --resume                   continue where it stopped
--
-- Writes into --out: checkpoint.safetensors (student, optimizer, EMA, round, step, random state),
-- round-N.safetensors (each round's student, N steps), model.safetensors (the latest student),
-- loss.csv (round, step, loss) and eval.csv (each round's probe).
local args = require("lib.args")
local common = require("lib.common")
local datasets = require("lib.datasets")
local evaluation = require("lib.evaluation")
local known = require("lib.known")
local objective = require("lib.objective")
local solvers = require("lib.solvers")
local T = ddpm.tensor

local opts = args.parse(arg, {config = "distill", out = "runs/distill", resume = false, teacher = "", data = "",
                              precision = "config"}, {
  usage = "ddpm distill [options]  (or: ddpm run scripts/distill.lua [options])",
  summary = "Distils a model into a few-step student (progressive distillation); --out gets round-N.safetensors, "
            .. "model.safetensors (the last student), loss.csv.",
  config = "distillation config, or a bare name such as distill for scripts/configs/distill.lua",
  out = "output folder (one run at a time: train.lock)",
  resume = "continue from --out's checkpoint, under the config it saved",
  teacher = "the teacher's weights in place of the config's distill.teacher",
  data = "MNIST's folder (none: $DDPM_DATA, then data/mnist)",
  precision = "the products' precision: fp32, bf16 (needs a CPU with AVX512-BF16) or auto (the faster here); "
              .. "'config': on --resume the run's own, else auto",
})
local out = opts.out
common.mkdir(out)
local lock = ddpm.checkpoint.lock(out)
local checkpoint_path = out .. "/checkpoint.safetensors"

local fields = {"teacher", "start_steps", "final_steps", "round_steps", "batch", "lr", "clip_norm", "ema", "seed",
                "objective", "guidance", "guidance_interval", "checkpoint_every", "eval_per_class"}

local function load_config(name)
  local cfg = dofile(common.config_path(name))
  if type(cfg) ~= "table" or type(cfg.distill) ~= "table" then
    error(name .. ": a distillation config returns a table with a `distill` table", 0)
  end
  common.check_fields(cfg, {"distill"}, "config", name)
  common.check_fields(cfg.distill, fields, "distill", name)
  return cfg
end

local saved = opts.resume and common.file_exists(checkpoint_path) and ddpm.checkpoint.read(checkpoint_path)
if opts.resume and not saved then
  error("--resume: no checkpoint at " .. checkpoint_path .. " (start without --resume)", 0)
end
if saved and not (type(saved.run) == "table" and type(saved.run.config) == "table"
                  and type(saved.run.config.distill) == "table") then
  error("--resume: " .. checkpoint_path .. " is not a distillation checkpoint (a training run's? resume it with "
        .. "ddpm train --resume)", 0)
end
-- --precision, else the run's own (a resumed run keeps it), else auto; "auto" is recorded as what it picked
local precision = ddpm.precision(opts.precision ~= "config" and opts.precision or saved and saved.run.precision
                                 or "auto")
local cfg = saved and saved.run.config or load_config(opts.config)
local config_name = saved and saved.run.config_name or opts.config
local dc = cfg.distill
local function power_of_two_multiple(n, of)
  local q = n / of
  return n % of == 0 and q >= 1 and q == 2 ^ math.floor(math.log(q, 2) + 0.5)
end
local start, final = dc.start_steps or 32, dc.final_steps or 4
if math.type(start) ~= "integer" or math.type(final) ~= "integer" or final < 1 or start <= final
   or not power_of_two_multiple(start, final) then
  error(string.format("distill: start_steps (%s) must be final_steps (%s) times a power of two >= 2",
                      tostring(start), tostring(final)), 0)
end
local rounds = math.floor(math.log(start // final, 2) + 0.5)
local function round_length(r)
  local n = dc.round_steps or 1000
  if type(n) == "table" then n = n[r] end
  if math.type(n) ~= "integer" or n < 1 then
    error(string.format("distill.round_steps must be whole numbers >= 1 (round %d: %s)", r, tostring(n)), 0)
  end
  return n
end
for r = 1, rounds do round_length(r) end  -- every round's length is checked before any work
local function whole(value, min, field)
  if math.type(value) ~= "integer" or value < min then
    error(string.format("distill.%s must be a whole number >= %d, got %s", field, min, tostring(value)), 0)
  end
  return value
end
local checkpoint_every = whole(dc.checkpoint_every or 100, 1, "checkpoint_every")
local eval_per_class = whole(dc.eval_per_class or 20, 0, "eval_per_class")
if eval_per_class == 1 then error("distill.eval_per_class must be 0 (no probe) or >= 2, got 1", 0) end
whole(dc.batch or 64, 1, "batch")
for _, field in ipairs({"lr", "guidance"}) do
  local v = dc[field]
  if v ~= nil and (type(v) ~= "number" or not (v > 0) or v == math.huge) then
    error(string.format("distill.%s must be a number > 0, got %s", field, tostring(v)), 0)
  end
end
local student_objective = dc.objective or "v"
if student_objective ~= "v" and student_objective ~= "x0" then
  error("distill.objective must be v or x0 (an eps-model cannot predict x0 at the last noise levels), got "
        .. tostring(student_objective), 0)
end

local teacher_path = saved and saved.run.teacher or (opts.teacher ~= "" and opts.teacher) or dc.teacher
              or common.default_weights()
if not common.file_exists(teacher_path) then
  -- a shipped file named relative to the repository (weights/mnist-small.safetensors)
  if not common.file_exists(common.home .. "/" .. teacher_path) then
    error("distill.teacher: no weights file " .. teacher_path, 0)
  end
  teacher_path = common.home .. "/" .. teacher_path
end

local original = ddpm.load_model(teacher_path)
local teacher_meta = ddpm.safetensors.metadata(teacher_path)
local s = original.schedule
local guidance = dc.guidance or tonumber(teacher_meta.default_guidance or "1")
local interval = common.parse_interval(dc.guidance_interval or teacher_meta.default_guidance_interval)
local batch, base_lr = dc.batch or 64, dc.lr or 1e-4
local size = original:config().image_size
if start > s.steps then
  error(string.format("distill.start_steps %d is more than the teacher's %d timesteps", start, s.steps), 0)
end
local resize = known.resize_mode(teacher_meta)  -- the teacher's training data, as it saw it

-- The timesteps of a sampler with n steps: trailing spacing, so each grid holds every other
-- timestep of the grid with twice the steps, and a student's steps are pairs of its teacher's.
local function grid(n) return solvers.timesteps(s, n, "trailing") end

local function per_sample(t, f)
  local values = {}
  for i, ti in ipairs(t) do values[i] = f(ti) end
  return T.from(values, {#t, 1, 1, 1})
end

--- The teacher's noise prediction at per-sample timesteps t, guided with weight w where t lies
--- in `interval`: one forward of the batch plus an unconditional copy of the guided samples only.
local function teacher_eps(teacher, x, t, labels, w)
  local guided = {}
  for i, ti in ipairs(t) do
    if w ~= 1 and (not interval or (ti >= interval[1] and ti <= interval[2])) then guided[#guided + 1] = i end
  end
  local n, rows, tt, ll = #labels, {x}, {}, {}
  for i = 1, n do tt[i], ll[i] = t[i], labels[i] end
  for k, i in ipairs(guided) do rows[k + 1], tt[n + k], ll[n + k] = x:narrow(1, i, 1), t[i], -1 end
  local input = #guided > 0 and T.cat(rows, 1) or x
  local eps = s:to_eps(teacher:forward(input, tt, ll), input, tt, teacher.objective)
  if #guided == 0 then return eps end
  local out, at = {}, {}
  for k, i in ipairs(guided) do at[i] = k end
  for i = 1, n do
    local cond = eps:narrow(1, i, 1)
    if at[i] then
      local uncond = eps:narrow(1, n + at[i], 1)
      cond = uncond + (cond - uncond) * w
    end
    out[i] = cond
  end
  return T.cat(out, 1)
end

local data = datasets.open(datasets.with_folder(nil, opts.data), size, resize)
ddpm.seed(dc.seed or 0)
local student = ddpm.load_model(teacher_path)
student.objective = student_objective
local round, step, seconds = 1, 0, 0
if saved then round = saved.run.round end
-- the teacher of round r: the original (guided) in round 1, else round r-1's student
local function round_teacher(r)
  if r == 1 then return original, guidance end
  local m = ddpm.load_model(string.format("%s/round-%d.safetensors", out, start >> (r - 1)))
  return m, 1
end

local function student_metadata(steps, r)
  local meta = common.schedule_metadata(s)
  meta.schedule = teacher_meta.schedule
  meta.objective = student_objective
  meta.default_sampler, meta.default_steps, meta.default_sampler_options = "ddim", tostring(steps), "spacing=trailing"
  meta.default_guidance = "1"
  meta.distilled_from = common.provenance_path(teacher_path)
  meta.distill_rounds = string.format("%d of %d: %d -> %d DDIM steps", r, rounds, start, steps)
  meta.distill_guidance = string.format("%g at timesteps %s", guidance, common.interval_text(interval))
  local total = step
  for earlier = 1, r - 1 do total = total + round_length(earlier) end
  meta.distill_steps = tostring(total)  -- training steps of every round so far
  meta.distill_seconds = string.format("%.0f", seconds)
  meta.recipe = "distill.lua " .. config_name
  meta.data = "mnist train " .. size .. "px " .. resize
  if precision ~= "fp32" then meta.precision = precision end
  return meta
end

local loss_log = common.open_log(out .. "/loss.csv", "round,step,loss,lr,seconds", opts.resume)
local eval_log = common.open_log(out .. "/eval.csv", "round,steps,accuracy,frechet", opts.resume)
local probe = eval_per_class > 0 and evaluation.probe{schedule = s, size = size, sampler = "ddim",
                                                     per_class = eval_per_class,
                                                     options = {spacing = "trailing"},
                                                     data = opts.data ~= "" and opts.data or nil}

while round <= rounds do
  local teacher, w = round_teacher(round)
  local teacher_steps = start >> (round - 1)
  local steps = teacher_steps // 2
  local fine, coarse = grid(teacher_steps), grid(steps)
  local length = round_length(round)
  local opt = ddpm.optim.adam(student, {lr = base_lr, clip_norm = dc.clip_norm})
  local ema = ddpm.ema(student, dc.ema or 0.999)
  local first_step = 0
  if saved and saved.run.round == round then
    local state = ddpm.checkpoint.load(checkpoint_path, {model = student, optimizer = opt, ema = ema, data = data})
    first_step, seconds = state.step, state.seconds or 0
    print(string.format("resumed round %d (%d -> %d steps) at step %d", round, teacher_steps, steps, first_step))
  end
  local function save()
    ddpm.checkpoint.save(checkpoint_path, {model = student, optimizer = opt, ema = ema, data = data, step = step,
                                           seconds = seconds,
                                           run = {config = cfg, round = round, teacher = teacher_path,
                                                  config_name = config_name, precision = precision}})
    ema:model():save(out .. "/model.safetensors", student_metadata(steps, round))
  end
  local progress = ddpm.progress(length, string.format("round %d/%d: %d -> %d steps", round, rounds, teacher_steps,
                                                       steps), first_step)
  step = first_step
  while step < length do
    local t0 = ddpm.clock()
    opt.lr = base_lr * (1 - step / length)
    local x0, labels = data:batch(batch)
    local u = T.rand({batch}):totable()
    local t, t_mid, t_next = {}, {}, {}
    for i = 1, batch do
      local k = math.min(math.floor(u[i] * steps), steps - 1)  -- the student's step k (0-based)
      t[i], t_mid[i], t_next[i] = coarse[k + 1], fine[2 * k + 2], coarse[k + 2] or -1
    end
    local z = s:add_noise(x0, t, T.randn(x0:shape()))
    local target = ddpm.no_grad(function()
      local z_mid = s:ddim_step(z, teacher_eps(teacher, z, t, labels, w), t, t_mid)
      local z_next = s:ddim_step(z_mid, teacher_eps(teacher, z_mid, t_mid, labels, w), t_mid, t_next)
      local a = per_sample(t, function(ti) return math.sqrt(s:alpha_bar(ti)) end)
      local sig = per_sample(t, function(ti) return math.sqrt(1 - s:alpha_bar(ti)) end)
      local a2 = per_sample(t_next, function(ti) return math.sqrt(s:alpha_bar(ti)) end)
      local ratio = per_sample(t_next, function(ti) return math.sqrt(1 - s:alpha_bar(ti)) end) / sig
      local x_tilde = (z_next - z * ratio) / (a2 - a * ratio)
      -- v of (x~, z_t): v = a eps - s x0 with eps = (z_t - a x0) / s
      return objective.target(s, "v", x_tilde, (z - x_tilde * a) / sig, t)
    end)
    if student_objective == "x0" then target = s:to_x0(target, z, t, "v") end
    local loss = ddpm.loss.mse(student:forward(z, t, labels), target)
    local lv = loss:item()
    if lv ~= lv or lv == math.huge then
      error(string.format("loss became %s in round %d at step %d; the last good checkpoint is %s", tostring(lv),
                          round, step + 1, checkpoint_path), 0)
    end
    opt:zero_grad()
    loss:backward()
    opt:step()
    ema:update()
    step = step + 1
    seconds = seconds + (ddpm.clock() - t0)
    loss_log:write(string.format("%d,%d,%.6f,%.3g,%.1f\n", round, step, lv, opt.lr, seconds))
    progress:update(step, string.format("loss %.4f", lv))
    if ddpm.interrupted() then
      save()
      print(string.format("\ninterrupted in round %d at step %d: checkpoint saved to %s (continue with --resume)",
                          round, step, checkpoint_path))
      lock:release()
      os.exit(130)
    end
    if step % checkpoint_every == 0 then save() end
  end
  progress:close()
  save()
  ema:model():save(string.format("%s/round-%d.safetensors", out, steps), student_metadata(steps, round))
  if probe then
    local accuracy, frechet = probe(ema:model(), steps)
    eval_log:write(string.format("%d,%d,%.4f,%.3f\n", round, steps, accuracy, frechet))
    print(string.format("round %d: %d steps, accuracy %.1f %%, Frechet %.2f (%d digits, DDIM trailing, unguided)",
                        round, steps, 100 * accuracy, frechet, 10 * eval_per_class))
  end
  -- the next round's student starts from this round's EMA weights (a run stopped before the next
  -- round's first checkpoint resumes from this round's last one, at its end)
  student:copy_from(ema:model())
  round, saved = round + 1, nil
end
loss_log:close()
eval_log:close()
print(string.format("distilled %d rounds (%d -> %d steps) in %.1f s; student: %s/model.safetensors", rounds, start,
                    final, seconds, out))
lock:release()
