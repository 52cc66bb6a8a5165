SELECT Cluster, epoch_ns(min(FirstTs)) AS Lo, epoch_ns(max(LastTs)) AS Hi
FROM dv_load GROUP BY Cluster ORDER BY Cluster
