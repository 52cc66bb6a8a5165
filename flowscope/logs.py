"""How flowscope's processes log: the CLI and the ingest process it starts write alike."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
