--- Tab completion at the prompt (main.c's libedit hook calls complete()).
--
-- In Lua: globals and Lua keywords, a table's fields after `.`, an
-- object's methods after `:` (db:co -> db:commit, db:copy, ...).  In SQL
-- lines and inside Lua strings: table and column names from the catalog
-- (and SQL keywords in SQL lines); after `name.`, the columns of table
-- `name` or the tables of schema `name`.
--
-- The names come from one catalog query on the prompt's db, run on the
-- first Tab that needs them and kept until a line that may change them
-- (DDL, ROLLBACK or SET in SQL, any Lua line) runs: no work per keystroke,
-- and at most one query per line typed.
local core = require "sluice.core"
local S = require "sluice.repl_sql"

local M = {}

local LUA_KEYWORDS = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
  "true", "until", "while",
}

local SQL_WORDS = {}
for w in ([[select from where and or not null is in like ilike between join
  left right inner outer full cross on using group by order having limit
  offset union intersect except all distinct as case when then else end
  insert into values default update set delete returning create table
  index unique primary key references drop alter add column constraint
  truncate with recursive explain analyze verbose begin commit rollback
  copy to stdin stdout csv header true false asc desc nulls first last
  exists any some cast interval count sum avg min max coalesce
  now]]):gmatch("%a+") do
  SQL_WORDS[#SQL_WORDS + 1] = w
end
for w in pairs(S.KEYWORDS) do SQL_WORDS[#SQL_WORDS + 1] = w end

-- The catalog's names, or nil until read: { tables = {name...},
-- columns = {name...}, schemas = {name...}, by_table = {t = {cols}},
-- by_schema = {s = {tables}} }
local names

--- Forget the names: the next completion that needs them reads them again.
function M.forget()
  names = nil
end

local NAMES_SQL = [[
select n.nspname::text as s, c.relname::text as t,
  pg_catalog.pg_table_is_visible(c.oid) as visible,
  (select pg_catalog.array_to_string(array_agg(a.attname::text order by a.attnum), ' ')
     from pg_catalog.pg_attribute a
    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as cols
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'f')
  and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
limit 5000]]

local function add_unique(list, seen, v)
  if not seen[v] then seen[v] = true; list[#list + 1] = v end
end

local function load_names(db)
  if names then return names end
  db = db or rawget(_G, "db")
  if db == nil then return nil end
  local ok, st = pcall(db.status, db)
  -- a failed transaction would refuse the query; a busy one cannot run it
  if not ok or (st ~= "idle" and st ~= "intrans") then return nil end
  local ok2, rows = pcall(db.query, db, NAMES_SQL)
  if not ok2 then return nil end
  local n = { tables = {}, columns = {}, schemas = {}, by_table = {}, by_schema = {} }
  local seen_t, seen_c, seen_s = {}, {}, {}
  for _, r in ipairs(rows) do
    local cols = {}
    for c in tostring(r.cols == core.null and "" or r.cols):gmatch("%S+") do
      cols[#cols + 1] = c
    end
    if r.visible then
      add_unique(n.tables, seen_t, r.t)
      n.by_table[r.t] = cols
      for _, c in ipairs(cols) do add_unique(n.columns, seen_c, c) end
    end
    add_unique(n.schemas, seen_s, r.s)
    n.by_schema[r.s] = n.by_schema[r.s] or {}
    table.insert(n.by_schema[r.s], r.t)
    n.by_table[r.s .. "." .. r.t] = cols
  end
  names = n
  return n
end

local function matching(out, seen, list, prefix, fmt)
  local lower = prefix:lower()
  for _, v in ipairs(list) do
    if v:sub(1, #prefix) == prefix or v:lower():sub(1, #prefix) == lower then
      local s = fmt and fmt(v) or v
      if not seen[s] then seen[s] = true; out[#out + 1] = s end
    end
  end
end

-- Table and column names (and SQL keywords when with_keywords; no
-- columns when tables_only) for word.
local function sql_candidates(word, with_keywords, db, tables_only)
  local out, seen = {}, {}
  local qual, prefix = word:match("^(.*)%.([%w_$]*)$")
  local n = load_names(db)
  if qual then
    if n then
      local q = qual:lower()
      if not tables_only then
        matching(out, seen, n.by_table[qual] or n.by_table[q] or {}, prefix,
                 function(c) return qual .. "." .. c end)
      end
      matching(out, seen, n.by_schema[qual] or n.by_schema[q] or {}, prefix,
               function(t) return qual .. "." .. t end)
    end
  else
    if n then
      matching(out, seen, n.tables, word)
      if not tables_only then matching(out, seen, n.columns, word) end
      matching(out, seen, n.schemas, word)
    end
    if with_keywords and word ~= "" then
      -- keywords in the case the word is typed in
      local upper = word:match("^%u") ~= nil
      matching(out, seen, SQL_WORDS, word, upper and string.upper or nil)
    end
  end
  table.sort(out)
  return out
end

-- Is the end of line inside a Lua string?  Scans quotes and long
-- brackets, skipping comments.
local function in_lua_string(line)
  local i, n = 1, #line
  while i <= n do
    local c = line:sub(i, i)
    if c == "'" or c == '"' then
      local j = i + 1
      while j <= n do
        local d = line:sub(j, j)
        if d == "\\" then
          j = j + 1
        elseif d == c then
          break
        end
        j = j + 1
      end
      if j > n then return true end
      i = j
    elseif c == "[" and line:match("^%[=*%[", i) then
      local open = line:match("^%[(=*)%[", i)
      local close = line:find("]" .. open .. "]", i, true)
      if not close then return true end
      i = close + #open + 1
    elseif c == "-" and line:sub(i + 1, i + 1) == "-" then
      local open = line:match("^%-%-%[(=*)%[", i)
      if open then
        local close = line:find("]" .. open .. "]", i, true)
        if not close then return false end
        i = close + #open + 1
      else
        return false
      end
    end
    i = i + 1
  end
  return false
end

-- The methods table of a userdata, from the core's types.
local function methods_of(v)
  local mt = getmetatable(v)
  if mt == nil then return nil end
  for _, t in pairs(core.types) do
    if t.mt == mt then return t.methods end
  end
  if type(mt.__index) == "table" then return mt.__index end
  return nil
end

-- String keys of t that are names, and of its __index tables.
local function keys_of(v, methods_only)
  local out, seen = {}, {}
  local depth = 0
  local t = v
  if type(v) ~= "table" then t = methods_of(v) end
  while type(t) == "table" and depth < 8 do
    for k, x in pairs(t) do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and not seen[k]
         and (not methods_only or type(x) == "function") then
        seen[k] = true
        out[#out + 1] = k
      end
    end
    local mt = getmetatable(t)
    -- names a module loads at their first use (sluice.gen): loaded now
    if mt and type(mt.lazy) == "table" then
      for k in pairs(mt.lazy) do
        local x = t[k]
        if not seen[k] and (not methods_only or type(x) == "function") then
          seen[k] = true
          out[#out + 1] = k
        end
      end
    end
    t = mt and type(mt.__index) == "table" and mt.__index or nil
    depth = depth + 1
  end
  return out
end

local function lua_candidates(word)
  local out = {}
  local base, sep, prefix = word:match("^(.-)([%.:])([%w_]*)$")
  if not base then
    for _, k in ipairs(LUA_KEYWORDS) do
      if k:sub(1, #word) == word then out[#out + 1] = k end
    end
    for _, k in ipairs(keys_of(_G)) do
      if k:sub(1, #word) == word then out[#out + 1] = k end
    end
    table.sort(out)
    return out
  end
  if not base:match("^[%a_][%w_]*$") and not base:match("^[%a_][%w_]*[%.%w_]*[%w_]$") then
    return out
  end
  local v = _G
  for part in base:gmatch("[^%.]+") do
    local ok, x = pcall(function() return v[part] end)
    if not ok or x == nil then return out end
    v = x
  end
  if type(v) ~= "table" and type(v) ~= "userdata" then return out end
  for _, k in ipairs(keys_of(v, sep == ":")) do
    if k:sub(1, #prefix) == prefix then out[#out + 1] = base .. sep .. k end
  end
  table.sort(out)
  return out
end

--- The candidates that replace word, the text before the cursor being
-- line; in_sql when an SQL statement is being continued; db the
-- connection whose catalog names tables (default: the global db).
-- Returns the sorted list and whether a single candidate takes a space
-- after it.
function M.complete(line, word, in_sql, db)
  if in_sql or S.kind(line) == "sql" then
    return sql_candidates(word, true, db), true
  end
  if line:match("^%s*\\") then
    return sql_candidates(word, false, db, true), true
  end
  if in_lua_string(line:sub(1, #line - #word)) then
    return sql_candidates(word, true, db), false
  end
  local out = lua_candidates(word)
  if line:match("^%s*[%a_]*$") and word ~= "" then
    -- the line's first word: SQL's first words too, in the case typed
    local seen = {}
    for _, v in ipairs(out) do seen[v] = true end
    local upper = word:match("^%u") ~= nil
    for w in pairs(S.KEYWORDS) do
      if upper then w = w:upper() end
      if w:sub(1, #word) == word and not seen[w] then out[#out + 1] = w end
    end
    table.sort(out)
  end
  return out, false
end

return M
