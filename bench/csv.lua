--- CSV benchmark (issue 5's "Must show"): one CSV file, plain and gzip,
-- loaded raw and through a per-row transform, against the usual peers, in
-- one run.
--
--   sluice --tmpdb bench/csv.lua [rows] [runs]      (defaults: 1000000 3)
--
-- The file: `rows` rows of 8 columns with a header, written by a
-- sluice.sink (CSV) plain and gzip (level 6), in the server data
-- directory's parent so the server can read it too:
--   id bigint, name text (some padded with spaces, some needing quotes),
--   email text (mixed case, some without "@"), country text (mostly lower
--   case), amount numeric(12,2) (written with 3 decimals), quantity int,
--   active bool (yes/no/Y/N/true/false/1/0), created_at timestamptz (with
--   various UTC offsets).
--
-- Two groups of methods, each loading into a fresh table:
--   raw: the file as it is into bench_csv_raw (the 8 columns):
--     sluice db:copy_from_file (plain, gz): no Lua per row;
--     psql \copy (format csv, header) of the plain file, and of the gz
--       file through `from program 'gzip -dc ...'`;
--     server-side COPY ... FROM 'file': no client at all;
--     pgloader (Debian's), through the unix socket;
--     psycopg2 copy_expert of the file (bench/peers/csv_psycopg2.py).
--   transform: every row through a transform into bench_csv_t (the 8
--   columns + total numeric(14,2)): trim name, lowercase email (NULL
--   without "@"), uppercase country, amount parsed and rounded half up to
--   cents, quantity parsed, active mapped to a bool (unknown: NULL),
--   created_at passed on, total = cents * quantity / 100 derived:
--     sluice csv.open -> transform in Lua -> db:copy, text and binary,
--       plain and gz;
--     Python csv.reader -> the same transform -> psycopg 3 cursor.copy()
--       write_row (bench/peers/csv_transform_psycopg.py; Debian's
--       python3-psycopg, pure Python), plain and gz.
-- Runs go round-robin (run 1 of every method, then run 2, ...) so that
-- changes in the machine's load fall on every method alike.  After the
-- last run each method's table is checked against its group's first
-- method (count + md5 of every row in id order): the Lua and Python
-- transforms must produce identical tables.  Times are medians; ratios
-- are against psql \copy of the plain raw file, from this same run.  CPU
-- is the client's user+system seconds per million rows (this process, or
-- the waited-for child and its children).  Peak RSS is this process's
-- VmHWM (/proc/self/status), reset before each run through
-- /proc/self/clear_refs, so each sluice method shows its own peak.
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 1000000
local RUNS = math.max(tonumber(arg[2]) or 3, 1)
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local PYTHON = "/usr/bin/python3"

local db = sluice.connect()
db:exec("set client_min_messages = warning")
local url = os.getenv("DATABASE_URL") or ""
local datadir = db:query_one("show data_directory").data_directory
local workdir = datadir:match("^(.*)/[^/]*$")
local plain, gz = workdir .. "/bench_csv.csv", workdir .. "/bench_csv.csv.gz"

local RAW, RAW_COLS = "bench_csv_raw", { "id", "name", "email", "country", "amount",
                                         "quantity", "active", "created_at" }
local T, T_COLS = "bench_csv_t", { "id", "name", "email", "country", "amount",
                                   "quantity", "active", "created_at", "total" }
local DDL = {
  [RAW] = "create table bench_csv_raw (id bigint, name text, email text, country text, "
       .. "amount numeric(12,2), quantity int, active bool, created_at timestamptz)",
  [T] = "create table bench_csv_t (id bigint, name text, email text, country text, "
     .. "amount numeric(12,2), quantity int, active bool, created_at timestamptz, "
     .. "total numeric(14,2))",
}
local function reset(tbl)
  db:exec("drop table if exists " .. tbl .. "; " .. DDL[tbl])
end

-- Peak RSS of this process: VmHWM in KiB, and a reset of it (Linux 4.0+).
local function vm(field)
  for l in io.lines("/proc/self/status") do
    local v = l:match("^" .. field .. ":%s*(%d+)")
    if v then return tonumber(v) end
  end
end
local function reset_peak()
  local f = io.open("/proc/self/clear_refs", "w")
  if f then f:write("5"); f:close() end
end
local function loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("*l") or "?"
  if f then f:close() end
  return s:match("^(%S+ %S+ %S+)") or s
end

------------------------------------------------------------- the files

local FIRST = { "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Donald",
                "Frances", "Edsger", "Radia", "Niklaus", "Hedy", "José", "Zoë" }
local LAST = { "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov",
               "Knuth", "Allen", "Dijkstra", "Perlman", "Wirth", "O'Neil, Jr.",
               "\"Doc\" Brown" }
local DOMAINS = { "Example.COM", "example.org", "MAIL.example.net", "Post.Example.de" }
local COUNTRIES = { "de", "fr", "us", "gb", "jp", "br", "in", "ng", "Es", "iT", "NL" }
local ACTIVE_TEXT = { "yes", "no", "Y", "N", "true", "false", "1", "0" }
local OFFSETS = { "+00", "+02:00", "-05:00", "+05:30" }

local function write_file(path, level)
  local s = sluice.sink.file(path, { columns = RAW_COLS, gzip = level })
  local T0 = 1700000000
  for i = 1, N do
    local f, l = FIRST[i % #FIRST + 1], LAST[(i * 7) % #LAST + 1]
    local name = f .. " " .. l
    if i % 3 == 0 then name = "  " .. name .. " " end
    local email = i % 53 == 0 and "n/a"
      or ("%s.%d@%s"):format(i % 2 == 0 and f or f:upper(), i, DOMAINS[i % #DOMAINS + 1])
    s:row(i, name, email, COUNTRIES[(i * 13) % #COUNTRIES + 1],
          ("%d.%03d"):format((i * 7919) % 100000, (i * 31) % 1000), (i * 17) % 25,
          ACTIVE_TEXT[i % #ACTIVE_TEXT + 1],
          os.date("!%Y-%m-%d %H:%M:%S", T0 + i * 37) .. OFFSETS[i % #OFFSETS + 1])
  end
  assert(s:finish() == N)
end

local t0 = B.now()
write_file(plain, false)
local t_plain = B.now() - t0
t0 = B.now()
write_file(gz, 6)
local t_gz = B.now() - t0
local rss_files = vm("VmHWM")
local function size(p)
  local f = assert(io.open(p, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end
B.sh("chmod 644 " .. B.q(plain) .. " " .. B.q(gz))

------------------------------------------------------------- the transform

-- The same steps as bench/peers/csv_transform_psycopg.py.
local ACTIVE = { yes = true, no = false, Y = true, N = false,
                 ["true"] = true, ["false"] = false, ["1"] = true, ["0"] = false }
local TYPES = { [1] = "integer", [5] = "number", [6] = "integer" }
local floor, byte, lower, upper, find, match =
  math.floor, string.byte, string.lower, string.upper, string.find, string.match

local function lua_transform(path, format)
  return function()
    local cp = db:copy(T, T_COLS, { format = format })
    -- id, amount and quantity are parsed by the reader (types), the rest
    -- stays text
    local r = sluice.csv.open(path, { header = false, skip = 1, types = TYPES })
    local next_row, row_ = r.next, cp.row
    while true do
      local row = next_row(r)
      if not row then break end
      local name = row[2]
      if byte(name, 1) == 32 or byte(name, -1) == 32 then name = match(name, "^ *(.-) *$") end
      local email = lower(row[3])
      if not find(email, "@", 1, true) then email = nil end
      local cents = floor(row[5] * 100 + 0.5)
      local q = row[6]
      row_(cp, row[1], name, email, upper(row[4]), cents / 100, q, ACTIVE[row[7]], row[8],
           cents * q / 100)
    end
    assert(cp:finish() == N)
  end
end

------------------------------------------------------------- the methods

local function from_file(path)
  return function() assert(db:copy_from_file(RAW, path) == N) end
end

local function psql(cmd)
  B.sh(("psql -X -q -v ON_ERROR_STOP=1 %s -c %s >/dev/null"):format(B.q(url), B.q(cmd)))
end

-- pgloader through the unix socket (the URL's host is the socket folder).
local sockdir = url:match("host=([^&]+)") or "/var/run/postgresql"
local port = url:match("port=(%d+)") or "5432"
local user = url:match("user=([^&]+)") or "postgres"
local dbname = url:match("^postgresql:///([^?]+)") or "postgres"
local pg_target = ("pgsql://%s@unix:%s:%s/%s?tablename=%s"):format(user, sockdir, port, dbname, RAW)
local pgloader_log = workdir .. "/pgloader"
local function pgloader(path)
  return function()
    local fields = {}
    for i, c in ipairs(RAW_COLS) do fields[i] = "--field " .. c end
    -- pgloader's CSV defaults are RFC 4180's (comma, optional double quotes)
    -- except that it trims spaces around unquoted fields: keep them, as COPY does
    B.sh(("pgloader --quiet --root-dir %s --type csv %s --with 'skip header = 1' "
          .. "--with 'keep unquoted blanks' %s %s >/dev/null"):format(B.q(pgloader_log), table.concat(fields, " "),
                                       B.q(path), B.q(pg_target)))
  end
end

local function py(script, tbl, path)
  return function()
    B.sh(("%s %s %s %s %s >/dev/null"):format(PYTHON, B.q(HERE .. "/peers/" .. script),
                                             B.q(url), tbl, B.q(path)))
  end
end

local have_psycopg2 = os.execute(PYTHON .. " -c 'import psycopg2' 2>/dev/null") == 0
local have_psycopg = os.execute(PYTHON .. " -c 'import psycopg' 2>/dev/null") == 0
local have_pgloader = io.open("/usr/bin/pgloader") ~= nil

local PSQL = "psql \\copy csv"
local methods = {
  { name = "sluice copy_from_file", tbl = RAW, run = from_file(plain) },
  { name = "sluice copy_from_file (gz)", tbl = RAW, run = from_file(gz) },
  { name = PSQL, tbl = RAW, child = true,
    run = function() psql(("\\copy %s from '%s' (format csv, header)"):format(RAW, plain)) end },
  { name = "psql \\copy csv (gz, from program gzip -dc)", tbl = RAW, child = true,
    run = function()
      psql(("\\copy %s from program 'gzip -dc %s' (format csv, header)"):format(RAW, gz))
    end },
  { name = "server COPY FROM file csv", tbl = RAW, server = true,
    run = function() db:exec(("copy %s from '%s' (format csv, header)"):format(RAW, plain)) end },
  { name = "pgloader", tbl = RAW, child = true, run = pgloader(plain), probe = true,
    available = have_pgloader, why = "/usr/bin/pgloader not installed (Debian package pgloader)" },
  { name = "psycopg2 copy_expert", tbl = RAW, child = true,
    run = py("csv_psycopg2.py", RAW, plain),
    available = have_psycopg2, why = "python3-psycopg2 not installed" },
  { name = "sluice csv -> Lua transform -> copy text", tbl = T, run = lua_transform(plain, "text") },
  { name = "sluice csv -> Lua transform -> copy binary", tbl = T,
    run = lua_transform(plain, "binary") },
  { name = "sluice csv (gz) -> Lua transform -> copy text", tbl = T,
    run = lua_transform(gz, "text") },
  { name = "sluice csv (gz) -> Lua transform -> copy binary", tbl = T,
    run = lua_transform(gz, "binary") },
  { name = "Python csv -> transform -> psycopg 3 copy", tbl = T, child = true,
    run = py("csv_transform_psycopg.py", T, plain),
    available = have_psycopg, why = "python3-psycopg not installed" },
  { name = "Python csv (gz) -> transform -> psycopg 3 copy", tbl = T, child = true,
    run = py("csv_transform_psycopg.py", T, gz),
    available = have_psycopg, why = "python3-psycopg not installed" },
}

-- BENCH_ONLY=text runs only the methods whose name contains it (the
-- reference, psql \copy, always runs; the others are listed as skipped)
local only = os.getenv("BENCH_ONLY")
if only then
  for _, m in ipairs(methods) do
    if m.name ~= PSQL and not m.name:find(only, 1, true) then
      m.available, m.why = false, "not in BENCH_ONLY"
    end
  end
end

local function digest(tbl)
  return db:query_one(("select count(*) as n, md5(string_agg(t::text, E'\\n' order by id)) "
                      .. "as h from %s t"):format(tbl))
end

local load0 = loadavg()
print(("\n### %s rows x 8 columns CSV: %.1f MB plain, %.1f MB gzip (written by a "
       .. "sink in %.2f s / %.2f s)\n"):format(B.fmt(N), size(plain) / 1e6, size(gz) / 1e6,
                                             t_plain, t_gz))
collectgarbage()
local rss_base = vm("VmRSS")
local t_start = B.now()
for _, m in ipairs(methods) do m.times, m.cpus, m.peak = {}, {}, 0 end
local ref = {}
for r = 1, RUNS do
  for _, m in ipairs(methods) do
    if m.available ~= false then
      reset(m.tbl)
      collectgarbage()
      reset_peak()
      local who = m.child and -1 or 0
      local c0 = B.cpu(who)
      local s0 = B.now()
      local ok, err = pcall(m.run, r)
      local dt = B.now() - s0
      local cpu = B.cpu(who) - c0
      local peak = vm("VmHWM")
      if m.probe and r == 1 then
        -- a peer that cannot load the file here is listed as skipped, with why
        local n = ok and db:query_one("select count(*) as n from " .. m.tbl).n or 0
        if not ok or n ~= N then
          m.available = false
          m.why = ok and ("loaded %d of %d rows"):format(n, N)
            or ("failed: " .. tostring(err):match("[^\n]*\n?([^\n]*)"))
        end
      elseif not ok then
        error(m.name .. ": " .. tostring(err), 0)
      end
      if m.available ~= false then
        m.times[r], m.cpus[r] = dt, cpu
        if not m.child and not m.server then m.peak = math.max(m.peak, peak) end
        if r == RUNS then
          local d = digest(m.tbl)
          assert(d.n == N, ("%s: expected %d rows, found %s"):format(m.name, N, tostring(d.n)))
          ref[m.tbl] = ref[m.tbl] or { h = d.h, by = m.name }
          assert(d.h == ref[m.tbl].h, ("%s: table contents differ from %s's")
                 :format(m.name, ref[m.tbl].by))
          m.t, m.cpu = B.median(m.times), B.median(m.cpus)
        end
      end
    end
  end
end
local t_all = B.now() - t_start
local load1 = loadavg()

local by = {}
for _, m in ipairs(methods) do by[m.name] = m end
local base = by[PSQL].t
local rows, peak_all = {}, 0
for _, m in ipairs(methods) do
  local group = m.tbl == RAW and "raw" or "transform"
  if m.available == false then
    rows[#rows + 1] = { m.name, group, "skipped: " .. m.why, "", "", "", "" }
  else
    peak_all = math.max(peak_all, m.peak)
    rows[#rows + 1] = {
      m.name, group, B.fmt(N / m.t), ("%.2f"):format(m.t), ("%.2f×"):format(base / m.t),
      m.server and "(server)" or ("%.2f"):format(m.cpu / N * 1e6),
      m.peak > 0 and ("%.1f"):format(m.peak / 1024) or "",
    }
  end
end
B.table({ "method", "group", "rows/s", "median s", "vs psql \\copy", "client CPU s / M rows",
          "sluice peak RSS MB" }, rows)

print(("\n%d runs each, round-robin, medians; %.0f s in all.  Contents checked (count + md5): "
       .. "raw methods equal %s's table, transform methods equal %s's."):format(
       RUNS, t_all, ref[RAW].by, ref[T].by))
print(("Load average (1/5/15 min): %s before the runs, %s after (2 CPUs, shared)."):format(
       load0, load1))
print(("sluice RSS: %.1f MB before the loads; peak %.1f MB while writing the files; peak of "
       .. "any load %.1f MB."):format(rss_base / 1024, rss_files / 1024, peak_all / 1024))

------------------------------------------------------------- the targets

local function cleanup()
  os.remove(plain)
  os.remove(gz)
  B.sh("rm -rf " .. B.q(pgloader_log))
  db:exec("drop table if exists bench_csv_raw; drop table if exists bench_csv_t")
  db:close()
end
if only then
  print("\n(BENCH_ONLY run: the targets need every method)")
  cleanup()
  os.exit(0)
end

local function ratio(a, b)
  return (by[a] and by[a].t and by[b] and by[b].t) and by[b].t / by[a].t or nil
end
local function verdict(label, x, want, what)
  if not x then
    print(("- %s: not measured (%s)"):format(label, what))
  else
    print(("- %s: %.2f× (target ≥ %g×) — %s; %s"):format(label, x, want,
          x >= want and "met" or "NOT met", what))
  end
end
local function faster(a, b) return by[a].t <= by[b].t and a or b end
local best = faster("sluice csv -> Lua transform -> copy binary",
                    "sluice csv -> Lua transform -> copy text")
local best_gz = faster("sluice csv (gz) -> Lua transform -> copy binary",
                       "sluice csv (gz) -> Lua transform -> copy text")
local pgl = by.pgloader.t and "pgloader" or nil
local pyt = "Python csv -> transform -> psycopg 3 copy"

print("\nTargets (issue 5), from this run:\n")
verdict("raw: copy_from_file vs psql \\copy", ratio("sluice copy_from_file", PSQL), 0.95,
        ("gz file: %.2f× psql \\copy of the plain file, %.2f× psql \\copy from gzip -dc")
        :format(ratio("sluice copy_from_file (gz)", PSQL),
                ratio("sluice copy_from_file (gz)", "psql \\copy csv (gz, from program gzip -dc)")))
verdict("with the transform: " .. best .. " vs psql \\copy of the raw file", ratio(best, PSQL),
        0.7, ("gz: %s %.2f×"):format(best_gz, ratio(best_gz, PSQL)))
if pgl then
  verdict("vs pgloader, the same job (raw file): copy_from_file vs pgloader",
          ratio("sluice copy_from_file", pgl), 3,
          ("with the transform (%s): %.2f× pgloader, %s"):format(best, ratio(best, pgl),
          ratio(best, pgl) >= 3 and "also ≥ 3×" or "below 3×"))
else
  verdict("vs pgloader", nil, 3, by.pgloader.why)
end
if by[pyt].t then
  verdict("vs the Python pipeline (same transform): " .. best .. " vs Python",
          ratio(best, pyt), 3, ("gz: %s %.2f× Python (gz)"):format(best_gz,
          ratio(best_gz, "Python csv (gz) -> transform -> psycopg 3 copy")))
else
  verdict("vs the Python pipeline", nil, 3, by[pyt].why)
end
local flat = peak_all < 40 * 1024
print(("- peak RSS: %.1f MB at most during any sluice load (target: flat, under 40 MB) — %s; "
       .. "%.1f MB before the loads, so a load of %s rows added %.1f MB")
      :format(peak_all / 1024, flat and "met" or "NOT met", rss_base / 1024, B.fmt(N),
              (peak_all - rss_base) / 1024))

cleanup()
