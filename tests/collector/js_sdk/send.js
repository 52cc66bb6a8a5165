// Sends one trace through one of the OpenTelemetry JavaScript SDK's trace exporters
// and exits 0 only if every export succeeded.
// usage: node send.js json|proto|grpc URL SERVICE
// URL: the OTLP/HTTP base (http://127.0.0.1:P) for json and proto, host:port for grpc.
const api = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [kind, url, service] = process.argv.slice(2);
const EXPORTERS = {
  json: () => new (require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter)({ url: `${url}/v1/traces` }),
  proto: () => new (require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter)({ url: `${url}/v1/traces` }),
  grpc: () => new (require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter)({ url: `http://${url}` }),
};
const inner = EXPORTERS[kind]();
const failures = [];
const exporter = {
  export(spans, done) {
    inner.export(spans, (result) => {
      if (result.code !== 0) failures.push(String(result.error && result.error.message));
      done(result);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => (inner.forceFlush ? inner.forceFlush() : Promise.resolve()),
};
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': service, 'deployment.environment.name': 'test' }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer('flowscope-js-test', '1.2.3');

const root = tracer.startSpan('GET /js', {
  kind: api.SpanKind.SERVER,
  attributes: {
    'text': 'héllo 🙂 漢字',
    'flag': true,
    'count': 42,
    'ratio': 1.5,
    'names': ['a', 'b'],
    'sizes': [1, 2, 3],
    // Whole JavaScript numbers past int64: the JSON exporter sends them as intValue.
    'huge': 1e21,
    // Cut in the middle of a surrogate pair, as the SDK's length limits cut strings.
    'cut': 'ab\ud83c',
  },
});
root.addEvent('retry', { attempt: 2 });
root.setStatus({ code: api.SpanStatusCode.ERROR, message: 'boom' });
const context = api.trace.setSpan(api.context.active(), root);
const call = tracer.startSpan(
  'charge',
  { kind: api.SpanKind.CLIENT, links: [{ context: root.spanContext(), attributes: { why: 'retry' } }] },
  context,
);
call.setAttribute('peer.service', 'payments');
call.end();
root.end();

provider.forceFlush()
  .then(() => provider.shutdown())
  .catch((error) => failures.push(String(error)))
  .then(() => {
    if (failures.length) {
      console.error(failures.join('\n'));
      process.exit(1);
    }
  });
