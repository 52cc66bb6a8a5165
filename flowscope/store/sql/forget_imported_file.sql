DELETE FROM imported_files WHERE Sha256 = $sha256
