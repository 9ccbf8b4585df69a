--- COPY benchmark: sluice's COPY stream against its peers, in one run.
--
--   sluice --tmpdb bench/copy.lua [metrics_rows] [embedding_rows] [runs]
--   (defaults: 1000000 20000 3)
--
-- (a) narrow metrics rows (host text, ts timestamptz, v float8), row i:
--     host = "host-%03d" % (i % 1000), ts = 1700000000 + i s, v = i / 7.
-- (b) embeddings (id bigint, document_id bigint, vector real[1536]).
--
-- Methods, each loading the same rows into a fresh table:
--   sluice COPY text / binary, rows generated in Lua;
--   psql \copy of a ready text file;
--   server-side COPY FROM a file, text and binary (no client at all: the
--   server's own ceiling);
--   psycopg 3 (Debian's pure-Python build) copy.write_row, text / binary;
--   psycopg2 copy_expert fed by Python-built text (the classic recipe).
-- After each method's first run the table's contents are checked against
-- the first method's (count + md5 of all rows in order).  Runs go
-- round-robin, each after a CHECKPOINT; times are medians of `runs`;
-- ratios compare medians from this same run.  Client CPU is this process's
-- (sluice) or the child's (peers) user+system seconds per million rows.
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 1000000
local NE = tonumber(arg[2]) or 20000
local RUNS = tonumber(arg[3]) or 3
local DIM = 1536
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local db = sluice.connect()
db:exec("set client_min_messages = warning")
local url = os.getenv("DATABASE_URL") or ""
-- files the server reads must be readable by its user: keep them in the
-- data directory's parent when we run on a private server
local datadir = db:query_one("show data_directory").data_directory
local workdir = datadir:match("^(.*)/[^/]*$")
local python = "/usr/bin/python3"

local function psql(cmd)
  B.sh(("psql -X -q -v ON_ERROR_STOP=1 %s -c %s >/dev/null"):format(B.q(url), B.q(cmd)))
end

local function digest(tbl, order)
  return db:query_one(("select count(*) as n, md5(string_agg(t::text, E'\\n' order by %s)) as h from %s t")
    :format(order, tbl))
end

-- Run every method `RUNS` times; check contents; print the table.
local function run_suite(title, spec)
  print("\n### " .. title .. "\n")
  -- Runs go round-robin (run 1 of every method, then run 2, ...) and
  -- each starts after a CHECKPOINT, so neither machine noise nor the WAL
  -- an earlier load left to flush lands on one method only.
  local ref
  B.rounds { db = db, runs = RUNS, methods = spec.methods, reset = spec.reset,
    check = function(m)
      local d = digest(spec.table, spec.order)
      assert(d.n == spec.n, ("%s: expected %d rows, found %s"):format(m.name, spec.n, tostring(d.n)))
      ref = ref or d.h
      assert(d.h == ref, m.name .. ": table contents differ from the first method's")
      if m.after then m.after() end
    end }
  local results = {}
  for _, m in ipairs(spec.methods) do
    if m.available == false then
      results[#results + 1] = { name = m.name, skipped = m.why }
    else
      results[#results + 1] = { name = m.name, t = m.t, cpu = m.cpu, server = m.server }
    end
  end
  local by = {}
  for _, r in ipairs(results) do by[r.name] = r end
  local rows = {}
  for _, r in ipairs(results) do
    if r.skipped then
      rows[#rows + 1] = { r.name, "skipped: " .. r.skipped, "", "", "", "" }
    else
      local cells = { r.name, B.fmt(spec.n / r.t), ("%.2f"):format(r.t) }
      for _, peer in ipairs(spec.compare) do
        local p = by[peer]
        cells[#cells + 1] = (p and p.t) and ("%.2f×"):format(p.t / r.t) or "–"
      end
      cells[#cells + 1] = r.server and "(server)" or ("%.2f"):format(r.cpu / spec.n * 1e6)
      rows[#rows + 1] = cells
    end
  end
  local cols = { "method", "rows/s", "seconds" }
  for _, peer in ipairs(spec.compare) do cols[#cols + 1] = "vs " .. peer end
  cols[#cols + 1] = "client CPU s / M rows"
  B.table(cols, rows)
  return by
end

---------------------------------------------------------------- (a) metrics
local function metrics_reset()
  db:exec("drop table if exists bench_metrics; create table bench_metrics (host text, ts timestamptz, v float8)")
end

local hosts = {}
for i = 0, 999 do hosts[i] = ("host-%03d"):format(i) end

local function sluice_metrics(format)
  return function()
    local cp = db:copy("bench_metrics", { "host", "ts", "v" }, { format = format })
    for i = 0, N - 1 do
      cp:row(hosts[i % 1000], 1700000000 + i, i / 7)
    end
    assert(cp:finish() == N)
  end
end

local have_py3 = os.execute(python .. " -c 'import psycopg' 2>/dev/null") == 0
local have_py2 = os.execute(python .. " -c 'import psycopg2' 2>/dev/null") == 0
local mfile_txt, mfile_bin = workdir .. "/metrics.txt", workdir .. "/metrics.bin"

local function peer(mode)
  return function()
    B.sh(("%s %s %s bench_metrics %d %s >/dev/null"):format(python, B.q(HERE .. "/peers/metrics_psycopg.py"),
      B.q(url), N, mode))
  end
end

local metrics = run_suite(("(a) %s metrics rows (host text, ts timestamptz, v float8)"):format(B.fmt(N)), {
  table = "bench_metrics", order = "ts", n = N, reset = metrics_reset,
  compare = { "psql \\copy text file", "server COPY binary file", "psycopg3 write_row binary" },
  methods = {
    { name = "sluice COPY binary", run = sluice_metrics("binary"),
      after = function()
        -- the ready files for the file-based peers, written by the server
        db:exec(("copy bench_metrics to '%s'"):format(mfile_txt))
        db:exec(("copy bench_metrics to '%s' (format binary)"):format(mfile_bin))
        B.sh("chmod 644 " .. B.q(mfile_txt) .. " " .. B.q(mfile_bin))
      end },
    { name = "sluice COPY text", run = sluice_metrics("text") },
    { name = "psql \\copy text file", child = true,
      run = function() psql(("\\copy bench_metrics from '%s'"):format(mfile_txt)) end },
    { name = "server COPY text file", server = true,
      run = function() db:exec(("copy bench_metrics from '%s'"):format(mfile_txt)) end },
    { name = "server COPY binary file", server = true,
      run = function() db:exec(("copy bench_metrics from '%s' (format binary)"):format(mfile_bin)) end },
    { name = "psycopg3 write_row binary", child = true, run = peer("psycopg3_binary"),
      available = have_py3, why = "python3-psycopg not installed" },
    { name = "psycopg3 write_row text", child = true, run = peer("psycopg3_text"),
      available = have_py3, why = "python3-psycopg not installed" },
    { name = "psycopg2 copy_expert", child = true, run = peer("psycopg2_copy_expert"),
      available = have_py2, why = "python3-psycopg2 not installed" },
  },
})

------------------------------------------------------------- (b) embeddings
local function emb_reset()
  db:exec("drop table if exists bench_emb; create table bench_emb (id bigint, document_id bigint, vector real[])")
end

-- vector values are multiples of 2^-10, exact in float4, so text and
-- binary paths must agree bit for bit
local vec = {}
local function fill(i)
  for j = 1, DIM do vec[j] = ((i + j) % 2048) / 1024 - 1.0 end
  return vec
end

local function sluice_emb(format)
  return function()
    local cp = db:copy("bench_emb", { "id", "document_id", "vector" }, { format = format })
    for i = 1, NE do cp:row(i, math.floor((i - 1) / 10) + 1, fill(i)) end
    assert(cp:finish() == NE)
  end
end

local efile_txt, efile_bin = workdir .. "/emb.txt", workdir .. "/emb.bin"
local emb = run_suite(("(b) %s embeddings (id bigint, document_id bigint, vector real[%d])"):format(B.fmt(NE), DIM), {
  table = "bench_emb", order = "id", n = NE, reset = emb_reset,
  compare = { "psql \\copy text file", "server COPY binary file" },
  methods = {
    { name = "sluice COPY binary", run = sluice_emb("binary"),
      after = function()
        db:exec(("copy bench_emb to '%s'"):format(efile_txt))
        db:exec(("copy bench_emb to '%s' (format binary)"):format(efile_bin))
        B.sh("chmod 644 " .. B.q(efile_txt) .. " " .. B.q(efile_bin))
      end },
    { name = "sluice COPY text", run = sluice_emb("text") },
    { name = "psql \\copy text file", child = true,
      run = function() psql(("\\copy bench_emb from '%s'"):format(efile_txt)) end },
    { name = "server COPY text file", server = true,
      run = function() db:exec(("copy bench_emb from '%s'"):format(efile_txt)) end },
    { name = "server COPY binary file", server = true,
      run = function() db:exec(("copy bench_emb from '%s' (format binary)"):format(efile_bin)) end },
  },
})

os.remove(mfile_txt); os.remove(mfile_bin); os.remove(efile_txt); os.remove(efile_bin)

---------------------------------------------------------- memory, 10M rows
local RSS_ROWS = tonumber(os.getenv("BENCH_RSS_ROWS") or "") or 10000000
local script = ([[
  local db = require("sluice").connect()
  db:exec("drop table if exists bench_rss; create unlogged table bench_rss (host text, ts timestamptz, v float8)")
  local cp = db:copy("bench_rss", {"host", "ts", "v"}, {format = "binary"})
  for i = 0, %d - 1 do cp:row("host-" .. (i %% 1000), 1700000000 + i, i / 7) end
  assert(cp:finish() == %d)
  db:exec("drop table bench_rss")
  local f = io.open("/proc/self/status"); local s = f:read("*a"); f:close()
  print(s:match("VmHWM:%%s*(%%d+)"))
]]):format(RSS_ROWS, RSS_ROWS)
local exe = B.q(B.exe())
local p = io.popen(exe .. " -e " .. B.q(script))
local hwm = tonumber(p:read("*l"))
p:close()
print(("\npeak RSS of a %s-row binary COPY: %.1f MB\n"):format(B.fmt(RSS_ROWS), (hwm or 0) / 1024))

-- summary lines the README quotes
local function ratio(set, a, b)
  return set[a] and set[b] and set[a].t and set[b].t and set[b].t / set[a].t or 0 / 0
end
print(("sluice binary vs server binary file (metrics): %.2f×"):format(
  ratio(metrics, "sluice COPY binary", "server COPY binary file")))
print(("sluice text vs psql \\copy (metrics): %.2f×"):format(
  ratio(metrics, "sluice COPY text", "psql \\copy text file")))
print(("sluice binary vs psycopg3 binary write_row (metrics): %.2f×"):format(
  ratio(metrics, "sluice COPY binary", "psycopg3 write_row binary")))
print(("sluice binary vs server binary file (embeddings): %.2f×"):format(
  ratio(emb, "sluice COPY binary", "server COPY binary file")))
