import BertModel
import Foundation
import ModelTestSupport
import TestSupport
import XCTest

@testable import Training
import Checkpoints

final class CheckpointTests: XCTestCase {
    static func tinyModel() throws -> BertForPreTraining {
        let config = microConfig(vocabSize: 29, maxPositions: 9, dropout: 0.1)
        let m = try BertForPreTraining(config: config, maxBatch: 2, maxSeqLength: 9, maxMaskedPositions: 4, threads: 1)
        m.initialize(seed: 5)
        return m
    }

    static func state(step: Int) -> TrainingState {
        TrainingState(step: step, completedEpochs: 0, position: .init(epoch: 0, instancesConsumed: step * 2),
                      schedule: LinearSchedule(base: 1e-3, warmupSteps: 1, totalSteps: 10), learningRate: 1e-3, seed: 1,
                      batchSize: 2, accumulate: 1, epochs: 1, shardsIndexSHA256: String(repeating: "a", count: 64), adam: .init())
    }

    /// `--keep-last N`: the newest N step checkpoints stay, and neither an epoch checkpoint nor
    /// `latest`'s target is ever removed, however old.
    func testPruneKeepsTheNewestStepsEpochsAndLatest() throws {
        let run = Fixtures.temporaryDirectory().path
        defer { try? FileManager.default.removeItem(atPath: run) }
        let names = ["step-00000010", "step-00000020", "step-00000030", "step-00000100", "step-00000200", "epoch-0001", "epoch-0002",
                     ".step-00000300.tmp-1", "metrics.jsonl"]
        for n in names { try FileManager.default.createDirectory(atPath: run + "/" + n, withIntermediateDirectories: true) }
        try FileManager.default.createSymbolicLink(atPath: run + "/latest", withDestinationPath: "step-00000020")
        try Checkpoint.pruneStepCheckpoints(runDirectory: run, keeping: 2)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: run)),
                       ["step-00000020", "step-00000100", "step-00000200", "epoch-0001", "epoch-0002", ".step-00000300.tmp-1",
                        "metrics.jsonl", "latest"])
        try Checkpoint.pruneStepCheckpoints(runDirectory: run, keeping: 1)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: run).filter { $0.hasPrefix("step-") }),
                       ["step-00000020", "step-00000200"])
    }

    func testFailureWhileCheckpointingKeepsThePreviousOne() throws {
        let run = Fixtures.temporaryDirectory().path
        let m = try Self.tinyModel()
        let adam = AdamW(count: m.layout.count, decayRanges: [])
        try Checkpoint.write(runDirectory: run, name: "epoch-0001", config: m.config, vocabulary: Data("v\n".utf8), layout: m.layout,
                             parameters: UnsafeBufferPointer(m.parameters), optimizer: adam, state: Self.state(step: 3))
        let before = Array(m.parameters)
        m.parameters[0] += 1  // the model moves on
        struct DiskFull: Error {}
        for failingFile in [Checkpoint.modelFile, Checkpoint.optimizerFile, Checkpoint.stateFile] {
            XCTAssertThrowsError(try Checkpoint.write(
                runDirectory: run, name: "step-00000007", config: m.config, vocabulary: Data("v\n".utf8), layout: m.layout,
                parameters: UnsafeBufferPointer(m.parameters), optimizer: adam, state: Self.state(step: 7),
                afterFile: { if $0 == failingFile { throw DiskFull() } }))
            let latest = try XCTUnwrap(Checkpoint.latest(runDirectory: run))
            XCTAssertEqual((latest as NSString).lastPathComponent, "epoch-0001", failingFile)
            XCTAssertEqual(try Checkpoint.readState(latest).step, 3)
            let names = try FileManager.default.contentsOfDirectory(atPath: run)
            XCTAssertFalse(names.contains { $0.hasPrefix(".tmp-") || $0.hasPrefix("step-") }, "\(names)")
        }
        // The previous checkpoint still loads, with the old values.
        let again = try Self.tinyModel()
        try Checkpoint.loadParameters(from: SafetensorsFile(path: run + "/epoch-0001/model.safetensors"), layout: again.layout,
                                      into: again.parameters)
        XCTAssertEqual(Array(again.parameters), before)
        // Tied copies are in the file for loaders that do not tie weights.
        let file = try SafetensorsFile(path: run + "/epoch-0001/model.safetensors")
        XCTAssertEqual(try file.floats("cls.predictions.decoder.weight"), try file.floats("bert.embeddings.word_embeddings.weight"))
        XCTAssertEqual(try file.floats("cls.predictions.decoder.bias"), try file.floats("cls.predictions.bias"))
    }

    func testLoadRefusesMissingAndMisshapenTensors() throws {
        let m = try Self.tinyModel()
        let dir = Fixtures.temporaryDirectory().path
        var tensors = Checkpoint.modelTensors(layout: m.layout, parameters: UnsafeBufferPointer(m.parameters))
        tensors.removeAll { $0.name == "bert.pooler.dense.bias" }
        try SafetensorsWriter.write(tensors, to: dir + "/missing.safetensors")
        XCTAssertThrowsError(try Checkpoint.loadParameters(from: SafetensorsFile(path: dir + "/missing.safetensors"), layout: m.layout,
                                                           into: m.parameters)) { e in
            XCTAssertTrue("\(e)".contains("bert.pooler.dense.bias") && "\(e)".contains("missing.safetensors"), "\(e)")
        }
        // Names without the "bert." prefix (as saved from BertModel) are accepted.
        let unprefixed = Checkpoint.modelTensors(layout: m.layout, parameters: UnsafeBufferPointer(m.parameters)).map { t -> SafetensorsTensor in
            var t = t
            if t.name.hasPrefix("bert.") { t.name = String(t.name.dropFirst(5)) }
            return t
        }
        try SafetensorsWriter.write(unprefixed, to: dir + "/plain.safetensors")
        let other = try Self.tinyModel()
        for i in 0..<other.layout.count { other.parameters[i] = 0 }
        try Checkpoint.loadParameters(from: SafetensorsFile(path: dir + "/plain.safetensors"), layout: other.layout, into: other.parameters)
        XCTAssertEqual(Array(other.parameters), Array(m.parameters))
    }
}
