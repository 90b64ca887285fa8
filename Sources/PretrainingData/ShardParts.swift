import Foundation
import Support

/// Part K of N of a shard build (`bert shards --part K/N`): a corpus of many files prepared on many
/// machines. Part K takes the inputs whose place in the expanded, sorted input list is K − 1 modulo N
/// (so the parts are disjoint and together are the whole list), and draws its pairs, masks and shuffle
/// from a seed derived from (seed, K, N). Its index records "part" and "base_seed"; `ShardMerger` joins
/// the N parts into one shard set. A part's shards do not depend on where it was built.
public struct ShardPart: Sendable, Equatable, CustomStringConvertible {
    /// K, from 1.
    public var index: Int
    /// N.
    public var count: Int

    /// Part `index` (1…count) of `count`.
    public init(index: Int, count: Int) throws(ShardError) {
        guard count >= 1, (1...count).contains(index) else {
            throw .invalidParts(reason: "part \(index)/\(count): K must be in 1…N")
        }
        self.index = index
        self.count = count
    }

    /// Parses "K/N".
    public init(parsing text: String) throws(ShardError) {
        let fields = text.split(separator: "/", omittingEmptySubsequences: false)
        guard fields.count == 2, let k = Int(fields[0]), let n = Int(fields[1]) else {
            throw .invalidParts(reason: "--part \(text): write K/N, e.g. 2/8 for the second of eight parts")
        }
        try self.init(index: k, count: n)
    }

    /// "K/N".
    public var description: String { "\(index)/\(count)" }

    /// This part's inputs out of the whole expanded list (in its order); an error when it gets none.
    public func inputs(of all: [String]) throws(ShardError) -> [String] {
        let mine = all.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
        guard !mine.isEmpty else {
            throw .invalidParts(reason: "part \(description) has no input: \(all.count) input file(s) for \(count) parts; give at least as many files as parts")
        }
        return mine
    }

    /// The seed of this part's pairs, masks and shuffle.
    public func seed(base: UInt64) -> UInt64 {
        var g = SeededGenerator(seed: base, stream: [0x5041_5254, UInt64(index), UInt64(count)])  // "PART"
        return g.next()
    }
}

/// Joins the N part directories of one build (`bert shards --part K/N`, K = 1…N) into one shard set.
/// Every part must exist once, with the same vocabulary, format and parameters (apart from the part,
/// its seed and its inputs); else nothing is written. The shard files are hard-linked into the output
/// (copied across file systems) as shard-NNNNN.bin.zst in part order, so their checksums stay valid;
/// vocab.txt is copied and index.json written last, atomically, so a crash leaves no complete-looking
/// set. The merged index records the base seed, `parts` = N, and a hash of the parts' input hashes.
public enum ShardMerger {
    /// Merges `parts` (directories, any order) into `output`; `overwrite` replaces a shard set there.
    public static func merge(parts directories: [String], output: String, overwrite: Bool = false) throws -> ShardIndex {
        guard !directories.isEmpty else { throw ShardError.invalidParts(reason: "no part directories given") }
        var parts: [(part: ShardPart, set: ShardSet)] = []
        for directory in directories {
            let set = try ShardSet(directory: directory)
            let indexPath = (directory as NSString).appendingPathComponent(ShardIndex.fileName)
            guard let text = set.index.parameters.extra["part"], set.index.parameters.extra["base_seed"] != nil else {
                throw ShardError.invalidParts(reason: "\(indexPath): not a part (built without --part K/N)")
            }
            parts.append((try ShardPart(parsing: text), set))
        }
        parts.sort { $0.part.index < $1.part.index }
        let n = parts[0].part.count
        guard parts.map(\.part) == (try (1...n).map { try ShardPart(index: $0, count: n) }) else {
            throw ShardError.invalidParts(reason: "parts \(parts.map(\.part.description).joined(separator: ", ")) given; a merge needs each of 1/\(n) … \(n)/\(n) exactly once")
        }
        let first = parts[0].set.index
        func comparable(_ p: ShardGenerationParameters) -> ShardGenerationParameters {
            var q = p
            q.seed = 0
            q.extra = q.extra.filter { !["part", "inputs_sha256"].contains($0.key) }
            return q
        }
        for (part, set) in parts.dropFirst() {
            let i = set.index
            let path = (set.directory as NSString).appendingPathComponent(ShardIndex.fileName)
            guard i.vocabSHA256 == first.vocabSHA256, i.vocabSize == first.vocabSize else {
                throw ShardError.invalidParts(reason: "\(path): part \(part) was built with another vocabulary than part 1/\(n)")
            }
            guard i.formatVersion == first.formatVersion, comparable(i.parameters) == comparable(first.parameters) else {
                throw ShardError.invalidParts(reason: "\(path): part \(part) was built with other parameters than part 1/\(n); build every part with the same flags")
            }
        }
        for (_, set) in parts { try set.verify() }

        let fm = FileManager.default
        let indexPath = (output as NSString).appendingPathComponent(ShardIndex.fileName)
        if fm.fileExists(atPath: indexPath) && !overwrite { throw ShardError.outputExists(directory: output) }
        do {
            try fm.createDirectory(atPath: output, withIntermediateDirectories: true)
            if fm.fileExists(atPath: indexPath) { try fm.removeItem(atPath: indexPath) }  // the old set is no longer complete
            for name in try fm.contentsOfDirectory(atPath: output) where looksLikeShardFile(name) {
                try fm.removeItem(atPath: (output as NSString).appendingPathComponent(name))
            }
        } catch { throw ShardError.writeFailed(path: output, reason: "\(error)") }
        var entries: [ShardEntry] = []
        var statistics: [String: Int] = [:]
        var inputHashes: [String] = []
        for (_, set) in parts {
            for shard in set.index.shards {
                var entry = shard
                entry.file = String(format: "shard-%05d.bin.zst", entries.count)
                try place(set.path(of: shard), at: (output as NSString).appendingPathComponent(entry.file))
                entries.append(entry)
            }
            for (key, value) in set.index.statistics ?? [:] { statistics[key, default: 0] += value }
            inputHashes.append(set.index.parameters.extra["inputs_sha256"] ?? "")
        }
        let vocabulary = (parts[0].set.directory as NSString).appendingPathComponent("vocab.txt")
        if let data = fm.contents(atPath: vocabulary) {
            try writeFileAtomically(data, to: (output as NSString).appendingPathComponent("vocab.txt"))
        }
        var parameters = first.parameters
        parameters.seed = UInt64(parameters.extra["base_seed"] ?? "") ?? parameters.seed
        parameters.extra["part"] = nil
        parameters.extra["base_seed"] = nil
        parameters.extra["parts"] = String(n)
        parameters.extra["inputs_sha256"] = SHA256.hex(SHA256.hash(Array(inputHashes.joined(separator: "\n").utf8)))
        let index = ShardIndex(vocabSHA256: first.vocabSHA256, vocabSize: first.vocabSize, parameters: parameters,
                               totalInstances: entries.reduce(0) { $0 + $1.instances }, shards: entries,
                               statistics: statistics.isEmpty ? nil : statistics)
        try writeFileAtomically(try index.encoded(), to: indexPath)
        return index
    }

