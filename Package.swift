// swift-tools-version:6.0
// BertKit: a BERT-style pre-training pipeline with its data tooling.
// Module layering (lowest first) follows DESIGN.md; a module only imports modules above it.
import PackageDescription

/// Release builds are what we time; -Ounchecked is not used so that bounds checks stay on in the library.
let optimized: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "BertKit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bert", targets: ["BertCLI"]),
        .library(name: "TextNormalization", targets: ["TextNormalization"]),
        .library(name: "WordPiece", targets: ["WordPiece"]),
        .library(name: "PretrainingData", targets: ["PretrainingData"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "BertModel", targets: ["BertModel"]),
        .library(name: "Training", targets: ["Training"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The only code that includes <unicode/*.h>: ICU's C names are versioned by macros.
        .target(
            name: "CICUShim",
            linkerSettings: [.linkedLibrary("icuuc"), .linkedLibrary("icui18n"), .linkedLibrary("icudata")]
        ),
        // SHA-256 blocks with the x86 SHA extensions (Swift cannot emit those instructions).
        .target(name: "CSHA256", cSettings: [.unsafeFlags(["-O2"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),
        .target(name: "TextNormalization", dependencies: ["CICUShim"], swiftSettings: optimized),
        .target(name: "WordPiece", dependencies: ["TextNormalization"], swiftSettings: optimized),
        .target(name: "PretrainingData", dependencies: ["WordPiece", "CZstd", "CICUShim", "CSHA256"], swiftSettings: optimized),
        // Optimised in debug builds too: the SIMD kernels are ~20x slower unoptimised, which would make
        // the model's numerical tests slow.
        .target(name: "Kernels", dependencies: ["CBLAS"], swiftSettings: optimized + [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(name: "BertModel", dependencies: ["Kernels"], swiftSettings: optimized),
        .target(name: "Training", dependencies: ["BertModel", "Kernels", "PretrainingData", "WordPiece"], swiftSettings: optimized),
        .executableTarget(
            name: "BertCLI",
            dependencies: [
                "TextNormalization", "WordPiece", "PretrainingData", "CBLAS", "Kernels", "BertModel", "Training",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimized
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TextNormalizationTests", dependencies: ["TextNormalization", "TestSupport"]),
        .testTarget(name: "WordPieceTests", dependencies: ["WordPiece", "TestSupport"]),
        .testTarget(name: "PretrainingDataTests", dependencies: ["PretrainingData", "CZstd", "TestSupport"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CBLAS", "TestSupport"]),
        .testTarget(name: "BertModelTests", dependencies: ["BertModel", "Kernels", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "BertModel", "Kernels", "PretrainingData", "TestSupport"]),
        .testTarget(name: "BertCLITests", dependencies: ["TestSupport"]),
    ]
)
