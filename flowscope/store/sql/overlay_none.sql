-- Nothing waits for derivation, or a settled read (derivation.read_snapshot): analysis
-- reads the derived tables as they are, and the spans derivation has taken in (up to
-- the mark; with nothing waiting that is every span), so that reads of the raw spans
-- agree with the derived rows.
CREATE OR REPLACE TEMP VIEW a_trace_index AS SELECT * FROM trace_index;
CREATE OR REPLACE TEMP VIEW a_edge_calls AS SELECT * FROM edge_calls;
CREATE OR REPLACE TEMP VIEW a_edge_minutes AS SELECT * FROM edge_minutes;
CREATE OR REPLACE TEMP VIEW a_edge_keys AS SELECT * FROM edge_keys;
CREATE OR REPLACE TEMP VIEW a_span_steps AS SELECT * FROM span_steps;
CREATE OR REPLACE TEMP VIEW a_step_keys AS SELECT * FROM step_keys;
CREATE OR REPLACE TEMP VIEW a_service_minutes AS SELECT * FROM service_minutes;
CREATE OR REPLACE TEMP VIEW a_server_spans AS SELECT * FROM server_spans;
CREATE OR REPLACE TEMP VIEW a_spans AS
SELECT * FROM otel_traces WHERE CommitSeq <= (SELECT max(DerivedSeq) FROM derive_state);
CREATE OR REPLACE TEMP VIEW a_span_service_facts AS
SELECT * FROM span_service_facts
WHERE CommitSeq <= (SELECT max(DerivedSeq) FROM derive_state);
