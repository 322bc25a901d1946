-- UniPC (Zhao et al. 2023), B(h) = e^h - 1 ("bh2"), in data prediction (x0) form: a multistep
-- predictor (UniP) of order `order` and, after each model call, a corrector (UniC) that reuses
-- that call's x0-hat to refine the sample it was made on, so the order goes up by one at no
-- extra model call. The first step is first order (no history), the order grows with the
-- history, and the last steps lower it again (order <= steps left); the last step, from the
-- last model call to noise 0, returns its x0-hat. x0-hat is clipped as in the other samplers.
-- Options (--sampler-opt key=value): spacing = uniform | trailing | logsnr | karras (default
-- trailing), order = 1 | 2 | 3 (default 2), corrector = 1 | 0.
local solvers = require("lib.solvers")

-- Solves the k x k system a x = b (Gaussian elimination with partial pivoting).
local function solve(a, b)
  local k = #b
  local m = {}
  for i = 1, k do m[i] = {table.unpack(a[i], 1, k)}; m[i][k + 1] = b[i] end
  for c = 1, k do
    local p = c
    for r = c + 1, k do if math.abs(m[r][c]) > math.abs(m[p][c]) then p = r end end
    m[c], m[p] = m[p], m[c]
    for r = c + 1, k do
      local f = m[r][c] / m[c][c]
      for j = c, k + 1 do m[r][j] = m[r][j] - f * m[c][j] end
    end
  end
  local x = {}
  for i = k, 1, -1 do
    local v = m[i][k + 1]
    for j = i + 1, k do v = v - m[i][j] * x[j] end
    x[i] = v / m[i][i]
  end
  return x
end

-- The UniP / UniC weights for order k at step size h with the earlier points' ratios rks
-- (k - 1 of them): returns rhos and the phi and B(h) factors.
local function weights(h, rks, k, corrector)
  local hh = -h
  local h_phi_1 = math.exp(hh) - 1
  local b_h = h_phi_1  -- bh2
  local h_phi_k, factorial = h_phi_1 / hh - 1, 1
  local r, b = {}, {}
  local all = {table.unpack(rks)}
  all[#all + 1] = 1
  for i = 1, k do
    r[i] = {}
    for j = 1, k do r[i][j] = all[j] ^ (i - 1) end
    b[i] = h_phi_k * factorial / b_h
    factorial = factorial * (i + 1)
    h_phi_k = h_phi_k / hh - 1 / factorial
  end
  local rhos
  if corrector then
    rhos = k == 1 and {0.5} or solve(r, b)
  elseif k == 2 then
    rhos = {0.5}
  elseif k > 2 then
    local r1, b1 = {}, {}
    for i = 1, k - 1 do r1[i] = r[i]; b1[i] = b[i] end
    rhos = solve(r1, b1)
  else
    rhos = {}
  end
  return rhos, h_phi_1, b_h
end

return {
  description = "UniPC (bh2), multistep predictor-corrector, deterministic; order=2, spacing=trailing|...",
  default_steps = 10,
  sample = function(ctx)
    local o = solvers.options(ctx, {spacing = "trailing", order = 2, corrector = 1})
    if o.order ~= 1 and o.order ~= 2 and o.order ~= 3 then error("sampler option order must be 1, 2 or 3", 2) end
    local s = ctx.schedule
    local ts = solvers.timesteps(s, ctx.steps, o.spacing)
    local n = #ts
    local alpha, sigma, lambda = {}, {}, {}
    for i, t in ipairs(ts) do
      local ab = s:alpha_bar(t)
      alpha[i], sigma[i], lambda[i] = math.sqrt(ab), math.sqrt(1 - ab), 0.5 * math.log(ab / (1 - ab))
    end
    -- differences D_j = (x0 at point i-j - x0 at point i) / r_j over the history, j = 1 .. k-1
    local history = {}  -- x0-hat at each point so far, history[i] at ts[i]
    local function differences(i, k, h)
      local rks, ds = {}, {}
      for j = 1, k - 1 do
        local rk = (lambda[i - j] - lambda[i]) / h
        rks[j] = rk
        ds[j] = (history[i - j] - history[i]) / rk
      end
      return rks, ds
    end
    local x, last_x, last_order = ctx.x, nil, nil
    for i, t in ipairs(ts) do
      local x0 = ctx.x0(x, t)
      if last_x and o.corrector ~= 0 then
        -- UniC: x at t from the previous point's x (last_x) with this call's x0-hat
        local k, h = last_order, lambda[i] - lambda[i - 1]
        local rks, ds = differences(i - 1, k, h)
        local rhos, h_phi_1, b_h = weights(h, rks, k, true)
        local res = (x0 - history[i - 1]) * rhos[k]
        for j = 1, k - 1 do res = res + ds[j] * rhos[j] end
        x = last_x * (sigma[i] / sigma[i - 1]) - history[i - 1] * (alpha[i] * h_phi_1) - res * (alpha[i] * b_h)
      end
      history[i] = x0
      history[i - o.order - 1] = nil
      ctx.on_step(i, t, x, x0)
      if i == n then return x0 end  -- to noise 0: x0-hat, first order
      -- UniP: from point i to point i + 1
      local k = math.min(o.order, i, n - i + 1)
      local h = lambda[i + 1] - lambda[i]
      local rks, ds = differences(i, k, h)
      local rhos, h_phi_1, b_h = weights(h, rks, k, false)
      local next_x = x * (sigma[i + 1] / sigma[i]) - x0 * (alpha[i + 1] * h_phi_1)
      if k > 1 then
        local res = ds[1] * rhos[1]
        for j = 2, k - 1 do res = res + ds[j] * rhos[j] end
        next_x = next_x - res * (alpha[i + 1] * b_h)
      end
      last_x, last_order, x = x, k, next_x
    end
    return x
  end,
}
