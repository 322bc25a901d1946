-- A loss curve as a grayscale image tensor (1 x 1 x H x W): white background, black line and
-- axes with numbered ticks (a built-in 3x5 bitmap font drawn at 2x), log-scaled y (marked "log"
-- at the top right) when the values span more than a factor of 10. curve(values, {x_last = N})
-- numbers the x axis 0..N (training steps) with value i at i / #values of it.
local M = {}

-- 3x5 glyphs, rows top to bottom, '#' = ink. Every glyph but '.' inks its left column, so a
-- label's characters sit at a fixed pitch from its first inked column.
M.font = {
  ["0"] = {"###", "#.#", "#.#", "#.#", "###"}, ["1"] = {"##.", ".#.", ".#.", ".#.", "###"},
  ["2"] = {"###", "..#", "###", "#..", "###"}, ["3"] = {"###", "..#", "###", "..#", "###"},
  ["4"] = {"#.#", "#.#", "###", "..#", "..#"}, ["5"] = {"###", "#..", "###", "..#", "###"},
  ["6"] = {"###", "#..", "###", "#.#", "###"}, ["7"] = {"###", "..#", "..#", "..#", "..#"},
  ["8"] = {"###", "#.#", "###", "#.#", "###"}, ["9"] = {"###", "#.#", "###", "..#", "###"},
  ["."] = {"...", "...", "...", "...", ".#."}, ["-"] = {"...", "...", "###", "...", "..."},
  ["+"] = {"...", ".#.", "###", ".#.", "..."}, ["e"] = {"...", "###", "###", "#..", "###"},
  ["l"] = {"#..", "#..", "#..", "#..", "##."}, ["o"] = {"...", "###", "#.#", "#.#", "###"},
  ["g"] = {".##", "#.#", ".##", "..#", "##."},
}
M.text_scale = 2                    -- pixels per font pixel
M.advance = 4 * M.text_scale        -- a glyph and one column of space
M.text_height = 5 * M.text_scale

--- A tick label: 3 significant digits ("0.125", "1.5e-05"); whole numbers as integers.
function M.label(v)
  if v == math.floor(v) and math.abs(v) < 1e9 then return string.format("%d", v) end
  return string.format("%.3g", v)
end

function M.curve(values, opts)
  opts = opts or {}
  local W, H, pad = opts.width or 480, opts.height or 240, 12
  local px = {}
  for i = 1, W * H do px[i] = 1 end
  local n = #values
  local function set(x, y, v) if x >= 1 and x <= W and y >= 1 and y <= H then px[(y - 1) * W + x] = v end end
  -- text with its top-left corner at (x, y)
  local function text(s, x, y)
    for k = 1, #s do
      local glyph = M.font[s:sub(k, k)]
      for r = 1, 5 do
        for c = 1, 3 do
          if glyph and glyph[r]:sub(c, c) == "#" then
            for dy = 0, M.text_scale - 1 do
              for dx = 0, M.text_scale - 1 do
                set(x + (k - 1) * M.advance + (c - 1) * M.text_scale + dx, y + (r - 1) * M.text_scale + dy, -1)
              end
            end
          end
        end
      end
    end
  end
  local function width(s) return #s * M.advance - M.text_scale end
  if n == 0 then return ddpm.tensor.from(px, {1, 1, H, W}) end

  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    if v == v and v < math.huge and v > -math.huge then lo = math.min(lo, v); hi = math.max(hi, v) end
  end
  if lo > hi then lo, hi = 0, 1 end  -- nothing finite to plot
  local log = lo > 0 and hi / lo > 10
  local f = log and math.log or function(v) return v end
  local finv = log and math.exp or function(v) return v end
  local flo, fhi = f(lo), f(hi)
  if fhi - flo < 1e-12 then fhi = flo + 1 end

  -- y ticks at 0, 1/4, ..., 1 of the range; the left margin fits the widest label
  local ticks, widest = 4, 0
  local ylabels = {}
  for k = 0, ticks do
    ylabels[k] = M.label(tonumber(string.format("%.3g", finv(flo + (fhi - flo) * k / ticks))))
    widest = math.max(widest, width(ylabels[k]))
  end
  local left, right, top, bottom = pad + widest + 8, W - pad, pad, H - pad - M.text_height - 8
  -- the x axis runs from 0 to opts.x_last (default n); value i is drawn at i / n of it
  local x_last = opts.x_last or n

  for x = left, right do set(x, bottom, -1) end
  for y = top, bottom do set(left, y, -1) end
  for k = 0, ticks do
    local y = bottom - math.floor((bottom - top) * k / ticks + 0.5)
    for x = left - 4, left - 1 do set(x, y, -1) end
    text(ylabels[k], left - 6 - width(ylabels[k]), y - M.text_height // 2)
  end
  for k = 0, ticks do
    local x = left + math.floor((right - left) * k / ticks + 0.5)
    for y = bottom + 1, bottom + 4 do set(x, y, -1) end
    local s = M.label(math.floor(x_last * k / ticks + 0.5))
    local sx = math.max(1, math.min(W - width(s), x - width(s) // 2))
    text(s, sx, bottom + 6)
  end
  if log then text("log", right - width("log"), top) end

  local prevx, prevy
  for i, v in ipairs(values) do
    if v == v and v < math.huge and v > -math.huge then
      local x = left + math.floor(i / n * (right - left) + 0.5)
      local y = bottom - math.floor((f(v) - flo) / (fhi - flo) * (bottom - top) + 0.5)
      if prevx then
        local steps = math.max(math.abs(x - prevx), math.abs(y - prevy), 1)
        for s = 0, steps do
          set(prevx + math.floor((x - prevx) * s / steps + 0.5), prevy + math.floor((y - prevy) * s / steps + 0.5), -1)
        end
      end
      prevx, prevy = x, y
    end
  end
  return ddpm.tensor.from(px, {1, 1, H, W})
end

return M
