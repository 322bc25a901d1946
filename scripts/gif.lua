-- Denoising GIFs: for each digit, x_t (left) next to the model's x0 estimate (right) as the
-- reverse process runs, frames spaced over the steps, the last frame held; plus one strip
-- with all requested digits (x_t row over x0-hat row).
--   ddpm gif --weights weights/mnist-small.safetensors --digits 0123456789 --frames 40 --out out/gifs
-- The same for inpainting (--image, --mask: the repaint sampler by default) or img2img (--image,
-- --strength) shows how the fill or the change comes about.
--   ddpm gif --image in.png --mask mask.png --digits 38 --out out/gifs
-- Class morphs: --morph A,B (repeatable) writes morph-A-B.gif, whose frames are full samples from
-- one noise (--seed) with the label embedding walked from A to B: (1 - w) embed(A) + w embed(B),
-- w = 0 .. 1 over --frames frames (w = 0 is digit A's sample, w = 1 digit B's, exactly).
--   ddpm gif --morph 3,8 --morph 1,7 --frames 24 --out out/gifs
local args = require("lib.args")
local common = require("lib.common")
local known = require("lib.known")
local T = ddpm.tensor
-- One process's work: under mpirun rank 0 alone makes the GIFs (the others would write the same files).
if ddpm.dist.rank() ~= 0 then return end

local help = {
  usage = "ddpm gif [options]  (or: ddpm run scripts/gif.lua [options])",
  summary = "Denoising GIFs: digit-D.gif per digit (x_t beside the x0 estimate) and digits.gif with all of them; "
            .. "or class morphs (--morph A,B: morph-A-B.gif).",
  digits = "digits, one GIF each (and all of them in digits.gif)",
  frames = "frames spaced over the reverse process, first and last step included (>= 2; at most one per step); "
           .. "with --morph the frames of each morph (interpolation weights 0..1)",
  out = "output folder",
  scale = "pixel scale",
  delay = "hundredths of a second per frame",
  hold = "hundredths of a second the final images are held",
  morph = "A,B: a GIF walking the label from digit A to digit B with fixed noise (repeatable)",
  image = "inpainting (with --mask) or img2img (with --strength): the input, a grayscale PNG (28x28 or the model's "
          .. "size)",
  mask = "with --image: white keeps the input's pixels, black is generated (the repaint sampler by default)",
  strength = "with --image: img2img, the share of the reverse process run from the input, in [0, 1]",
}
local opts = common.parse_sampling_args(arg, {digits = "0123456789", frames = 40, out = "out/gifs", scale = 4,
                                              delay = 8, hold = 150, morph = args.list(),
                                              image = args.optional("string"), mask = args.optional("string"),
                                              strength = args.optional("number")}, help)
args.at_least(opts, "frames", 2)
-- --morph A,B -> {A, B}, checked before anything is loaded
local morphs = {}
for _, text in ipairs(opts.morph) do
  local a, b = text:match("^%s*(%-?%d+)%s*,%s*(%-?%d+)%s*$")
  if not a then error("--morph needs two digits A,B such as 3,8, got '" .. text .. "'", 0) end
  morphs[#morphs + 1] = {tonumber(a), tonumber(b)}
end
if (opts.mask or opts.strength) and not opts.image then error("--mask and --strength need --image IN.png", 0) end
if opts.image and not (opts.mask or opts.strength) then
  error("--image needs --mask MASK.png (inpainting) or --strength S (img2img)", 0)
end
if opts.image and #morphs > 0 then error("--morph samples from noise: leave out --image", 0) end
if opts.mask then opts.sampler = opts.sampler or "repaint" end
local setup = common.sampling_setup(opts)
local size = setup.model:config().image_size
local input = opts.image and known.input("--image", opts.image, size, setup.meta)
local mask = opts.mask and known.mask("--mask", opts.mask, input)
local t_start
if opts.strength then t_start, setup.steps = common.img2img_start(opts.strength, setup.schedule, setup.steps) end
local calls = t_start == -1 and 1 or setup:calls()
-- Each GIF is a temp file until closed, after sampling: a sampler error leaves none.
common.mkdir(opts.out)

-- provenance in each GIF's comment extension, as `ddpm sample` records it in PNG text chunks
local function provenance(seed, digits_text)
  local t = setup:provenance{seed = seed, digits = digits_text, ddpm_version = ddpm.version}
  if input then t.image, t.image_sha256 = opts.image, ddpm.sha256(opts.image) end
  if mask then t.mask, t.mask_sha256 = opts.mask, ddpm.sha256(opts.mask) end
  if opts.strength then t.strength = tostring(opts.strength) end
  return t
end

if #morphs > 0 then
  -- one batch per morph: frame k has weight k / (frames - 1) and every frame the noise of --seed
  for _, pair in ipairs(morphs) do
    local a, b = pair[1], pair[2]
    local labels, seeds = {}, {}
    for k = 0, opts.frames - 1 do
      labels[#labels + 1] = {a, b, k / (opts.frames - 1)}
      seeds[#seeds + 1] = opts.seed
    end
    local progress = ddpm.progress(calls, string.format("morph %d,%d", a, b))
    local x = setup:sample{labels = labels, seeds = seeds,
                           on_step = function(i) progress:update(math.min(i, calls)) end}
    progress:close()
    local path = string.format("%s/morph-%d-%d.gif", opts.out, a, b)
    local g = ddpm.gif.open(path, {delay = opts.delay, scale = opts.scale, text = provenance(tostring(opts.seed),
      string.format("%d,%d (frame k: label (1 - w) %d + w %d, w = k / %d)", a, b, a, b, opts.frames - 1))})
    for k = 1, opts.frames do
      g:add(x:narrow(1, k, 1), {delay = (k == 1 or k == opts.frames) and opts.hold or opts.delay})
    end
    g:close()
    print(string.format("wrote %s (%d frames, %s, seed %d)", path, opts.frames, setup:describe(), opts.seed))
  end
  return
end

local digits = common.digits(opts.digits)
local n = #digits

-- Which calls of on_step become frames: evenly spaced, always including the first and the last.
local keep = {}
local frames = math.max(2, math.min(opts.frames, calls))
for k = 0, frames - 1 do keep[math.floor(k * (calls - 1) / (frames - 1) + 0.5) + 1] = true end

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

local progress = ddpm.progress(calls, "gif")
-- digit i (0-based) uses seed + i, as `ddpm sample` does for image i
local seeds = {}
for i = 1, n do seeds[i] = opts.seed + i - 1 end
local x = setup:sample{labels = digits, seeds = seeds, t_start = t_start,
                       known = input and {image = known.repeated(input.image, n),
                                          mask = mask and known.repeated(mask.tensor, n)},
                       on_step = function(i, t, x_t, x0)
  if keep[i] then add_frames(x_t, x0, opts.delay) end
  progress:update(math.min(i, calls))
end}
progress:close()
if t_start == -1 then add_frames(x, x, opts.delay) end  -- strength 0: no steps, the input
add_frames(x, x, opts.hold)  -- the final images, held
for i = 1, n do per_digit[i]:close() end
strip:close()
print(string.format("wrote %d GIFs (%d frames each) to %s", n + 1, frames + 1, opts.out))
