--- CSV benchmark: loading one CSV file (plain and gzip) every way sluice
-- offers, against the usual peers, in one run.
--
--   sluice --tmpdb bench/csv.lua [rows] [runs]      (defaults: 500000 3)
--
-- The file: `rows` rows of 5 columns (id bigint, name text, email text,
-- amount numeric(12,2), created_at timestamp), written by a sluice.sink
-- (CSV with a header), plain and gzip (level 6), in the server data
-- directory's parent so the server can read it too.
--
-- Methods, each loading the same file into a fresh table:
--   sluice csv.rows -> db:copy (binary / text): every row through Lua, no
--     transform (the reader and the COPY encoders are the cost);
--   db:copy_from_file: the file's bytes straight into COPY (no Lua per row);
--   psql \copy ... (format csv, header) of the plain file;
--   server-side COPY ... FROM 'file' (format csv, header): no client at all;
--   pgloader (Debian's), when /usr/bin/pgloader exists, through the socket;
--   psycopg2 copy_expert of the file (bench/peers/csv_psycopg2.py).
-- After each method the table is checked against the first load (count and
-- md5 of every row in id order).  Times are medians of `runs`; ratios are
-- against psql \copy of the plain file, measured in this same run.  CPU is
-- the client's user+system seconds per million rows (this process, or the
-- waited-for child), peak RSS the process's high-water mark.
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 500000
local RUNS = math.max(tonumber(arg[2]) or 3, 1)
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local db = sluice.connect()
db:exec("set client_min_messages = warning")
local url = os.getenv("DATABASE_URL") or ""
local datadir = db:query_one("show data_directory").data_directory
local workdir = datadir:match("^(.*)/[^/]*$")
local plain, gz = workdir .. "/bench_csv.csv", workdir .. "/bench_csv.csv.gz"
local TABLE = "bench_csv"
local COLS = { "id", "name", "email", "amount", "created_at" }

local function reset()
  db:exec("drop table if exists bench_csv; create table bench_csv (id bigint, "
          .. "name text, email text, amount numeric(12,2), created_at timestamp)")
end

------------------------------------------------------------- the files

local FIRST = { "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Donald",
                "Frances", "Edsger", "Radia", "Niklaus", "Hedy", "José", "Zoë" }
local LAST = { "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov",
               "Knuth", "Allen", "Dijkstra", "Perlman", "Wirth", "O'Neil, Jr." }

