--- SQL at the prompt: which lines are SQL, when a statement is complete,
-- splitting input into statements, psql's error lines (`LINE n:` and the
-- caret), and the backslash commands \d and \dt (the catalog queries psql
-- runs, printed as psql prints them).
local core = require "sluice.core"
local F = require "sluice.repl_format"

local M = {}

-- The first words of SQL lines (any case).  Lua keywords are left out:
-- no SQL line may be read as Lua (`do`, `end`), and `load` is Lua's.
local KEYWORDS = {}
for w in ([[select insert update delete merge with create drop alter truncate
  table values explain analyze vacuum begin start commit rollback abort
  savepoint release copy grant revoke set show reset comment refresh
  reindex cluster lock prepare execute deallocate declare fetch close
  move discard listen notify unlisten call checkpoint security import]])
    :gmatch("%a+") do
  KEYWORDS[w] = true
end
M.KEYWORDS = KEYWORDS

--- The kind of a line typed at the prompt: "meta" (a backslash command),
-- "sql" or "lua".  A line is SQL when its first word is an SQL keyword
-- (any case) followed by a space, `(`, `;` or the end, that is not
-- assigned (`values = {}` is Lua), and either no Lua global has that
-- name or the line is not valid Lua: `select * from t` and `begin` are
-- SQL, `select('#', 1, 2)` stays Lua's select.
function M.kind(line)
  if line:match("^%s*\\") then return "meta" end
  local word, after = line:match("^%s*(%a+)(.?)")
  if not word or not KEYWORDS[word:lower()] then return "lua" end
  if after ~= "" and not after:match("[%s(;]") then return "lua" end
  if line:match("^%s*%a+%s*=") and not line:match("^%s*%a+%s*==") then
    return "lua"
  end
  if rawget(_G, word) == nil then return "sql" end
  if loadstring("return " .. line) or loadstring(line) then return "lua" end
  return "sql"
end

