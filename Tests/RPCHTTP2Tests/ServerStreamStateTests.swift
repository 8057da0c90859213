@testable import RPCHTTP2
import Testing

@Suite("Server stream state")
struct ServerStreamStateTests {
    /// The names of the trailer fields the state hands out, nil for anything else.
    private static func trailerNames(_ state: inout ServerStreamState) -> [String]? {
        guard case .trailers(let fields)? = state.takeEnding() else { return nil }
        return fields.map(\.0)
    }

    private static func takesEndOfBody(_ state: inout ServerStreamState) -> Bool {
        if case .endOfBody? = state.takeEnding() { true } else { false }
    }

    @Test func aCallWithMessagesEndsWithTrailersAfterThem() {
        var state = ServerStreamState()
        #expect(state.isReceivingHeaders && !state.isOpen)
        state.open(.rpc)
        #expect(state.isOpenRPC && !state.isPlain)
        let first = state.beginResponse()
        let second = state.beginResponse()
        #expect(first && !second, "response headers go once")
        let afterMessages = state.finish(trailers: [("grpc-status", "0")])
        #expect(afterMessages)
        let late = state.beginResponse()
        #expect(!state.isOpen && !late, "nothing is added to a finished response")
        #expect(Self.trailerNames(&state) == ["grpc-status"])
        #expect(Self.trailerNames(&state) == nil, "the ending is taken once")
    }

    @Test func aCallWithoutMessagesAnswersTrailersOnly() {
        var state = ServerStreamState()
        state.open(.rpc)
        var built = false
        let afterMessages = state.finish(trailers: {
            built = true
            return [("grpc-status", "13")]
        }())
        #expect(!afterMessages && !built, "Trailers-Only: the caller builds its own HEADERS, nothing is kept")
        #expect(!state.isOpen)
        #expect(Self.trailerNames(&state) == nil && !Self.takesEndOfBody(&state))
    }

    @Test func theRequestEndTellsOnlyARunningCall() {
        var waiting = ServerStreamState()
        let toldWhileWaiting = waiting.endRequest()
        #expect(!toldWhileWaiting && waiting.requestEnded, "END_STREAM on the HEADERS: the call starts after")
        waiting.open(.rpc)
        #expect(waiting.isOpenRPC && waiting.requestEnded)

        var running = ServerStreamState()
        running.open(.rpc)
        let toldWhileRunning = running.endRequest()
        #expect(toldWhileRunning)

        var answered = ServerStreamState()
        answered.open(.rpc)
        _ = answered.finish(trailers: [])
        let toldAfterAnswer = answered.endRequest()
        #expect(!toldAfterAnswer && answered.requestEnded, "the response ended first (early server closure)")

        var plain = ServerStreamState()
        plain.open(.plain)
        let toldPlain = plain.endRequest()
        #expect(!toldPlain, "a plain request has no inbox to end")
    }

    @Test func aPlainBodyEndsWithoutTrailers() {
        var state = ServerStreamState()
        state.open(.plain)
        #expect(state.isOpen && !state.isOpenRPC && state.isPlain)
        let headers = state.beginResponse()
        #expect(headers)
        state.endBody()
        #expect(!state.isOpen && state.isPlain)
        #expect(Self.takesEndOfBody(&state))
        #expect(!Self.takesEndOfBody(&state), "the ending is taken once")
    }

    @Test func aRefusedRequestNeverOpens() {
        var state = ServerStreamState()
        state.close()
        let headers = state.beginResponse()
        let told = state.endRequest()
        #expect(!state.isOpen && !state.isReceivingHeaders && !state.isPlain && !headers && !told)
    }
}
