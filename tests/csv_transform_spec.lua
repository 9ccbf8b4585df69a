-- luacheck: std +busted
-- scripts/csv_transform.lua, run as a user runs it (a child sluice process
-- against DATABASE_URL): its counts add up, the table holds the cleaned
-- rows, the rejects file holds the rest with their reasons.
local H = require "helper"
local sluice = require "sluice"
local ffi = require "ffi"

pcall(ffi.cdef, [[ int getpid(void); ]])

local NULL = sluice.null
local SCRIPT = H.root .. "/scripts/csv_transform.lua"
local DIR = os.getenv("TMPDIR") or "/tmp"
local TAG = ("%s/sluice-ct-%d"):format(DIR, ffi.C.getpid())

local write = H.write

local function run(args)
  return H.sluice(H.q(SCRIPT) .. " " .. args)
end

local function counts(out)
  local r, l, j = out:match("read (%d+), loaded (%d+), rejected (%d+)")
  return tonumber(r), tonumber(l), tonumber(j)
end

local function rejects_of(path)
  local out = {}
  for row in sluice.csv.rows(path) do out[#out + 1] = row end
  return out
end

describe("scripts/csv_transform.lua", function()
  local db

  setup(function()
    db = H.connect()
  end)

  teardown(function()
    if db then
      db:exec("DROP TABLE IF EXISTS ct_sample, ct_fixture")
      db:close()
    end
    for _, f in ipairs({ "sample.csv.gz", "sample.rejects.csv", "fixture.csv",
                         "fixture.rejects.csv" }) do
      os.remove(TAG .. "-" .. f)
    end
  end)

  it("loads a generated sample: read = loaded + rejected", function()
    local input, rejects = TAG .. "-sample.csv.gz", TAG .. "-sample.rejects.csv"
    local rc, out, err = run("--make-sample 3000 " .. H.q(input))
    assert.are.equal(0, rc, err)
    local f = assert(io.open(input, "rb"))
    assert.are.equal("\31\139", f:read(2)) -- gzip, from the name
    f:close()
    -- deterministic: the same sample twice is the same bytes
    local again = TAG .. "-again.csv.gz"
    local rc2, _, err2 = run("--make-sample 3000 " .. H.q(again))
    assert.are.equal(0, rc2, err2)
    assert.are.equal(0, (H.run("cmp " .. H.q(input) .. " " .. H.q(again))))
    os.remove(again)

    rc, out, err = run(H.q(input) .. " " .. H.q(rejects) .. " --table ct_sample --replace")
    assert.are.equal(0, rc, err .. out)
    local read, loaded, rejected = counts(out)
    assert.are.equal(3000, read)
    assert.are.equal(read, loaded + rejected)
    assert.is_true(rejected > 100 and loaded > 2000, out)
    assert.are.equal(loaded, db:query_one("select count(*) as n from ct_sample").n)
    -- every loaded row is clean
    local bad = db:query_one([[select count(*) as n from ct_sample
      where email <> lower(email) or email <> btrim(email) or name <> btrim(name)
         or name like '%  %' or order_month <> date_trunc('month', ordered_on)::date
         or email_domain <> split_part(email, '@', 2) or amount < 0]]).n
    assert.are.equal(0, bad)
    local rej = rejects_of(rejects)
    assert.are.equal(rejected, #rej)
    local kinds = {}
    for _, r in ipairs(rej) do kinds[r.reason:match("^[^(]*"):gsub("%s+$", "")] = true end
    for _, k in ipairs({ "duplicate id", "invalid email", "missing email",
                         "invalid date", "negative amount", "missing amount",
                         "missing name", "invalid amount" }) do
      assert.is_true(kinds[k], "no reject of kind " .. k)
    end
    -- the first of two rows with one id is loaded, the second rejected
    for _, r in ipairs(rej) do
      local first = r.reason:match("^duplicate id %(first in record (%d+)%)$")
      if first then
        assert.are.equal(1, db:query_one("select count(*) as n from ct_sample where id = $1",
                                         tonumber(r.id)).n)
        assert.is_true(tonumber(first) < tonumber(r.record))
      end
    end
  end)

  it("normalises and rejects specific rows as expected", function()
    local input, rejects = TAG .. "-fixture.csv", TAG .. "-fixture.rejects.csv"
    write(input, table.concat({
      "id,name,email,ordered_at,amount,country",
      '1,  Ada   Lovelace ,  Ada.Lovelace@Example.COM ,2024-03-05,$ 12.5,us',
      '2,Grace Hopper,grace@example.org, 05/03/2024 ,7,',
      '3,Linus,linus@example.net,Mar 5 2024,0.10,DE ',
      '4,Ken,ken@example.net,20240229,1,jp',
      '5,Bad Date,bad@example.net,2023-02-29,1,us',
      '1,Dup,dup@example.com,2024-01-01,1,us',
      '6,,x@example.com,2024-01-01,1,us',
      '7,No At,no-at.example.com,2024-01-01,1,us',
      '8,Neg,neg@example.com,2024-01-01,-3.00,us',
      '9,Ragged,r@example.com,2024-01-01,1,us,extra',
      '10,Short,s@example.com,2024-01-01',
      '11,"Quoted, Name",q@example.com,1.2.2024,"1,5",us',
      '12,Words,w@example.com,31.12.2024,abc,us',
      "",
    }, "\n"))
    local rc, out, err = run(H.q(input) .. " " .. H.q(rejects) .. " --table ct_fixture --replace")
    assert.are.equal(0, rc, err .. out)
    assert.are.same({ 13, 4, 9 }, { counts(out) })
    local rows = db:query("select id, name, email, email_domain, ordered_on::text as d, "
                          .. "order_month::text as m, amount::text as a, country "
                          .. "from ct_fixture order by id")
    local got = {}
    for i, r in ipairs(rows) do
      got[i] = { r.id, r.name, r.email, r.email_domain, r.d, r.m, r.a, r.country }
    end
    assert.are.same({
      { 1, "Ada Lovelace", "ada.lovelace@example.com", "example.com",
        "2024-03-05", "2024-03-01", "12.50", "US" },
      { 2, "Grace Hopper", "grace@example.org", "example.org",
        "2024-03-05", "2024-03-01", "7.00", NULL },
      { 3, "Linus", "linus@example.net", "example.net",
        "2024-03-05", "2024-03-01", "0.10", "DE" },
      { 4, "Ken", "ken@example.net", "example.net",
        "2024-02-29", "2024-02-01", "1.00", "JP" },
    }, got)
    local rej = rejects_of(rejects)
    local summary = {}
    for i, r in ipairs(rej) do summary[i] = { r.record, r.line, r.id, r.reason } end
    assert.are.same({
      { "5", "6", "5", "invalid date" },
      { "6", "7", "1", "duplicate id (first in record 1)" },
      { "7", "8", "6", "missing name" },
      { "8", "9", "7", "invalid email" },
      { "9", "10", "8", "negative amount" },
      { "10", "11", "9", "wrong field count (more than 6)" },
      { "11", "12", "10", "wrong field count (fewer than 6)" },
      { "12", "13", "11", "invalid amount" },
      { "13", "14", "12", "invalid amount" },
    }, summary)
    -- the fields are kept as read (spaces and all)
    assert.are.equal("1,5", rej[8].amount)
    assert.are.equal("Quoted, Name", rej[8].name)
    assert.are.equal("us,extra", rej[6].country)
    assert.are.equal("", rej[7].country)
  end)

  it("rejects a bad command line with its usage, status 2", function()
    for args, why in pairs {
      ["--make-sample x y.csv"] = "--make-sample: 'x' is not a number of rows",
      ["--make-sample 10"] = "option '--make-sample' requires 2 arguments",
      ["--make-sample 10 y.csv in.csv"] = "--make-sample takes no input file",
      ["--seed x"] = "'x' is not an integer",
      ["a.csv b.csv c.csv"] = "too many arguments",
      ["--table"] = "option '--table' requires an argument",
    } do
      local rc, out, err = run(args)
      assert.are.equal(2, rc, args .. ": " .. err)
      assert.are.equal("", out, args)
      assert.truthy(err:find("^Usage: csv_transform%.lua %[%-h%] %[%-%-table NAME%] %[%-%-replace%]\n"), err)
      assert.truthy(err:find("\n\nError: " .. why .. "\n", 1, true), args .. ": " .. err)
    end
  end)

  it("fails with a message when the input cannot be read", function()
    local rc, _, err = run(H.q(TAG .. "-missing.csv") .. " --table ct_fixture")
    assert.are_not.equal(0, rc)
    assert.matches("cannot open .*missing%.csv: No such file or directory", err)
    assert.is_nil(io.open(TAG .. "-missing.rejects.csv"))
  end)
end)
