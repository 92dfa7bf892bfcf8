"""Put the data back to its starting state: schema.sql applied, the Redis counter deleted.

    python scripts/reset_db.py        # uses DATABASE_URL and REDIS_URL

The benchmark calls reset() before every measured run and counts rows and views after it
(its audit); the tests do the same around what they check.
"""

import argparse
import os
import sys
from pathlib import Path

import psycopg2
import redis

SCHEMA = Path(__file__).resolve().parent.parent / "schema.sql"


def reset(database_url, redis_url):
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute(SCHEMA.read_text())
    conn.close()
    client = redis.Redis.from_url(redis_url)
    client.delete("counter")
    client.close()


def count_rows(database_url):
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM item")
        count = cursor.fetchone()[0]
    conn.close()
    return count


def counter_value(redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.get("counter") or 0)
    finally:
        client.close()


def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    try:
        reset(os.environ["DATABASE_URL"], os.environ["REDIS_URL"])
    except KeyError as missing:
        sys.exit(f"reset_db: set {missing.args[0]}")
    except (psycopg2.Error, redis.RedisError) as error:
        sys.exit(f"reset_db: {error}")


if __name__ == "__main__":
    main()
