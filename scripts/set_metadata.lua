-- Sets metadata entries of a weights file (the sampling defaults, say) and keeps its tensors:
-- every tensor is read back from the new file and compared bit for bit with the old one before
-- the new file replaces it.
--   ddpm run scripts/set_metadata.lua weights/mnist-small.safetensors default_sampler=dpmpp_2m default_steps=10
local path = arg[1]
if not path or #arg < 2 then error("usage: ddpm run scripts/set_metadata.lua FILE key=value ...", 0) end
local meta = ddpm.safetensors.metadata(path)
for i = 2, #arg do
  local k, v = arg[i]:match("^([^=]+)=(.*)$")
  if not k then error("expected key=value, got '" .. arg[i] .. "'", 0) end
  meta[k] = v ~= "" and v or nil
end
local tensors = ddpm.safetensors.read(path)
local tmp = path .. ".new"
ddpm.safetensors.write(tmp, tensors, meta)
local again, count = ddpm.safetensors.read(tmp), 0
local function same(t, u)
  if not u or table.concat(t:shape(), ",") ~= table.concat(u:shape(), ",") then return false end
  local a, b = t:totable(), u:totable()
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end
for name, t in pairs(tensors) do
  if not same(t, again[name]) then
    os.remove(tmp)
    error("tensor " .. name .. " changed on rewrite; " .. path .. " left as it was", 0)
  end
  count = count + 1
end
assert(os.rename(tmp, path))
print(string.format("%s: metadata set, %d tensors unchanged", path, count))
