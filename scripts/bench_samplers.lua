-- The Lua overhead per step of the sampler plugins: each plugin's own work per step (its Lua and
-- tensor ops on a batch of 100 images, 20 steps, best of 5) with a ctx whose model calls return
-- precomputed tensors, against one forward of the model at batch 100 (conditional, unguided;
-- a guided step costs twice that).
--   ddpm run scripts/bench_samplers.lua [--weights FILE]
local T = ddpm.tensor
local args = require("lib.args")
local common = require("lib.common")
local opts = args.parse(arg, {weights = args.optional("string")})
local w = opts.weights or common.default_weights()
local m = ddpm.load_model(w)
local s = common.schedule_from_metadata(ddpm.safetensors.metadata(w))
ddpm.seed(0)
local size = m:config().image_size
local x = T.randn({100, 1, size, size})
local labels = {}
for i = 1, 100 do labels[i] = (i - 1) % 10 end
local eps = ddpm.no_grad(function() return m:forward(x, 500, labels) end)
local x0 = (x * 0.5):clamp(-1, 1)

local forward = math.huge
for _ = 1, 3 do
  local t0 = ddpm.clock()
  ddpm.no_grad(function() return m:forward(x, 500, labels) end)
  forward = math.min(forward, ddpm.clock() - t0)
end
print(string.format("%s: forward at batch 100 %.1f ms (best of 3)", w, 1000 * forward))

for _, e in ipairs(ddpm.plugins.list("sampler")) do
  if e.source ~= "native" and not e.shadowed and not e.error then
    local p = ddpm.plugins.load("sampler", e.name)
    local steps = 20
    local ctx = {x = x, schedule = s, steps = steps, labels = labels, eta = 0, clip = true, options = {},
                 eps = function() return eps end, x0 = function() return x0, eps end,
                 randn = function() return T.randn(x:shape()) end, on_step = function() end}
    local best = math.huge
    for _ = 1, 5 do
      local t0 = ddpm.clock()
      ddpm.no_grad(function() return p.sample(ctx) end)
      best = math.min(best, (ddpm.clock() - t0) / steps)
    end
    print(string.format("%-10s its own work per step %.2f ms = %.2f %% of a forward", e.name, 1000 * best,
                        100 * best / forward))
  end
end