-- Walk SQL text as the server's lexer would for what matters here:
-- quotes ('...', E'...', "...", $tag$...$tag$), comments (--, nested
-- /* */), parentheses and semicolons.  Returns the statements that end
-- in `;` (each with its `;`), the text after the last one, the state at
-- the end (nil, or the open quote or comment), the open parentheses, and
-- the position of the rest's last character outside comments (nil when
-- the rest is blank).
local function scan(text)
  local stmts, start, n = {}, 1, #text
  local state, tag, cdepth, depth, last = nil, nil, 0, 0, nil
  local i = 1
  while i <= n do
    local c = text:sub(i, i)
    local nx = text:sub(i + 1, i + 1)
    if state == nil then
      if c == "'" then
        local p1, p2 = text:sub(i - 1, i - 1), text:sub(i - 2, i - 2)
        state = (p1 == "e" or p1 == "E") and not p2:match("[%w_]") and "E'" or "'"
        last = i
      elseif c == '"' then
        state, last = '"', i
      elseif c == "-" and nx == "-" then
        state, i = "--", i + 1
      elseif c == "/" and nx == "*" then
        state, cdepth, i = "/*", 1, i + 1
      elseif c == ";" then
        stmts[#stmts + 1] = text:sub(start, i)
        start, depth, last = i + 1, 0, nil
      else
        if c == "$" and not text:sub(i - 1, i - 1):match("[%w_]") then
          local t = text:match("^%$[%a_][%w_]*%$", i) or text:match("^%$%$", i)
          if t then state, tag, i = "$", t, i + #t - 1 end
        elseif c == "(" then
          depth = depth + 1
        elseif c == ")" and depth > 0 then
          depth = depth - 1
        end
        if not c:match("%s") then last = i end
      end
    elseif state == "'" or state == '"' then
      if c == state then
        if nx == state then i = i + 1 else state = nil end
      end
      last = i
    elseif state == "E'" then
      if c == "\\" then
        i = i + 1
      elseif c == "'" then
        if nx == "'" then i = i + 1 else state = nil end
      end
      last = i
    elseif state == "--" then
      if c == "\n" then state = nil end
    elseif state == "/*" then
      if c == "/" and nx == "*" then
        cdepth, i = cdepth + 1, i + 1
      elseif c == "*" and nx == "/" then
        cdepth, i = cdepth - 1, i + 1
        if cdepth == 0 then state = nil end
      end
    elseif state == "$" then
      if text:sub(i, i + #tag - 1) == tag then
        state, i = nil, i + #tag - 1
      end
      last = i
    end
    i = i + 1
  end
  return stmts, text:sub(start), state, depth, last and last - start + 1
end

--- The statements of text (each as typed, with its `;`, blank ones left
-- out); the last one may lack its `;`.
function M.split(text)
  local stmts, rest, _, _, last = scan(text)
  local out = {}
  for _, s in ipairs(stmts) do
    local _, _, _, _, l = scan(s:sub(1, -2))
    if l then out[#out + 1] = s:match("^%s*(.-)%s*$") end
  end
  if last then out[#out + 1] = rest:match("^%s*(.-)%s*$") end
  return out
end

-- Words after which a statement cannot end.
local CONTINUE = {}
for w in ([[select from where and or not join on by set into values as with
  union intersect except having in like ilike similar is between then when
  else case distinct using returning group order limit offset table update
  insert delete create alter drop truncate grant revoke lock inner left
  right full outer cross natural lateral all any some exists only to for of
  over partition window if index unique temp temporary unlogged view
  sequence schema function start show reset copy explain merge matched
  each row do]]):gmatch("%a+") do
  CONTINUE[w] = true
end

--- Is the SQL input ready to run?  It is when it ends with `;` (outside
-- quotes and comments).  A first line without `;` runs too when it is
-- complete on its own: no open quote, comment or parenthesis, and no
-- trailing comma, operator or word such as FROM or WHERE.
function M.ready(text, first)
  local stmts, rest, state, depth, last = scan(text)
  if state and state ~= "--" then return false end
  if not last then return #stmts > 0 end
  if not first or depth > 0 then return false end
  local body = rest:sub(1, last)
  if body:match("[,(%+%-%*/%%=<>|&^~!@#:%.]$") then return false end
  local prev, word = body:match("(%a*)%s*(%a+)$")
  if word then
    word = word:lower()
    if word == "values" and prev:lower() == "default" then return true end
    if CONTINUE[word] then return false end
  end
  return true
end

--- The lines psql prints for a server error (default verbosity): the
-- severity and message, LINE and the caret (err.position_lines: libpq
-- builds them from the statement it sent, as for psql), DETAIL, HINT,
-- and CONTEXT.
function M.error_lines(err)
  local out = { (err.severity or "ERROR") .. ":  " .. tostring(err.message or "?") }
  if err.position_lines then out[#out + 1] = err.position_lines end
  if err.detail then out[#out + 1] = "DETAIL:  " .. err.detail end
  if err.hint then out[#out + 1] = "HINT:  " .. err.hint end
  if err.context then out[#out + 1] = "CONTEXT:  " .. err.context end
  return out
end

-- ------------------------------------------------------------ \d and \dt

local KIND_NAME = {
  r = "table", v = "view", m = "materialized view", i = "index",
  S = "sequence", t = "TOAST table", f = "foreign table",
  p = "partitioned table", I = "partitioned index",
}

local TITLE = {
  r = "Table", v = "View", m = "Materialized view", i = "Index",
  S = "Sequence", t = "TOAST table", f = "Foreign table",
  p = "Partitioned table", I = "Partitioned index",
}

local function complain(msg)
  io.stdout:flush()
  io.stderr:write(msg, "\n")
end

-- psql's name pattern: unquoted letters fold to lower case, * and ? are
-- wildcards, "..." quotes; an optional schema part before a dot.
-- Returns the schema regex (or nil) and the name regex.
local function pattern(p)
  local parts, cur, quoted = {}, {}, false
  local i = 1
  while i <= #p do
    local c = p:sub(i, i)
    if c == '"' then
      if quoted and p:sub(i + 1, i + 1) == '"' then
        cur[#cur + 1] = '"'; i = i + 1
      else
        quoted = not quoted
      end
    elseif c == "." and not quoted then
      parts[#parts + 1] = table.concat(cur); cur = {}
    elseif not quoted and c == "*" then
      cur[#cur + 1] = ".*"
    elseif not quoted and c == "?" then
      cur[#cur + 1] = "."
    else
      if not quoted then c = c:lower() end
      cur[#cur + 1] = c:match("[%w_]") and c or ("\\" .. c)
    end
    i = i + 1
  end
  parts[#parts + 1] = table.concat(cur)
  local name = "^(" .. parts[#parts] .. ")$"
  local schema = #parts > 1 and "^(" .. parts[#parts - 1] .. ")$" or nil
  return schema, name
end

local LIST_SQL = [[
select n.nspname::text as "Schema", c.relname::text as "Name",
  c.relkind::text as kind, pg_catalog.pg_get_userbyid(c.relowner)::text as "Owner"
from pg_catalog.pg_class c
  left join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = any($1::text[]::"char"[])
  and (case when $2::text is null and $3::text is null then
         n.nspname <> 'pg_catalog' and n.nspname !~ '^pg_toast'
         and n.nspname <> 'information_schema'
       else true end)
  and (case when $3::text is null then pg_catalog.pg_table_is_visible(c.oid)
       else n.nspname ~ $3 end)
  and ($2::text is null or c.relname ~ $2)
order by 1, 2]]

--- \dt [pattern] (tables) and \d without a name (every relation): psql's
-- "List of relations".
function M.list(db, kinds, pat)
  local schema, name
  if pat then schema, name = pattern(pat) end
  local rows = db:query(LIST_SQL, "{" .. table.concat(kinds, ",") .. "}",
                        name or require("sluice").null, schema or require("sluice").null)
  if #rows == 0 then
    complain(pat and ('Did not find any relation named "%s".'):format(pat)
             or "Did not find any relations.")
    return
  end
  local cells = {}
  for i, r in ipairs(rows) do
    cells[i] = { r.Schema, r.Name, KIND_NAME[r.kind] or r.kind, r.Owner }
  end
  F.print_table({ "Schema", "Name", "Type", "Owner" }, {}, cells,
                "List of relations", F.count(#rows))
end

local REL_SQL = [[
select c.oid::int8 as oid, n.nspname::text as schema, c.relname::text as name,
  c.relkind::text as kind, c.relpersistence::text as persistence
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.oid = pg_catalog.to_regclass($1)]]

local COLUMNS_SQL = [[
select a.attname::text as name, pg_catalog.format_type(a.atttypid, a.atttypmod) as type,
  (select c.collname::text from pg_catalog.pg_collation c, pg_catalog.pg_type t
    where c.oid = a.attcollation and t.oid = a.atttypid
      and a.attcollation <> t.typcollation) as collation,
  a.attnotnull as notnull,
  (select pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) from pg_catalog.pg_attrdef d
    where d.adrelid = a.attrelid and d.adnum = a.attnum and a.atthasdef) as default,
  a.attidentity::text as identity, a.attgenerated::text as generated
from pg_catalog.pg_attribute a
where a.attrelid = $1::int8::oid and a.attnum > 0 and not a.attisdropped
order by a.attnum]]

local INDEXES_SQL = [[
select c2.relname::text as name, i.indisprimary as primary, i.indisunique as unique,
  i.indisclustered as clustered, i.indisvalid as valid,
  pg_catalog.pg_get_indexdef(i.indexrelid, 0, true) as indexdef,
  pg_catalog.pg_get_constraintdef(con.oid, true) as condef, con.contype::text as contype,
  con.condeferrable as deferrable, con.condeferred as deferred,
  i.indisreplident as replident
from pg_catalog.pg_index i
  join pg_catalog.pg_class c2 on c2.oid = i.indexrelid
  left join pg_catalog.pg_constraint con on con.conrelid = i.indrelid
    and con.conindid = i.indexrelid and con.contype in ('p', 'u', 'x')
where i.indrelid = $1::int8::oid
order by i.indisprimary desc, c2.relname]]

local CHECKS_SQL = [[
select r.conname::text as name, pg_catalog.pg_get_constraintdef(r.oid, true) as def
from pg_catalog.pg_constraint r
where r.conrelid = $1::int8::oid and r.contype = 'c'
order by 1]]

local FKEYS_SQL = [[
select conname::text as name, pg_catalog.pg_get_constraintdef(r.oid, true) as def
from pg_catalog.pg_constraint r
where r.conrelid = $1::int8::oid and r.contype = 'f' and r.conparentid = 0
order by conname]]

local REFERENCED_SQL = [[
select conname::text as name, conrelid::pg_catalog.regclass::text as ontable,
  pg_catalog.pg_get_constraintdef(oid, true) as def
from pg_catalog.pg_constraint c
where confrelid = $1::int8::oid and contype = 'f' and conparentid = 0
order by conname]]

local function index_line(r)
  local s = ('    "%s"'):format(r.name)
  if r.contype == "x" then
    s = s .. " " .. r.condef
  else
    if r.primary then
      s = s .. " PRIMARY KEY,"
    elseif r.unique then
      s = s .. (r.contype == "u" and " UNIQUE CONSTRAINT," or " UNIQUE,")
    end
    local def = r.indexdef
    local using = def:find(" USING ", 1, true)
    if using then def = def:sub(using + 7) end
    s = s .. " " .. def
    if r.deferrable == true then s = s .. " DEFERRABLE" end
    if r.deferred == true then s = s .. " INITIALLY DEFERRED" end
  end
  if r.clustered then s = s .. " CLUSTER" end
  if not r.valid then s = s .. " INVALID" end
  if r.replident then s = s .. " REPLICA IDENTITY" end
  return s
end

--- \d name: the relation's columns (type, collation, nullable, default)
-- and, for tables, its indexes and constraints, as psql's \d prints them.
function M.describe(db, name)
  local rel = db:query_one(REL_SQL, name)
  if not rel then
    complain(('Did not find any relation named "%s".'):format(name))
    return
  end
  local title = TITLE[rel.kind] or "Relation"
  if rel.kind == "r" and rel.persistence == "u" then title = "Unlogged table" end
  title = ('%s "%s.%s"'):format(title, rel.schema, rel.name)
  local cells = {}
  for i, c in ipairs(db:query(COLUMNS_SQL, rel.oid)) do
    local default = c.default == core.null and "" or c.default
    if c.identity == "a" then
      default = "generated always as identity"
    elseif c.identity == "d" then
      default = "generated by default as identity"
    elseif c.generated == "s" then
      default = "generated always as (" .. default .. ") stored"
    end
    cells[i] = { c.name, c.type, c.collation == core.null and "" or c.collation,
                 c.notnull and "not null" or "", default }
  end
  local out = F.lines({ "Column", "Type", "Collation", "Nullable", "Default" }, {},
                      cells, title, nil)
  local function section(head, rows, fmt)
    if #rows == 0 then return end
    out[#out + 1] = head
    for _, r in ipairs(rows) do out[#out + 1] = fmt(r) end
  end
  if rel.kind == "r" or rel.kind == "p" or rel.kind == "m" then
    section("Indexes:", db:query(INDEXES_SQL, rel.oid), index_line)
    section("Check constraints:", db:query(CHECKS_SQL, rel.oid), function(r)
      return ('    "%s" %s'):format(r.name, r.def)
    end)
    section("Foreign-key constraints:", db:query(FKEYS_SQL, rel.oid), function(r)
      return ('    "%s" %s'):format(r.name, r.def)
    end)
    section("Referenced by:", db:query(REFERENCED_SQL, rel.oid), function(r)
      return ('    TABLE "%s" CONSTRAINT "%s" %s'):format(r.ontable, r.name, r.def)
    end)
  end
  out[#out + 1] = ""
  io.write(table.concat(out, "\n"), "\n")
end

--- Run a backslash command on db: \d [name], \dt [pattern], \pset null
-- TEXT, \q.  Returns "quit" for \q.
function M.meta(db, line)
  local cmd, arg = line:match("^%s*\\(%S*)%s*(.-)%s*;?%s*$")
  if arg == "" then arg = nil end
  cmd = cmd:gsub("%+$", "") -- \d+ and \dt+: the same, without psql's extra columns
  if cmd == "q" or cmd == "quit" then return "quit" end
  if cmd == "pset" then
    local opt, val = (arg or ""):match("^(%S+)%s*(.*)$")
    if opt == "null" then
      val = val:match("^'(.*)'$") or val
      F.null = val
      print(('Null display is "%s".'):format(val))
      return
    end
    complain("\\pset: only \\pset null TEXT is available")
    return
  end
  if cmd ~= "d" and cmd ~= "dt" and cmd ~= "?" then
    complain(("invalid command \\%s\nTry \\? for help."):format(cmd))
    return
  end
  if cmd == "?" then
    print([[
  \d NAME         describe a table, view or other relation
  \d              list tables, views and sequences
  \dt [PATTERN]   list tables
  \pset null TEXT show NULL as TEXT (default: empty)
  \q              quit]])
    return
  end
  if not db then
    complain("no connection: db is not set")
    return
  end
  if cmd == "dt" then
    M.list(db, { "r", "p" }, arg)
  elseif arg then
    M.describe(db, arg)
  else
    M.list(db, { "r", "p", "v", "m", "S", "f" }, nil)
  end
end

return M
