// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: C libraries and CBF16 -> Autograd -> Layers -> Storage -> Evaluation /
// Diffusion; Autograd -> Imaging -> Datasets; Autograd -> Distributed (MPI, the only importer of
// CMPI); all of them -> Scripting (the Lua host, the only importer of CLua) -> ddpm and LuaModule.
// docs/architecture.md has a paragraph per target.
// The kernels are built for the machine that builds them (users build from source): Swift's
// SIMD types then lower to AVX2/AVX-512 instead of baseline SSE2. Release drops bounds checks in
// the kernel modules only; every check on user input is explicit code, not a trap.
// Debug builds optimise the kernel modules too: unoptimised SIMD code is ~50x slower, which
// made the test suite (debug) spend minutes in a few small training runs.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-march=native"]),
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]

/// Swift 6 language mode (strict concurrency checking) per target.
let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "ddpm-swift",
    products: [
        .executable(name: "ddpm", targets: ["ddpm"]),
        // the Lua C module: `require "ddpm"` from a stock lua5.4 (scripts/install.sh installs it as ddpm.so)
        .library(name: "DDPMLua", type: .dynamic, targets: ["LuaModule"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CGIF", pkgConfig: "libgif", providers: [.apt(["libgif-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // bfloat16 products: its AVX512-BF16 code is marked per function (target attributes) and
        // entered only when the CPU reports the instructions, so it builds for any x86_64 CPU.
        .target(name: "CBF16", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "Autograd", dependencies: ["COpenBLAS", "CBF16"], swiftSettings: kernelFlags + swift6),
        .target(name: "Layers", dependencies: ["Autograd"], swiftSettings: kernelFlags + swift6),
        .target(name: "Storage", dependencies: ["Autograd", "Layers"], swiftSettings: swift6),
        .target(name: "Evaluation", dependencies: ["Autograd", "Layers", "Storage"], swiftSettings: swift6),
        .target(name: "Diffusion", dependencies: ["Autograd", "Layers"], swiftSettings: swift6),
        .target(name: "Imaging", dependencies: ["Autograd", "CPNG", "CGIF", "CZlib"], swiftSettings: swift6),
        .target(name: "Datasets", dependencies: ["Autograd", "Imaging"], swiftSettings: swift6),
        .target(name: "Distributed", dependencies: ["CMPI", "Autograd"], swiftSettings: swift6),
        .target(
            name: "Scripting",
            dependencies: [
                "CLua", "Autograd", "Layers", "Storage", "Evaluation", "Diffusion", "Imaging", "Datasets",
                "Distributed",
            ],
            swiftSettings: swift6
        ),
        .target(name: "LuaModule", dependencies: ["Scripting"], swiftSettings: swift6),
        .executableTarget(
            name: "ddpm",
            dependencies: [
                "Autograd", "Layers", "Storage", "Evaluation", "Diffusion", "Distributed", "Scripting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swift6
        ),
        .target(
            name: "TestSupport", dependencies: ["Autograd", "Imaging", "Storage"], path: "Tests/TestSupport",
            swiftSettings: swift6
        ),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "CBF16"], swiftSettings: swift6),
        .testTarget(name: "LayersTests", dependencies: ["Autograd", "Layers", "TestSupport"], swiftSettings: swift6),
        .testTarget(
            name: "StorageTests", dependencies: ["Autograd", "Layers", "Storage", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "EvaluationTests", dependencies: ["Autograd", "Layers", "Storage", "Evaluation"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "DiffusionTests", dependencies: ["Autograd", "Layers", "Storage", "Diffusion", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(name: "ImagingTests", dependencies: ["Autograd", "Imaging", "TestSupport"], swiftSettings: swift6),
        .testTarget(
            name: "DatasetsTests", dependencies: ["Autograd", "Imaging", "Datasets", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "DistributedTests", dependencies: ["Autograd", "Distributed", "TestSupport"],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "ScriptingTests",
            dependencies: [
                "Autograd", "Layers", "Storage", "Diffusion", "Imaging", "Datasets", "Scripting", "TestSupport",
            ],
            swiftSettings: swift6
        ),
    ]
)
