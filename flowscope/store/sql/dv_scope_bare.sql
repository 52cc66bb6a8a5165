-- Triage: a queued trace alone, without the traces linked to it, when deriving it with
-- them failed. The failure may be a linked trace's, and that one trace is then not to
-- blame (the linked traces keep their rows until they are derived again themselves).
-- In place of dv_scope.sql.
CREATE OR REPLACE TEMP TABLE dv_scope AS SELECT TraceId FROM dv_queue;
