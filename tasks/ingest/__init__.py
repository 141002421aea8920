"""Data ingestion: fetch and verify archives (download stage), extract them safely, read each
corpus format into sentences or labelled examples and split them (prepare stage)."""
