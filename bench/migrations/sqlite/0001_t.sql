-- The table `bench statements` writes to (the services' own tables are
-- not needed to time a statement and a commit).
CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v BIGINT NOT NULL);
