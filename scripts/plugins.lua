-- `ddpm samplers` / `ddpm schedules`: every sampler (schedule) that --sampler (--schedule) can
-- name, in lookup order, one line each: name, where it came from, description.
--   ddpm run scripts/plugins.lua sampler|schedule
local kind = arg[1] or "sampler"
local entries = ddpm.plugins.list(kind)
local width = 4
for _, e in ipairs(entries) do width = math.max(width, #e.name) end
for _, e in ipairs(entries) do
  local where = e.source == "native" and "native" or (e.source .. " " .. e.path)
  local what = e.error and ("cannot load: " .. e.error) or (e.description or "")
  if e.shadowed then what = what .. " (hidden by the " .. e.name .. " above)" end
  print(string.format("%-" .. width .. "s  %s  %s", e.name, where, what))
end
