-- Command-line options for recipes: --name value, --name=value, --flag (boolean true).
-- parse(arg, defaults) returns a table of options; unknown options are an error. A default is
-- a value (its type is the option's), args.optional(type) (nil unless given) or args.list()
-- (repeatable: every value given, in order).
local M = {}

local optional_mt, list_mt = {}, {}

--- An option without a default: nil unless given, else read as `kind` ("number" or "string").
function M.optional(kind) return setmetatable({kind = kind}, optional_mt) end

--- A repeatable option: a table of the strings given (empty when none).
function M.list() return setmetatable({}, list_mt) end

local function kind_of(default)
  local mt = getmetatable(default)
  if mt == optional_mt then return default.kind end
  if mt == list_mt then return "list" end
  return type(default)
end

function M.parse(argv, defaults)
  local opts = {}
  for k, v in pairs(defaults) do
    local kind = kind_of(v)
    if kind == "list" then opts[k] = {} elseif getmetatable(v) ~= optional_mt then opts[k] = v end
  end
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
    local kind = kind_of(defaults[key])
    if value == nil then
      if kind == "boolean" then
        value = true
      else
        i = i + 1
        value = argv[i]
        if value == nil then error("option --" .. name .. " needs a value", 0) end
      end
    end
    if kind == "number" then
      local n = tonumber(value)
      if not n then error("option --" .. name .. " needs a number, got '" .. value .. "'", 0) end
      value = n
    elseif kind == "boolean" and type(value) == "string" then
      value = (value == "true" or value == "1" or value == "yes")
    end
    if kind == "list" then table.insert(opts[key], value) else opts[key] = value end
    i = i + 1
  end
  return opts
end

return M
