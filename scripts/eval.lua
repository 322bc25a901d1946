-- Evaluation of a diffusion model with the project's classifier (weights/mnist-classifier.safetensors):
-- generates --per-class digits of every class (image i uses seed + i, as `ddpm sample`), then reports
--   accuracy   how often the classifier reads the requested digit (overall and per class);
--   Fréchet    distance between Gaussian fits of classifier features (128-d) of the samples and of
--              the 10k test set, next to the same distance for as many real training images (floor);
--   diversity  mean pairwise feature distance within a class, next to real data's.
--   ddpm eval --weights weights/mnist-small.safetensors --per-class 100 [--json]
--   ddpm eval --classifier-only        the classifier's own test accuracy
--   mpirun -np 4 ddpm eval ...         the generated digits split over 4 ranks; rank 0 reports
--   ddpm eval --cas 500 [--cas-steps 2000]   classification accuracy score (lib/cas.lua): a new classifier
--              trained only on 500 generated digits per class, tested on real MNIST, next to the same
--              classifier trained on 500 real training digits per class
local args = require("lib.args")
local cas = require("lib.cas")
local common = require("lib.common")
local dist = require("lib.dist")
local evaluation = require("lib.evaluation")

local help = {
  usage = "ddpm eval [options]  (or: ddpm run scripts/eval.lua [options])",
  summary = "Accuracy, Frechet distance and diversity of generated digits, judged by the project's classifier.",
  classifier = "classifier weights (none: weights/mnist-classifier.safetensors)",
  per_class = "generated digits per class (verdicts need >= " .. evaluation.meaningful_per_class .. ")",
  batch = "images per sampling batch",
  json = "print JSON instead of the table",
  classifier_only = "only the classifier's accuracy on the MNIST test set",
  data = "MNIST folder (none: $DDPM_DATA, then data/mnist)",
  cas = "classification accuracy score with N generated digits per class (0: the classifier's verdicts instead)",
  cas_steps = "with --cas: training steps of each classifier (batch 128)",
}
local opts = common.parse_sampling_args(arg, {classifier = args.optional("string"), per_class = 100, batch = 100,
                                              json = false, classifier_only = false, data = args.optional("string"),
                                              cas = 0, cas_steps = 2000},
                                        help)
-- the sampling options are checked (and the weights loaded) before the slow classifier pass
local setup, steps
if not opts.classifier_only then
  args.at_least(opts, "batch", 1)
  args.at_least(opts, "cas", 0)
  args.at_least(opts, "cas_steps", 1)
  if opts.cas == 0 and opts.per_class < 2 then
    error("--per-class must be >= 2 (diversity and Fréchet need two images)", 0)
  end
  setup = common.sampling_setup(opts)
  steps = setup.steps
end
local path = opts.data

if opts.cas > 0 and not opts.classifier_only then
  if ddpm.dist.size() > 1 then error("--cas runs in one process: run it without mpirun", 0) end
  local r = cas.score{sampling = {model = setup.model, schedule = setup.schedule, per_class = opts.cas,
                                  batch = opts.batch, seed = opts.seed, sampler = setup.sampler,
                                  options = setup.options, steps = steps, eta = setup.eta,
                                  guidance = setup.guidance, guidance_interval = setup.interval},
                      steps = opts.cas_steps, data = path}
  local provenance = setup:provenance{seed = opts.seed}
  provenance.steps, provenance.guidance, provenance.eta = steps, setup.guidance, setup.eta  -- numbers in JSON
  for k, v in pairs(provenance) do r[k] = v end
  if opts.json then print(evaluation.json(r)) else cas.print_table(r) end
  return
end

-- Under mpirun every rank classifies its share of the test set and samples and classifies its
-- share of the digits (lib/dist.lua); rank 0 gathers the predictions and features and reports.
local lead = ddpm.dist.rank() == 0
local classifier_path = evaluation.find_classifier(opts.classifier)
local clf = ddpm.load_classifier(classifier_path)
local test = ddpm.data.mnist{split = "test", size = 32, path = path}
local function say(...) if not opts.json and lead then print(string.format(...)) end end
local function percent_by_class(t)
  local out = {}
  for c = 0, 9 do out[tostring(c)] = t[c] and math.floor(t[c] * 10000 + 0.5) / 100 or nil end
  return out
