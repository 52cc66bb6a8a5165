-- When the stored spans begin and end, to turn counts into rates over the part of a
-- window that has data.
SELECT epoch_ns(min(FirstTs)), epoch_ns(max(EndTs)) FROM a_trace_index
