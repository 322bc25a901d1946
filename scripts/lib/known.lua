-- Input images of inpainting and img2img (`ddpm inpaint`, `ddpm sample --init`, `ddpm gif --image`):
-- a grayscale PNG of the model's size or 28x28 (MNIST's), resized to the model's size as its
-- training data was (the weights' metadata `data` names the resize; bilinear by default), a
-- mask of the same size (white = keep, black = generate), and the final paste of the kept
-- pixels, exactly, at the input's own size.
local M = {}

--- The resize the weights' training data used: the last word of their metadata `data`
--- ("mnist train 32px bilinear"), else bilinear.
function M.resize_mode(meta)
  local mode = tostring(meta.data or ""):match("(%a+)%s*$")
  if mode == "bilinear" or mode == "pad" or mode == "none" then return mode end
  return "bilinear"
end

-- A grayscale PNG as (1, 1, H, W); an error names the option and the file.
local function load(option, path)
  local ok, x = pcall(ddpm.image.load, path, {grayscale = true})
  if not ok then error(option .. ": " .. tostring(x):gsub("^.-ddpm%.image%.load: ", ""), 0) end
  return x
end

--- The input image of option `option` (e.g. "--image") at `path` for a model of `size` pixels:
--- {x = (1, 1, H, W) as read, h =, w =, bytes = its pixels, image = (1, 1, size, size) as the
--- training data was resized, mode = the resize}.
function M.input(option, path, size, meta)
  local x = load(option, path)
  local h, w = x:size(3), x:size(4)
  if h ~= w or (h ~= 28 and h ~= size) then
    error(string.format("%s %s is %dx%d: expected a square grayscale digit of 28x28 (MNIST's size) or %dx%d "
                        .. "(the model's)", option, path, w, h, size, size), 0)
  end
  local mode = M.resize_mode(meta)
  local image = h == size and x or ddpm.image.resize(x, size, {resize = mode})
  return {x = x, h = h, w = w, bytes = ddpm.image.bytes(x), image = image, mode = mode, size = size}
end

--- The mask at `path` for `input` (M.input): {keep = a table, true where the input's pixel is kept
--- (mask >= 128), tensor = (1, 1, size, size) in [0, 1], the mask at the model's size}.
function M.mask(option, path, input)
  local m = load(option, path)
  if m:size(3) ~= input.h or m:size(4) ~= input.w then
    error(string.format("%s %s is %dx%d but the image is %dx%d: the mask must have the image's size", option, path,
                        m:size(4), m:size(3), input.w, input.h), 0)
  end
  local keep, values = {}, {}
  local bytes = ddpm.image.bytes(m)
  for i = 1, #bytes do
    keep[i] = bytes:byte(i) >= 128
    values[i] = keep[i] and 1 or -1
  end
  local full = ddpm.tensor.from(values, {1, 1, input.h, input.w})
  if input.h ~= input.size then full = ddpm.image.resize(full, input.size, {resize = input.mode}) end
  return {keep = keep, tensor = (full + 1) / 2}
end

--- x (n, 1, size, size) generated -> (n, 1, H, W) at the input's size (resized back, or the
--- padding cropped), with every kept pixel the input's own byte.
function M.paste(x, input, mask)
  local n, small = x:size(1), x
  if input.h ~= input.size then
    if input.mode == "pad" then
      local off = (input.size - input.h) // 2
      small = x:narrow(3, off + 1, input.h):narrow(4, off + 1, input.w)
    else
      small = ddpm.image.resize(x, input.h, {resize = input.mode})
    end
  end
  local gen, plane, values = ddpm.image.bytes(small), input.h * input.w, {}
  for i = 0, n - 1 do
    for p = 1, plane do
      local b = mask.keep[p] and input.bytes:byte(p) or gen:byte(i * plane + p)
      values[i * plane + p] = b / 127.5 - 1
    end
  end
  return ddpm.tensor.from(values, {n, 1, input.h, input.w})
end

--- `tensor` (1, C, H, W) repeated n times along the first dimension.
function M.repeated(tensor, n)
  local parts = {}
  for i = 1, n do parts[i] = tensor end
  return ddpm.tensor.cat(parts, 1)
end

return M
