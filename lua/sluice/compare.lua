--- sluice.compare{...}: load the same rows by several strategies, each
-- into a fresh copy of a table, check that the copies hold the same
-- contents, and show the speeds side by side (a table and a bar chart).
--
--   sluice.compare{ db = db, table = "metrics", n = 100000,
--                   rows = function(i) return "host-" .. i % 10, 1700000000 + i, i / 7 end,
--                   strategies = { "rowwise_autocommit", "batch", "copy_binary",
--                                  { "copy_binary", drop_indexes = true } } }
--
-- Options:
--   db, table     the connection and the model table: every strategy loads
--                 into its own CREATE TABLE ... (LIKE table INCLUDING ALL)
--                 copy (same columns, defaults, constraints and indexes),
--                 dropped afterwards; the table itself is not touched
--   columns       as for sluice.load (default: the table's columns)
--   rows          function(i) -> the values of row i (or one row table);
--                 called for i = 1..n, once per strategy, so it must be a
--                 pure function of i (sluice.gen's streams are)
--   n             rows per strategy
--   strategies    a list of strategy names, or tables { name, label =,
--                 <sluice.load options> } (default: every strategy but
--                 upsert); { "copy_binary", jobs = 2 } loads with 2
--                 worker processes, each calling rows(i) for its ranges
--   sample        rows the slow strategies (rowwise_*) load, scaled to n
--                 in the results and marked "(sample of N, scaled)"
--                 (default 1000; false: load all n)
--   out           "markdown" (default: a markdown table and a chart on
--                 stdout), "csv" (CSV on stdout), or a file path: the
--                 table and chart are printed and the file is written too
--                 (CSV when it ends in .csv, else markdown)
--   check         false skips the contents check
--   quiet         true prints nothing (results are still returned)
--
-- The check: every copy's rows are hashed (md5 of each row's text, the
-- hashes sorted and hashed again: order-free, like ordering by every
-- column) and counted; full loads must match each other, and a sampled
-- load must hold exactly `sample` rows, all found in a full copy.  A
-- mismatch raises after the results are printed.
--
-- Returns the list of results, in the order run: { label, strategy, rows
-- (n), rows_loaded, sampled, seconds, rows_per_s, mb_per_s, wal_bytes,
-- index_seconds, speedup (vs the slowest), count, md5 }; the list also has
-- markdown, chart and csv (the texts) and identical (true when checked;
-- a failed check raises instead).
local load = require "sluice.load"

local M = {}

--- Results compare() returned -> whether it printed them (not quiet): the
-- prompt shows a result it printed as nothing more.
M.shown = setmetatable({}, { __mode = "k" })

local SLOW = { rowwise_autocommit = true, rowwise_tx = true }
local OPTS = {
  db = true, table = true, columns = true, rows = true, n = true,
  strategies = true, sample = true, out = true, check = true, quiet = true,
}

-- Misuse raises at the line that called sluice.compare; `level` counts
-- the frames between fail() and that line (1 = sluice.compare itself).
local function fail(msg, level)
  error("compare: " .. msg, (level or 1) + 2)
end

local function pack(...)
  return { n = select("#", ...), ... }
end

-- "12,345" for big numbers, two decimals for small ones.
local function num(x)
  if x == nil then return "" end
  if x >= 100 then
    local s = ("%.0f"):format(x)
    return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
  end
  if x >= 10 then return ("%.1f"):format(x) end
  return ("%.2f"):format(x)
end
M.num = num

-- A strategy entry -> name, label, load options.
local function entry(e, level)
  if type(e) == "string" then return e, e, {} end
  if type(e) ~= "table" or type(e[1] or e.strategy) ~= "string" then
    fail("each strategy must be a name or a table { name, <load options> }", level)
  end
  local name = e[1] or e.strategy
  local opts, mods = {}, {}
  for k, v in pairs(e) do
    if k ~= 1 and k ~= "strategy" and k ~= "label" then
      opts[k] = v
      mods[#mods + 1] = v == true and k or (k .. "=" .. tostring(v))
    end
  end
  table.sort(mods)
  local label = e.label or (#mods > 0 and (name .. " +" .. table.concat(mods, " +")) or name)
  return name, label, opts
end

-- Rows 1..count of fn as an iterator of row tables for sluice.load.
local function source(fn, count, null)
  local i = 0
  -- a positionable source (first, last, seek): a load with jobs = N
  -- deals index ranges and each worker calls fn for its own rows
  local src = { first = 1, last = count }
  function src.next()
    i = i + 1
    if i > count then return nil end
    local r = pack(fn(i))
    if r.n == 1 and type(r[1]) == "table" then return r[1] end
    -- a nil the function returned is a NULL: sluice.null keeps the
    -- row's width known (load refuses a row whose last value is nil)
    for j = 1, r.n do
      if r[j] == nil then r[j] = null end
    end
    return r
  end
  function src.position() return tostring(i + 1) end
  function src.seek(_, pos) i = tonumber(pos) - 1 end
  function src.identity() return ("compare rows 1..%d"):format(count) end
  return src
end

local function bar(frac, width)
  local cells = frac * width
  local full = math.floor(cells)
  local parts = { "", "▏", "▎", "▍", "▌", "▋", "▊", "▉" }
  local s = ("█"):rep(full) .. parts[math.floor((cells - full) * 8) + 1]
  if s == "" then s = "▏" end -- every strategy gets a visible mark
  return s
end

--- The results as a markdown table.
function M.markdown(results)
  local out = {
    "| strategy | rows | seconds | rows/s | MB/s | WAL MB | speed-up |",
    "|---|---:|---:|---:|---:|---:|---:|",
  }
  for _, r in ipairs(results) do
    local label = r.label
    if r.sampled then label = ("%s (sample of %d, scaled)"):format(label, r.rows_loaded) end
    out[#out + 1] = ("| %s | %s | %s | %s | %s | %s | %s× |"):format(label, num(r.rows),
      num(r.seconds), num(r.rows_per_s), num(r.mb_per_s),
      r.wal_bytes and num(r.wal_bytes / 1e6) or "n/a", num(r.speedup))
  end
  return table.concat(out, "\n")
end

--- rows/s as a horizontal bar chart (linear, longest bar = fastest).
function M.chart(results, width)
  width = width or 40
  local top, lw = 0, 0
  for _, r in ipairs(results) do
    top = math.max(top, r.rows_per_s)
    lw = math.max(lw, #r.label + (r.sampled and 1 or 0))
  end
  local out = { "rows/s" }
  for _, r in ipairs(results) do
    local label = r.label .. (r.sampled and "*" or "")
    out[#out + 1] = ("%s%s %s %s"):format(label, (" "):rep(lw - #label),
      bar(top > 0 and r.rows_per_s / top or 0, width), num(r.rows_per_s))
  end
  for _, r in ipairs(results) do
    if r.sampled then
      out[#out + 1] = "* sampled, scaled"
      break
    end
  end
  return table.concat(out, "\n")
end

function M.csv(results)
  local out = { "strategy,rows,rows_loaded,sampled,seconds,rows_per_s,mb_per_s,wal_mb,index_seconds,speedup" }
  for _, r in ipairs(results) do
    out[#out + 1] = ('"%s",%d,%d,%s,%.4f,%.1f,%.3f,%s,%.4f,%.2f'):format(r.label:gsub('"', '""'),
      r.rows, r.rows_loaded, tostring(r.sampled), r.seconds, r.rows_per_s, r.mb_per_s,
      r.wal_bytes and ("%.3f"):format(r.wal_bytes / 1e6) or "", r.index_seconds, r.speedup)
  end
  return table.concat(out, "\n")
end

local function check_opts(o)
  if type(o) ~= "table" then fail("expected a table of options, got " .. type(o), 2) end
  for k in pairs(o) do
    if not OPTS[k] then
      fail("unknown option '" .. tostring(k) .. "' (check, columns, db, n, out, quiet, "
           .. "rows, sample, strategies, table)", 2)
    end
  end
  if type(o.db) ~= "userdata" then fail("db = a connection is required (sluice.connect())", 2) end
  if type(o.table) ~= "string" then fail("table = \"name\" (the table to copy) is required", 2) end
  if type(o.rows) ~= "function" then
    fail("rows must be a function(i) returning row i's values, got " .. type(o.rows), 2)
  end
  if type(o.n) ~= "number" or o.n < 1 or o.n % 1 ~= 0 then
    fail("n must be a positive integer (rows per strategy), got " .. tostring(o.n), 2)
  end
  if o.sample ~= nil and o.sample ~= false
     and (type(o.sample) ~= "number" or o.sample < 1 or o.sample % 1 ~= 0) then
    fail("sample must be a positive integer or false, got " .. tostring(o.sample), 2)
  end
  if o.strategies ~= nil and (type(o.strategies) ~= "table" or #o.strategies == 0) then
    fail("strategies must be a non-empty list", 2)
  end
  for _, e in ipairs(o.strategies or {}) do
    local name = entry(e, 3)
    if not load.DESCRIPTIONS[name] then
      fail("unknown strategy '" .. tostring(name) .. "' (" .. table.concat(load.STRATEGIES, ", ") .. ")", 2)
    end
  end
  if o.out ~= nil and type(o.out) ~= "string" then
    fail("out must be \"markdown\", \"csv\" or a file path", 2)
  end
end

--- sluice.compare(opts) -> results (see the top of this file).
-- The target, its columns and the strategies to run: a context for the
-- steps below.
local function prepare(o)
  local db = o.db
  local qtable = db:quote_table(o.table)
  if not qtable then fail("table must be \"name\" or \"schema.name\", got " .. o.table, 2) end
  local info = db:query_one([[select n.nspname::text as schema, c.relname::text as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass($1)]], qtable)
  if not info then fail(("table \"%s\" does not exist"):format(o.table), 2) end
  local columns = o.columns or load.table_columns(db, qtable)
  local qcols = {}
  for i, c in ipairs(columns) do qcols[i] = db:quote_ident(c) end
  local strategies = o.strategies
  if not strategies then
    strategies = {}
    for _, s in ipairs(load.STRATEGIES) do
      if s ~= "upsert" then strategies[#strategies + 1] = s end
    end
  end
  return {
    o = o, db = db, n = o.n, qtable = qtable, info = info, columns = columns,
    rowexpr = "md5(row(" .. table.concat(qcols, ", ") .. ")::text)",
    sample = o.sample == nil and 1000 or o.sample, strategies = strategies,
    null = require("sluice.core").null,
    results = {}, kept = {},
  }
end

-- The copy for strategy k: its quoted name, and {schema, name} for load.
local function copy_name(c, k)
  local name = ("%s_cmp%d"):format(c.info.name:sub(1, 50), k)
  return c.db:quote_ident(c.info.schema) .. "." .. c.db:quote_ident(name), { c.info.schema, name }
end

-- Row count and an order-independent md5 of a table's rows.
local function digest(c, t)
  return c.db:query_one(("select count(*)::int8 as n, md5(coalesce(string_agg(h, '' order by h), '')) "
    .. "as h from (select %s as h from %s) s"):format(c.rowexpr, t))
end

-- Load the rows by strategy entry e into its own copy of the table; the
-- result (times scaled when a sample was loaded), the copy digested and
-- kept when it is the first full or sampled one.
local function run_one(c, k, e)
  local db, n = c.db, c.n
  local name, label, lopts = entry(e)
  local sampled = SLOW[name] and c.sample and c.sample < n or false
  local count = sampled and c.sample or n
  local t, tname = copy_name(c, k)
  db:exec(("DROP TABLE IF EXISTS %s; CREATE TABLE %s (LIKE %s INCLUDING ALL)"):format(t, t, c.qtable))
  lopts.db, lopts.table, lopts.columns = db, tname, c.columns
  lopts.rows = source(c.o.rows, count, c.null)
  lopts.strategy, lopts.label, lopts.total = name, label, count
  lopts.quiet = c.o.quiet or nil
  local s = load.load(lopts)
  local scale = n / count
  local r = {
    label = label, strategy = name, rows = n, rows_loaded = s.rows, sampled = sampled,
    seconds = s.seconds * scale, rows_per_s = s.rows_per_s, mb_per_s = s.mb_per_s,
    wal_bytes = s.wal_bytes and s.wal_bytes * scale, index_seconds = s.index_seconds * scale,
  }
  if c.o.check ~= false then
    local d = digest(c, t)
    r.count, r.md5 = d.n, d.h
    -- keep the first full copy and the first sampled one for the subset
    -- check; drop the rest now (disk)
    local slot = sampled and "sampled" or "full"
    if not c.kept[slot] then c.kept[slot] = { table = t, result = r } else db:exec("DROP TABLE " .. t) end
  else
    db:exec("DROP TABLE " .. t)
  end
  c.results[k] = r
end

-- What differs between the copies: a list of sentences (empty: none).
local function check_contents(c)
  local problems = {}
  local full, samp = c.kept.full, c.kept.sampled
  for _, r in ipairs(c.results) do
    local ref = r.sampled and samp.result or (full and full.result)
    if r.count ~= r.rows_loaded then
      problems[#problems + 1] = ("%s loaded %d rows but its table holds %d")
        :format(r.label, r.rows_loaded, r.count)
    elseif ref and (r.md5 ~= ref.md5 or r.count ~= ref.count) then
      problems[#problems + 1] = ("%s: %d rows, md5 %s, but %s: %d rows, md5 %s")
        :format(r.label, r.count, r.md5, ref.label, ref.count, ref.md5)
    end
  end
  if full and samp then
    local d = c.db:query_one(("select count(*)::int8 as n from (select %s from %s except all "
      .. "select %s from %s) d"):format(c.rowexpr, samp.table, c.rowexpr, full.table))
    if d.n ~= 0 then
      problems[#problems + 1] = ("%d rows of the sampled load %s are not in %s")
        :format(d.n, samp.result.label, full.result.label)
    end
  end
  return problems
end

-- Print the results and write them to o.out when that names a file.
local function report(o, results)
  local out = o.out or "markdown"
  if not o.quiet then
    if out == "csv" then
      print(results.csv)
    else
      print(results.markdown)
      print()
      print(results.chart)
    end
  end
  if out ~= "markdown" and out ~= "csv" then
    local f, ferr = io.open(out, "w")
    if not f then error("compare: cannot write the results: " .. tostring(ferr), 3) end
    -- a full disk shows at write() or only at close(): both are checked
    local wrote, werr = f:write(out:match("%.csv$") and results.csv
                                or (results.markdown .. "\n\n" .. results.chart), "\n")
    local closed, cerr = f:close()
    if not (wrote and closed) then
      error("compare: cannot write the results: " .. out .. ": " .. tostring(werr or cerr), 3)
    end
  end
end

function M.compare(o)
  check_opts(o)
  local c = prepare(o)
  local ok, err = pcall(function()
    for k, e in ipairs(c.strategies) do run_one(c, k, e) end
  end)
  local problems = ok and o.check ~= false and check_contents(c) or {}
  for _, kt in pairs(c.kept) do pcall(c.db.exec, c.db, "DROP TABLE IF EXISTS " .. kt.table) end
  if not ok then error(err, 0) end

  local results = c.results
  local slowest = math.huge
  for _, r in ipairs(results) do slowest = math.min(slowest, r.rows_per_s) end
  for _, r in ipairs(results) do r.speedup = r.rows_per_s / slowest end
  results.identical = o.check ~= false and #problems == 0 or nil
  results.markdown, results.chart, results.csv = M.markdown(results), M.chart(results), M.csv(results)
  report(o, results)
  M.shown[results] = not o.quiet
  if #problems > 0 then
    error("compare: the strategies loaded different contents:\n  " .. table.concat(problems, "\n  "), 2)
  end
  return results
end

return M
