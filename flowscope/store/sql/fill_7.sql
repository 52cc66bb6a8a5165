-- Schema 7's trace_numbers for an upgraded file: the numbers migrate_to_7.sql gave
-- the stored traces are handed out.
UPDATE trace_numbers SET HandedOut = (SELECT coalesce(max(TraceNo), 0) FROM trace_index);
