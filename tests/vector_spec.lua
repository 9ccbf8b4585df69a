-- luacheck: std +busted
-- pgvector's types (vector, halfvec, sparsevec) and bit strings: every
-- path loads a value with one meaning (binary, text, CSV, batch,
-- pipeline), the server's own input and casts are the reference, bad
-- values are refused at the client naming row, column and element with
-- the server's words, and a load with drop_indexes ends with a working
-- HNSW index.
local H = require "helper"
local sluice = require "sluice"
local ffi = require "ffi"

local db0 = H.connect()
local have = db0:query_one("select 1 as x from pg_available_extensions where name = 'vector'")
db0:close()

if not have then
  describe("pgvector", function()
    pending("pgvector is not installed on this PostgreSQL: the vector specs are skipped. "
            .. "`make deps` builds it from ../shared/vendor/pgvector-0.8.6.tar.gz when that "
            .. "is there; otherwise install pgvector 0.8 for PostgreSQL 15")
  end)
  return
end

-- the server's text of a value given as text, through the column's type
local function server_text(db, text, typ)
  return db:query_one(("select $1::%s::text as t"):format(typ), text).t
end

-- the server's error message for an expression
local function server_error(db, sql)
  local err = H.error_of(db.query, db, sql)
  return err.message, err.sqlstate
end

-- exact floats (a double that a float holds), so that any decimal text
-- of them reads back as the same float
local function float_of(x) return tonumber(ffi.new("float", x)) end

