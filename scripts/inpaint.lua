-- Inpainting: the black region of --mask is generated as digit --digit, the white region keeps
-- --image's pixels. The sampler gets the image and the mask at the model's size as ctx.known
-- (the bundled repaint plugin by default); the output has --image's size, --per-digit fills side
-- by side, and every kept pixel is the input's own byte (pasted back at the input's size).
--   ddpm inpaint --image in.png --mask mask.png --digit 8 --per-digit 4 --out out/fill.png
--   ddpm inpaint ... --sampler-opt jump_n_sample=3      RePaint's resampling (more model calls)
local args = require("lib.args")
local common = require("lib.common")
local known = require("lib.known")
if ddpm.dist.rank() ~= 0 then return end  -- one process's work

local help = {
  usage = "ddpm inpaint --image IN.png --mask MASK.png --digit D [options]  (or: ddpm run scripts/inpaint.lua ...)",
  summary = "Fill the black region of MASK (white = keep IN's pixels) with digit D; --per-digit fills side by side.",
  image = "the input: a grayscale PNG of 28x28 (MNIST's size) or the model's size",
  mask = "a grayscale PNG of the input's size: white (>= 128) keeps the input's pixel, black is generated",
  digit = "the digit the generated region should make (0-9; -1: unconditional)",
  per_digit = "fills side by side (fill i uses seed + i)",
  out = "the output PNG: the fills side by side at the input's size",
  sampler = "NAME or FILE.lua: a sampler plugin that reads ctx.known (default: repaint); `ddpm samplers` lists them",
  steps = "sampling steps, 1..T or 'auto' (none or 'auto': the sampler's default_steps, repaint's 25)",
}
local opts = common.parse_sampling_args(arg, {image = args.optional("string"), mask = args.optional("string"),
                                              digit = args.optional("number"), per_digit = 1,
                                              out = "out/inpaint.png"}, help)
for _, k in ipairs({"image", "mask", "digit"}) do
  if opts[k] == nil then error("--" .. k .. " is required (--help describes the options)", 0) end
end
args.at_least(opts, "per_digit", 1)
if opts.digit ~= math.floor(opts.digit) or opts.digit < -1 then
  error("--digit must be a class such as 3 (or -1: unconditional), got " .. tostring(opts.digit), 0)
end
if not opts.out:lower():match("%.png$") then error("--out " .. opts.out .. ": the output is a .png file", 0) end
opts.sampler = opts.sampler or "repaint"
local setup = common.sampling_setup(opts)
local classes = setup.model:config().classes
if opts.digit >= classes then
  error(string.format("--digit %d: the model knows classes 0..%d", opts.digit, classes - 1), 0)
end
local input = known.input("--image", opts.image, setup.model:config().image_size, setup.meta)
local mask = known.mask("--mask", opts.mask, input)

local n, labels, seeds = opts.per_digit, {}, {}
for i = 1, n do labels[i] = opts.digit; seeds[i] = opts.seed + i - 1 end
local calls = setup:calls()
local progress = ddpm.progress(calls, "inpaint")
local t0 = ddpm.clock()
local x = setup:sample{labels = labels, seeds = seeds, on_step = function(i) progress:update(math.min(i, calls)) end,
                       known = {image = known.repeated(input.image, n), mask = known.repeated(mask.tensor, n)}}
progress:close()
local filled = known.paste(x, input, mask)
local dir = opts.out:match("^(.*)/[^/]*$")
if dir then common.mkdir(dir) end
ddpm.image.save(ddpm.image.grid(filled, {cols = n, pad = 0}), opts.out, {text = setup:provenance{
  seed = tostring(opts.seed), image_seeds = "seed + i, i = 0-based fill", digit = tostring(opts.digit),
  image = opts.image, image_sha256 = ddpm.sha256(opts.image), mask = opts.mask, mask_sha256 = ddpm.sha256(opts.mask)}})
print(string.format("wrote %s (%d fill%s of digit %d, %s, seed %d) in %.1f s", opts.out, n, n == 1 and "" or "s",
                    opts.digit, setup:describe(), opts.seed, ddpm.clock() - t0))
