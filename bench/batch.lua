--- Batched-insert benchmark: sluice batch / pipeline / staged upsert
-- against their peers, in one run.
--
--   sluice --tmpdb bench/batch.lua [rows] [runs] [per_row_sample]
--   (defaults: 200000 3 20000; the issue's figure is 1000000)
--
-- Rows (host text, ts timestamptz, v float8, primary key (host, ts)),
-- row i = 0..N-1: host = "host-%03d" % (i % 1000), ts = 1700000000 + i s,
-- v = i / 7 - generated in Lua here and identically in
-- bench/peers/batch_psycopg.py.
--
-- (a) insert N rows into an empty table: sluice batch (rows = 1000 and
--     5000), sluice pipeline (sync every 1000), sluice staged upsert,
--     psycopg2 execute_values (page_size 1000 and 5000), psycopg 3
--     executemany in pipeline mode, and per-row INSERT in one
--     transaction (a prepared statement, on a sample, scaled).
-- (b) upsert N rows into a table already holding half of their keys
--     (even i, v = -1): sluice staged upsert, sluice batch with
--     on_conflict, psycopg2 execute_values ... ON CONFLICT, and psql
--     \copy into a staging table + INSERT ... SELECT ... ON CONFLICT.
--
-- Every method's table is checked equal (count + md5 of all rows in
-- order) to the first one's.  Times are medians of `runs`.  Client CPU
-- is this process's (sluice) or the child's (peers) user+system seconds;
-- for sluice methods the server backend's CPU is read from /proc (the
-- throwaway server runs on this machine), which shows where time goes.
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 200000
local RUNS = tonumber(arg[2]) or 3
local SAMPLE = math.min(N, tonumber(arg[3]) or 20000)
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local python = "/usr/bin/python3"
local url = os.getenv("DATABASE_URL") or ""

local db = sluice.connect()
db:exec("set client_min_messages = warning")
local datadir = db:query_one("show data_directory").data_directory
local workdir = datadir:match("^(.*)/[^/]*$")
local backend = db:info().backend_pid

-- CPU seconds of our server backend (utime + stime from /proc/PID/stat).
local CLK_TCK = 100
local function backend_cpu()
  local f = io.open("/proc/" .. backend .. "/stat")
  if not f then return 0 end
  local s = f:read("*a"); f:close()
  local rest = s:match("%) (.*)$")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  -- after "(comm)": state is field 3, utime 14, stime 15 (1-based in stat)
  return (tonumber(fields[12]) + tonumber(fields[13])) / CLK_TCK
end

local hosts = {}
for i = 0, 999 do hosts[i] = ("host-%03d"):format(i) end

local CREATE = "drop table if exists %s; create table %s (host text, ts timestamptz, v float8, primary key (host, ts))"

local function digest(tbl)
  return db:query_one(("select count(*) as n, md5(string_agg(t::text, E'\\n' order by ts)) as h from %s t")
    :format(tbl))
end

local have_py2 = os.execute(python .. " -c 'import psycopg2' 2>/dev/null") == 0
local have_py3 = os.execute(python .. " -c 'import psycopg' 2>/dev/null") == 0
local have_psql = B.have("psql")

local function peer(tbl, mode, page)
  return function()
    B.sh(("%s %s %s %s %d %s %s >/dev/null"):format(python, B.q(HERE .. "/peers/batch_psycopg.py"),
      B.q(url), tbl, N, mode, page or ""))
  end
end

