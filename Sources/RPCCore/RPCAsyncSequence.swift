/// A type-erased, `Sendable` async sequence of messages, as handlers and clients see a stream.
public struct RPCAsyncSequence<Element: Sendable>: AsyncSequence, Sendable {
    private let makeIterator: @Sendable () -> AsyncIterator

    public init<S: AsyncSequence & Sendable>(wrapping sequence: S) where S.Element == Element {
        makeIterator = {
            var iterator = sequence.makeAsyncIterator()
            return AsyncIterator { try await iterator.next() }
        }
    }

    /// A sequence whose iterator calls `next`. For transports: `init(wrapping:)` is generic across modules,
    /// so the sequence it wraps is read through unspecialized code (measured: runtime generic-metadata
    /// lookups on every message), while a closure made where the queue's type is known is not.
    public init(next: @escaping @Sendable () async throws -> Element?) {
        makeIterator = { AsyncIterator(next) }
    }

    /// A sequence of the given elements.
    public static func elements(_ elements: [Element]) -> Self {
        RPCAsyncSequence(wrapping: ElementsSequence(elements: elements))
    }

    public func makeAsyncIterator() -> AsyncIterator {
        makeIterator()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        private var nextElement: () async throws -> Element?

        init(_ next: @escaping () async throws -> Element?) {
            nextElement = next
        }

        public mutating func next() async throws -> Element? {
            try await nextElement()
        }
    }

    /// Maps each element; the transform may throw to end the sequence with an error.
    public func map<T: Sendable>(_ transform: @escaping @Sendable (Element) throws -> T) -> RPCAsyncSequence<T> {
        RPCAsyncSequence<T>(wrapping: MappedSequence(base: self, transform: transform))
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

private struct MappedSequence<Base: Sendable, Element: Sendable>: AsyncSequence, Sendable {
    let base: RPCAsyncSequence<Base>
    let transform: @Sendable (Base) throws -> Element

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), transform: transform)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RPCAsyncSequence<Base>.AsyncIterator
        let transform: @Sendable (Base) throws -> Element

        mutating func next() async throws -> Element? {
            try await base.next().map(transform)
        }
    }
}

/// Where a handler or client writes the messages of a stream; `write` suspends while the peer cannot take more.
public struct RPCWriter<Element: Sendable>: Sendable {
    private let writeElement: @Sendable (Element) async throws -> Void

    public init(_ write: @escaping @Sendable (Element) async throws -> Void) {
        writeElement = write
    }

    public func write(_ element: Element) async throws {
        try await writeElement(element)
    }

    public func write(contentsOf elements: some Sequence<Element>) async throws {
        for e in elements { try await writeElement(e) }
    }

    /// A writer that transforms each element before handing it on.
    public func map<T: Sendable>(_ transform: @escaping @Sendable (T) throws -> Element) -> RPCWriter<T> {
        RPCWriter<T> { try await self.write(transform($0)) }
    }
}
