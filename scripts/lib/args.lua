-- Command-line options for recipes: --name value, --name=value, --flag (boolean true).
-- parse(arg, defaults, help) returns a table of options; unknown options are an error.
--   defaults  name -> default value; its type is the option's type (number, string, boolean);
--             or args.optional(type) (nil unless given) or args.list() (repeatable: a table of
--             every value given, in order). A value always follows a non-boolean option, so
--             `--seed -1` reads -1.
--   help      name -> one-line description, plus `usage` (the command line) and `summary`
--             (what the recipe does); `--help` prints them and exits 0.
local M = {}

--- The option names as typed: "per_digit" -> "--per-digit".
local function flag(key) return "--" .. key:gsub("_", "-") end

local optional_mt, list_mt = {}, {}

--- An option without a default: nil unless given, else read as `kind` ("number" or "string").
function M.optional(kind) return setmetatable({kind = kind}, optional_mt) end

--- A repeatable option: a table of the strings given (empty when none).
function M.list() return setmetatable({}, list_mt) end

--- An option's type: "number", "string", "boolean" or "list".
local function kind_of(default)
  local mt = getmetatable(default)
  if mt == optional_mt then return default.kind end
  if mt == list_mt then return "list" end
  return type(default)
end

--- The --help text: usage, summary, then one line per option with its default.
function M.usage(defaults, help, script)
  help = help or {}
  local keys = {}
  for k in pairs(defaults) do keys[#keys + 1] = k end
  table.sort(keys)
  local lines = {"usage: " .. (help.usage or ("ddpm run " .. tostring(script) .. " [options]"))}
  if help.summary then lines[#lines + 1] = help.summary end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "options:"
  local rows, width = {}, 0
  for _, k in ipairs(keys) do
    local d, kind = defaults[k], kind_of(defaults[k])
    local left = flag(k) .. (kind == "boolean" and "" or (kind == "number" and " N" or " TEXT"))
    local default = ""
    if kind == "list" then
      default = " (repeatable)"
    elseif getmetatable(d) ~= optional_mt and kind ~= "boolean" then
      default = string.format(" (default: %s)", d == "" and "none" or tostring(d))
    end
    rows[#rows + 1] = {left, (help[k] or "(no description)") .. default}
    width = math.max(width, #left)
  end
  rows[#rows + 1] = {"--help", "this text"}
  for _, r in ipairs(rows) do lines[#lines + 1] = string.format("  %-" .. width .. "s  %s", r[1], r[2]) end
  return table.concat(lines, "\n")
end

function M.parse(argv, defaults, help)
  local opts = {}
  for k, v in pairs(defaults) do
    if kind_of(v) == "list" then opts[k] = {} elseif getmetatable(v) ~= optional_mt then opts[k] = v end
  end
  local i = 1
  while argv[i] do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      print(M.usage(defaults, help, argv[0]))
      os.exit(0)
    end
    local name, value = a:match("^%-%-([%w_%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w_%-]+)$") end
    if not name then
      error("unexpected argument '" .. a .. "' (options look like --name value; --help lists them)", 0)
    end
    local key = name:gsub("%-", "_")
    if defaults[key] == nil then
      local known = {}
      for k in pairs(defaults) do known[#known + 1] = flag(k) end
      table.sort(known)
      error("unknown option --" .. name .. " (known: " .. table.concat(known, " ") .. "; --help describes them)", 0)
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

--- An option that is a word (its default, such as "auto") or a whole number >= min: nil for the
--- word, else the number; anything else is an error naming the option.
function M.integer(opts, key, word, min)
  local v = opts[key]
  if v == word then return nil end
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < min then
    error(string.format("%s must be a whole number >= %d or '%s', got '%s'", flag(key), min, word, tostring(v)), 0)
  end
  return math.tointeger(n) or n
end

--- A number option that must be >= min.
function M.at_least(opts, key, min)
  if opts[key] < min then
    error(string.format("%s must be >= %s, got %s", flag(key), tostring(min), tostring(opts[key])), 0)
  end
  return opts[key]
end

return M
