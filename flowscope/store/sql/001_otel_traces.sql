-- The span table. Columns 1-17 mirror the OpenTelemetry Collector ClickHouse
-- exporter's otel_traces (names, order, encodings); Nested Events/Links become
-- lists of structs. Columns after Links hold the OTLP fields that exporter drops,
-- so nothing a sender gave us is lost.
CREATE TABLE IF NOT EXISTS otel_traces (
    Timestamp          TIMESTAMP_NS NOT NULL,
    TraceId            VARCHAR NOT NULL,
    SpanId             VARCHAR NOT NULL,
    ParentSpanId       VARCHAR NOT NULL DEFAULT '',
    TraceState         VARCHAR NOT NULL DEFAULT '',
    SpanName           VARCHAR NOT NULL,
    SpanKind           VARCHAR NOT NULL,
    ServiceName        VARCHAR NOT NULL,
    ResourceAttributes MAP(VARCHAR, VARCHAR) NOT NULL,
    ScopeName          VARCHAR NOT NULL DEFAULT '',
    ScopeVersion       VARCHAR NOT NULL DEFAULT '',
    SpanAttributes     MAP(VARCHAR, VARCHAR) NOT NULL,
    Duration           BIGINT NOT NULL,
    StatusCode         VARCHAR NOT NULL,
    StatusMessage      VARCHAR NOT NULL DEFAULT '',
    Events STRUCT("Timestamp" TIMESTAMP_NS, "Name" VARCHAR, "Attributes" MAP(VARCHAR, VARCHAR))[] NOT NULL,
    Links  STRUCT("TraceId" VARCHAR, "SpanId" VARCHAR, "TraceState" VARCHAR, "Attributes" MAP(VARCHAR, VARCHAR))[] NOT NULL,
    -- flowscope extensions: OTLP fields the exporter's schema has no column for.
    Flags                          UINTEGER NOT NULL DEFAULT 0,
    DroppedAttributesCount         UINTEGER NOT NULL DEFAULT 0,
    DroppedEventsCount             UINTEGER NOT NULL DEFAULT 0,
    DroppedLinksCount              UINTEGER NOT NULL DEFAULT 0,
    EventsDroppedAttributesCount   UINTEGER[] NOT NULL DEFAULT [],
    LinksDroppedAttributesCount    UINTEGER[] NOT NULL DEFAULT [],
    LinksFlags                     UINTEGER[] NOT NULL DEFAULT [],
    ScopeAttributes                MAP(VARCHAR, VARCHAR) NOT NULL DEFAULT MAP(),
    ScopeDroppedAttributesCount    UINTEGER NOT NULL DEFAULT 0,
    ResourceDroppedAttributesCount UINTEGER NOT NULL DEFAULT 0,
    ResourceSchemaUrl              VARCHAR NOT NULL DEFAULT '',
    ScopeSchemaUrl                 VARCHAR NOT NULL DEFAULT '',
    ResourceEntityRefs STRUCT("SchemaUrl" VARCHAR, "Type" VARCHAR, "IdKeys" VARCHAR[], "DescriptionKeys" VARCHAR[])[] NOT NULL DEFAULT [],
    -- Which commit stored the span (1, 2, ... in commit order; 0 before schema 3): the
    -- derive thread takes in everything above its mark (derive_state), so a commit
    -- itself writes nothing but the spans.
    CommitSeq                      UBIGINT NOT NULL DEFAULT 0
);
