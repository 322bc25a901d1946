-- Helpers shared by the classifier recipe, `ddpm eval` and the training recipe's quality probe.
local common = require("lib.common")
local M = {}

--- Digits per class below which `ddpm eval` gives no verdict on its targets: at 50 one digit is
--- 2 points of a class's accuracy, and fewer make the Fréchet and diversity estimates noise.
M.meaningful_per_class = 50

--- The classifier to evaluate with: `given` if set, else weights/mnist-classifier.safetensors
--- from the working folder or from the repository the bundled scripts are in.
function M.find_classifier(given)
  if given and given ~= "" then return given end
  if common.file_exists("weights/mnist-classifier.safetensors") then return "weights/mnist-classifier.safetensors" end
  for dir in package.path:gmatch("([^;]+)/%?%.lua") do
    local p = dir .. "/../weights/mnist-classifier.safetensors"
    if common.file_exists(p) then return p end
  end
  error("no classifier: pass --classifier FILE or train one with `ddpm run scripts/train_classifier.lua`", 0)
end

--- Trains `clf` (a new ddpm.classifier) on dataset `ds` for `o.steps` steps from the global
--- generator's current state: Adam, batches of `o.batch` (128), the learning rate `o.lr` (1e-3)
--- decaying on a cosine to 0 over the run, random shifts of up to `o.shift` (2) pixels. Shows
--- progress labelled `o.label`. Returns the training seconds.
function M.train_classifier(clf, ds, o)
  local batch, lr, shift, steps = o.batch or 128, o.lr or 1e-3, o.shift or 2, o.steps
  local opt = ddpm.optim.adam(clf, {lr = lr})
  local progress = ddpm.progress(steps, o.label or "train classifier")
  local t0, smoothed = ddpm.clock(), nil
  for step = 1, steps do
    -- cosine decay to 0 over the run: a short run still ends at a settled minimum
    opt.lr = math.max(lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps)), 1e-7)
    local x, labels = ds:batch(batch)
    -- random shifts: generated digits are not always centred like MNIST's
    if shift > 0 then x = ddpm.data.shift(x, shift) end
    local loss = ddpm.loss.cross_entropy(clf(x), labels)
    opt:zero_grad()
    loss:backward()
    opt:step()
    smoothed = smoothed and 0.98 * smoothed + 0.02 * loss:item() or loss:item()
    progress:update(step, string.format("loss %.4f", smoothed))
    if ddpm.interrupted() then error("interrupted at step " .. step .. " (nothing saved)", 0) end
  end
  progress:close()
  return ddpm.clock() - t0
end

--- Indices (1-based, file order) of the first `n` images of each class 0..9 of `ds`:
--- picked[c] = {i1, ..., in}; an error when a class has fewer.
function M.first_per_class(ds, n)
  local picked, full = {}, 0
  for c = 0, 9 do picked[c] = {} end
  for first = 1, #ds, 1000 do
    local _, labels = ds:slice(first, math.min(1000, #ds - first + 1))
    for i, c in ipairs(labels) do
      if picked[c] and #picked[c] < n then
        picked[c][#picked[c] + 1] = first + i - 1
        if #picked[c] == n then full = full + 1 end
      end
    end
    if full == 10 then break end
  end
  for c = 0, 9 do
    if #picked[c] < n then
      error(string.format("the training set has only %d images of digit %d (%d per class asked)", #picked[c], c, n), 0)
    end
  end
  return picked
end

--- Accuracy of `clf` on every image of `ds` (in file order), overall and per class (0-based).
function M.accuracy(clf, ds, batch)
  batch = batch or 500
  local right, per_right, per_total = 0, {}, {}
  for c = 0, 9 do per_right[c], per_total[c] = 0, 0 end
  for first = 1, #ds, batch do
    local n = math.min(batch, #ds - first + 1)
    local x, labels = ds:slice(first, n)
    local predicted = clf:predict(x)
    for i = 1, n do
      local l = labels[i]
      per_total[l] = (per_total[l] or 0) + 1
      if predicted[i] == l then right = right + 1; per_right[l] = (per_right[l] or 0) + 1 end
    end
  end
  local per_class = {}
  for c, n in pairs(per_total) do per_class[c] = n > 0 and per_right[c] / n or 0 end
  return right / #ds, per_class
end

--- Classifier features of images first..first+count-1 of `ds`, as one (count, D) tensor, and
--- their labels.
function M.dataset_features(clf, ds, first, count, batch)
  batch = batch or 500
  local parts, labels = {}, {}
  for start = first, first + count - 1, batch do
    local n = math.min(batch, first + count - start)
    local x, l = ds:slice(start, n)
    parts[#parts + 1] = ddpm.no_grad(function() return clf:features(x) end)
    for i = 1, n do labels[#labels + 1] = l[i] end
  end
  return ddpm.tensor.cat(parts, 1), labels
end

--- A quick quality probe for training runs (train.eval_every): returns probe(model[, steps]) ->
--- accuracy (0-1) of the requested digit and the Fréchet distance between classifier features of
--- the samples and of the test set. Each call draws the same digits (`per_class` of each class,
--- `steps` steps of `sampler`, no guidance, fixed seeds), so successive calls compare like with like.
--- opts: schedule, size (the model's image size), per_class = 20, sampler = "ddim", options (the
--- sampler's), steps = 20 (a call's `steps` overrides it), seed = 0, data, classifier.
--- The model's output is read through its objective (model.objective).
function M.probe(opts)
  local path = M.find_classifier(opts.classifier)
  local clf = ddpm.load_classifier(path)
  local test = ddpm.data.mnist{split = "test", size = opts.size, path = opts.data}
  local ok, test_features = pcall(M.dataset_features, clf, test, 1, #test)
  if not ok then
    error(string.format("train.eval_every: the classifier %s cannot read %dx%d images: %s", path, opts.size, opts.size,
                        tostring(test_features)), 0)
  end
  local per_class, labels = opts.per_class or 20, {}
  if per_class < 2 then error("train.eval_per_class must be >= 2", 0) end
  for c = 0, 9 do for _ = 1, per_class do labels[#labels + 1] = c end end
  return function(model, steps)
    local x = ddpm.sample{model = model, schedule = opts.schedule, labels = labels, sampler = opts.sampler or "ddim",
                          options = opts.options, steps = math.min(steps or opts.steps or 20, opts.schedule.steps),
                          guidance = 1,
                          seed = opts.seed or 0}
    local right = 0
    for i, p in ipairs(clf:predict(x)) do if p == labels[i] then right = right + 1 end end
    local features = ddpm.no_grad(function() return clf:features(x) end)
    return right / #labels, ddpm.metrics.frechet(features, test_features)
  end
end

--- A plain Lua value as JSON: tables with keys 1..n are arrays, other tables objects (sorted keys).
function M.json(v, indent)
  indent = indent or ""
  local t = type(v)
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return math.type(v) == "integer" and tostring(v) or string.format("%.6g", v)
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    local inner = indent .. "  "
    if #v > 0 or next(v) == nil then
      local parts = {}
      for _, x in ipairs(v) do parts[#parts + 1] = M.json(x, inner) end
      return "[" .. table.concat(parts, ", ") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do
      local x = v[k]
      if x == nil then x = v[tonumber(k)] end
      parts[#parts + 1] = inner .. M.json(k) .. ": " .. M.json(x, inner)
    end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
  end
  return "null"
end

return M
