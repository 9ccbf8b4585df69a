--- The interactive prompt's side in Lua: the `db` connection that is ready
-- when it starts, how values and query results print, SQL lines and
-- backslash commands, psql-style errors, help(), and Tab completion
-- (repl_complete.lua).  runtime/main.c reads the lines and calls these.
--
-- Query results print in the statement's column order: setup() asks the
-- core to keep each result's columns (sluice.core.keep_columns) in
-- M.columns, a table with weak keys; scripts, which never call setup(),
-- pay nothing for it.
local sluice = require "sluice"
local core = require "sluice.core"
local F = require "sluice.repl_format"
local S = require "sluice.repl_sql"

local M = {}

-- the user may assign these globals at the prompt (`select = 1`)
local select, print, type, tostring = select, print, type, tostring

--- Each query result (rows array, or query_one's row) -> its columns.
M.columns = setmetatable({}, { __mode = "k" })

local function scalar(v)
  if v == sluice.null then return "NULL" end
  if type(v) == "string" then return v end
  if type(v) == "number" then return F.text(v) end
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

-- A query's rows (or query_one's row) as a table in column order.
local function print_result(v, cols)
  if cols.one then F.print_rows({ v }, cols) else F.print_rows(v, cols) end
end

--- Print the values an expression returned: query results as tables in
-- their column order (without the command tag that follows them), other
-- lists of rows as tables, sluice.compare's results as the table it
-- printed, other tables as a dump.
function M.print(...)
  local n = select("#", ...)
  local i = 1
  while i <= n do
    local v = select(i, ...)
    local cols = type(v) == "table" and M.columns[v]
    local shown
    if type(v) == "table" then shown = require("sluice.compare").shown[v] end
    if cols then
      print_result(v, cols)
      local tag = i < n and select(i + 1, ...)
      if type(tag) == "string" and tag:match("^%u+") then i = i + 1 end
    elseif shown ~= nil then
      if not shown then print(v.markdown .. "\n\n" .. v.chart) end
    elseif is_rowset(v) then
      F.print_rows(v, nil)
    elseif type(v) == "table" and not getmetatable(v) then
      print(dump(v, 0, {}))
    else
      print(scalar(v))
    end
    i = i + 1
  end
end

-- ------------------------------------------------------------------ help

