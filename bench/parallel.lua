--- Parallel loading: rows/s with jobs = 1, 2, 4 (worker processes) and
-- connections = 1, 2, 4 (one process dealing rows to N connections), on
--   (a) the metrics generator (sluice.gen) -> COPY binary, and the
--       server's own single-stream COPY FROM a ready binary file of the
--       same rows (what no client can beat with one stream);
--   (b) a CSV of N rows (bench/csv_fixture.lua, 9 columns) read with a
--       per-row Lua transform written the plain way: header-keyed rows,
--       tonumber, :lower(), :upper(), a :match() -> COPY binary.
--
--   sluice --tmpdb bench/parallel.lua [rows (1000000)] [runs (3)]
--
-- Every method loads the same rows into the same table (truncated before
-- each run); the contents are checked after each method's first run (md5
-- of the rows in key order, equal to the first method's).  Runs go round
-- robin (bench/common.lua); times are medians.  CPU is the parent's and
-- the workers' (the server's is in neither).
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local B = require "common"
local sluice = require "sluice"
local fixture = require "csv_fixture"

local N = tonumber(arg[1]) or 1000000
local RUNS = math.max(tonumber(arg[2]) or 3, 1)

local db = sluice.connect()
db:exec("set client_min_messages = warning")
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. B.q(dir) .. " && chmod 777 " .. B.q(dir)) -- the server writes the binary file

local function digest(tbl, order)
  return db:query_one(("select count(*) as n, md5(string_agg(x::text, E'\\n' order by %s)) as h "
                       .. "from %s x"):format(order, tbl))
end

local function check_same(ref, tbl, order, name)
  local d = digest(tbl, order)
  if ref.h == nil then
    ref.h, ref.n = d.h, d.n
  elseif d.h ~= ref.h or d.n ~= ref.n then
    error(("%s: the table differs from the first method's (%s rows, md5 %s; expected %s rows, "
           .. "md5 %s)"):format(name, d.n, d.h, ref.n, ref.h))
  end
  if tonumber(d.n) ~= N then error(name .. ": " .. tostring(d.n) .. " rows, expected " .. N) end
end

-- The workers' CPU (waited-for children) of each run, beside the
-- parent's that B.rounds measures.
local function with_worker_cpu(methods)
  for _, m in ipairs(methods) do
    local run = m.run
    m.wcpus = {}
    m.run = function(...)
      local c0 = B.cpu(-1)
      run(...)
      m.wcpus[#m.wcpus + 1] = B.cpu(-1) - c0
    end
  end
  return methods
end

local function report(title, methods, base_name)
  print("\n### " .. title .. "\n")
  local base
  for _, m in ipairs(methods) do
    if m.name == base_name then base = m end
  end
  local rows = {}
  for _, m in ipairs(methods) do
    rows[#rows + 1] = { m.name, B.fmt(N), ("%.2f"):format(m.t), B.fmt(N / m.t),
                        ("%.2f"):format(m.cpu), ("%.2f"):format(B.median(m.wcpus)),
                        ("%.2f×"):format(base.t / m.t) }
  end
  B.table({ "method", "rows", "seconds (median)", "rows/s", "CPU s (parent)", "CPU s (workers)",
            "vs " .. base_name }, rows)
end

----------------------------------------------------------------- (a)
db:exec("drop table if exists bench_par_metrics; create table bench_par_metrics "
        .. "(id bigint primary key, host text, ts timestamptz, cpu float8, mem float8, "
        .. "ok boolean)")
local g = sluice.gen(42):stream("metrics")
local T0 = 1700000000
local function metric_rows()
  return g:rows(1, N, function(r, i)
    return { i, "host-" .. r:int(1, 200), T0 + i, r:normal(50, 15), r:float(0, 64), r:bool(0.98) }
  end)
end

local ref_a = {}
local methods_a = {}
for _, j in ipairs { 1, 2, 4 } do
  methods_a[#methods_a + 1] = { name = "jobs = " .. j, run = function()
    sluice.load { db = db, table = "bench_par_metrics", rows = metric_rows(), jobs = j,
                  quiet = true }
  end }
end
for _, c in ipairs { 2, 4 } do
  methods_a[#methods_a + 1] = { name = "connections = " .. c, run = function()
    sluice.load { db = db, table = "bench_par_metrics", rows = metric_rows(), connections = c,
                  quiet = true }
  end }
end
local binfile = dir .. "/metrics.bin"
local binlit = "'" .. binfile:gsub("'", "''") .. "'"
methods_a[#methods_a + 1] = { name = "server COPY FROM file (binary)", run = function()
  db:exec(("copy bench_par_metrics from %s (format binary)"):format(binlit))
end, prepare = function()
  local f = io.open(binfile)
  if f then f:close() return end
  db:exec("truncate bench_par_metrics")
  sluice.load { db = db, table = "bench_par_metrics", rows = metric_rows(), quiet = true }
  db:exec(("copy bench_par_metrics to %s (format binary)"):format(binlit))
end }

B.rounds { runs = RUNS, db = db, methods = with_worker_cpu(methods_a),
  reset = function() db:exec("truncate bench_par_metrics") end,
  check = function(m) check_same(ref_a, "bench_par_metrics", "id", m.name) end }
report(("(a) metrics generator -> COPY binary, %s rows"):format(B.fmt(N)), methods_a, "jobs = 1")

----------------------------------------------------------------- (b)
local csvfile = dir .. "/people.csv"
local bytes = fixture.write(csvfile, N)
db:exec("drop table if exists bench_par_csv; create table bench_par_csv (id bigint primary key, "
        .. "email text, domain text, name text, city text, amount float8, score int, note text, "
        .. "status text)")
-- the plain way: keyed rows, string methods, tonumber
local function transform(r)
  local email = r.email:lower()
  return { tonumber(r.id), email, email:match("@(.+)$") or sluice.null, r.name, r.city:lower(),
           tonumber(r.amount), tonumber(r.score), r.note ~= "" and r.note or sluice.null,
           r.status:upper() }
end

local ref_b = {}
local methods_b = {}
for _, j in ipairs { 1, 2, 4 } do
  methods_b[#methods_b + 1] = { name = "jobs = " .. j, run = function()
    sluice.load { db = db, table = "bench_par_csv", rows = sluice.csv.rows(csvfile), jobs = j,
                  transform = transform, quiet = true }
  end }
end
for _, c in ipairs { 2, 4 } do
  methods_b[#methods_b + 1] = { name = "connections = " .. c, run = function()
    sluice.load { db = db, table = "bench_par_csv", rows = sluice.csv.rows(csvfile),
                  connections = c, transform = transform, quiet = true }
  end }
end
B.rounds { runs = RUNS, db = db, methods = with_worker_cpu(methods_b),
  reset = function() db:exec("truncate bench_par_csv") end,
  check = function(m) check_same(ref_b, "bench_par_csv", "id", m.name) end }
report(("(b) CSV (%s rows, %.0f MB) -> per-row Lua transform -> COPY binary"):format(
  B.fmt(N), bytes / 1e6), methods_b, "jobs = 1")

print(("\n%d cores online; every method's table checked identical to the first's."):format(
  tonumber(io.popen("nproc"):read("*l")) or 0))
db:exec("drop table bench_par_metrics; drop table bench_par_csv")
os.execute("rm -rf " .. B.q(dir))
