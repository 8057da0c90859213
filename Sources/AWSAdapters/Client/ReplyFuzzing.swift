import GatewayApplication
import ProtoRuntime

/// What every decoder of what AWS (or anything posing as it) sends back must survive: any bytes decode or
/// throw, never crash, hang or blow up. The fuzz target (`scripts/fuzz aws`) and the corpus replay
/// (`Tests/AWSAdapterTests/FuzzCorpus`) run it.
public enum AWSReplyFuzzing {
    public static func check(_ bytes: UnsafeRawBufferPointer) {
        let body = Array(bytes)
        _ = try? XMLDocument(parsing: body)
        for status in [400, 404, 503] {
            let error = AWSError.parse(service: "dynamodb", operation: "Fuzz", response: HTTPResponse(status: status, headers: [], body: body))
            _ = error.domainError
            _ = RetryPolicy.classify(error, idempotent: true)
        }
        if let json = try? JSONParser.parse(body, maxDepth: 64) {
            _ = try? Item.decode(json)
            _ = try? Item.decode(json["Item"] ?? .null)
        }
        _ = try? EventSegmentCoding.decode(body, first: 1)
    }
}
