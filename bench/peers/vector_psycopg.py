"""Peer for bench/vector.lua: load the same embeddings with psycopg 3, the
vector sent as its text (what most pgvector users' code does).

    python3 vector_psycopg.py URL TABLE N DIM

Row i (1-based): id = i, document_id = (i - 1) // 10 + 1, embedding[j]
(1-based) = ((i + j) % 2048) / 1024 - 1, the same function as
bench/vector.lua.  COPY ... FROM STDIN in text format, one write_row per
row with the vector as "[x1,x2,...]".
"""
import sys

import psycopg

url, table, n, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])


def vector_text(i):
    return "[" + ",".join(repr(((i + j) % 2048) / 1024 - 1.0) for j in range(1, dim + 1)) + "]"


with psycopg.connect(url) as conn:
    with conn.cursor() as cur:
        sql = f"COPY {table} (id, document_id, embedding) FROM STDIN"
        with cur.copy(sql) as cp:
            for i in range(1, n + 1):
                cp.write_row((i, (i - 1) // 10 + 1, vector_text(i)))
