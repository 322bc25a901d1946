-- Sampling recipe. Image i (0-based, row by row) uses seed + i, so any single digit can be
-- regenerated alone: `--digits D --per-digit 1 --seed <its seed>`.
--   ddpm sample --digits 0123456789 --per-digit 10 --out out/sheet.png    a sheet, row r = r-th digit
--   ddpm sample --per-digit 100 --out out/digits/                         one PNG per digit: <digit>_<index>.png
--   ddpm sample --per-digit 6000 --format idx --out out/synthetic/        IDX pair (train-images-idx3-ubyte,
--                                                                         train-labels-idx1-ubyte: MNIST's names)
-- Every PNG records its provenance (weights and their SHA-256, seed, sampler and its options, steps, guidance and
-- its interval) in text chunks. A sampler error writes nothing.
--   mpirun -np 4 ddpm sample ...   the batches split over 4 ranks; rank 0 writes the same files (docs/scaling.md)
--   ddpm sample --init in.png --strength 0.6 --digits 8 --out out/to8.png  img2img: every image starts from in.png
--                                                                         noised to t = 0.6 T (its own seed's noise)
local args = require("lib.args")
local common = require("lib.common")
local dist = require("lib.dist")
local known = require("lib.known")

local help = {
  usage = "ddpm sample [options]  (or: ddpm run scripts/sample.lua [options])",
  summary = "A sheet of generated digits (row r = the r-th digit), a folder of PNGs or an IDX pair.",
  digits = "digits to sample, one row each",
  per_digit = "samples per digit (columns of a sheet)",
  out = "a sheet FILE.png, or a folder DIR/ (a trailing /) of <digit>_<index>.png; with --format idx a folder",
  scale = "pixel scale of a sheet",
  format = "png, or idx (an IDX image/label pair named like MNIST's training split)",
  batch = "images per sampling batch",
  init = "img2img: a grayscale PNG (28x28 or the model's size) every image starts from, noised to --strength",
  strength = "img2img: how much of the reverse process runs from --init, in [0, 1] (0: the input, 1: plain "
             .. "sampling; default 0.6)",
}
local opts = common.parse_sampling_args(arg, {digits = "0123456789", per_digit = 10, out = "out/sheet.png", scale = 2,
                                              format = "png", batch = 100, init = args.optional("string"),
                                              strength = args.optional("number")}, help)
if opts.per_digit < 1 then error("--per-digit must be >= 1", 0) end
if opts.batch < 1 then error("--batch must be >= 1", 0) end
if opts.format ~= "png" and opts.format ~= "idx" then
  error("--format must be png or idx, got '" .. opts.format .. "'", 0)
end
-- --out: a PNG sheet (FILE.png), a folder of PNGs (a trailing /), or the folder of an IDX pair.
local folder = opts.format == "idx" or opts.out:sub(-1) == "/"
if opts.format == "idx" and opts.out:match("[^/]%.%a+$") then
  error("--format idx writes two files into a folder: --out " .. opts.out
        .. " names a file (e.g. --out out/synthetic/)", 0)
elseif not folder and not opts.out:lower():match("%.png$") then
  error("--out " .. opts.out .. ": a sheet is a .png file and a folder of PNGs ends in / (--out "
        .. opts.out .. "/)", 0)
end
if opts.strength ~= nil and not opts.init then error("--strength needs --init IN.png (the image to start from)", 0) end
local setup = common.sampling_setup(opts)
local steps = setup.steps
-- img2img: the input at the model's size, the timestep to start from and that share of the steps
local init, t_start
if opts.init then
  init = known.input("--init", opts.init, setup.model:config().image_size, setup.meta)
  local strength = opts.strength or 0.6
  t_start, steps = common.img2img_start(strength, setup.schedule, steps)
  setup.steps = steps
  local provenance = setup.provenance
  function setup:provenance(extra)
    local t = provenance(self, extra)
    t.init, t.init_sha256, t.strength = opts.init, ddpm.sha256(opts.init), tostring(strength)
    return t
  end
end
local calls = t_start == -1 and 0 or setup:calls(steps)
local digits = common.digits(opts.digits)
local labels, index_in_digit = {}, {}
for _, d in ipairs(digits) do
  for k = 0, opts.per_digit - 1 do labels[#labels + 1] = d; index_in_digit[#labels] = k end
end
local n = #labels

-- Batches of --batch images; each image's noise comes from its own seed, so an image is the same
-- whichever batch or rank samples it. Under mpirun the batches are dealt to the ranks (lib/dist.lua)
-- and rank 0 alone receives them in order, writes and prints.
local lead = ddpm.dist.rank() == 0
local plan = dist.deal(n, opts.batch)
local progress = lead and ddpm.progress(math.max(1, plan.rounds * calls), "sample") or dist.silent
local t0 = ddpm.clock()
local function each_batch(fn)
  plan.run(function(first, last, round)
    local bl, seeds = {}, {}
    for i = first, last do bl[#bl + 1] = labels[i]; seeds[#seeds + 1] = opts.seed + i - 1 end
    return setup:sample{labels = bl, seeds = seeds, steps = steps, t_start = t_start,
                        known = init and {image = known.repeated(init.image, #bl)},
                        on_step = function(i) progress:update(round * calls + math.min(i, calls)) end}
  end, function(first, last, x) fn(x, first, last) end)
  progress:close()
end

if not folder then
  local parts = {}
  each_batch(function(x) parts[#parts + 1] = x end)
  if not lead then return end
  local x = ddpm.tensor.cat(parts, 1)
  local dir = opts.out:match("^(.*)/[^/]*$")
  if dir then common.mkdir(dir) end
  ddpm.image.save(ddpm.image.grid(x, {cols = opts.per_digit}), opts.out, {scale = opts.scale, text = setup:provenance{
    seed = tostring(opts.seed), image_seeds = "seed + i, i = 0-based index row by row", digits = opts.digits,
    per_digit = tostring(opts.per_digit)}})
  print(string.format("wrote %s (%d digits, %s, seed %d) in %.1f s", opts.out, n, setup:describe(), opts.seed,
                      ddpm.clock() - t0))
  for r, d in ipairs(digits) do
    local s = opts.seed + (r - 1) * opts.per_digit
    print(string.format("  row %d (digit %d): seeds %d..%d", r - 1, d, s, s + opts.per_digit - 1))
  end
  print(string.format("one digit alone: ddpm sample --digits D --per-digit 1 --seed SEED%s",
                      opts.weights and (" --weights " .. setup.weights) or ""))
elseif opts.format == "png" then
  -- The files are written once every batch is sampled: a sampler error, on any rank, or an
  -- interrupt leaves no partial folder.
  local parts = {}
  each_batch(function(x, first) parts[#parts + 1] = {x = x, first = first} end)
  if not lead then return end
  common.mkdir(opts.out)
  for _, part in ipairs(parts) do
    for k = 1, #part.x do
      local i = part.first + k - 1
      local path = string.format("%s/%d_%d.png", opts.out:gsub("/$", ""), labels[i], index_in_digit[i])
      -- native resolution: a folder of digits is a dataset, not a picture
      ddpm.image.save(part.x:narrow(1, k, 1), path, {text = setup:provenance{
        seed = tostring(opts.seed + i - 1), digit = tostring(labels[i])}})
    end
  end
  print(string.format("wrote %d PNGs (<digit>_<index>.png, seeds %d..%d) to %s in %.1f s",
                      n, opts.seed, opts.seed + n - 1, opts.out, ddpm.clock() - t0))
else
  if lead then common.mkdir(opts.out) end
  local dir = opts.out:gsub("/$", "")
  local size = setup.model:config().image_size
  local images_path, labels_path = dir .. "/train-images-idx3-ubyte", dir .. "/train-labels-idx1-ubyte"
  -- both files are written at the end, atomically and as a pair: an interrupted run or a
  -- failed write (a full disk) leaves the old pair as it was
  local parts = {}
  each_batch(function(x) parts[#parts + 1] = ddpm.image.bytes(x) end)
  if not lead then return end
  ddpm.data.write_idx{images_path = images_path, labels_path = labels_path, pixels = table.concat(parts),
                      rows = size, cols = size, labels = labels}
  print(string.format("wrote %s and %s (%d labelled %dx%d digits, seeds %d..%d) in %.1f s",
                      images_path, labels_path, n, size, size, opts.seed, opts.seed + n - 1, ddpm.clock() - t0))
end
