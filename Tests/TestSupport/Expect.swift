import XCTest

/// Typed-error expectations shared by the test targets.
public enum Expect {
    /// Asserts that `body` throws an error of type `E` and hands it to `check`.
    public static func error<E: Error>(_ type: E.Type, file: StaticString = #filePath, line: UInt = #line,
                                       _ body: () throws -> Any, check: (E) -> Void = { _ in }) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let e = error as? E else { return XCTFail("not a \(E.self): \(error)", file: file, line: line) }
            check(e)
        }
    }

    /// Asserts that `body` throws exactly `expected`.
    public static func error<E: Error & Equatable>(_ expected: E, file: StaticString = #filePath, line: UInt = #line,
                                                   _ body: () throws -> Any) {
        error(E.self, file: file, line: line, body) { XCTAssertEqual($0, expected, file: file, line: line) }
    }
}
