-- The training data a config names: train.data = {kind = ..., ...} (none: MNIST).
--   {kind = "mnist", path = DIR}                  MNIST's IDX files (path: else $DDPM_DATA, else data/mnist)
--   {kind = "fashion", path = DIR}                Fashion-MNIST's (path: else data/fashion-mnist, else
--                                                 /usr/share/datasets/fashion-mnist from Debian's package)
--   {kind = "idx", images = FILE, labels = FILE}  any IDX pair, gzipped or not
--   {kind = "folder", path = DIR}                 grayscale PNGs, one subfolder per class
-- Relative paths are relative to the working folder (as --data is). Unknown fields are errors.
local M = {}

--- The fields of each kind (besides `kind`), and the ones it requires.
M.kinds = {
  mnist = {fields = {"path"}, required = {}},
  fashion = {fields = {"path"}, required = {}},
  idx = {fields = {"images", "labels"}, required = {"images", "labels"}},
  folder = {fields = {"path"}, required = {"path"}},
}

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return out
end

--- Checks a config's train.data table; `where` names the config file in messages.
function M.check(spec, where)
  if type(spec) ~= "table" then
    error(string.format("%s: train.data must be a table such as {kind = \"fashion\"}", where), 0)
  end
  local kind = M.kinds[spec.kind]
  if not kind then
    error(string.format("%s: train.data.kind must be one of %s, got %s", where,
                        table.concat(sorted_keys(M.kinds), ", "), tostring(spec.kind)), 0)
  end
  local known, unknown = {kind = true}, {}
  for _, f in ipairs(kind.fields) do known[f] = true end
  for k in pairs(spec) do if not known[k] then unknown[#unknown + 1] = tostring(k) end end
  if #unknown > 0 then
    table.sort(unknown)
    local names = {"kind", table.unpack(kind.fields)}
    table.sort(names)
    error(string.format("%s: unknown train.data field(s) %s for kind %s (known: %s)", where,
                        table.concat(unknown, ", "), spec.kind, table.concat(names, ", ")), 0)
  end
  for _, f in ipairs(kind.required) do
    if spec[f] == nil then error(string.format("%s: train.data of kind %s needs %s=", where, spec.kind, f), 0) end
  end
  for _, f in ipairs(kind.fields) do
    if spec[f] ~= nil and type(spec[f]) ~= "string" then
      error(string.format("%s: train.data.%s must be a path (string), got %s", where, f, type(spec[f])), 0)
    end
  end
end

--- The data spec with a --data folder in place of its own (mnist, fashion, folder); `data` "" keeps it.
function M.with_folder(spec, data)
  spec = spec or {kind = "mnist"}
  if data == nil or data == "" then return spec end
  if spec.kind == "idx" then
    error("--data names a folder; train.data of kind idx takes its files from images= and labels=", 0)
  end
  local out = {}
  for k, v in pairs(spec) do out[k] = v end
  out.path = data
  return out
end

--- One line naming the data (for weights metadata and messages).
function M.describe(spec)
  if spec.kind == "idx" then return "idx " .. spec.images .. " + " .. spec.labels end
  if spec.kind == "folder" then return "folder " .. spec.path end
  return (spec.kind == "fashion" and "fashion-mnist" or "mnist") .. " train"
end

local function load(spec, size, resize)
  if spec.kind == "idx" then
    return ddpm.data.idx{images = spec.images, labels = spec.labels, size = size, resize = resize}
  elseif spec.kind == "folder" then
    return ddpm.data.folder{path = spec.path, size = size, resize = resize}
  end
  return ddpm.data[spec.kind]{split = "train", size = size, resize = resize, path = spec.path}
end

--- Opens the dataset `spec` names (see M.check), its images size x size by `resize`. A loader's
--- error is about the data, not this file: it is raised without this file's line.
function M.open(spec, size, resize)
  local ok, ds = pcall(load, spec, size, resize)
  if not ok then error((tostring(ds):gsub("^[^\n]-%.lua:%d+: ", "")), 0) end
  return ds
end

--- An error unless every label of `ds` is one of the model's `classes` (0..classes-1).
function M.check_labels(ds, classes, spec)
  if ds.classes <= classes then return end
  local largest = ds.classes - 1
  local name = ds:class_name(largest)
  error(string.format("%s has label %d%s, but the model has classes = %d (labels 0..%d); set model.classes = %d "
                      .. "in the config", M.describe(spec), largest, name and (" (class folder " .. name .. ")") or "",
                      classes, classes - 1, ds.classes), 0)
end

return M
