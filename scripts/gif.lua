-- Denoising GIFs: for each digit, x_t (left) next to the model's x0 estimate (right) as the
-- reverse process runs, frames spaced over the steps, the last frame held; plus one strip
-- with all requested digits (x_t row over x0-hat row).
--   ddpm gif --weights weights/mnist-small.safetensors --digits 0123456789 --frames 40 --out out/gifs
local args = require("lib.args")
local common = require("lib.common")
local T = ddpm.tensor
-- One process's work: under mpirun rank 0 alone makes the GIFs (the others would write the same files).
if ddpm.dist.rank() ~= 0 then return end

local help = {
  usage = "ddpm gif [options]  (or: ddpm run scripts/gif.lua [options])",
  summary = "Denoising GIFs: digit-D.gif per digit (x_t beside the x0 estimate) and digits.gif with all of them.",
  digits = "digits, one GIF each (and all of them in digits.gif)",
  frames = "frames spaced over the reverse process, first and last step included (>= 2; at most one per step)",
  out = "output folder",
  scale = "pixel scale",
  delay = "hundredths of a second per frame",
  hold = "hundredths of a second the final images are held",
}
local opts = common.parse_sampling_args(arg, {digits = "0123456789", frames = 40, out = "out/gifs", scale = 4,
                                              delay = 8, hold = 150}, help)
args.at_least(opts, "frames", 2)
local setup = common.sampling_setup(opts)
local steps = setup.steps
local digits = common.digits(opts.digits)
local n = #digits
-- Each GIF is a temp file until closed, after sampling: a sampler error leaves none.
common.mkdir(opts.out)

-- Which steps become frames: evenly spaced, always including the first and the last.
local keep = {}
local frames = math.max(2, math.min(opts.frames, steps))
for k = 0, frames - 1 do keep[math.floor(k * (steps - 1) / (frames - 1) + 0.5) + 1] = true end

-- provenance in each GIF's comment extension, as `ddpm sample` records it in PNG text chunks
local function provenance(seed, digits_text)
  return setup:provenance{seed = seed, digits = digits_text, ddpm_version = ddpm.version}
end
local per_digit, strip = {}, ddpm.gif.open(opts.out .. "/digits.gif", {delay = opts.delay, scale = opts.scale,
  text = provenance(string.format("%d (digit i uses seed + i)", opts.seed), opts.digits)})
for i, d in ipairs(digits) do
  per_digit[i] = ddpm.gif.open(string.format("%s/digit-%d.gif", opts.out, d), {delay = opts.delay, scale = opts.scale,
                               text = provenance(tostring(opts.seed + i - 1), tostring(d))})
end

local function add_frames(x_t, x0, delay)
  -- x_t and x0: (n, 1, H, W); a pair per digit, and the strip as 2 rows of n
  for i = 1, n do
    local pair = T.cat({x_t:narrow(1, i, 1), x0:narrow(1, i, 1)}, 1)
    per_digit[i]:add(ddpm.image.grid(pair, {cols = 2}), {delay = delay})
  end
  strip:add(ddpm.image.grid(T.cat({x_t, x0}, 1), {cols = n}), {delay = delay})
end

local progress = ddpm.progress(steps, "gif")
-- digit i (0-based) uses seed + i, as `ddpm sample` does for image i
local seeds = {}
for i = 1, n do seeds[i] = opts.seed + i - 1 end
local x = setup:sample{labels = digits, seeds = seeds, on_step = function(i, t, x_t, x0)
  if keep[i] then add_frames(x_t, x0, opts.delay) end
  progress:update(math.min(i, steps))
end}
progress:close()
add_frames(x, x, opts.hold)  -- the final images, held
for i = 1, n do per_digit[i]:close() end
strip:close()
print(string.format("wrote %d GIFs (%d frames each) to %s", n + 1, frames + 1, opts.out))