local TOPICS = {
  { "connect", "the db connection, sluice.connect, status", [[
  db                      a connection, ready (DATABASE_URL / PG*, or a
                          private temporary server when neither is set)
  sluice.connect(target)  connect: conninfo string or postgres:// URI;
                          opts.timeout = seconds of server silence allowed
  db:status()             idle, intrans, inerror, active, closed, broken
  db:info()               host, port, dbname, user, server_version, backend_pid
  db:on_notice(fn)        fn(notice) for each NOTICE / WARNING
  db:close()]] },
  { "query", "exec, query, prepare; result values", [[
  db:exec(sql)            run statements; returns affected rows, tag
  db:query(sql, ...)      rows (array of tables keyed by column); $1.. params
  db:query_one(sql, ...)  the first row, or nil
  db:prepare(sql)         statement with :query(...), :exec(...), :close()
  sluice.null             the NULL value in results (sluice.is_null(v))
  int8 values beyond 2^53 are int64 cdata; bytea are Lua strings.
  Errors are objects: err.sqlstate, message, detail, hint, position.]] },
  { "transactions", "begin, commit, savepoints, db:transaction", [[
  db:begin([opts]) db:commit() db:rollback()
                          opts.isolation, opts.read_only, opts.deferrable
  db:savepoint(n) db:release(n) db:rollback_to(n)
  db:transaction(fn)      commit when fn returns, roll back if it raises]] },
  { "copy", "COPY streams in and out, CSV files into COPY", [[
  db:copy(t [, cols] [, opts])  a COPY stream: cp:row(...), cp:rows(list),
                          cp:finish() -> rows; cp:abort(); opts.format =
                          "auto" (binary when it can), "text", "csv", "binary";
                          opts.on_reject = function(values, err, row);
                          opts.layouts = {col = "MM/DD/YYYY"} reads date
                          strings by a layout, in C
  db:copy_out(query_or_table)   `for row in db:copy_out(q) do` (arrays of strings)
  db:copy_from_file(t, path [, opts])  a plain or gzip CSV file straight into
                          COPY; opts.rejects = "bad.csv" sets bad records aside]] },
  { "batch", "multi-row INSERT buffers", [[
  db:batch(t, cols, o)    multi-row INSERT buffer: b:add(...), b:flush(), b:close();
                          o.rows, o.bytes, o.max_age_ms, o.on_conflict,
                          o.returning; o.on_reject = function(values, err, row)
                          keeps the good rows]] },
  { "pipeline", "pipelined prepared INSERT", [[
  db:pipeline(sql, o)     pipelined prepared statement: pl:send(...), pl:close();
                          o.sync_every = rows per transaction]] },
  { "upsert", "staged COPY + INSERT ... ON CONFLICT", [[
  db:upsert(t, cols, o)   staged COPY + INSERT ... ON CONFLICT (o.key):
                          u:row(...), u:finish()]] },
  { "csv", "reading CSV files", [[
  sluice.csv.rows(path, o) iterate a CSV file (plain or .gz, "-" for stdin);
                          o.header, o.delimiter, o.quote, o.null, o.strict,
                          o.skip; o.types = {amount = "number"} parses in C
  sluice.csv.open(path, o) a reader: r:next(), r:record(), r.line, r:close()]] },
  { "text", "per-row helpers that LuaJIT compiles (dates, trim, numbers)", [[
  local d = sluice.text.date_layout("MM/DD/YYYY")   d(s) -> epoch seconds, or
                          nil, err (22007 bad form, 22008 Feb 30); also
                          timestamp_layout("DD.MM.YYYY HH24:MI"), "iso" output
  sluice.text.trim(s) lower(s) upper(s) split_at(s, "@") before(s, sep)
                          after(s, sep) number("1.234,56", true)
  string.match/gsub/gmatch and pattern find are not compiled by LuaJIT:
  sluice --profile script.lua shows where a loop leaves compiled code]] },
  { "load", "sluice.load and its strategies", [[
  sluice.load{db = db, table = "t", rows = list_or_iterator, strategy = "copy_binary"}
                          -> {rows, bytes, seconds, rows_per_s, mb_per_s,
                              wal_bytes, index_seconds, read, loaded, rejected}
  %s
  modifiers: drop_indexes = true (with maintenance_work_mem = "1GB",
             max_parallel_maintenance_workers = N for the rebuild: HNSW,
             IVFFlat), freeze = true, synchronous_commit = "off",
             connections = N, jobs = N (worker processes; sluice --jobs N)
  on_error = "reject", rejects = "bad.csv": bad rows set aside;
  checkpoint = "name": resumable, each chunk committed once]] },
  { "compare", "the same rows by several strategies, side by side", [[
  sluice.compare{db = db, table = "t", n = 100000, rows = function(i) return i, "x" .. i end,
                 strategies = {"rowwise_autocommit", "batch", "copy_binary"}}
                          the same rows by each strategy into copies of t:
                          a table and a bar chart of rows/s, contents checked;
                          out = "csv" or a file path; quiet = true]] },
  { "gen", "seeded, reproducible generators", [[
  sluice.gen(seed)        g:stream(name):at(i) gives row i's draws:
                          int, float, normal, pick, bool, word, name, email,
                          city, text, chars, uuid4, uuid7, date, timestamp,
                          json, vector(d), clustered(k, d, noise),
                          nullable(p, ...)
                          g:stream(name):rows(from, to, fn) as load rows]] },
  { "model", "ORM-style models", [[
  sluice.model{table =, columns =, validate =, before_save =, methods =}
                          M:new{...}, M:create_table(db), M:save_all(db, iter,
                          {rejects = list})]] },
  { "tmpdb", "a throwaway PostgreSQL server", [[
  sluice.tmpdb()          a private server (initdb in a temporary folder),
                          removed at exit: s:uri(), s:conninfo(), s:stop()]] },
  { "prompt", "this prompt: SQL lines, \\d, completion, keys", [[
  A line whose first word is an SQL keyword (select, insert, update, delete,
  with, create, drop, alter, truncate, table, values, explain, begin, commit,
  rollback, copy, ... any case) runs as SQL on db, unless a Lua global has
  that name and the line is valid Lua (`select('#', ...)` stays Lua).
  It runs when it ends with `;`, or at once when it is complete on its own;
  an unfinished one (open quote or parenthesis, ending in a comma, an
  operator, FROM, WHERE, ...) goes on until `;`.
  \d NAME  describe a table    \d  list relations    \dt [PATTERN]  tables
  \pset null TEXT  show NULL as TEXT (default: empty, as psql)    \q  quit
  Results print as psql prints them; errors as psql's ERROR: lines.
  Tab completes Lua names, fields and methods (db:co, sluice.lo), and table
  and column names in SQL lines and inside strings.
  Ctrl-C cancels the running statement or load (db's transaction is rolled
  back); at the prompt it drops the line.  Ctrl-D or \q quits.]] },
}

