import Autograd
import CLua
import Datasets
import Foundation

/// `ddpm.data.*` (MNIST, Fashion-MNIST, any IDX pair, a folder of PNGs, augmentation) and the Dataset userdata.
enum DataTable {
    static let tables = [LuaTable(name: "data", functions: functions, classes: [datasetClass])]

    static func dataset(_ a: Arguments, _ i: Int32 = 1) throws -> ImageDataset {
        try a.object(i, Metatable.dataset, ImageDataset.self, "dataset")
    }

    /// Where the MNIST files are: `path=`, then $DDPM_DATA, then data/mnist.
    static func mnistFolder(_ explicit: String?) -> String {
        if let explicit { return explicit }
        if let env = ProcessInfo.processInfo.environment["DDPM_DATA"], !env.isEmpty { return env }
        return "data/mnist"
    }

    static func findFile(_ folder: String, _ base: String) -> String? {
        for name in [base, base + ".gz"] where FileManager.default.fileExists(atPath: "\(folder)/\(name)") {
            return "\(folder)/\(name)"
        }
        return nil
    }

    static func resize(_ o: Options) throws -> ImageDataset.Resize {
        let r = try o.string("resize") ?? "bilinear"
        guard let mode = ImageDataset.Resize(rawValue: r) else {
            throw ScriptError("option resize: \"bilinear\", \"pad\" or \"none\" expected, got \"\(r)\"")
        }
        return mode
    }

    /// Where the Fashion-MNIST files are: `path=`, then data/fashion-mnist (`scripts/setup.sh
    /// --dataset fashion` links it), then where Debian's dataset-fashion-mnist installs them.
    static let fashionFolders = ["data/fashion-mnist", "/usr/share/datasets/fashion-mnist"]

    /// A split of an MNIST-style IDX folder (train-* or t10k-* files, gzipped or not).
    static func idxSplit(_ a: Arguments, name: String, folders: (String?) -> [String], hint: String) throws -> Int {
        let o = try a.options(1)
        try o.rejectUnknown(["split", "size", "resize", "path"], what: name)
        let split = try o.string("split") ?? "train"
        guard split == "train" || split == "test" else {
            throw ScriptError("option split: \"train\" or \"test\" expected, got \"\(split)\"")
        }
        let prefix = split == "train" ? "train" : "t10k"
        let candidates = folders(try o.string("path"))
        for folder in candidates {
            guard let images = findFile(folder, "\(prefix)-images-idx3-ubyte"),
                  let labels = findFile(folder, "\(prefix)-labels-idx1-ubyte") else { continue }
            let ds = try ImageDataset(imagesPath: images, labelsPath: labels, size: try o.int("size") ?? 32,
                                      resize: try resize(o), generator: Generator(seed: Generator.global.next()))
            a.lua.pushObject(ds, metatable: Metatable.dataset)
            return 1
        }
        throw ScriptError("\(name) \(split) files not found in \(candidates.joined(separator: " or ")) (looked for "
                          + "\(prefix)-images-idx3-ubyte[.gz] and \(prefix)-labels-idx1-ubyte[.gz]); \(hint)")
    }

    static func push(_ a: Arguments, _ ds: ImageDataset) -> Int {
        a.lua.pushObject(ds, metatable: Metatable.dataset)
        return 1
    }

