import Logging
import Prometheus

extension GatewaySettings.Log {
    /// The handler for a new logger: text lines (``TextLogHandler``, in swift-log's `StreamLogHandler` layout)
    /// or JSON lines (``JSONLogHandler``) on standard error, at the configured level. For `main` to bootstrap with.
    public func makeHandler(label: String) -> any LogHandler {
        var handler: any LogHandler =
            switch format {
            case .text: TextLogHandler(label: label)
            case .json: JSONLogHandler(label: label)
            }
        handler.logLevel = level
        return handler
    }
}

extension GatewaySettings.Metrics {
    /// A swift-metrics factory recording into `registry`, with duration buckets from 1 ms to 60 s (RPCs
    /// here take milliseconds; streams last long and land in the top buckets). For `main` to bootstrap with.
    public static func prometheusFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[RPCServerMetrics.durationLabel] = [
            .milliseconds(1), .microseconds(2_500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .milliseconds(2_500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        return factory
    }
}
