-- The cosine schedule (Nichol & Dhariwal) written in Lua: a continuous alpha-bar on u in [0, 1]
-- handed to the native schedule math. Use it from a config as
--   schedule = {file = "schedules/cosine_lua.lua", steps = 1000}
-- It gives the same betas as the built-in ddpm.schedule.cosine up to the 1e-4 lower clip.
return function(spec)
  local s = (spec and spec.s) or 0.008
  local function f(u) return math.cos((u + s) / (1 + s) * math.pi / 2) ^ 2 end
  -- from_alpha_bar wants alpha-bar(0) = 1: the formula is divided by its value at 0
  local function alpha_bar(u) return f(u) / f(0) end
  return ddpm.schedule.from_alpha_bar(alpha_bar, (spec and spec.steps) or 1000, (spec and spec.max_beta) or 0.999)
end