    /// A hard link of `source` at `destination` (a copy across file systems), under a temporary name
    /// renamed into place.
    static func place(_ source: String, at destination: String) throws {
        let temporary = (destination as NSString).deletingLastPathComponent + "/.tmp-merge-\(getpid())-"
            + (destination as NSString).lastPathComponent
        unlink(temporary)
        if link(source, temporary) != 0 {
            do { try FileManager.default.copyItem(atPath: source, toPath: temporary) } catch {
                throw ShardError.writeFailed(path: destination, reason: "\(error)")
            }
        }
        guard rename(temporary, destination) == 0 else {
            throw ShardError.writeFailed(path: destination, reason: String(cString: strerror(errno)))
        }
    }
}

extension ShardMerger {
    /// What `buildAcrossProcesses` did on this process.
    public enum DistributedOutcome {
        /// Not process 0: this process built its part and is done.
        case builtPart
        /// Process 0 merged the parts into the output.
        case merged(ShardIndex)
        /// Process 0 found every part and the output up to date.
        case upToDate
    }

    /// A shard build split across the processes of `group` (`bert shards` under mpirun): process r builds
    /// part r + 1 of N into `output`/parts/part-(r+1)-of-N with `build` (which returns true when it wrote
    /// shards, false when they were up to date); after all have built, process 0 merges the parts into
    /// `output`, unless no part was rebuilt and `output` already holds a shard set.
    public static func buildAcrossProcesses(group: ProcessGroup, output: String,
                                            build: (ShardPart, String) throws -> Bool) throws -> DistributedOutcome {
        let n = group.size
        let mine = try ShardPart(index: group.rank + 1, count: n)
        func directory(_ k: Int) -> String { (output as NSString).appendingPathComponent("parts/part-\(k)-of-\(n)") }
        let built = try build(mine, directory(mine.index))
        let anyBuilt = try group.allReduceSum([built ? 1 : 0])[0] > 0
        try group.barrier()
        guard group.isRoot else { return .builtPart }
        if !anyBuilt && FileManager.default.fileExists(atPath: (output as NSString).appendingPathComponent(ShardIndex.fileName)) {
            return .upToDate
        }
        return .merged(try merge(parts: (1...n).map(directory), output: output, overwrite: true))
    }
}
