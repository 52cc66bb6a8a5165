-- A reader that asks about one trace only (its tree, critical path, root facts) derives
-- that trace alone, if it is queued: those rows depend on its own spans only.
DELETE FROM dv_scope WHERE TraceId <> $trace_id;
