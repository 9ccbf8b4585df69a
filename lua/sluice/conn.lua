--- Connection methods written in Lua: transactions, savepoints and table
-- names; and what the library remembers of each connection.
--
-- The C core (runtime/lib_conn.c) provides exec, query, query_one,
-- prepare, status, info, quote_ident, on_notice and close; api.lua puts
-- these functions (its DB_METHODS) in the same methods table, so a
-- connection has one flat API.
local core = require "sluice.core"

local M = {}

-- What the library remembers of a connection: target (see M.target),
-- depth (of nested transaction() savepoints).  Weak keys: an entry goes
-- with its connection, and holds nothing that refers back to it.
local state = setmetatable({}, { __mode = "k" })

local function state_of(db)
  local st = state[db]
  if not st then
    st = {}
    state[db] = st
  end
  return st
end

local ISOLATION = {
  ["read committed"] = "READ COMMITTED",
  ["repeatable read"] = "REPEATABLE READ",
  ["serializable"] = "SERIALIZABLE",
}

--- db:begin([opts]) starts a transaction.  opts.isolation is one of
-- "read committed", "repeatable read", "serializable"; opts.read_only and
-- opts.deferrable are booleans.
function M.begin(db, opts)
  local st = db:status()
  -- "broken" and "closed" fall through: exec raises the lost connection
  -- (08006) or the closed one, which say more than "in progress"
  if st == "intrans" or st == "inerror" or st == "active" then
    error("begin: a transaction is already in progress (status " .. st
          .. "); use db:savepoint() or db:transaction() to nest", 2)
  end
  local sql = "BEGIN"
  if opts ~= nil then
    if type(opts) ~= "table" then error("begin: opts must be a table", 2) end
    if opts.isolation ~= nil then
      local iso = ISOLATION[tostring(opts.isolation):lower()]
      if not iso then
        error("begin: unknown isolation level '" .. tostring(opts.isolation)
              .. "' (read committed, repeatable read or serializable)", 2)
      end
      sql = sql .. " ISOLATION LEVEL " .. iso
    end
    if opts.read_only ~= nil then
      sql = sql .. (opts.read_only and " READ ONLY" or " READ WRITE")
    end
    if opts.deferrable ~= nil then
      sql = sql .. (opts.deferrable and " DEFERRABLE" or " NOT DEFERRABLE")
    end
  end
  db:exec(sql)
end

--- db:commit() commits the open transaction.  Raises the server's error
-- when COMMIT fails (a deferred constraint, a serialization failure), and
-- raises too when the transaction had already failed: PostgreSQL then
-- answers COMMIT with ROLLBACK, which is never reported as success.  A
-- connection lost during COMMIT raises the lost connection's error with a
-- detail saying the outcome is unknown.
function M.commit(db)
  local st = db:status()
  if st == "idle" then
    error("commit: no transaction in progress", 2)
  end
  local ok, err, tag = pcall(db.exec, db, "COMMIT")
  if not ok then
    if st ~= "broken" and type(err) == "table" and db:status() == "broken" then
      -- the connection went away while COMMIT ran: whether the server
      -- committed before it went is unknown, unlike any other loss
      local e = {}
      for k, v in pairs(err) do e[k] = v end
      e.detail = "The connection was lost during COMMIT: the server may "
        .. "have committed the transaction before the connection ended, or "
        .. "not. Check the data before running the transaction again."
      err = require("sluice").error(e)
    end
    error(err, 0)
  end
  if tag == "ROLLBACK" then
    local sluice = require "sluice"
    error(sluice.error {
      sqlstate = "25P02",
      message = "COMMIT failed: the transaction had already failed, "
                .. "so the server rolled it back",
      hint = "an earlier statement in this transaction raised an error; "
             .. "that error is the cause",
    }, 2)
  end
end

--- db:rollback() rolls back the open transaction.  Returns false (and does
-- nothing) when there is none, so it is safe in error handlers.
function M.rollback(db)
  if db:status() == "idle" then return false end
  db:exec("ROLLBACK")
  return true
end

local function check_name(db, fname, name)
  if type(name) ~= "string" or name == "" then
    error(fname .. ": the savepoint name must be a non-empty string", 3)
  end
  if db:status() == "idle" then
    error(fname .. ": savepoints need a transaction (db:begin() first)", 3)
  end
  return db:quote_ident(name)
end

function M.savepoint(db, name)
  db:exec("SAVEPOINT " .. check_name(db, "savepoint", name))
end

function M.release(db, name)
  db:exec("RELEASE SAVEPOINT " .. check_name(db, "release", name))
end

function M.rollback_to(db, name)
  db:exec("ROLLBACK TO SAVEPOINT " .. check_name(db, "rollback_to", name))
end

