--- sluice.model: ORM-style models.  A model declares a table, its columns
-- (with SQL types), defaults, computed fields, a validation, hooks and the
-- methods its objects have; save_all() streams objects into the table by
-- COPY, at the speed of the COPY stream.
--
--   local User = sluice.model{
--     table = "users",
--     columns = { {"id", "bigint primary key"}, {"name", "text not null"},
--                 {"email", "text"}, {"age", "int"} },
--     defaults = { age = 30 },                       -- value or fn(self)
--     computed = { email = function(self) return self.name:lower() .. "@example.com" end },
--     validate = function(self) return self.age >= 0, "age must be >= 0" end,
--     before_save = function(self) self.name = self.name:upper() end,
--     methods = { adult = function(self) return self.age >= 18 end },
--   }
--   local u = User:new{ id = 1, name = "Ann" }      -- u:adult(), u.email
--   User:create_table(db)
--   local loaded, rejected = User:save_all(db, iterator, { rejects = list })
--
-- Objects are the field tables themselves, with one shared metatable
-- (methods via __index): one table per object, nothing copied.
--
-- Lifecycle:
--   Model:new(t)  sets the metatable on t (or {}), fills nil fields from
--                 `defaults` (a value, or fn(self)), then sets every
--                 `computed` field (fn(self)).  Defaults and computed
--                 fields run in the order given when declared as a list of
--                 {name, value} pairs, else in sorted name order.
--   saving        validate(self), then before_save(self), then the column
--                 values are written; nil fields are NULL.
--   validate      returns true/nil when the object is valid; false (with
--                 an optional message) or a message string when not; an
--                 error raised inside it counts as a failure too (so
--                 assert() works), except a database error object, which
--                 is raised (a lost connection is not the row's fault).
--
-- Model:save_all(db, source, opts) -> loaded, rejected
--   source: an iterator function or callable source (called until it
--     returns nil, e.g. g:rows(1, n, fn)) or an array.  Items are objects of this model or
--     plain field tables (made into objects with new()).
--   opts.strategy: "copy" (the default and, for now, the only one).
--   opts.format: COPY format, passed to db:copy() (default "auto").
--   opts.quiet: true shows no progress at all.  Otherwise, on a terminal,
--     the live progress line (sluice.progress: after a second, redrawn at
--     the COPY's flushes) and at the end the summary "<table> save_all: N
--     rows, R rows/s, X MB/s, m:ss" (with rejects: "read N = loaded L +
--     rejected R" after it) on stderr; --quiet and a stderr that is no
--     terminal: the summary only.
--   opts.rejects: a list; invalid objects are appended to it as
--     { index = n, object = obj, reason = msg } (n counts items read,
--     from 1) and the load goes on: loaded + rejected = read.  Without
--     it the first invalid object aborts the COPY (nothing is loaded) and
--     raises "<table>: row <n>: <reason>".  Errors in before_save, and
--     server errors (a constraint, a bad value), always raise and load
--     nothing.
--
-- Related tables: model.order(models) sorts models parents first, from
-- `references` in column types and from each model's `after` list;
-- model.create_all / drop_all create and drop tables in that order.
local copy = require "sluice.copy"
local progress = require "sluice.progress"

local M = {}

local Model = {}
Model.__index = Model

-- Instance methods every object has (the script's methods may shadow
-- them; save_all does not call them through the object).
local base_methods = {}

local SPEC_KEYS = {
  table = true, columns = true, defaults = true, computed = true,
  validate = true, before_save = true, methods = true, after = true,
}

-- {name, value} pairs from a list of pairs or a map (sorted by name).
local function ordered_pairs(what, t)
  local out = {}
  if t == nil then return out end
  if type(t) ~= "table" then
    error("model: " .. what .. " must be a table", 3)
  end
  if t[1] ~= nil then
    for j, p in ipairs(t) do
      if type(p) ~= "table" or type(p[1]) ~= "string" then
        error(("model: %s[%d] must be a {name, value} pair"):format(what, j), 3)
      end
      out[j] = { p[1], p[2] }
    end
  else
    for k, v in pairs(t) do out[#out + 1] = { k, v } end
    table.sort(out, function(a, b) return a[1] < b[1] end)
  end
  return out
end

-- Compile the row writer: row(cp, rawget(o, "a"), ...) for this model's
-- columns, so a row crosses to C in one call with no table of values.
-- rawget: a nil field is NULL, never a method of the same name.  `row` is
-- cp.row fetched once: no lookup through the stream's __index per row.
local function make_writer(names)
  local args = {}
  for j, n in ipairs(names) do args[j] = ("rawget(o, %q)"):format(n) end
  local src = "local row, cp, o = ...\nreturn row(cp, " .. table.concat(args, ", ") .. ")"
  return assert(loadstring(src, "=model writer"))
end

--- sluice.model(spec) -> a model.  Raises on a malformed spec.
function M.define(spec)
  if type(spec) ~= "table" then error("model: expected a table spec", 2) end
  for k in pairs(spec) do
    if not SPEC_KEYS[k] then
      error("model: unknown key '" .. tostring(k) .. "'", 2)
    end
  end
  if type(spec.table) ~= "string" or spec.table == "" then
    error("model: `table` must be a table name", 2)
  end
  if type(spec.columns) ~= "table" or #spec.columns == 0 then
    error("model: `columns` must be a list of names or {name, type} pairs", 2)
  end
  local columns, names = {}, {}
  for j, c in ipairs(spec.columns) do
    local name, typ
    if type(c) == "string" then
      name = c
    elseif type(c) == "table" and type(c[1]) == "string" then
      name, typ = c[1], c[2]
    end
    if not name or name == "" or (typ ~= nil and type(typ) ~= "string") then
      error(("model: column %d must be a name or a {name, type} pair"):format(j), 2)
    end
    columns[j] = { name = name, type = typ }
    names[j] = name
  end
  for _, k in ipairs({ "validate", "before_save" }) do
    if spec[k] ~= nil and type(spec[k]) ~= "function" then
      error("model: `" .. k .. "` must be a function", 2)
    end
  end
  local methods = {}
  for k, v in pairs(base_methods) do methods[k] = v end
  for k, v in pairs(spec.methods or {}) do methods[k] = v end
  local model = setmetatable({
    table = spec.table,
    columns = columns,
    column_names = names,
    defaults = ordered_pairs("defaults", spec.defaults),
    computed = ordered_pairs("computed", spec.computed),
    validate = spec.validate,
    before_save = spec.before_save,
    after = spec.after or {},
    methods = methods,
    write = make_writer(names),
  }, Model)
  for _, p in ipairs(model.computed) do
    if type(p[2]) ~= "function" then
      error("model: computed field '" .. p[1] .. "' must be a function", 2)
    end
  end
  methods.model = function() return model end
  model.meta = { __index = methods }
  return model
end

--- Model:new([fields]) -> object (the fields table itself).
function Model:new(t)
  t = t or {}
  setmetatable(t, self.meta)
  local defaults = self.defaults
  for j = 1, #defaults do
    local p = defaults[j]
    if rawget(t, p[1]) == nil then
      local v = p[2]
      if type(v) == "function" then v = v(t) end
      t[p[1]] = v
    end
  end
  local computed = self.computed
  for j = 1, #computed do
    local p = computed[j]
    t[p[1]] = p[2](t)
  end
  return t
end

-- Run the validation: true, or false and a message.
local function check(model, obj)
  local v = model.validate
  if not v then return true end
  local ok, res, msg = pcall(v, obj)
  if not ok then
    if require("sluice").is_error(res) then error(res, 0) end
    return false, tostring(res)
  end
  if res == nil or res == true then return true end
  if type(res) == "string" then return false, res end
  return false, msg and tostring(msg) or "validation failed"
end

--- obj:check() -> true, or false and the reason.
function base_methods.check(obj)
  return check(getmetatable(obj).__index.model(), obj)
end

--- obj:values() -> the column values in column order (nil for NULL).
function base_methods.values(obj)
  local model = getmetatable(obj).__index.model()
  local out = {}
  for j, n in ipairs(model.column_names) do out[j] = rawget(obj, n) end
  return unpack(out, 1, #model.column_names)
end

--- Model:create_table(db [, {drop = true, unlogged = true}]) creates the
-- table from the column types (CREATE TABLE IF NOT EXISTS).
function Model:create_table(db, opts)
  opts = opts or {}
  local cols = {}
  for j, c in ipairs(self.columns) do
    if not c.type then
      error(("create_table: column '%s' of %s has no type"):format(c.name, self.table), 2)
    end
    cols[j] = db:quote_ident(c.name) .. " " .. c.type
  end
  local qt = M.quote_table(db, self.table)
  for _, c in ipairs(self.columns) do
    -- vector(d), halfvec(d), sparsevec(d): pgvector's types, whose
    -- extension the database may not have yet
    local t = c.type:lower():match("^%s*(%a+)")
    if t == "vector" or t == "halfvec" or t == "sparsevec" then
      db:exec("CREATE EXTENSION IF NOT EXISTS vector")
      break
    end
  end
  if opts.drop then db:exec("DROP TABLE IF EXISTS " .. qt .. " CASCADE") end
  db:exec(("CREATE %sTABLE IF NOT EXISTS %s (%s)")
          :format(opts.unlogged and "UNLOGGED " or "", qt, table.concat(cols, ", ")))
end

function Model:drop_table(db)
  db:exec("DROP TABLE IF EXISTS " .. M.quote_table(db, self.table) .. " CASCADE")
end

function M.quote_table(db, name)
  return (assert(db:quote_table(name), "the model's table name is not valid"))
end

local function iterate(source)
  if type(source) == "function" then return source end
  -- a source object (g:rows(...) of sluice.gen): callable, not a list
  if require("sluice.values").callable(source) then return source end
  if type(source) == "table" then
    local it, why = require("sluice.values").list_iterator(source)
    if not it then
      error("save_all: the source must be a list with keys 1..n only (a nil inside it would "
            .. "end the load early), got " .. why, 3)
    end
    return it
  end
  error("save_all: the source must be an iterator function or an array, got "
        .. type(source), 3)
end

--- Model:save_all(db, source [, opts]) -> loaded, rejected (see the top).
function Model:save_all(db, source, opts)
  opts = opts or {}
  local strategy = opts.strategy or "copy"
  if strategy ~= "copy" then
    error("save_all: unknown strategy '" .. tostring(strategy) .. "' (\"copy\")", 2)
  end
  local rejects = opts.rejects
  if rejects ~= nil and type(rejects) ~= "table" then
    error("save_all: rejects must be a list", 2)
  end
  local next_item = iterate(source)
  local meta, write = self.meta, self.write
  local before_save = self.before_save
  local has_validate = self.validate ~= nil
  -- the COPY ticks this progress; the summary counts the objects read
  local prog = progress.of(opts, self.table .. " save_all")
  local cp = copy.copy(db, self.table, self.column_names,
                       { format = opts.format, quiet = prog == nil or nil }, prog)
  local row = cp.row
  local read, rejected = 0, 0
  local ok, err = pcall(function()
    while true do
      local obj = next_item()
      if obj == nil then break end
      read = read + 1
      if getmetatable(obj) ~= meta then obj = self:new(obj) end
      local valid, why = true, nil
      if has_validate then valid, why = check(self, obj) end
      if not valid then
        if not rejects then
          error(("%s: row %d: %s"):format(self.table, read, why), 0)
        end
        rejected = rejected + 1
        rejects[#rejects + 1] = { index = read, object = obj, reason = why }
      else
        if before_save then
          local hok, herr = pcall(before_save, obj)
          if not hok then
            local where = ("%s: row %d: before_save: "):format(self.table, read)
            local sluice = require "sluice"
            if not sluice.is_error(herr) then error(where .. tostring(herr), 0) end
            -- a database error keeps its fields (sqlstate, ...)
            local e = {}
            for k, v in pairs(herr) do e[k] = v end
            e.message = where .. tostring(herr.message)
            error(sluice.error(e), 0)
          end
        end
        write(row, cp, obj)
      end
    end
  end)
  if not ok then
    if cp.state == "open" then cp:abort(type(err) == "string" and err or nil) end
    if prog then prog:hide() end
    error(err, 2)
  end
  local loaded = cp:finish()
  if prog then
    if rejects then
      prog:finish(loaded + rejected, cp.bytes_sent, rejected)
    else
      prog:finish(loaded, cp.bytes_sent)
    end
  end
  return loaded, rejected
end

------------------------------------------------------------ related tables
-- Names of the tables a model's column types reference.
local function referenced(model)
  local out = {}
  for _, c in ipairs(model.columns) do
    if c.type then
      for ref in c.type:lower():gmatch("references%s+([%w_%.\"]+)") do
        out[#out + 1] = (ref:gsub('"', ""))
      end
    end
  end
  for _, a in ipairs(model.after) do
    out[#out + 1] = type(a) == "table" and a.table or a
  end
  return out
end

--- model.order(models) -> the models sorted parents first (a stable
-- topological sort: among independent models the given order stays).
-- References to tables outside the list are ignored; a cycle raises.
function M.order(models)
  local by_name = {}
  for _, m in ipairs(models) do
    by_name[m.table:lower()] = m
    by_name[(m.table:lower():match("[^.]+$"))] = m
  end
  local out, state = {}, {}
  local function visit(m, path)
    if state[m] == "done" then return end
    if state[m] == "visiting" then
      error("model.order: the tables reference each other in a cycle: " .. path, 3)
    end
    state[m] = "visiting"
    for _, ref in ipairs(referenced(m)) do
      local p = by_name[ref] or by_name[(ref:match("[^.]+$"))]
      if p and p ~= m then visit(p, path .. " -> " .. p.table) end
    end
    state[m] = "done"
    out[#out + 1] = m
  end
  for _, m in ipairs(models) do visit(m, m.table) end
  return out
end

--- model.create_all(db, models [, opts]): drop (opts.drop, children
-- first) and create the tables, parents first.  Returns the load order.
function M.create_all(db, models, opts)
  local ordered = M.order(models)
  if opts and opts.drop then
    for j = #ordered, 1, -1 do ordered[j]:drop_table(db) end
  end
  for _, m in ipairs(ordered) do m:create_table(db, opts and { unlogged = opts.unlogged }) end
  return ordered
end

--- model.drop_all(db, models): drop the tables, children first.
function M.drop_all(db, models)
  local ordered = M.order(models)
  for j = #ordered, 1, -1 do ordered[j]:drop_table(db) end
end

M.Model = Model

return setmetatable(M, { __call = function(_, spec) return M.define(spec) end })