local function write_file(path, gzip)
  local s = sluice.sink.file(path, { columns = COLS, gzip = gzip })
  local T0 = 1700000000
  for i = 1, N do
    local f, l = FIRST[i % #FIRST + 1], LAST[(i * 7) % #LAST + 1]
    s:row(i, f .. " " .. l, ("%s.%d@example.com"):format(f:lower(), i),
          ("%d.%02d"):format(i % 100000, i % 100),
          os.date("!%Y-%m-%d %H:%M:%S", T0 + i * 37))
  end
  assert(s:finish() == N)
end

local t0 = B.now()
write_file(plain, false)
local t_plain = B.now() - t0
t0 = B.now()
write_file(gz, 6)
local t_gz = B.now() - t0
local function size(p)
  local f = assert(io.open(p, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end
B.sh("chmod 644 " .. B.q(plain) .. " " .. B.q(gz))

------------------------------------------------------------- the methods

local function through_lua(path, format)
  return function()
    local cp = db:copy(TABLE, COLS, { format = format })
    local r = sluice.csv.open(path, { header = false, skip = 1 })
    local next_row = r.next
    while true do
      local row = next_row(r)
      if not row then break end
      cp:row(row[1], row[2], row[3], row[4], row[5])
    end
    assert(cp:finish() == N)
  end
end

local function from_file(path)
  return function() assert(db:copy_from_file(TABLE, path) == N) end
end

local function psql(cmd)
  B.sh(("psql -X -q -v ON_ERROR_STOP=1 %s -c %s >/dev/null"):format(B.q(url), B.q(cmd)))
end

-- pgloader through the unix socket (the URL's host is the socket folder).
local sockdir = url:match("host=([^&]+)") or "/var/run/postgresql"
local port = url:match("port=(%d+)") or "5432"
local user = url:match("user=([^&]+)") or "postgres"
local dbname = url:match("^postgresql:///([^?]+)") or "postgres"
local pg_target = ("pgsql://%s@unix:%s:%s/%s?tablename=%s"):format(user, sockdir, port, dbname, TABLE)
local pgloader_log = workdir .. "/pgloader"
local function pgloader(path)
  return function()
    local fields = {}
    for i, c in ipairs(COLS) do fields[i] = "--field " .. c end
    -- pgloader's CSV defaults are RFC 4180's: comma, optional double quotes
    B.sh(("pgloader --quiet --root-dir %s --type csv %s --with 'skip header = 1' "
          .. "%s %s >/dev/null"):format(B.q(pgloader_log), table.concat(fields, " "),
                                       B.q(path), B.q(pg_target)))
  end
end

local function psycopg2(path)
  return function()
    B.sh(("/usr/bin/python3 %s %s %s %s >/dev/null"):format(
      B.q(HERE .. "/peers/csv_psycopg2.py"), B.q(url), TABLE, B.q(path)))
  end
end

local have_psycopg2 = os.execute("/usr/bin/python3 -c 'import psycopg2' 2>/dev/null") == 0
local have_pgloader = io.open("/usr/bin/pgloader") ~= nil

-- pgloader is tried once before the runs: when it cannot load the file
-- here, it is listed as skipped with its reason.
local pgloader_why = "/usr/bin/pgloader not installed (Debian package pgloader)"
if have_pgloader then
  reset()
  local ok, err = pcall(pgloader(plain))
  local n = ok and db:query_one("select count(*) as n from bench_csv").n or 0
  if ok and n == N then
    pgloader_why = nil
  else
    have_pgloader = false
    pgloader_why = ok and ("loaded %d of %d rows"):format(n, N)
      or ("failed: " .. tostring(err):match("[^\n]*\n?([^\n]*)"))
  end
end

local methods = {
  { name = "sluice csv.rows -> copy binary", run = through_lua(plain, "binary") },
  { name = "sluice csv.rows -> copy text", run = through_lua(plain, "text") },
  { name = "sluice csv.rows (gz) -> copy binary", run = through_lua(gz, "binary") },
  { name = "sluice copy_from_file", run = from_file(plain) },
  { name = "sluice copy_from_file (gz)", run = from_file(gz) },
  { name = "psql \\copy csv", child = true,
    run = function() psql(("\\copy %s from '%s' (format csv, header)"):format(TABLE, plain)) end },
  { name = "server COPY FROM file csv", server = true,
    run = function() db:exec(("copy %s from '%s' (format csv, header)"):format(TABLE, plain)) end },
  { name = "pgloader", child = true, run = pgloader(plain),
    available = have_pgloader, why = pgloader_why },
  { name = "psycopg2 copy_expert", child = true, run = psycopg2(plain),
    available = have_psycopg2, why = "python3-psycopg2 not installed" },
  { name = "psycopg2 copy_expert (gz)", child = true, run = psycopg2(gz),
    available = have_psycopg2, why = "python3-psycopg2 not installed" },
}

local function digest()
  return db:query_one("select count(*) as n, md5(string_agg(t::text, E'\\n' order by id)) "
                      .. "as h from bench_csv t")
end

print(("\n### %s rows x 5 columns CSV: %.1f MB plain, %.1f MB gzip (written by a "
       .. "sink in %.2f s / %.2f s)\n"):format(B.fmt(N), size(plain) / 1e6, size(gz) / 1e6,
                                             t_plain, t_gz))
local results, ref = {}, nil
for _, m in ipairs(methods) do
  if m.available == false then
    results[#results + 1] = { name = m.name, skipped = m.why }
  else
    local times, cpus = {}, {}
    for r = 1, RUNS do
      reset()
      collectgarbage()
      local c0 = B.cpu(m.child and -1 or 0)
      local s0 = B.now()
      m.run(r)
      times[r] = B.now() - s0
      cpus[r] = B.cpu(m.child and -1 or 0) - c0
    end
    local d = digest()
    assert(d.n == N, ("%s: expected %d rows, found %s"):format(m.name, N, tostring(d.n)))
    ref = ref or d.h
    assert(d.h == ref, m.name .. ": table contents differ from the first method's")
    results[#results + 1] = { name = m.name, t = B.median(times), cpu = B.median(cpus),
                              server = m.server }
  end
end

local base
for _, r in ipairs(results) do
  if r.name == "psql \\copy csv" then base = r.t end
end
local rows = {}
for _, r in ipairs(results) do
  if r.skipped then
    rows[#rows + 1] = { r.name, "skipped", "", "", r.skipped }
  else
    rows[#rows + 1] = {
      r.name, B.fmt(N / r.t), ("%.2f×"):format(base / r.t),
      r.server and "(server)" or ("%.2f"):format(r.cpu / N * 1e6), ("%.2f"):format(r.t),
    }
  end
end
B.table({ "method", "rows/s", "vs psql \\copy", "client CPU s/M rows", "median s" }, rows)
local _, rss = B.cpu(0)
print(("\nsluice peak RSS: %.1f MB (whole run, including writing the files); "
       .. "%d runs each, contents checked equal (md5)."):format(rss / 1024, RUNS))

os.remove(plain)
os.remove(gz)
B.sh("rm -rf " .. B.q(pgloader_log))
db:exec("drop table if exists bench_csv")
db:close()
