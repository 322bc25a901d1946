import Autograd
import Foundation
import Imaging

/// A folder of grayscale PNGs with one subfolder per class, read into an `ImageDataset`.
///
/// Labels: when every subfolder name is a decimal number ("0".."9"), the number is the label
/// (so "7" is label 7 whichever others exist); otherwise the names sorted by their UTF-8 bytes
/// get labels 0..K-1. Images are taken class by class, each class's files sorted by name.
/// Hidden entries (names starting with ".") are skipped; other files at the top are ignored
/// (a README); inside a class folder everything else must be a `.png` file.
///
/// Refused before training, each with the file or folder named: no class folders, PNGs at the
/// top, an empty class folder, a file that is not a PNG or a folder inside a class, a colour,
/// palette, alpha or 16-bit PNG (what it is), images of different sizes.
public enum ImageFolder {
    /// Largest numeric class name (the model's label embedding has at most this many rows).
    public static let maxLabel = 99_999

    /// The folder's classes: (subfolder name, label), in the order their images are read.
    public static func classes(_ path: String) throws -> [(name: String, label: Int)] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw TensorError("folder dataset \(path): no such folder")
        }
        guard isFolder.boolValue else { throw TensorError("folder dataset \(path): not a folder") }
        var names: [String] = []
        for entry in try list(path) {
            let full = "\(path)/\(entry)"
            if isDirectory(full) {
                names.append(entry)
            } else if entry.lowercased().hasSuffix(".png") {
                throw TensorError("folder dataset \(path): \(entry) is a PNG at the top; put the images in one "
                                  + "subfolder per class (\(path)/<class>/\(entry))")
            }
        }
        guard !names.isEmpty else {
            throw TensorError("folder dataset \(path): no class subfolders (put the PNGs of each class in a subfolder "
                              + "named after it, e.g. \(path)/0/, \(path)/1/, ...)")
        }
        let numeric = names.allSatisfy { n in n.utf8.count <= 9 && n.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }
        guard numeric else { return names.enumerated().map { ($0.element, $0.offset) } }
        var seen: [Int: String] = [:]
        var out: [(name: String, label: Int)] = []
        for name in names {
            guard let label = Int(name), label <= maxLabel else {
                throw TensorError("folder dataset \(path): class \(name) is beyond the largest label \(maxLabel)")
            }
            if let other = seen[label] {
                throw TensorError("folder dataset \(path): class folders \(other) and \(name) both name label \(label)")
            }
            seen[label] = name
            out.append((name, label))
        }
        return out.sorted { $0.label < $1.label }
    }

    /// The dataset of the folder at `path`, its images resized as `ImageDataset` resizes them.
    public static func load(_ path: String, size: Int? = nil, resize: ImageDataset.Resize = .bilinear,
                            generator: Generator) throws -> ImageDataset {
        let classList = try classes(path)
        var files: [(path: String, label: Int)] = []
        for (name, label) in classList {
            let folder = "\(path)/\(name)"
            var pngs: [String] = []
            for entry in try list(folder) {
                let full = "\(folder)/\(entry)"
                guard !isDirectory(full) else {
                    throw TensorError("folder dataset \(path): \(name)/\(entry) is a folder inside a class folder "
                                      + "(a class folder holds only its PNGs)")
                }
                guard entry.lowercased().hasSuffix(".png") else {
                    throw TensorError("folder dataset \(path): \(name)/\(entry) is not a .png file "
                                      + "(a class folder holds only PNGs; hidden files are skipped)")
                }
                pngs.append(full)
            }
            guard !pngs.isEmpty else {
                throw TensorError("folder dataset \(path): class folder \(name) is empty (no .png files)")
            }
            files += pngs.map { ($0, label) }
        }
        var pixels: [UInt8] = []
        var first: (path: String, width: Int, height: Int)?
        for (file, _) in files {
            let image: (width: Int, height: Int, gray: [UInt8])
            do { image = try PNG.readGrayscale(file) } catch let e as ImageError { throw TensorError(e.message) }
            if let first {
                guard image.width == first.width, image.height == first.height else {
                    throw TensorError("folder dataset \(path): mixed image sizes: \(file) is "
                                      + "\(image.width)x\(image.height) but \(first.path) is "
                                      + "\(first.width)x\(first.height) (all images must have one size)")
                }
            } else {
                first = (file, image.width, image.height)
                try ImageDataset.reserve(count: files.count, height: image.height, width: image.width, size: size,
                                         resize: resize, what: path)
                pixels.reserveCapacity(files.count * image.width * image.height)
            }
            pixels += image.gray
        }
        guard let first else { throw TensorError("folder dataset \(path): no images") }
        var names = [String](repeating: "", count: (classList.map(\.label).max() ?? -1) + 1)
        for (name, label) in classList { names[label] = name }
        return try ImageDataset(pixels: pixels, count: files.count, height: first.height, width: first.width,
                                labels: files.map(\.label), classNames: names, size: size, resize: resize,
                                generator: generator)
    }

    /// The visible entries of a folder, sorted by their UTF-8 bytes.
    static func list(_ folder: String) throws -> [String] {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: folder)
        } catch {
            throw TensorError("folder dataset: cannot list \(folder)")
        }
        return entries.filter { !$0.hasPrefix(".") }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    static func isDirectory(_ path: String) -> Bool {
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
    }
}