describe("pgvector values", function()
  local db
  setup(function()
    db = H.connect()
    db:exec("create extension if not exists vector schema public")
    H.schema(db, "vector_spec")
    db:exec("set search_path = vector_spec, public")
    db:exec([[create table v (id int, v vector(3), h halfvec(3), s sparsevec(6),
                              b bit(4), vb bit varying(8), u vector)]])
  end)
  teardown(function()
    db:exec("drop schema vector_spec cascade")
    db:close()
  end)
  before_each(function() db:exec("truncate v") end)

  local rows = {
    { 1, { 1, 2.5, -3 }, { 0.1, 65504, 1e-8 }, { [1] = 1.5, [4] = -2 }, "1010", "X5", { 0.25 } },
    { 2, "[4, 5.5 ,6]", { 1 + 2 ^ -11, 1 + 3 * 2 ^ -11, 2 ^ -25 },
      { indices = { 6, 2 }, values = { 1, 0.5 }, dim = 6 }, "B0001", "", { 1e-3, -7, 3.25, 12 } },
    { 3, { 0, -0.5, 1e-30 }, "[1,2,3]", " { 5:0.25, 2:0 ,1:3}/6", "0000", "1", "[7]" },
  }
  -- the same values as the text each type's input reads
  local texts = {
    { "[1,2.5,-3]", "[0.1,65504,1e-8]", "{1:1.5,4:-2}/6", "1010", "X5", "[0.25]" },
    { "[4,5.5,6]", ("[%.17g,%.17g,%.17g]"):format(1 + 2 ^ -11, 1 + 3 * 2 ^ -11, 2 ^ -25),
      "{2:0.5,6:1}/6", "B0001", "", "[0.001,-7,3.25,12]" },
    { "[0,-0.5,1e-30]", "[1,2,3]", "{1:3,5:0.25}/6", "0000", "1", "[7]" },
  }
  local TYPES = { "vector(3)", "halfvec(3)", "sparsevec(6)", "bit(4)", "bit varying(8)", "vector" }
  local COLS = { "v", "h", "s", "b", "vb", "u" }

  local function check_contents()
    local got = db:query("select id, v::text, h::text, s::text, b::text, vb::text, u::text from v order by id")
    assert.equal(#texts, #got)
    for i, t in ipairs(texts) do
      for j, col in ipairs(COLS) do
        assert.equal(server_text(db, t[j], TYPES[j]), got[i][col],
                     ("row %d, column %s"):format(i, col))
      end
    end
  end

  for _, format in ipairs { "binary", "text", "csv" } do
    it("round-trips every type exactly in COPY " .. format, function()
      local cp = db:copy("v", { format = format })
      for _, r in ipairs(rows) do cp:row(unpack(r)) end
      assert.equal(#rows, cp:finish())
      check_contents()
    end)
  end

  for _, strategy in ipairs { "batch", "pipeline" } do
    it("loads the same values by " .. strategy, function()
      local list = {}
      for i, r in ipairs(rows) do
        list[i] = { r[1], r[2], r[3], r[4], r[5], r[6], r[7] }
        if type(list[i][2]) == "string" then list[i][2] = { 4, 5.5, 6 } end
        -- parameters have no column type to give a sparse vector its size
        if type(list[i][4]) == "table" and list[i][4].dim == nil then list[i][4].dim = 6 end
      end
      sluice.load { db = db, table = "v", rows = list, strategy = strategy, quiet = true }
      check_contents()
    end)
  end

  it("takes FFI float[] and double[] buffers as it takes Lua arrays", function()
    local f = ffi.new("float[3]", 1, 2.5, -3)
    local d = ffi.new("double[?]", 3, 0.1, 65504, 1e-8)
    for _, format in ipairs { "binary", "text" } do
      db:exec("truncate v")
      local cp = db:copy("v", { "id", "v", "h", "u" }, { format = format })
      cp:row(1, ffi.cast("float *", f), d, f)
      cp:finish()
      local r = db:query_one("select v::text, h::text, u::text from v")
      assert.same({ "[1,2.5,-3]", server_text(db, "[0.1,65504,1e-8]", "halfvec"), "[1,2.5,-3]" },
                  { r.v, r.h, r.u })
    end
    local err = H.error_of(function()
      local cp = db:copy("v", { "id", "u" })
      cp:row(1, ffi.cast("float *", f))
    end)
    assert.matches('row 1, column "u" %(vector%): expected an FFI float%[%] array', err.message)
  end)

  it("rounds halfvec elements as PostgreSQL's own cast does (nearest, ties to even)", function()
    db:exec("create temp table hv (id int, h halfvec)")
    local g = sluice.gen(7)
    local values = { 1 + 2 ^ -11, 1 + 3 * 2 ^ -11, 2 ^ -25, 3 * 2 ^ -25, 2 ^ -24 * 1023.5,
                     65519, 65504, -0.1, 6.1e-5, 2 ^ -14 }
    for _ = 1, 300 do
      values[#values + 1] = float_of((g:random() - 0.5) * 2 ^ g:int(-30, 16))
    end
    for i, x in ipairs(values) do values[i] = float_of(x) end
    for _, format in ipairs { "binary", "text" } do
      db:exec("truncate hv")
      local cp = db:copy("hv", { format = format })
      cp:row(1, values)
      cp:finish()
      local parts = {}
      for i, x in ipairs(values) do parts[i] = ("%.17g"):format(x) end
      local want = db:query_one("select ($1::vector)::halfvec::text as t",
                                "[" .. table.concat(parts, ",") .. "]").t
      assert.equal(want, db:query_one("select h::text as t from hv").t)
    end
    local msg, state = server_error(db, "select '[70000]'::vector::halfvec")
    local err = H.error_of(function()
      local cp = db:copy("hv")
      cp:row(1, { 1, 70000 })
    end)
    assert.equal('row 1, column "h" (halfvec), element [2]: ' .. msg, err.message)
    assert.equal(state, err.sqlstate)
  end)

  it("gives query results and copy_out rows as Lua tables", function()
    local cp = db:copy("v")
    for _, r in ipairs(rows) do cp:row(unpack(r)) end
    cp:finish()
    local r = db:query_one("select v, h, s, u from v where id = 1")
    assert.same({ 1, 2.5, -3 }, r.v)
    assert.same({ [1] = 1.5, [4] = -2, dim = 6 }, r.s)
    local back = {}
    for row in db:copy_out("select id, v, s from v order by id") do back[#back + 1] = row end
    assert.same({ 1, 2.5, -3 }, back[1][2])
    assert.same({ [2] = 0.5, [6] = 1, dim = 6 }, back[2][3])
    -- what comes back loads again as the same value
    db:exec("create temp table v2 as select * from v with no data")
    back = {}
    for row in db:copy_out("select id, v, h, s, u from v") do back[#back + 1] = row end
    local cp2 = db:copy("v2", { "id", "v", "h", "s", "u" })
    for _, row in ipairs(back) do cp2:row(unpack(row, 1, 5)) end
    cp2:finish()
    assert.equal(0, db:query_one([[select count(*) as n from (select id, v, h, s, u from v
                                   except select id, v, h, s, u from v2) d]]).n)
  end)

  -- a bad value: the error names the row, the column and the element,
  -- in the server's words (its SQLSTATE too), and nothing is loaded
  local function refused(values, format)
    local err = H.error_of(function()
      local cp = db:copy("v", { "id", "v" }, { format = format })
      cp:row(1, { 1, 2, 3 })
      cp:row(2, values)
      cp:finish()
    end)
    assert.equal(0, H.count(db, "v"))
    return err
  end

  for _, format in ipairs { "binary", "text", "csv" } do
    it("refuses a wrong dimension, NaN and infinity at the client (" .. format .. ")", function()
      local err = refused({ 1, 2 }, format)
      local msg, state = server_error(db, "select '[1,2]'::vector(3)")
      assert.equal('row 2, column "v" (vector(3)): ' .. msg, err.message)
      assert.equal(state, err.sqlstate)
      err = refused({ 1, 0 / 0, 3 }, format)
      msg, state = server_error(db, "select '[1,NaN,3]'::vector")
      assert.equal('row 2, column "v" (vector(3)), element [2]: ' .. msg, err.message)
      assert.equal(state, err.sqlstate)
      err = refused({ 1, 2, -1 / 0 }, format)
      msg, state = server_error(db, "select '[1,2,-Infinity]'::vector")
      assert.equal('row 2, column "v" (vector(3)), element [3]: ' .. msg, err.message)
      assert.equal(state, err.sqlstate)
      err = refused({ 1, "x", 3 }, format)
      assert.equal('row 2, column "v" (vector(3)), element [2]: expected a number, got string "x"',
                   err.message)
    end)
  end

  it("refuses bad sparse vectors and bit strings with the server's words", function()
    local function bad(col, value, sql)
      local err = H.error_of(function()
        local cp = db:copy("v", { "id", col })
        cp:row(1, value)
      end)
      if sql then
        local msg, state = server_error(db, sql)
        assert.matches(msg, err.message, 1, true)
        assert.equal(state, err.sqlstate)
      end
      return err
    end
    assert.equal('row 1, column "s" (sparsevec(6)): sparsevec index out of bounds (index 7, dimension 6)',
                 bad("s", { [7] = 1 }, "select '{7:1}/6'::sparsevec").message)
    assert.equal('row 1, column "s" (sparsevec(6)): expected 6 dimensions, not 5',
                 bad("s", { [1] = 1, dim = 5 }, "select '{1:1}/5'::sparsevec(6)").message)
    bad("b", "101", "insert into v (b) values ('101')")
    bad("b", "1021", "insert into v (b) values ('1021')")
    bad("vb", "101010101", "insert into v (vb) values ('101010101')")
  end)
end)

describe("pgvector indexes", function()
  local db
  setup(function()
    db = H.connect()
    db:exec("create extension if not exists vector schema public")
    H.schema(db, "vector_index_spec")
    db:exec("set search_path = vector_index_spec, public")
  end)
  teardown(function()
    db:exec("drop schema vector_index_spec cascade")
    db:close()
  end)

  it("a load with drop_indexes ends with a working HNSW index", function()
    local n, d = 3000, 32
    db:exec(("create table emb (id int primary key, doc int, e vector(%d))"):format(d))
    db:exec("create index emb_hnsw on emb using hnsw (e vector_cosine_ops)")
    db:exec("create index emb_doc on emb (doc)")
    local g = sluice.gen(11)
    local s = sluice.load {
      db = db, table = "emb", quiet = true, drop_indexes = true,
      maintenance_work_mem = "64MB", max_parallel_maintenance_workers = 0,
      rows = g:rows(1, n, function(r, i)
        local v = r:clustered(20, d, 0.3)
        return { i, i % 100, v }
      end),
    }
    assert.equal(n, s.rows)
    assert.equal(2, #s.indexes)
    assert.is_true(s.index_seconds > 0)
    local defs = {}
    for _, r in ipairs(db:query("select indexdef from pg_indexes where tablename = 'emb' order by 1")) do
      defs[#defs + 1] = r.indexdef
    end
    assert.equal(3, #defs)
    assert.matches("USING hnsw %(e vector_cosine_ops%)", table.concat(defs, "\n"))
    assert.is_true(db:query_one([[select bool_and(indisvalid) as ok from pg_index
                                   where indrelid = 'emb'::regclass]]).ok)
    -- the row we ask about is its own nearest neighbour, found through the index
    local probe = g:at(1233):clustered(20, d, 0.3)
    local plan = {}
    -- vectors in TOAST make the heap look small: take the sequential
    -- scan away to see that the index serves the query
    db:exec("set enable_seqscan = off")
    local q = "select id from emb order by e <=> $1::vector limit 1"
    local lit = "[" .. table.concat(probe, ",") .. "]"
    for _, r in ipairs(db:query("explain " .. q, lit)) do plan[#plan + 1] = r["QUERY PLAN"] end
    plan = table.concat(plan, "\n"):gsub("'%[[^']*%]'", "'[...]'")
    assert.matches("Index Scan using emb_hnsw", plan)
    assert.equal(1233, db:query_one(q, lit).id)
    db:exec("reset enable_seqscan")
  end)
end)

describe("pgvector and the compiled row writer", function()
  local db
  setup(function()
    db = H.connect()
    db:exec("create extension if not exists vector schema public")
    H.schema(db, "vector_fast_spec")
    db:exec("set search_path = vector_fast_spec, public")
    db:exec("create table f (id int, v vector(3), r real[], d float8[])")
  end)
  teardown(function()
    db:exec("drop schema vector_fast_spec cascade")
    db:close()
  end)

  it("writes vector, real[] and float8[] rows in Lua, and refuses what the C path refuses", function()
    local cp = db:copy("f")
    assert.is_not_nil(require("sluice.copy").fast_rows[cp])
    cp:row(1, { 1, 2, 3 }, { 0.5, -1e30 }, { 0.1, 1e300 })
    cp:row(2, ffi.new("float[3]", 4, 5, 6), {}, { 0 / 0 })
    assert.equal(2, cp:finish())
    local got = db:query("select v::text, r::text, d::text from f order by id")
    assert.same({ v = "[1,2,3]", r = "{0.5,-1e+30}", d = "{0.1,1e+300}" }, got[1])
    assert.same({ v = "[4,5,6]", r = "{}", d = "{NaN}" }, got[2])
    for _, case in ipairs {
      { { 1, 2, 3, x = 1 }, {}, {}, 'row 1, column "v" (vector(3)): expected a vector: a Lua array' },
      { { 1, 2, 3 }, { 1, 2, x = 1 }, {}, 'row 1, column "r" (real[]): expected an array' },
      { { 1, 2, 3 }, { 1e39 }, {}, 'row 1, column "r" (real[]), element [1]: expected' },
    } do
      db:exec("truncate f")
      local err = H.error_of(function()
        local c = db:copy("f")
        c:row(1, case[1], case[2], case[3])
      end)
      assert.equal(1, err.message:find(case[4], 1, true), err.message)
    end
  end)
end)
