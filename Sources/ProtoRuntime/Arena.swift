internal import CProtobufC
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bump allocator: protobuf-c unpacks into it and the encoder builds C structs in it, then everything is
/// freed at once. Each allocation is preceded by its size, which is how ``ProtobufCDecoding/string(_:field:in:)``
/// recovers the length of a string protobuf-c copied (protobuf-c strings are NUL-terminated, so the length
/// is otherwise lost at the first NUL).
///
/// The state and the first chunk live on the stack (``withArena(initialCapacity:limit:_:)``), so a small
/// message is decoded or encoded without a malloc for the arena.
@usableFromInline
struct Arena {
    /// State reachable from protobuf-c's allocator callbacks, at a stable address.
    @usableFromInline
    struct State {
        var cursor: UnsafeMutableRawPointer?
        var end: UnsafeMutableRawPointer?
        /// Heap chunks, linked through their first word.
        var chunks: UnsafeMutableRawPointer?
        var nextChunkSize: Int
        /// Bytes handed out so far (headers included), checked against `limit`.
        var used: Int
        var limit: Int
        var exceeded: Bool
    }

    static let headerSize = 8
    static let alignment = 8
    /// `withUnsafeTemporaryAllocation` stays on the stack up to 1 KiB on Linux.
    static let stackSize = 1024
    /// Heap chunks stay well below glibc's mmap threshold (128 KiB), so they come from the heap and are reused
    /// instead of being mapped and faulted in afresh on every message; bigger values get a chunk of their own.
    static let maxChunkSize = 32 << 10

    let state: UnsafeMutablePointer<State>

    /// Runs `body` with an arena whose heap chunks are freed when it returns. `initialCapacity` sizes the
    /// first heap chunk, should the stack chunk not suffice.
    ///
    /// Not generic on purpose: `withUnsafeTemporaryAllocation` with an unspecialized result type builds
    /// `Result` metadata on every call, which cost a tenth of a small message's encode (measured).
    static func withArena(initialCapacity: Int, limit: Int, _ body: (Arena) throws -> Void) rethrows {
        try withUnsafeTemporaryAllocation(byteCount: stackSize, alignment: 16) { memory in
            let base = memory.baseAddress!
            let state = base.bindMemory(to: State.self, capacity: 1)
            state.initialize(to: State(
                cursor: base + MemoryLayout<State>.stride, end: base + memory.count, chunks: nil,
                nextChunkSize: max(256, min(initialCapacity, maxChunkSize)),
                used: 0, limit: limit, exceeded: false
            ))
            defer {
                var chunk = state.pointee.chunks
                while let c = chunk {
                    chunk = c.load(as: UnsafeMutableRawPointer?.self)
                    free(c)
                }
            }
            try body(Arena(state: state))
        }
    }

    var exceeded: Bool { state.pointee.exceeded }

    /// protobuf-c's view of this arena. `free` is a no-op: the arena frees everything at once.
    var allocator: ProtobufCAllocator {
        ProtobufCAllocator(
            alloc: { data, size in Arena.allocate(size, in: data!.assumingMemoryBound(to: State.self)) },
            free: { _, _ in },
            allocator_data: UnsafeMutableRawPointer(state)
        )
    }

    /// The size the allocation at `pointer` was made with.
    static func allocationSize(_ pointer: UnsafeRawPointer) -> Int {
        (pointer - headerSize).load(as: Int.self)
    }

    @usableFromInline
    static func allocate(_ size: Int, in state: UnsafeMutablePointer<State>) -> UnsafeMutableRawPointer? {
        let (padded, overflow) = size.addingReportingOverflow(headerSize + alignment - 1)
        guard !overflow else { state.pointee.exceeded = true; return nil }
        let total = padded & ~(alignment - 1)
        guard total <= state.pointee.limit - state.pointee.used else {
            state.pointee.exceeded = true
            return nil
        }
        state.pointee.used += total
        if let cursor = state.pointee.cursor, total <= state.pointee.end! - cursor {
            state.pointee.cursor = cursor + total
            cursor.storeBytes(of: size, as: Int.self)
            return cursor + headerSize
        }
        // A new chunk: its own for a large allocation, otherwise the next bump chunk.
        let large = total > state.pointee.nextChunkSize / 2
        let chunkSize = (large ? total : state.pointee.nextChunkSize) + MemoryLayout<UnsafeRawPointer>.stride
        guard let chunk = malloc(chunkSize) else { return nil }
        chunk.storeBytes(of: state.pointee.chunks, as: UnsafeMutableRawPointer?.self)
        state.pointee.chunks = chunk
        let start = chunk + MemoryLayout<UnsafeRawPointer>.stride
        if !large {
            state.pointee.cursor = start + total
            state.pointee.end = chunk + chunkSize
            state.pointee.nextChunkSize = min(state.pointee.nextChunkSize * 2, maxChunkSize)
        }
        start.storeBytes(of: size, as: Int.self)
        return start + headerSize
    }
}
