import Datasets
import Foundation
import Storage
import TestSupport
import XCTest

/// Training on the data a config's train.data names (lib/datasets.lua): a folder of PNGs and an
/// IDX pair through train.lua, bad data refused before the first step, Fashion-MNIST's Debian files.
final class TrainDataTests: XCTestCase {
    /// A config of an 8x8 model trained on `data` (a Lua table constructor), batch 4.
    func config(_ dir: String, data: String, classes: Int = 10, extra: String = "") throws -> String {
        let path = "\(dir)/config-\(UUID().uuidString.prefix(8)).lua"
        try """
            return {model = {base = 8, levels = 1, time_dim = 8, attention = {false}, attention_mid = false,
                             image_size = 8, classes = \(classes)},
                    schedule = {kind = "linear", steps = 50},
                    train = {batch = 4, lr = 1e-3, steps = 2, data = \(data)\(extra)}}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A folder dataset: `classes` subfolders of two 6x6 grayscale PNGs each.
    func folder(_ dir: String, classes: [String]) throws -> String {
        let root = "\(dir)/pngs"
        for (i, name) in classes.enumerated() {
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
            for k in 0..<2 {
                try TestPNG.writeGray("\(root)/\(name)/\(k).png", width: 6, height: 6, value: UInt8(40 * i + 100 * k))
            }
        }
        return root
    }

    func train(_ config: String, _ out: String, _ more: [String] = []) throws -> ProcessResult {
        try runDDPM(["run", scriptsDir + "/train.lua", "--config", config, "--out", out, "--quiet"] + more)
    }

    /// A folder of a few tiny PNGs and an IDX pair each train through train.lua; the weights
    /// record the data. --data replaces the folder.
    func testFolderAndIDXDatasetsTrainThroughTrainLua() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let root = try folder(dir, classes: ["circle", "square", "star"])
        var r = try train(try config(dir, data: "{kind = 'folder', path = '\(root)'}", classes: 3), "\(dir)/run")
        XCTAssertEqual(r.status, 0, r.stderr)
        let meta = try SafeTensors.inspect("\(dir)/run/model.safetensors").metadata
        XCTAssertEqual(meta["steps"], "2")
        XCTAssertEqual(meta["data"], "folder \(root) 8px bilinear")
        let csv = try String(contentsOfFile: "\(dir)/run/loss.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 3, "header + 2 steps")

        // the same config with --data naming another folder
        let other = "\(dir)/other"
        try FileManager.default.moveItem(atPath: root, toPath: other)
        r = try train(try config(dir, data: "{kind = 'folder', path = '\(root)'}", classes: 3), "\(dir)/run2",
                      ["--data", other])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try SafeTensors.inspect("\(dir)/run2/model.safetensors").metadata["data"],
                       "folder \(other) 8px bilinear")

        let images = "\(dir)/images.idx", labels = "\(dir)/labels.idx"
        try IDX.write(imagesPath: images, labelsPath: labels, pixels: (0..<5 * 28 * 28).map { UInt8($0 % 251) },
                      rows: 28, cols: 28, labels: [0, 1, 2, 3, 4])
        let idx = try config(dir, data: "{kind = 'idx', images = '\(images)', labels = '\(labels)'}")
        r = try train(idx, "\(dir)/run3", ["--steps", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(try SafeTensors.inspect("\(dir)/run3/model.safetensors").metadata["data"],
                       "idx \(images) + \(labels) 8px bilinear")
    }

    /// Bad data and bad train.data tables are errors before the first step, with what is wrong.
    func testBadDataIsAnErrorBeforeTraining() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let root = try folder(dir, classes: ["0", "1", "12"])
        func fails(_ data: String, classes: Int = 10, extra: String = "", _ more: [String] = [], with text: String,
                   line: UInt = #line) throws {
            let out = "\(dir)/run-\(UUID().uuidString.prefix(8))"
            let r = try train(try config(dir, data: data, classes: classes, extra: extra), out, more)
            XCTAssertEqual(r.status, 1, r.stderr, line: line)
            XCTAssert(r.stderr.contains(text), "\"\(r.stderr)\" lacks \"\(text)\"", line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(out)/loss.csv"), "no step was run", line: line)
        }
        // folder "12" is label 12: beyond a 10-class model
        try fails("{kind = 'folder', path = '\(root)'}",
                  with: "folder \(root) has label 12 (class folder 12), but the model has classes = 10 (labels 0..9); "
                        + "set model.classes = 13 in the config")
        try fails("{kind = 'folder', path = '\(root)'}", classes: 13, extra: ", eval_every = 1",
                  with: "train.eval_every: the quality probe judges MNIST digits; leave it out to train on "
                        + "folder \(root)")
        let rgba = "\(root)/1/rgba.png"
        try TestPNG.write(rgba, width: 1, height: 1, colorType: TestPNG.rgba, rows: [[1, 2, 3, 4]])
        try fails("{kind = 'folder', path = '\(root)'}", classes: 13,
                  with: "ddpm.data.folder: \(rgba): an RGBA PNG (colour with alpha); expected 8-bit grayscale "
                        + "without alpha")
        try FileManager.default.removeItem(atPath: rgba)
        try FileManager.default.createDirectory(atPath: "\(root)/5", withIntermediateDirectories: true)
        try fails("{kind = 'folder', path = '\(root)'}", classes: 13, with: "class folder 5 is empty (no .png files)")
        try fails("{kind = 'folder'}", with: "train.data of kind folder needs path=")
        try fails("{kind = 'folder', path = '\(root)', images = 'x'}",
                  with: "unknown train.data field(s) images for kind folder (known: kind, path)")
        try fails("{kind = 'cifar'}", with: "train.data.kind must be one of fashion, folder, idx, mnist, got cifar")
        try fails("{kind = 'idx', images = 'a', labels = 'b'}", ["--data", dir],
                  with: "--data names a folder; train.data of kind idx takes its files from images= and labels=")
    }

    /// The Fashion-MNIST loader reads the files of Debian's dataset-fashion-mnist (skipped when
    /// they are not installed: scripts/setup.sh --dataset fashion installs them), and the
    /// bundled configs/fashion.lua names them.
    func testFashionMNISTLoaderReadsTheDebianFiles() throws {
        let folder = "/usr/share/datasets/fashion-mnist"
        guard FileManager.default.fileExists(atPath: "\(folder)/t10k-labels-idx1-ubyte.gz") else {
            throw XCTSkip("Fashion-MNIST not installed in \(folder) (scripts/setup.sh --dataset fashion)")
        }
        let expected = try IDX.read("\(folder)/t10k-labels-idx1-ubyte.gz").bytes.prefix(5).map(Int.init)
        let host = try runLua("""
            local ds = ddpm.data.fashion{split = 'test', path = '\(folder)'}
            count, size, classes = #ds, ds.size, ds.classes
            local x, labels = ds:slice(1, 5)
            first = table.concat(labels, ',')
            lo, hi = x:min():item(), x:max():item()
            local cfg = require('lib.common').load_config('fashion')
            kind = cfg.train.data.kind
            """)
        XCTAssertEqual(host.global("count") as? Double, 10000)
        XCTAssertEqual(host.global("size") as? Double, 32)
        XCTAssertEqual(host.global("classes") as? Double, 10)
        XCTAssertEqual(host.global("first") as? String, expected.map(String.init).joined(separator: ","))
        XCTAssertEqual(host.global("lo") as? Double, -1)
        XCTAssertEqual(try XCTUnwrap(host.global("hi") as? Double), 1, accuracy: 0.01)
        XCTAssertEqual(host.global("kind") as? String, "fashion")
    }
}
