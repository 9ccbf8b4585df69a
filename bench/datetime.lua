--- Date/time strings through binary COPY: the cost of reading them in C.
--
--   sluice --tmpdb bench/datetime.lua [rows] [runs]   (defaults: 1000000 5)
--
-- One table (ts timestamp, tz timestamptz, d date) loaded with db:copy
-- (format "binary") from strings built before the clock starts, in
-- three sets: ISO timestamps as PostgreSQL prints them (the fast path),
-- the same with a 'T' and an offset, and other forms the server reads
-- (month names, DateStyle order, Julian days).  Times are medians of
-- `runs`; client CPU is this process's user+system seconds.  The session
-- is UTC unless TZ_NAME is set in the environment (then offset-less
-- timestamptz strings are read with that zone's rules).
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 1000000
local RUNS = tonumber(arg[2]) or 5

local db = sluice.connect()
db:exec("set client_min_messages = warning")
db:query("select set_config($$TimeZone$$, $1, false)", os.getenv("TZ_NAME") or "UTC")
db:exec("drop table if exists bench_dt")
db:exec("create unlogged table bench_dt (ts timestamp, tz timestamptz, d date)")

local MON = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
              "Oct", "Nov", "Dec" }

-- Row i's parts: a day in 1990..2030 and a time with microseconds.
local function parts(i)
  local s = 631152000 + (i * 7919) % (40 * 365 * 86400)
  local t = os.date("!*t", s)
  return t.year, t.month, t.day, t.hour, t.min, t.sec, (i * 104729) % 1000000
end

local SETS = {
  { "ISO (fast path)", function(i)
      local y, mo, d, h, mi, s, us = parts(i)
      local ts = ("%04d-%02d-%02d %02d:%02d:%02d.%06d"):format(y, mo, d, h, mi, s, us)
      return ts, ts .. "+00", ts:sub(1, 10)
    end },
  { "ISO with T and offsets", function(i)
      local y, mo, d, h, mi, s, us = parts(i)
      local ts = ("%04d-%02d-%02dT%02d:%02d:%02d.%06d"):format(y, mo, d, h, mi, s, us)
      return ts .. "Z", ts .. "-05:30", ("%04d%02d%02d"):format(y, mo, d)
    end },
  { "other forms", function(i)
      local y, mo, d, h, mi, s = parts(i)
      return ("%s %d %d %d:%02d:%02d %s"):format(MON[mo], d, y, (h + 11) % 12 + 1, mi, s,
                                                  h < 12 and "AM" or "PM"),
             ("%02d/%02d/%04d %02d:%02d"):format(mo, d, y, h, mi),
             ("%d-%s-%04d"):format(d, MON[mo], y)
    end },
}

print(("\n### %d rows (ts timestamp, tz timestamptz, d date), binary COPY, median of %d\n")
      :format(N, RUNS))
print("| strings | wall s | client CPU s | rows/s |")
print("|---|---:|---:|---:|")
for _, set in ipairs(SETS) do
  local a, b, c = {}, {}, {}
  for i = 1, N do a[i], b[i], c[i] = set[2](i) end
  local walls, cpus = {}, {}
  for r = 1, RUNS do
    db:exec("truncate bench_dt")
    db:exec("checkpoint")
    collectgarbage()
    local t0, c0 = B.now(), B.cpu()
    local cp = db:copy("bench_dt", { "ts", "tz", "d" }, { format = "binary" })
    for i = 1, N do cp:row(a[i], b[i], c[i]) end
    assert(cp:finish() == N)
    walls[r], cpus[r] = B.now() - t0, B.cpu() - c0
  end
  local w = B.median(walls)
  print(("| %s | %.3f | %.3f | %.0f |"):format(set[1], w, B.median(cpus), N / w))
end
db:exec("drop table bench_dt")
