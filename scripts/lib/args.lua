-- Command-line options for recipes: --name value, --name=value, --flag (boolean true).
-- parse(arg, defaults, help) returns a table of options; unknown options are an error.
--   defaults  name -> default value; its type is the option's type (number, string, boolean).
--             A value always follows a non-boolean option, so `--seed -1` reads -1.
--   help      name -> one-line description, plus `usage` (the command line) and `summary`
--             (what the recipe does); `--help` prints them and exits 0.
local M = {}

--- The option names as typed: "per_digit" -> "--per-digit".
local function flag(key) return "--" .. key:gsub("_", "-") end

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
    local d = defaults[k]
    local left = flag(k) .. (type(d) == "boolean" and "" or (type(d) == "number" and " N" or " TEXT"))
    local default = type(d) == "boolean" and "" or
                    string.format(" (default: %s)", d == "" and "none" or tostring(d))
    rows[#rows + 1] = {left, (help[k] or "(no description)") .. default}
    width = math.max(width, #left)
  end
  rows[#rows + 1] = {"--help", "this text"}
  for _, r in ipairs(rows) do lines[#lines + 1] = string.format("  %-" .. width .. "s  %s", r[1], r[2]) end
  return table.concat(lines, "\n")
end

function M.parse(argv, defaults, help)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  local i = 1
  while argv[i] do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      print(M.usage(defaults, help, argv[0]))
      os.exit(0)
    end
    local name, value = a:match("^%-%-([%w_%-]+)=(.*)$")
    if not name then name = a:match("^%-%-([%w_%-]+)$") end
    if not name then error("unexpected argument '" .. a .. "' (options look like --name value; --help lists them)", 0) end
    local key = name:gsub("%-", "_")
    if defaults[key] == nil then
      local known = {}
      for k in pairs(defaults) do known[#known + 1] = flag(k) end
      table.sort(known)
      error("unknown option --" .. name .. " (known: " .. table.concat(known, " ") .. "; --help describes them)", 0)
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
  if opts[key] < min then error(string.format("%s must be >= %s, got %s", flag(key), tostring(min), tostring(opts[key])), 0) end
  return opts[key]
end

return M
