-- The spans stored last (by commit, then start time for spans stored before schema 3
-- numbered commits), to warm the retry dedup window after a restart. By start time
-- alone, a retried request of spans that started earlier than the window's newest
-- (a backlog sent after an outage, long spans, a slow clock) was stored twice.
SELECT TraceId, SpanId, SpanKind = 'Server', ServiceName FROM otel_traces ORDER BY CommitSeq DESC, Timestamp DESC LIMIT $limit
