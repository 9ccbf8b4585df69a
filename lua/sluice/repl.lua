--- The interactive prompt's helpers: how results are printed, help(), and
-- the `db` connection that is ready when the prompt starts.
local sluice = require "sluice"

local M = {}

local function scalar(v)
  if v == sluice.null then return "NULL" end
  if type(v) == "string" then return v end
  return tostring(v)
end

-- an array of rows (tables of scalars) prints as an aligned table
local function is_rowset(t)
  if type(t) ~= "table" or #t == 0 or getmetatable(t) then return false end
  for _, r in ipairs(t) do
    if type(r) ~= "table" or #r > 0 then return false end
    for _, v in pairs(r) do
      if type(v) == "table" then return false end
    end
  end
  return true
end

local function print_rowset(rows)
  local cols, seen = {}, {}
  for _, r in ipairs(rows) do
    for k in pairs(r) do
      if not seen[k] then seen[k] = true; cols[#cols + 1] = k end
    end
  end
  table.sort(cols, function(a, b) return tostring(a) < tostring(b) end)
  local width = {}
  for i, c in ipairs(cols) do
    width[i] = #tostring(c)
    for _, r in ipairs(rows) do
      width[i] = math.max(width[i], #scalar(r[c] == nil and sluice.null or r[c]))
    end
  end
  local function line(cells)
    local out = {}
    for i, s in ipairs(cells) do out[i] = " " .. s .. (" "):rep(width[i] - #s) .. " " end
    return table.concat(out, "|")
  end
  local head, sep = {}, {}
  for i, c in ipairs(cols) do head[i] = tostring(c); sep[i] = ("-"):rep(width[i] + 2) end
  print(line(head))
  print(table.concat(sep, "+"))
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(cols) do cells[i] = scalar(r[c] == nil and sluice.null or r[c]) end
    print(line(cells))
  end
  print(("(%d row%s)"):format(#rows, #rows == 1 and "" or "s"))
end

local function dump(v, indent, seen)
  if type(v) ~= "table" then
    return type(v) == "string" and ("%q"):format(v) or scalar(v)
  end
  if seen[v] then return "<cycle>" end
  seen[v] = true
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  if #keys == 0 then return "{}" end
  local pad = ("  "):rep(indent + 1)
  local out = {}
  for _, k in ipairs(keys) do
    local ks = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. dump(k, 0, {}) .. "]"
    out[#out + 1] = pad .. ks .. " = " .. dump(v[k], indent + 1, seen)
  end
  return "{\n" .. table.concat(out, ",\n") .. "\n" .. ("  "):rep(indent) .. "}"
end

--- Print the values an expression returned.
function M.print(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if is_rowset(v) then
      print_rowset(v)
    elseif type(v) == "table" and not getmetatable(v) then
      print(dump(v, 0, {}))
    else
      print(scalar(v))
    end
  end
end

local HELP = [[
sluice - Lua (LuaJIT) with fast PostgreSQL loading.

  db                      a connection, ready (DATABASE_URL / PG*, or a
                          private temporary server when neither is set)
  sluice.connect(target)  connect: conninfo string or postgres:// URI
  db:exec(sql)            run statements; returns affected rows, tag
  db:query(sql, ...)      rows (array of tables keyed by column); $1.. params
  db:query_one(sql, ...)  the first row, or nil
  db:prepare(sql)         statement with :query(...), :exec(...), :close()
  db:begin() db:commit() db:rollback()
  db:savepoint(n) db:release(n) db:rollback_to(n)
  db:transaction(fn)      commit when fn returns, roll back if it raises
  db:copy(t, cols)        a COPY stream: cp:row(...), cp:finish()
  db:batch(t, cols, o)    multi-row INSERT buffer: b:add(...), b:close();
                          o.on_reject = function(values, err, row) keeps good rows
  db:pipeline(sql)        pipelined prepared statement: pl:send(...), pl:close()
  db:upsert(t, cols, o)   staged COPY + INSERT ... ON CONFLICT (o.key)
  sluice.csv.rows(path, o) iterate a CSV file (plain or .gz);
                          o.types = {amount = "number"} parses columns in C
  sluice.tmpdb()          a throwaway PostgreSQL server
  sluice.null             the NULL value in results

Loading rows - one call, any strategy:
  sluice.load{db = db, table = "t", rows = list_or_iterator, strategy = "copy_binary"}
                          -> {rows, bytes, seconds, rows_per_s, mb_per_s, wal_bytes, index_seconds}
  sluice.compare{db = db, table = "t", n = 100000, rows = function(i) return i, "x" .. i end,
                 strategies = {"rowwise_autocommit", "batch", "copy_binary"}}
                          the same rows by each strategy into copies of t:
                          a table and a bar chart of rows/s, contents checked
%s
  modifiers: drop_indexes = true, freeze = true, synchronous_commit = "off",
             connections = N

Generating rows:
  sluice.gen(seed)        seeded, reproducible generators: g:stream(name):at(i)
                          gives row i's values (ints, names, text, timestamps, ...)
  sluice.model{...}       ORM-style model: columns, defaults, computed fields,
                          validation, hooks; its objects can be rows for load

Expressions print their value; query results print as tables.
Ctrl-C cancels the running statement or load (db's transaction is rolled
back); at the prompt it drops the line.  Ctrl-D quits.]]

--- help(): the calls, the load strategies and the generators.
function M.help()
  local load = require "sluice.load"
  local lines = { "  strategies:" }
  for _, name in ipairs(load.STRATEGIES) do
    lines[#lines + 1] = ("    %-20s %s"):format(name, load.DESCRIPTIONS[name])
  end
  print((HELP:format(table.concat(lines, "\n"))))
end

--- Called by the prompt after a line failed, with the error's text.  A
-- line interrupted by Ctrl-C (the server cancelled the statement: 57014,
-- or the Lua hook raised "interrupted") leaves db's transaction open and
-- failed; roll it back so the prompt goes on with a usable connection, as
-- a script's end would.  Other failures leave the transaction to the user
-- (a savepoint may still rescue it) with a hint.
function M.after_error(msg)
  local db = rawget(_G, "db")
  if db == nil then return end
  local ok, st = pcall(function() return db:status() end)
  if not ok or (st ~= "intrans" and st ~= "inerror") then return end
  msg = tostring(msg)
  if msg:find("57014", 1, true) or msg:find("interrupted (", 1, true) then
    if pcall(db.rollback, db) then
      print("(interrupted: the open transaction on db was rolled back)")
    end
  elseif st == "inerror" then
    print("(the transaction on db has failed: db:rollback() ends it)")
  end
end

--- Called once when the prompt starts: globals sluice, db and help().
function M.setup()
  _G.sluice = sluice
  _G.help = M.help
  local env = os.getenv
  local ok, conn = pcall(function()
    if env("DATABASE_URL") or env("PGHOST") or env("PGDATABASE") or env("PGSERVICE") then
      return sluice.connect()
    end
    M.server = sluice.tmpdb()
    print("(no DATABASE_URL or PG* variables: started a temporary server, removed at exit)")
    return sluice.connect(M.server:uri())
  end)
  if ok then
    _G.db = conn
  else
    print("could not connect: " .. tostring(conn))
  end
end

return M