    static let functions: [(String, Binding)] = [
        ("mnist", { a in
            try idxSplit(a, name: "MNIST", folders: { [mnistFolder($0)] },
                         hint: "run scripts/setup.sh to fetch them, or pass path= / set DDPM_DATA")
        }),
        ("fashion", { a in
            try idxSplit(a, name: "Fashion-MNIST", folders: { $0.map { [$0] } ?? fashionFolders },
                         hint: "run scripts/setup.sh --dataset fashion (installs Debian's dataset-fashion-mnist), "
                               + "or pass path=")
        }),
        ("folder", { a in
            let o = try a.options(1)
            try o.rejectUnknown(["path", "size", "resize"], what: "folder")
            guard let path = try o.string("path") else {
                throw ScriptError("option path= (a folder with one subfolder of PNGs per class) is required")
            }
            return push(a, try ImageFolder.load(path, size: try o.int("size"), resize: try resize(o),
                                                generator: Generator(seed: Generator.global.next())))
        }),
        ("shift", { a in
            // random whole-pixel translations (augmentation), from the global generator
            TensorTable.push(a.lua, try Augment.shift(
                try a.tensor(1), maxShift: try a.int(2, default: 2), generator: &Generator.global))
            return 1
        }),
        ("idx", { a in
            let o = try a.options(1)
            try o.rejectUnknown(["images", "labels", "size", "resize"], what: "idx")
            guard let images = try o.string("images"), let labels = try o.string("labels") else {
                throw ScriptError("options images= and labels= (IDX file paths) are required")
            }
            let ds = try ImageDataset(imagesPath: images, labelsPath: labels, size: try o.int("size"),
                                      resize: try resize(o), generator: Generator(seed: Generator.global.next()))
            a.lua.pushObject(ds, metatable: Metatable.dataset)
            return 1
        }),
        ("from_tensor", { a in
            // images in memory (e.g. generated digits) as a dataset; labels one per image
            let x = try a.tensor(1)
            let labels = try a.integers(2, count: x.shape.first ?? 0, what: "labels")
            let ds = try ImageDataset(images: x, labels: labels, generator: Generator(seed: Generator.global.next()))
            a.lua.pushObject(ds, metatable: Metatable.dataset)
            return 1
        }),
        ("write_idx", { a in
            // {images_path=, labels_path=, pixels = bytes (count*rows*cols), rows=, cols=, labels = {...}}
            let o = try a.options(1)
            try o.rejectUnknown(["images_path", "labels_path", "pixels", "rows", "cols", "labels"], what: "write_idx")
            guard let images = try o.string("images_path"), let labels = try o.string("labels_path"),
                  let rows = try o.int("rows"), let cols = try o.int("cols") else {
                throw ScriptError("options images_path=, labels_path=, pixels=, rows=, cols= and labels= are required")
            }
            guard let index = o.index, a.lua.getField(index, "pixels") == LUA_TSTRING,
                  let pixels = a.lua.bytes(-1) else {
                if o.index != nil { a.lua.pop() }
                throw ScriptError("option pixels: a string of pixel bytes expected (ddpm.image.bytes)")
            }
            a.lua.pop()
            let count = try SampleTable.labelCount(o)
            guard let values = try o.integers("labels", count: count) else {
                throw ScriptError("option labels= is required")
            }
            try IDX.write(imagesPath: images, labelsPath: labels, pixels: pixels, rows: rows, cols: cols,
                          labels: values)
            return 0
        }),
    ]

    static let datasetClass = LuaClass(
        metatable: Metatable.dataset, display: "Dataset",
        methods: [
            ("batch", { a in
                let ds = try dataset(a)
                let (x, labels) = try ds.batch(try a.int(2))
                TensorTable.push(a.lua, x)
                a.lua.newTable(array: labels.count)
                for (i, l) in labels.enumerated() { a.lua.push(l); a.lua.setIndex(-2, i + 1) }
                return 2
            }),
            ("slice", { a in
                // images first..first+count-1 in file order (1-based, as get), for passes over a split
                let ds = try dataset(a)
                let first = try a.int(2), n = try a.int(3)
                guard first >= 1, n >= 1, first - 1 + n <= ds.count else {
                    throw ScriptError("slice \(first), \(n) out of range: the dataset has \(ds.count) images (1-based)")
                }
                let plane = ds.size * ds.size
                let x = Tensor(uninitialized: [n, 1, ds.size, ds.size])
                x.data.update(from: ds.images.data + (first - 1) * plane, count: n * plane)
                TensorTable.push(a.lua, x)
                a.lua.newTable(array: n)
                for i in 0..<n { a.lua.push(ds.labels[first - 1 + i]); a.lua.setIndex(-2, i + 1) }
                return 2
            }),
            ("class_name", { a in
                // the subfolder name of a label (folder datasets), else nil
                let ds = try dataset(a), label = try a.int(2)
                guard let names = ds.classNames, label >= 0, label < names.count, !names[label].isEmpty else {
                    a.lua.pushNil()
                    return 1
                }
                a.lua.push(names[label])
                return 1
            }),
            ("get", { a in
                let ds = try dataset(a)
                let i = try a.int(2)
                guard i >= 1 && i <= ds.count else { throw ScriptError("index \(i) out of range 1..\(ds.count)") }
                let plane = ds.size * ds.size
                let x = Tensor(uninitialized: [1, 1, ds.size, ds.size])
                x.data.update(from: ds.images.data + (i - 1) * plane, count: plane)
                TensorTable.push(a.lua, x)
                a.lua.push(ds.labels[i - 1])
                return 2
            }),
        ],
        metamethods: [
            ("__len", { a in a.lua.push(try dataset(a).count); return 1 }),
            ("__tostring", { a in
                let ds = try dataset(a)
                a.lua.push("ddpm.Dataset(\(ds.count) images, \(ds.size)x\(ds.size))")
                return 1
            }),
        ],
        getters: [
            "size": { a in a.lua.push(try dataset(a).size); return 1 },
            "epoch": { a in a.lua.push(try dataset(a).epoch); return 1 },
            "classes": { a in a.lua.push(try dataset(a).classes); return 1 },
        ])
}
