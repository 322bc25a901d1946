-- Helpers for recipes that run as several ranks under mpirun (ddpm.dist; docs/scaling.md).
-- Without mpirun there is one rank and they change nothing.
local M = {}

--- Items first..first+count-1 of a list, as a new list.
function M.slice(list, first, count)
  local out = {}
  for i = first, first + count - 1 do out[#out + 1] = list[i] end
  return out
end

--- A plain value as text: tables with sorted keys, numbers exactly (%.17g), functions and
--- userdata by type. Equal texts on two ranks mean equal options.
function M.describe(v)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. M.describe(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    return math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
  elseif t == "string" then
    return string.format("%q", v)
  elseif t == "boolean" or t == "nil" then
    return tostring(v)
  end
  return t
end

--- Refuses to start (an error on every rank) unless every rank got the same `values` (options,
--- the loaded config) and files with the same contents (`files`: what -> path; a missing file
--- counts as different from a present one).
function M.require_same(values, files)
  if ddpm.dist.size() == 1 then return end
  ddpm.dist.check("the options and config (" .. table.concat(M.sorted_keys(values), ", ") .. ")", M.describe(values))
  for _, what in ipairs(M.sorted_keys(files)) do
    local path = files[what]
    local f = io.open(path, "rb")
    local digest = "missing"
    if f then f:close(); digest = ddpm.sha256(path) end
    ddpm.dist.check(what .. " " .. path .. " (SHA-256)", digest)
  end
end

function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- How `n` images (or other items) are sampled in batches across the ranks: batches of at most
--- `batch` in order (smaller when there are fewer batches than ranks, so that every rank gets
--- work), batch j (0-based) on rank j mod N. With one rank: batches of min(batch, n), in order.
--- Returns a plan: plan.per (images per batch), plan.batches, plan.rounds (batches per rank, at
--- most) and plan.run(make, use, outputs):
---   make(first, last, round) runs on each rank for each of its batches (images first..last,
---     1-based) and returns `outputs` tensors (default 1) with one row per image;
---   use(first, last, ...) runs on rank 0 for every batch in order, with those tensors gathered.
--- After each round an interrupt on any rank stops every rank with an error.
function M.deal(n, batch)
  local ranks, rank = ddpm.dist.size(), ddpm.dist.rank()
  local per = math.max(1, math.min(batch, math.ceil(n / ranks)))
  local batches = math.ceil(n / per)
  local plan = {per = per, batches = batches, rounds = math.ceil(batches / ranks)}
  function plan.run(make, use, outputs)
    outputs = outputs or 1
    for round = 0, plan.rounds - 1 do
      local b = round * ranks + rank
      local made = {}
      if b < batches then
        local first = b * per + 1
        made = {make(first, math.min(n, first + per - 1), round)}
      end
      local got = {}
      for i = 1, outputs do got[i] = ranks > 1 and ddpm.dist.gather(made[i]) or {made[i]} end
      if rank == 0 then
        for j = 1, #got[1] do
          local first = (round * ranks + j - 1) * per + 1
          local args = {}
          for i = 1, outputs do args[i] = got[i][j] end
          use(first, math.min(n, first + per - 1), table.unpack(args, 1, outputs))
        end
      end
      if ddpm.dist.any(ddpm.interrupted()) then
        error(string.format("interrupted after %d of %d images", math.min(n, (round + 1) * ranks * per), n), 0)
      end
    end
  end
  return plan
end

--- A stand-in for rank 0's log files and progress bar on the other ranks: accepts the same
--- calls and does nothing.
M.silent = setmetatable({}, {__index = function() return function() end end})

return M
