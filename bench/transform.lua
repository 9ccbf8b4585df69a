--- The transform-and-load script as a newcomer writes it, against the
-- ways to do the same job without a script.
--
--   sluice --tmpdb bench/transform.lua [rows] [runs]   (defaults: 1000000 3)
--
-- The file: bench/csv_fixture.lua's (9 columns with a header, ~99 bytes
-- a line, a quarter of the lines with a quoted field holding a comma),
-- written once per run of this script by a child process, in the server
-- data directory's parent so that the server can read it too, and
-- removed at the end.
--
-- The job: people(id bigint, email text, name text, signup_date date,
-- city text, amount numeric(10,2), score int, note text, status text),
-- a logged table, with the email lowercased and the US date
-- ("MM/DD/YYYY") read as a date.  The ways:
--
--   sluice, plain:   for row in sluice.csv.rows(path, { header = true }),
--                    row.email:lower(), row.signup_date:match(...), a
--                    concatenation, tonumber on two fields, db:copy binary
--                    (the script below, as the README's first hour
--                    teaches a newcomer to write it);
--   sluice, helpers: the same loop with sluice.text's lower and number,
--                    the date passed as it is with layouts on the COPY;
--   psql \copy + SQL: psql \copy of the file into an UNLOGGED staging
--                    table of text columns, then INSERT ... SELECT with
--                    lower(), to_date() and casts (the usual route when
--                    the transform is written in SQL);
--   server COPY + SQL: the same with the server's own COPY ... FROM file;
--   server COPY, raw: the server's COPY ... FROM file of the raw CSV into
--                    the staging table, no transform: what the server
--                    alone spends reading this file (a floor, not a peer).
--   reading alone:   the plain loop's reader with nothing done per row
--                    (client CPU only; no database).
--
-- Each way's wall time covers the whole job (for the SQL routes: the
-- COPY, the INSERT ... SELECT and the staging table's TRUNCATE).  Runs
-- go round-robin (B.rounds); the table gives medians, the range, rows/s,
-- ratios against psql \copy + SQL from this same run, and the client's
-- CPU per million rows (this process, or the waited-for psql).  After
-- the first run of each way its table is checked against the plain
-- script's (count and md5 of every row in id order; an empty note is
-- compared as NULL, since the SQL routes read an unquoted empty field as
-- NULL and sluice.csv gives "" unless asked for null = "").
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 1000000
local RUNS = math.max(tonumber(arg[2]) or 3, 1)
local text = sluice.text

local db = sluice.connect()
db:exec("set client_min_messages = warning")
local url = os.getenv("DATABASE_URL") or ""
local datadir = db:query_one("show data_directory").data_directory
local path = datadir:match("^(.*)/[^/]*$") .. ("/bench_transform_%d.csv"):format(N)

B.sh(("%s %s %s %d"):format(B.q(B.exe()), B.q(HERE .. "/csv_fixture.lua"), B.q(path), N))
local bytes
do
  local f = assert(io.open(path, "rb"))
  bytes = f:seek("end")
  f:close()
end
io.stderr:write(("transform: wrote %d rows, %.1f MB\n"):format(N, bytes / 1e6))

local COLS = { "id", "email", "name", "signup_date", "city", "amount", "score", "note", "status" }
local TARGET = [[(id bigint, email text, name text, signup_date date, city text,
                  amount numeric(10,2), score int, note text, status text)]]
db:exec("drop table if exists bench_people, bench_people_staging")
db:exec("create table bench_people " .. TARGET)
db:exec([[create unlogged table bench_people_staging (id text, email text, name text,
          signup_date text, city text, amount text, score text, note text, status text)]])

local MOVE = [[insert into bench_people
  select id::bigint, lower(email), name, to_date(signup_date, 'MM/DD/YYYY'), city,
         amount::numeric(10,2), score::int, note, status
  from bench_people_staging]]

local function psql(cmds)
  local args = {}
  for i, c in ipairs(cmds) do args[i] = "-c " .. B.q(c) end
  B.sh(("psql -X -q -v ON_ERROR_STOP=1 %s %s >/dev/null"):format(B.q(url), table.concat(args, " ")))
end

