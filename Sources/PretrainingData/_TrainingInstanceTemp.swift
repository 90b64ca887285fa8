/// One pre-training example: [CLS] A [SEP] B [SEP].
public struct TrainingInstance: Equatable, Sendable {
    public var tokens: [UInt32]
    public var segmentALength: Int
    public var isRandomNext: Bool
    public var maskedPositions: [Int]
    public var maskedLabels: [UInt32]
    public init(tokens: [UInt32], segmentALength: Int, isRandomNext: Bool, maskedPositions: [Int], maskedLabels: [UInt32]) {
        self.tokens = tokens; self.segmentALength = segmentALength; self.isRandomNext = isRandomNext
        self.maskedPositions = maskedPositions; self.maskedLabels = maskedLabels
    }
}