local function run_suite(title, spec)
  print("\n### " .. title .. "\n")
  local results, ref = {}, nil
  for _, m in ipairs(spec.methods) do
    if m.available == false then
      results[#results + 1] = { name = m.name, skipped = m.why }
    else
      local times, cpus, scpus = {}, {}, {}
      local n = m.rows or spec.n
      for r = 1, RUNS do
        spec.reset()
        collectgarbage()
        local c0, s0 = B.cpu(m.child and -1 or 0), backend_cpu()
        local t0 = B.now()
        m.run(r)
        times[r] = B.now() - t0
        cpus[r] = B.cpu(m.child and -1 or 0) - c0
        scpus[r] = backend_cpu() - s0
      end
      if not m.rows then
        local d = digest(spec.table)
        assert(d.n == spec.n, ("%s: expected %d rows, found %s"):format(m.name, spec.n, tostring(d.n)))
        ref = ref or d.h
        assert(d.h == ref, m.name .. ": table contents differ from the first method's")
      end
      if m.after then m.after() end
      local t = B.median(times)
      results[#results + 1] = { name = m.name, rate = n / t, t = t * spec.n / n,
        cpu = B.median(cpus) / n * 1e6, scpu = (not m.child) and B.median(scpus) / n * 1e6,
        scaled = m.rows ~= nil }
    end
  end
  local by = {}
  for _, r in ipairs(results) do by[r.name] = r end
  local rows = {}
  for _, r in ipairs(results) do
    if r.skipped then
      rows[#rows + 1] = { r.name, "skipped: " .. r.skipped, "", "", "", "", "" }
    else
      local cells = { r.name, B.fmt(r.rate), ("%.2f%s"):format(r.t, r.scaled and " (scaled)" or "") }
      for _, peer_name in ipairs(spec.compare) do
        local p = by[peer_name]
        cells[#cells + 1] = (p and p.t) and ("%.2f×"):format(p.t / r.t) or "–"
      end
      cells[#cells + 1] = ("%.2f"):format(r.cpu)
      cells[#cells + 1] = r.scpu and ("%.2f"):format(r.scpu) or "–"
      rows[#rows + 1] = cells
    end
  end
  local cols = { "method", "rows/s", "seconds" }
  for _, p in ipairs(spec.compare) do cols[#cols + 1] = "vs " .. p end
  cols[#cols + 1] = "client CPU s / M rows"
  cols[#cols + 1] = "server backend CPU s / M rows"
  B.table(cols, rows)
  return by
end

------------------------------------------------------------ the methods
local function sluice_batch(tbl, rows, on_conflict)
  return function()
    local b = db:batch(tbl, { "host", "ts", "v" }, { rows = rows, on_conflict = on_conflict })
    for i = 0, N - 1 do b:add(hosts[i % 1000], 1700000000 + i, i / 7) end
    assert(b:close() == N)
  end
end

local function sluice_pipeline(tbl)
  return function()
    local pl = db:pipeline(("insert into %s (host, ts, v) values ($1, $2, $3)"):format(tbl),
      { sync_every = 1000 })
    for i = 0, N - 1 do pl:send(hosts[i % 1000], 1700000000 + i, i / 7) end
    assert(pl:close() == N)
  end
end

local function sluice_upsert(tbl)
  return function()
    local up = db:upsert(tbl, { "host", "ts", "v" }, { key = { "host", "ts" } })
    for i = 0, N - 1 do up:row(hosts[i % 1000], 1700000000 + i, i / 7) end
    up:finish()
  end
end

local function sluice_per_row(tbl)
  return function()
    db:begin()
    local st = db:prepare(("insert into %s (host, ts, v) values ($1, to_timestamp($2), $3)"):format(tbl))
    for i = 0, SAMPLE - 1 do st:exec(hosts[i % 1000], 1700000000 + i, i / 7) end
    st:close()
    db:commit()
  end
end

---------------------------------------------------------- (a) inserts
local A = "bench_batch"
-- the rows as a COPY text file, for psql \copy in (b): written by the
-- server from the table the first method loaded (the N rows)
local file = workdir .. "/bench_upsert.txt"
local function write_file()
  db:exec(("copy (select host, ts, v from %s order by ts) to '%s'"):format(A, file))
  B.sh("chmod 644 " .. B.q(file))
end
local ins = run_suite(("(a) insert %s metrics rows (host text, ts timestamptz, v float8, primary key (host, ts))")
  :format(B.fmt(N)), {
  table = A, n = N,
  reset = function() db:exec(CREATE:format(A, A)) end,
  compare = { "psycopg2 execute_values page_size=1000", "psycopg2 execute_values page_size=5000",
              "psycopg3 executemany pipeline" },
  methods = {
    { name = "sluice batch rows=1000", run = sluice_batch(A, 1000), after = write_file },
    { name = "sluice batch rows=5000", run = sluice_batch(A, 5000) },
    { name = "sluice pipeline sync_every=1000", run = sluice_pipeline(A) },
    { name = "sluice staged upsert", run = sluice_upsert(A) },
    { name = "psycopg2 execute_values page_size=1000", child = true, run = peer(A, "execute_values", 1000),
      available = have_py2, why = "python3-psycopg2 not installed" },
    { name = "psycopg2 execute_values page_size=5000", child = true, run = peer(A, "execute_values", 5000),
      available = have_py2, why = "python3-psycopg2 not installed" },
    { name = "psycopg3 executemany pipeline", child = true, run = peer(A, "psycopg3_pipeline"),
      available = have_py3, why = "python3-psycopg not installed" },
    { name = ("per-row INSERT, one transaction (%s-row sample)"):format(B.fmt(SAMPLE)),
      rows = SAMPLE, run = sluice_per_row(A) },
  },
})

---------------------------------------------------------- (b) upserts
local U = "bench_upsert"

local function psql_staging()
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(([[
create temp table s (like %s including defaults);
\copy s from '%s'
insert into %s select * from s on conflict (host, ts) do update set v = excluded.v;
]]):format(U, file, U))
  f:close()
  B.sh(("psql -X -q -1 -v ON_ERROR_STOP=1 %s -f %s >/dev/null"):format(B.q(url), B.q(script)))
  os.remove(script)
end

local ups = run_suite(("(b) upsert %s rows into a table holding half of their keys"):format(B.fmt(N)), {
  table = U, n = N,
  reset = function()
    db:exec(CREATE:format(U, U))
    db:exec(([[insert into %s select 'host-' || lpad((i %% 1000)::text, 3, '0'),
      to_timestamp(1700000000 + i), -1 from generate_series(0, %d, 2) i]]):format(U, N - 1))
    db:exec("vacuum analyze " .. U)
  end,
  compare = { "psql \\copy staging + INSERT … ON CONFLICT", "psycopg2 execute_values ON CONFLICT" },
  methods = {
    { name = "sluice staged upsert", run = sluice_upsert(U) },
    { name = "sluice batch rows=5000 on_conflict", run = sluice_batch(U, 5000,
        "(host, ts) DO UPDATE SET v = excluded.v") },
    { name = "psql \\copy staging + INSERT … ON CONFLICT", child = true, run = psql_staging,
      available = have_psql, why = "psql not found" },
    { name = "psycopg2 execute_values ON CONFLICT", child = true,
      run = peer(U, "execute_values_upsert", 1000),
      available = have_py2, why = "python3-psycopg2 not installed" },
  },
})
os.remove(file)

local function ratio(set, a, b)
  return set[a] and set[b] and set[a].t and set[b].t and set[b].t / set[a].t or 0 / 0
end
print()
local best_ev = math.min(ratio(ins, "sluice batch rows=5000", "psycopg2 execute_values page_size=1000"),
  ratio(ins, "sluice batch rows=5000", "psycopg2 execute_values page_size=5000"))
print(("sluice batch rows=5000 vs best execute_values: %.2f×"):format(best_ev))
print(("sluice pipeline vs psycopg3 executemany pipeline: %.2f×"):format(
  ratio(ins, "sluice pipeline sync_every=1000", "psycopg3 executemany pipeline")))
print(("sluice staged upsert vs psql staging route: %.2f×"):format(
  ratio(ups, "sluice staged upsert", "psql \\copy staging + INSERT … ON CONFLICT")))
print(("sluice staged upsert vs execute_values ON CONFLICT: %.2f×"):format(
  ratio(ups, "sluice staged upsert", "psycopg2 execute_values ON CONFLICT")))
