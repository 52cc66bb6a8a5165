-- Where the spans of the traces rooted in [since, until) lie.
SELECT epoch_ns(min(FirstTs)), epoch_ns(max(LastTs)) FROM a_trace_index
WHERE RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
