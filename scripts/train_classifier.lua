-- The evaluation classifier: a small CNN (5 convs, 2 linear layers, ReLU) trained with
-- cross-entropy (and random shifts) on MNIST at the generator's resolution (32x32, bilinear, [-1, 1]), so it sees
-- real and generated digits the same way. `ddpm eval` uses its accuracy on generated digits and
-- its 128-d features for the Fréchet distance and diversity.
--   ddpm run scripts/train_classifier.lua --out weights/mnist-classifier.safetensors
--   ddpm run scripts/train_classifier.lua --data out/synthetic --out runs/synthetic-clf.safetensors
-- --data is the training set's folder (e.g. digits from `ddpm sample --format idx`); the test set is
-- always real MNIST (--test-data, else $DDPM_DATA, else data/mnist).
local args = require("lib.args")
local evaluation = require("lib.evaluation")

local opts = args.parse(arg, {out = "weights/mnist-classifier.safetensors", epochs = 5, batch = 128, lr = 1e-3,
                              seed = 0, data = "", test_data = "", width = 32, features = 128, shift = 2}, {
  usage = "ddpm run scripts/train_classifier.lua [options]",
  summary = "Trains the evaluation classifier (a small CNN) on MNIST-style digits and reports its test accuracy.",
  out = "weights file to write",
  epochs = "passes over the training set",
  batch = "batch size",
  lr = "peak learning rate (cosine decay to 0)",
  seed = "random seed",
  data = "training set folder (none: $DDPM_DATA, then data/mnist)",
  test_data = "test set folder, real MNIST (none: $DDPM_DATA, then data/mnist)",
  width = "channels of the first convolution",
  features = "size of the feature layer (the Frechet distance's space)",
  shift = "random shifts of up to this many pixels (augmentation)",
})
args.at_least(opts, "epochs", 1)
args.at_least(opts, "batch", 1)
ddpm.seed(opts.seed)
local train = ddpm.data.mnist{split = "train", size = 32, path = opts.data ~= "" and opts.data or nil}
local test = ddpm.data.mnist{split = "test", size = 32, path = opts.test_data ~= "" and opts.test_data or nil}
local clf = ddpm.classifier{width = opts.width, features = opts.features, image_size = 32}
local steps = math.ceil(#train / opts.batch) * opts.epochs
print(string.format("classifier: %d parameters, %d steps (%d epochs of %d images, batch %d)",
                    clf:num_parameters(), steps, opts.epochs, #train, opts.batch))
local seconds = evaluation.train_classifier(clf, train, {steps = steps, batch = opts.batch, lr = opts.lr,
                                                        shift = opts.shift})

local accuracy, per_class = evaluation.accuracy(clf, test)
local parts = {}
for c = 0, 9 do parts[#parts + 1] = string.format("%d: %.2f%%", c, 100 * per_class[c]) end
print(string.format("test accuracy %.2f%% (10000 images); per class %s", 100 * accuracy, table.concat(parts, ", ")))
clf:save(opts.out, {kind = "classifier", test_accuracy = string.format("%.4f", accuracy), steps = steps,
                    epochs = opts.epochs, batch = opts.batch, lr = opts.lr, seed = opts.seed, shift = opts.shift,
                    data = (opts.data ~= "" and opts.data or "mnist") .. " train 32px bilinear",
                    recipe = "scripts/train_classifier.lua",
                    seconds = string.format("%.0f", seconds)})
print(string.format("wrote %s in %.0f s of training", opts.out, seconds))
