// swift-tools-version:6.0
// BertKit's fuzz targets: one libFuzzer binary over BertKit's parsers, built with
// `swift build --sanitize=fuzzer --sanitize=address` (see `make fuzz` and Tests/Fuzz/README.md). Its own
// package, so that the main build never links a binary whose `main` is libFuzzer's.
import PackageDescription

let package = Package(
    name: "BertKitFuzz",
    dependencies: [.package(name: "BertKit", path: "../..")],
    targets: [
        .executableTarget(
            name: "BertKitFuzz",
            dependencies: [
                .product(name: "Support", package: "BertKit"), .product(name: "WordPiece", package: "BertKit"),
                .product(name: "TextNormalization", package: "BertKit"), .product(name: "BertModel", package: "BertKit"),
                .product(name: "Checkpoints", package: "BertKit"), .product(name: "PretrainingData", package: "BertKit"),
                .product(name: "ClassificationData", package: "BertKit"), .product(name: "Training", package: "BertKit"),
                .product(name: "Pipeline", package: "BertKit"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
