SELECT count(*), epoch_ns(min(FirstTs)), epoch_ns(max(LastTs)) FROM dv_queue
