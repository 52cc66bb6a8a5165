-- The blocks and rows of otel_traces's stored row groups that are not full: what a
-- checkpoint's merges of small row groups would rewrite (Database._review_merges).
-- DuckDB's own storage introspection; not shared with ClickHouse.
WITH segments AS (
    SELECT row_group_id, column_path, count, block_id, additional_block_ids
    FROM pragma_storage_info('otel_traces')
    WHERE persistent
),
small AS (
    SELECT row_group_id, sum(count) AS row_count
    FROM segments
    WHERE column_path = '[0]'
    GROUP BY row_group_id
    HAVING sum(count) < $full_rows
),
blocks AS (
    SELECT block_id AS block
    FROM segments JOIN small USING (row_group_id)
    WHERE block_id >= 0
    UNION
    SELECT unnest(additional_block_ids) AS block
    FROM segments JOIN small USING (row_group_id)
)
SELECT
    (SELECT count(*) FROM blocks) AS block_count,
    (SELECT coalesce(sum(row_count), 0) FROM small) AS row_count
