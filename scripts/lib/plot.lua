-- A loss curve as a grayscale image tensor (1 x 1 x H x W): white background, black line,
-- log-scaled y when the values span more than a factor of 10.
local M = {}

function M.curve(values, opts)
  opts = opts or {}
  local W, H, pad = opts.width or 480, opts.height or 240, 12
  local px = {}
  for i = 1, W * H do px[i] = 1 end
  local n = #values
  if n == 0 then return ddpm.tensor.from(px, {1, 1, H, W}) end
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    if v == v and v < math.huge then lo = math.min(lo, v); hi = math.max(hi, v) end
  end
  local log = lo > 0 and hi / lo > 10
  local f = log and math.log or function(v) return v end
  local flo, fhi = f(lo), f(hi)
  if fhi - flo < 1e-12 then fhi = flo + 1 end
  local function set(x, y, v) if x >= 1 and x <= W and y >= 1 and y <= H then px[(y - 1) * W + x] = v end end
  -- axes
  for x = pad, W - pad do set(x, H - pad, -1) end
  for y = pad, H - pad do set(pad, y, -1) end
  local prevx, prevy
  for i, v in ipairs(values) do
    local x = pad + math.floor((i - 1) / math.max(n - 1, 1) * (W - 2 * pad) + 0.5)
    local y = H - pad - math.floor((f(v) - flo) / (fhi - flo) * (H - 2 * pad) + 0.5)
    if prevx then
      local steps = math.max(math.abs(x - prevx), math.abs(y - prevy), 1)
      for s = 0, steps do
        set(prevx + math.floor((x - prevx) * s / steps + 0.5), prevy + math.floor((y - prevy) * s / steps + 0.5), -1)
      end
    end
    prevx, prevy = x, y
  end
  return ddpm.tensor.from(px, {1, 1, H, W})
end

return M
