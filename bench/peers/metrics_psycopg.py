"""Peer for bench/copy.lua: load the same narrow metrics rows with psycopg.

    python3 metrics_psycopg.py URL TABLE N MODE
    MODE: psycopg3_text | psycopg3_binary | psycopg2_copy_expert

Row i (0-based): host = "host-%03d" % (i % 1000), ts = 1700000000 + i
seconds (UTC), v = i / 7.  The same function as bench/copy.lua, so the
tables can be compared.  Prints the seconds the load took.
"""
import io
import sys
import time
from datetime import datetime, timezone

url, table, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
EPOCH = 1700000000


def rows():
    for i in range(n):
        yield ("host-%03d" % (i % 1000),
               datetime.fromtimestamp(EPOCH + i, timezone.utc), i / 7)


t0 = time.monotonic()
if mode.startswith("psycopg3"):
    import psycopg
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            fmt = "BINARY" if mode.endswith("binary") else "TEXT"
            sql = f"COPY {table} (host, ts, v) FROM STDIN (FORMAT {fmt})"
            with cur.copy(sql) as cp:
                if fmt == "BINARY":
                    cp.set_types(["text", "timestamptz", "float8"])
                for r in rows():
                    cp.write_row(r)
elif mode == "psycopg2_copy_expert":
    # the classic recipe: build text in Python, stream it through copy_expert
    import psycopg2
    conn = psycopg2.connect(url)

    class Reader(io.TextIOBase):
        def __init__(self):
            self.it = rows()
            self.buf = ""

        def readable(self):
            return True

        def read(self, size=-1):
            while size < 0 or len(self.buf) < size:
                try:
                    h, ts, v = next(self.it)
                except StopIteration:
                    break
                self.buf += "%s\t%s\t%r\n" % (h, ts.isoformat(), v)
            if size < 0:
                out, self.buf = self.buf, ""
            else:
                out, self.buf = self.buf[:size], self.buf[size:]
            return out

    with conn:
        with conn.cursor() as cur:
            cur.copy_expert(f"COPY {table} (host, ts, v) FROM STDIN", Reader(), size=1 << 16)
    conn.close()
else:
    sys.exit("unknown mode " + mode)
print("%.6f" % (time.monotonic() - t0))
