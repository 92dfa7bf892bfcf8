-- The todo table both servers read and write. Safe to apply again at any time:
-- it drops and recreates the table, so every run starts from the same 20 rows.
DROP TABLE IF EXISTS item;

CREATE TABLE item (
    id          serial      PRIMARY KEY,
    text        text        NOT NULL,
    date_posted timestamptz NOT NULL DEFAULT now()
);

-- fixed dates, so a page rendered today and tomorrow is the same page
INSERT INTO item (text, date_posted)
SELECT 'Todo item number ' || n, timestamptz '2017-05-01 09:00:00+00' + n * interval '1 hour'
FROM generate_series(1, 20) AS n;
