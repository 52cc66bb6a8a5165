INSERT INTO imported_files VALUES ($sha256, $path, $spans, now()::TIMESTAMP)
