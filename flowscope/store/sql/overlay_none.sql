-- Nothing waits for derivation: analysis reads the derived tables as they are.
CREATE OR REPLACE TEMP VIEW a_trace_index AS SELECT * FROM trace_index;
CREATE OR REPLACE TEMP VIEW a_edge_calls AS SELECT * FROM edge_calls;
CREATE OR REPLACE TEMP VIEW a_edge_minutes AS SELECT * FROM edge_minutes;
CREATE OR REPLACE TEMP VIEW a_edge_keys AS SELECT * FROM edge_keys;
CREATE OR REPLACE TEMP VIEW a_span_steps AS SELECT * FROM span_steps;
CREATE OR REPLACE TEMP VIEW a_step_keys AS SELECT * FROM step_keys;
CREATE OR REPLACE TEMP VIEW a_service_minutes AS SELECT * FROM service_minutes;
CREATE OR REPLACE TEMP VIEW a_server_spans AS SELECT * FROM server_spans;
