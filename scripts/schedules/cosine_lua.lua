-- The cosine schedule (Nichol & Dhariwal) as a schedule plugin: a continuous alpha-bar on u in
-- [0, 1] handed to the native schedule math (ddpm.schedule.from_alpha_bar). It gives the
-- built-in cosine's betas up to that one's 1e-4 lower clip.
--   ddpm train --schedule cosine_lua      or, in a config: schedule = {kind = "cosine_lua", steps = 1000}
local function f(u) return math.cos((u + 0.008) / 1.008 * math.pi / 2) ^ 2 end

return {
  description = "the cosine alpha-bar written in Lua (the native cosine without its 1e-4 beta floor)",
  -- alpha-bar before any noise is 1: the formula divided by its value at 0
  alpha_bar = function(u) return f(u) / f(0) end,
  max_beta = 0.999,
}