end
local function class_line(t)
  local parts = {}
  for c = 0, 9 do parts[#parts + 1] = string.format("%d: %5.1f", c, 100 * (t[c] or 0)) end
  return table.concat(parts, "  ")
end

local t0 = ddpm.clock()
-- The test set in batches of 500: the classifier's verdicts (accuracy overall and per class) and
-- its features (the reference of the Fréchet distance).
local right, per_right, per_total, test_parts = 0, {}, {}, {}
for c = 0, 9 do per_right[c], per_total[c] = 0, 0 end
dist.deal(#test, 500).run(function(first, last)
  local x = test:slice(first, last - first + 1)
  local predicted = ddpm.tensor.from(clf:predict(x))
  if opts.classifier_only then return predicted end
  return predicted, ddpm.no_grad(function() return clf:features(x) end)
end, function(first, last, predicted, features)
  local _, labels = test:slice(first, last - first + 1)
  for i, p in ipairs(predicted:totable()) do
    local l = labels[i]
    per_total[l] = per_total[l] + 1
    if p == l then right = right + 1; per_right[l] = per_right[l] + 1 end
  end
  test_parts[#test_parts + 1] = features
end, opts.classifier_only and 1 or 2)
if not lead and opts.classifier_only then return end
local test_accuracy, test_per_class = right / #test, {}
for c = 0, 9 do test_per_class[c] = per_total[c] > 0 and per_right[c] / per_total[c] or 0 end
if opts.classifier_only then
  local result = {classifier = classifier_path, classifier_sha256 = ddpm.sha256(classifier_path), test_images = #test,
                  accuracy = math.floor(test_accuracy * 10000 + 0.5) / 100,
                  accuracy_per_class = percent_by_class(test_per_class)}
  if opts.json then print(evaluation.json(result)) return end
  say("classifier %s: test accuracy %.2f %% on %d MNIST test images", classifier_path, 100 * test_accuracy, #test)
  say("  per class  %s", class_line(test_per_class))
  return
end

local n = opts.per_class

-- Real reference: features of the whole test set, and of the first n training images of each class.
local test_features, real_all, real_diversity
if lead then
  test_features = ddpm.tensor.cat(test_parts, 1)
  local train = ddpm.data.mnist{split = "train", size = 32, path = path}
  local picked = evaluation.first_per_class(train, n)
  local real_features = {}
  real_diversity = {}
  for c = 0, 9 do
    local images = {}
    for _, i in ipairs(picked[c]) do images[#images + 1] = (train:get(i)) end
    local f = ddpm.no_grad(function() return clf:features(ddpm.tensor.cat(images, 1)) end)
    real_features[#real_features + 1] = f
    real_diversity[c] = ddpm.metrics.diversity(f)
  end
  real_all = ddpm.tensor.cat(real_features, 1)
end

-- Generated digits: n of each class, class by class in order, sampled in batches of --batch
-- (classes mixed within a batch); image i uses seed + i.
local total = 10 * n
local plan = dist.deal(total, opts.batch)
local progress = lead and ddpm.progress(plan.rounds * steps, "eval") or dist.silent
-- Network evaluations per image: one per step, two where guidance applies (the batched
-- conditional and unconditional halves), counted from the timesteps the sampler visits.
local parts, predicted, sample_seconds, evaluations = {}, {}, 0, 0
plan.run(function(first, last, round)
  local labels, seeds = {}, {}
  for i = first, last do labels[#labels + 1] = (i - 1) // n; seeds[#seeds + 1] = opts.seed + i - 1 end
  local s0 = ddpm.clock()
  local x = setup:sample{labels = labels, seeds = seeds, on_step = function(i, t)
    if round == 0 then
      local guided = setup.guidance ~= 1 and (not setup.interval or (t >= setup.interval[1] and t <= setup.interval[2]))
      evaluations = evaluations + (guided and 2 or 1)
    end
    progress:update(round * steps + math.min(i, steps))
  end}
  sample_seconds = sample_seconds + ddpm.clock() - s0  -- this rank's sampling time
  return ddpm.tensor.from(clf:predict(x)), ddpm.no_grad(function() return clf:features(x) end)
end, function(_, _, classes, features)
  for _, p in ipairs(classes:totable()) do predicted[#predicted + 1] = math.tointeger(p) end
  parts[#parts + 1] = features
end, 2)
progress:close()
if not lead then return end
local generated = ddpm.tensor.cat(parts, 1)
local accuracy_per_class, diversity, right = {}, {}, 0
for c = 0, 9 do
  local class_right = 0
  for i = c * n + 1, (c + 1) * n do if predicted[i] == c then class_right = class_right + 1 end end
  accuracy_per_class[c] = class_right / n
  diversity[c] = ddpm.metrics.diversity(generated:narrow(1, c * n + 1, n))
  right = right + class_right
end
local fd = ddpm.metrics.frechet(generated, test_features)
local fd_real = ddpm.metrics.frechet(real_all, test_features)
local function mean(t) local s = 0 for c = 0, 9 do s = s + t[c] end return s / 10 end
local div, div_real = mean(diversity), mean(real_diversity)
local accuracy = right / (10 * n)

local result = {
  weights = common.provenance_path(setup.weights), weights_sha256 = ddpm.sha256(setup.weights),
  sampler = setup.sampler_name, sampler_options = setup:options_text(), steps = steps,
  network_evaluations = evaluations,
  guidance = setup.guidance, guidance_interval = common.interval_text(setup.interval), eta = setup.eta,
  seed = opts.seed, per_class = n,
  precision = setup.precision,
  accuracy = math.floor(accuracy * 10000 + 0.5) / 100, accuracy_per_class = percent_by_class(accuracy_per_class),
  frechet = fd, frechet_real = fd_real, frechet_ratio = fd / fd_real,
  diversity = div, diversity_real = div_real, diversity_ratio = div / div_real,
  classifier = classifier_path, classifier_test_accuracy = math.floor(test_accuracy * 10000 + 0.5) / 100,
  sampling_seconds = math.floor(sample_seconds * 10 + 0.5) / 10,
  seconds = math.floor((ddpm.clock() - t0) * 10 + 0.5) / 10,
  targets = {accuracy_at_least_99 = accuracy >= 0.99, frechet_at_most_2x_real = fd <= 2 * fd_real,
             diversity_at_least_90_percent = div >= 0.9 * div_real},
}
-- Below evaluation.meaningful_per_class digits per class one digit moves accuracy by whole
-- percents and the Fréchet and diversity estimates are noise: no verdict.
local meaningful = n >= evaluation.meaningful_per_class
result.targets_meaningful = meaningful
if not meaningful then result.targets = nil end
if opts.json then print(evaluation.json(result)) return end
local function verdict(ok, target)
  if not meaningful then return target .. ": not meaningful" end
  return target .. (ok and ": met" or ": NOT met")
end
say("ddpm eval: %s (sha256 %s...)", setup.weights, result.weights_sha256:sub(1, 12))
say("  %s (%d network evaluations per image), %d digits per class, seed %d; sampling %.0f s", setup:describe(),
    evaluations, n, opts.seed, sample_seconds)
if setup.precision ~= "fp32" then say("  products in %s (mixed precision)", setup.precision) end
say("")
say("  %-26s %10s %12s %8s %s", "", "generated", "real", "ratio", "target")
say("  %-26s %9.2f%% %11.2f%% %8s %s", "accuracy (requested digit)", 100 * accuracy, 100 * test_accuracy, "",
    verdict(accuracy >= 0.99, ">= 99 %"))
say("  %-26s %10.3f %12.3f %8.2f %s", "Frechet distance", fd, fd_real, fd / fd_real,
    verdict(fd <= 2 * fd_real, "<= 2x real"))
say("  %-26s %10.3f %12.3f %8.2f %s", "diversity (within class)", div, div_real, div / div_real,
    verdict(div >= 0.9 * div_real, ">= 0.9x real"))
say("")
if not meaningful then
  say("  verdicts need at least %d digits per class (--per-class %d); %d per class are too few to judge",
      evaluation.meaningful_per_class, evaluation.meaningful_per_class, n)
end
say("  accuracy per class  %s", class_line(accuracy_per_class))
say("  (real: the classifier on the 10k test set; Frechet floor: %d real training images vs the test set)", 10 * n)
