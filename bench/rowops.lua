--- A transform-and-load script's per-row work, three ways: the plain-Lua
-- way (s:lower(), string.match on a US date, tonumber, a concatenation),
-- with sluice.text's helpers, and with db:copy's layouts option (the
-- date string passed as it is, read in C).
--
--   sluice --tmpdb bench/rowops.lua [rows] [runs]   (defaults: 1000000 5)
--
-- The input rows (tables of strings, as a CSV reader gives them) are
-- made with sluice.gen outside the clocks.  Each way loads them into the
-- same unlogged table by binary COPY; client CPU is os.clock() (this
-- process: the loop, the encoders, libpq), medians of `runs` with the
-- range; the table contents are checked equal across the ways.
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 1000000 -- a multiple of CHUNK (50000)
local RUNS = tonumber(arg[2]) or 5
local text = sluice.text

local db = sluice.connect()
db:exec("set client_min_messages = warning")
db:exec("drop table if exists bench_users")
db:exec([[create unlogged table bench_users (email text, signup_date date, balance float8,
          visits int, name text)]])

-- The input: what a CSV reader hands a script, rows of strings, made in
-- chunks of CHUNK rows (untimed, with a full GC after each) so that the
-- heap stays small as it does when reading a file: a million row tables
-- kept in memory would make every way pay for cache misses and GC
-- traversals that a reading script does not have.
local CHUNK = 50000
local rows = {}
local g = sluice.gen(7):stream("users")

-- MM/DD/YYYY of a day (epoch seconds), without os.date (which LuaJIT
-- does not compile: making the rows would take longer than using them).
local function mdy(secs)
  local z = math.floor(secs / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
                          - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return ("%02d/%02d/%04d"):format(m, d, yoe + era * 400 + (m <= 2 and 1 or 0))
end

local function make_chunk(k)
  for j = 1, CHUNK do
    local r = g:at(k * CHUNK + j)
    local first, last = r:first_name(), r:last_name()
    local email = r:email(first, last)
    rows[j] = {
      email = email:sub(1, 1):upper() .. email:sub(2),
      signup_date = mdy(r:date("1990-01-01", "2024-12-31")),
      balance = ("%.2f"):format(r:float(0, 100000)),
      visits = tostring(r:int(0, 500)),
      first = first, last = last,
    }
  end
end

local COLS = { "email", "signup_date", "balance", "visits", "name" }

-- Each way: its layouts, and its loop over rows 1..CHUNK into cp.
local WAYS = {
  { "plain Lua: s:lower(), s:match, tonumber, ..", nil, function(cp)
      for i = 1, CHUNK do
        local row = rows[i]
        local m, d, y = row.signup_date:match("^(%d%d)/(%d%d)/(%d%d%d%d)$")
        cp:row(row.email:lower(), y .. "-" .. m .. "-" .. d, tonumber(row.balance),
               tonumber(row.visits), row.first .. " " .. row.last)
      end
    end },
  { "sluice.text helpers (date_layout, number)", nil, function(cp)
      local lower, number = text.lower, text.number
      local signup = text.date_layout("MM/DD/YYYY")
      for i = 1, CHUNK do
        local row = rows[i]
        cp:row(lower(row.email), signup(row.signup_date), number(row.balance),
               number(row.visits), row.first .. " " .. row.last)
      end
    end },
  { "layouts = { signup_date = \"MM/DD/YYYY\" }", { signup_date = "MM/DD/YYYY" }, function(cp)
      local lower, number = text.lower, text.number
      for i = 1, CHUNK do
        local row = rows[i]
        cp:row(lower(row.email), row.signup_date, number(row.balance),
               number(row.visits), row.first .. " " .. row.last)
      end
    end },
}

print(("\n### A transform-and-load loop, %d rows, binary COPY: client CPU s (os.clock), "
       .. "median of %d [range]\n"):format(N, RUNS))
print("| way | client CPU s | wall s | rows/s (wall) |")
print("|---|---:|---:|---:|")
local first_hash
for _, way in ipairs(WAYS) do
  local cpus, walls = {}, {}
  for r = 1, RUNS do
    db:exec("truncate bench_users")
    local cpu, wall = 0, 0
    local cp = db:copy("bench_users", COLS, { format = "binary", layouts = way[2] })
    for k = 0, N / CHUNK - 1 do
      make_chunk(k)
      collectgarbage()
      local t0, c0 = B.now(), os.clock()
      way[3](cp)
      cpu, wall = cpu + os.clock() - c0, wall + B.now() - t0
    end
    local t0, c0 = B.now(), os.clock()
    assert(cp:finish() == N)
    cpus[r], walls[r] = cpu + os.clock() - c0, wall + B.now() - t0
  end
  local h = db:query_one("select md5(string_agg(u::text, E'\\n' order by email, name, visits)) as h "
                         .. "from bench_users u").h
  first_hash = first_hash or h
  assert(h == first_hash, way[1] .. ": other table contents")
  table.sort(cpus)
  local w = B.median(walls)
  print(("| %s | %.3f [%.3f-%.3f] | %.3f | %.0f |"):format(way[1], B.median(cpus), cpus[1], cpus[#cpus],
                                                          w, N / w))
end
db:exec("drop table bench_users")
