-- For the CLI's hint under an empty answer, through the SQL sandbox (a server's
-- /api/sql too, so the window is written in as nanoseconds, not bound: see
-- sql_files.filled): the newest and oldest spans, and the window's spans and roots.
SELECT
    epoch_ns(max(Timestamp)),
    epoch_ns(min(Timestamp)),
    count(*) FILTER (WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until)),
    count(*) FILTER (
        WHERE Timestamp >= make_timestamp_ns($since) AND Timestamp < make_timestamp_ns($until)
        AND ParentSpanId = ''
    )
FROM otel_traces
