-- Helpers shared by the bundled recipes: schedules from configs, weights lookup, files.
local args = require("lib.args")
local datasets = require("lib.datasets")
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
  if floor <= 0 or floor > lr then
    error(string.format("train.lr_min must be in (0, lr = %g], got %g", lr, floor), 0)
  end
  local p = math.min(1, (done - start) / math.max(1, total - start))
  return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * p))
end

--- The fields of a training config's tables (`model` is checked by ddpm.unet, train.data by
--- lib/datasets.lua). Any other field is an error: a misspelt option must not silently become a default.
M.config_fields = {
  top = {"model", "schedule", "train", "sample"},
  train = {"batch", "lr", "steps", "seed", "clip_norm", "weight_decay", "ema", "resize", "loss", "label_dropout",
           "checkpoint_every", "sample_every", "eval_every", "eval_per_class", "lr_decay_start", "lr_min", "data",
           "objective", "loss_weight", "gamma", "huber_delta", "ema_warmup", "offset_noise",
           "precision"},
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

M.check_fields = check_fields

--- The file a --config names: a path (as given, else under the bundled scripts folder), or a
--- bare name such as "tiny" for configs/tiny.lua.
function M.config_path(name)
  if not name:find("/") then
    local file = name:match("%.lua$") and name or name .. ".lua"
    if not M.file_exists(name) then
      local ok, found = pcall(M.resolve, "configs/" .. file)
      if ok then return found end
    end
  end
  return M.resolve(name)
end

--- A config's schedule file: relative to the config's folder, else under the bundled scripts
--- folder (so "schedules/cosine_lua.lua" names the bundled one); an absolute path as is.
local function schedule_file(file, config_path)
  if file:sub(1, 1) == "/" then return file end
  local dir = config_path:match("^(.*)/[^/]*$") or "."
  if M.file_exists(dir .. "/" .. file) then return dir .. "/" .. file end
  local ok, found = pcall(M.resolve, file)
  if ok then return found end
  error(string.format("%s: schedule file %s found neither in %s/ nor in the bundled scripts folder", config_path,
                      file, dir), 0)
end

--- Loads a training config file (see config_path) and checks its fields (see config_fields);
--- a schedule file= is resolved to its path (see schedule_file).
function M.load_config(path)
  local file = M.config_path(path)
  local cfg = dofile(file)
  if type(cfg) ~= "table" then error(path .. ": a config file must return a table", 0) end
  check_fields(cfg, M.config_fields.top, "config", path)
  for _, section in ipairs({"train", "sample"}) do
    if cfg[section] ~= nil then
      if type(cfg[section]) ~= "table" then error(string.format("%s: %s must be a table", path, section), 0) end
      check_fields(cfg[section], M.config_fields[section], section, path)
    end
  end
  if type(cfg.train) == "table" and cfg.train.data ~= nil then datasets.check(cfg.train.data, path) end
  if type(cfg.schedule) == "table" and type(cfg.schedule.file) == "string" then
    cfg.schedule.file = schedule_file(cfg.schedule.file, file)
  end
  return cfg
end

--- A schedule from a config entry: {kind = NAME|FILE.lua, steps = ..., ...} (a native kind,
--- linear, cosine or sigmoid, with the entry's other fields as its options, or a schedule plugin
--- found as `ddpm train --schedule` finds it), or {file = "x.lua", ...} (a schedule plugin, or a
--- Lua file returning a schedule or a function of this table that returns one, named after the
--- file), or a schedule object itself.
function M.schedule(spec)
  spec = spec or {kind = "linear", steps = 1000}
  if type(spec) == "userdata" then return spec end
  local name = spec.kind or "linear"
  if spec.file then
    local path = M.resolve(spec.file)
    local s = dofile(path)
    if type(s) ~= "table" then
      if type(s) == "function" then s = s(spec) end
      if type(s) ~= "userdata" or not tostring(s):match("^ddpm%.Schedule") then
        error(string.format("%s: a schedule file must be a schedule plugin (a table) or return a schedule or a "
                            .. "function returning one, got %s", spec.file, type(s)), 0)
      end
      return ddpm.schedule.from_betas(s:betas(), {name = spec.file:match("([^/]+)$")})
    end
    name = path
  end
  local _, why = ddpm.plugins.find("schedule", name)
  if why then error(why, 0) end
  local p = ddpm.plugins.load("schedule", name)
  if p.native then return ddpm.schedule[p.native](spec) end
  local steps = spec.steps or 1000
  local betas
  if p.betas then
    betas = p.betas(steps)
    if type(betas) ~= "table" or #betas ~= steps then
      error(string.format("schedule plugin %s: betas(%d) must return a table of %d betas, got %s", p.path, steps, steps,
                          type(betas) == "table" and (#betas .. " entries") or type(betas)), 0)
    end
  else
    betas = ddpm.schedule.from_alpha_bar(p.alpha_bar, steps, spec.max_beta or p.max_beta or 0.999):betas()
  end
  return ddpm.schedule.from_betas(betas, {name = p.name})
end

--- Schedule metadata for weights files: the name and every beta (s:metadata()), so sampling uses
--- exactly the schedule the model was trained with (ddpm.schedule.from_weights reads it back).
function M.schedule_metadata(s)
  return s:metadata()
end

--- The schedule a metadata table describes (s:metadata()'s form, as saved in a checkpoint's run
--- record): its betas and name, or the linear schedule of `schedule_steps` when it has no betas.
function M.schedule_from_metadata(meta)
  if meta.betas then
    local betas = {}
    for b in meta.betas:gmatch("[^,]+") do betas[#betas + 1] = tonumber(b) end
    return ddpm.schedule.from_betas(betas, {name = meta.schedule})
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

--- The folder holding the bundled scripts/ and weights/ (the repository, or an installation's
--- share/ddpm), absolute.
M.home = ddpm.absolute_path((debug.getinfo(1, "S").source:match("^@(.*)/lib/[^/]*$") or "scripts") .. "/..")

--- A weights path as provenance records it: standardised (absolute, no ./, .. or //, symlinks
--- resolved), and relative to M.home for the files shipped there (weights/mnist-small.safetensors),
--- so a sheet of the shipped weights is the same file wherever the repository is.
function M.provenance_path(path)
  local abs = ddpm.absolute_path(path)
  if abs:sub(1, #M.home + 1) == M.home .. "/" then return abs:sub(#M.home + 2) end
  return abs
end

--- "100,700" -> {100, 700} (timesteps where guidance applies, inclusive); "all" or "" -> nil (every step).
function M.parse_interval(s)
  if s == nil or s == "" or s == "all" then return nil end
  local lo, hi = tostring(s):match("^%s*(%d+)%s*,%s*(%d+)%s*$")
  if not lo or tonumber(lo) > tonumber(hi) then
    error("--guidance-interval needs LOW,HIGH timesteps with LOW <= HIGH (e.g. 100,700) or 'all', got '"
          .. tostring(s) .. "'", 0)
  end
  return {tonumber(lo), tonumber(hi)}
end

--- "{100, 700}" or nil -> "100,700" or "all" (for provenance and tables)
function M.interval_text(interval)
  return interval and string.format("%d,%d", interval[1], interval[2]) or "all"
end

--- The options of every command that samples (`ddpm sample`, `gif`, `eval`), declared once. Unset
--- ones (nil) take the weights' recommended setting (their metadata's default_sampler,
--- default_steps, default_guidance, default_guidance_interval), else the sampler's own default.
M.sampling_options = {
  weights = args.optional("string"), sampler = args.optional("string"), steps = args.optional("string"),
  guidance = args.optional("number"), guidance_interval = args.optional("string"), eta = args.optional("number"),
  seed = 0,
  sampler_opt = args.list(), precision = "auto",
}

--- One-line descriptions of the sampling options (for --help).
M.sampling_help = {
  weights = "weights file (none: weights/mnist-small.safetensors)",
  sampler = "NAME or FILE.lua: a sampler plugin or the native ddpm, ddim (none: the weights' recommended, "
            .. "else ddim); `ddpm samplers` lists them",
  sampler_opt = "a sampler option key=value, e.g. spacing=trailing",
  steps = "sampling steps (model calls), 1..T or 'auto' (none or 'auto': the weights' recommended for their "
          .. "sampler, else the sampler's default; DDPM visits every timestep)",
  guidance = "classifier-free guidance w, 1 = none (none: the weights' recommended)",
  guidance_interval = "timesteps LOW,HIGH (0-based, inclusive) where guidance applies, or 'all' "
                      .. "(none: the weights' recommended)",
  eta = "sampler noise (ctx.eta): DDIM 0 deterministic, 1 as stochastic as DDPM (none: the sampler's "
        .. "default_eta, else 0)",
  seed = "random seed; image i uses seed + i",
  precision = "the products' precision: fp32, bf16 (mixed precision; needs a CPU with AVX512-BF16) or auto "
              .. "(the faster of the two on this CPU; the default)",
}

--- Parses a sampling recipe's arguments: the sampling options plus the recipe's own `defaults`;
--- `help` describes the recipe's options (the sampling ones are added).
function M.parse_sampling_args(argv, defaults, help)
  local all, text = {}, {}
  for k, v in pairs(M.sampling_options) do all[k] = v end
  for k, v in pairs(defaults) do all[k] = v end
  for k, v in pairs(M.sampling_help) do text[k] = v end
  for k, v in pairs(help or {}) do text[k] = v end
  return args.parse(argv, all, text)
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

--- img2img (`--init`, `--strength`): the timestep the sampler starts from and its steps. Strength S
--- in [0, 1] starts at timestep t = round(S T) - 1 (-1: the input itself; T - 1: plain sampling
--- from pure noise) with round(S steps) steps, at least 1 (the share of the full process).
function M.img2img_start(strength, schedule, steps)
  if type(strength) ~= "number" or not (strength >= 0 and strength <= 1) then
    error("--strength must be in [0, 1] (0: the input, 1: plain sampling), got " .. tostring(strength), 0)
  end
  local t = math.floor(strength * schedule.steps + 0.5) - 1
  return t, math.max(1, math.min(math.floor(strength * steps + 0.5), t + 1))
end

--- From the sampling options (see sampling_options): a table with the weights path, `model`,
--- `meta` (the weights' metadata), `schedule` (the one they were trained with), `sampler` (the
--- plugin table) and `sampler_name`, `steps`, `guidance`, `interval` (timesteps where guidance
--- applies; nil = every step), `eta`, `options` (the sampler's; with neither --sampler nor
--- --sampler-opt, the weights' default_sampler_options), and
---   setup:sample{labels=, seeds=, on_step=, steps=, known=, t_start=} -> images, as ddpm.sample with these
---   settings (steps= overrides the setup's);
---   setup:calls(steps) -> how many times on_step is called (a plugin's `calls`, else steps);
---   setup:describe() -> "dpmpp_2m 10 steps, guidance 1.5 at timesteps 500,880";
---   setup:provenance(extra) -> the settings as PNG text chunks, plus `extra`.
function M.sampling_setup(opts)
  local precision = ddpm.precision(opts.precision or "auto")  -- "auto" becomes what it picked
  local weights = opts.weights or M.default_weights()
  local model = ddpm.load_model(weights)
  local meta = ddpm.safetensors.metadata(weights)
  local schedule = model.schedule  -- the weights' own (ddpm.schedule.from_weights)
  local name = opts.sampler or meta.default_sampler or "ddim"
  local sampler = M.sampler(name)
  local steps = opts.steps and args.integer(opts, "steps", "auto", 1)
  if steps and steps > schedule.steps then
    error(string.format("--steps %d is more than the schedule's %d timesteps", steps, schedule.steps), 0)
  end
  if sampler.native == "ddpm" then  -- DDPM visits every timestep
    if steps and steps ~= schedule.steps then
      error(string.format("--sampler ddpm visits every one of the schedule's %d timesteps: leave --steps out",
                          schedule.steps), 0)
    end
    steps = schedule.steps
  end
  local default_steps = (opts.sampler == nil and tonumber(meta.default_steps or "")) or sampler.default_steps
  local setup = {
    weights = weights, model = model, meta = meta, schedule = schedule, sampler = sampler, sampler_name = name,
    steps = steps or math.min(default_steps or schedule.steps, schedule.steps),
    guidance = opts.guidance or tonumber(meta.default_guidance or "1"),
    interval = M.parse_interval(opts.guidance_interval or meta.default_guidance_interval),
    eta = opts.eta or sampler.default_eta or 0, options = M.sampler_options(opts.sampler_opt),
    precision = precision,
  }
  -- the weights' recommended sampler comes with its recommended options ("spacing=trailing")
  if opts.sampler == nil and #(opts.sampler_opt or {}) == 0 and meta.default_sampler_options then
    local list = {}
    for kv in meta.default_sampler_options:gmatch("[^,]+") do list[#list + 1] = kv end
    setup.options = M.sampler_options(list)
  end
  function setup:sample(o)
    return ddpm.sample{model = self.model, schedule = self.schedule, sampler = self.sampler,
                       steps = o.steps or self.steps, eta = self.eta, guidance = self.guidance,
                       guidance_interval = self.interval, options = self.options, labels = o.labels, seeds = o.seeds,
                       on_step = o.on_step, known = o.known, t_start = o.t_start}
  end
  -- how many times a sample of `steps` steps calls on_step (a plugin's `calls`, else steps)
  function setup:calls(steps)
    steps = steps or self.steps
    if self.sampler.calls then return self.sampler.calls(steps, self.options) end
    return steps
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
    return string.format("%s%s %d steps, guidance %g at timesteps %s", self.sampler_name,
                         o ~= "" and (" (" .. o .. ")") or "", self.steps, self.guidance,
                         M.interval_text(self.interval))
  end
  function setup:provenance(extra)
    self.sha256 = self.sha256 or ddpm.sha256(self.weights)
    local t = {weights = M.provenance_path(self.weights), weights_sha256 = self.sha256, sampler = self.sampler_name,
               steps = tostring(self.steps), guidance = tostring(self.guidance),
               guidance_interval = M.interval_text(self.interval), eta = tostring(self.eta)}
    if next(self.options) then t.sampler_options = self:options_text() end
    if self.precision ~= "fp32" then t.precision = self.precision end  -- fp32 files as before
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

--- The data lines of a CSV log whose first field (a step) is at most `step` (a resumed run reads
--- its log up to its checkpoint's step). No file: no lines.
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

--- Opens a CSV log: a new file with `header`, or with `append` the existing file to continue
--- (nothing in it is rewritten). Lines are flushed as they are written.
function M.open_log(path, header, append)
  local size, last = 0, nil
  local old = append and io.open(path, "rb")
  if old then
    size = old:seek("end")
    if size > 0 then old:seek("set", size - 1); last = old:read(1) end
    old:close()
  end
  local f, err = io.open(path, size > 0 and "a" or "w")
  if not f then error("cannot write " .. path .. ": " .. tostring(err), 0) end
  f:setvbuf("line")
  if size == 0 then f:write(header, "\n")
  elseif last ~= "\n" then f:write("\n") end  -- a line cut short stays on its own
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
