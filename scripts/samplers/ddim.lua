-- DDIM written in Lua on top of s:ddim_step and model:forward, to show (and test) that a
-- sampler is a short recipe: evenly spaced timesteps from T-1 down to 0, then x0.
--   local ddim = require "samplers.ddim"
--   local x = ddim.sample{model = m, schedule = s, labels = {3, 7}, steps = 50, noise = x_T}
--   (guidance = w, guidance_interval = {low, high} as in ddpm.sample; objective = "eps" | "v" | "x0",
--   default model.objective: the output is read as eps through s:to_eps, the native conversion)
local M = {}

function M.sample(o)
  return ddpm.no_grad(function() return M.run(o) end)
end

function M.run(o)
  local s, model = o.schedule, o.model
  local ts = s:timesteps(o.steps or 50)
  local x = o.noise
  local n = x:shape()[1]
  local interval = o.guidance_interval  -- {low, high}: guide only at these timesteps
  local objective = o.objective or model.objective
  for i, t in ipairs(ts) do
    local w = o.guidance or 1
    if interval and (t < interval[1] or t > interval[2]) then w = 1 end
    local out  -- the model's output, guided; eps is affine in it, so guiding it guides eps
    if w ~= 1 then
      local both = model:forward(ddpm.tensor.cat({x, x}, 1), t, M.concat(o.labels, M.unconditional(n)))
      local cond, uncond = both:narrow(1, 1, n), both:narrow(1, n + 1, n)
      out = uncond + (cond - uncond) * w
    else
      out = model:forward(x, t, o.labels)
    end
    local eps = s:to_eps(out, x, t, objective)
    local t_prev = ts[i + 1] or -1
    local x_t, x0 = x, nil
    x, x0 = s:ddim_step(x, eps, t, t_prev, {eta = o.eta or 0, clip = o.clip})
    if o.on_step then o.on_step(i, t, x_t, x0) end
  end
  return x
end

function M.unconditional(n)
  local u = {}
  for i = 1, n do u[i] = -1 end
  return u
end

function M.concat(a, b)
  local out = {}
  for _, v in ipairs(a) do out[#out + 1] = v end
  for _, v in ipairs(b) do out[#out + 1] = v end
  return out
end

return M
