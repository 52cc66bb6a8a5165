-- Derived tables for the analyzer (docs/analysis.md "Derived data").
-- All of them are functions of otel_traces: derivation (flowscope/store/derivation.py)
-- rebuilds a trace's rows whenever a span of that trace is committed, so they can be
-- dropped and rebuilt at any time without losing anything.

-- Traces with spans committed since their rows were last derived. The writer adds a
-- row per trace in the same transaction as the spans; derivation consumes them.
CREATE TABLE IF NOT EXISTS derive_queue (
    TraceId VARCHAR NOT NULL,
    FirstTs TIMESTAMP_NS NOT NULL,  -- earliest start among the committed spans
    LastTs  TIMESTAMP_NS NOT NULL   -- latest start among them
);

-- How far derivation has taken in the committed spans: every span with a CommitSeq
-- above DerivedSeq is still to be queued and counted (sql/dv_intake.sql).
CREATE TABLE IF NOT EXISTS derive_state (
    DerivedSeq UBIGINT NOT NULL
);
INSERT INTO derive_state SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM derive_state);

-- How many trace numbers (trace_index.TraceNo) derivation has handed out: numbers are
-- never handed out twice, even after retention deleted the traces that had them.
CREATE TABLE IF NOT EXISTS trace_numbers (
    HandedOut UBIGINT NOT NULL
);
INSERT INTO trace_numbers SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM trace_numbers);

-- One row per trace: where its spans lie in time (to load them without a full scan),
-- its totals, and its root span (ParentSpanId = ''; the earliest one if several).
CREATE TABLE IF NOT EXISTS trace_index (
    TraceId        VARCHAR NOT NULL,
    FirstTs        TIMESTAMP_NS NOT NULL,  -- earliest span start
    LastTs         TIMESTAMP_NS NOT NULL,  -- latest span start
    EndTs          TIMESTAMP_NS NOT NULL,  -- latest span end
    Spans          BIGINT NOT NULL,
    ErrorSpans     BIGINT NOT NULL,
    Services       BIGINT NOT NULL,
    RootSpanId     VARCHAR NOT NULL,       -- '' while the root has not arrived
    RootTs         TIMESTAMP_NS,
    RootService    VARCHAR,
    RootOperation  VARCHAR,
    RootKind       VARCHAR,
    RootDuration   BIGINT,
    RootStatus     VARCHAR,
    RootRoute      VARCHAR,                -- http.route, url.path, http.target or the span name
    RootAttributes MAP(VARCHAR, VARCHAR),
    RootResource   MAP(VARCHAR, VARCHAR),
    TraceKey       UBIGINT NOT NULL,       -- fs_trace_key(TraceId): an integer scan finds a trace
    -- The trace's number: 1, 2, ... in the order derivation first met the traces (by
    -- first span start within a pass), kept when the trace is derived again. The
    -- per-span and per-call rows name their trace by it: numbers of traces stored
    -- together differ little and pack into ~1 byte, where the random 64-bit TraceKey
    -- took 8 (schema 7; docs/benchmarks.md, "Bytes on disk").
    TraceNo        UBIGINT NOT NULL
);

-- One row per cross-service call (DESIGN.md §4 rules rpc, virtual, async). The call's
-- own trace is named by its number (trace_index.TraceNo), a linked producer's trace by
-- its 64-bit key: the trace ids as strings cost ~8 bytes a span (schema 6).
CREATE TABLE IF NOT EXISTS edge_calls (
    Ts             TIMESTAMP_NS NOT NULL,  -- start of the span whose duration is the latency
    EdgeKey        UBIGINT NOT NULL,       -- -> edge_keys
    LatencyNs      BIGINT NOT NULL,
    LagNs          BIGINT,                 -- async: consumer start - producer end, >= 0
    IsError        BOOLEAN NOT NULL,
    Bucket         SMALLINT NOT NULL,      -- floor(64 * log2(LatencyNs)): histogram bucket
    LagBucket      SMALLINT,               -- the same of LagNs
    -- fs_trace_key(TraceId) of the calling side's trace when that is another one (a linked
    -- async call), else 0
    SourceTraceKey UBIGINT NOT NULL DEFAULT 0,
    TraceNo        UBIGINT NOT NULL        -- trace_index.TraceNo of the called side's trace
);

-- Calls per edge, minute and latency bucket: the service map's whole minutes read
-- these instead of every call. Derivation adds the change each pass makes (minus a
-- re-derived trace's old calls, plus its new ones: sql/dv_edge_minutes.sql) and merges
-- the touched minutes back to one row per (minute, edge, bucket).
CREATE TABLE IF NOT EXISTS edge_minutes (
    Minute  TIMESTAMP NOT NULL,
    EdgeKey UBIGINT NOT NULL,
    Bucket  SMALLINT NOT NULL,
    Calls   BIGINT NOT NULL,
    Errors  BIGINT NOT NULL
);

-- The edges' names, so edge_calls groups by one integer (grouping by strings is
-- several times slower at millions of calls; docs/analysis.md "Speed").
CREATE TABLE IF NOT EXISTS edge_keys (
    EdgeKey         UBIGINT NOT NULL,
    Source          VARCHAR NOT NULL,
    Target          VARCHAR NOT NULL,
    Rule            VARCHAR NOT NULL,
    TargetKind      VARCHAR NOT NULL,
    MessagingSystem VARCHAR NOT NULL,
    Destination     VARCHAR NOT NULL
);

