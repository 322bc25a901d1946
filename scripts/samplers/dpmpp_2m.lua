-- DPM-Solver++(2M) (Lu et al. 2022), multistep in data prediction (x0) form, midpoint variant:
-- between timesteps s and t with h = lambda_t - lambda_s (lambda = log(alpha / sigma)),
--   x_t = (sigma_t / sigma_s) x_s - alpha_t (e^-h - 1) D,   D = (1 + 1/(2r)) x0_s - 1/(2r) x0_prev,
-- r = h_prev / h. The first step is first order (no history: DDIM), and so is the last (from the
-- last model call to noise 0, which returns its x0-hat); below 15 steps the step before it is
-- first order too (lower_order_final=1), which steadies very short runs. x0-hat is clipped as in
-- the other samplers (ctx.x0).
-- Options (--sampler-opt key=value): spacing = uniform | trailing | logsnr | karras (default
-- trailing), lower_order_final = 1 | 0.
local solvers = require("lib.solvers")

return {
  description = "DPM-Solver++(2M), multistep, deterministic; spacing=trailing|uniform|logsnr|karras",
  default_steps = 15,
  sample = function(ctx)
    local o = solvers.options(ctx, {spacing = "trailing", lower_order_final = 1})
    local s = ctx.schedule
    local ts = solvers.timesteps(s, ctx.steps, o.spacing)
    local n = #ts
    local function coefficients(t)
      local ab = s:alpha_bar(t)
      return math.sqrt(ab), math.sqrt(1 - ab), 0.5 * math.log(ab / (1 - ab))
    end
    local x, x0_prev, h_prev = ctx.x, nil, nil
    for i, t in ipairs(ts) do
      local x0 = ctx.x0(x, t)
      ctx.on_step(i, t, x, x0)
      local t_next = ts[i + 1]
      if not t_next then return x0 end  -- to noise 0: x0-hat, first order
      local alpha_s, sigma_s, lambda_s = coefficients(t)
      local alpha_t, sigma_t, lambda_t = coefficients(t_next)
      local h = lambda_t - lambda_s
      local first_order = x0_prev == nil or (o.lower_order_final ~= 0 and n < 15 and i == n - 1)
      local d = x0
      if not first_order then
        local k = h / (2 * h_prev)  -- 1 / (2r)
        d = x0 * (1 + k) - x0_prev * k
      end
      x = x * (sigma_t / sigma_s) - d * (alpha_t * (math.exp(-h) - 1))
      x0_prev, h_prev = x0, h
    end
    return x
  end,
}
