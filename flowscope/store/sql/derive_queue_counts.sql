-- Each queued trace's rows (retention tells the traces it queued by the rows it adds).
SELECT TraceId, count(*) FROM derive_queue GROUP BY TraceId
