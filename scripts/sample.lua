-- Sampling recipe: a digit sheet, row r = the r-th requested digit, --per-digit samples each.
--   ddpm sample --weights weights/mnist-small.safetensors --digits 0123456789 --per-digit 10 --out sheet.png
-- Writes one PNG whose text chunks record the provenance (weights, seed, sampler, steps, guidance).
local args = require("lib.args")
local common = require("lib.common")

local opts = args.parse(arg, {weights = "", digits = "0123456789", per_digit = 10, sampler = "ddim", steps = 0,
                              guidance = -1, eta = 0, seed = 0, out = "out/sheet.png", scale = 2})
local weights, model, schedule, guidance, steps = common.sampling_setup(opts)
local digits = common.digits(opts.digits)
local labels = {}
for _, d in ipairs(digits) do
  for _ = 1, opts.per_digit do labels[#labels + 1] = d end
end
local progress = ddpm.progress(steps, "sample")
local t0 = ddpm.clock()
local x = ddpm.sample{model = model, schedule = schedule, labels = labels, sampler = opts.sampler, steps = steps,
                      eta = opts.eta, guidance = guidance, seed = opts.seed,
                      on_step = function(i) progress:update(i) end}
progress:close()
local dir = opts.out:match("^(.*)/[^/]*$")
if dir then common.mkdir(dir) end
ddpm.image.save(ddpm.image.grid(x, {cols = opts.per_digit}), opts.out, {scale = opts.scale, text = {
  weights = weights, seed = tostring(opts.seed), sampler = opts.sampler, steps = tostring(steps),
  guidance = tostring(guidance), digits = opts.digits, per_digit = tostring(opts.per_digit)}})
print(string.format("wrote %s (%d digits, %s %d steps, guidance %g, seed %d) in %.1f s",
                    opts.out, #labels, opts.sampler, steps, guidance, opts.seed, ddpm.clock() - t0))
