-- Where the spans of the traces dv_load plans lie (bounds of their stored derived rows).
SELECT epoch_ns(min(FirstTs)), epoch_ns(max(LastTs)) FROM dv_load
