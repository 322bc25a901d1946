-- Command-line options for recipes: --name value, --name=value, --flag (boolean true).
-- parse(arg, defaults) returns a table of options; unknown options are an error.
local M = {}

function M.parse(argv, defaults)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  local i = 1
  while argv[i] do
    local a = argv[i]
    local name, value = a:match("^%-%-([%w_%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w_%-]+)$") end
    if not name then error("unexpected argument '" .. a .. "' (options look like --name value)", 0) end
    local key = name:gsub("%-", "_")
    if defaults[key] == nil then
      local known = {}
      for k in pairs(defaults) do known[#known + 1] = "--" .. k:gsub("_", "-") end
      table.sort(known)
      error("unknown option --" .. name .. " (known: " .. table.concat(known, " ") .. ")", 0)
    end
    if value == nil then
      if type(defaults[key]) == "boolean" then
        value = true
      else
        i = i + 1
        value = argv[i]
        if value == nil then error("option --" .. name .. " needs a value", 0) end
      end
    end
    if type(defaults[key]) == "number" then
      local n = tonumber(value)
      if not n then error("option --" .. name .. " needs a number, got '" .. value .. "'", 0) end
      value = n
    elseif type(defaults[key]) == "boolean" and type(value) == "string" then
      value = (value == "true" or value == "1" or value == "yes")
    end
    opts[key] = value
    i = i + 1
  end
  return opts
end

return M
