-- RePaint (Lugmayr et al. 2022) as a sampler plugin: inpainting. ctx.known.image is the image
-- and ctx.known.mask is 1 where its pixels are kept, 0 where they are generated (`ddpm
-- inpaint`). At every step the kept region is replaced by the image noised to that step's
-- timestep (q(x_t | x0) with fresh ctx.randn() noise) and the rest comes from a DDIM step on the
-- whole image (ctx.eta, default 1: ancestral-like as in the paper; 0 deterministic), so the
-- model sees the kept pixels at every noise level. Resampling: with jump_n_sample = R > 1, every
-- jump_length = J steps the sample goes back up J steps by the forward process (fresh noise)
-- and comes down again, R - 1 times, so the generated region can agree with the kept one (R
-- times the model calls of those stretches; `calls` counts them).
-- Options (--sampler-opt key=value): spacing = uniform | trailing | logsnr | karras (default
-- uniform), jump_length = J (default 5), jump_n_sample = R (default 1: no resampling).
-- Without ctx.known.mask every pixel is generated (DDIM with eta = ctx.eta).
local solvers = require("lib.solvers")

local defaults = {spacing = "uniform", jump_length = 5, jump_n_sample = 1}

local function check(o)
  for _, k in ipairs({"jump_length", "jump_n_sample"}) do
    if o[k] < 1 or o[k] ~= math.floor(o[k]) then
      error(string.format("sampler option %s must be a whole number >= 1, got %s", k, tostring(o[k])), 3)
    end
  end
  return o
end

-- Levels 0..n visited in order: level k < n is x at the k+1-th timestep, level n the clean image.
-- At the levels L >= J with n - L a multiple of J (n itself included), the first R - 1 arrivals
-- from above go back up to level L - J.
local function plan(n, J, R)
  local seq, left, level = {0}, {}, 0
  while level < n do
    level = level + 1
    seq[#seq + 1] = level
    if (n - level) % J == 0 and level >= J then
      left[level] = left[level] or R - 1
      if left[level] > 0 then
        left[level] = left[level] - 1
        for k = level - 1, level - J, -1 do seq[#seq + 1] = k end
        level = level - J
      end
    end
  end
  return seq
end

-- The number of model calls (downward moves) of a plan.
local function downs(seq)
  local count = 0
  for i = 2, #seq do if seq[i] > seq[i - 1] then count = count + 1 end end
  return count
end

return {
  description = "RePaint inpainting (ctx.known: image, mask 1 = keep) on DDIM steps; jump_length=5, "
                .. "jump_n_sample=1, spacing",
  default_steps = 25,
  inpaints = true,  -- reads ctx.known.mask
  default_eta = 1,  -- ancestral-like steps: with eta 0 the seams of coarse steps show as blobs
  -- how many times sample calls ctx.on_step (progress bars and GIF frames)
  calls = function(steps, options)
    local o = check(solvers.options({options = options}, defaults))
    return downs(plan(steps, o.jump_length, o.jump_n_sample))
  end,
  sample = function(ctx)
    local o = check(solvers.options(ctx, defaults))
    local s = ctx.schedule
    local ts = solvers.timesteps(s, ctx.steps, o.spacing)
    local n = #ts
    local known = ctx.known or {}
    local image, mask = known.image, known.mask
    local keep = mask and (1 - mask)  -- the generated region's weight
    local function t_of(level) return ts[level + 1] or -1 end  -- level n: t = -1 (clean)
    local function ab(level) return s:alpha_bar(t_of(level)) end
    -- the kept pixels at a level: the image noised to its timestep (itself at the clean level)
    local function paste(x, level)
      if not mask then return x end
      local a = ab(level)
      local noisy = level == n and image or image * math.sqrt(a) + ctx.randn() * math.sqrt(1 - a)
      return noisy * mask + x * keep
    end
    local x = paste(ctx.x, 0)
    local seq = plan(n, o.jump_length, o.jump_n_sample)
    local calls = 0
    for i = 2, #seq do
      local from, to = seq[i - 1], seq[i]
      if to > from then  -- down: a DDIM step on the whole image, then the kept pixels
        local t, t_prev = t_of(from), t_of(to)
        local noise = (ctx.eta > 0 and t_prev >= 0) and ctx.randn() or nil
        local x_t, x0 = x, nil
        x, x0 = s:ddim_step(x, ctx.eps(x, t), t, t_prev, {eta = ctx.eta, clip = ctx.clip, noise = noise})
        calls = calls + 1
        ctx.on_step(calls, t, x_t, mask and (image * mask + x0 * keep) or x0)
        x = paste(x, to)
      else  -- up: the forward process from level `from` to `to`, q(x_to | x_from)
        local r = ab(to) / ab(from)
        x = x * math.sqrt(r) + ctx.randn() * math.sqrt(1 - r)
      end
    end
    return x
  end,
}
