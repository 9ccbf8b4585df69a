--- pgvector benchmark: embeddings into vector(1536), sluice against its
-- peers and the server's own ceiling, then the index experiment.
--
--   sluice --tmpdb bench/vector.lua [rows] [runs] [index_rows]
--   (defaults: 20000 3 5000)
--
-- (a) rows (id bigint, document_id bigint, embedding vector(1536)), row
--     i: document_id = (i - 1) // 10 + 1, embedding[j] = ((i + j) % 2048)
--     / 1024 - 1 (multiples of 2^-10, exact in float4, so every path
--     stores the same bits).  Methods, each into a fresh table:
--     sluice COPY binary from Lua arrays and from FFI float[] buffers,
--     sluice COPY text, psql \copy of a ready text file, server-side COPY
--     of a binary file (no client: the ceiling), psycopg 3 with the
--     vector as text; and sluice COPY binary into real[] from Lua arrays.
--     Contents are checked after each method's first run (count + md5 of
--     all rows in order); runs go round-robin, each after a CHECKPOINT;
--     times are medians; ratios compare medians of this run.  Client CPU
--     is this process's (sluice) or the child's (peers), also per float.
-- (b) the index experiment: index_rows clustered 1536-dim vectors into a
--     table with an HNSW index (vector_cosine_ops) and a btree, by COPY
--     binary with the indexes in place, with drop-and-rebuild, and by
--     UNLOGGED staging then INSERT ... SELECT (sluice.load); the same
--     contents each time.
local sluice = require "sluice"
local ffi = require "ffi"
local B = require "common"

local N = tonumber(arg[1]) or 20000
local RUNS = tonumber(arg[2]) or 3
local NI = tonumber(arg[3]) or 5000
local DIM = 1536
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local db = sluice.connect()
db:exec("set client_min_messages = warning")
if not db:query_one("select 1 as x from pg_available_extensions where name = 'vector'") then
  print("pgvector is not installed on this PostgreSQL: bench/vector.lua needs it (make deps)")
  return
end
db:exec("create extension if not exists vector")
local url = os.getenv("DATABASE_URL") or ""
local datadir = db:query_one("show data_directory").data_directory
local workdir = datadir:match("^(.*)/[^/]*$")
local python = "/usr/bin/python3"
local have_py3 = os.execute(python .. " -c 'import psycopg' 2>/dev/null") == 0

local function psql(cmd)
  B.sh(("psql -X -q -v ON_ERROR_STOP=1 %s -c %s >/dev/null"):format(B.q(url), B.q(cmd)))
end

local function digest(tbl)
  return db:query_one(("select count(*) as n, md5(string_agg(t::text, E'\\n' order by id)) as h from %s t")
    :format(tbl))
end

-- the rows: 64 distinct vectors would be cheaper to make, but each row's
-- own values keep the comparison honest (the same per-row work for all)
local vec = {}
local function fill(i)
  for j = 1, DIM do vec[j] = ((i + j) % 2048) / 1024 - 1.0 end
  return vec
end
local fbuf = ffi.new("float[?]", DIM)
local function fill_f(i)
  for j = 1, DIM do fbuf[j - 1] = ((i + j) % 2048) / 1024 - 1.0 end
  return fbuf
end

local function sluice_copy(tbl, format, filler)
  return function()
    local cp = db:copy(tbl, { "id", "document_id", "embedding" }, { format = format, quiet = true })
    for i = 1, N do cp:row(i, math.floor((i - 1) / 10) + 1, filler(i)) end
    assert(cp:finish() == N)
  end
end

local function reset(m)
  local ty = m.real and "real[]" or ("vector(%d)"):format(DIM)
  local t = m.real and "bench_real" or "bench_vec"
  db:exec(("drop table if exists %s; create table %s (id bigint, document_id bigint, embedding %s)")
          :format(t, t, ty))
end

local file_txt, file_bin = workdir .. "/vec.txt", workdir .. "/vec.bin"
local methods = {
  { name = "sluice COPY binary (Lua arrays)", run = sluice_copy("bench_vec", "binary", fill), floats = true,
    after = function()
      db:exec(("copy bench_vec to '%s'"):format(file_txt))
      db:exec(("copy bench_vec to '%s' (format binary)"):format(file_bin))
      B.sh("chmod 644 " .. B.q(file_txt) .. " " .. B.q(file_bin))
    end },
  { name = "sluice COPY binary (FFI float[])", run = sluice_copy("bench_vec", "binary", fill_f), floats = true },
  { name = "sluice COPY text (Lua arrays)", run = sluice_copy("bench_vec", "text", fill), floats = true },
  { name = "psql \\copy text file", child = true,
    run = function() psql(("\\copy bench_vec from '%s'"):format(file_txt)) end },
  { name = "server COPY binary file", server = true,
    run = function() db:exec(("copy bench_vec from '%s' (format binary)"):format(file_bin)) end },
  { name = "psycopg3 COPY, vector as text", child = true, available = have_py3,
    why = "python3-psycopg not installed",
    run = function()
      B.sh(("%s %s %s bench_vec %d %d"):format(python, B.q(HERE .. "/peers/vector_psycopg.py"),
                                               B.q(url), N, DIM))
    end },
  { name = "sluice COPY binary, real[] (Lua arrays)", real = true, floats = true,
    run = sluice_copy("bench_real", "binary", fill) },
}

