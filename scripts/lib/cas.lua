-- Classification accuracy score (CAS; Ravuri & Vinyals 2019) for `ddpm eval --cas N`: the project's
-- classifier (a new one, ddpm.classifier at the generator's resolution) trained only on N generated
-- digits per class, then tested on the real MNIST test set; the same classifier, trained the same
-- way (same seed, steps, batch, learning rate and shifts) on the first N real training digits of
-- each class, is the reference. A generator that covers each class as real data does scores close
-- to the reference; missing modes or wrong classes lower the score.
local evaluation = require("lib.evaluation")
local M = {}

--- The target of issue 19: CAS within this many points of the reference (at N = 500).
M.target_gap = 0.5
--- How both classifiers are made and trained (the classifier recipe's defaults; steps come from --cas-steps).
M.classifier = {width = 32, features = 128, batch = 128, lr = 1e-3, shift = 2, seed = 0}

local function percent(x) return math.floor(x * 10000 + 0.5) / 100 end

local function percent_by_class(t)
  local out = {}
  for c = 0, 9 do out[tostring(c)] = percent(t[c] or 0) end
  return out
end

--- Generates `o.per_class` digits of each class, class by class in order, with ddpm.sample in
--- batches of `o.batch` (classes mixed within a batch); image i (0-based) uses seed o.seed + i, as
--- `ddpm sample` does. `on_batch(x, labels)` gets each batch in turn. o: model, schedule,
--- per_class, batch, seed, sampler, steps, eta, guidance, guidance_interval, label (progress).
--- Returns the sampling seconds.
function M.generate(o, on_batch)
  local n, total = o.per_class, 10 * o.per_class
  local batches = math.ceil(total / o.batch)
  local progress = ddpm.progress(batches * o.steps, o.label or "CAS: sampling")
  local seconds = 0
  for b = 0, batches - 1 do
    local first = b * o.batch
    local count = math.min(o.batch, total - first)
    local labels, seeds = {}, {}
    for k = 1, count do labels[k] = (first + k - 1) // n; seeds[k] = o.seed + first + k - 1 end
    local s0 = ddpm.clock()
    local x = ddpm.sample{model = o.model, schedule = o.schedule, labels = labels, seeds = seeds, sampler = o.sampler,
                          steps = o.steps, eta = o.eta, options = o.options, guidance = o.guidance,
                          guidance_interval = o.guidance_interval,
                          on_step = function(i) progress:update(b * o.steps + i) end}
    seconds = seconds + ddpm.clock() - s0
    on_batch(x, labels)
    if ddpm.interrupted() then error("interrupted", 0) end
  end
  progress:close()
  return seconds
end

--- o: sampling (the table M.generate takes), steps (classifier training steps), data
--- (MNIST folder or nil). Returns the result table (accuracies in percent, gap in points).
function M.score(o)
  local n, size = o.sampling.per_class, o.sampling.model:config().image_size
  local t0 = ddpm.clock()
  local parts, labels = {}, {}
  local sampling_seconds = M.generate(o.sampling, function(x, l)
    parts[#parts + 1] = x
    for _, c in ipairs(l) do labels[#labels + 1] = c end
  end)
  local generated = ddpm.tensor.cat(parts, 1)

  local train = ddpm.data.mnist{split = "train", size = size, path = o.data}
  local test = ddpm.data.mnist{split = "test", size = size, path = o.data}
  local picked = evaluation.first_per_class(train, n)
  local real, real_labels = {}, {}
  for c = 0, 9 do
    for _, i in ipairs(picked[c]) do real[#real + 1] = (train:get(i)); real_labels[#real_labels + 1] = c end
  end
  local real_images = ddpm.tensor.cat(real, 1)

  -- each classifier from the same seed: the same initial weights and the same batch order
  local function trained_on(images, l, label)
    local k = M.classifier
    ddpm.seed(k.seed)
    local ds = ddpm.data.from_tensor(images, l)
    local clf = ddpm.classifier{width = k.width, features = k.features, image_size = size}
    local seconds = evaluation.train_classifier(clf, ds, {steps = o.steps, batch = k.batch, lr = k.lr, shift = k.shift,
                                                          label = label})
    local accuracy, per_class = evaluation.accuracy(clf, test)
    return accuracy, per_class, seconds
  end
  local acc, per_class, seconds = trained_on(generated, labels, "CAS: classifier on generated digits")
  local acc_real, per_class_real, seconds_real = trained_on(real_images, real_labels, "CAS: classifier on real digits")

  local meaningful = n >= evaluation.meaningful_per_class
  local gap = percent(acc_real) - percent(acc)
  local r = {
    mode = "cas", per_class = n, image_size = size, test_images = #test,
    cas = percent(acc), cas_real = percent(acc_real), cas_gap = math.floor(gap * 100 + 0.5) / 100,
    cas_per_class = percent_by_class(per_class), cas_real_per_class = percent_by_class(per_class_real),
    classifier = {steps = o.steps, batch = M.classifier.batch, lr = M.classifier.lr, lr_schedule = "cosine to 0",
                  shift = M.classifier.shift, seed = M.classifier.seed, width = M.classifier.width,
                  features = M.classifier.features},
    sampling_seconds = math.floor(sampling_seconds * 10 + 0.5) / 10,
    classifier_seconds = math.floor((seconds + seconds_real) * 10 + 0.5) / 10,
    seconds = math.floor((ddpm.clock() - t0) * 10 + 0.5) / 10,
    targets_meaningful = meaningful,
  }
  if meaningful then r.targets = {cas_gap_at_most_0_5 = gap <= M.target_gap} end
  return r
end

--- Prints the result of M.score (with the sampling provenance added) as a table.
function M.print_table(r)
  local function line(t)
    local parts = {}
    for c = 0, 9 do parts[#parts + 1] = string.format("%d: %5.1f", c, t[tostring(c)]) end
    return table.concat(parts, "  ")
  end
  print(string.format("ddpm eval --cas: %s (sha256 %s...)", r.weights, r.weights_sha256:sub(1, 12)))
  print(string.format("  %s %d steps, guidance %g at timesteps %s, %d digits per class (%dx%d), seed %d; "
                      .. "sampling %.0f s", r.sampler, r.steps, r.guidance, r.guidance_interval, r.per_class,
                      r.image_size, r.image_size, r.seed, r.sampling_seconds))
  local c = r.classifier
  print(string.format("  classifier: %d steps of batch %d (Adam, lr %g %s, shifts up to %d px), seed %d; "
                      .. "%.0f s for both", c.steps, c.batch, c.lr, c.lr_schedule, c.shift, c.seed,
                      r.classifier_seconds))
  print("")
  print(string.format("  %-44s %s", "classifier trained on", "accuracy on the real test set (10k)"))
  print(string.format("  %-44s %7.2f %%", string.format("%d generated digits per class (CAS)", r.per_class), r.cas))
  print(string.format("  %-44s %7.2f %%", string.format("%d real training digits per class", r.per_class), r.cas_real))
  local verdict = r.targets_meaningful and (r.targets.cas_gap_at_most_0_5 and "met" or "NOT met") or "not meaningful"
  print(string.format("  %-44s %7.2f points   target <= %g points: %s", "gap (real - generated)", r.cas_gap,
                      M.target_gap, verdict))
  print("")
  print("  per class, generated  " .. line(r.cas_per_class))
  print("  per class, real       " .. line(r.cas_real_per_class))
  if not r.targets_meaningful then
    print(string.format("  a verdict needs at least %d digits per class (--cas %d)", evaluation.meaningful_per_class,
                        evaluation.meaningful_per_class))
  end
end

return M
