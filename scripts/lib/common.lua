-- Helpers shared by the bundled recipes: schedules from configs, weights lookup, files.
local args = require("lib.args")
local M = {}

function M.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function M.mkdir(path)
  -- os.execute is the portable way in plain Lua; paths come from the user's own flags.
  local ok = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
  if not ok then error("cannot create folder " .. path, 0) end
end

--- Finds a recipe-relative file: as given, else under the bundled scripts folder.
function M.resolve(path)
  if M.file_exists(path) then return path end
  for dir in package.path:gmatch("([^;]+)/%?%.lua") do
    if M.file_exists(dir .. "/" .. path) then return dir .. "/" .. path end
  end
  error("file not found: " .. path, 0)
end

--- The learning rate for the step after `done` steps of `total`: the recipe's lr, constant until
--- train.lr_decay_start (if set), then a cosine down to train.lr_min (default lr / 10) at the last step.
--- Annealing at the end is the "warmup-stable-decay" recipe: a run can be resumed and extended
--- at the constant rate, and only its last stretch decays.
function M.learning_rate(tc, lr, total, done)
  local start = tc.lr_decay_start
  if not start or done < start then return lr end
  local floor = tc.lr_min or lr / 10
  if floor <= 0 or floor > lr then error(string.format("train.lr_min must be in (0, lr = %g], got %g", lr, floor), 0) end
  local p = math.min(1, (done - start) / math.max(1, total - start))
  return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * p))
end

--- The fields of a training config's tables (`model` is checked by ddpm.unet). Any other
--- field is an error: a misspelt option must not silently become a default.
M.config_fields = {
  top = {"model", "schedule", "train", "sample"},
  train = {"batch", "lr", "steps", "seed", "clip_norm", "weight_decay", "ema", "resize", "loss", "label_dropout",
           "checkpoint_every", "sample_every", "eval_every", "eval_per_class", "lr_decay_start", "lr_min"},
  sample = {"steps", "guidance"},
}

