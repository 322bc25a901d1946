-- The training objective of scripts/train.lua, from a config's `train` table: what the model
-- outputs (eps, v or x0), the loss on it (L1, L2, Huber), the per-sample loss weights (none or
-- min-SNR-gamma) and offset noise. Sampling reads such a model through s:to_eps / s:to_x0 (one
-- native conversion, Schedule.prediction); training builds its targets here.
--
-- With x_t = a x0 + s eps, a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t), SNR = a^2 / s^2:
--   eps  target eps                       min-SNR weight min(SNR, gamma) / SNR
--   v    target v = a eps - s x0          min-SNR weight min(SNR, gamma) / (SNR + 1)
--   x0   target x0                        min-SNR weight min(SNR, gamma)
-- Each weight turns the squared error of the output into min(SNR, gamma) times the squared error
-- of x0-hat (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy").
local T = ddpm.tensor
local M = {}

M.objectives = {"eps", "v", "x0"}
M.losses = {"l1", "l2", "huber"}
M.weightings = {"none", "min_snr"}
M.default_gamma = 5
M.default_huber_delta = 0.1

local function one_of(value, choices, field)
  for _, c in ipairs(choices) do if value == c then return value end end
  error(string.format("train.%s must be %s, got %s", field, table.concat(choices, ", "), tostring(value)), 0)
end

local function positive(value, field)
  if type(value) ~= "number" or not (value > 0) or value == math.huge then
    error(string.format("train.%s must be a number > 0, got %s", field, tostring(value)), 0)
  end
  return value
end

--- The objective options of a config's train table `tc`, checked, with their defaults:
--- {objective = "eps", loss = "l1", huber_delta = 0.1 (huber only), loss_weight = "none",
---  gamma = 5 (min_snr only), offset_noise = 0, ema_warmup = true}.
function M.options(tc)
  local o = {
    objective = one_of(tc.objective or "eps", M.objectives, "objective"),
    loss = one_of(tc.loss or "l1", M.losses, "loss"),
    loss_weight = one_of(tc.loss_weight or "none", M.weightings, "loss_weight"),
    offset_noise = tc.offset_noise or 0,
    ema_warmup = tc.ema_warmup,
  }
  if o.ema_warmup == nil then o.ema_warmup = true end
  if type(o.ema_warmup) ~= "boolean" then
    error("train.ema_warmup must be true or false, got " .. tostring(o.ema_warmup), 0)
  end
  if type(o.offset_noise) ~= "number" or not (o.offset_noise >= 0) or o.offset_noise == math.huge then
    error("train.offset_noise must be a number >= 0, got " .. tostring(o.offset_noise), 0)
  end
  if o.loss == "huber" then
    o.huber_delta = positive(tc.huber_delta or M.default_huber_delta, "huber_delta")
  elseif tc.huber_delta ~= nil then
    error("train.huber_delta is the delta of loss = \"huber\" (the loss is " .. o.loss .. ")", 0)
  end
  if o.loss_weight == "min_snr" then
    o.gamma = positive(tc.gamma or M.default_gamma, "gamma")
  elseif tc.gamma ~= nil then
    error("train.gamma is the gamma of loss_weight = \"min_snr\" (the weighting is " .. o.loss_weight .. ")", 0)
  end
  return o
end

--- (B, 1, 1, ...) tensor of f(t[i]) for broadcasting against a batch shaped like `shape`.
local function per_sample(shape, t, f)
  local values, s = {}, {#t}
  for i, ti in ipairs(t) do values[i] = f(ti) end
  for _ = 2, #shape do s[#s + 1] = 1 end
  return T.from(values, s)
end

--- The noise of a training step: standard normal, plus `offset` times one standard normal value
--- per image and channel (offset noise: the model also learns to change an image's mean).
function M.noise(shape, offset)
  local noise = T.randn(shape)
  if offset and offset > 0 then
    noise = noise + T.randn({shape[1], shape[2], 1, 1}) * offset
  end
  return noise
end

--- What a model of `objective` should output for x_t = s:add_noise(x0, t, noise).
function M.target(s, objective, x0, noise, t)
  if objective == "eps" then return noise end
  if objective == "x0" then return x0 end
  local shape = x0:shape()
  local a = per_sample(shape, t, function(ti) return math.sqrt(s:alpha_bar(ti)) end)
  local sigma = per_sample(shape, t, function(ti) return math.sqrt(1 - s:alpha_bar(ti)) end)
  return noise * a - x0 * sigma
end

--- Min-SNR-gamma weights for timesteps t (a Lua table, one per sample); see the header.
function M.min_snr_weights(s, t, gamma, objective)
  local w = {}
  for i, ti in ipairs(t) do
    local snr = s:snr(ti)
    local clamped = math.min(snr, gamma)
    if snr <= 0 then
      w[i] = 1
    elseif objective == "eps" then
      w[i] = clamped / snr
    elseif objective == "v" then
      w[i] = clamped / (snr + 1)
    else
      w[i] = clamped
    end
  end
  return w
end

--- The loss of a batch: `o` from M.options, the model's output and the target at timesteps t.
function M.loss(o, s, output, target, t)
  local weights = o.loss_weight == "min_snr" and M.min_snr_weights(s, t, o.gamma, o.objective) or nil
  if o.loss == "l1" then return ddpm.loss.l1(output, target, {weights = weights}) end
  if o.loss == "l2" then return ddpm.loss.mse(output, target, {weights = weights}) end
  return ddpm.loss.huber(output, target, {delta = o.huber_delta, weights = weights})
end

--- Weights-file metadata entries for `o` (objective is the key samplers read).
function M.metadata(o)
  local meta = {objective = o.objective, loss = o.loss, loss_weight = o.loss_weight,
                offset_noise = tostring(o.offset_noise), ema_warmup = tostring(o.ema_warmup)}
  if o.huber_delta then meta.huber_delta = tostring(o.huber_delta) end
  if o.gamma then meta.min_snr_gamma = tostring(o.gamma) end
  return meta
end

return M
