SELECT Path, Spans, ImportedAt FROM imported_files WHERE Sha256 = $sha256 LIMIT 1
