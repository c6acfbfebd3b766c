-- Run once by the postgres image on an empty data volume (compose.yaml): Prefect's database is
-- POSTGRES_DB (prefect); syncreel's run state gets its own database on the same server.
CREATE DATABASE syncreel;