print(("\n### (a) %s embeddings (id bigint, document_id bigint, embedding vector(%d))\n")
      :format(B.fmt(N), DIM))
local ref, ref_real
B.rounds { db = db, runs = RUNS, methods = methods, reset = reset,
  check = function(m)
    local d = digest(m.real and "bench_real" or "bench_vec")
    assert(d.n == N, ("%s: expected %d rows, found %s"):format(m.name, N, tostring(d.n)))
    if m.real then
      ref_real = ref_real or d.h
      assert(d.h == ref_real, m.name .. ": contents differ")
    else
      ref = ref or d.h
      assert(d.h == ref, m.name .. ": table contents differ from the first method's")
    end
    if m.after then m.after() end
  end }
local by = {}
for _, m in ipairs(methods) do by[m.name] = m end
local rows = {}
local compare = { "server COPY binary file", "psql \\copy text file", "psycopg3 COPY, vector as text" }
for _, m in ipairs(methods) do
  if m.available == false then
    rows[#rows + 1] = { m.name, "skipped: " .. m.why, "", "", "", "", "", "" }
  else
    local cells = { m.name, B.fmt(N / m.t), ("%.2f"):format(m.t) }
    for _, peer in ipairs(compare) do
      local p = by[peer]
      cells[#cells + 1] = (p and p.t) and ("%.2f×"):format(p.t / m.t) or "–"
    end
    cells[#cells + 1] = m.server and "(server)" or ("%.2f"):format(m.cpu)
    cells[#cells + 1] = m.floats and ("%.1f"):format(m.cpu / (N * DIM) * 1e9) or ""
    rows[#rows + 1] = cells
  end
end
local cols = { "method", "rows/s", "seconds" }
for _, peer in ipairs(compare) do cols[#cols + 1] = "vs " .. peer end
cols[#cols + 1] = "client CPU s"
cols[#cols + 1] = "client ns / float"
B.table(cols, rows)
os.remove(file_txt); os.remove(file_bin)

local function ratio(a, b)
  return by[a] and by[b] and by[a].t and by[b].t and by[b].t / by[a].t or 0 / 0
end
print(("\nsluice binary vs server binary file: %.2f×"):format(
  ratio("sluice COPY binary (Lua arrays)", "server COPY binary file")))
print(("sluice binary vs psycopg3 text: %.2f×"):format(
  ratio("sluice COPY binary (Lua arrays)", "psycopg3 COPY, vector as text")))

------------------------------------------------------- (b) the index experiment
print(("\n### (b) %s clustered vectors into vector(%d) with an HNSW (vector_cosine_ops) "
       .. "and a btree index\n"):format(B.fmt(NI), DIM))
local g = sluice.gen(5)
local function index_rows()
  return g:rows(1, NI, function(r, i)
    return { i, math.floor((i - 1) / 10) + 1, (r:clustered(100, DIM, 0.35)) }
  end)
end
local imethods = {
  { name = "COPY binary, indexes in place", opts = {} },
  { name = "COPY binary, drop and rebuild", opts = { drop_indexes = true,
    maintenance_work_mem = "1GB", max_parallel_maintenance_workers = 1 } },
  { name = "UNLOGGED staging, INSERT ... SELECT", opts = { strategy = "unlogged_staging" } },
}
for _, m in ipairs(imethods) do
  m.idx = {}
  m.run = function()
    local o = { db = db, table = "bench_idx", rows = index_rows(), quiet = true }
    for k, v in pairs(m.opts) do o[k] = v end
    m.idx[#m.idx + 1] = sluice.load(o).index_seconds
  end
end
local iref
B.rounds { db = db, runs = RUNS, methods = imethods,
  reset = function()
    db:exec(("drop table if exists bench_idx; create table bench_idx (id bigint, document_id bigint, "
             .. "embedding vector(%d))"):format(DIM))
    db:exec("create index on bench_idx using hnsw (embedding vector_cosine_ops)")
    db:exec("create index on bench_idx (document_id)")
  end,
  check = function(m)
    local d = digest("bench_idx")
    assert(d.n == NI, m.name .. ": wrong row count")
    iref = iref or d.h
    assert(d.h == iref, m.name .. ": table contents differ")
  end }
local irows = {}
for _, m in ipairs(imethods) do
  local idx = B.median(m.idx)
  irows[#irows + 1] = { m.name, ("%.2f"):format(m.t), B.fmt(NI / m.t),
                        idx > 0 and ("%.2f"):format(idx) or "", ("%.2f×"):format(imethods[1].t / m.t) }
end
B.table({ "method", "seconds", "rows/s", "of which index build s", "vs indexes in place" }, irows)
print(("\nwith indexes vs drop and rebuild: %.2f×"):format(imethods[1].t / imethods[2].t))
db:exec("drop table if exists bench_vec, bench_real, bench_idx")
