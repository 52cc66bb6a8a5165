-- The names of the given edges.
SELECT EdgeKey, Source, Target, Rule, TargetKind, MessagingSystem, Destination
FROM a_edge_keys WHERE EdgeKey IN (SELECT unnest(CAST($keys AS UBIGINT[])))
