-- DDIM (Song et al. 2021) as a sampler plugin on s:ddim_step: deterministic at eta 0; with the
-- default uniform spacing the same images as the native DDIM, bit for bit.
-- Options (--sampler-opt key=value): spacing = uniform | trailing | logsnr | karras.
local solvers = require("lib.solvers")

return {
  description = "DDIM, first order (eta 0: deterministic); spacing=uniform|trailing|logsnr|karras",
  default_steps = 50,
  sample = function(ctx)
    local o = solvers.options(ctx, {spacing = "uniform"})
    local s, x = ctx.schedule, ctx.x
    local ts = solvers.timesteps(s, ctx.steps, o.spacing)
    for i, t in ipairs(ts) do
      local t_prev = ts[i + 1] or -1
      local noise = (ctx.eta > 0 and t_prev >= 0) and ctx.randn() or nil
      local x_t, x0 = x, nil
      x, x0 = s:ddim_step(x, ctx.eps(x, t), t, t_prev, {eta = ctx.eta, clip = ctx.clip, noise = noise})
      ctx.on_step(i, t, x_t, x0)
    end
    return x
  end,
}
