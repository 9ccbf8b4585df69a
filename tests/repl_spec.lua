-- The prompt driven through a pseudo-terminal (Python's pty module drives
-- it, tests/fixtures/repl/pty_driver.py): expressions, query tables,
-- Ctrl-C during a running statement and a running load, Ctrl-D.
local H = require "helper"

local PYTHON = "/usr/bin/python3"

local function drive(steps)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(table.concat(steps, "\n"), "\n")
  f:close()
  local code, out, err = H.run(("%s %s %s %s"):format(PYTHON,
    H.q(H.root .. "/tests/fixtures/repl/pty_driver.py"), H.q(H.exe), H.q(path)))
  os.remove(path)
  return code, out:gsub("\r\n", "\n"), err
end

local have_python = io.open(PYTHON) ~= nil

describe("the prompt on a terminal", function()
  local db
  setup(function()
    db = H.connect()
    H.schema(db, "repl_spec")
    db:exec("create table t (id int)")
  end)
  teardown(function() db:close() end)

  it("prints values and tables; Ctrl-C cancels and rolls back; Ctrl-D exits 0", function()
    if not have_python then pending("needs " .. PYTHON) return end
    local code, out, err = drive {
      "expect sluice> ",
      "send 1 + 41\\r", "expect 42", "expect sluice> ",
      "send db:exec('set search_path = repl_spec')\\r", "expect sluice> ",
      "send db:query('select 7 as a, 8 as b')\\r", "expect (1 row)", "expect sluice> ",
      -- a long statement inside a transaction after an insert
      "send db:begin(); db:exec('insert into t values (1)'); db:exec('select pg_sleep(30)')\\r",
      "sleep 1",
      "send \\x03",
      "expect rolled back)", "expect sluice> ",
      "send db:status()\\r", "expect idle", "expect sluice> ",
      "send db:query_one('select count(*)::int as n from t').n\\r", "expect sluice> ",
      -- a long load: rows from an endless iterator, in one transaction
      "send sluice.load{db = db, table = 't', strategy = 'rowwise_tx', quiet = true, rows = "
        .. "(function() local i = 0 return function() i = i + 1 return {i} end end)()}\\r",
      "sleep 1.5",
      "send \\x03",
      "expect sluice> ",
      "send db:query_one('select count(*)::int as n from t').n + 100\\r", "expect sluice> ",
      -- Ctrl-C at the prompt drops the line, twice does not kill
      "send 1 +", "send \\x03", "sleep 1.2", "send \\x03", "sleep 0.3",
      "send 'still' .. 'here'\\r", "expect stillhere", "expect sluice> ",
      "send \\x04",
    }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("\n42\n", 1, true), out)
    -- psql's layout: numbers right-aligned, no padding after the last column
    assert.truthy(out:find(" a | b \n---+---\n 7 | 8\n(1 row)\n\n", 1, true), out)
    assert.truthy(out:find("canceling statement due to user request", 1, true), out)
    assert.truthy(out:find("(interrupted: the open transaction on db was rolled back)", 1, true), out)
    assert.truthy(out:find("db:status()\nidle\n", 1, true), out)
    -- the insert and every row of the interrupted load were rolled back
    assert.truthy(out:find("select count(*)::int as n from t').n\n0\n", 1, true), out)
    assert.truthy(out:find("from t').n + 100\n100\n", 1, true), out)
    assert.truthy(out:find("\nstillhere\n", 1, true), out)
    assert.truthy(out:find("\nexit 0\n", 1, true), out)
    assert.are.equal(0, db:query_one("select count(*)::int as n from t").n)
  end)
end)
