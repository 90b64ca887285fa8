// swift-tools-version:6.0
// BertKit: a BERT-style pre-training pipeline with its data tooling.
// Module layering (lowest first) is docs/design.md's table; a module only imports modules above it.
import PackageDescription

/// Release builds are what we time; -Ounchecked is not used so that bounds checks stay on in the library.
let optimized: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "BertKit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bert", targets: ["BertCLI"]),
        .library(name: "Support", targets: ["Support"]),
        .library(name: "TextNormalization", targets: ["TextNormalization"]),
        .library(name: "WordPiece", targets: ["WordPiece"]),
        .library(name: "PretrainingData", targets: ["PretrainingData"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "BertModel", targets: ["BertModel"]),
        .library(name: "ClassificationData", targets: ["ClassificationData"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
        .library(name: "Inference", targets: ["Inference"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Pipeline", targets: ["Pipeline"]),
        .library(name: "DataParallel", targets: ["DataParallel"]),
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
        // OpenSSL's libcrypto: SHA-256 (checksums of vocabularies, shards, checkpoints' sources).
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),
        // Open MPI's headers and library (pkg-config ompi-c); only CMPIShim includes <mpi.h>.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // The C face of MPI that Swift calls: MPI's handles are macros over Open MPI's globals.
        .target(name: "CMPIShim", dependencies: ["CMPI"]),
        // The only code that includes oneDNN (Debian libdnnl-dev): bf16 matrix products on the CPU's bf16
        // units, a cached matmul per shape, single-threaded per call.
        .target(name: "CDNNLShim", linkerSettings: [.linkedLibrary("dnnl")]),
        // The foundation under every Swift module: byte sources and sinks (files, stdin, streaming zstd),
        // atomic files, SHA-256, the seeded generators, the one unchecked-Sendable wrapper.
        .target(name: "Support", dependencies: ["CZstd", "COpenSSL"], swiftSettings: optimized),
        .target(name: "TextNormalization", dependencies: ["CICUShim", "Support"], swiftSettings: optimized),
        .target(name: "WordPiece", dependencies: ["Support", "TextNormalization"], swiftSettings: optimized),
        // Fine-tuning data: classification files (TSV/CSV/JSONL/plain text), the split policy and label map, and
        // the tokenized example store.
        .target(name: "ClassificationData", dependencies: ["Support", "WordPiece"], swiftSettings: optimized),
        .target(name: "PretrainingData", dependencies: ["Support", "TextNormalization", "WordPiece", "ClassificationData", "CZstd"], swiftSettings: optimized),
        // Optimised in debug builds too: the SIMD kernels are ~20x slower unoptimised, which would make
        // the model's numerical tests slow.
        .target(name: "Kernels", dependencies: ["Support", "CBLAS", "CDNNLShim"], swiftSettings: optimized + [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(name: "BertModel", dependencies: ["Support", "Kernels"], swiftSettings: optimized),
        // Model directories as transformers reads and writes them: the safetensors format, config and vocabulary,
        // the weights of a BertKit checkpoint, a public BERT or an ELECTRA pair loaded into a model's layout.
        .target(name: "Checkpoints", dependencies: ["Support", "BertModel", "WordPiece"], swiftSettings: optimized),
        // Using a trained model: a classifier loaded with its tokenizer, predictions and their metrics, and the
        // MLM/NSP (or ELECTRA) evaluation of a pre-trained one on shards.
        .target(name: "Inference", dependencies: ["Support", "BertModel", "Checkpoints", "ClassificationData", "PretrainingData", "TextNormalization", "WordPiece"], swiftSettings: optimized),
        .target(name: "Training", dependencies: ["Support", "BertModel", "Kernels", "Checkpoints", "Inference", "PretrainingData", "ClassificationData", "TextNormalization", "WordPiece"], swiftSettings: optimized),
        // Data-parallel training across processes: the MPI ProcessGroup (used only under mpirun).
        .target(name: "DataParallel", dependencies: ["CMPIShim", "Support"], swiftSettings: optimized),
        // The `bert run` engine: pipeline files, stages and stamps, the report with the gains.
        .target(name: "Pipeline", dependencies: ["Support"], swiftSettings: optimized),
        .executableTarget(
            name: "BertCLI",
            dependencies: [
                "Support", "TextNormalization", "WordPiece", "ClassificationData", "PretrainingData", "Kernels", "BertModel", "Checkpoints", "Inference", "Training", "Pipeline",
                "DataParallel", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimized
        ),
        .target(name: "TestSupport", dependencies: ["Support"], path: "Tests/TestSupport"),
        .target(name: "ModelTestSupport", dependencies: ["BertModel", "Kernels", "TestSupport"], path: "Tests/ModelTestSupport"),
        .testTarget(name: "SupportTests", dependencies: ["Support", "TestSupport"]),
        .testTarget(name: "TextNormalizationTests", dependencies: ["TextNormalization", "TestSupport"]),
        .testTarget(name: "WordPieceTests", dependencies: ["WordPiece", "TestSupport"]),
        .testTarget(name: "ClassificationDataTests", dependencies: ["ClassificationData", "Support", "WordPiece", "TestSupport"]),
        .testTarget(name: "PretrainingDataTests", dependencies: ["PretrainingData", "ClassificationData", "Support", "CZstd", "TestSupport"]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "Support", "CBLAS", "CDNNLShim", "TestSupport"]),
        .testTarget(name: "BertModelTests", dependencies: ["BertModel", "Kernels", "Checkpoints", "TestSupport", "ModelTestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "BertModel", "Support", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Checkpoints", "Inference", "Support", "BertModel", "Kernels", "PretrainingData", "TestSupport", "ModelTestSupport"]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "TestSupport"]),
        .testTarget(name: "DataParallelTests", dependencies: ["DataParallel", "Support", "TestSupport"]),
        .testTarget(name: "BertCLITests", dependencies: ["TestSupport", "Kernels", "Checkpoints", "Training"]),
    ]
)
