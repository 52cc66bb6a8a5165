-- The integer key trace_index and span_steps use for a trace id.
SELECT hash(CAST($trace_id AS VARCHAR))
