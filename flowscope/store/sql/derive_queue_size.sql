SELECT count(*) FROM derive_queue
