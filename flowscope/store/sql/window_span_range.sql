-- Where the spans of the traces listed for [since, until) lie: those rooted in it and
-- those without a root span whose first span started in it (traces_list.sql). Two
-- scans, each bounded on its own time column.
SELECT epoch_ns(min(Lo)), epoch_ns(max(Hi)) FROM (
    SELECT min(FirstTs) AS Lo, max(LastTs) AS Hi FROM a_trace_index
    WHERE RootTs >= make_timestamp_ns($since) AND RootTs < make_timestamp_ns($until)
    UNION ALL
    SELECT min(FirstTs), max(LastTs) FROM a_trace_index
    WHERE NOT $filter_flow AND RootTs IS NULL
      AND FirstTs >= make_timestamp_ns($since) AND FirstTs < make_timestamp_ns($until)
)
