--- CSV reading benchmark: what `for row in sluice.csv.rows(path) do`
-- costs, with no database in the way.
--
--   sluice bench/csv_read.lua [rows] [runs]        (defaults: 1000000 5)
--
-- The file (bench/csv_fixture.lua): rows rows of 9 columns with a header,
-- ~99 bytes a line, a quarter of the lines with a quoted field holding a
-- comma; written once per run of this script in $TMPDIR (or /tmp), by a
-- child process (sluice bench/csv_fixture.lua), and removed at the end.
-- The child keeps the generator's heap out of this process: LuaJIT's
-- collector works in proportion to the live heap, and the generator's
-- leftovers (measured: ~300 KB more, a string table twice the size) made
-- every read here 25-50% slower, whichever reader; the process that reads
-- is meant to look like a script that only reads.  CSV_READ_FILE=path
-- reads that file instead (kept; rows must be its record count): the same
-- file for several runs, or for two builds run in turn (each run's CPU
-- seconds also go to stderr).
--
-- Two ways to read it, each a plain generic for:
--   keyed   sluice.csv.rows(path, { header = true }): row.email, ...
--   array   sluice.csv.rows(path, { header = false }): row[2], ...
--           (the header line comes back as the first row)
-- The loop keeps each row in a small ring (so every table and string
-- really is made: nothing for the compiler to leave out) and counts the
-- rows.  CPU seconds (os.clock: user + system of this process), garbage
-- collection included; runs go round-robin (run 1 of each, then run 2,
-- ...), after a full collection; the table shows the median and the
-- range of `runs`, per million rows, and MB/s of the file.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 1000000
local RUNS = math.max(tonumber(arg[2]) or 5, 1)
local dir = os.getenv("TMPDIR") or "/tmp"
local path = ("%s/sluice_csv_read_%d_%d.csv"):format(dir, N, os.time())

local given = os.getenv("CSV_READ_FILE")
local bytes
if given and given ~= "" then
  path = given
  local f = assert(io.open(path, "rb"))
  bytes = f:seek("end")
  f:close()
else
  B.sh(("%s %s %s %d"):format(B.q(B.exe()), B.q(HERE .. "/csv_fixture.lua"), B.q(path), N))
  local f = assert(io.open(path, "rb"))
  bytes = f:seek("end")
  f:close()
  io.stderr:write(("csv_read: wrote %d rows, %.1f MB\n"):format(N, bytes / 1e6))
end

local keep = {} -- luacheck: ignore 241 (a ring: the rows really are made)
local function read(header)
  local n = 0
  for row in sluice.csv.rows(path, { header = header }) do
    n = n + 1
    keep[n % 64] = row
  end
  return n
end

local METHODS = {
  { name = "keyed rows (header = true)", header = true, want = N },
  { name = "array rows (header = false)", header = false, want = N + 1 },
}
for _, m in ipairs(METHODS) do m.cpu = {} end
for run = 1, RUNS do
  for _, m in ipairs(METHODS) do
    collectgarbage()
    collectgarbage()
    local c0 = os.clock()
    local n = read(m.header)
    local c = os.clock() - c0
    if n ~= m.want then
      error(("%s: %d rows, expected %d"):format(m.name, n, m.want))
    end
    m.cpu[run] = c
  end
  io.stderr:write(("csv_read: run %d/%d: keyed %.3f s, array %.3f s\n")
                  :format(run, RUNS, METHODS[1].cpu[run], METHODS[2].cpu[run]))
end
if not given or given == "" then os.remove(path) end

local function lohi(xs)
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(xs) do lo, hi = math.min(lo, x), math.max(hi, x) end
  return lo, hi
end
local per = 1e6 / N
print(("**%s rows × 9 columns, %.1f MB** (medians of %d runs, range in brackets)")
      :format(B.fmt(N), bytes / 1e6, RUNS))
print()
local rows = {}
for _, m in ipairs(METHODS) do
  local med = B.median(m.cpu)
  local lo, hi = lohi(m.cpu)
  rows[#rows + 1] = { m.name, ("%.2f [%.2f–%.2f]"):format(med * per, lo * per, hi * per),
                      ("%.0f"):format(bytes / 1e6 / med), B.fmt(N / med) }
end
B.table({ "read", "CPU s / M rows", "MB/s", "rows/s" }, rows)
