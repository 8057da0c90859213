/// A type-erased, `Sendable` async sequence of messages, as handlers and clients see a stream.
///
/// Its members are `@inlinable` (as is ``RPCWriter``): called from other modules (generated services,
/// transports), generic code that is not is run unspecialized, looking up type metadata at run time on
/// every message (perf: about 5% of a server-streaming message's CPU).
public struct RPCAsyncSequence<Element: Sendable>: AsyncSequence, Sendable {
    @usableFromInline let makeIterator: @Sendable () -> AsyncIterator

    @usableFromInline init(makeIterator: @escaping @Sendable () -> AsyncIterator) {
        self.makeIterator = makeIterator
    }

    @inlinable
    public init<S: AsyncSequence & Sendable>(wrapping sequence: S) where S.Element == Element {
        makeIterator = {
            var iterator = sequence.makeAsyncIterator()
            return AsyncIterator { try await iterator.next() }
        }
    }

    /// A sequence whose iterator calls `next`. For transports: `init(wrapping:)` is generic across modules,
    /// so the sequence it wraps is read through unspecialized code (measured: runtime generic-metadata
    /// lookups on every message), while a closure made where the queue's type is known is not.
    @inlinable
    public init(next: @escaping @Sendable () async throws -> Element?) {
        makeIterator = { AsyncIterator(next) }
    }

    /// A sequence of the given elements.
    public static func elements(_ elements: [Element]) -> Self {
        RPCAsyncSequence(wrapping: ElementsSequence(elements: elements))
    }

    @inlinable
    public func makeAsyncIterator() -> AsyncIterator {
        makeIterator()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        @usableFromInline var nextElement: () async throws -> Element?

        @inlinable
        init(_ next: @escaping () async throws -> Element?) {
            nextElement = next
        }

        @inlinable
        public mutating func next() async throws -> Element? {
            try await nextElement()
        }
    }

    /// Maps each element; the transform may throw to end the sequence with an error.
    @inlinable
    public func map<T: Sendable>(_ transform: @escaping @Sendable (Element) throws -> T) -> RPCAsyncSequence<T> {
        let base = self
        return RPCAsyncSequence<T>(makeIterator: {
            var iterator = base.makeAsyncIterator()
            return RPCAsyncSequence<T>.AsyncIterator { try await iterator.next().map(transform) }
        })
    }
}

private struct ElementsSequence<Element: Sendable>: AsyncSequence, Sendable {
    let elements: [Element]

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(iterator: elements.makeIterator()) }

    struct AsyncIterator: AsyncIteratorProtocol {
        var iterator: IndexingIterator<[Element]>
        mutating func next() async throws -> Element? { iterator.next() }
    }
}

/// Where a handler or client writes the messages of a stream; `write` suspends while the peer cannot take more.
public struct RPCWriter<Element: Sendable>: Sendable {
    @usableFromInline let writeElement: @Sendable (Element) async throws -> Void

    @inlinable
    public init(_ write: @escaping @Sendable (Element) async throws -> Void) {
        writeElement = write
    }

    @inlinable
    public func write(_ element: Element) async throws {
        try await writeElement(element)
    }

    @inlinable
    public func write(contentsOf elements: some Sequence<Element>) async throws {
        for e in elements { try await writeElement(e) }
    }

    /// A writer that transforms each element before handing it on.
    @inlinable
    public func map<T: Sendable>(_ transform: @escaping @Sendable (T) throws -> Element) -> RPCWriter<T> {
        RPCWriter<T> { try await self.write(transform($0)) }
    }
}