--- db:quote_table(t) -> quoted SQL name, name as shown in messages; or
-- nil when t is not "name", "schema.name" or {schema, name}.  Names are
-- taken literally (no case folding) and quoted with libpq's escaping.
function M.quote_table(db, tbl)
  local schema, name
  if type(tbl) == "string" then
    schema, name = tbl:match("^([^.]+)%.([^.]+)$")
    if not schema and not tbl:find(".", 1, true) then name = tbl end
  elseif type(tbl) == "table" then
    if tbl[2] == nil then name = tbl[1] else schema, name = tbl[1], tbl[2] end
  end
  if type(name) ~= "string" or name == ""
     or (schema ~= nil and (type(schema) ~= "string" or schema == "")) then
    return nil
  end
  if schema then
    return db:quote_ident(schema) .. "." .. db:quote_ident(name), schema .. "." .. name
  end
  return db:quote_ident(name), name
end

local function pack(...)
  return { n = select("#", ...), ... }
end

--- db:transaction(fn, ...) runs fn(db, ...) in a transaction: commits when
-- fn returns (and returns what fn returned), rolls back and re-raises the
-- original error when fn raises.  Inside an open transaction it uses a
-- savepoint instead, so calls nest.
function M.transaction(db, fn, ...)
  if type(fn) ~= "function" then
    error("transaction: expected a function, got " .. type(fn), 2)
  end
  local st = db:status()
  if st == "inerror" then
    error("transaction: the enclosing transaction has already failed; "
          .. "roll it back first", 2)
  end
  -- a broken or closed connection: begin() raises what happened to it
  if st == "idle" or st == "broken" or st == "closed" then
    db:begin()
    local r = pack(pcall(fn, db, ...))
    if not r[1] then
      -- keep the original error even if the connection is gone
      pcall(M.rollback, db)
      error(r[2], 0)
    end
    db:commit()
    return unpack(r, 2, r.n)
  end
  -- nested: a savepoint named after the nesting depth
  local c = state_of(db)
  c.depth = (c.depth or 0) + 1
  local sp = "sluice_tx_" .. c.depth
  local ok, err = pcall(M.savepoint, db, sp)
  if not ok then
    c.depth = c.depth - 1
    error(err, 0)
  end
  local r = pack(pcall(fn, db, ...))
  c.depth = c.depth - 1
  if not r[1] then
    if db:status() ~= "idle" then
      pcall(M.rollback_to, db, sp)
      pcall(M.release, db, sp)
    end
    error(r[2], 0)
  end
  M.release(db, sp)
  return unpack(r, 2, r.n)
end

-- The PG* variables that name a server or a database for libpq.
local TARGET_VARS = { "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER",
                      "PGSERVICE" }

-- Was no database named at all (no target, no DATABASE_URL, no PG*
-- variable), so that libpq tried its built-in default?
local function nothing_named(target)
  if target ~= "" then return false end
  for _, name in ipairs(TARGET_VARS) do
    local v = os.getenv(name)
    if v and v ~= "" then return false end
  end
  return true
end

--- Open a connection (core.connect: target is a conninfo string or a URI,
-- "" for libpq's PG* variables) and remember its target.  opts.timeout:
-- the silence bound in seconds (nil: the default, 300; 0 or false: none;
-- see the README's "Connecting").  level: the caller's level for errors
-- about opts.
function M.connect(target, opts, level)
  local timeout
  if opts ~= nil then
    level = (level or 1) + 1
    if type(opts) ~= "table" then
      error("connect: opts must be a table, got " .. type(opts), level)
    end
    for k in pairs(opts) do
      if k ~= "timeout" then
        error("connect: unknown option '" .. tostring(k) .. "' (timeout)", level)
      end
    end
    timeout = opts.timeout
    if timeout == false then timeout = 0 end
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0
                           or timeout ~= timeout or timeout > 2000000) then
      error("connect: timeout must be a number of seconds (0 or false: none), got "
            .. tostring(opts.timeout), level)
    end
  end
  local ok, db = pcall(core.connect, target, timeout)
  if not ok then
    if type(db) == "table" and db.sqlstate == "08001" and nothing_named(target) then
      -- libpq tried its default (the local socket): say how to name one
      db.hint = "no database was named (no target to sluice.connect(), no "
        .. "DATABASE_URL, no PG* variable such as PGHOST or PGDATABASE): name "
        .. "one, or run the script with sluice --tmpdb for a throwaway PostgreSQL"
    end
    error(db, 0)
  end
  state_of(db).target = target or ""
  return db
end

--- The target a connection was opened with ("" for DATABASE_URL-less,
-- PG*-variable connections), so sluice.load can open more connections to
-- the same place (connections = N).  It may hold a password: it is kept
-- here only, never put into a message.  nil for a connection not made
-- through M.connect.
function M.target(db)
  local st = state[db]
  return st and st.target
end

--- Run fn(...) on db with no bound on the server's silence (timeout 0),
-- the bound put back after: for the long statements sluice runs itself
-- (recreating indexes, moving staged rows), which the server works on
-- without a word for as long as they take.  Dead peers are still found by
-- TCP keepalives.  Returns what fn returned; raises what it raised.
function M.unbounded(db, fn, ...)
  local prev = db:set_timeout(0)
  local res = { pcall(fn, ...) }
  pcall(db.set_timeout, db, prev)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, table.maxn(res))
end

return M
