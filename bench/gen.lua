--- Synthetic-data benchmark: how fast sluice.gen makes realistic rows, and
-- whether loading them is limited by the server rather than the generator.
--
--   sluice --tmpdb bench/gen.lua [rows] [runs]     (defaults: 500000 3)
--
-- The row: a user with 8 columns (id bigint, first_name, last_name, email
-- text, age int, city text, balance float8, created_at timestamptz), all
-- drawn from one counter-based stream (email built from the names).
--
-- (a) generation alone, one core: rows into a null sink (a reused 8-slot
--     table, so every value is really materialised and nothing is
--     optimised away); also with a uuid v4 column and through a model
--     (Model:new with a default, a computed field and validation).
-- (b) end to end into PostgreSQL, each method loading the same rows into
--     a fresh table:
--       generate -> COPY binary       rows made while they stream
--       pre-generated rows -> COPY    the same rows built before the
--                                     clock starts, sent by cp:rows: the
--                                     stream's cost without the generator
--       model save_all (COPY)         the ORM path: new, validate,
--                                     before_save, COPY
--       server COPY binary file       the same rows pre-generated in a
--                                     file the server reads itself (written
--                                     by COPY ... TO in the data
--                                     directory's parent): the server's
--                                     ceiling, no client at all
--     Contents are checked against the first method (count + md5).
-- Runs go round-robin, each after a CHECKPOINT; times are medians of
-- `runs`; ratios are from this same run.
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 500000
local RUNS = tonumber(arg[2]) or 3

local gen = sluice.gen
local FROM, TO = gen.parse_time("2015-01-01"), gen.parse_time("2025-01-01")

-- the row, written out once for every method
local function user_values(r, i)
  local first, last = r:first_name(), r:last_name()
  return i, first, last, r:email(first, last), r:int(18, 90), r:city(),
         r:normal(500, 150), r:timestamp(FROM, TO)
end

local User = sluice.model {
  table = "bench_gen_users",
  columns = {
    { "id", "bigint" }, { "first_name", "text" }, { "last_name", "text" }, { "email", "text" },
    { "age", "int" }, { "city", "text" }, { "balance", "float8" }, { "created_at", "timestamptz" },
  },
  validate = function(u) return u.age >= 18 and u.age <= 90, "age out of range" end,
  before_save = function(u) u.balance = math.floor(u.balance * 100 + 0.5) / 100 end,
}

--------------------------------------------------------- (a) null sink
local sink = {}
local function null_sink(a, b, c, d, e, f, g, h)
  sink[1], sink[2], sink[3], sink[4], sink[5], sink[6], sink[7], sink[8] = a, b, c, d, e, f, g, h
end

local sink_methods = {
  { "8-column user row", function(n)
      local s = gen(1):stream("users")
      for i = 1, n do null_sink(user_values(s:at(i), i)) end
    end },
  { "8 columns + uuid v4", function(n)
      local s = gen(1):stream("users")
      for i = 1, n do
        local r = s:at(i)
        null_sink(r:uuid4(), user_values(r, i))
      end
    end },
  { "8 columns as model objects", function(n)
      local s = gen(1):stream("users")
      for i = 1, n do
        local r = s:at(i)
        local first, last = r:first_name(), r:last_name()
        local u = User:new { id = i, first_name = first, last_name = last, email = r:email(first, last),
                             age = r:int(18, 90), city = r:city(), balance = r:normal(500, 150),
                             created_at = r:timestamp(FROM, TO) }
        null_sink(u.id, u.first_name, u.last_name, u.email, u.age, u.city, u.balance, u.created_at)
      end
    end },
}

print(("\n### (a) generating %s rows into a null sink (one core)\n"):format(B.fmt(N)))
local rows, sink_rate = {}, nil
for _, m in ipairs(sink_methods) do
  m[2](10000) -- warm up: compile the traces before timing
  local t = B.measure(RUNS, function() m[2](N) end, function() collectgarbage() end)
  sink_rate = sink_rate or N / t
  assert(sink[1] ~= nil) -- the sink really received the values
  rows[#rows + 1] = { m[1], B.fmt(N / t), ("%.0f"):format(t / N * 1e9), ("%.3f"):format(t) }
end
B.table({ "row", "rows/s", "ns/row", "seconds" }, rows)

------------------------------------------------- (b) into PostgreSQL
local db = sluice.connect()
db:exec("set client_min_messages = warning")
local datadir = db:query_one("show data_directory").data_directory
local file = datadir:match("^(.*)/[^/]*$") .. "/bench_gen_users.bin"

local function reset()
  db:exec("drop table if exists bench_gen_users; create table bench_gen_users (id bigint, first_name text, "
          .. "last_name text, email text, age int, city text, balance float8, created_at timestamptz)")
end

local function digest()
  return db:query_one("select count(*) as n, md5(string_agg(t::text, E'\\n' order by id)) as h "
                      .. "from bench_gen_users t")
end

local methods = {
  { name = "generate -> COPY binary", run = function()
      local s = gen(1):stream("users")
      local cp = db:copy("bench_gen_users", nil, { format = "binary" })
      -- cp.row once: its lookup goes through a C __index LuaJIT cannot
      -- record, and the loop then would not compile
      local row = cp.row
      for i = 1, N do
        local r = s:at(i)
        local id, first, last, email, age, city, balance, created = user_values(r, i)
        row(cp, id, first, last, email, age, city, math.floor(balance * 100 + 0.5) / 100, created)
      end
      assert(cp:finish() == N)
    end,
    after = function()
      db:exec(("copy bench_gen_users to '%s' (format binary)"):format(file))
    end },
  { name = "pre-generated rows -> COPY binary",
    -- the same rows made before the clock starts and sent with cp:rows:
    -- what the stream costs without the generator
    prepare = function()
      local s, list = gen(1):stream("users"), {}
      for i = 1, N do
        local id, first, last, email, age, city, balance, created = user_values(s:at(i), i)
        list[i] = { id, first, last, email, age, city, math.floor(balance * 100 + 0.5) / 100, created }
      end
      return list
    end,
    run = function(list)
      local cp = db:copy("bench_gen_users", nil, { format = "binary" })
      cp:rows(list)
      assert(cp:finish() == N)
    end },
  { name = "model save_all (COPY)", run = function()
      local s = gen(1):stream("users")
      local loaded = User:save_all(db, s:rows(1, N, function(r, i)
        local id, first, last, email, age, city, balance, created = user_values(r, i)
        return User:new { id = id, first_name = first, last_name = last, email = email, age = age,
                          city = city, balance = balance, created_at = created }
      end), { format = "binary" })
      assert(loaded == N)
    end },
  { name = "server COPY binary file", server = true, run = function()
      db:exec(("copy bench_gen_users from '%s' (format binary)"):format(file))
    end },
}

print(("\n### (b) %s user rows into PostgreSQL\n"):format(B.fmt(N)))
-- round-robin, each run after a CHECKPOINT (B.rounds)
local ref
B.rounds { db = db, runs = RUNS, methods = methods, reset = reset,
  check = function(m)
    local d = digest()
    assert(d.n == N, m.name .. ": wrong row count " .. tostring(d.n))
    ref = ref or d.h
    assert(d.h == ref, m.name .. ": table contents differ from the first method's")
    if m.after then m.after() end
  end }
local results = methods
local server_t = results[#results].t
rows = {}
for _, r in ipairs(results) do
  rows[#rows + 1] = { r.name, B.fmt(N / r.t), ("%.2f"):format(r.t), ("%.2f×"):format(server_t / r.t),
                      r.server and "(server)" or ("%.2f"):format(r.cpu / N * 1e6) }
end
B.table({ "method", "rows/s", "seconds", "vs server COPY binary file", "client CPU s / M rows" }, rows)
os.remove(file)

print(("\ngeneration alone: %s rows/s (target 1,000,000); generate -> COPY vs server file: %.2f×")
      :format(B.fmt(sink_rate), server_t / results[1].t))
