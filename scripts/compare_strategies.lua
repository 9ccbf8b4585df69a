--- Compare load strategies on a table and rows given on the command line,
-- through sluice.compare: a markdown table (rows/s, MB/s, WAL MB,
-- speed-up) and a bar chart.
--
--   sluice --tmpdb scripts/compare_strategies.lua SHAPE N [options]
--   (--help lists the options)
--
-- SHAPE is a built-in row shape:
--   metrics   id bigint pk, host text, ts timestamptz, v float8; index (host, ts)
--   users     id int pk, name text not null, email text, age int,
--             created_at timestamptz; index on name
--   wide      id int pk and 19 more int columns
-- or "custom" with --columns and --row:
--   --columns "id int primary key, v float8"   the table's column list
--   --row "i, i / 7"                            a Lua expression of i: row i's values
-- Options:
--   --strategies a,b,...   sluice.load strategies (default: every one but upsert),
--                          each with modifiers after "+": copy_binary+drop_indexes,
--                          batch+connections=2, copy_text+synchronous_commit=off,
--                          copy_binary+jobs=2
--   --sample N             rows for the slow rowwise_* strategies (default 1000)
--   --out FILE|csv         also write the results (CSV when FILE ends in .csv)
--
-- The table is created fresh (and dropped at the end); every strategy loads
-- rows 1..N into its own copy and the copies are checked to be identical.
local sluice = require "sluice"

local cli = sluice.args.parser("compare_strategies.lua",
  "Loads rows 1..N of a table shape by each load strategy and prints rows/s, MB/s and "
  .. "WAL MB side by side.")
cli:argument("shape", "The table: metrics, users, wide, or custom (with --columns and --row).")
  :choices { "metrics", "users", "wide", "custom" }
cli:argument("n", "How many rows."):convert(sluice.args.integer(1))
cli:option("--columns", 'The custom table\'s column list, e.g. "id int primary key, v float8".')
  :argname("DEFS")
cli:option("--row", 'A Lua expression of i giving row i\'s values, e.g. "i, i / 7".'):argname("EXPR")
cli:option("--strategies", "sluice.load strategies, comma-separated, each with modifiers after "
  .. "'+' (copy_binary+drop_indexes, batch+connections=2, copy_binary+jobs=2); default: every one but upsert.")
  :argname("a,b,...")
cli:option("--sample", "Rows for the slow rowwise_* strategies (default 1000)."):argname("N")
  :convert(sluice.args.integer(1))
cli:option("--out", "Also write the results to FILE (CSV when it ends in .csv), or 'csv' for stdout.")
  :argname("FILE")
local opts = cli:parse()

local function usage(why)
  cli:error(why)
end

local EPOCH = 1700000000 -- a fixed "now": the rows must not depend on the clock

local SHAPES = {
  metrics = {
    columns = "id bigint primary key, host text not null, ts timestamptz not null, v float8",
    index = "(host, ts)",
    row = function(i) return i, "host-" .. i % 50, EPOCH + i, i / 7 end,
  },
  users = {
    columns = "id int primary key, name text not null, email text, age int, created_at timestamptz",
    index = "(name)",
    row = function(i)
      local name = ("user%d"):format(i * 7919 % 100003)
      return i, name, name .. "@example.com", 18 + i % 60, EPOCH + i * 60
    end,
  },
  wide = {
    columns = (function()
      local c = { "id int primary key" }
      for j = 1, 19 do c[#c + 1] = ("c%d int"):format(j) end
      return table.concat(c, ", ")
    end)(),
    row = function(i)
      local v = { i }
      for j = 1, 19 do v[j + 1] = (i * j) % 100000 end
      return v
    end,
  },
}

local shape_name, n = opts.shape, opts.n
local shape
if shape_name == "custom" then
  if not opts.columns or not opts.row then usage("custom needs --columns and --row") end
  local fn, err = loadstring("local i = ...; return " .. opts.row, "=--row")
  if not fn then usage("--row is not a Lua expression: " .. err) end
  shape = { columns = opts.columns, row = fn }
else
  shape = SHAPES[shape_name]
end

-- "copy_binary+drop_indexes+connections=2": a strategy with its modifiers
local MODIFIERS = { drop_indexes = "flag", freeze = "flag", connections = "number",
                    synchronous_commit = "string", batch_rows = "number", commit_every = "number",
                    sync_every = "number", jobs = "number" }
local function strategy_entry(spec)
  local name, rest = spec:match("^([%w_]+)(.*)$")
  if not name then usage("bad strategy " .. spec) end
  if rest == "" then return name end
  local e = { name }
  for mod in rest:gmatch("%+([^+]+)") do
    local k, v = mod:match("^([%w_]+)=(.+)$")
    k = k or mod
    local kind = MODIFIERS[k]
    if not kind then usage("unknown modifier " .. k .. " in " .. spec) end
    if kind == "flag" then
      if v then usage(k .. " takes no value (in " .. spec .. ")") end
      e[k] = true
    elseif kind == "number" then
      e[k] = tonumber(v)
      if not e[k] then usage(k .. " needs a number (in " .. spec .. ")") end
    else
      if not v then usage(k .. " needs a value (in " .. spec .. ")") end
      e[k] = v
    end
  end
  return e
end

local strategies
if opts.strategies then
  strategies = {}
  for s in opts.strategies:gmatch("[^,%s]+") do strategies[#strategies + 1] = strategy_entry(s) end
end
local sample = opts.sample

local db = sluice.connect()
db:exec("set client_min_messages = warning")
db:exec("drop table if exists compare_strategies; create table compare_strategies ("
  .. shape.columns .. ")")
if shape.index then db:exec("create index on compare_strategies " .. shape.index) end

local ok, err = pcall(sluice.compare, {
  db = db, table = "compare_strategies", n = n, rows = shape.row,
  strategies = strategies, sample = sample, out = opts.out,
})
db:exec("drop table compare_strategies")
if not ok then error(err, 0) end