-- The script a newcomer writes.
local function plain()
  local cp = db:copy("bench_people", COLS, { format = "binary" })
  for row in sluice.csv.rows(path, { header = true }) do
    local m, d, y = row.signup_date:match("^(%d%d)/(%d%d)/(%d%d%d%d)$")
    cp:row(row.id, row.email:lower(), row.name, y .. "-" .. m .. "-" .. d, row.city,
           tonumber(row.amount), tonumber(row.score), row.note, row.status)
  end
  assert(cp:finish() == N)
end

-- The same with the helpers.
local function helpers()
  local lower, number = text.lower, text.number
  local cp = db:copy("bench_people", COLS, { format = "binary",
                                             layouts = { signup_date = "MM/DD/YYYY" } })
  for row in sluice.csv.rows(path, { header = true }) do
    cp:row(row.id, lower(row.email), row.name, row.signup_date, row.city,
           number(row.amount), number(row.score), row.note, row.status)
  end
  assert(cp:finish() == N)
end

local keep = {} -- luacheck: ignore 241 (a ring: the rows really are made)
local function read_alone()
  local n = 0
  for row in sluice.csv.rows(path, { header = true }) do
    n = n + 1
    keep[n % 64] = row
  end
  assert(n == N)
end

local STAGE = "truncate bench_people_staging"
local PSQL = "psql \\copy + INSERT … SELECT"
local METHODS = {
  { name = "sluice, plain Lua (the newcomer's script)", run = plain },
  { name = "sluice, sluice.text helpers + layouts", run = helpers },
  { name = PSQL, child = true, run = function()
      psql({ ("\\copy bench_people_staging from '%s' (format csv, header)"):format(path),
             MOVE, STAGE })
    end },
  { name = "server COPY FROM file + INSERT … SELECT", run = function()
      db:exec(("copy bench_people_staging from '%s' (format csv, header)"):format(path))
      db:exec(MOVE)
      db:exec(STAGE)
    end },
  { name = "server COPY FROM file, raw (no transform; into staging)", staging = true,
    run = function()
      db:exec(("copy bench_people_staging from '%s' (format csv, header)"):format(path))
    end },
  { name = "reading alone (sluice.csv.rows keyed, no database)", none = true, run = read_alone },
}
if not B.have("psql") then METHODS[3].available = false end

local HASH = [[select count(*) as n, md5(string_agg(concat_ws('|', id, email, name, signup_date,
  city, amount, score, nullif(note, ''), status), E'\n' order by id)) as h from bench_people]]
local ref
B.rounds({
  methods = METHODS, runs = RUNS, db = db,
  reset = function()
    db:exec("truncate bench_people")
    db:exec(STAGE)
  end,
  check = function(m)
    if m.none then return end
    if m.staging then
      local n = db:query_one("select count(*) as n from bench_people_staging").n
      assert(n == N, m.name .. ": " .. tostring(n) .. " staged rows")
      return
    end
    local h = db:query_one(HASH)
    assert(h.n == N, m.name .. ": " .. tostring(h.n) .. " rows")
    ref = ref or h.h
    assert(h.h == ref, m.name .. ": other table contents than the plain script's")
  end,
})
os.remove(path)
db:exec("drop table bench_people, bench_people_staging")

local function lohi(xs)
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(xs) do lo, hi = math.min(lo, x), math.max(hi, x) end
  return lo, hi
end
local base
for _, m in ipairs(METHODS) do if m.name == PSQL and m.t then base = m.t end end
local per = 1e6 / N
print(("\n### A transform-and-load script: %s rows × 9 columns, %.1f MB of CSV, into a logged "
       .. "table (medians of %d runs, range in brackets)\n"):format(B.fmt(N), bytes / 1e6, RUNS))
local rows = {}
for _, m in ipairs(METHODS) do
  if m.t then
    local lo, hi = lohi(m.times)
    local clo, chi = lohi(m.cpus)
    rows[#rows + 1] = {
      m.name, ("%.2f [%.2f–%.2f]"):format(m.t, lo, hi), m.none and "–" or B.fmt(N / m.t),
      (base and not m.none) and ("%.2f×"):format(base / m.t) or "–",
      m.child and ("%.2f"):format(m.cpu * per) or (m.name:match("^sluice") or m.none)
        and ("%.2f [%.2f–%.2f]"):format(m.cpu * per, clo * per, chi * per) or "–",
    }
  else
    rows[#rows + 1] = { m.name, "skipped (psql not found)", "–", "–", "–" }
  end
end
B.table({ "way", "wall s", "rows/s", "vs psql \\copy + SQL", "client CPU s / M rows" }, rows)
