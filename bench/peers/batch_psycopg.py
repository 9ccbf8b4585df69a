"""Peer for bench/batch.lua: load the same narrow metrics rows with psycopg.

    python3 batch_psycopg.py URL TABLE N MODE [PAGE_SIZE]
    MODE: execute_values        psycopg2 extras.execute_values (page_size)
          execute_values_upsert the same, ... ON CONFLICT (host, ts)
                                DO UPDATE SET v = excluded.v
          psycopg3_pipeline     psycopg 3 executemany inside conn.pipeline()

Row i (0-based): host = "host-%03d" % (i % 1000), ts = 1700000000 + i
seconds (UTC), v = i / 7 - the same function as bench/batch.lua, so the
tables can be compared.  One transaction per run (commit at the end).
Prints the seconds the load took.
"""
import sys
import time
from datetime import datetime, timezone

url, table, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
page = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
EPOCH = 1700000000


def rows():
    for i in range(n):
        yield ("host-%03d" % (i % 1000),
               datetime.fromtimestamp(EPOCH + i, timezone.utc), i / 7)


t0 = time.monotonic()
if mode in ("execute_values", "execute_values_upsert"):
    import psycopg2
    import psycopg2.extras
    conn = psycopg2.connect(url)
    sql = f"INSERT INTO {table} (host, ts, v) VALUES %s"
    if mode == "execute_values_upsert":
        sql += " ON CONFLICT (host, ts) DO UPDATE SET v = excluded.v"
    with conn:
        with conn.cursor() as cur:
            psycopg2.extras.execute_values(cur, sql, rows(), page_size=page)
    conn.close()
elif mode == "psycopg3_pipeline":
    import psycopg
    with psycopg.connect(url) as conn:
        with conn.pipeline():
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {table} (host, ts, v) VALUES (%s, %s, %s)",
                    rows())
else:
    sys.exit("unknown mode " + mode)
print("%.6f" % (time.monotonic() - t0))
