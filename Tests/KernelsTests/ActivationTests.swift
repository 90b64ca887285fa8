import Kernels
import TestSupport
import XCTest

final class ActivationTests: XCTestCase {
    func testNaiveBackwardMatchesFiniteDifferences() {
        var rng = SeededRandom(seed: 21)
        // Away from ReLU's kink at 0, where the derivative is not defined.
        var x = Numerics.uniform(23, scale: 4, &rng).map { abs($0) < 0.01 ? $0 + 0.05 : $0 }
        let r = Numerics.uniform(23, &rng)
        for kind in Activation.allCases {
            var dx = [Double](repeating: 0, count: x.count)
            Naive.activationBackward(kind, dinp: &dx, dout: r, inp: x)
            let fd = Numerics.gradient(of: { Numerics.dot(r, Naive.activationForward(kind, inp: $0)) }, at: &x)
            XCTAssertLessThan(Numerics.maxError(dx, fd), fdTolerance, "\(kind)")
        }
        let y = Naive.tanhForward(inp: x)
        var dx = [Double](repeating: 0, count: x.count)
        Naive.tanhBackward(dinp: &dx, dout: r, out: y)
        XCTAssertLessThan(Numerics.maxError(dx, Numerics.gradient(of: { Numerics.dot(r, Naive.tanhForward(inp: $0)) }, at: &x)), fdTolerance)
    }

    /// Hugging Face's formulas at ±1 (values computed with Python's math.erf and math.tanh).
    func testPinnedValues() {
        XCTAssertEqual(Naive.activationForward(.gelu, inp: [1.0, -1.0]), [0.8413447460685429, -0.15865525393145707])
        let tanhGelu = Naive.activationForward(.geluTanh, inp: [1.0, -1.0])
        XCTAssertEqual(tanhGelu[0], 0.8411919906082768, accuracy: 1e-15)
        XCTAssertEqual(tanhGelu[1], -0.15880800939172324, accuracy: 1e-15)
        XCTAssertEqual(Activation(huggingFaceName: "gelu"), .gelu)
        XCTAssertEqual(Activation(huggingFaceName: "gelu_new"), .geluTanh)
        XCTAssertEqual(Activation(huggingFaceName: "gelu_pytorch_tanh"), .geluTanh)
        XCTAssertNil(Activation(huggingFaceName: "silu"))
    }

    func testFastMatchesNaive() {
        var rng = SeededRandom(seed: 22)
        for count in [7, 1003, 5003] {
            var x = Numerics.uniform(count, scale: 6, &rng).float.double
            x[0] = 0; x[1] = 30; x[2] = -30; x[3] = 1e-20
            let dy = Numerics.uniform(count, &rng).float.double, dx0 = Numerics.uniform(count, &rng).float.double
            for kind in Activation.allCases {
                let ref = Naive.activationForward(kind, inp: x)
                var rdx = dx0
                Naive.activationBackward(kind, dinp: &rdx, dout: dy, inp: x)
                var y = [Float](repeating: .nan, count: count), dx = dx0.float
                activationForward(kind, out: &y, inp: x.float, count: count, threads: 2)
                activationBackward(kind, dinp: &dx, dout: dy.float, inp: x.float, count: count, threads: 2)
                XCTAssertLessThan(Numerics.maxError(y, ref), fastTolerance, "\(kind) \(count)")
                XCTAssertLessThan(Numerics.maxError(dx, rdx), fastTolerance, "\(kind) \(count)")
            }
            let ref = Naive.tanhForward(inp: x)
            var rdx = dx0
            Naive.tanhBackward(dinp: &rdx, dout: dy, out: ref)
            var y = [Float](repeating: .nan, count: count), dx = dx0.float
            tanhForward(out: &y, inp: x.float, count: count)
            tanhBackward(dinp: &dx, dout: dy.float, out: y, count: count)
            XCTAssertLessThan(Numerics.maxError(y, ref), fastTolerance)
            XCTAssertLessThan(Numerics.maxError(dx, rdx), fastTolerance)
        }
    }

    func testInPlaceAndThreadCount() {
        var rng = SeededRandom(seed: 23)
        let x = Numerics.uniform(40_003, scale: 5, &rng).float, dy = Numerics.uniform(40_003, &rng).float
        for kind in Activation.allCases {
            var y1 = [Float](repeating: 0, count: x.count), d1 = y1
            activationForward(kind, out: &y1, inp: x, count: x.count, threads: 1)
            activationBackward(kind, dinp: &d1, dout: dy, inp: x, count: x.count, threads: 1)
            var y3 = x, d3 = [Float](repeating: 0, count: x.count)
            y3.withUnsafeMutableBufferPointer { p in
                activationForward(kind, out: p.baseAddress!, inp: p.baseAddress!, count: x.count, threads: 3)
            }
            activationBackward(kind, dinp: &d3, dout: dy, inp: x, count: x.count, threads: 3)
            XCTAssertTrue(Numerics.bitIdentical(y1, y3), "\(kind)")
            XCTAssertTrue(Numerics.bitIdentical(d1, d3), "\(kind)")
        }
    }
}
