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
  sluice.tmpdb()          a throwaway PostgreSQL server
  sluice.null             the NULL value in results

Expressions print their value; query results print as tables.
Ctrl-C cancels the running statement; Ctrl-D quits.]]

function M.help()
  print(HELP)
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
