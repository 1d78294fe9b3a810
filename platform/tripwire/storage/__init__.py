"""Storage plumbing shared by review and compliance: SQL databases (SQLite or PostgreSQL) and Parquet
files."""
