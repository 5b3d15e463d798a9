-- The table `bench statements` writes to.
CREATE TABLE t (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL UNIQUE, v BIGINT NOT NULL);