local function check_fields(t, names, what, path)
  local known, unknown = {}, {}
  for _, k in ipairs(names) do known[k] = true end
  for k in pairs(t) do if not known[k] then unknown[#unknown + 1] = tostring(k) end end
  if #unknown > 0 then
    table.sort(unknown)
    local sorted = {table.unpack(names)}
    table.sort(sorted)
    error(string.format("%s: unknown %s field(s) %s (known: %s)", path, what, table.concat(unknown, ", "),
                        table.concat(sorted, ", ")), 0)
  end
end

--- Loads a training config file and checks its fields (see config_fields).
function M.load_config(path)
  local cfg = dofile(M.resolve(path))
  if type(cfg) ~= "table" then error(path .. ": a config file must return a table", 0) end
  check_fields(cfg, M.config_fields.top, "config", path)
  for _, section in ipairs({"train", "sample"}) do
    if cfg[section] ~= nil then
      if type(cfg[section]) ~= "table" then error(string.format("%s: %s must be a table", path, section), 0) end
      check_fields(cfg[section], M.config_fields[section], section, path)
    end
  end
  return cfg
end

--- A schedule from a config entry {kind = NAME|FILE.lua, steps = ..., ...}: a native kind
--- (linear, cosine, sigmoid: the entry's other fields are its options) or a schedule plugin found
--- as `ddpm train --schedule` finds it; {file = "schedules/x.lua"} names a plugin file relative
--- to the working folder or the bundled scripts. A schedule object is returned as it is.
function M.schedule(spec)
  spec = spec or {kind = "linear", steps = 1000}
  if type(spec) == "userdata" then return spec end
  local name = spec.file and M.resolve(spec.file) or spec.kind or "linear"
  local _, why = ddpm.plugins.find("schedule", name)
  if why then error(why, 0) end
  local p = ddpm.plugins.load("schedule", name)
  if p.native then return ddpm.schedule[p.native](spec) end
  local steps = spec.steps or 1000
  if p.betas then
    local betas = p.betas(steps)
    if type(betas) ~= "table" or #betas ~= steps then
      error(string.format("schedule plugin %s: betas(%d) must return a table of %d betas, got %s", p.path, steps, steps,
                          type(betas) == "table" and (#betas .. " entries") or type(betas)), 0)
    end
    return ddpm.schedule.from_betas(betas, p.name)
  end
  return ddpm.schedule.from_alpha_bar(p.alpha_bar, steps, spec.max_beta or p.max_beta or 0.999, p.name)
end

--- Schedule metadata for weights files: the name and every beta, so sampling uses exactly the
--- schedule the model was trained with.
function M.schedule_metadata(s)
  local betas = s:betas()
  local parts = {}
  for i, b in ipairs(betas) do parts[i] = string.format("%.17g", b) end
  return {schedule = s.name, schedule_steps = tostring(s.steps), betas = table.concat(parts, ",")}
end

--- The schedule stored in a weights file's metadata (linear 1000 when absent).
function M.schedule_from_metadata(meta)
  if meta.betas then
    local betas = {}
    for b in meta.betas:gmatch("[^,]+") do betas[#betas + 1] = tonumber(b) end
    return ddpm.schedule.from_betas(betas)
  end
  return ddpm.schedule.linear{steps = tonumber(meta.schedule_steps) or 1000}
end

--- The default weights: weights/mnist-small.safetensors (the shipped model with the best
--- evaluation), else the first other weights/mnist-*.safetensors that is a diffusion model.
function M.default_weights()
  local dirs = {"weights"}
  for dir in package.path:gmatch("([^;]+)/%?%.lua") do dirs[#dirs + 1] = dir .. "/../weights" end
  for _, d in ipairs(dirs) do
    local preferred = io.open(d .. "/mnist-small.safetensors", "rb")
    if preferred then preferred:close() return d .. "/mnist-small.safetensors" end
    local p = io.popen("ls '" .. d .. "'/mnist-*.safetensors 2>/dev/null")
    if p then
      for line in p:lines() do
        if not line:match("classifier") then p:close() return line end
      end
      p:close()
    end
  end
  error("no weights given and none found in weights/ (pass --weights FILE, or train one with `ddpm train`)", 0)
end

--- "100,700" -> {100, 700} (timesteps where guidance applies, inclusive); "all" or "" -> nil (every step).
function M.parse_interval(s)
  if s == nil or s == "" or s == "all" then return nil end
  local lo, hi = tostring(s):match("^%s*(%d+)%s*,%s*(%d+)%s*$")
  if not lo or tonumber(lo) > tonumber(hi) then
    error("--guidance-interval needs LOW,HIGH timesteps with LOW <= HIGH (e.g. 100,700) or 'all', got '" .. tostring(s) .. "'", 0)
  end
  return {tonumber(lo), tonumber(hi)}
end

--- "{100, 700}" or nil -> "100,700" or "all" (for provenance and tables)
function M.interval_text(interval)
  return interval and string.format("%d,%d", interval[1], interval[2]) or "all"
end

--- The options of every command that samples (`ddpm sample`, `gif`, `eval`), declared once.
--- Unset ones (nil) take the weights' recommended setting (their metadata's default_sampler,
--- default_steps, default_guidance, default_guidance_interval), else the sampler's own default.
M.sampling_options = {
  weights = args.optional("string"), sampler = args.optional("string"), steps = args.optional("number"),
  guidance = args.optional("number"), guidance_interval = args.optional("string"), eta = 0, seed = 0,
  sampler_opt = args.list(),
}

--- Parses a sampling recipe's arguments: the sampling options plus the recipe's own `defaults`.
function M.parse_sampling_args(argv, defaults)
  local all = {}
  for k, v in pairs(M.sampling_options) do all[k] = v end
  for k, v in pairs(defaults) do all[k] = v end
  return args.parse(argv, all)
end

--- {"key=value", ...} (repeated --sampler-opt) -> {key = "value", ...}
function M.sampler_options(list)
  local out = {}
  for _, kv in ipairs(list or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then error("--sampler-opt needs key=value, got '" .. kv .. "'", 0) end
    out[k] = v
  end
  return out
end

--- A sampler plugin by name or FILE.lua (ddpm.plugins.load); an unknown name lists every one found.
function M.sampler(name)
  local _, why = ddpm.plugins.find("sampler", name)
  if why then error(why, 0) end
  return ddpm.plugins.load("sampler", name)
end

--- From the sampling options (see sampling_options): a table with the weights path, `model`,
--- `meta` (the weights' metadata), `schedule` (the one they were trained with), `sampler` (the
--- plugin table) and `sampler_name`, `steps`, `guidance`, `interval` (timesteps where guidance
--- applies; nil = every step), `eta`, `options` (the sampler's), and
---   setup:sample{labels=, seeds=, on_step=} -> images, as ddpm.sample with these settings;
---   setup:describe() -> "dpmpp_2m 10 steps, guidance 1.5 at timesteps 500,880";
---   setup:provenance(extra) -> the settings as PNG text chunks, plus `extra`.
function M.sampling_setup(opts)
  local weights = opts.weights or M.default_weights()
  local model = ddpm.load_model(weights)
  local meta = ddpm.safetensors.metadata(weights)
  local schedule = M.schedule_from_metadata(meta)
  local name = opts.sampler or meta.default_sampler or "ddim"
  local sampler = M.sampler(name)
  local default_steps = (opts.sampler == nil and tonumber(meta.default_steps or "")) or sampler.default_steps
  local setup = {
    weights = weights, model = model, meta = meta, schedule = schedule, sampler = sampler, sampler_name = name,
    steps = opts.steps or default_steps or schedule.steps,
    guidance = opts.guidance or tonumber(meta.default_guidance or "1"),
    interval = M.parse_interval(opts.guidance_interval or meta.default_guidance_interval),
    eta = opts.eta or 0, options = M.sampler_options(opts.sampler_opt),
  }
  if setup.steps < 1 or setup.steps ~= math.floor(setup.steps) then
    error("--steps must be a whole number >= 1, got " .. tostring(setup.steps), 0)
  end
  function setup:sample(o)
    return ddpm.sample{model = self.model, schedule = self.schedule, sampler = self.sampler, steps = self.steps,
                       eta = self.eta, guidance = self.guidance, guidance_interval = self.interval,
                       options = self.options, labels = o.labels, seeds = o.seeds, on_step = o.on_step}
  end
  function setup:options_text()
    local keys, parts = {}, {}
    for k in pairs(self.options) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. self.options[k] end
    return table.concat(parts, ",")
  end
  function setup:describe()
    local o = self:options_text()
    return string.format("%s%s %d steps, guidance %g at timesteps %s", self.sampler_name, o ~= "" and (" (" .. o .. ")") or "",
                         self.steps, self.guidance, M.interval_text(self.interval))
  end
  function setup:provenance(extra)
    self.sha256 = self.sha256 or ddpm.sha256(self.weights)
    local t = {weights = self.weights, weights_sha256 = self.sha256, sampler = self.sampler_name,
               steps = tostring(self.steps), guidance = tostring(self.guidance),
               guidance_interval = M.interval_text(self.interval), eta = tostring(self.eta)}
    if next(self.options) then t.sampler_options = self:options_text() end
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
  end
  return setup
end

--- "0123456789" -> {0, 1, ..., 9}
function M.digits(s)
  local out = {}
  for c in tostring(s):gmatch("%d") do out[#out + 1] = tonumber(c) end
  if #out == 0 then error("--digits needs digits such as 0123456789, got '" .. tostring(s) .. "'", 0) end
  return out
end

--- The data lines of a CSV log whose first field (a step) is at most `step`: a resumed run
--- rewrites its logs without what was logged after its checkpoint. No file: no lines.
function M.log_lines_upto(path, step)
  local kept = {}
  local f = io.open(path)
  if not f then return kept end
  for line in f:lines() do
    local s = line:match("^(%d+),")
    if s and tonumber(s) <= step then kept[#kept + 1] = line end
  end
  f:close()
  return kept
end

--- Opens a CSV log for writing: the header, then `kept` lines (see log_lines_upto).
function M.open_log(path, header, kept)
  local f, err = io.open(path, "w")
  if not f then error("cannot write " .. path .. ": " .. tostring(err), 0) end
  f:write(header, "\n")
  for _, line in ipairs(kept or {}) do f:write(line, "\n") end
  return f
end

function M.write_text(path, text)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  f:close()
  assert(os.rename(tmp, path))
end

return M