local function topic_text(t)
  if t[1] ~= "load" then return t[3] end
  local load = require "sluice.load"
  local lines = { "strategies:" }
  for _, name in ipairs(load.STRATEGIES) do
    lines[#lines + 1] = ("    %-20s %s"):format(name, load.DESCRIPTIONS[name])
  end
  return t[3]:format(table.concat(lines, "\n"))
end

--- help(): the topics; help("copy"): that topic only.
function M.help(topic)
  if topic == nil then
    local lines = {
      "sluice - Lua (LuaJIT) with fast PostgreSQL loading.  help(\"TOPIC\") shows one:",
      "",
    }
    for _, t in ipairs(TOPICS) do
      lines[#lines + 1] = ("  %-14s %s"):format(t[1], t[2])
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = "db is connected; SQL lines run on it (help(\"prompt\")).  Ctrl-D quits."
    print(table.concat(lines, "\n"))
    return
  end
  local want = tostring(topic):lower():gsub("^%s+", ""):gsub("%s+$", "")
  for _, t in ipairs(TOPICS) do
    if t[1] == want then
      print(topic_text(t))
      return
    end
  end
  local names = {}
  for _, t in ipairs(TOPICS) do names[#names + 1] = t[1] end
  print(("no help on %q; topics: %s"):format(tostring(topic), table.concat(names, ", ")))
end

-- ------------------------------------------------------- lines and errors

-- NOTICEs print while an SQL line runs (as psql prints them)
local in_sql = false

-- Names for completion: read again after a line that may change them.
local function names_changed()
  require("sluice.repl_complete").forget()
end

--- The kind of a line typed at the prompt: "lua", "sql" or "meta" (see
-- repl_sql.kind).  A Lua line may change the tables (db:exec, a load),
-- so completion reads the catalog again afterwards.
function M.line_kind(line)
  local kind = S.kind(line)
  if kind == "lua" then names_changed() end
  return kind
end

--- Is the SQL input ready to run (first: it is one line)?
function M.sql_ready(text, first)
  return S.ready(text, first)
end

-- Tags after which completion reads the catalog again.
local DDL = { CREATE = true, DROP = true, ALTER = true, ROLLBACK = true,
              SET = true, RESET = true, IMPORT = true, DISCARD = true,
              COMMENT = true }

local function show(rows, tag)
  local cols = M.columns[rows]
  if cols and #cols > 0 then
    F.print_rows(rows, cols)
    local word = tag:match("^%u+")
    if word == "INSERT" or word == "UPDATE" or word == "DELETE" or word == "MERGE" then
      print(tag)
    end
  else
    print(tag)
  end
end

-- COPY ... TO STDOUT at the prompt: the rows in COPY's text format, as
-- psql prints them, then the tag.  The reader decodes text format only,
-- so a COPY with options after STDOUT (CSV, binary) is refused.
local function copy_to_stdout(db, stmt)
  local body = stmt:gsub("%s*;%s*$", "")
  if not body:lower():match("%sto%s+stdout$") then
    error(sluice.error { message = "at the prompt, COPY ... TO STDOUT prints text format "
      .. "without options; use db:copy_out(), or COPY ... TO a file" }, 0)
  end
  local ESC = { ["\\"] = "\\\\", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r" }
  local n, fields = 0, {}
  for row in core.copy_out_start(db, body) do
    for j, v in ipairs(row) do
      fields[j] = v == sluice.null and "\\N" or v:gsub("[\\\t\n\r]", ESC)
    end
    io.write(table.concat(fields, "\t", 1, #row), "\n")
    n = n + 1
  end
  print(("COPY %d"):format(n))
end

--- Run an SQL line (kind "sql": each statement on db, its result printed
-- as psql prints it) or a backslash command (kind "meta").  Returns
-- "quit" for \q.
function M.run(kind, text)
  local db = rawget(_G, "db")
  if kind == "meta" then return S.meta(db, text) end
  if db == nil then
    error(sluice.error { message = "no connection: db is not set (db = sluice.connect(...))" }, 0)
  end
  in_sql = true
  for _, stmt in ipairs(S.split(text)) do
    local lower = stmt:lower()
    if lower:match("^copy%s") and lower:find("%sto%s+stdout") then
      copy_to_stdout(db, stmt)
    else
      local rows, tag = db:query(stmt)
      show(rows, tag)
      if DDL[tag:match("^%u+")] then names_changed() end
    end
  end
  in_sql = false
end

--- Print an error a line raised, psql-style for a database error (ERROR:,
-- LINE and caret when the failing SQL is known, DETAIL, HINT, CONTEXT).
-- Returns false for other values (main.c prints those).
function M.report_error(err)
  in_sql = false
  if not sluice.is_error(err) then return false end
  io.stdout:flush()
  io.stderr:write(table.concat(S.error_lines(err), "\n"), "\n")
  return true
end

--- Called by the prompt after a line failed, with the error.  A line
-- interrupted by Ctrl-C (the server cancelled the statement: 57014, or
-- the Lua hook raised "interrupted") leaves db's transaction open and
-- failed; roll it back so the prompt goes on with a usable connection, as
-- a script's end would.  Other failures leave the transaction to the user
-- (a savepoint may still rescue it) with a hint.
function M.after_error(msg)
  in_sql = false
  local db = rawget(_G, "db")
  if db == nil then return end
  local ok, st = pcall(function() return db:status() end)
  if not ok or (st ~= "intrans" and st ~= "inerror") then return end
  local text = tostring(msg)
  if (sluice.is_error(msg) and msg.sqlstate == "57014") or text:find("57014", 1, true)
     or text:find("interrupted (", 1, true) then
    if pcall(db.rollback, db) then
      print("(interrupted: the open transaction on db was rolled back)")
    end
  elseif st == "inerror" then
    print("(the transaction on db has failed: db:rollback() or rollback ends it)")
  end
end

--- Tab completion (main.c's hook): the candidates that replace `word`,
-- at the end of `line` (the text before the cursor); in_sql when an SQL
-- statement is being continued.  Returns the list and whether a space
-- follows a single candidate.
function M.complete(line, word, in_sql_line)
  return require("sluice.repl_complete").complete(line, word, in_sql_line)
end

-- NOTICE and INFO during SQL lines, WARNING always, with psql's labels.
local function on_notice(n)
  if not in_sql and n.severity ~= "WARNING" then return end
  io.stdout:flush()
  local out = { (n.severity or "NOTICE") .. ":  " .. tostring(n.message) }
  if n.detail then out[#out + 1] = "DETAIL:  " .. n.detail end
  if n.hint then out[#out + 1] = "HINT:  " .. n.hint end
  io.stderr:write(table.concat(out, "\n"), "\n")
end

--- Called once when the prompt starts: globals sluice, db and help().
function M.setup()
  _G.sluice = sluice
  _G.help = M.help
  core.keep_columns(M.columns)
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
    conn:on_notice(on_notice)
    _G.db = conn
  else
    print("could not connect: " .. tostring(conn))
  end
end

return M
