-- Helpers for sampler plugins (scripts/samplers/): the plugin's options and its timesteps.
--   local solvers = require("lib.solvers")
--   local o = solvers.options(ctx, {spacing = "uniform"})      -- unknown keys are errors
--   local ts = solvers.timesteps(ctx.schedule, ctx.steps, o.spacing)
local M = {}

M.spacings = {"uniform", "trailing", "logsnr", "karras"}

--- ctx.options checked against `defaults` (name -> default value, a string or a number): every
--- key must be known, numbers are converted. Returns a table with every option set.
function M.options(ctx, defaults)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(ctx.options or {}) do
    local default = defaults[k]
    if default == nil then
      local known = {}
      for name in pairs(defaults) do known[#known + 1] = name end
      table.sort(known)
      error(string.format("unknown sampler option '%s' (this sampler takes: %s)", tostring(k),
                          #known > 0 and table.concat(known, ", ") or "none"), 3)
    end
    if type(default) == "number" then
      local n = tonumber(v)
      if not n then error(string.format("sampler option %s needs a number, got '%s'", k, tostring(v)), 3) end
      out[k] = n
    else
      out[k] = tostring(v)
    end
  end
  return out
end

--- lambda(t) = log(alpha_t / sigma_t) = log(snr_t) / 2 for t = 0 .. T-1 (a Lua table, 1-based).
function M.lambdas(s)
  local out = {}
  for i, ab in ipairs(s:alpha_bars()) do out[i] = 0.5 * math.log(ab / (1 - ab)) end
  return out
end

-- The timestep whose lambda is closest to `target` (lambda falls as t rises).
local function nearest(lambdas, target)
  local lo, hi = 1, #lambdas
  while hi - lo > 1 do
    local mid = (lo + hi) // 2
    if lambdas[mid] > target then lo = mid else hi = mid end
  end
  local best = math.abs(lambdas[lo] - target) <= math.abs(lambdas[hi] - target) and lo or hi
  return best - 1
end

--- `n` timesteps from high noise to low, distinct, for a schedule of T steps:
---   uniform   evenly spaced from T-1 to 0 (DDIM's, s:timesteps(n));
---   trailing  T-1 down to T/n - 1 in steps of T/n (the last model call at a little noise);
---   logsnr    evenly spaced in log-SNR from t = T-1 to t = 0;
---   karras    Karras et al.'s sigma spacing (rho = 7) from t = T-1 to t = 0.
--- logsnr and karras are rounded to the timestep of nearest log-SNR.
function M.timesteps(s, n, spacing)
  local T = s.steps
  if math.type(n) ~= "integer" and not (type(n) == "number" and n == math.floor(n)) then
    error("steps must be an integer, got " .. tostring(n), 2)
  end
  if n < 1 or n > T then error(string.format("%d steps must be in [1, %d]", n, T), 2) end
  local ts = {}
  if spacing == "uniform" then
    ts = s:timesteps(n)
  elseif spacing == "trailing" then
    for i = 0, n - 1 do ts[#ts + 1] = math.floor(T - i * T / n + 0.5) - 1 end
  elseif spacing == "logsnr" or spacing == "karras" then
    local lambdas = M.lambdas(s)
    local hi, lo = lambdas[1], lambdas[T]  -- lambda at t = 0 (least noise) and at t = T-1
    for i = 0, n - 1 do
      local u = n == 1 and 0 or i / (n - 1)
      local target
      if spacing == "logsnr" then
        target = lo + (hi - lo) * u
      else  -- sigma = exp(-lambda), spaced evenly in sigma^(1/rho)
        local rho = 7
        local smax, smin = math.exp(-lo) ^ (1 / rho), math.exp(-hi) ^ (1 / rho)
        target = -math.log((smax + u * (smin - smax)) ^ rho)
      end
      ts[#ts + 1] = nearest(lambdas, target)
    end
  else
    error(string.format("unknown spacing '%s' (%s)", tostring(spacing), table.concat(M.spacings, ", ")), 2)
  end
  -- distinct and falling: push collisions down, then up again from t = 0 if they went below it
  for i = 2, #ts do if ts[i] >= ts[i - 1] then ts[i] = ts[i - 1] - 1 end end
  if ts[#ts] < 0 then
    ts[#ts] = 0
    for i = #ts - 1, 1, -1 do if ts[i] <= ts[i + 1] then ts[i] = ts[i + 1] + 1 end end
  end
  return ts
end

return M
