-- sluice.model: objects, defaults, computed fields, validation, hooks,
-- save_all by COPY with and without a rejects list, and load order.
local H = require "helper"
local sluice = require "sluice"

local NULL = sluice.null

local saved -- before_save calls, to check which objects it saw

local function user_model(tbl)
  return sluice.model {
    table = tbl,
    columns = {
      { "id", "bigint primary key" }, { "name", "text not null" },
      { "email", "text" }, { "age", "int" }, { "status", "text" },
      { "slug", "text" }, { "model", "text" },
    },
    defaults = { status = "new", age = function(u) return u.id % 2 == 0 and 40 or 20 end },
    computed = { slug = function(u) return u.name:lower():gsub("%s+", "-") .. "-" .. u.id end },
    validate = function(u)
      if u.age < 0 then return false, "age must not be negative" end
      if u.name == "" then return "a user needs a name" end
      assert(u.email == nil or u.email:find("@"), "email needs an @")
      return true
    end,
    before_save = function(u)
      saved[#saved + 1] = u.id
      u.name = u.name:upper()
    end,
    methods = {
      adult = function(u) return u.age >= 18 end,
      greet = function(u) return "hi " .. u.name end,
    },
  }
end

local count = H.count

describe("sluice.model objects", function()
  local User = user_model("m_users")

  it("applies defaults and computed fields, and has the script's methods", function()
    local t = { id = 2, name = "Ann Lee" }
    local u = User:new(t)
    assert.are.equal(t, u) -- the same table: one table per object
    assert.are.equal("new", u.status)
    assert.are.equal(40, u.age)
    assert.are.equal(20, User:new { id = 3, name = "B" }.age)
    assert.are.equal(7, User:new { id = 5, name = "B", age = 7 }.age)
    assert.are.equal("ann-lee-2", u.slug)
    assert.is_true(u:adult())
    assert.are.equal("hi Ann Lee", u:greet())
    assert.are.equal(User, u:model())
    assert.are.same({ 2, "Ann Lee", nil, 40, "new", "ann-lee-2" }, { u:values() })
  end)

  it("validates by return value or by raising", function()
    assert.is_true(User:new { id = 1, name = "a", age = 30 }:check())
    assert.are.same({ false, "age must not be negative" },
                    { User:new { id = 1, name = "a", age = -1 }:check() })
    assert.are.same({ false, "a user needs a name" }, { User:new { id = 1, name = "" }:check() })
    local ok, why = User:new { id = 1, name = "a", email = "nope" }:check()
    assert.is_false(ok)
    assert.is_truthy(why:find("email needs an @", 1, true))
  end)

  it("refuses malformed specs", function()
    assert.has_error(function() sluice.model { columns = { "a" } } end, "model: `table` must be a table name")
    assert.has_error(function() sluice.model { table = "t", columns = {} } end)
    assert.has_error(function() sluice.model { table = "t", columns = { "a" }, validat = print } end,
                     "model: unknown key 'validat'")
    assert.has_error(function() sluice.model { table = "t", columns = { "a" }, computed = { a = 1 } } end)
  end)

  it("orders related tables parents first and finds cycles", function()
    local A = sluice.model { table = "a", columns = { { "id", "int primary key" } } }
    local B = sluice.model { table = "b", columns = { { "a_id", "int references a(id)" } } }
    local C = sluice.model { table = "c", columns = { { "b_id", "int references B" }, { "x", "int" } } }
    local D = sluice.model { table = "d", columns = { "x" }, after = { C } }
    local names = {}
    for j, m in ipairs(sluice.model.order { D, C, B, A }) do names[j] = m.table end
    assert.are.same({ "a", "b", "c", "d" }, names)
    local X = sluice.model { table = "x", columns = { "y" }, after = { "y" } }
    local Y = sluice.model { table = "y", columns = { "x" }, after = { "x" } }
    assert.has_error(function() sluice.model.order { X, Y } end)
  end)
end)

describe("sluice.model save_all", function()
  local db
  local User = user_model("m_users")
  setup(function()
    db = H.connect()
    H.schema(db, "model_spec")
  end)
  teardown(function() db:close() end)
  before_each(function()
    saved = {}
    User:create_table(db, { drop = true })
  end)

  local function people(n, bad)
    local g = sluice.gen(1):stream("people")
    return g:rows(1, n, function(r, i)
      return User:new { id = i, name = r:name(), email = r:email(),
                        age = bad and bad[i] or r:int(18, 80) }
    end)
  end

  it("streams objects into the table, running before_save on each", function()
    local loaded, rejected = User:save_all(db, people(500))
    assert.are.equal(500, loaded)
    assert.are.equal(0, rejected)
    assert.are.equal(500, count(db, "m_users"))
    assert.are.equal(500, #saved)
    -- before_save upper-cased the names; nil fields (model) are NULL
    assert.are.equal(0, db:query_one("select count(*) as n from m_users where name <> upper(name)").n)
    local r = db:query_one("select * from m_users where id = 2")
    assert.are.equal("new", r.status)
    assert.are.equal(NULL, r.model)
    assert.is_truthy(r.slug:match("%-2$"))
  end)

  it("accepts arrays of plain field tables", function()
    local loaded = User:save_all(db, { { id = 1, name = "x" }, { id = 2, name = "y", age = 5 } })
    assert.are.equal(2, loaded)
    local rows = db:query("select id, name, age, status, slug from m_users order by id")
    assert.are.same({ id = 1, name = "X", age = 20, status = "new", slug = "x-1" }, rows[1])
    assert.are.equal(5, rows[2].age)
  end)

  it("raises with the row index on a validation failure and loads nothing", function()
    local ok, err = pcall(function()
      local loaded = User:save_all(db, people(100, { [37] = -3 }))
      return loaded
    end)
    assert.is_false(ok)
    assert.is_truthy(err:find("m_users: row 37: age must not be negative", 1, true), err)
    assert.is_truthy(err:find("model_spec.lua", 1, true), err) -- the caller's line
    assert.are.equal(0, count(db, "m_users"))
    assert.are.equal("idle", db:status())
    assert.are.equal(36, #saved) -- before_save never saw the invalid row
  end)

  it("puts invalid objects in the rejects list: loaded + rejected = read", function()
    local rejects = {}
    local bad = { [3] = -1, [50] = -2, [51] = -9, [100] = -1 }
    local loaded, rejected = User:save_all(db, people(100, bad), { rejects = rejects })
    assert.are.equal(96, loaded)
    assert.are.equal(4, rejected)
    assert.are.equal(100, loaded + rejected)
    assert.are.equal(96, count(db, "m_users"))
    local idx = {}
    for j, rj in ipairs(rejects) do
      idx[j] = rj.index
      assert.are.equal("age must not be negative", rj.reason)
      assert.are.equal(rj.index, rj.object.id)
    end
    assert.are.same({ 3, 50, 51, 100 }, idx)
    assert.are.equal(0, db:query_one("select count(*) as n from m_users where id in (3, 50, 51, 100)").n)
  end)

  it("raises before_save errors and server errors, loading nothing", function()
    local Boom = sluice.model {
      table = "m_users", columns = { "id", "name" },
      before_save = function(u) if u.id == 4 then error("boom") end end,
    }
    local ok, err = pcall(Boom.save_all, Boom, db, { { id = 1, name = "a" }, { id = 4, name = "b" } })
    assert.is_false(ok)
    assert.is_truthy(err:find("m_users: row 2: before_save: ", 1, true), err)
    assert.is_truthy(err:find("boom", 1, true), err)
    -- a database error in before_save stays an error object
    local other = H.connect()
    local Lookup = sluice.model {
      table = "m_users", columns = { "id", "name" },
      before_save = function(u) if u.id == 4 then other:query("select 1 / 0") end end,
    }
    ok, err = pcall(Lookup.save_all, Lookup, db, { { id = 1, name = "a" }, { id = 4, name = "b" } })
    other:close()
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err), tostring(err))
    assert.are.equal("22012", err.sqlstate)
    assert.are.equal("m_users: row 2: before_save: division by zero", err.message)
    assert.are.equal(0, count(db, "m_users"))
    -- nor is a database error in validate a reason to set the row aside
    other = H.connect()
    local Checked = sluice.model {
      table = "m_users", columns = { "id", "name" },
      validate = function(u) return u.id ~= 4 or other:query_one("select 1 / 0 as x").x == 1 end,
    }
    local set_aside = {}
    ok, err = pcall(Checked.save_all, Checked, db, { { id = 1, name = "a" }, { id = 4, name = "b" } },
                    { rejects = set_aside })
    other:close()
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err), tostring(err))
    assert.are.equal("22012", err.sqlstate)
    assert.are.same({}, set_aside)
    assert.are.equal(0, count(db, "m_users"))
    -- a duplicate key: the server's error object, nothing loaded
    local rejects = {}
    ok, err = pcall(User.save_all, User, db, { { id = 1, name = "a" }, { id = 1, name = "b" } },
                    { rejects = rejects })
    assert.is_false(ok)
    assert.is_true(sluice.is_error(err))
    assert.are.equal("23505", err.sqlstate)
    assert.are.equal(0, count(db, "m_users"))
    assert.has_error(function() User:save_all(db, {}, { strategy = "insert-one-by-one" }) end)
  end)

  it("creates and drops related tables in order", function()
    local P = sluice.model { table = "m_parent", columns = { { "id", "int primary key" } } }
    local Ch = sluice.model { table = "m_child", columns = { { "pid", "int references m_parent(id)" } } }
    local order = sluice.model.create_all(db, { Ch, P }, { drop = true })
    assert.are.same({ "m_parent", "m_child" }, { order[1].table, order[2].table })
    P:save_all(db, { { id = 1 } })
    Ch:save_all(db, { { pid = 1 } })
    sluice.model.drop_all(db, { Ch, P })
    assert.is_nil(db:query_one("select to_regclass('m_parent') as r where to_regclass('m_parent') is not null"))
  end)
end)