-- Cross-trace span links from CONSUMER spans: when the linked (producer's) trace
-- changes, the consumer's trace is derived again.
CREATE TABLE IF NOT EXISTS trace_links (
    TraceId       VARCHAR NOT NULL,
    LinkedTraceId VARCHAR NOT NULL
);

-- SERVER and CONSUMER spans' durations (what a node's P95 is of), written with the
-- spans, with the histogram bucket service_minutes counts them in: the exact P95
-- reads only the spans in the buckets that hold it.
CREATE TABLE IF NOT EXISTS server_spans (
    Timestamp   TIMESTAMP_NS NOT NULL,
    ServiceName VARCHAR NOT NULL,
    Duration    BIGINT NOT NULL,
    Bucket      SMALLINT NOT NULL
);

-- Spans per service and minute, written with the spans themselves. Bucket -1 counts
-- spans that are not SERVER/CONSUMER; buckets >= 0 are a log histogram (8 per
-- doubling) of SERVER/CONSUMER durations, used to find exact percentiles quickly.
CREATE TABLE IF NOT EXISTS service_minutes (
    Minute      TIMESTAMP NOT NULL,
    ServiceName VARCHAR NOT NULL,
    Bucket      SMALLINT NOT NULL,
    Spans       BIGINT NOT NULL,
    Errors      BIGINT NOT NULL
);

-- One row per span of a trace with a root: where it sits in its flow's step tree and
-- what it contributes to the step's statistics (analyzer/span_tree.py computes them
-- when the trace is derived). Steps of any flow and window are one GROUP BY away.
CREATE TABLE IF NOT EXISTS span_steps (
    RootTs       TIMESTAMP_NS NOT NULL,  -- the trace root's start: window membership
    StepKey      UBIGINT NOT NULL,       -- -> step_keys
    Duration     BIGINT NOT NULL,
    SelfNs       BIGINT NOT NULL,        -- duration minus the union of its children
    OffsetNs     BIGINT NOT NULL,        -- start - root start, >= 0
    -- Its share of its trace's critical path in billionths (0 .. 1e9): summed as an
    -- integer, the mean does not depend on row order, and it packs into 1.6-4.7 bytes
    -- a span where the fraction as DOUBLE took 6.8 (docs/benchmarks.md, disk).
    CpNano       UINTEGER NOT NULL,
    IsError      BOOLEAN NOT NULL,
    IsOrigin     BOOLEAN NOT NULL,       -- an error span with no erroring child
    FirstInTrace BOOLEAN NOT NULL,       -- the first span of its step in its trace
    -- fs_root_key(root service, root operation) of its trace: an automatic flow's rows are
    -- found by one integer comparison instead of a join with the flow's traces.
    RootKey      UBIGINT NOT NULL DEFAULT 0,
    TraceNo      UBIGINT NOT NULL        -- trace_index.TraceNo
);

-- The steps' names: a step is (parent step, service, operation, kind).
CREATE TABLE IF NOT EXISTS step_keys (
    StepKey       UBIGINT NOT NULL,
    ParentStepKey UBIGINT,               -- NULL for a sub-tree root
    ServiceName   VARCHAR NOT NULL,
    SpanName      VARCHAR NOT NULL,
    SpanKind      VARCHAR NOT NULL,
    -- A CLIENT step's peer as its spans name it (the map's virtual-node rule; the least
    -- name if several): diagrams draw the call to it when no traced service answers.
    Peer          VARCHAR
);

-- What the service statistics count of each span: its histogram bucket (8 per doubling
-- of SERVER/CONSUMER durations, -1 for other kinds) and whether it failed. The one
-- definition behind service_minutes, server_spans and the map's partial minutes.
CREATE OR REPLACE VIEW span_service_facts AS
SELECT
    Timestamp, CommitSeq, TraceId, ServiceName, greatest(Duration, 0) AS Duration,
    CASE WHEN SpanKind IN ('Server', 'Consumer')
        THEN CAST(floor(log2(greatest(Duration, 1)) * 8) AS SMALLINT)
        ELSE CAST(-1 AS SMALLINT) END AS Bucket,
    StatusCode = 'Error' AS IsError
FROM otel_traces;

-- Spans committed but not taken in by derivation yet (above the mark), and the rows
-- taking them in adds: the derive thread inserts these (sql/dv_intake.sql), readers
-- add them to the stored ones meanwhile (sql/overlay_pending.sql).
CREATE OR REPLACE VIEW untaken_spans AS
SELECT * FROM span_service_facts
WHERE CommitSeq > (SELECT max(DerivedSeq) FROM derive_state);

-- A span's minute is date_trunc's, less a minute when that rounded up: on a
-- TIMESTAMP_NS it rounds to microseconds first, and the last 0.5 us of a minute went
-- to the next one (counted twice or not at all by windows ending at that minute).
CREATE OR REPLACE VIEW untaken_service_minutes AS
SELECT
    (date_trunc('minute', Timestamp) - CASE WHEN CAST(date_trunc('minute', Timestamp) AS TIMESTAMP_NS) > Timestamp THEN INTERVAL 1 MINUTE ELSE INTERVAL 0 MINUTE END) AS Minute,
    ServiceName,
    Bucket,
    count(*) AS Spans,
    count(*) FILTER (WHERE IsError) AS Errors
FROM untaken_spans
GROUP BY ALL;

CREATE OR REPLACE VIEW untaken_server_spans AS
SELECT Timestamp, ServiceName, Duration, Bucket FROM untaken_spans WHERE Bucket >= 0;
