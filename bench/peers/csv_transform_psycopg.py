"""Peer for bench/csv.lua: read a CSV file with the csv module, transform
each row in Python, load the rows with psycopg 3's COPY (write_row).

    python3 csv_transform_psycopg.py URL TABLE PATH

The file (plain, or gzip when its name ends in .gz) has a header and the
columns id, name, email, country, amount, quantity, active, created_at.
The transform is bench/csv.lua's, step for step, so the tables come out
identical (the benchmark checks that):
  name        spaces trimmed at both ends
  email       lowercased; NULL when it has no "@"
  country     uppercased
  amount      parsed, rounded half up to cents (amount * 100 + 0.5, floored)
  quantity    parsed as an integer
  active      yes/no/Y/N/true/false/1/0 -> bool, anything else NULL
  created_at  passed on as it is (the server parses it)
  total       derived: cents * quantity / 100
COPY ... FROM STDIN in text format: the values are mostly strings already,
and psycopg's binary dumpers would need Decimal/datetime objects built in
Python first.  One transaction.  Prints the seconds the load took.
"""
import csv
import gzip
import math
import sys
import time

import psycopg

url, table, path = sys.argv[1], sys.argv[2], sys.argv[3]

ACTIVE = {"yes": True, "no": False, "Y": True, "N": False,
          "true": True, "false": False, "1": True, "0": False}
COLS = "id, name, email, country, amount, quantity, active, created_at, total"

t0 = time.monotonic()
if path.endswith(".gz"):
    f = gzip.open(path, "rt", encoding="utf-8", newline="")
else:
    f = open(path, encoding="utf-8", newline="")
floor, active_of = math.floor, ACTIVE.get
with f, psycopg.connect(url) as conn, conn.cursor() as cur:
    reader = csv.reader(f)
    next(reader)  # the header
    with cur.copy(f"COPY {table} ({COLS}) FROM STDIN") as cp:
        write_row = cp.write_row
        for id_, name, email, country, amount, qty, active, created in reader:
            email = email.lower()
            if "@" not in email:
                email = None
            cents = floor(float(amount) * 100 + 0.5)
            q = int(qty)
            write_row((id_, name.strip(" "), email, country.upper(),
                       cents / 100, q, active_of(active), created,
                       cents * q / 100))
print("%.3f" % (time.monotonic() - t0))
