-- How many traces are selected and where their spans lie (bounds for pruned scans).
SELECT count(*), epoch_ns(min(FirstTs)), epoch_ns(max(LastTs)) FROM sel_traces
