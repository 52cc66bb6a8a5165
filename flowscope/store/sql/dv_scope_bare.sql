-- Triage: a queued trace alone, without the traces linked to it, when deriving it with
-- them failed. The failure may be a linked trace's, and that one trace is then not to
-- blame (the linked traces keep their rows until they are derived again themselves).
DELETE FROM dv_scope WHERE TraceId NOT IN (SELECT TraceId FROM dv_queue);
