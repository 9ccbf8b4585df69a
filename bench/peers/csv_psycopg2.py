"""Peer for bench/csv.lua: load a CSV file with psycopg2's copy_expert.

    python3 csv_psycopg2.py URL TABLE PATH

The file (plain or gzip, by its name) is streamed to
COPY TABLE FROM STDIN (FORMAT csv, HEADER) -- the classic Python recipe
for loading a CSV file as it is.  Prints the seconds the load took.
"""
import gzip
import sys
import time

import psycopg2

url, table, path = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.monotonic()
opener = gzip.open if path.endswith(".gz") else open
with psycopg2.connect(url) as conn, conn.cursor() as cur, opener(path, "rb") as f:
    cur.copy_expert("COPY %s FROM STDIN (FORMAT csv, HEADER)" % table, f,
                    size=256 * 1024)
conn.close()
print("%.3f" % (time.monotonic() - t0))
