import Foundation
import TestSupport
import XCTest

@testable import PretrainingData

/// `bert shards --part K/N`: which inputs a part takes, its seed, and what "K/N" may be.
final class ShardPartTests: XCTestCase {
    func testPartsAreDisjointCoverTheInputsAndKeepTheirOrder() throws {
        let inputs = (0..<7).map { "f\($0).txt" }
        let parts = try (1...3).map { try ShardPart(index: $0, count: 3).inputs(of: inputs) }
        XCTAssertEqual(parts, [["f0.txt", "f3.txt", "f6.txt"], ["f1.txt", "f4.txt"], ["f2.txt", "f5.txt"]])
        XCTAssertEqual(Set(parts.joined()), Set(inputs))
        XCTAssertEqual(parts.joined().count, inputs.count)
        XCTAssertEqual(try ShardPart(index: 1, count: 1).inputs(of: inputs), inputs, "1/1 is the whole build")
        Expect.error(ShardError.self, { try ShardPart(index: 3, count: 3).inputs(of: ["a", "b"]) }) {
            XCTAssertTrue($0.description.contains("2 input file(s) for 3 parts"), $0.description)
        }
    }

    func testEachPartHasItsOwnStableSeed() throws {
        let seeds = try (1...4).map { try ShardPart(index: $0, count: 4).seed(base: 12345) }
        XCTAssertEqual(Set(seeds).count, 4)
        XCTAssertEqual(seeds, try (1...4).map { try ShardPart(index: $0, count: 4).seed(base: 12345) })
        XCTAssertNotEqual(try ShardPart(index: 1, count: 4).seed(base: 12345), try ShardPart(index: 1, count: 2).seed(base: 12345))
        XCTAssertNotEqual(try ShardPart(index: 1, count: 4).seed(base: 12345), try ShardPart(index: 1, count: 4).seed(base: 12346))
    }

    func testParsing() throws {
        XCTAssertEqual(try ShardPart(parsing: "2/8"), try ShardPart(index: 2, count: 8))
        XCTAssertEqual(try ShardPart(parsing: "2/8").description, "2/8")
        for bad in ["0/2", "3/2", "2", "a/b", "1/0", "1/2/3", "/2"] {
            Expect.error(ShardError.self, { try ShardPart(parsing: bad) }) { XCTAssertTrue("\($0)".contains(bad) || "\($0)".contains("1…N"), "\($0)") }
        }
    }
}
