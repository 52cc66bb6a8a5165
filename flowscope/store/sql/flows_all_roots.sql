-- Every root (service, operation) ever stored: automatic flow ids resolve against these.
SELECT DISTINCT RootService, RootOperation FROM a_trace_index WHERE RootSpanId <> ''
